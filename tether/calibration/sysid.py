"""System identification: fit simulator parameters to what a robot did with its commands, then turn the fit
into domain randomisation centred on it.

Method. The recorded commands are replayed in MuJoCo (``tether.calibration.replay``: the robot model from
``tether.sim`` and the parameters domain randomisation uses: body_mass, friction, joint_damping,
joint_armature, joint_frictionloss, actuator_gain, actuator_strength, motor_time_constant, plus action_latency)
and the simulated states are compared with the measured ones, channel by channel normalised by the measured
spread. Closed-loop recordings are replayed in short windows (default 0.5 s), each from the measured state:
whole closed-loop episodes replayed open loop diverge and give wrong fits. Hidden states the measurement does not
show are rebuilt before each window: a warm-up of ``WARMUP_STEPS`` steps replayed with the state reset to the
measured one at every step (rotor speeds behind their lag) and, for the quadrotor's rate controller, its
integral from the whole executed stretch (``replay.integral_before``). Each continuous parameter is a
log-scale on its nominal value (one shared scale per target unless elements are named); latency is continuous
(``replay.delay_schedule`` on the control grid; ``replay.tick_schedule`` on the robot's own tick times when a
PX4 bag gives them), so it is fitted jointly and gets an uncertainty.

Fit: a latency scan at nominal parameters seeds the search; windows the model cannot explain at all (replay
error > ``OUTLIER`` x the median window's and > ``OUTLIER_FLOOR`` of the measured spread: segments the robot
did not execute that no crop caught, a push, a contact the model lacks) are set aside, and re-checked after the
fit; a dataset (which does not say what the robot executed) is fitted twice, the second time with those windows
cut out of the data. CMA-ES searches globally (derivative-free: contacts and actuator limits make the cost
non-smooth), every generation one batched replay; Levenberg-Marquardt polishes with a batched forward-difference
Jacobian. Uncertainty: per parameter the largest of the Gauss-Newton covariance inflated for the residuals'
correlation in time (AR(1) factor), the cluster-robust (sandwich) covariance that treats each window as one
independent sample (it stays honest when the model is not exactly right: a PyBullet or real robot replayed in
MuJoCo), and half the difference between fits to the first and second half of the windows. A direction the
data does not constrain gets a large uncertainty and is reported as not identified. The correlation matrix
shows parameters the data cannot separate (a quadrotor's mass against its thrust gain: fit one of them).

What each robot kind's data identifies (defaults in ``DEFAULT_PARAMS``):
- quadrotor (thrust + body rates or rotor thrusts): mass (with the thrust gain fixed: only their ratio is
  observable), motor time constant (needs excitation: in a steady hover the rotors never change speed; record
  with ``tether.policies.exploration``), latency.
- arm (joint targets through PD): actuator gain (PD stiffness, damping scaled with it), joint damping, latency.
- legged (joint targets through PD, standing or walking): actuator gain, ground friction, latency. Friction
  shows as soon as the feet slip a little; without it, a served robot on ground at x0.25 friction fitted gain
  x1.53 (residual 1.23), with it gain x0.99 and friction x0.250 (residual 0.68; the truth: gain x1, friction
  x0.25, mass x1.2). On ground of nominal friction it fits x0.93-1.09 and the gain fit is no worse. Actuator
  strength only when torques saturate, which standing does not: pass it in ``params`` for a recording that does.

The DR preset centres every term on the fit (a ``scale`` term on the nominal model) with a half-width of ``k``
standard deviations (default 3, at least ``DR_FLOOR`` of the value: repeated recordings scatter more than one
recording's statistics say), so ``tether train --dr preset.json`` trains across what the data could not rule
out; the latency range is the spread of whole-step delays measured per command when the robot's tick times are
known (stalls left out: :func:`loop_latency`).

Inputs: a deploy bag or a dataset converted from one (``tether.calibration.recordings``), or a trajectory
log (``.npz`` / ``.json``): ``command`` (N, nu) actuator inputs in physical units (joint position targets or
rotor thrusts N), each held for one control period; measured states with one more sample than commands
(state k+1 follows command k), any of ``joint_pos``, ``joint_vel`` (N+1, n_joints), ``base_pos``,
``base_lin_vel``, ``base_ang_vel`` (N+1, 3), ``base_quat`` (N+1, 4, w x y z). A leading episode axis
(E, N, ...) holds several episodes. ``control_period`` (scalar, s) or ``t`` (N,) is optional; it must match the
robot's control rate. Logs are open-loop experiments from a known state and are replayed whole.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tether.calibration.replay import (
    COMMAND_MODES, TICK_BAND_S, Replayer, Windows, delay_schedule, rotation_increments, tick_band,
)
from tether.errors import TetherError

STATE_KEYS = ("joint_pos", "joint_vel", "base_pos", "base_quat", "base_lin_vel", "base_ang_vel")
CONTINUOUS_TARGETS = (
    "body_mass", "friction", "joint_damping", "joint_armature", "joint_frictionloss",
    "actuator_gain", "actuator_strength", "motor_time_constant",
)
LATENCY = "action_latency"
# What to fit when the caller does not say: parameters each robot's motion can tell apart.
DEFAULT_PARAMS = {
    "quadrotor": ("body_mass", "motor_time_constant", LATENCY),
    "arm": ("actuator_gain", "joint_damping", LATENCY),
    "legged": ("actuator_gain", "friction", LATENCY),
}
LOG_SCALE_BOUND = np.log(4.0)  # search scales in [1/4, 4] x nominal
OUTLIER = 4.0  # a window whose replay error exceeds this many times the median window's is set aside ...
OUTLIER_FLOOR = 0.25  # ... and this fraction of the measured spread (a near-perfect fit flags nothing)
IDENTIFIED_REL_STD = 0.15  # a scale known to better than this (1 sigma, relative) counts as identified
DEFAULT_WINDOW_S = 0.5
WARMUP_STEPS = 10  # control steps of warm-up before each window where hidden actuator states matter
DR_FLOOR = 0.10  # smallest DR half-width, relative to the fitted scale (see SysIdResult.dr_terms)


STALL_STEPS = 5  # a command this many control steps later than the median after its state marks a stall


def loop_latency(delays: np.ndarray, period: float) -> tuple[float | None, tuple[int, int] | None, int]:
    """From each command's delay (s) between the state it was computed from and its tick in force: the mean
    delay, the spread of whole control steps beyond the next tick (2nd to 98th percentile), and how many
    commands were left out as stalls.

    Why stalls are left out: the range becomes the DR's action latency, which every simulated step then draws
    from. A controller or link that stalls for seconds (one bag of a loaded test run: 31 commands 6 s after
    their state) would otherwise widen a measured 4..5 steps to 4..270 and train for a robot that cannot fly.
    A stall is not the loop's latency; the fit's windows already set aside what the commands do not explain."""
    d = np.asarray(delays, dtype=float)
    d = d[np.isfinite(d)]
    if not len(d):
        return None, None, 0
    steps = np.maximum(np.ceil(d / period - 1e-9) - 1, 0)
    normal = steps <= np.median(steps) + STALL_STEPS
    steps, d = steps[normal], d[normal]
    return float(np.mean(d)), (int(np.percentile(steps, 2)), int(np.percentile(steps, 98))), int(np.sum(~normal))


# ---------------------------------------------------------------------- data
@dataclass
class Trajectories:
    """Episodes of commands and the states they produced (see the module docstring for the layout).

    ``command_mode`` says how the robot executes a command (``replay.COMMAND_MODES``); ``executed`` marks,
    per episode, the commands the robot really executed (False: before a PX4 vehicle went offboard, while a
    Unitree robot was damped); ``closed_loop`` data is replayed in windows, open-loop logs whole."""

    commands: list[np.ndarray]  # per episode (N, nu)
    states: list[dict[str, np.ndarray]]  # per episode, key -> (N+1, d)
    control_period: float | None = None
    command_mode: str = "actuator"
    executed: list[np.ndarray] | None = None  # per episode (N,) bool
    closed_loop: bool = False
    notes: list[str] = field(default_factory=list)
    mode_known: bool = True  # False: ``executed`` may include commands the robot ignored (a converted dataset)
    # per episode, None or (state_times (N+1,), command_times (M,), command_sources (M,)) in seconds on one
    # clock: the robot's own tick times, when each command was sent and the tick time of the state it was
    # computed from (NaN: unknown); then that episode's commands are (M, nu) and ``executed`` marks transitions
    # (see ``replay.tick_schedule``)
    timing: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] | None = None

    @property
    def keys(self) -> list[str]:
        return list(self.states[0])

    @property
    def n_steps(self) -> int:
        return int(sum(len(next(iter(s.values()))) - 1 for s in self.states))

    @property
    def n_executed(self) -> int:
        if self.executed is None:
            return self.n_steps
        return int(sum(int(np.sum(e)) for e in self.executed))


def trajectories_from_arrays(arrays: Mapping[str, np.ndarray], where: str = "trajectory log") -> Trajectories:
    if "command" not in arrays:
        raise TetherError(f"{where} has no 'command' array; it has {sorted(arrays)}")
    from tether.calibration.io import require

    require(arrays, ["command"], where, optional=(*STATE_KEYS, "control_period", "t"))  # numbers, not text
    cmd = np.asarray(arrays["command"], dtype=float)
    if cmd.size == 0:
        raise TetherError(f"{where} is empty; expected commands and measured states")
    if cmd.ndim == 2:
        cmd = cmd[None]
    if cmd.ndim != 3:
        raise TetherError(f"{where}: command has shape {np.shape(arrays['command'])}; expected (N, nu) or (E, N, nu)")
    if not np.all(np.isfinite(cmd)):
        raise TetherError(f"{where}: command contains NaN or inf")
    keys = [k for k in STATE_KEYS if k in arrays]
    if not keys:
        raise TetherError(f"{where} has no measured state; expected some of {', '.join(STATE_KEYS)}")
    E, N, _ = cmd.shape
    states: list[dict[str, np.ndarray]] = [{} for _ in range(E)]
    for k in keys:
        a = np.asarray(arrays[k], dtype=float)
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3 or a.shape[:2] != (E, N + 1):
            raise TetherError(
                f"{where}: {k} has shape {np.shape(arrays[k])}; expected ({E}, {N + 1}, d) or ({N + 1}, d): "
                f"one more state than commands"
            )
        if not np.all(np.isfinite(a)):
            raise TetherError(f"{where}: {k} contains NaN or inf")
        for e in range(E):
            states[e][k] = a[e]
    period = None
    if "control_period" in arrays:
        cp = np.asarray(arrays["control_period"], dtype=float).ravel()
        if cp.size != 1:
            raise TetherError(f"{where}: control_period holds {cp.size} values; expected one number of seconds")
        period = float(cp[0])
    elif "t" in arrays and np.asarray(arrays["t"]).size > 1:
        period = float(np.median(np.diff(np.asarray(arrays["t"], dtype=float).reshape(-1)[:N])))
    if period is not None and not (np.isfinite(period) and period > 0):
        raise TetherError(f"{where}: control period {period}; expected a positive number of seconds")
    return Trajectories([c for c in cmd], states, period)


def load_trajectories(path: str | Path) -> Trajectories:
    from tether.calibration.io import load_arrays

    return trajectories_from_arrays(load_arrays(path), f"trajectory log {str(path)!r}")


# ---------------------------------------------------------------------- parameters and simulator
@dataclass(frozen=True)
class ParamSpec:
    """One fitted quantity: a DR target, optionally restricted to named elements (one shared scale)."""

    target: str
    elements: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.target + (":" + "+".join(self.elements) if self.elements else "")

    @classmethod
    def parse(cls, text: str) -> ParamSpec:
        target, _, rest = text.partition(":")
        valid = (*CONTINUOUS_TARGETS, LATENCY)
        if target not in valid:
            raise TetherError(f"unknown sysid parameter {target!r}; expected one of {', '.join(valid)}")
        return cls(target, tuple(e for e in rest.split("+") if e))


class Simulator:
    """Replays one command sequence at a time through the ``Backend`` interface (no batching): the plain
    reference the batched replay is checked and benchmarked against, and the generator of synthetic logs."""

    def __init__(self, robot: str, params: Sequence[ParamSpec], backend: str = "mujoco") -> None:
        from tether.sim.backends import make_backend
        from tether.sim.robots import make_robot
        from tether.sim.robots.base import Scene

        self.spec = make_robot(robot)
        self.backend = make_backend(backend, self.spec, Scene())
        self.substeps = self.spec.substeps
        self.period = 1.0 / self.spec.control_rate_hz
        self.params = [p for p in params if p.target != LATENCY]
        self.nominal: dict[str, np.ndarray] = {}
        self.index: dict[str, np.ndarray] = {}
        for p in self.params:
            names = self.backend.param_elements(p.target)
            if not names:
                raise TetherError(f"robot {robot} has nothing for sysid parameter {p.target!r} to act on")
            self.index[p.name] = np.array([names.index(e) for e in p.elements]) if p.elements else np.arange(len(names))
            self.nominal.setdefault(p.target, self.backend.get_param(p.target).copy())

    def set_scales(self, log_scales: np.ndarray) -> None:
        values = {t: v.copy() for t, v in self.nominal.items()}
        for p, s in zip(self.params, log_scales):
            values[p.target][self.index[p.name]] *= np.exp(s)
        for t, v in values.items():
            self.backend.set_param(t, v)

    def _read(self, keys: Sequence[str]) -> list[np.ndarray]:
        b = self.backend
        out = []
        for k in keys:
            if k in ("joint_pos", "joint_vel"):
                q, v = b.joint_state()
                out.append(q if k == "joint_pos" else v)
            elif k in ("base_pos", "base_quat"):
                p, q = b.base_pose()
                out.append(p if k == "base_pos" else q)
            else:
                lin, ang = b.base_velocity()
                out.append(lin if k == "base_lin_vel" else ang)
        return out

    def rollout(self, command: np.ndarray, init: Mapping[str, np.ndarray], keys: Sequence[str], delay: float) -> dict[str, np.ndarray]:
        """States (N+1, d) per key: state 0 is ``init``; command k acts ``delay`` physics steps late -> state k+1
        (before the first command, the first command holds)."""
        b = self.backend
        command = np.asarray(command, dtype=float)
        sub = self.substeps
        history = int(np.ceil(max(float(delay), 0.0) / sub)) + 1
        padded = np.concatenate([np.repeat(command[:1], history, axis=0), command])
        schedule = delay_schedule(padded[None], history, len(command), sub, delay)[0]
        b.set_command(schedule[0])
        b.reset_state(
            init.get("joint_pos", self.spec.default_joint_pos), init.get("joint_vel"), init.get("base_pos"),
            init.get("base_quat"), init.get("base_lin_vel"), init.get("base_ang_vel"),
        )
        rec: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        for k, v in zip(keys, self._read(keys)):
            rec[k].append(np.asarray(init[k], dtype=float) if k in init else v)
        for i in range(len(command)):
            for j in range(sub):
                b.set_command(schedule[i * sub + j])
                b.step(1)
            for k, v in zip(keys, self._read(keys)):
                rec[k].append(v)
        return {k: np.array(v) for k, v in rec.items()}


def record(
    robot: str,
    commands: Sequence[np.ndarray],
    *,
    scales: Mapping[str, float] | None = None,
    latency_steps: float = 0,
    noise: Mapping[str, float] | None = None,
    init: Sequence[Mapping[str, np.ndarray]] | None = None,
    keys: Sequence[str] | None = None,
    rng: np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Open-loop trajectories from the robot model with parameters ``nominal * scales`` (a stand-in for a
    real robot whose hidden parameters differ from the nominal model), as the arrays ``load_trajectories``
    reads."""
    scales = dict(scales or {})
    params = [ParamSpec.parse(n) for n in scales]
    sim = Simulator(robot, params)
    sim.set_scales(np.log([scales[p.name] for p in sim.params]))
    floating = sim.spec.floating_base
    if keys is None:
        keys = ["base_pos", "base_quat", "base_lin_vel", "base_ang_vel"] if floating else []
        keys += ["joint_pos", "joint_vel"] if len(sim.spec.joints) else []
    rng = rng or np.random.default_rng(0)
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for e, cmd in enumerate(commands):
        start = dict(init[e]) if init is not None else {}
        traj = sim.rollout(np.asarray(cmd, dtype=float), start, keys, latency_steps * sim.substeps)
        for k in keys:
            x = traj[k] + rng.normal(0.0, (noise or {}).get(k, 0.0), traj[k].shape)
            if k == "base_quat":
                x /= np.linalg.norm(x, axis=1, keepdims=True)
            out[k].append(x)
    arrays = {k: np.array(v) for k, v in out.items()}
    arrays["command"] = np.array([np.asarray(c, dtype=float) for c in commands])
    arrays["control_period"] = np.array(sim.period)
    return arrays


# ---------------------------------------------------------------------- windows
def _executed_runs(data: Trajectories, episode: int, n: int) -> list[tuple[int, int]]:
    """Maximal runs [a, b) of executed steps of one episode of ``n`` steps."""
    ok = np.ones(n, bool) if data.executed is None else np.asarray(data.executed[episode], bool)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


class _StartStates:
    """Full MuJoCo states of one episode's measured states, each built once (windows and warm-ups share)."""

    def __init__(self, replayer: Replayer, states: Mapping[str, np.ndarray]) -> None:
        self.replayer, self.states, self.cache = replayer, states, {}

    def __call__(self, i: int) -> np.ndarray:
        if i not in self.cache:
            self.cache[i] = self.replayer.start_state({k: v[i] for k, v in self.states.items()})
        return self.cache[i]


def _add_window(meas: dict[str, list], starts: list, warm: list, origin: list, s: Mapping[str, np.ndarray],
                state_at: _StartStates, e: int, t: int, L: int, burn: int) -> None:
    """Append the measured states, start state, warm-up states and origin of the window at step ``t``."""
    for k in meas:
        meas[k].append(s[k][t:t + L + 1])
    starts.append(state_at(t))
    warm.append([state_at(i) for i in range(t - burn, t)])
    origin.append((e, t))


def make_windows(replayer: Replayer, data: Trajectories, *, window_steps: int | None, history: int,
                 stride: int | None = None, burn: int = 0, integral_history: bool = True
                 ) -> tuple[Windows, list[str]]:
    """Replay windows from ``data``: ``window_steps`` commands each (None: whole episodes, cut to the shortest),
    started ``stride`` steps apart inside runs of executed commands, each preceded by ``burn`` warm-up steps
    and ``history`` more executed commands (so any delay up to ``history - 1`` periods replays real
    commands). ``integral_history``: for the rate controller, estimate its integral from the whole executed
    stretch before each window (False: from the warm-up only). Returns windows and notes."""
    notes: list[str] = []
    keys = data.keys
    cmds, meas, starts, origin, warm = [], {k: [] for k in keys}, [], [], []
    pre: list[tuple[np.ndarray, np.ndarray]] = []  # rate mode: (commands, rotation increments) before warm-up
    rate_mode = data.command_mode == "thrust_body_rates" and "base_quat" in keys and integral_history
    if window_steps is None:
        burn = 0
        L = min(len(c) for c in data.commands)
        if any(len(c) != L for c in data.commands):
            notes.append(f"episodes cut to the shortest ({L} steps) to replay them together")
        for e, (c, s) in enumerate(zip(data.commands, data.states)):
            act = replayer.executed(c, s.get("joint_pos", [None])[0])
            cmds.append(np.concatenate([np.repeat(act[:1], history, axis=0), act[:L]]))
            for k in keys:
                meas[k].append(s[k][:L + 1])
            starts.append(replayer.start_state({k: v[0] for k, v in s.items()}))
            origin.append((e, 0))
    elif data.timing is not None:
        timed = [e for e, t in enumerate(data.timing) if t is not None]
        if len(timed) < len(data.timing):  # the two kinds replay on different clocks; the timed ones are exact
            notes.append(f"{len(data.timing) - len(timed)} of {len(data.timing)} episodes without the robot's own "
                         "tick times set aside (the others have them)")
            data = replace(data, commands=[data.commands[e] for e in timed], states=[data.states[e] for e in timed],
                           executed=None if data.executed is None else [data.executed[e] for e in timed],
                           timing=[data.timing[e] for e in timed])
        return _event_windows(replayer, data, int(window_steps), int(stride or window_steps), burn, history,
                              rate_mode), notes
    else:
        L = int(window_steps)
        stride = int(stride or L)
        lead = burn + history
        for e, (c, s) in enumerate(zip(data.commands, data.states)):
            act = replayer.executed(c, s.get("joint_pos", [None])[0])
            state_at = _StartStates(replayer, s)
            for a, b in _executed_runs(data, e, len(c)):
                for t in range(a + lead, b - L + 1, stride):
                    cmds.append(act[t - lead:t + L])
                    _add_window(meas, starts, warm, origin, s, state_at, e, t, L, burn)
                    if rate_mode:
                        b0 = t - burn
                        pre.append((act[a:b0], rotation_increments(s["base_quat"][a:b0 + 1])))
        history = lead
    if not cmds:
        need = (window_steps or 0) + history + burn
        raise TetherError(f"no replay window fits the data: every executed stretch is shorter than {need} control "
                          f"steps ({burn} of warm-up, {history} of history and {window_steps} per window); record "
                          f"longer or pass a shorter window")
    warm_arr = np.array(warm) if burn else None
    win = Windows(np.array(cmds), {k: np.array(v) for k, v in meas.items()}, np.array(starts), history,
                  origin, burn, warm_arr)
    if pre:
        P = max(len(r) for _, r in pre)
        h = history - burn  # delay margin
        pc = np.zeros((len(pre), h + P, data.commands[0].shape[1]))
        pr = np.zeros((len(pre), P, 3))
        for i, (c, r) in enumerate(pre):
            n = len(r)
            first = c[0] if len(c) else cmds[i][0]
            pc[i, :h + P - n] = first  # before the stretch: its first command (the robot was not executing ours)
            pc[i, h + P - n:] = c
            pr[i, P - n:] = r
        win.pre_commands, win.pre_rotation, win.pre_history = pc, pr, h
        win.pre_start = np.array([P - len(r) for _, r in pre])
    return win, notes


def _fill_quats(q: np.ndarray) -> np.ndarray:
    """Attitudes with the unread ones (NaN rows) interpolated (normalised linear, per component)."""
    q = np.asarray(q, dtype=float).copy()
    ok = np.all(np.isfinite(q), axis=1)
    if ok.all() or not ok.any():
        return q
    idx = np.arange(len(q))
    for c in range(4):
        q[~ok, c] = np.interp(idx[~ok], idx[ok], q[ok, c])
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _event_windows(replayer: Replayer, data: Trajectories, L: int, stride: int, burn: int, history: int,
                   rate_mode: bool) -> Windows:
    """``make_windows`` for episodes with the robot's own tick times: each window carries the commands sent
    around it with their send times and the time of each tick (``replay.tick_schedule``)."""
    keys = data.keys
    T = replayer.period
    margin = (history + 1) * T  # a command sent this long before a tick can still be the one in force
    lead = burn + history
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (commands, send times, tick times)
    pre: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # + rotations
    meas, starts, warm, origin = {k: [] for k in keys}, [], [], []
    for e, (c, s) in enumerate(zip(data.commands, data.states)):
        st, ct = data.timing[e][:2]
        c = np.asarray(c, dtype=float)
        state_at = _StartStates(replayer, s)

        def sent(t_lo: float, t_hi: float, ct: np.ndarray = ct) -> np.ndarray:
            return np.flatnonzero((ct >= t_lo) & (ct <= t_hi))

        measured = np.all([np.all(np.isfinite(v), axis=1) for v in s.values()], axis=0)
        quat = _fill_quats(s["base_quat"]) if rate_mode else None
        for a, b in _executed_runs(data, e, len(st) - 1):
            t = a + lead
            while t <= b - L:
                if not (measured[t] and measured[t - burn]):
                    # a window starts (and its warm-up begins) at a state the controller read: the next one
                    # (under load the controller misses a tick in five; skipping the window lost a third)
                    t += 1
                    continue
                idx = sent(st[t - burn] - margin, st[t + L])
                rows.append((c[idx], ct[idx] - st[t], st[t - burn + 1:t + L + 1] - st[t]))
                _add_window(meas, starts, warm, origin, s, state_at, e, t, L, burn)
                if rate_mode:
                    b0 = t - burn
                    pidx = sent(st[a] - margin, st[b0])
                    pre.append((c[pidx], ct[pidx] - st[t], st[a + 1:b0 + 1] - st[t],
                                rotation_increments(quat[a:b0 + 1])))
                t += stride
    if not rows:
        raise TetherError(f"no replay window fits the data: every executed stretch is shorter than {L + lead} "
                          f"ticks ({burn} of warm-up, {history} of history and {L} per window); record longer or "
                          f"pass a shorter window")
    nu = rows[0][0].shape[1]
    M = max(len(r[0]) for r in rows)
    cmds = np.zeros((len(rows), M, nu))
    ctime = np.full((len(rows), M), np.inf)
    for i, (cc, tt, _) in enumerate(rows):
        cmds[i, :len(cc)], cmds[i, len(cc):] = cc, cc[-1]
        ctime[i, :len(tt)] = tt
    win = Windows(cmds, {k: np.array(v) for k, v in meas.items()}, np.array(starts), 0, origin, burn,
                  np.array(warm) if burn else None, cmd_time=ctime, tick_time=np.array([r[2] for r in rows]),
                  steps_override=L, tick_band=tick_band([t[0] for t in data.timing if t is not None], T))
    if pre:
        P = max(len(p[3]) for p in pre)
        Mp = max(max(len(p[0]) for p in pre), 1)
        pc, pt = np.zeros((len(pre), Mp, nu)), np.full((len(pre), Mp), np.inf)
        ptick, prot = np.full((len(pre), P), -np.inf), np.zeros((len(pre), P, 3))
        for i, (cc, tt, tk, rot) in enumerate(pre):
            if len(cc):
                pc[i, :len(cc)], pc[i, len(cc):], pt[i, :len(tt)] = cc, cc[-1], tt
            n = len(rot)
            ptick[i, P - n:], prot[i, P - n:] = tk, rot
        win.pre_commands, win.pre_cmd_time, win.pre_tick_time, win.pre_rotation = pc, pt, ptick, prot
        win.pre_start = np.array([P - len(p[3]) for p in pre])
    return win


# ---------------------------------------------------------------------- fit
@dataclass
class SysIdResult:
    robot: str
    params: list[ParamSpec]  # continuous parameters
    nominal: dict[str, np.ndarray]  # target -> nominal element values
    log_scale: np.ndarray  # fitted, per continuous parameter
    log_std: np.ndarray  # 1-sigma of log_scale
    correlation: np.ndarray
    latency_s: float
    latency_std_s: float
    residual_before: float  # normalised RMS residual of the nominal model (no latency)
    residual_after: float
    residual_per_key_before: dict[str, float]
    residual_per_key_after: dict[str, float]
    evaluations: int  # parameter sets replayed (each over every window)
    control_period: float
    fit_latency: bool = True
    latency_scan: dict[int, float] = field(default_factory=dict)  # whole steps -> residual at nominal scales
    windows: int = 0  # windows fitted
    windows_set_aside: int = 0
    window_s: float | None = None  # None: whole episodes
    simulations: int = 0  # window replays (evaluations x windows, Jacobians included)
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    command_mode: str = "actuator"
    history: int = 1  # commands of delay margin each window carried (max latency + 1)
    warmup_steps: int | None = None
    window_origins: list[tuple[int, int]] = field(default_factory=list)  # (episode, first step) of fitted windows
    # event timing: latency_s is from a command's send to the robot tick that can use it; the loop's latency
    # (state -> its command in force), per command in whole control steps beyond the next tick, spread [lo, hi]
    loop_latency_s: float | None = None
    loop_latency_steps: tuple[int, int] | None = None

    @property
    def latency_steps(self) -> int:
        return int(round(self.latency_s / self.control_period))

    @property
    def scale(self) -> dict[str, float]:
        return {p.name: float(np.exp(s)) for p, s in zip(self.params, self.log_scale)}

    @property
    def rel_std(self) -> dict[str, float]:
        return {p.name: float(np.exp(s) * sd) for p, s, sd in zip(self.params, self.log_scale, self.log_std)}

    @property
    def identified(self) -> dict[str, bool]:
        """Per parameter: did the data pin it down (1-sigma below IDENTIFIED_REL_STD of its value)?"""
        return {p.name: bool(np.isfinite(sd) and sd < IDENTIFIED_REL_STD) for p, sd in zip(self.params, self.log_std)}

    def values(self) -> dict[str, list[float]]:
        """Fitted physical values per parameter (nominal elements x fitted scale)."""
        return {p.name: [float(v * np.exp(s)) for v in self.nominal[p.target]] for p, s in zip(self.params, self.log_scale)}

    def dr_terms(self, k: float = 3.0, min_rel: float = DR_FLOOR) -> list:
        """DR terms centred on the fit: scale in [s (1 - k sd), s (1 + k sd)] (at least ``min_rel``, at most the
        search range [1/4, 4] of nominal), one draw shared by the elements as fitted; latency over the whole
        steps within k sd of the estimate.

        Why a floor: the standard deviations are what this recording supports about this simulator; repeated
        recordings of the same served robot scatter more than that (motor lag by up to ~7 % on a quiet machine;
        a CI run fitted ×1.43 for a true ×1.5 with sd 1.3 %: the loop phase, the machine's timing, the simulator
        not being the robot), and a preset narrower than that scatter would train a policy for one recording
        rather than for the robot, and miss the robot itself."""
        from tether.sim.randomization import DRTerm

        if not (np.isfinite(k) and k > 0):
            raise TetherError(f"DR width {k} standard deviations; expected a positive number")
        terms = []
        lo_b, hi_b = float(np.exp(-LOG_SCALE_BOUND)), float(np.exp(LOG_SCALE_BOUND))
        for p, s, sd in zip(self.params, self.log_scale, self.log_std):
            c = float(np.exp(s))
            half = max(k * float(sd) if np.isfinite(sd) else 1.0, min_rel)
            lo, hi = max(c * (1 - half), lo_b), min(c * (1 + half), hi_b)
            if hi - c < c - lo:  # keep the range centred on the fit where a bound cut one side
                lo = 2 * c - hi
            elif c - lo < hi - c:
                hi = 2 * c - lo
            terms.append(DRTerm(p.target, "uniform", "scale", (lo, hi), "reset", select=p.elements, per_element=False))
        if self.fit_latency:
            lo, hi = self.latency_step_range(k)
            terms.append(DRTerm(LATENCY, "uniform", "abs", (float(lo), float(hi)), "reset"))
        return terms

    def latency_step_range(self, k: float = 3.0) -> tuple[int, int]:
        if self.loop_latency_steps is not None:  # measured per command (event timing): jitter included
            return self.loop_latency_steps
        T = self.control_period
        lo = max(0, int(np.floor((self.latency_s - k * self.latency_std_s) / T + 0.5)))
        hi = max(lo, int(np.floor((self.latency_s + k * self.latency_std_s) / T + 0.5)))
        return lo, hi

    def dr_preset(self, k: float = 3.0, min_rel: float = DR_FLOOR) -> dict[str, Any]:
        return {"name": f"sysid-{self.robot}", "terms": [t.to_dict() for t in self.dr_terms(k, min_rel)],
                "provenance": {"source": "tether.calibration.sysid", "width_sigma": k, "min_rel_width": min_rel,
                               "report": self.report()}}

    def report(self) -> dict[str, Any]:
        return {
            "robot": self.robot,
            "command_mode": self.command_mode,
            "scale": self.scale,
            "rel_std": self.rel_std,
            "identified": self.identified,
            "values": self.values(),
            "correlation": {"params": [p.name for p in self.params], "matrix": self.correlation.tolist()},
            "latency_s": self.latency_s if self.fit_latency else None,
            "latency_std_s": self.latency_std_s if self.fit_latency else None,
            "latency_steps": self.latency_steps if self.fit_latency else None,
            "latency_scan": {str(k): v for k, v in self.latency_scan.items()},
            "loop_latency_s": self.loop_latency_s,
            "loop_latency_steps": None if self.loop_latency_steps is None else list(self.loop_latency_steps),
            "residual_before": self.residual_before,
            "residual_after": self.residual_after,
            "residual_per_key_before": self.residual_per_key_before,
            "residual_per_key_after": self.residual_per_key_after,
            "evaluations": self.evaluations,
            "simulations": self.simulations,
            "windows": self.windows,
            "windows_set_aside": self.windows_set_aside,
            "window_s": self.window_s,
            "wall_s": self.wall_s,
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        win = (f"{self.windows} windows of {self.window_s:g} s" if self.window_s else f"{self.windows} whole episodes")
        aside = f" ({self.windows_set_aside} set aside)" if self.windows_set_aside else ""
        lines = [f"sysid {self.robot}: residual {self.residual_before:.4f} -> {self.residual_after:.4f} "
                 f"(normalised RMS, nominal model -> fit) on {win}{aside}; {self.evaluations} parameter sets, "
                 f"{self.simulations} window replays, {self.wall_s:.1f} s"]
        vals = self.values()
        for p in self.params:
            shown = ", ".join(f"{v:.4g}" for v in vals[p.name][:4]) + (", ..." if len(vals[p.name]) > 4 else "")
            flag = "" if self.identified[p.name] else "  (not identified by this data)"
            lines.append(f"  {p.name:>22}: x{self.scale[p.name]:.4f} ± {self.rel_std[p.name]:.4f} of nominal  "
                         f"[{shown}]{flag}")
        if self.fit_latency and self.loop_latency_s is not None:
            lo, hi = self.loop_latency_steps
            lines.append(f"  {LATENCY:>22}: loop {1e3 * self.loop_latency_s:.1f} ms from a state to its command "
                         f"in force ({lo}..{hi} steps of {1e3 * self.control_period:.0f} ms beyond the next tick); "
                         f"send -> robot tick {1e3 * self.latency_s:.1f} ± {1e3 * self.latency_std_s:.1f} ms")
        elif self.fit_latency:
            lines.append(f"  {LATENCY:>22}: {1e3 * self.latency_s:.1f} ± {1e3 * self.latency_std_s:.1f} ms "
                         f"(~{self.latency_steps} steps of {1e3 * self.control_period:.0f} ms)")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


class _Objective:
    """Normalised replay residuals of candidate parameter vectors, batched, with a simulation counter."""

    def __init__(self, replayer: Replayer, windows: Windows, n: int, fit_latency: bool, max_latency: float) -> None:
        self.rp, self.win = replayer, windows
        self.keys = list(windows.measured)
        self.n, self.fit_latency, self.max_latency = n, fit_latency, max_latency
        allv = {k: windows.measured[k].reshape(-1, windows.measured[k].shape[-1]) for k in self.keys}
        self.scale = {k: np.maximum(np.nanstd(allv[k], axis=0), 1e-3 * (np.nanmax(np.abs(allv[k])) + 1e-9))
                      for k in self.keys}
        self.evals = 0
        self.sims = 0
        self.active = np.arange(windows.count)

    def decode(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = np.atleast_2d(X)
        if self.fit_latency:
            return X[:, :self.n], np.clip(X[:, self.n], 0.0, self.max_latency) * self.rp.substeps
        return X[:, :self.n], np.zeros(len(X))

    def parts(self, X: np.ndarray, windows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Normalised errors per key, (K, W, steps, d), on ``windows`` (default: the active ones)."""
        idx = self.active if windows is None else windows
        w = self.win.subset(idx)
        scales, delays = self.decode(X)
        sim = self.rp.run(w, scales, delays, self.keys)
        self.evals += len(scales)
        self.sims += len(scales) * w.count
        out = {}
        for k in self.keys:
            s, m = sim[k], w.measured[k][None]
            s = s[..., :m.shape[-1]]  # joints: the model may have more than the robot reports (an arm's fingers)
            if k == "base_quat":
                s = s * np.sign(np.sum(s * m, axis=-1, keepdims=True) + 1e-12)
            e = ((s - m) / self.scale[k])[:, :, 1:]
            e = np.where(np.isfinite(m[:, :, 1:]), e, 0.0)  # a state never measured is not compared
            out[k] = np.nan_to_num(e, nan=1e3, posinf=1e3, neginf=-1e3).clip(-1e3, 1e3)
        return out

    def residuals(self, X: np.ndarray, windows: np.ndarray | None = None) -> np.ndarray:
        """(K, W, m): per candidate and window, the flat residual vector."""
        p = self.parts(X, windows)
        K, W = next(iter(p.values())).shape[:2]
        return np.concatenate([v.reshape(K, W, -1) for v in p.values()], axis=2)

    @staticmethod
    def per_key_rms(parts: Mapping[str, np.ndarray], row: int = 0) -> dict[str, float]:
        return {k: float(np.sqrt(np.mean(v[row] ** 2))) for k, v in parts.items()}

    @staticmethod
    def lag1(parts: Mapping[str, np.ndarray], row: int = 0) -> float:
        """Pooled lag-1 autocorrelation in time of the residuals (per channel, per window)."""
        num = den = 0.0
        for v in parts.values():
            a = v[row]  # (W, T, d)
            num += float(np.sum(a[:, 1:] * a[:, :-1]))
            den += float(np.sum(a * a))
        return num / den if den > 0 else 0.0


def _lm_polish(obj: _Objective, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, steps: np.ndarray,
               iterations: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Levenberg-Marquardt with batched forward differences: returns x, residuals (W, m) and Jacobian
    (W, m, p) at x (every Jacobian column of one iteration is one batch with the centre)."""
    p = len(x)

    def jac_at(xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = np.where(xc + steps <= hi, steps, -steps)
        X = np.vstack([xc, xc + np.diag(h)])
        R = obj.residuals(X)
        return R[0], np.stack([(R[i + 1] - R[0]) / h[i] for i in range(p)], axis=-1)

    r, J = jac_at(x)
    cost = float(np.sum(r**2))
    for _ in range(iterations):
        Jf, rf = J.reshape(-1, p), r.reshape(-1)
        A, g = Jf.T @ Jf, Jf.T @ rf
        d = np.diag(A).copy()
        d[d <= 0] = 1.0
        lams = (1e-4, 1e-2, 1e-1, 1.0)
        trials = np.array([np.clip(x - np.linalg.solve(A + lam * np.diag(d), g), lo, hi) for lam in lams])
        costs = np.sum(obj.residuals(trials).reshape(len(trials), -1) ** 2, axis=1)
        best = int(np.argmin(costs))
        if not costs[best] < cost * (1 - 1e-6):
            break
        converged = costs[best] > cost * (1 - 1e-4)
        x = trials[best]
        r, J = jac_at(x)
        cost = float(np.sum(r**2))
        if converged:
            break
    return x, r, J


def _covariance(obj: _Objective, r: np.ndarray, J: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The larger (per parameter) of the AR(1)-inflated Gauss-Newton covariance and the window-clustered
    sandwich covariance."""
    W, _, p = J.shape
    Jf, rf = J.reshape(-1, p), r.reshape(-1)
    A = Jf.T @ Jf
    # a direction the data does not constrain (a zero Jacobian column: e.g. a latency anywhere between two tick
    # boundaries fits the same) gets a huge variance here, not the zero a pseudo-inverse would report
    A_inv = np.linalg.inv(A + 1e-9 * max(float(np.max(np.diag(A))), 1e-12) * np.eye(p))
    sigma2 = float(rf @ rf) / max(len(rf) - p, 1)
    rho = float(np.clip(obj.lag1(obj.parts(x[None])), 0.0, 0.98))
    obj.evals -= 1  # the lag check replays the fitted point again; not a new parameter set
    gn = (1 + rho) / (1 - rho) * sigma2 * A_inv
    if W < 2:
        return gn
    scores = np.einsum("wmp,wm->wp", J, r)  # per window J_w^T r_w
    meat = scores.T @ scores * W / (W - 1)
    sandwich = A_inv @ meat @ A_inv
    sd = np.sqrt(np.maximum(np.maximum(np.diag(gn), np.diag(sandwich)), 0.0))
    corr_src = sandwich if W >= 2 * p + 2 else gn
    d = np.sqrt(np.maximum(np.diag(corr_src), 1e-300))
    corr = corr_src / np.outer(d, d)
    return corr * np.outer(sd, sd)


def _split_halves(obj: _Objective, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, fd: np.ndarray
                  ) -> np.ndarray | None:
    """Half the difference between fits to the earlier and the later half of the windows: the spread of the
    estimate when the robot's operating point changes, which the covariances (exact model assumed) miss when
    the simulator is not exactly the robot. None with fewer than 4 windows."""
    active = obj.active
    if len(active) < 4:
        return None
    order = sorted(active.tolist(), key=lambda i: obj.win.origin[i] if obj.win.origin else i)
    halves = (np.array(sorted(order[:len(order) // 2])), np.array(sorted(order[len(order) // 2:])))
    fits = []
    for h in halves:
        obj.active = h
        fits.append(_lm_polish(obj, x, lo, hi, fd, iterations=4)[0])
    obj.active = active
    return np.abs(fits[0] - fits[1]) / 2


def identify(
    robot: str,
    data: Trajectories,
    *,
    params: Sequence[str] | None = None,
    budget: int = 300,
    max_latency: int = 5,
    seed: int = 0,
    backend: str = "mujoco",
    window_s: float | None | str = "auto",
    stride_s: float | None = None,
    max_windows: int | None = 64,
    threads: int = 2,
    warmup_steps: int | None = None,
) -> SysIdResult:
    """Fit ``params`` (DR target names, optionally 'target:elem1+elem2', and 'action_latency') to ``data``.

    ``budget``: the parameter sets one CMA-ES search may replay. When latency is fitted, a search of
    ``budget // 2`` starts from each whole-step latency and the best goes on with ``budget // 2``, about
    ``(max_latency + 2) budget / 2`` in all; the latency scan and the polish add about ``max_latency + 6 (n + 5)``
    more. ``window_s``: replay window length; "auto" = 0.5 s for closed-loop data, whole episodes for open-loop
    logs; None = whole episodes. ``max_windows`` keeps that many windows spread evenly over the data (the cost of
    a fit is proportional to it)."""
    import cma

    t_start = time.perf_counter()
    if backend != "mujoco":
        raise TetherError(f"sysid replays in MuJoCo; backend {backend!r} is not supported for identification")
    if not isinstance(budget, (int, np.integer)) or budget < 1:
        raise TetherError(f"sysid budget {budget!r}; expected a positive whole number of simulations")
    if not isinstance(max_latency, (int, np.integer)) or not 0 <= max_latency <= 50:
        raise TetherError(f"max latency {max_latency!r}; expected 0..50 control steps")
    if data.command_mode not in COMMAND_MODES:
        raise TetherError(f"command mode {data.command_mode!r}; expected one of {', '.join(COMMAND_MODES)}")
    names = list(params) if params else list(DEFAULT_PARAMS.get(robot, ("actuator_gain", "joint_damping", LATENCY)))
    specs = [ParamSpec.parse(n) for n in names]
    fit_latency = any(p.target == LATENCY for p in specs)
    from tether.sim.robots import make_robot

    make_robot(robot)  # unknown robot -> one clear error before any work
    rp = Replayer(robot, [p for p in specs if p.target != LATENCY], data.command_mode, threads=threads)
    if data.control_period is not None and abs(data.control_period - rp.period) > 1e-6 * rp.period + 1e-9:
        raise TetherError(
            f"log control period {data.control_period:.6g} s does not match robot {robot}'s "
            f"{rp.period:.6g} s ({rp.spec.control_rate_hz:g} Hz); resample the log or pick the right robot"
        )
    if data.commands[0].shape[1] != rp.command_size:
        what = "actuators" if data.command_mode == "actuator" else f"command channels in {data.command_mode} mode"
        raise TetherError(f"log commands have {data.commands[0].shape[1]} channels; robot {robot} has "
                          f"{rp.command_size} {what}")
    if window_s == "auto":
        window_s = DEFAULT_WINDOW_S if data.closed_loop else None
    steps = None
    if window_s is not None:
        window_s = float(window_s)
        steps = int(round(window_s / rp.period))
        if not (np.isfinite(window_s) and steps >= 2):
            raise TetherError(f"replay window {window_s} s; expected at least 2 control periods "
                              f"({2 * rp.period:g} s)")
    if steps is None and data.timing is not None:
        raise TetherError("a recording on the robot's own tick times is replayed in windows; pass a window length")
    if stride_s is not None and not (np.isfinite(float(stride_s)) and float(stride_s) > 0):
        raise TetherError(f"window stride {stride_s} s; expected a positive number of seconds")
    stride = None if stride_s is None else max(1, int(round(float(stride_s) / rp.period)))
    history = (max_latency if fit_latency else 0) + 1
    burn = warmup_steps if warmup_steps is not None else (WARMUP_STEPS if rp.na or data.command_mode ==
                                                          "thrust_body_rates" else 0)
    # A dataset does not say which commands the robot ignored (a PX4 vehicle before offboard); the rate
    # controller's integral estimate would carry them into every later window, so the first round estimates it
    # from each window's warm-up only and the second, after the windows the fit cannot explain are cut out,
    # from the stretches that remain.
    two_rounds = not data.mode_known and data.command_mode == "thrust_body_rates" and steps is not None

    def build(d: Trajectories, integral: bool) -> tuple[Windows, list[str]]:
        w, nts = make_windows(rp, d, window_steps=steps, history=history, stride=stride, burn=burn,
                              integral_history=integral)
        if max_windows is not None and w.count > max_windows:
            keep = np.unique(np.linspace(0, w.count - 1, int(max_windows)).round().astype(int))
            nts.append(f"{len(keep)} of {w.count} windows used (spread evenly; --max-windows)")
            w = w.subset(keep)
        return w, nts

    windows, notes = build(data, not two_rounds)
    notes = list(data.notes) + notes
    if windows.tick_time is not None and windows.tick_band > TICK_BAND_S:
        notes.append(f"the robot's loop jitters (its tick intervals): a command arriving within "
                     f"{1e3 * windows.tick_band:.1f} ms of a tick counts partly as the one in force")
    n = len(rp.params)
    obj = _Objective(rp, windows, n, fit_latency, float(max_latency))
    zero = np.zeros(n)
    lo = np.array([-LOG_SCALE_BOUND] * n + ([0.0] if fit_latency else []))
    hi = np.array([LOG_SCALE_BOUND] * n + ([float(max_latency)] if fit_latency else []))

    # Latency scan at nominal scales (one batch) seeds the search, and decides which windows to trust.
    lats = list(range(max_latency + 1)) if fit_latency else [0]
    X0 = np.array([np.r_[zero, [L] if fit_latency else []] for L in lats])
    R0 = obj.residuals(X0)
    sse = np.sum(R0**2, axis=(1, 2))
    scan = {L: float(np.sqrt(s / R0[0].size)) for L, s in zip(lats, sse)} if fit_latency else {}
    best = int(np.argmin(sse))

    def screen(R: np.ndarray) -> np.ndarray:
        rms = np.sqrt(np.mean(R**2, axis=-1))
        return np.flatnonzero(rms <= max(OUTLIER * np.median(rms), OUTLIER_FLOOR))

    obj.active = screen(R0[best])
    x = X0[best].astype(float)
    log_std, corr, lat_std = np.zeros(0), np.zeros((0, 0)), 0.0
    if len(x):
        def search(x0: np.ndarray, sigma: float, evals: int) -> np.ndarray:
            opts = {"seed": seed + 1, "maxfevals": int(evals), "bounds": [list(lo), list(hi)], "verbose": -9,
                    "tolfun": 1e-10, "tolx": 1e-5, "CMA_stds": [1.0] * n + ([2.0] if fit_latency else [])}
            es = cma.CMAEvolutionStrategy(x0, sigma, opts)
            while not es.stop():
                xs = np.array(es.ask())
                R = obj.residuals(np.clip(xs, lo, hi))
                es.tell(list(xs), [float(v) for v in np.sum(R**2, axis=(1, 2))])
            return np.clip(np.asarray(es.result.xbest, dtype=float), lo, hi)

        multistart = fit_latency and len(lats) > 1
        if multistart:
            # The nominal scan confounds delay with slow actuators: at nominal lag, a motor lag x3.5 replays best
            # as two more steps of delay, and a search seeded there stays in that valley (lag x0.72, 100 ms, on
            # a served quadrotor whose truth was x3.5, 40 ms; residual 0.47 against 0.35 at the truth's basin).
            # A search from every whole-step latency (half the budget each: a quarter did not leave the start's
            # valley) finds the basin, and the search goes on from the best of them with the other half.
            def cost(z: np.ndarray) -> float:
                return float(np.sum(obj.residuals(z[None]) ** 2))

            starts = [search(X0[i].astype(float), 0.3, max(budget // 2, 20)) for i in range(len(lats))]
            x = min(starts, key=cost)
        x = search(x, 0.3, max(budget // 3, 1) if two_rounds else max(budget // 2 if multistart else budget, 1))
        fd = np.r_[[0.01] * n, [0.05] * int(fit_latency)]
        if not two_rounds:
            x, r, J = _lm_polish(obj, x, lo, hi, fd)
        # re-check the set-aside windows at the fit: a window the nominal model could not explain may be fine
        active = screen(obj.residuals(x[None], np.arange(windows.count))[0])
        if two_rounds:
            executed = ([np.asarray(e, bool).copy() for e in data.executed] if data.executed is not None
                        else [np.ones(len(c), bool) for c in data.commands])
            aside = set(range(windows.count)) - set(active.tolist())
            for i in sorted(aside):
                e, t = windows.origin[i]
                executed[e][max(t - burn, 0):t + windows.steps] = False
            if aside:
                notes.append(f"{len(aside)} windows the fit cannot explain cut from the data (commands the robot "
                             f"did not execute?); the rate controller's integral restarts after them")
            windows, more = build(replace(data, executed=executed), True)
            notes += more
            evals, sims = obj.evals, obj.sims
            obj = _Objective(rp, windows, n, fit_latency, float(max_latency))
            obj.evals, obj.sims = evals, sims
            obj.active = screen(obj.residuals(x[None], np.arange(windows.count))[0])
            x = search(x, 0.15, max(budget - budget // 3, 1))
            x, r, J = _lm_polish(obj, x, lo, hi, fd)
        elif not np.array_equal(active, obj.active):
            obj.active = active
            x, r, J = _lm_polish(obj, x, lo, hi, fd)
        cov = _covariance(obj, r, J, x)
        std = np.minimum(np.sqrt(np.maximum(np.diag(cov), 0.0)), hi - lo)  # at most the search range
        dd = np.where(std > 0, std, 1.0)
        full_corr = np.clip(cov / np.outer(dd, dd), -1.0, 1.0)
        split = _split_halves(obj, x, lo, hi, fd)
        if split is not None:
            std = np.maximum(std, split)
        log_std, corr = std[:n], full_corr[:n, :n]
        if fit_latency:
            lat_std = float(std[n] * rp.period)
    scales, delays = obj.decode(x[None])
    parts1 = obj.parts(x[None])
    r1 = np.concatenate([v[0].ravel() for v in parts1.values()])
    # the before figure on the same (kept) windows as the after figure
    parts0 = obj.parts(np.r_[zero, [0.0] if fit_latency else []][None])
    before = float(np.sqrt(np.mean(np.concatenate([v[0].ravel() for v in parts0.values()]) ** 2)))
    per_key0 = obj.per_key_rms(parts0)
    aside = windows.count - len(obj.active)
    if aside:
        notes.append(f"{aside} of {windows.count} windows set aside: replay error > {OUTLIER:g}x the median window's "
                     f"at the fit (the robot did something the commands do not explain)")
    loop_s, loop_steps = None, None
    if fit_latency and data.timing is not None:
        lat = float(delays[0]) * rp.dt
        # every latency between the two nearest (tick - send) boundaries assigns each command to the same tick:
        # the data cannot tell them apart, so that interval is the latency's uncertainty
        gaps = np.concatenate([(t[0][:, None] - t[1][None, :]).ravel() for t in data.timing if t is not None])
        below, above = gaps[gaps <= lat], gaps[gaps > lat]
        if len(below) and len(above):
            lat_std = max(lat_std, float(above.min() - below.max()) / np.sqrt(12))
        d = np.concatenate([t[1] + lat - t[2] for t in data.timing if t is not None])
        loop_s, loop_steps, stalls = loop_latency(d, rp.period)
        if stalls:
            notes.append(f"{stalls} commands came more than {STALL_STEPS} control steps later than the median "
                         f"after their state (the controller or the link stalled): left out of the latency range")
    return SysIdResult(
        robot=robot, params=rp.params, nominal={t: v.copy() for t, v in rp.nominal.items()}, log_scale=scales[0],
        log_std=log_std, correlation=corr, latency_s=float(delays[0]) * rp.dt, latency_std_s=lat_std,
        residual_before=before, residual_after=float(np.sqrt(np.mean(r1**2))), residual_per_key_before=per_key0,
        residual_per_key_after=obj.per_key_rms(parts1), evaluations=obj.evals, control_period=rp.period,
        fit_latency=fit_latency, latency_scan=scan, windows=len(obj.active), windows_set_aside=aside,
        window_s=window_s, simulations=obj.sims, wall_s=time.perf_counter() - t_start, notes=notes,
        command_mode=data.command_mode, history=history, warmup_steps=burn,
        window_origins=[windows.origin[i] for i in obj.active], loop_latency_s=loop_s,
        loop_latency_steps=loop_steps,
    )
