"""Actuation and sensing delay from command/response logs, written into a DR preset and the contract.

Why two stages: cross-correlating the *changes* of command and response finds the delay to within a control
period even when the plant's own lag smears the response, but it is biased by that lag and quantised to
the sample period. Fitting a delayed first-order model y = K * lowpass_tau(u(t - d)) + b on a finer time
grid then separates plant lag (tau) from pure delay (d) and resolves d below one period. The log is split
into chunks and re-estimated per chunk, so the DR range comes from the measured spread rather than a guess.

Sensing versus actuation: when responses carry their measurement stamp (``t_response``) the fitted delay is
the actuation delay; ``t_received`` (when the message arrived) then gives the sensing delay as their
difference. With only receipt stamps the fitted delay is the whole loop (actuation + sensing).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.signal import lfilter

from tether.contract import IOContract
from tether.errors import TetherError
from tether.sim.randomization import DRTerm

UPSAMPLE = 10  # fine-grid points per control period for the model fit (delay resolution dt/10)


@dataclass
class LatencyResult:
    delay_s: float  # pure delay from command to measured response (see module docstring for its meaning)
    control_period_s: float
    xcorr_delay_s: float
    time_constant_s: list[float]  # per channel, first-order plant lag
    gain: list[float]
    fit_rmse: float  # response units, delayed model
    no_delay_rmse: float  # same model forced to zero delay, for comparison
    chunk_delays_s: list[float] = field(default_factory=list)
    sensing_delay_s: float | None = None

    @property
    def delay_steps(self) -> int:
        return int(round(self.delay_s / self.control_period_s))

    @property
    def total_delay_s(self) -> float:
        return self.delay_s + (self.sensing_delay_s or 0.0)

    def step_range(self) -> tuple[int, int]:
        """Delay range in control steps covering the estimate and every chunk estimate."""
        vals = np.array([self.total_delay_s, *[d + (self.sensing_delay_s or 0.0) for d in self.chunk_delays_s]])
        steps = vals / self.control_period_s
        return int(np.floor(steps.min() + 1e-6)), int(np.ceil(steps.max() - 1e-6))

    def report(self) -> dict[str, Any]:
        lo, hi = self.step_range()
        return {
            "delay_s": self.delay_s,
            "delay_steps": self.delay_steps,
            "sensing_delay_s": self.sensing_delay_s,
            "total_delay_s": self.total_delay_s,
            "control_period_s": self.control_period_s,
            "xcorr_delay_s": self.xcorr_delay_s,
            "time_constant_s": self.time_constant_s,
            "gain": self.gain,
            "fit_rmse": self.fit_rmse,
            "no_delay_rmse": self.no_delay_rmse,
            "chunk_delays_s": self.chunk_delays_s,
            "latency_steps_range": [lo, hi],
        }

    def summary(self) -> str:
        lo, hi = self.step_range()
        s = (
            f"delay {1e3 * self.delay_s:.1f} ms = {self.delay_steps} steps of {1e3 * self.control_period_s:.1f} ms "
            f"(cross-correlation {1e3 * self.xcorr_delay_s:.1f} ms; per-chunk "
            f"{', '.join(f'{1e3 * d:.0f}' for d in self.chunk_delays_s)} ms); plant lag tau "
            f"{', '.join(f'{t * 1e3:.1f}' for t in self.time_constant_s)} ms; fit RMSE {self.fit_rmse:.4g} "
            f"(zero-delay model {self.no_delay_rmse:.4g}); DR range {lo}..{hi} steps"
        )
        if self.sensing_delay_s is not None:
            s += f"; sensing delay {1e3 * self.sensing_delay_s:.1f} ms"
        return s


# ---------------------------------------------------------------------- input handling
def _as_2d(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise TetherError(f"{name} has shape {np.shape(x)}; expected a non-empty (N,) or (N, channels) array")
    if not np.all(np.isfinite(arr)):
        raise TetherError(f"{name} contains NaN or inf; expected finite samples")
    return arr


def _uniform(t: np.ndarray, period: float | None, name: str) -> float:
    dts = np.diff(t)
    if np.any(dts <= 0):
        raise TetherError(f"{name} timestamps are not strictly increasing; expected sorted sample times")
    dt = float(np.median(dts)) if period is None else float(period)
    if not dt > 0:
        raise TetherError(f"control period {dt}; expected a positive number of seconds")
    return dt


# ---------------------------------------------------------------------- estimators
def xcorr_delay(u: np.ndarray, y: np.ndarray, max_lag: int) -> float:
    """Lag (in samples, sub-sample by parabolic fit) maximising the correlation of du and dy, summed over channels."""
    du = np.diff(u, axis=0)
    dy = np.diff(y, axis=0)
    du = (du - du.mean(0)) / (du.std(0) + 1e-12)
    dy = (dy - dy.mean(0)) / (dy.std(0) + 1e-12)
    n = len(du)
    max_lag = min(max_lag, n - 2)
    c = np.array([np.sum(du[: n - k] * dy[k:]) / (n - k) for k in range(max_lag + 1)])
    k = int(np.argmax(c))
    if 0 < k < max_lag:
        a, b, d = c[k - 1], c[k], c[k + 1]
        den = a - 2 * b + d
        if den < 0:
            return k + 0.5 * (a - d) / den
    return float(k)


def _fine_command(u: np.ndarray, delay_fine: int, n_fine: int) -> np.ndarray:
    """Zero-order-hold command on the fine grid, delayed by ``delay_fine`` fine samples (held at u[0] before)."""
    uf = np.repeat(u, UPSAMPLE, axis=0)[:n_fine]
    if delay_fine > 0:
        uf = np.concatenate([np.repeat(uf[:1], delay_fine, axis=0), uf[:-delay_fine]], axis=0)
    return uf


def _fit_channel(uf: np.ndarray, y: np.ndarray, idx: np.ndarray, dt_fine: float, tau_max: float) -> tuple[float, float, float, float]:
    """Best (sse, tau, gain, offset) of y ~ K * lowpass_tau(uf)[idx] + b; K, b solved linearly per tau."""

    def sse_for(log_tau: float) -> tuple[float, float, float]:
        tau = np.exp(log_tau)
        a = np.exp(-dt_fine / tau)
        yf = lfilter([1 - a], [1, -a], uf - uf[0]) + uf[0]
        x = yf[idx]
        M = np.column_stack([x, np.ones_like(x)])
        coef, *_ = np.linalg.lstsq(M, y, rcond=None)
        r = y - M @ coef
        return float(r @ r), float(coef[0]), float(coef[1])

    res = minimize_scalar(lambda lt: sse_for(lt)[0], bounds=(np.log(dt_fine / 4), np.log(tau_max)), method="bounded",
                          options={"xatol": 1e-3})
    sse, k, b = sse_for(res.x)
    return sse, float(np.exp(res.x)), k, b


def _model_fit(u: np.ndarray, y: np.ndarray, t_y: np.ndarray, t0: float, dt: float, candidates: np.ndarray):
    """Shared delay (fine samples) over channels: returns (best delay_fine, sse, taus, gains, zero-delay sse)."""
    n_fine = len(u) * UPSAMPLE
    dt_fine = dt / UPSAMPLE
    idx = np.clip(np.round((t_y - t0) / dt_fine).astype(int), 0, n_fine - 1)
    tau_max = max(10 * dt, 0.2 * (t_y[-1] - t_y[0]))
    best = None
    results = {}
    for d in sorted(set(candidates.tolist()) | {0}):
        uf = _fine_command(u, int(d), n_fine)
        fits = [_fit_channel(uf[:, c], y[:, c], idx, dt_fine, tau_max) for c in range(u.shape[1])]
        sse = sum(f[0] for f in fits)
        results[d] = (sse, fits)
        if d in candidates and (best is None or sse < results[best][0]):
            best = d
    sse, fits = results[best]
    return best, sse, [f[1] for f in fits], [f[2] for f in fits], results[0][0]


def _estimate(u: np.ndarray, y: np.ndarray, t_y: np.ndarray, t0: float, dt: float, max_lag: int) -> tuple[float, float, Any]:
    # Response on the command grid for the cross-correlation stage.
    grid = t0 + dt * np.arange(len(u))
    y_grid = np.column_stack([np.interp(grid, t_y, y[:, c]) for c in range(y.shape[1])])
    lag = xcorr_delay(u, y_grid, max_lag)
    lo = max(0, int(np.floor((lag - 2.0) * UPSAMPLE)))
    hi = int(np.ceil((lag + 2.0) * UPSAMPLE))
    best, sse, taus, gains, sse0 = _model_fit(u, y, t_y, t0, dt, np.arange(lo, hi + 1))
    return best / UPSAMPLE * dt, lag * dt, (sse, taus, gains, sse0)


def estimate_latency(
    t: Any,
    command: Any,
    response: Any,
    *,
    t_response: Any = None,
    t_received: Any = None,
    control_period: float | None = None,
    max_delay_s: float = 0.5,
    chunks: int = 4,
) -> LatencyResult:
    """Estimate the delay from commands (sent at ``t``) to the responses they cause.

    ``command`` (N,) or (N, C) is held between samples (zero-order hold, as a controller applies it);
    ``response`` (M,) or (M, C) is measured at ``t_response`` (defaults to ``t``), channel c answering
    command channel c. ``control_period`` defaults to the median command spacing.
    """
    t = np.asarray(t, dtype=float).ravel()
    if t.size == 0:
        raise TetherError("latency log is empty; expected command timestamps, commands and responses")
    u = _as_2d(command, "command")
    y = _as_2d(response, "response")
    t_y = t if t_response is None else np.asarray(t_response, dtype=float).ravel()
    if len(u) != len(t):
        raise TetherError(f"{len(u)} commands but {len(t)} command timestamps; expected one stamp per command")
    if len(y) != len(t_y):
        raise TetherError(f"{len(y)} responses but {len(t_y)} response timestamps; expected one stamp per response")
    if u.shape[1] != y.shape[1]:
        raise TetherError(f"command has {u.shape[1]} channels but response has {y.shape[1]}; expected one response per command channel")
    if len(t) < 20 or len(t_y) < 20:
        raise TetherError(f"latency log has {min(len(t), len(t_y))} samples; expected at least 20 (a few seconds of excitation)")
    if np.all(np.ptp(u, axis=0) == 0):
        raise TetherError("commands never change; expected an exciting command (steps or noise) to measure delay")
    dt = _uniform(t, control_period, "command")
    _uniform(t_y, None, "response")
    max_lag = max(2, int(np.ceil(max_delay_s / dt)))
    delay, xdelay, (sse, taus, gains, sse0) = _estimate(u, y, t_y, t[0], dt, max_lag)

    chunk_delays = []
    if chunks > 1:
        edges = np.linspace(0, len(u), chunks + 1).astype(int)
        for a, b in zip(edges[:-1], edges[1:]):
            sel = (t_y >= t[a]) & (t_y < t[b - 1])
            if b - a < 20 or sel.sum() < 20 or np.all(np.ptp(u[a:b], axis=0) == 0):
                continue
            chunk_delays.append(_estimate(u[a:b], y[sel], t_y[sel], t[a], dt, max_lag)[0])

    sensing = None
    if t_received is not None:
        t_rx = np.asarray(t_received, dtype=float).ravel()
        if len(t_rx) != len(t_y):
            raise TetherError(f"{len(t_rx)} receipt stamps but {len(t_y)} responses; expected one per response")
        sensing = float(np.median(t_rx - t_y))
    n = y.size
    return LatencyResult(
        delay_s=float(delay),
        control_period_s=dt,
        xcorr_delay_s=float(xdelay),
        time_constant_s=taus,
        gain=gains,
        fit_rmse=float(np.sqrt(sse / n)),
        no_delay_rmse=float(np.sqrt(sse0 / n)),
        chunk_delays_s=[float(d) for d in chunk_delays],
        sensing_delay_s=sensing,
    )


# ---------------------------------------------------------------------- outputs
def latency_dr_terms(result: LatencyResult) -> list[DRTerm]:
    """The measured delay as a DR term: whole control steps, drawn per episode over the measured spread."""
    lo, hi = result.step_range()
    return [DRTerm("action_latency", "uniform", "abs", (float(max(lo, 0)), float(max(hi, 0))), "reset")]


def merge_dr_terms(
    preset: Mapping[str, Any] | list | None,
    terms: list[DRTerm],
    provenance: Mapping[str, Any] | None = None,
    name: str = "calibrated",
) -> dict[str, Any]:
    """A DR preset dict ({"name", "terms", "provenance"}) with ``terms`` replacing existing terms on the same
    target; the input may be a preset dict or a bare list of terms (both forms ``terms_from_json`` reads)."""
    if isinstance(preset, list):
        preset = {"name": name, "terms": preset}
    out: dict[str, Any] = dict(preset or {"name": name, "terms": []})
    existing = [DRTerm.from_dict(t) for t in out.get("terms", [])]
    targets = {t.target for t in terms}
    out["terms"] = [t.to_dict() for t in existing if t.target not in targets] + [t.to_dict() for t in terms]
    if provenance:
        prov = dict(out.get("provenance", {}))
        prov.update(provenance)
        out["provenance"] = prov
    return out


def contract_with_latency(contract: IOContract, result: LatencyResult) -> IOContract:
    """The same contract with ``assumed_latency_s`` set to the measured total delay."""
    return dataclasses.replace(contract, assumed_latency_s=float(result.total_delay_s))
