"""CommandGuard: the one safety layer every physical command passes on its way to a robot.

Order of operations each tick (each stage only narrows what the next may do):
  1. choose a target: the policy command, or a hold/damp/safe target when the e-stop is latched, the state is
     stale, or the command is not finite (NaN/inf never reaches a limit check, it is replaced wholesale);
  2. clamp the target to the limits: the robot's own (``for_robot``: the adapter's per-model limits, a file the
     operator owns) intersected with the contract's and any tighter configured ones - a policy only narrows;
  3. during ramp-in, blend from the state measured at start towards the target;
  4. rate-limit the change from the previous output (max change per tick per element);
  5. clamp again (the previous output always lies inside the limits, so this cannot undo step 4).
So every output is inside the limits and moves at most ``max_delta`` from the previous output, whatever the
policy emits. Pure numpy and clock-free: the caller passes ``now`` so the guard is testable without sleeping.

The guard works in the units the robot receives (the robot's ``command_contract``: joint targets after IK,
thrust in N), so nothing between it and the encoder can move a command outside what it checked. A damp or
e-stop in a non-position mode goes to the robot's ``safe`` command for the current state when the robot gives
one (a multirotor's controlled descent), else to the static ``safe_command``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from tether.contract import FULL_RANGE_S, IOContract, full_range_step
from tether.errors import TetherError
from tether.hardware.limits import RobotLimits

POSITION_MODES = ("joint_position",)
STALE_ACTIONS = ("hold", "damp")


@dataclass
class GuardConfig:
    """Tunable safety behaviour. Arrays broadcast to the action size; ``None`` means "not configured".

    ``max_delta`` is the per-tick rate limit in physical units per element (e.g. rad per tick); ``max_rate``
    is the same per second and is converted with the control period; ``full_range_s`` (default
    ``contract.FULL_RANGE_S``, 0.25 s, which the simulator applies too) bounds
    the rate by "no element crosses its whole limit range faster than this", so even an unconfigured guard
    never lets a command jump from one limit to the other in one tick (None disables it; the tightest of the
    three applies). ``low``/``high`` can only tighten the
    contract's limits. ``safe_command`` is where non-position modes go when holding without a previous
    command, damping or e-stopped (e.g. zero torque, or a descent thrust); it defaults to the limit-clamped 0.
    """

    max_delta: float | Sequence[float] | None = None
    max_rate: float | Sequence[float] | None = None
    full_range_s: float | None = FULL_RANGE_S
    low: float | Sequence[float] | None = None
    high: float | Sequence[float] | None = None
    stale_periods: float = 3.0
    stale_action: str = "hold"
    ramp_in_s: float = 1.0
    safe_command: float | Sequence[float] | None = None

    def __post_init__(self) -> None:
        if self.stale_action not in STALE_ACTIONS:
            raise TetherError(
                f"stale_action {self.stale_action!r} is unknown; expected one of {', '.join(STALE_ACTIONS)}"
            )
        if not self.stale_periods > 0:
            raise TetherError(f"stale_periods is {self.stale_periods}; expected a positive number of periods")
        if self.ramp_in_s < 0:
            raise TetherError(f"ramp_in_s is {self.ramp_in_s}; expected >= 0 seconds")


@dataclass
class GuardCounters:
    """How often the guard stepped in, per reason (a tick can count under several)."""

    ticks: int = 0
    nan_holds: int = 0
    clamps: int = 0
    rate_limited: int = 0
    stale: int = 0
    estopped: int = 0
    ramped: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class GuardOutput:
    """What to send. ``damp`` asks adapters that can (kp=0, kd>0 motors) to go passive as well."""

    command: np.ndarray
    reason: str  # "policy", "rate_limit", "ramp", "nan_hold", "stale_hold", "stale_damp", "estop", "hold"
    damp: bool = False


@dataclass
class _State:
    prev: np.ndarray | None = None  # last output, always inside the limits
    start_time: float | None = None
    start_cmd: np.ndarray | None = None
    estop: bool = False
    estop_reason: str = ""


class CommandGuard:
    """Stateful per-tick command filter; see the module docstring for the guarantee it keeps."""

    def __init__(
        self,
        contract: IOContract,
        limits: tuple[Sequence[float], Sequence[float]] | None = None,
        config: GuardConfig | None = None,
        *,
        dt: float | None = None,
    ) -> None:
        self.contract = contract
        self.config = config or GuardConfig()
        self.dt = float(dt if dt is not None else contract.dt)
        if not self.dt > 0:
            raise TetherError(f"control period {self.dt} s; expected > 0")
        n = contract.action_size
        self.size = n
        low, high = contract.action_low.copy(), contract.action_high.copy()
        for lo, hi in ([limits] if limits is not None else []) + [(self.config.low, self.config.high)]:
            if lo is not None:
                low = np.maximum(low, self._vec(lo, "low"))
            if hi is not None:
                high = np.minimum(high, self._vec(hi, "high"))
        bad = np.flatnonzero(~(low <= high))
        if bad.size:
            raise TetherError(f"guard limits have low > high at action elements {bad.tolist()}")
        self.low, self.high = low, high
        delta = np.full(n, np.inf)
        if self.config.max_delta is not None:
            delta = np.minimum(delta, self._vec(self.config.max_delta, "max_delta"))
        if self.config.max_rate is not None:
            delta = np.minimum(delta, self._vec(self.config.max_rate, "max_rate") * self.dt)
        if self.config.full_range_s is not None:
            if not self.config.full_range_s > 0:
                raise TetherError(f"full_range_s is {self.config.full_range_s}; expected > 0 seconds or None")
            span = high - low
            finite = np.isfinite(span)
            delta[finite] = np.minimum(delta[finite], full_range_step(span[finite], 1.0 / self.dt,
                                                                      self.config.full_range_s))
        if np.any(delta <= 0):
            raise TetherError(f"rate limit {delta.tolist()} per tick; expected every element > 0")
        self.max_delta = delta
        safe = self.config.safe_command
        self.safe = np.clip(np.zeros(n) if safe is None else self._vec(safe, "safe_command"), low, high)
        self.position_mode = contract.control_mode in POSITION_MODES
        self.counters = GuardCounters()
        self._s = _State()

    @classmethod
    def for_robot(cls, contract: IOContract, robot_limits: RobotLimits | None, config: GuardConfig | None = None,
                  *, dt: float | None = None) -> CommandGuard:
        """A guard whose limits and rates are the robot's own, narrowed by ``contract`` and ``config``.

        ``contract`` is what the robot receives (its command contract). Without robot limits (in-process test
        robots) the contract's limits are all there is.
        """
        config = config or GuardConfig()
        if robot_limits is None:
            return cls(contract, None, config, dt=dt)
        low, high = robot_limits.bounds(contract)
        rates = robot_limits.rates(contract)
        if config.max_rate is not None:
            rates = np.minimum(rates, np.broadcast_to(np.asarray(config.max_rate, dtype=float), rates.shape))
        config = replace(config, max_rate=rates)  # inf entries: no per-second bound beyond full_range_s
        return cls(contract, (low, high), config, dt=dt)

    def _vec(self, v: float | Sequence[float], what: str) -> np.ndarray:
        arr = np.asarray(v, dtype=float)
        try:
            return np.broadcast_to(arr, (self.size,)).astype(float).copy()
        except ValueError:
            raise TetherError(
                f"guard {what} has shape {arr.shape}; expected a scalar or {self.size} action elements"
            ) from None

    # ------------------------------------------------------------------ e-stop
    def trigger_estop(self, reason: str = "e-stop") -> None:
        """Latch the e-stop: from now on every output is the damp/hold target until reset_estop()."""
        self._s.estop = True
        self._s.estop_reason = reason

    def reset_estop(self) -> None:
        """The only way out of an e-stop. Restarts ramp-in so the policy does not take over with a jump."""
        self._s.estop = False
        self._s.estop_reason = ""
        self._s.start_time = None

    @property
    def estopped(self) -> bool:
        return self._s.estop

    @property
    def estop_reason(self) -> str:
        return self._s.estop_reason

    def on_estop_message(self, msg: object) -> None:
        """Callback for a std_msgs/Bool e-stop topic: True latches; False never clears (reset is explicit)."""
        if bool(getattr(msg, "data", False)):
            self.trigger_estop("e-stop topic")

    # ------------------------------------------------------------------ lifecycle
    def start(self, measured: np.ndarray | None, now: float) -> None:
        """Begin (or restart) ramp-in from the measured command-space state (or the safe command)."""
        start = self._finite_or_none(measured)
        start = self.safe.copy() if start is None else np.clip(start, self.low, self.high)
        self._s.start_time = now
        self._s.start_cmd = start
        if self._s.prev is None:
            self._s.prev = start.copy()

    def reset(self) -> None:
        """Forget everything (state and counters) but the e-stop latch: an e-stop survives a policy restart."""
        estop, reason = self._s.estop, self._s.estop_reason
        self._s = _State(estop=estop, estop_reason=reason)
        self.counters = GuardCounters()

    @property
    def last_command(self) -> np.ndarray | None:
        return None if self._s.prev is None else self._s.prev.copy()

    def _finite_or_none(self, v: np.ndarray | None) -> np.ndarray | None:
        if v is None:
            return None
        v = np.asarray(v, dtype=float).reshape(-1)
        if v.shape != (self.size,) or not np.all(np.isfinite(v)):
            return None
        return v

    # ------------------------------------------------------------------ the filter
    def _hold_target(self, measured: np.ndarray | None) -> np.ndarray:
        if self.position_mode and measured is not None:
            return measured
        if self._s.prev is not None:
            return self._s.prev
        return measured if measured is not None else self.safe

    def _damp_target(self, measured: np.ndarray | None, safe: np.ndarray | None) -> np.ndarray:
        if self.position_mode:
            return self._hold_target(measured)
        return self.safe if safe is None else safe

    def step(
        self,
        command: np.ndarray,
        *,
        measured: np.ndarray | None = None,
        state_stamp: float | None = None,
        now: float,
        safe: np.ndarray | None = None,
    ) -> GuardOutput:
        """Filter one physical command. ``measured`` is the robot's state in command space (joint positions
        for position modes), ``state_stamp`` the time of that state on the same clock as ``now``; a state
        with no stamp counts as stale (the guard never assumes freshness it cannot see). ``safe`` is the
        robot's safe command for the current state (used by damp / e-stop in non-position modes)."""
        c = self.counters
        c.ticks += 1
        meas = self._finite_or_none(measured)
        safe_now = self._finite_or_none(safe)
        if self._s.start_time is None:
            self.start(meas, now)
        cmd = np.asarray(command, dtype=float).reshape(-1)
        if cmd.shape != (self.size,):
            raise TetherError(f"command has {cmd.size} elements; expected {self.size} for {self.contract.robot}")

        damp = False
        stale = state_stamp is None or (now - state_stamp) > self.config.stale_periods * self.dt
        if self._s.estop:
            c.estopped += 1
            target, reason, damp = self._damp_target(meas, safe_now), "estop", True
        elif stale:
            c.stale += 1
            # A stale measurement is not trusted as a hold target: hold the last output instead.
            if self.config.stale_action == "damp":
                target = self._damp_target(None, safe_now) if not self.position_mode else (
                    self._s.prev if self._s.prev is not None else self.safe
                )
                reason, damp = "stale_damp", True
            else:
                target = self._s.prev if self._s.prev is not None else self.safe
                reason = "stale_hold"
        elif not np.all(np.isfinite(cmd)):
            c.nan_holds += 1
            target, reason = self._hold_target(meas), "nan_hold"
        else:
            target, reason = cmd, "policy"

        clamped = np.clip(target, self.low, self.high)
        if reason == "policy" and np.any(clamped != target):
            c.clamps += 1
        target = clamped

        if reason == "policy" and self.config.ramp_in_s > 0:
            alpha = (now - self._s.start_time) / self.config.ramp_in_s
            if alpha < 1.0:
                alpha = max(alpha, 0.0)
                target = self._s.start_cmd + alpha * (target - self._s.start_cmd)
                c.ramped += 1
                reason = "ramp"

        prev = self._s.prev
        step = target - prev
        limited = np.clip(step, -self.max_delta, self.max_delta)
        if np.any(limited != step):
            c.rate_limited += 1
            if reason == "policy":  # in the record: the robot did not get the command the policy chose
                reason = "rate_limit"
        out = np.clip(prev + limited, self.low, self.high)
        self._s.prev = out
        return GuardOutput(out.copy(), reason, damp)

    def hold(self, *, measured: np.ndarray | None = None, now: float = 0.0) -> GuardOutput:
        """A command that holds still (used when the loop stops): rate-limited towards the hold target."""
        meas = self._finite_or_none(measured)
        if self._s.prev is None:
            self.start(meas, now)
        target = np.clip(self._hold_target(meas), self.low, self.high)
        out = np.clip(self._s.prev + np.clip(target - self._s.prev, -self.max_delta, self.max_delta),
                      self.low, self.high)
        self._s.prev = out
        return GuardOutput(out.copy(), "hold", False)

