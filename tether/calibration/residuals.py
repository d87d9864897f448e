"""Sim-vs-real residuals: what the nominal simulator and the identified one each get wrong about a recording.

The recorded commands are replayed in the same windows the identification used (each from the measured state,
``tether.calibration.replay``) twice: with the nominal parameters and no latency (what training without
identification assumes) and with the identified parameters and latency. Per state channel (``base_pos.z``,
``joint_vel.FR_upper_joint``, ...) the report gives the RMS error in physical units over every step of every
window, before and after, and the RMS error against time into the window (how fast each model drifts away
from the robot). ``ResidualReport.figures()`` returns matplotlib figures (no display needed), ``markdown()``
a table, ``write(dir)`` both plus a JSON; ``tether calibrate sysid ... --report DIR`` and the pipeline report
call it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tether.errors import TetherError

UNITS = {"base_pos": "m", "base_quat": "1", "base_lin_vel": "m/s", "base_ang_vel": "rad/s", "joint_pos": "rad",
         "joint_vel": "rad/s", "projected_gravity": "1", "base_lin_vel_body": "m/s"}
COMPONENTS = {"base_pos": "xyz", "base_quat": "wxyz", "base_lin_vel": "xyz", "base_ang_vel": "xyz",
              "projected_gravity": "xyz", "base_lin_vel_body": "xyz"}


@dataclass
class ResidualReport:
    robot: str
    keys: list[str]
    channels: list[str]  # "key.component"
    units: list[str]
    rms_before: np.ndarray  # (C,) nominal model, physical units
    rms_after: np.ndarray  # (C,) identified model
    t: np.ndarray  # (L + 1,) seconds into the window
    profile_before: np.ndarray  # (C, L + 1) RMS over windows at each step
    profile_after: np.ndarray
    windows: int
    window_s: float
    before_label: str = "nominal"
    after_label: str = "identified"
    parameters: dict[str, Any] = field(default_factory=dict)

    def improvement(self) -> np.ndarray:
        return self.rms_before / np.maximum(self.rms_after, 1e-300)

    def rows(self) -> list[dict[str, Any]]:
        return [{"channel": c, "unit": u, "rms_before": float(b), "rms_after": float(a)}
                for c, u, b, a in zip(self.channels, self.units, self.rms_before, self.rms_after)]

    def markdown(self) -> str:
        head = (f"Replay error per state channel, {self.windows} windows of {self.window_s:g} s from the measured "
                f"state, {self.before_label} vs {self.after_label} simulator (RMS over every step).\n\n"
                f"| channel | unit | {self.before_label} | {self.after_label} | ratio |\n|---|---|---|---|---|")
        lines = [head]
        for c, u, b, a in zip(self.channels, self.units, self.rms_before, self.rms_after):
            lines.append(f"| {c} | {u} | {b:.4g} | {a:.4g} | {b / max(a, 1e-300):.1f}x |")
        if self.parameters:
            lines.append("")
            lines.append("Parameters: " + ", ".join(f"{k} {v}" for k, v in self.parameters.items()))
        return "\n".join(lines) + "\n"

    def figures(self) -> list[Any]:
        """[error against time into the window, per key; RMS per channel before/after] as matplotlib Figures
        (Agg canvas: no display, no global pyplot state)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        idx = {k: [i for i, c in enumerate(self.channels) if c.split(".", 1)[0] == k] for k in self.keys}
        n = len(self.keys)
        f1 = Figure(figsize=(10, 2.4 * n), layout="constrained")
        FigureCanvasAgg(f1)
        for row, k in enumerate(self.keys):
            ax = f1.add_subplot(n, 1, row + 1)
            for j, i in enumerate(idx[k][:12]):
                color = f"C{j % 10}"
                ax.plot(self.t, self.profile_before[i], "--", color=color, lw=1)
                ax.plot(self.t, self.profile_after[i], "-", color=color, lw=1.5, label=self.channels[i].split(".", 1)[1])
            ax.set_ylabel(f"{k} [{UNITS.get(k, '')}]")
            ax.legend(fontsize=7, ncol=6, loc="upper left")
            ax.grid(alpha=0.3)
        f1.axes[-1].set_xlabel(f"time into window [s] (dashed: {self.before_label}, solid: {self.after_label})")
        f1.suptitle(f"{self.robot}: RMS replay error over {self.windows} windows")

        f2 = Figure(figsize=(max(6, 0.35 * len(self.channels) + 2), 4), layout="constrained")
        FigureCanvasAgg(f2)
        ax = f2.add_subplot(1, 1, 1)
        x = np.arange(len(self.channels))
        scale = np.maximum(self.rms_before, 1e-300)  # relative to the nominal error: channels of any unit
        ax.bar(x - 0.2, self.rms_before / scale, 0.4, label=self.before_label, color="0.6")
        ax.bar(x + 0.2, self.rms_after / scale, 0.4, label=self.after_label, color="C0")
        ax.set_xticks(x, self.channels, rotation=70, fontsize=7)
        ax.set_ylabel(f"RMS error / {self.before_label} RMS error")
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
        f2.suptitle(f"{self.robot}: replay error per channel")
        return [f1, f2]

    def as_dict(self) -> dict[str, Any]:
        return {"robot": self.robot, "windows": self.windows, "window_s": self.window_s, "rows": self.rows(),
                "parameters": self.parameters, "t": self.t.tolist(),
                "profile_before": self.profile_before.tolist(), "profile_after": self.profile_after.tolist()}

    def write(self, directory: str | Path) -> list[Path]:
        """residual_time.png, residual_channels.png, residuals.md and residuals.json in ``directory``."""
        d = Path(directory)
        if d.exists() and not d.is_dir():
            raise TetherError(f"report path {str(d)!r} is a file; expected a directory")
        d.mkdir(parents=True, exist_ok=True)
        out = []
        for fig, name in zip(self.figures(), ("residual_time.png", "residual_channels.png")):
            fig.savefig(d / name, dpi=90)
            out.append(d / name)
        (d / "residuals.md").write_text(self.markdown())
        (d / "residuals.json").write_text(json.dumps(self.as_dict(), indent=1) + "\n")
        return out + [d / "residuals.md", d / "residuals.json"]


def _channel_names(key: str, d: int, joints: tuple[str, ...]) -> list[str]:
    comps = COMPONENTS.get(key)
    if comps is not None and len(comps) == d:
        return [f"{key}.{c}" for c in comps]
    if key.startswith("joint_") and d <= len(joints):
        return [f"{key}.{j}" for j in joints[:d]]
    return [f"{key}.{i}" for i in range(d)]


def residual_report(data: Any, result: Any, *, threads: int = 2) -> ResidualReport:
    """Replay ``data`` (``sysid.Trajectories``) with the nominal parameters and with ``result``'s (a
    ``sysid.SysIdResult``) in the windows the fit used; see the module docstring."""
    from tether.calibration.replay import Replayer
    from tether.calibration.sysid import WARMUP_STEPS, make_windows

    rp = Replayer(result.robot, result.params, data.command_mode, threads=threads)
    steps = None if result.window_s is None else int(round(result.window_s / rp.period))
    burn = result.warmup_steps if result.warmup_steps is not None else WARMUP_STEPS
    win, _ = make_windows(rp, data, window_steps=steps, history=result.history, burn=burn if steps else 0)
    if result.window_origins:
        keep = [i for i, o in enumerate(win.origin) if tuple(o) in {tuple(x) for x in result.window_origins}]
        if keep:
            win = win.subset(np.array(keep))
    n = len(result.params)
    X = np.array([np.zeros(n), result.log_scale])
    delays = np.array([0.0, result.latency_s / rp.dt])
    keys = list(win.measured)
    sim = rp.run(win, X, delays, keys)
    channels, units, before, after, prof_b, prof_a = [], [], [], [], [], []
    for k in keys:
        m = win.measured[k]
        s = sim[k][..., :m.shape[-1]]
        if k == "base_quat":
            s = s * np.sign(np.sum(s * m[None], axis=-1, keepdims=True) + 1e-12)
        e = s - m[None]  # (2, W, L+1, d)
        names = _channel_names(k, m.shape[-1], tuple(rp.spec.joints))
        channels += names
        units += [UNITS.get(k, "")] * len(names)
        rms = np.sqrt(np.nanmean(e[:, :, 1:] ** 2, axis=(1, 2)))  # (2, d); states never read are NaN
        prof = np.sqrt(np.nanmean(e**2, axis=1))  # (2, L+1, d)
        before += rms[0].tolist()
        after += rms[1].tolist()
        prof_b += list(prof[0].T)
        prof_a += list(prof[1].T)
    L = win.steps
    params = {p.name: f"x{np.exp(s):.4g}" for p, s in zip(result.params, result.log_scale)}
    if result.fit_latency:
        params["latency"] = f"{1e3 * result.latency_s:.1f} ms"
    return ResidualReport(
        robot=result.robot, keys=keys, channels=channels, units=units, rms_before=np.array(before),
        rms_after=np.array(after), t=np.arange(L + 1) * rp.period, profile_before=np.array(prof_b),
        profile_after=np.array(prof_a), windows=win.count, window_s=L * rp.period, parameters=params)
