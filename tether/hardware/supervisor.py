"""ControlSupervisor: notice when the robot stops following us, and turn e-stops and lost state into the robot
kind's safe stop.

A guard keeps every command safe, but it cannot know whether the robot executes them: a PX4 that fell out of
offboard, a controller that was unloaded, a vehicle someone disarmed all keep accepting bytes and ignoring
them. Each tick the loop asks the supervisor, which (at ``check_hz``) reads ``robot.control_status()``:

- in control: nothing to do;
- recoverable (a link failsafe, still engaging): call ``robot.engage()`` every ``reengage_s``; if control is
  not back within ``lost_control_s`` *while state keeps arriving*, stop the run with the reason (time with
  stale state is the guard's business - the robot may be rebooting - and is not counted);
- not recoverable (disarmed, a pilot took over, engage refused): stop the run now with the reason.

E-stops: when the guard's e-stop latches, the robot's own safe stop starts once (PX4: land until
acknowledged). State stale for longer than the robot's ``stale_escalation_s`` latches the e-stop too (a
multirotor must not hover blind), so the safe stop cannot be undone by state coming back; that is lost
control as well: once the robot's safe stop has settled (``safe_stop_settled``, or after ``settle_s``) the
run stops with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tether.errors import TetherError
from tether.hardware.guard import CommandGuard
from tether.hardware.interface import RobotInterface


@dataclass
class SupervisorConfig:
    lost_control_s: float = 3.0
    reengage_s: float = 0.5
    check_hz: float = 10.0
    settle_s: float = 15.0  # after losing state: the longest the safe stop is accompanied before the run ends

    def __post_init__(self) -> None:
        for name in ("lost_control_s", "reengage_s", "check_hz", "settle_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0 and v < float("inf")):
                raise TetherError(f"supervisor {name} is {v!r}; expected a finite number > 0")


@dataclass
class SupervisorReport:
    engage_calls: int = 0
    safe_stop: str = ""  # why the robot's safe stop started ("" if it did not)
    lost_control: str = ""  # why the run was stopped for lost control ("" if it was not)
    events: list[str] = field(default_factory=list)


class ControlSupervisor:
    def __init__(self, robot: RobotInterface, guard: CommandGuard, config: SupervisorConfig | None = None) -> None:
        self.robot, self.guard = robot, guard
        self.config = config or SupervisorConfig()
        self.report = SupervisorReport()
        self._next_check = 0.0
        self._lost_since: float | None = None
        self._last_engage: float | None = None
        self._last_reason = ""
        self._escalated_at: float | None = None

    def start(self, now: float) -> None:
        """Called once the first state is in: ask for control (PX4 engages once its heartbeat has run)."""
        self.robot.engage()
        self.report.engage_calls += 1
        self._last_engage = now
        self._next_check = now

    def _event(self, text: str) -> None:
        if len(self.report.events) < 100:
            self.report.events.append(text)

    def _safe_stop(self, reason: str) -> None:
        if not self.report.safe_stop:
            self.report.safe_stop = reason
            self._event(f"safe stop: {reason}")
            self.robot.safe_stop(reason)

    def tick(self, now: float, state_stamp: float | None) -> str | None:
        """Per control tick; returns a reason to stop the run, or None."""
        stale_for = float("inf") if state_stamp is None else now - state_stamp
        esc = self.robot.stale_escalation_s
        if esc is not None and stale_for > esc and self._escalated_at is None:
            reason = f"no state from the robot for {stale_for:.2f} s"
            self._escalated_at = now
            self.report.lost_control = reason
            self.guard.trigger_estop(reason)
            self._safe_stop(reason)
        if self.guard.estopped:
            self._safe_stop(self.guard.estop_reason or "e-stop")
            if self._escalated_at is not None and (self.robot.safe_stop_settled()
                                                   or now - self._escalated_at > self.config.settle_s):
                return self.report.lost_control
            return None
        if now < self._next_check:
            return None
        self._next_check = now + 1.0 / self.config.check_hz
        st = self.robot.control_status()
        if st.in_control:
            if self._lost_since is not None:
                self._event(f"control back after {now - self._lost_since:.2f} s")
            self._lost_since = None
            return None
        if st.reason != self._last_reason:
            self._last_reason = st.reason
            self._event(f"not in control: {st.reason}")
        if not st.recoverable:
            self.report.lost_control = st.reason
            return st.reason
        fresh = stale_for <= self.guard.config.stale_periods * self.guard.dt
        if not fresh:
            self._lost_since = None
            return None
        if self._lost_since is None:
            self._lost_since = now
        if self._last_engage is None or now - self._last_engage >= self.config.reengage_s:
            self.robot.engage()
            self.report.engage_calls += 1
            self._last_engage = now
        if now - self._lost_since > self.config.lost_control_s:
            self.report.lost_control = f"{st.reason} for {now - self._lost_since:.1f} s"
            return self.report.lost_control
        return None
