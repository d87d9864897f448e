"""Executing action chunks: temporal ensembling (ACT) or plain receding horizon, for any chunked policy.

A chunked policy (diffusion, flow, ACT) predicts H future actions at once. Executing them open loop for H
ticks reacts late; re-querying every tick and taking only the first action throws away the smoothness the
chunk encodes. ACT's temporal ensembling (Zhao et al. 2023) keeps every chunk that covers the current tick
and averages their predictions for it with weights exp(-k * i), i = 0 for the oldest prediction, so the
command changes smoothly while still folding in new observations. Receding horizon executes ``execute_steps``
actions of the newest chunk, then asks again. Both are pure bookkeeping on (H, A) arrays.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from tether.errors import TetherError

CHUNK_MODES = ("ensemble", "receding")


def ensemble_weights(n: int, k: float) -> np.ndarray:
    """ACT weights for ``n`` predictions of one tick, oldest first: exp(-k i) normalised to sum to 1.

    k > 0 favours old predictions (ACT's default 0.01: smooth), k < 0 favours new ones (reactive), k = 0 averages.
    """
    w = np.exp(-k * np.arange(n, dtype=float))
    return w / w.sum()


class ChunkExecutor:
    """Turns chunks queried at some ticks into one action per tick.

    Usage each tick: ``if ex.needs_chunk(): ex.add_chunk(policy.act_chunk(obs)[0])``, then
    ``a = ex.next_action()`` (which advances the tick counter).
    """

    def __init__(
        self,
        horizon: int,
        action_size: int,
        *,
        mode: str = "ensemble",
        k: float = 0.01,
        query_every: int = 1,
        execute_steps: int | None = None,
    ) -> None:
        if mode not in CHUNK_MODES:
            raise TetherError(f"chunk mode {mode!r} is unknown; expected one of {', '.join(CHUNK_MODES)}")
        if horizon < 1 or action_size < 1:
            raise TetherError(f"chunk shape ({horizon}, {action_size}); expected horizon >= 1, action_size >= 1")
        self.horizon, self.action_size, self.mode, self.k = int(horizon), int(action_size), mode, float(k)
        if mode == "receding":
            query_every = execute_steps if execute_steps is not None else horizon
        if not 1 <= query_every <= horizon:
            raise TetherError(f"query period {query_every} ticks; expected 1..{horizon} (the chunk horizon)")
        self.query_every = int(query_every)
        self.reset()

    def reset(self) -> None:
        self.t = 0  # index of the tick the next action is for
        self._chunks: deque[tuple[int, np.ndarray]] = deque()  # (tick the chunk starts at, (H, A) actions)

    def needs_chunk(self) -> bool:
        """True when the policy should be queried this tick (before :meth:`next_action`)."""
        if not self._chunks:
            return True
        return (self.t - self._chunks[-1][0]) >= self.query_every

    def add_chunk(self, chunk: np.ndarray) -> None:
        """Register a chunk predicted at the current tick; chunk[j] is the action for tick t + j."""
        chunk = np.asarray(chunk, dtype=float)
        if chunk.shape != (self.horizon, self.action_size):
            raise TetherError(
                f"action chunk has shape {chunk.shape}; expected ({self.horizon}, {self.action_size})"
            )
        if self.mode == "receding":
            self._chunks.clear()
        self._chunks.append((self.t, chunk.copy()))

    def next_action(self) -> np.ndarray:
        """The action for the current tick; advances to the next tick."""
        t = self.t
        while self._chunks and self._chunks[0][0] + self.horizon <= t:
            self._chunks.popleft()  # chunks that no longer cover this tick (or any later one)
        if not self._chunks:
            raise TetherError(f"no action chunk covers tick {t}; call add_chunk when needs_chunk() is True")
        if self.mode == "receding":
            start, chunk = self._chunks[-1]
            action = chunk[t - start]
        else:
            preds = np.stack([chunk[t - start] for start, chunk in self._chunks])  # oldest first
            action = ensemble_weights(len(preds), self.k) @ preds
        self.t += 1
        return action
