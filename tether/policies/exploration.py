"""Bounded exploration on the robot: a policy wrapper that adds a small, seeded, band-limited signal to the
normalised action, always clipped to [-1, 1].

Why: data recorded from a deterministic policy holding a set point has almost no action variety. System
identification cannot see a motor lag in hover (the rotors never change speed), and a critic trained on such
data cannot rank actions it never saw. A small excitation fixes both, and it is safe by construction: the
signal lives in the contract's normalised action space (so it is scaled to each channel's range), the sum is
clipped to [-1, 1] (the contract's limits, which the guard enforces again in physical units as the last
transform), and a non-finite policy output stays non-finite so the guard's NaN hold still fires.

Signals (``kind``):
- ``noise``: Gaussian noise through a second-order low-pass (critically damped, cut-off ``band_hz``),
  scaled to unit standard deviation in steady state, then clipped at 2.5 sigma: coloured noise that excites
  every frequency up to the cut-off without chattering at the control rate.
- ``chirp``: per channel a sine sweeping ``chirp_hz[0] -> chirp_hz[1]`` over ``period_s`` (then repeating),
  with a random phase per channel, unit amplitude.
Both are multiplied by ``scale`` (normalised units: 0.1 = 10 % of each channel's half-range). Every random
choice comes from ``seed``; each row of a batch gets its own stream.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from tether.errors import TetherError
from tether.policies.base import Policy

KINDS = ("noise", "chirp")
MAX_SCALE = 1.0


class ExplorationPolicy:
    """``act(obs) = clip(inner.act(obs) + scale * signal_k, -1, 1)``; see the module docstring."""

    def __init__(self, inner: Any, scale: float, *, kind: str = "noise", seed: int = 0, band_hz: float = 5.0,
                 chirp_hz: tuple[float, float] = (0.5, 8.0), period_s: float = 4.0,
                 channels: Any = None) -> None:
        if not hasattr(inner, "act") or not hasattr(inner, "contract"):
            raise TetherError(f"exploration wraps a Policy (act + contract); got {type(inner).__name__}")
        scale = float(scale)
        if not (math.isfinite(scale) and 0.0 <= scale <= MAX_SCALE):
            raise TetherError(f"exploration scale {scale}; expected 0 <= scale <= {MAX_SCALE} (normalised action units)")
        if kind not in KINDS:
            raise TetherError(f"exploration kind {kind!r}; expected one of {', '.join(KINDS)}")
        self.inner = inner
        self.contract = inner.contract
        self.rate_hz = float(self.contract.rate_hz)
        nyquist = self.rate_hz / 2
        band_hz, period_s = float(band_hz), float(period_s)
        lo, hi = (float(f) for f in chirp_hz)
        if not (math.isfinite(band_hz) and 0 < band_hz < nyquist):
            raise TetherError(f"exploration band {band_hz} Hz; expected 0 < band < {nyquist:g} Hz (half the control rate)")
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi < nyquist):
            raise TetherError(f"exploration chirp {lo}..{hi} Hz; expected 0 < start < end < {nyquist:g} Hz")
        if not (math.isfinite(period_s) and period_s > 0):
            raise TetherError(f"exploration chirp period {period_s} s; expected > 0")
        n = self.contract.action_size
        mask = np.ones(n)
        if channels is not None:
            mask = np.zeros(n)
            for c in channels:
                if not (isinstance(c, (int, np.integer)) and 0 <= int(c) < n):
                    raise TetherError(f"exploration channel {c!r}; expected indices in 0..{n - 1}")
                mask[int(c)] = 1.0
        self.scale, self.kind, self.seed = scale, kind, int(seed)
        self.band_hz, self.chirp_hz, self.period_s = band_hz, (lo, hi), period_s
        self.mask = mask
        self.horizon = getattr(inner, "horizon", None)
        # critically damped second-order low-pass at band_hz: two cascaded one-pole filters with the pole of
        # that cut-off, normalised to unit steady-state variance
        self._a = math.exp(-2 * math.pi * band_hz / self.rate_hz)
        self._rng = np.random.default_rng(self.seed)
        self._state: np.ndarray | None = None  # (B, 2, n) filter states
        self._phase: np.ndarray | None = None  # (B, n) chirp phases
        self._k = 0

    # ------------------------------------------------------------------ signal
    def _ensure(self, batch: int) -> None:
        n = self.contract.action_size
        if self._state is None or self._state.shape[0] != batch:
            self._state = np.zeros((batch, 2, n))
            self._phase = self._rng.uniform(0, 2 * np.pi, (batch, n))
            if self.kind == "noise":  # start in steady state so the first seconds are as rich as the rest
                for _ in range(int(5 * self.rate_hz / self.band_hz)):
                    self._noise_step()

    def _noise_step(self) -> np.ndarray:
        s = self._state
        w = self._rng.normal(size=s[:, 0].shape)
        s[:, 0] = self._a * s[:, 0] + (1 - self._a) * w
        s[:, 1] = self._a * s[:, 1] + (1 - self._a) * s[:, 0]
        return np.clip(s[:, 1] / self._unit_std(), -2.5, 2.5)

    def _unit_std(self) -> float:
        # steady-state std of the cascade for unit white input: its impulse response is
        # h_k = (1-a)^2 (k+1) a^k, and sum h_k^2 = (1-a)^4 (1+a^2) / (1-a^2)^3
        a = self._a
        return (1 - a) ** 2 * math.sqrt((1 + a * a) / (1 - a * a) ** 3)

    def signal(self, batch: int = 1) -> np.ndarray:
        """The next (batch, action_size) excitation in normalised units (already times ``scale``)."""
        self._ensure(batch)
        if self.kind == "noise":
            x = self._noise_step()
        else:
            lo, hi = self.chirp_hz
            t = (self._k / self.rate_hz) % self.period_s
            # phase of a linear chirp: 2 pi (lo t + (hi - lo) t^2 / (2 T))
            ph = 2 * np.pi * (lo * t + (hi - lo) * t * t / (2 * self.period_s))
            x = np.sin(ph + self._phase)
        self._k += 1
        return self.scale * self.mask * x

    # ------------------------------------------------------------------ Policy
    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        a = np.asarray(self.inner.act(obs), dtype=np.float64)
        batched = a.ndim == 2
        a2 = a if batched else a[None]
        out = np.clip(a2 + self.signal(a2.shape[0]), -1.0, 1.0)  # NaN stays NaN: the guard holds on it
        return out if batched else out[0]

    def act_chunk(self, obs: np.ndarray) -> np.ndarray:
        """Chunks get one excitation sample per step (a chunk executor's ensembling averages overlapping
        chunks, which lowers the effective amplitude: prefer single-step policies for identification)."""
        if not hasattr(self.inner, "act_chunk"):
            raise TetherError(f"{type(self.inner).__name__} has no act_chunk(); it is not a chunked policy")
        chunk = np.asarray(self.inner.act_chunk(np.asarray(obs)), dtype=np.float64)  # (B, H, n)
        noise = np.stack([self.signal(chunk.shape[0]) for _ in range(chunk.shape[1])], axis=1)
        return np.clip(chunk + noise, -1.0, 1.0)

    def reset(self) -> None:
        """Reset the wrapped policy; the excitation stream continues (a new episode is not a new seed)."""
        if hasattr(self.inner, "reset"):
            self.inner.reset()

    def save(self, directory: str | Path) -> None:
        raise TetherError("an exploration wrapper is a deploy-time setting, not a checkpoint; save the wrapped "
                          "policy instead")

    def describe(self) -> dict[str, Any]:
        """What was added, for a run's provenance (bag metadata, pipeline report)."""
        d: dict[str, Any] = {"kind": self.kind, "scale": self.scale, "seed": self.seed}
        d.update({"band_hz": self.band_hz} if self.kind == "noise" else
                 {"chirp_hz": list(self.chirp_hz), "period_s": self.period_s})
        if not np.all(self.mask):
            d["channels"] = np.flatnonzero(self.mask).tolist()
        return d


def with_exploration(policy: Policy, scale: float | None, **kw: Any) -> Policy:
    """``policy`` unchanged when ``scale`` is None or 0 (``tether deploy --explore 0``), else wrapped."""
    if scale is None or float(scale) == 0.0:
        return policy
    return ExplorationPolicy(policy, float(scale), **kw)
