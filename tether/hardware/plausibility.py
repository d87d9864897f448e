"""Plausibility of incoming state: what a message must satisfy before it may become the robot's state.

Why: one malformed or absurd state message (a NaN or zero quaternion, a byte-swapped payload decoding to
1e38, a /joint_states without the arm's joints, velocities of 1e9, a stamp of 2^63) must neither crash the
control loop nor reach the policy. Adapters run these checks on every message as it arrives; a failing
message is dropped and counted per reason (:class:`Rejections`) and never becomes state, so the newest good
state ages and the guard's stale path holds or damps until good state returns. Checks raise
:class:`Implausible` carrying a short reason key ("not_finite", "quat_not_unit", "stamp_backwards" ...).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import numpy as np

QUAT_NORM_TOL = 0.05  # |q| may be 1 +- this (float32 estimators drift a little; a zero or garbage q never passes)
FUTURE_LIMIT_S = 86_400.0  # a first stamp more than a day past the wall clock is no clock at all (2^63 ns...)


class Implausible(Exception):
    """A state message failed a plausibility check; ``reason`` is the key it is counted under."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def finite(name: str, value: np.ndarray) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise Implausible(f"{name}_not_finite")
    return arr


def bounded(name: str, value: np.ndarray, bound: float) -> np.ndarray:
    """Finite and every |element| <= bound (bound inf: finiteness only)."""
    arr = finite(name, value)
    if arr.size and float(np.max(np.abs(arr))) > bound:
        raise Implausible(f"{name}_out_of_bounds", f"|{name}| {float(np.max(np.abs(arr))):.3g} > {bound:g}")
    return arr


def unit_quaternion(name: str, q: np.ndarray) -> np.ndarray:
    arr = finite(name, q)
    n = float(np.linalg.norm(arr))
    if arr.shape[-1:] != (4,) or abs(n - 1.0) > QUAT_NORM_TOL:
        raise Implausible(f"{name}_not_unit", f"|q| = {n:.3g}")
    return arr / n


class StampCheck:
    """Source stamps of one stream must advance with the local clock: never backwards, never jumping ahead by
    more than the local time elapsed plus ``tolerance_s``, never absurd on the first message.

    A source that reboots starts its clock again (PX4 boot time, Unitree tick); if nothing has been accepted
    for ``reanchor_after_s`` the next sane stamp re-anchors the check (counted in ``reanchors``), so a
    rebooted robot is followed again, while a single bad stamp in a live stream never takes the anchor over.
    """

    def __init__(self, tolerance_s: float = 1.0, reanchor_after_s: float = 1.0,
                 wall: Callable[[], float] = time.time) -> None:
        self.tolerance_s, self.reanchor_after_s, self.wall = tolerance_s, reanchor_after_s, wall
        self.last: tuple[float, float] | None = None  # (source stamp s, local monotonic s)
        self.reanchors = 0

    def _sane_first(self, stamp_s: float) -> None:
        if stamp_s > self.wall() + FUTURE_LIMIT_S:
            raise Implausible("stamp_future", f"stamp {stamp_s:.6g} s is past any clock")

    def check(self, stamp_s: float, now: float) -> None:
        if not math.isfinite(stamp_s) or stamp_s < 0:
            raise Implausible("stamp_invalid", f"stamp {stamp_s!r}")
        if self.last is None:
            self._sane_first(stamp_s)
            self.last = (stamp_s, now)
            return
        s0, t0 = self.last
        reason = ""
        if stamp_s < s0:
            reason = "stamp_backwards"
        elif stamp_s - s0 > (now - t0) + self.tolerance_s:
            reason = "stamp_jump"
        if reason:
            if now - t0 > self.reanchor_after_s:
                self._sane_first(stamp_s)
                self.reanchors += 1
                self.last = (stamp_s, now)
                return
            raise Implausible(reason, f"stamp {stamp_s:.6f} s after {s0:.6f} s")
        self.last = (stamp_s, now)


class Rejections:
    """Thread-safe counts of dropped state messages: topic -> reason -> count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}
        self._last: dict[str, str] = {}

    def add(self, topic: str, reason: str, detail: str = "", n: int = 1) -> None:
        with self._lock:
            per = self._counts.setdefault(topic, {})
            per[reason] = per.get(reason, 0) + n
            self._last[topic] = detail or reason

    def last(self, topic: str) -> str:
        """The most recent rejection on ``topic`` in words ("" if none)."""
        with self._lock:
            return self._last.get(topic, "")

    def as_dict(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {t: dict(r) for t, r in self._counts.items()}

    def total(self) -> int:
        with self._lock:
            return sum(sum(r.values()) for r in self._counts.values())
