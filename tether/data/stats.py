"""Per-feature statistics (mean/std/min/max/count) in the shape LeRobot's ``meta/stats.json`` uses.

Statistics are accumulated incrementally (Chan et al.'s parallel update) so a recorder can keep them
current after every episode without re-reading the data, and so episode stats merge exactly into dataset
stats. Images are summarised per channel in [0, 1] with shape (C, 1, 1), as LeRobot does for cameras.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

STAT_KEYS = ("min", "max", "mean", "std", "count")


class RunningStats:
    """Streaming mean/variance/min/max over the leading axis of batches of shape (N, *feature_shape)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None
        self.min: np.ndarray | None = None
        self.max: np.ndarray | None = None

    def update(self, batch: np.ndarray) -> None:
        x = np.asarray(batch, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        n = x.shape[0]
        if n == 0:
            return
        b_mean = x.mean(axis=0)
        b_m2 = ((x - b_mean) ** 2).sum(axis=0)
        self._merge(n, b_mean, b_m2, x.min(axis=0), x.max(axis=0))

    def merge(self, other: RunningStats) -> None:
        if other.count:
            self._merge(other.count, other.mean, other.m2, other.min, other.max)  # type: ignore[arg-type]

    def _merge(self, n: int, mean: np.ndarray, m2: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        if self.count == 0:
            self.count, self.mean, self.m2 = n, mean.copy(), m2.copy()
            self.min, self.max = lo.copy(), hi.copy()
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.min = np.minimum(self.min, lo)
        self.max = np.maximum(self.max, hi)
        self.count = total

    def to_dict(self) -> dict[str, list]:
        """JSON-ready lists; std is the population std (ddof=0), as LeRobot computes it."""
        if self.count == 0:
            return {}
        std = np.sqrt(np.maximum(self.m2 / self.count, 0.0))
        return {
            "min": self.min.tolist(),
            "max": self.max.tolist(),
            "mean": self.mean.tolist(),
            "std": std.tolist(),
            "count": [int(self.count)],
        }


def image_batch_for_stats(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, C) uint8 → (T*H*W, C) floats in [0, 1] so RunningStats yields per-channel stats."""
    f = np.asarray(frames)
    return (f.reshape(-1, f.shape[-1]).astype(np.float64)) / 255.0


def image_stats_dict(stats: RunningStats) -> dict[str, list]:
    """Reshape per-channel stats to LeRobot's (C, 1, 1) nesting."""
    d = stats.to_dict()
    return {k: (v if k == "count" else [[[x]] for x in v]) for k, v in d.items()}


def compute_stats(columns: Mapping[str, np.ndarray]) -> dict[str, dict[str, list]]:
    """Stats for every numeric column (N, ...) in one pass; non-numeric columns are skipped."""
    out: dict[str, dict[str, list]] = {}
    for name, arr in columns.items():
        a = np.asarray(arr)
        if a.dtype.kind not in "biuf" or a.shape[0] == 0:
            continue
        rs = RunningStats()
        rs.update(a.reshape(a.shape[0], -1) if a.ndim > 1 else a)
        out[name] = rs.to_dict()
    return out


def stats_from_json(d: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """stats.json → arrays, for callers that normalise with them."""
    return {feat: {k: np.asarray(v, dtype=np.float64) for k, v in s.items()} for feat, s in d.items()}
