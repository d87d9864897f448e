"""ControlLoop: run a policy against a robot at a fixed rate and measure how well the rate was kept.

Each tick: read state -> assemble the observation by name through the contract -> policy (or chunk executor)
-> contract.to_physical -> robot.to_command (e.g. IK: the units the robot receives) -> CommandGuard (the robot's
limits) -> robot.send, then the ControlSupervisor (is the robot still following us?). Ticks are scheduled on ``time.monotonic`` at absolute
deadlines (start + k * period) so error does not accumulate; the wait is a sleep to just before the deadline
and a short spin, because a plain sleep on a loaded Linux box overshoots by 50-100 us and more. A tick that
ends after the next deadline is a deadline miss; the schedule then skips the slots it missed rather than
bursting to catch up (a burst of stale commands is worse than a late one).

Safety at the edges: the contracts are compared before anything is sent (mismatch -> ContractError naming
every difference, robot left untouched); on stop(), KeyboardInterrupt or any exception the loop sends one
guard hold command and disconnects the robot.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tether.contract import ContractError, IOContract
from tether.errors import TetherError
from tether.hardware.chunks import ChunkExecutor
from tether.hardware.guard import CommandGuard, GuardConfig, GuardOutput
from tether.hardware.interface import RobotInterface
from tether.hardware.supervisor import ControlSupervisor, SupervisorConfig
from tether.policies.base import Policy

log = logging.getLogger("tether.hardware.loop")

MIN_RATE_HZ, MAX_RATE_HZ = 1.0, 1000.0

OnTick = Callable[[dict[str, np.ndarray], np.ndarray, np.ndarray, float], None]


def _pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q)) if x.size else float("nan")


@dataclass
class LoopStats:
    """Timing of a run. Latency: state arrival -> command sent. Jitter: |actual tick start - scheduled|."""

    rate_hz: float
    ticks: int = 0
    misses: int = 0
    skipped_slots: int = 0
    duration_s: float = 0.0
    latency_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    compute_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    jitter_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    guard: dict[str, int] = field(default_factory=dict)
    stop_reason: str = ""
    lost_control: str = ""  # why the run stopped for lost control ("" if it did not)
    safe_stop: str = ""  # why the robot's own safe stop started ("" if it did not)
    control_events: list[str] = field(default_factory=list)

    @property
    def miss_rate(self) -> float:
        return self.misses / self.ticks if self.ticks else 0.0

    @property
    def achieved_rate_hz(self) -> float:
        return self.ticks / self.duration_s if self.duration_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "rate_hz": self.rate_hz,
            "achieved_rate_hz": self.achieved_rate_hz,
            "ticks": self.ticks,
            "misses": self.misses,
            "miss_rate": self.miss_rate,
            "skipped_slots": self.skipped_slots,
            "duration_s": self.duration_s,
            "stop_reason": self.stop_reason,
            "lost_control": self.lost_control,
            "safe_stop": self.safe_stop,
            "control_events": list(self.control_events),
            "guard": dict(self.guard),
        }
        for name in ("latency_s", "compute_s", "jitter_s"):
            arr = getattr(self, name)
            for q, label in ((50, "p50"), (99, "p99")):
                d[f"{name[:-2]}_{label}_ms"] = _pct(arr, q) * 1e3
            d[f"{name[:-2]}_max_ms"] = float(arr.max()) * 1e3 if arr.size else float("nan")
        return d

    def summary(self) -> str:
        d = self.as_dict()
        return (
            f"{d['ticks']} ticks in {d['duration_s']:.2f} s ({d['achieved_rate_hz']:.1f} Hz of {self.rate_hz:g}); "
            f"misses {d['misses']} ({100 * d['miss_rate']:.2f} %); "
            f"latency p50 {d['latency_p50_ms']:.3f} p99 {d['latency_p99_ms']:.3f} max {d['latency_max_ms']:.3f} ms; "
            f"jitter p50 {d['jitter_p50_ms']:.3f} p99 {d['jitter_p99_ms']:.3f} max {d['jitter_max_ms']:.3f} ms; "
            f"guard {d['guard']}"
        )


class ControlLoop:
    """Fixed-rate policy execution with a safety guard and timing statistics."""

    def __init__(
        self,
        policy: Policy,
        robot: RobotInterface,
        rate_hz: float | None = None,
        guard: CommandGuard | None = None,
        *,
        executor: ChunkExecutor | None = None,
        on_tick: OnTick | None = None,
        check_rate: bool = True,
        spin_s: float = 3e-4,
        manage_connection: bool = True,
        clock: Callable[[], float] = time.monotonic,
        supervision: SupervisorConfig | None = None,
    ) -> None:
        self.policy, self.robot = policy, robot
        self.rate_hz = float(rate_hz if rate_hz is not None else robot.contract.rate_hz)
        if not MIN_RATE_HZ <= self.rate_hz <= MAX_RATE_HZ:
            raise TetherError(f"loop rate {self.rate_hz} Hz; expected {MIN_RATE_HZ:g}..{MAX_RATE_HZ:g} Hz")
        self.period = 1.0 / self.rate_hz
        self.check_rate = check_rate
        self.guard = guard or CommandGuard.for_robot(
            robot.command_contract, robot.robot_limits,
            GuardConfig(stale_action=robot.stale_action, safe_command=robot.measured_command({})), dt=self.period)
        self.supervisor = ControlSupervisor(robot, self.guard, supervision)
        if executor is not None and not hasattr(policy, "act_chunk"):
            raise TetherError("a chunk executor was given but the policy has no act_chunk(); expected a ChunkedPolicy")
        self.executor = executor
        self.on_tick = on_tick
        self.spin_s = spin_s
        self.manage_connection = manage_connection
        self.clock = clock
        self._stop = threading.Event()
        self.stats = LoopStats(rate_hz=self.rate_hz)
        self.last_output: GuardOutput | None = None

    # ------------------------------------------------------------------ checks
    def check_contracts(self) -> None:
        """Policy contract vs robot contract (and the loop rate): every difference in one ContractError."""
        pc: IOContract = self.policy.contract
        rc: IOContract = self.robot.contract
        diffs = pc.differences(rc, check_rate=self.check_rate)
        if self.check_rate and abs(self.rate_hz - pc.rate_hz) > 1e-9 * pc.rate_hz:
            diffs.append(f"loop rate {self.rate_hz} Hz != policy rate {pc.rate_hz} Hz")
        if diffs:
            raise ContractError("policy contract does not match the robot's: " + "; ".join(diffs))

    def stop(self) -> None:
        """Ask the loop to finish after the current tick (thread-safe; also fine from a signal handler)."""
        self._stop.set()

    # ------------------------------------------------------------------ one tick
    def _observation(self, obs: dict[str, np.ndarray], last_action: np.ndarray, tick: int) -> np.ndarray:
        c = self.policy.contract
        return c.flatten_obs(c.with_loop_fields(obs, last_action, tick))

    def _policy_action(self, obs_vec: np.ndarray) -> np.ndarray:
        if self.executor is not None:
            if self.executor.needs_chunk():
                self.executor.add_chunk(np.asarray(self.policy.act_chunk(obs_vec[None]))[0])
            return self.executor.next_action()
        return np.asarray(self.policy.act(obs_vec[None]), dtype=float).reshape(-1)

    # ------------------------------------------------------------------ run
    def run(self, duration_s: float | None = None, max_ticks: int | None = None) -> LoopStats:
        """Run until stop(), KeyboardInterrupt, ``duration_s`` or ``max_ticks``; always ends safe."""
        self.check_contracts()  # before connect: a mismatch sends nothing and touches nothing
        contract = self.policy.contract
        n_act = contract.action_size
        cap = max_ticks if max_ticks is not None else int((duration_s or 60.0) * self.rate_hz) + 16
        lat, comp, jit = np.empty(cap), np.empty(cap), np.empty(cap)
        stats = self.stats = LoopStats(rate_hz=self.rate_hz)
        self._stop.clear()
        if hasattr(self.policy, "reset"):
            self.policy.reset()
        if self.executor is not None:
            self.executor.reset()
        self.guard.reset()  # every run ramps in from the measured state again (a latched e-stop stays latched)
        if self.manage_connection:
            self.robot.connect()
        self.supervisor = ControlSupervisor(self.robot, self.guard, self.supervisor.config)
        self.supervisor.start(self.clock())
        last_action = np.zeros(n_act)
        obs: dict[str, np.ndarray] = {}
        t0 = self.clock()
        next_deadline = t0
        k = 0
        try:
            while not self._stop.is_set():
                if max_ticks is not None and k >= max_ticks:
                    stats.stop_reason = "max_ticks"
                    break
                now = self.clock()
                if duration_s is not None and now - t0 >= duration_s:
                    stats.stop_reason = "duration"
                    break
                self._wait_until(next_deadline)
                t_start = self.clock()
                obs, stamp = self.robot.read_state()
                action = self._policy_action(self._observation(obs, last_action, k))
                command = self.robot.to_command(contract.to_physical(action), obs)
                out = self.guard.step(command, measured=self.robot.measured_command(obs), state_stamp=stamp,
                                      now=self.clock(), safe=self.robot.safe_command(obs))
                self.robot.send(out.command, damp=out.damp)
                t_end = self.clock()
                self.last_output = out  # for hooks that want the guard's reason/damp flag
                if self.on_tick is not None:
                    self.on_tick(obs, action, self.robot.executed_action(out.command), stamp)
                lost = self.supervisor.tick(t_end, stamp)
                last_action = np.where(np.isfinite(action), np.clip(action, -1.0, 1.0), 0.0)
                if k >= lat.size:  # duration-bound runs that outlive the estimate: grow, don't drop
                    lat, comp, jit = (np.resize(a, 2 * a.size) for a in (lat, comp, jit))
                lat[k], comp[k], jit[k] = t_end - stamp, t_end - t_start, abs(t_start - next_deadline)
                k += 1
                next_deadline += self.period
                if t_end > next_deadline:  # this tick overran into the next slot
                    stats.misses += 1
                    late_slots = int((t_end - next_deadline) // self.period) + 1
                    stats.skipped_slots += late_slots
                    next_deadline += late_slots * self.period
                if lost is not None:
                    stats.stop_reason = "lost_control"
                    break
            else:
                stats.stop_reason = stats.stop_reason or "stop()"
        except KeyboardInterrupt:
            stats.stop_reason = "KeyboardInterrupt"
        except BaseException:
            stats.stop_reason = "error"
            self._safe_shutdown(obs)
            raise
        finally:
            stats.ticks = k
            stats.duration_s = self.clock() - t0
            stats.latency_s, stats.compute_s, stats.jitter_s = lat[:k].copy(), comp[:k].copy(), jit[:k].copy()
            stats.guard = self.guard.counters.as_dict()
            rep = self.supervisor.report
            stats.lost_control, stats.safe_stop, stats.control_events = rep.lost_control, rep.safe_stop, rep.events
        self._safe_shutdown(obs)
        return stats

    def _safe_shutdown(self, obs: dict[str, np.ndarray]) -> None:
        """One hold command, then disconnect; a failure here is logged, never allowed to skip the disconnect
        or to mask the exception that brought us here."""
        try:
            if self.guard.last_command is not None:
                measured = self.robot.measured_command(obs) if obs else None
                if self.guard.estopped:  # the e-stop target (a descent, a damp), never a held policy command
                    safe = self.robot.safe_command(obs) if obs else None
                    hold = self.guard.step(self.guard.last_command, measured=measured, state_stamp=None,
                                           now=self.clock(), safe=safe)
                else:
                    hold = self.guard.hold(measured=measured, now=self.clock())
                self.robot.send(hold.command, damp=self.guard.estopped)
        except Exception:
            log.exception("sending the final hold command failed")
        finally:
            if self.manage_connection:
                try:
                    self.robot.disconnect()
                except Exception:
                    log.exception("disconnecting the robot failed")

    def _wait_until(self, deadline: float) -> None:
        remaining = deadline - self.clock()
        if remaining > self.spin_s:
            time.sleep(remaining - self.spin_s)
        while self.clock() < deadline:
            os.sched_yield()  # spin, but let a runnable peer have the core: on a loaded box that is cheaper
