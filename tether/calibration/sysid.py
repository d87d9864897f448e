"""System identification: fit simulator parameters to recorded trajectories, then turn the fit into DR.

Method. The recorded commands are replayed open loop in MuJoCo (through ``tether.sim``'s backend, so the
parameters are the same named targets domain randomisation uses: body_mass, friction, joint_damping,
joint_armature, joint_frictionloss, actuator_gain, actuator_strength, motor_time_constant, plus
action_latency in whole control steps) from each episode's recorded initial state, and the simulated states
are compared with the measured ones, channel by channel normalised by the measured spread. Each continuous
parameter is a log-scale on its nominal value (one shared scale per target unless elements are named).
Latency is discrete, so it is scanned first at the nominal parameters and re-checked after the fit.
CMA-ES searches globally (derivative-free: contacts and actuator limits make the cost non-smooth), then a
trust-region least-squares polish from the CMA optimum gives the Jacobian whose Gauss-Newton covariance
sigma^2 (J^T J)^-1 is the reported uncertainty (a lower bound when residuals are correlated in time; the
correlation matrix shows parameters the data cannot separate, e.g. a quadrotor's mass against its thrust
gain).

The DR preset centres every term on the fit (a ``scale`` term on the nominal model) with a half-width of
``k`` standard deviations (default 3: even after the correlation correction the Gauss-Newton spread is
optimistic for replay residuals), so ``tether train --dr preset.json`` trains across what the data could
not rule out.

Log format (``.npz`` or ``.json``; other formats plug in through ``tether.calibration.io.register_loader``):
``command`` (N, nu) actuator-space commands in physical units (joint position targets or rotor thrusts N),
each held for one control period; measured states with one more sample than commands (state k+1 follows
command k), any of ``joint_pos``, ``joint_vel`` (N+1, n_joints), ``base_pos``, ``base_lin_vel``,
``base_ang_vel`` (N+1, 3), ``base_quat`` (N+1, 4, w x y z). A leading episode axis (E, N, ...) holds several
episodes. ``control_period`` (scalar, s) or ``t`` (N,) is optional; it must match the robot's control rate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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
    "legged": ("actuator_gain", "joint_damping", LATENCY),
}
LOG_SCALE_BOUND = np.log(4.0)  # search scales in [1/4, 4] x nominal


# ---------------------------------------------------------------------- data
@dataclass
class Trajectories:
    """Episodes of commands and the states they produced (see the module docstring for the layout)."""

    commands: list[np.ndarray]  # per episode (N, nu)
    states: list[dict[str, np.ndarray]]  # per episode, key -> (N+1, d)
    control_period: float | None = None

    @property
    def keys(self) -> list[str]:
        return list(self.states[0])

    @property
    def n_steps(self) -> int:
        return int(sum(len(c) for c in self.commands))


def trajectories_from_arrays(arrays: Mapping[str, np.ndarray], where: str = "trajectory log") -> Trajectories:
    if "command" not in arrays:
        raise TetherError(f"{where} has no 'command' array; it has {sorted(arrays)}")
    cmd = np.asarray(arrays["command"], dtype=float)
    if cmd.size == 0:
        raise TetherError(f"{where} is empty; expected commands and measured states")
    if cmd.ndim == 2:
        cmd = cmd[None]
    if cmd.ndim != 3:
        raise TetherError(f"{where}: command has shape {np.shape(arrays['command'])}; expected (N, nu) or (E, N, nu)")
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
        period = float(np.asarray(arrays["control_period"]).ravel()[0])
    elif "t" in arrays and np.asarray(arrays["t"]).size > 1:
        period = float(np.median(np.diff(np.asarray(arrays["t"], dtype=float).reshape(-1)[:N])))
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
    """Replays commands in MuJoCo with a given parameter set (the robot model from ``tether.sim``)."""

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
            missing = [e for e in p.elements if e not in names]
            if missing:
                raise TetherError(f"sysid parameter {p.name}: unknown elements {missing}; valid: {names}")
            self.index[p.name] = np.array([names.index(e) for e in p.elements]) if p.elements else np.arange(len(names))
            self.nominal.setdefault(p.target, self.backend.get_param(p.target).copy())
            if not np.any(self.nominal[p.target][self.index[p.name]]):
                raise TetherError(
                    f"sysid parameter {p.name}: robot {robot}'s nominal value is 0 for every element, so a scale "
                    f"on it cannot change the model; give the model a non-zero nominal or fit another parameter"
                )

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
        """States (N+1, d) per key: state 0 is ``init``; command k acts ``delay`` physics steps late -> state k+1.

        The delay is continuous: with q whole periods, r whole physics steps and a fraction f, period k runs
        command k-q-1 for r substeps, their blend for one substep (the switch falls inside it) and command k-q
        for the rest. That keeps the replay cost smooth in the delay, so latency is fitted jointly with the
        other parameters (and gets a covariance) instead of by a separate discrete search.
        """
        b = self.backend
        b.set_command(command[0])
        b.reset_state(
            init.get("joint_pos", self.spec.default_joint_pos), init.get("joint_vel"), init.get("base_pos"),
            init.get("base_quat"), init.get("base_lin_vel"), init.get("base_ang_vel"),
        )
        rec: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        for k, v in zip(keys, self._read(keys)):
            rec[k].append(np.asarray(init[k], dtype=float) if k in init else v)
        sub = self.substeps
        q, rem = divmod(max(float(delay), 0.0), sub)
        q, r = int(q), int(np.floor(rem))
        f = rem - r
        for i in range(len(command)):
            old, new = command[max(i - q - 1, 0)], command[max(i - q, 0)]
            if r:
                b.set_command(old)
                b.step(r)
            rest = sub - r
            if f > 1e-9:
                b.set_command(f * old + (1 - f) * new)
                b.step(1)
                rest -= 1
            if rest:
                b.set_command(new)
                b.step(rest)
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
    """Trajectories from the robot model with parameters ``nominal * scales`` (a stand-in for a real robot
    whose hidden parameters differ from the nominal model), as the arrays ``load_trajectories`` reads."""
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


# ---------------------------------------------------------------------- fit
@dataclass
class SysIdResult:
    robot: str
    params: list[ParamSpec]  # continuous parameters
    nominal: dict[str, np.ndarray]  # target -> nominal element values
    log_scale: np.ndarray  # fitted, per continuous parameter
    log_std: np.ndarray  # 1-sigma of log_scale (Gauss-Newton)
    correlation: np.ndarray
    latency_s: float
    latency_std_s: float
    residual_before: float  # normalised RMS residual of the nominal model (no latency)
    residual_after: float
    residual_per_key_before: dict[str, float]
    residual_per_key_after: dict[str, float]
    evaluations: int
    control_period: float
    fit_latency: bool = True
    latency_scan: dict[int, float] = field(default_factory=dict)  # whole steps -> residual at nominal scales

    @property
    def latency_steps(self) -> int:
        return int(round(self.latency_s / self.control_period))

    @property
    def scale(self) -> dict[str, float]:
        return {p.name: float(np.exp(s)) for p, s in zip(self.params, self.log_scale)}

    @property
    def rel_std(self) -> dict[str, float]:
        return {p.name: float(np.exp(s) * sd) for p, s, sd in zip(self.params, self.log_scale, self.log_std)}

    def values(self) -> dict[str, list[float]]:
        """Fitted physical values per parameter (nominal elements x fitted scale)."""
        return {p.name: [float(v * np.exp(s)) for v in self.nominal[p.target]] for p, s in zip(self.params, self.log_scale)}

    def dr_terms(self, k: float = 3.0, min_rel: float = 0.02) -> list:
        """DR terms centred on the fit: scale in [s (1 - k sd), s (1 + k sd)] (at least ``min_rel`` half-width),
        one draw shared by the elements as fitted; latency over the whole steps within k sd of the estimate."""
        from tether.sim.randomization import DRTerm

        terms = []
        for p, s, sd in zip(self.params, self.log_scale, self.log_std):
            c = float(np.exp(s))
            half = max(k * float(sd) if np.isfinite(sd) else 0.5, min_rel)
            terms.append(DRTerm(p.target, "uniform", "scale", (max(c * (1 - half), 1e-6), c * (1 + half)), "reset",
                                select=p.elements, per_element=False))
        if self.fit_latency:
            lo, hi = self.latency_step_range(k)
            terms.append(DRTerm(LATENCY, "uniform", "abs", (float(lo), float(hi)), "reset"))
        return terms

    def latency_step_range(self, k: float = 3.0) -> tuple[int, int]:
        T = self.control_period
        lo = max(0, int(round((self.latency_s - k * self.latency_std_s) / T)))
        hi = max(lo, int(round((self.latency_s + k * self.latency_std_s) / T)))
        return lo, hi

    def dr_preset(self, k: float = 3.0) -> dict[str, Any]:
        return {"name": f"sysid-{self.robot}", "terms": [t.to_dict() for t in self.dr_terms(k)],
                "provenance": {"source": "tether.calibration.sysid", "report": self.report()}}

    def report(self) -> dict[str, Any]:
        return {
            "robot": self.robot,
            "scale": self.scale,
            "rel_std": self.rel_std,
            "values": self.values(),
            "correlation": {"params": [p.name for p in self.params], "matrix": self.correlation.tolist()},
            "latency_s": self.latency_s if self.fit_latency else None,
            "latency_std_s": self.latency_std_s if self.fit_latency else None,
            "latency_steps": self.latency_steps if self.fit_latency else None,
            "latency_scan": {str(k): v for k, v in self.latency_scan.items()},
            "residual_before": self.residual_before,
            "residual_after": self.residual_after,
            "residual_per_key_before": self.residual_per_key_before,
            "residual_per_key_after": self.residual_per_key_after,
            "evaluations": self.evaluations,
        }

    def summary(self) -> str:
        lines = [f"sysid {self.robot}: residual {self.residual_before:.4f} -> {self.residual_after:.4f} "
                 f"(normalised RMS, nominal model -> fit) after {self.evaluations} simulations"]
        vals = self.values()
        for p in self.params:
            shown = ", ".join(f"{v:.4g}" for v in vals[p.name][:4]) + (", ..." if len(vals[p.name]) > 4 else "")
            lines.append(f"  {p.name:>22}: x{self.scale[p.name]:.4f} ± {self.rel_std[p.name]:.4f} of nominal  [{shown}]")
        if self.fit_latency:
            lines.append(f"  {LATENCY:>22}: {1e3 * self.latency_s:.1f} ± {1e3 * self.latency_std_s:.1f} ms "
                         f"(~{self.latency_steps} steps of {1e3 * self.control_period:.0f} ms)")
        return "\n".join(lines)


class _Objective:
    """Normalised residual vector of the replay, and a counter of simulations spent."""

    def __init__(self, sim: Simulator, data: Trajectories) -> None:
        self.sim, self.data = sim, data
        self.keys = data.keys
        allv = {k: np.concatenate([s[k] for s in data.states]) for k in self.keys}
        self.scale = {k: np.maximum(allv[k].std(axis=0), 1e-3 * (np.abs(allv[k]).max() + 1e-9)) for k in self.keys}
        self.evals = 0

    def residual(self, log_scales: np.ndarray, delay: float, per_key: bool = False):
        self.sim.set_scales(np.asarray(log_scales, dtype=float))
        parts: dict[str, list[np.ndarray]] = {k: [] for k in self.keys}
        for cmd, meas in zip(self.data.commands, self.data.states):
            init = {k: v[0] for k, v in meas.items()}
            sim = self.sim.rollout(cmd, init, self.keys, delay)
            for k in self.keys:
                s = sim[k]
                if k == "base_quat":
                    s = s * np.sign(np.sum(s * meas[k], axis=1, keepdims=True) + 1e-12)
                parts[k].append(((s - meas[k]) / self.scale[k])[1:])
        self.evals += 1
        self.last_parts = parts
        vec = np.concatenate([np.concatenate([a.ravel() for a in v]) for v in parts.values()])
        vec = np.nan_to_num(vec, nan=1e3, posinf=1e3, neginf=-1e3).clip(-1e3, 1e3)
        if per_key:
            return vec, {k: float(np.sqrt(np.mean(np.concatenate([a.ravel() for a in v]) ** 2))) for k, v in parts.items()}
        return vec

    def lag1_correlation(self) -> float:
        """Pooled lag-1 autocorrelation in time of the last residuals (per channel, per episode)."""
        num = den = 0.0
        for arrs in self.last_parts.values():
            for a in arrs:
                a = np.nan_to_num(a, nan=0.0)
                num += float(np.sum(a[1:] * a[:-1]))
                den += float(np.sum(a * a))
        return num / den if den > 0 else 0.0

    def sse(self, log_scales: np.ndarray, delay: float) -> float:
        r = self.residual(log_scales, delay)
        return float(r @ r)


def identify(
    robot: str,
    data: Trajectories,
    *,
    params: Sequence[str] | None = None,
    budget: int = 300,
    max_latency: int = 5,
    seed: int = 0,
    backend: str = "mujoco",
) -> SysIdResult:
    """Fit ``params`` (DR target names, optionally 'target:elem1+elem2', and 'action_latency') to ``data``.

    ``budget`` bounds the simulations CMA-ES may spend; the latency scan and the least-squares polish add
    about ``max_latency + 10 (n + 1)`` more.
    """
    import cma
    from scipy.optimize import least_squares

    names = list(params) if params else list(DEFAULT_PARAMS.get(robot, ("actuator_gain", "joint_damping", LATENCY)))
    specs = [ParamSpec.parse(n) for n in names]
    fit_latency = any(p.target == LATENCY for p in specs)
    sim = Simulator(robot, specs, backend)
    if data.control_period is not None and abs(data.control_period - sim.period) > 1e-6 * sim.period + 1e-9:
        raise TetherError(
            f"log control period {data.control_period:.6g} s does not match robot {robot}'s "
            f"{sim.period:.6g} s ({sim.spec.control_rate_hz:g} Hz); resample the log or pick the right robot"
        )
    nu = getattr(getattr(sim.backend, "model", None), "nu", None)
    if nu is not None and data.commands[0].shape[1] != nu:
        raise TetherError(f"log commands have {data.commands[0].shape[1]} channels; robot {robot} has {nu} actuators")
    obj = _Objective(sim, data)
    sub = sim.substeps
    n = len(sim.params)
    zero = np.zeros(n)
    r0, per_key0 = obj.residual(zero, 0, per_key=True)
    before = float(np.sqrt(np.mean(r0**2)))

    # Latency: whole-step scan at the nominal parameters seeds a continuous (physics-step) search.
    scan = {L: float(np.sqrt(obj.sse(zero, L * sub) / r0.size)) for L in range(max_latency + 1)} if fit_latency else {}
    lat0 = float(min(scan, key=scan.get)) if fit_latency else 0.0

    def decode(x: np.ndarray) -> tuple[np.ndarray, float]:
        if fit_latency:
            return x[:n], float(np.clip(x[n], 0, max_latency)) * sub
        return x, 0.0

    def residual(x: np.ndarray) -> np.ndarray:
        return obj.residual(*decode(x))

    x0 = np.r_[zero, lat0] if fit_latency else zero
    lo = np.array([-LOG_SCALE_BOUND] * n + ([0.0] if fit_latency else []))
    hi = np.array([LOG_SCALE_BOUND] * n + ([float(max_latency)] if fit_latency else []))
    x = x0
    log_std, corr, lat_std = np.zeros(0), np.zeros((0, 0)), 0.0
    if len(x0):
        opts = {"seed": seed + 1, "maxfevals": budget, "bounds": [list(lo), list(hi)], "verbose": -9,
                "tolfun": 1e-10, "tolx": 1e-5, "CMA_stds": [1.0] * n + ([2.0] if fit_latency else [])}
        es = cma.CMAEvolutionStrategy(x0, 0.3, opts)
        while not es.stop():
            xs = es.ask()
            es.tell(xs, [float(np.sum(residual(xi) ** 2)) for xi in xs])
        x = np.clip(np.asarray(es.result.xbest, dtype=float), lo, hi)
        # Trust-region polish from the CMA optimum; its Jacobian gives the Gauss-Newton covariance.
        sol = least_squares(residual, x, bounds=(lo - 1e-12, hi + 1e-12), diff_step=1e-3,
                            max_nfev=10 * (len(x) + 1), x_scale=np.r_[[0.1] * n, [1.0] * int(fit_latency)])
        if 2 * sol.cost <= float(np.sum(residual(x) ** 2)):
            x = sol.x
        J = sol.jac
        sigma2 = 2 * sol.cost / max(J.shape[0] - len(x), 1)
        # Residuals of a replay are correlated in time, so they carry fewer independent samples than their
        # count: inflate by the AR(1) factor (1 + rho) / (1 - rho) of their lag-1 autocorrelation.
        obj.residual(*decode(x))
        rho = float(np.clip(obj.lag1_correlation(), 0.0, 0.98))
        inflation = (1 + rho) / (1 - rho)
        cov = inflation * sigma2 * np.linalg.pinv(J.T @ J)
        std = np.sqrt(np.maximum(np.diag(cov), 0.0))
        dd = np.where(std > 0, std, 1.0)
        full_corr = cov / np.outer(dd, dd)
        log_std, corr = std[:n], full_corr[:n, :n]
        if fit_latency:
            lat_std = float(std[n] * sim.period)
    scales, delay = decode(x)
    r1, per_key1 = obj.residual(scales, delay, per_key=True)
    return SysIdResult(
        robot=robot, params=sim.params, nominal={t: v.copy() for t, v in sim.nominal.items()}, log_scale=scales,
        log_std=log_std, correlation=corr, latency_s=delay * sim.spec.physics_dt, latency_std_s=lat_std,
        residual_before=before, residual_after=float(np.sqrt(np.mean(r1**2))), residual_per_key_before=per_key0,
        residual_per_key_after=per_key1, evaluations=obj.evals, control_period=sim.period, fit_latency=fit_latency,
        latency_scan=scan,
    )
