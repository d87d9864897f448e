"""Per-feature statistics in the shape LeRobot v3's ``meta/stats.json`` uses: min, max, mean, std, count and
the quantiles q01, q10, q50, q90, q99.

Why quantiles: LeRobot's QUANTILES / QUANTILE10 normalisation (pi0.5's default) maps q01..q99 (or q10..q90)
to [-1, 1] and refuses a dataset whose stats lack them.

Statistics are accumulated incrementally so a recorder can keep them current after every episode without
re-reading the data, and so episode stats merge into dataset stats. Mean and variance use Chan et al.'s
parallel update (exact). Quantiles come from a histogram per dimension (``bins`` bins between the running min
and max, LeRobot's RunningQuantileStats method, 5000 bins by default) that is re-binned when the range grows
and merged bin-wise across episodes, so the error stays within a few bin widths, (max - min) / 5000 each.
Images are summarised per channel in [0, 1] with shape (C, 1, 1) and ``count`` = number of frames, as
LeRobot does for cameras.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{round(q * 100):02d}" for q in QUANTILES)  # q01 q10 q50 q90 q99, LeRobot's names
STAT_KEYS = ("min", "max", "mean", "std", "count", *QUANTILE_KEYS)
DEFAULT_BINS = 5000
_GROW = 0.1  # a range that grows is widened by this fraction on the growing side: fewer re-binnings


class RunningStats:
    """Streaming mean/variance/min/max/quantiles over the leading axis of batches (N, *feature_shape).

    ``bounds``: a fixed histogram range known in advance (images in [0, 1]); values outside it are clipped into
    the end bins for the quantiles only. ``update(batch, samples=k)`` says how many samples (e.g. frames) a
    batch stands for when its rows are not samples (the pixels of one image); ``count`` reports samples.
    """

    def __init__(self, bins: int = DEFAULT_BINS, bounds: tuple[float, float] | None = None) -> None:
        self.bins = int(bins)
        self.bounds = bounds
        self.count = 0  # rows seen (the weight of mean/variance)
        self.samples = 0  # what ``count`` in the output means: rows, or frames for images
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None
        self.min: np.ndarray | None = None
        self.max: np.ndarray | None = None
        self.hist: np.ndarray | None = None  # (D, bins) counts of finite values
        self.lo: np.ndarray | None = None  # (D,) histogram range per dimension
        self.hi: np.ndarray | None = None

    # ------------------------------------------------------------------ accumulation
    def update(self, batch: np.ndarray, samples: int | None = None) -> None:
        x = np.asarray(batch, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        x = x.reshape(x.shape[0], -1)
        n = x.shape[0]
        if n == 0:
            return
        b_mean = x.mean(axis=0)
        b_m2 = ((x - b_mean) ** 2).sum(axis=0)
        self._merge_moments(n, n if samples is None else int(samples), b_mean, b_m2, x.min(axis=0), x.max(axis=0))
        self._add_to_histogram(x)

    def merge(self, other: RunningStats) -> None:
        if not other.count:
            return
        self._merge_moments(other.count, other.samples, other.mean, other.m2, other.min, other.max)  # type: ignore[arg-type]
        if other.hist is None:
            return
        if self.hist is None:
            self.hist, self.lo, self.hi = other.hist.copy(), other.lo.copy(), other.hi.copy()  # type: ignore[union-attr]
            return
        lo, hi = np.minimum(self.lo, other.lo), np.maximum(self.hi, other.hi)  # type: ignore[type-var]
        mine = self._rebin(self.hist, self.lo, self.hi, lo, hi)  # type: ignore[arg-type]
        self.hist = mine + self._rebin(other.hist, other.lo, other.hi, lo, hi)  # type: ignore[arg-type]
        self.lo, self.hi = lo, hi

    def _merge_moments(self, n: int, samples: int, mean: np.ndarray, m2: np.ndarray, lo: np.ndarray,
                       hi: np.ndarray) -> None:
        self.samples += samples
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

    def _add_to_histogram(self, x: np.ndarray) -> None:
        finite = np.isfinite(x)
        if not finite.any():
            return
        big = np.finfo(np.float64).max
        b_lo = np.where(finite, x, big).min(axis=0)
        b_hi = np.where(finite, x, -big).max(axis=0)
        d = x.shape[1]
        if self.hist is None:
            if self.bounds is not None:
                lo, hi = np.full(d, float(self.bounds[0])), np.full(d, float(self.bounds[1]))
            else:
                empty = b_lo > b_hi  # a column with no finite value yet
                lo, hi = np.where(empty, 0.0, b_lo), np.where(empty, 0.0, b_hi)
            self.hist, self.lo, self.hi = np.zeros((d, self.bins)), lo, hi
        elif self.bounds is None:
            grew_lo, grew_hi = b_lo < self.lo, b_hi > self.hi  # type: ignore[operator]
            changed = grew_lo | grew_hi
            if changed.any():
                lo, hi = np.minimum(self.lo, b_lo), np.maximum(self.hi, b_hi)  # type: ignore[type-var]
                margin = _GROW * (hi - lo)
                lo, hi = np.where(grew_lo, lo - margin, lo), np.where(grew_hi, hi + margin, hi)
                self.hist[changed] = self._rebin(  # type: ignore[index]
                    self.hist[changed], self.lo[changed], self.hi[changed], lo[changed], hi[changed])  # type: ignore[index]
                self.lo, self.hi = lo, hi
        rows = np.broadcast_to(np.arange(d), x.shape)[finite]
        np.add.at(self.hist, (rows, self._bin_index(x, self.lo, self.hi)[finite]), 1.0)  # type: ignore[arg-type]

    def _bin_index(self, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Bin of each value (columns are dimensions); values outside [lo, hi] and NaN land in the end bins."""
        width = np.where(hi > lo, hi - lo, 1.0)
        with np.errstate(invalid="ignore", over="ignore"):
            pos = np.floor((x - lo) / width * self.bins)
        return np.clip(np.nan_to_num(pos, nan=0.0), 0, self.bins - 1).astype(np.int64)

    def _rebin(self, hist: np.ndarray, lo: np.ndarray, hi: np.ndarray, new_lo: np.ndarray,
               new_hi: np.ndarray) -> np.ndarray:
        """Move each old bin's count to the new bin holding the old bin's centre (only non-empty bins)."""
        rows, cols = np.nonzero(hist)
        centres = lo[rows] + (hi - lo)[rows] * (cols + 0.5) / self.bins
        width = np.where(new_hi > new_lo, new_hi - new_lo, 1.0)[rows]
        idx = np.clip(np.floor((centres - new_lo[rows]) / width * self.bins), 0, self.bins - 1).astype(np.int64)
        out = np.zeros_like(hist)
        np.add.at(out, (rows, idx), hist[rows, cols])
        return out

    # ------------------------------------------------------------------ results
    def quantiles(self, qs: tuple[float, ...] = QUANTILES) -> np.ndarray:
        """(len(qs), D) quantiles, linearly interpolated inside the histogram bin that holds them."""
        if self.hist is None:
            return np.full((len(qs), 0 if self.mean is None else self.mean.size), np.nan)
        d = self.hist.shape[0]
        cum = np.cumsum(self.hist, axis=1)
        width = (self.hi - self.lo) / self.bins  # type: ignore[operator]
        rows = np.arange(d)
        out = np.empty((len(qs), d))
        for i, q in enumerate(qs):
            target = q * cum[:, -1]
            k = np.minimum((cum < target[:, None]).sum(axis=1), self.bins - 1)  # first bin reaching the target
            before = np.where(k > 0, cum[rows, k - 1], 0.0)
            inside = cum[rows, k] - before
            frac = np.divide(target - before, inside, out=np.zeros(d), where=inside > 0)
            out[i] = self.lo + (k + frac) * width  # type: ignore[operator]
        # the histogram's range may be padded: a quantile never lies outside the data
        return np.clip(out, self.min, self.max) if self.min is not None else out

    def to_dict(self) -> dict[str, list]:
        """JSON-ready lists; std is the population std (ddof=0), as LeRobot computes it."""
        if self.count == 0:
            return {}
        std = np.sqrt(np.maximum(self.m2 / self.count, 0.0))
        out = {
            "min": self.min.tolist(),
            "max": self.max.tolist(),
            "mean": self.mean.tolist(),
            "std": std.tolist(),
            "count": [int(self.samples)],
        }
        for key, row in zip(QUANTILE_KEYS, self.quantiles()):
            out[key] = row.tolist()
        return out


def image_batch_for_stats(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, C) uint8 → (T*H*W, C) floats in [0, 1] so RunningStats yields per-channel stats."""
    f = np.asarray(frames)
    return (f.reshape(-1, f.shape[-1]).astype(np.float64)) / 255.0


def image_running_stats() -> RunningStats:
    """Stats of one camera: pixel values in [0, 1] (a fixed histogram range, one bin per 8-bit level or finer)."""
    return RunningStats(bins=DEFAULT_BINS, bounds=(0.0, 1.0))


def image_stats_dict(stats: RunningStats) -> dict[str, list]:
    """Reshape per-channel stats to LeRobot's (C, 1, 1) nesting; ``count`` stays the number of frames."""
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
