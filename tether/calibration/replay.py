"""Batched replay of recorded commands in MuJoCo: many short windows under many parameter sets in one call.

Why windows: a closed-loop recording replayed open loop for seconds diverges (the policy corrected errors the
replay cannot), and a fit to a diverged replay is wrong (transfer-diagnosis: mass x2.14 for a true x1.4).
Each window starts from the measured state and runs ``L`` control steps; every window of every candidate
parameter set is one independent simulation, so a batch of candidates x windows runs together.

How the robot executes a command (``command_mode``), as the real robot's own stack does:
- ``actuator``: the command is the MuJoCo actuator input (rotor thrusts in N, a legged robot's joint targets
  tracked by the model's PD actuators, Unitree-style).
- ``thrust_body_rates``: collective thrust + body-rate setpoints through the onboard rate controller
  (``tether.sim.robots.quadrotor.RateController``, PX4's role) at the physics rate: a closed loop inside the
  replay, run here for the whole batch at once (the sim's batched ``RateController``).
- ``joint_position`` (arm): joint targets as ros2_control receives them; the controller limits each step's
  change to the joint speed limits (as ``tether.sim.tasks.arm`` does) and the fingers hold closed.

Stepping: open-loop modes use ``mujoco.rollout`` (one call per batch: one model per candidate, the GIL
released, ``threads`` worker threads); the rate-controller mode steps each MjData in a loop with the
controller vectorised across the batch (on the 0.03 kg quadrotor one ``mj_step`` costs ~2 µs, so per-call
overhead decides: a ``rollout`` call per physics step measured 1.5x slower than this loop).

Latency is continuous, in physics steps: the command of control step c takes effect at ``c * substeps + d``;
the physics step in which the switch falls runs the blend of the two commands (weights = the fractions of the
step before and after), which keeps the replay error smooth in ``d`` so latency is fitted with the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import mujoco
import numpy as np

from tether.errors import TetherError
from tether.hardware.frames import projected_gravity, quat_to_rotmat

COMMAND_MODES = ("actuator", "thrust_body_rates", "joint_position")
TICK_BAND_S = 0.001  # event timing: a command arriving within this of a robot tick counts partly (at least)
STATE_KEYS = ("joint_pos", "joint_vel", "base_pos", "base_quat", "base_lin_vel", "base_ang_vel",
              "projected_gravity", "base_lin_vel_body")
FULL = mujoco.mjtState.mjSTATE_FULLPHYSICS


# ---------------------------------------------------------------------- commands over time
def delay_schedule(commands: np.ndarray, history: int, steps: int, substeps: int, delay: float,
                   jitter: float = 0.0) -> np.ndarray:
    """Per physics step, the command in force: (W, steps * substeps, nu) from ``commands`` (W, history + steps,
    nu) whose row ``history`` is the window's first command, delayed by ``delay`` physics steps (>= 0).

    ``jitter`` (physics steps, 0..substeps): the switch to each command happens at a time spread uniformly over
    that width around ``c * substeps + delay``; the schedule is the expected command. That is what a robot whose
    loop is not locked to the controller's does to the commands arriving near its tick boundary: some are
    applied a tick early or late."""
    delay = max(float(delay), 0.0)
    w = float(np.clip(jitter, 0.0, substeps))
    if delay + w / 2 > history * substeps:
        raise TetherError(f"delay {delay:g} physics steps needs more than the {history} commands of history a "
                          f"window carries")
    j = np.arange(steps * substeps, dtype=float)
    # the newest command whose switch can begin before the end of physics step j
    new = np.floor((j + 1 - delay + w / 2) / substeps).astype(int)
    a = new * substeps + delay - w / 2  # its switch window [a, a + w]

    def F(t: np.ndarray) -> np.ndarray:  # integral of P(switched by u) du from a to t
        if w <= 1e-9:
            return np.maximum(t - a, 0.0)
        u = np.clip(t - a, 0.0, None)
        return np.where(u <= w, u * u / (2 * w), u - w / 2)

    f_new = np.clip(F(j + 1) - F(j), 0.0, 1.0)
    hi = commands.shape[1] - 1
    b = commands[:, np.clip(history + new, 0, hi)]
    o = commands[:, np.clip(history + new - 1, 0, hi)]
    return (1.0 - f_new)[None, :, None] * o + f_new[None, :, None] * b


def tick_schedule(commands: np.ndarray, cmd_time: np.ndarray, tick_time: np.ndarray, latency: float,
                  band: float = TICK_BAND_S) -> tuple[np.ndarray, np.ndarray]:
    """Per robot tick, the command in force when the robot's loop ticks at its own times (event timing):
    (W, T, nu) from ``commands`` (W, M, nu) sent at ``cmd_time`` (W, M, s; +inf pads) and ticks at ``tick_time``
    (W, T, s, the same clock): the newest command that arrived (sent + ``latency``) before the tick. A command
    arriving within ``band`` of a tick counts partly (its expected value under a little transit jitter), which
    keeps the replay error continuous in the latency. Also returns (W, T) bool: some command had arrived."""
    W, T = tick_time.shape
    out = np.empty((W, T, commands.shape[2]))
    have = np.zeros((W, T), bool)
    for w in range(W):
        arrive = cmd_time[w] + latency
        n = np.searchsorted(arrive - band / 2, tick_time[w], side="right") - 1  # newest possibly arrived
        nn = np.clip(n, 0, None)
        p = np.clip((tick_time[w] - arrive[nn]) / band + 0.5, 0.0, 1.0)
        p = np.where(n >= 1, p, 1.0)
        prev = commands[w, np.clip(n - 1, 0, None)]
        out[w] = p[:, None] * commands[w, nn] + (1 - p[:, None]) * prev
        have[w] = (n >= 1) | ((n == 0) & (p >= 1.0))
    return out, have


def tick_band(tick_times: Sequence[np.ndarray], period: float) -> float:
    """The width of ``tick_schedule``'s band for a recording: as wide as the robot loop's own timing jitter
    (a uniform band with the spread of the ticks' jitter: sqrt(6) x the std of the tick intervals, which add
    two ticks' jitter; a missed slot left out), at least ``TICK_BAND_S`` and at most a quarter period.

    Why: a command's arrival jitters as much as the loop that reads it (the same loaded machine schedules
    both). With a fixed 1 ms band, a recording whose commands arrive near the ticks' phase replays with a cliff
    in the error at that latency; the fit sat on its edge and made up the misassigned commands with motor lag
    (x1.16 of the truth on a served quadrotor recorded under load; x1.04 with the measured band)."""
    d = np.concatenate([np.diff(np.asarray(t, dtype=float)) for t in tick_times if len(t) > 1] or [np.zeros(0)])
    if len(d) < 2:
        return TICK_BAND_S
    sigma = float(np.std(d[d < 1.5 * period]))  # a skipped slot (a tick late by a period) is not jitter
    return float(np.clip(np.sqrt(6.0) * sigma, TICK_BAND_S, period / 4))


def rate_limit(targets: np.ndarray, start: np.ndarray, max_step: np.ndarray) -> np.ndarray:
    """The targets a joint-position controller executes when each step's change is limited to ``max_step``,
    scaling the whole step (not joint by joint, so the motion keeps its direction), from ``start``."""
    out = np.empty_like(targets)
    q = np.asarray(start, dtype=float).copy()
    for k, want in enumerate(targets):
        step = want - q
        step *= min(1.0, float(np.min(max_step / np.maximum(np.abs(step), 1e-12))))
        q = q + step
        out[k] = q
    return out


def rotation_increments(quat: np.ndarray) -> np.ndarray:
    """(T, 4) attitudes (w x y z) -> (T-1, 3) body-frame rotation vectors between consecutive samples: the
    integral of the body rates over each step."""
    q = np.asarray(quat, dtype=float)
    a, b = q[:-1], q[1:]
    # r = a^-1 * b (unit quaternions: conjugate of a)
    w = a[:, 0] * b[:, 0] + np.sum(a[:, 1:] * b[:, 1:], axis=1)
    v = a[:, :1] * b[:, 1:] - b[:, :1] * a[:, 1:] - np.cross(a[:, 1:], b[:, 1:])
    v = np.where(w[:, None] < 0, -v, v)
    w = np.abs(w)
    n = np.linalg.norm(v, axis=1)
    angle = 2 * np.arctan2(n, w)
    return v * np.where(n > 1e-12, angle / np.maximum(n, 1e-12), 2.0)[:, None]


def integral_before(windows: Windows, substeps: int, dt: float, delays: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """The rate controller's integral (deg s) at the start of each window's warm-up, (K * W, 3) for K candidate
    delays (physics steps): the integral of (setpoint - body rate) since the executed stretch began, with the
    setpoints as each delay schedules them and the body rates' integral from the measured attitude; clipped per
    control step as the controller clips per physics step. It cannot be measured and never forgets, so a
    warm-up alone does not recover it. Steps before the stretch's first command took effect count nothing:
    the robot was following something else then (its hold controller, a neutral command), and that part is
    taken as settled."""
    W = windows.count
    delays = np.asarray(delays, dtype=float).reshape(-1)
    K = len(delays)
    if windows.pre_commands is None or windows.pre_rotation is None or windows.pre_rotation.shape[1] == 0:
        return np.zeros((K * W, 3))
    P = windows.pre_rotation.shape[1]
    err = np.empty((K, W, P, 3))
    steps = np.arange(P)[None, :]
    for k, d in enumerate(delays):
        if windows.pre_tick_time is not None:
            u, have = tick_schedule(windows.pre_commands, windows.pre_cmd_time, windows.pre_tick_time, d * dt,
                                    windows.tick_band)
            err[k] = np.degrees(u[..., 1:4] * substeps * dt - windows.pre_rotation)
            err[k][~have | (steps < windows.pre_start[:, None])] = 0.0
            continue
        sched = delay_schedule(windows.pre_commands, windows.pre_history, P, substeps, d)[..., 1:4]
        err[k] = np.degrees(sched.reshape(W, P, substeps, 3).sum(axis=2) * dt - windows.pre_rotation)
        first = windows.pre_start + int(np.ceil(d / substeps - 1e-9))  # first step driven by the stretch
        err[k][steps < first[:, None]] = 0.0
    err = err.reshape(K * W, P, 3)
    integral = np.zeros((K * W, 3))
    for t in range(P):
        integral = np.minimum(np.maximum(integral + err[:, t], -limit), limit)
    return integral


# ---------------------------------------------------------------------- windows
@dataclass
class Windows:
    """Replay windows: ``commands`` (W, history + steps, nu) in command space, measured states per key
    (W, steps + 1, d) with row 0 the start state, and the full MuJoCo start state (W, nstate).

    ``burn`` of the history steps (with their measured states ``warm``, (W, burn, nstate)) are a warm-up:
    the replay runs them with the state reset to the measured one at every control step, so the hidden
    states a measurement does not show (rotor speeds behind their lag, the rate controller's integral)
    arrive at the window start consistent with the candidate parameters and the real command history."""

    commands: np.ndarray
    measured: dict[str, np.ndarray]
    start: np.ndarray
    history: int
    origin: list[tuple[int, int]] = field(default_factory=list)  # (episode, first step) per window
    burn: int = 0
    warm: np.ndarray | None = None
    # rate-controller integral before the warm-up (see ``integral_before``): per window the commands since the
    # executed stretch began, (W, pre_history + P, 4), the measured body rotation per control step (W, P, 3),
    # and where in those P steps the stretch began (W,)
    pre_commands: np.ndarray | None = None
    pre_rotation: np.ndarray | None = None
    pre_history: int = 0
    pre_start: np.ndarray | None = None
    # event timing (the robot's own tick times known, ``tick_schedule``): per window the send time of every
    # command row (W, M) and the time of every tick of the warm-up and the window (W, burn + steps), seconds
    # from the window's start state; the same for the integral's stretch (pre_cmd_time (W, Mp), pre_tick_time
    # (W, P)). None: commands on the control grid (``delay_schedule``).
    cmd_time: np.ndarray | None = None
    tick_time: np.ndarray | None = None
    pre_cmd_time: np.ndarray | None = None
    pre_tick_time: np.ndarray | None = None
    steps_override: int | None = None
    tick_band: float = TICK_BAND_S  # event timing: ``tick_schedule``'s band (``tick_band`` of the recording)

    @property
    def count(self) -> int:
        return int(self.commands.shape[0])

    @property
    def steps(self) -> int:
        if self.steps_override is not None:
            return int(self.steps_override)
        return int(self.commands.shape[1] - self.history)

    def subset(self, idx: np.ndarray) -> Windows:
        idx = np.asarray(idx)
        idx = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(int)
        pick = (lambda a: None if a is None else a[idx])
        return Windows(self.commands[idx], {k: v[idx] for k, v in self.measured.items()}, self.start[idx],
                       self.history, [self.origin[i] for i in idx] if self.origin else [], self.burn,
                       pick(self.warm), pick(self.pre_commands), pick(self.pre_rotation), self.pre_history,
                       pick(self.pre_start), pick(self.cmd_time), pick(self.tick_time), pick(self.pre_cmd_time),
                       pick(self.pre_tick_time), self.steps_override, self.tick_band)


# ---------------------------------------------------------------------- the replayer
class Replayer:
    """A robot model from ``tether.sim`` in MuJoCo, with a pool of parameter-set copies for batched replay.

    ``params`` are ``tether.calibration.sysid.ParamSpec``s (DR targets, optionally some elements); a candidate
    is a vector of log-scales on their nominal values, applied through the backend's ``set_param`` exactly as
    domain randomisation applies them."""

    def __init__(self, robot: str, params: Sequence[object], command_mode: str = "actuator", *,
                 threads: int = 2, scene: object = None) -> None:
        from tether.sim.backends import make_backend
        from tether.sim.robots import make_robot
        from tether.sim.robots.base import Scene

        if command_mode not in COMMAND_MODES:
            raise TetherError(f"command mode {command_mode!r}; expected one of {', '.join(COMMAND_MODES)}")
        self.robot = robot
        self.spec = make_robot(robot)
        self.scene = scene if scene is not None else Scene()
        self._make = lambda: make_backend("mujoco", self.spec, self.scene)
        self.backends = [self._make()]
        b0 = self.backends[0]
        self.model = b0.model
        self.command_mode = command_mode
        self.substeps = self.spec.substeps
        self.dt = self.spec.physics_dt
        self.period = 1.0 / self.spec.control_rate_hz
        self.threads = max(1, int(threads))
        self.params = list(params)
        self.nominal: dict[str, np.ndarray] = {}
        self.index: dict[str, np.ndarray] = {}
        for p in self.params:
            names = b0.param_elements(p.target)
            if not names:
                raise TetherError(f"robot {robot} has nothing for sysid parameter {p.target!r} to act on")
            missing = [e for e in p.elements if e not in names]
            if missing:
                raise TetherError(f"sysid parameter {p.name}: unknown elements {missing}; valid: {names}")
            self.index[p.name] = np.array([names.index(e) for e in p.elements]) if p.elements else np.arange(len(names))
            self.nominal.setdefault(p.target, b0.get_param(p.target).copy())
            if not np.any(self.nominal[p.target][self.index[p.name]]):
                raise TetherError(
                    f"sysid parameter {p.name}: robot {robot}'s nominal value is 0 for every element, so a scale "
                    f"on it cannot change the model; give the model a non-zero nominal or fit another parameter")
        m = self.model
        self.nq, self.nv, self.nu, self.na = m.nq, m.nv, m.nu, m.na
        self.nstate = mujoco.mj_stateSize(m, FULL)
        self.act_adr = mujoco.mj_stateSize(m, mujoco.mjtState.mjSTATE_TIME | mujoco.mjtState.mjSTATE_QPOS
                                           | mujoco.mjtState.mjSTATE_QVEL)
        self.qpos_adr, self.qvel_adr = 1, 1 + m.nq
        jid = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n) for n in self.spec.joints]
        self.jq = np.array([m.jnt_qposadr[j] for j in jid], dtype=int)
        self.jv = np.array([m.jnt_dofadr[j] for j in jid], dtype=int)
        free = [j for j in range(m.njnt) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
        self.fq = int(m.jnt_qposadr[free[0]]) if self.spec.floating_base and free else None
        self.fv = int(m.jnt_dofadr[free[0]]) if self.spec.floating_base and free else None
        self.stateful = np.flatnonzero(m.actuator_actadr >= 0)
        if command_mode == "thrust_body_rates":
            from tether.sim.robots.quadrotor import RateController

            if self.fq is None or self.nu != 4:
                raise TetherError(f"thrust_body_rates commands need a quadrotor; robot {robot} is not one")
            self._rc = RateController(self.spec.actuators.max_thrust)
        self.command_size = {"thrust_body_rates": 4, "joint_position": len(self.spec.joints) - self._extra_joints(),
                             "actuator": self.nu}[command_mode]

    def _extra_joints(self) -> int:
        """Joints the policy does not command in joint_position mode (an arm's fingers)."""
        from tether.sim.robots import panda

        return len(panda.FINGER_JOINTS) if self.robot == "arm" else 0

    # ------------------------------------------------------------------ parameters
    def _backend(self, k: int) -> object:
        while len(self.backends) <= k:
            self.backends.append(self._make())
        return self.backends[k]

    def apply(self, k: int, log_scales: np.ndarray) -> mujoco.MjModel:
        """Model copy ``k`` with nominal x exp(log_scales) (unnamed targets stay nominal)."""
        b = self._backend(k)
        values = {t: v.copy() for t, v in self.nominal.items()}
        for p, s in zip(self.params, np.asarray(log_scales, dtype=float)):
            values[p.target][self.index[p.name]] *= np.exp(s)
        for t, v in values.items():
            b.set_param(t, v)
        return b.model

    # ------------------------------------------------------------------ commands -> actuator inputs
    def executed(self, commands: np.ndarray, start_joint_pos: np.ndarray | None) -> np.ndarray:
        """A whole episode's commands (N, command_size) as the robot's controller turns them into actuator
        inputs before any per-step feedback (arm: rate limiting, fingers closed); other modes unchanged."""
        commands = np.asarray(commands, dtype=float)
        if commands.ndim != 2 or commands.shape[1] != self.command_size:
            raise TetherError(f"commands have {commands.shape[-1]} channels; robot {self.robot} in "
                              f"{self.command_mode} mode takes {self.command_size}")
        if self.command_mode != "joint_position":
            return commands
        from tether.sim.robots import panda

        n = self.command_size
        lo, hi = self.spec.joint_lower[:n], self.spec.joint_upper[:n]
        want = np.clip(commands, lo, hi)
        start = want[0] if start_joint_pos is None else np.asarray(start_joint_pos, dtype=float)[:n]
        limited = rate_limit(want, start, panda.VELOCITY_LIMIT[:n] / self.spec.control_rate_hz) \
            if self.robot == "arm" else want
        return np.concatenate([limited, np.zeros((len(limited), self.nu - n))], axis=1)

    # ------------------------------------------------------------------ states
    def start_state(self, init: Mapping[str, np.ndarray]) -> np.ndarray:
        """Full MuJoCo state (nstate,) from measured values by name; a floating base whose position is not
        measured (a legged robot) stands with its lowest foot on the ground, its linear velocity the state
        estimator's (``base_lin_vel_body``, odometry) where recorded, else from the stance feet (taken not to
        slide)."""
        b = self.backends[0]
        spec = self.spec
        q = init.get("joint_pos", spec.default_joint_pos)
        qn = len(spec.joints)
        if q is not None and len(q) < qn:  # an arm's fingers: closed
            q = np.concatenate([q, np.zeros(qn - len(q))])
        qd = init.get("joint_vel")
        if qd is not None and len(qd) < qn:
            qd = np.concatenate([qd, np.zeros(qn - len(qd))])
        quat = init.get("base_quat")
        if quat is None and "projected_gravity" in init:
            quat = gravity_to_quat(init["projected_gravity"])
        pos, lin = init.get("base_pos"), init.get("base_lin_vel")
        if lin is None and "base_lin_vel_body" in init and quat is not None:  # a state estimator's, in the body frame
            lin = quat_to_rotmat(quat) @ np.asarray(init["base_lin_vel_body"], dtype=float)
        b.set_command(np.zeros(self.nu))
        b.reset_state(q, qd, pos if pos is not None else np.zeros(3), quat, lin, init.get("base_ang_vel"))
        if spec.floating_base and pos is None and spec.feet:
            pos, lin_est = self._stand_on_ground(b)
            b.reset_state(q, qd, pos, quat, lin if lin is not None else lin_est, init.get("base_ang_vel"))
        s = np.empty(self.nstate)
        mujoco.mj_getState(self.model, b.data, s, FULL)
        return s

    def _stand_on_ground(self, b: object) -> tuple[np.ndarray, np.ndarray]:
        m, d = self.model, b.data
        feet = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f) for f in self.spec.feet]
        radius = []
        for f in feet:
            gs = [g for g in range(m.ngeom) if m.geom_bodyid[g] == f]
            radius.append(float(m.geom_size[gs[0], 0]) if gs else 0.0)
        z = np.array([d.xpos[f][2] for f in feet]) - np.array(radius)
        stance = z <= z.min() + 0.01
        vel = np.zeros((len(feet), 6))
        for i, f in enumerate(feet):
            mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_BODY, f, vel[i], 0)
        return np.array([0.0, 0.0, -z.min()]), -vel[stance, 3:].mean(axis=0)

    def read(self, states: np.ndarray, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Named values from full states (..., nstate)."""
        out: dict[str, np.ndarray] = {}
        qp = states[..., self.qpos_adr:self.qpos_adr + self.nq]
        qv = states[..., self.qvel_adr:self.qvel_adr + self.nv]
        for k in keys:
            if k == "joint_pos":
                out[k] = qp[..., self.jq]
            elif k == "joint_vel":
                out[k] = qv[..., self.jv]
            elif k == "base_pos":
                out[k] = qp[..., self.fq:self.fq + 3]
            elif k == "base_quat":
                out[k] = qp[..., self.fq + 3:self.fq + 7]
            elif k == "base_lin_vel":
                out[k] = qv[..., self.fv:self.fv + 3]
            elif k == "base_ang_vel":
                out[k] = qv[..., self.fv + 3:self.fv + 6]
            elif k == "projected_gravity":
                out[k] = projected_gravity(qp[..., self.fq + 3:self.fq + 7])
            elif k == "base_lin_vel_body":  # R^T v: the world velocity in the body frame
                R = quat_to_rotmat(qp[..., self.fq + 3:self.fq + 7])
                out[k] = np.einsum("...ji,...j->...i", R, qv[..., self.fv:self.fv + 3])
            else:
                raise TetherError(f"unknown state key {k!r}; expected one of {', '.join(STATE_KEYS)}")
        return out

    # ------------------------------------------------------------------ replay
    def run(self, windows: Windows, log_scales: np.ndarray, delays: np.ndarray, keys: Sequence[str]
            ) -> dict[str, np.ndarray]:
        """Simulated states per key, (K, W, steps + 1, d), for K candidates (log-scales (K, n), delays (K,)
        in physics steps) on every window; row 0 is the start state."""
        log_scales = np.atleast_2d(np.asarray(log_scales, dtype=float))
        delays = np.asarray(delays, dtype=float).reshape(-1)
        K, W, L, S = len(log_scales), windows.count, windows.steps, self.substeps
        burn = windows.burn
        models = [self.apply(k, log_scales[k]) for k in range(K)]
        ctrl = np.concatenate([self.schedule(windows, d) for d in delays])
        start = np.tile(windows.start, (K, 1))
        per_row = [models[k] for k in range(K) for _ in range(W)]
        if self.command_mode == "thrust_body_rates":
            warm = None if windows.warm is None else np.tile(windows.warm, (K, 1, 1))
            integral = integral_before(windows, S, self.dt, delays, self._rc.I_LIMIT)
            states = self._run_rate_loop(per_row, start, ctrl, burn, warm, integral)
        else:
            if self.na:  # rotor lag: settled at the first input of the warm-up, then filtered through it
                start[:, self.act_adr + self.model.actuator_actadr[self.stateful]] = self._filtered_act(
                    per_row, ctrl[:, :max(burn * S, 1)])
            states = self._run_open_loop(per_row, start, ctrl[:, burn * S:])
        states = np.concatenate([start[:, None], states], axis=1).reshape(K, W, L + 1, -1)
        return self.read(states, keys)

    def schedule(self, windows: Windows, delay: float) -> np.ndarray:
        """Per physics step of warm-up + window, the command in force, (W, (burn + steps) * substeps, nu), for a
        delay in physics steps: on the control grid, or by the robot's own tick times (held for the tick)."""
        S, burn, L = self.substeps, windows.burn, windows.steps
        if windows.tick_time is not None:
            u, _ = tick_schedule(windows.commands, windows.cmd_time, windows.tick_time, delay * self.dt,
                                 windows.tick_band)
            return np.repeat(u, S, axis=1)
        return delay_schedule(windows.commands, windows.history - burn, burn + L, S, delay)

    def _filtered_act(self, models: list, ctrl: np.ndarray) -> np.ndarray:
        """Rotor states after ``ctrl`` (B, T, nu) through each model's first-order lag (MuJoCo's filterexact:
        act += (u - act) (1 - exp(-dt / tau))), starting settled at the first input."""
        st = self.stateful
        u = ctrl[..., st]
        act = u[:, 0].copy()
        if u.shape[1] > 1:
            tau = np.array([m.actuator_dynprm[st, 0] for m in models])
            a = 1.0 - np.exp(-self.dt / np.maximum(tau, 1e-9))
            for t in range(u.shape[1]):
                act += (u[:, t] - act) * a
        return act

    def _run_open_loop(self, models: list, start: np.ndarray, ctrl: np.ndarray) -> np.ndarray:
        from mujoco import rollout

        B, T, _ = ctrl.shape
        datas = [mujoco.MjData(self.model) for _ in range(min(self.threads, B))]
        out = np.empty((B, T, self.nstate))
        rollout.rollout(models, datas, start, np.ascontiguousarray(ctrl), state=out, nstep=T,
                        persistent_pool=self.threads > 1)
        return out[:, self.substeps - 1::self.substeps]

    def _run_rate_loop(self, models: list, start: np.ndarray, setpoints: np.ndarray, burn: int,
                       warm: np.ndarray | None, integral: np.ndarray) -> np.ndarray:
        """The rate controller in the loop: one ``mujoco.rollout`` call per physics step for the whole batch
        (every row's state stays in one array, so the controller, the warm-up resets and the readout are
        vectorised; only the physics runs per row, in the rollout's threads)."""
        from mujoco import rollout

        B, T, _ = setpoints.shape
        S = self.substeps
        state = np.ascontiguousarray(start if not burn else warm[:, 0], dtype=np.float64).copy()
        nxt = np.empty((B, 1, self.nstate))
        ctrl = np.empty((B, 1, self.nu))
        qv = slice(self.qpos_adr, self.qvel_adr + self.nv)  # qpos and qvel, adjacent in the state vector
        ra = self.qvel_adr + self.fv + 3  # body rates
        from tether.sim.robots.quadrotor import RateController

        rc = RateController(self._rc.max_thrust, n=B)  # the sim's onboard controller, over the batch
        rc.start(setpoints[:, 0, 1:4], state[:, ra:ra + 3], integral)
        if self.na:  # rotors start settled at the thrust the controller asks for first
            u0 = rc(setpoints[:, 0, 0], setpoints[:, 0, 1:4], state[:, ra:ra + 3], self.dt)
            rc.start(setpoints[:, 0, 1:4], state[:, ra:ra + 3], integral)
            state[:, self.act_adr + self.model.actuator_actadr[self.stateful]] = u0[:, self.stateful]
        datas = [mujoco.MjData(self.model) for _ in range(min(self.threads, B))]
        out = np.empty((B, T // S - burn, self.nstate))
        for t in range(T):
            ctrl[:, 0] = rc(setpoints[:, t, 0], setpoints[:, t, 1:4], state[:, ra:ra + 3], self.dt)
            rollout.rollout(models, datas, state, ctrl, nstep=1, state=nxt, skip_checks=True,
                            persistent_pool=self.threads > 1)
            state[:] = nxt[:, 0]
            if (t + 1) % S:
                continue
            c = (t + 1) // S  # control steps done
            if c <= burn:  # warm-up: back onto the measured state, hidden states (act, integral) kept
                target = (warm[:, c] if c < burn else start)[:, qv]
                read = np.all(np.isfinite(target), axis=1)  # a state never read: the replay runs through it
                state[read, qv] = target[read]
                # the measured rates are the controller's input from here on: no derivative kick from the reset
                rc.prev_error = np.degrees(setpoints[:, min(t + 1, T - 1), 1:4] - state[:, ra:ra + 3])
                if c == burn:
                    start[:] = state  # act and time as warmed up
                continue
            out[:, c - burn - 1] = state
        return out


def gravity_to_quat(g: np.ndarray) -> np.ndarray:
    """A (w, x, y, z) attitude with zero yaw whose body-frame gravity direction is ``g`` (R^T (0, 0, -1))."""
    g = np.asarray(g, dtype=float)
    z = -g / max(np.linalg.norm(g), 1e-12)  # world z in the body frame = third row of R
    # zero yaw: body x projected on the world horizontal plane points along world x
    roll = np.arctan2(z[1], z[2])
    pitch = np.arctan2(-z[0], np.hypot(z[1], z[2]))
    cr, sr, cp, sp = np.cos(roll / 2), np.sin(roll / 2), np.cos(pitch / 2), np.sin(pitch / 2)
    return np.array([cr * cp, sr * cp, cr * sp, -sr * sp])
