"""Observation history and action-chunk helpers shared by the chunked generative policies.

Diffusion and flow policies condition on the last ``n_obs_steps`` observations and predict ``horizon`` future
actions at once. Three things must agree between training and deployment or the policy sees inputs it never
trained on: how a training window is padded at episode edges (``make_windows``), how the live history is
filled at the start of an episode (``ObservationHistory``: the first observation is repeated, exactly like
the edge padding), and how overlapping chunks become one action per control step (``ChunkExecutor``:
receding horizon or ACT-style temporal ensembling).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from tether.errors import TetherError

EXECUTION_MODES = ("receding", "ensemble")


def episode_ids_from_dones(dones: np.ndarray) -> np.ndarray:
    """Episode index per step from a done flag (terminal or truncated) that marks each episode's last step."""
    dones = np.asarray(dones).reshape(-1).astype(bool)
    ids = np.zeros(len(dones), dtype=np.int64)
    if len(dones) > 1:
        ids[1:] = np.cumsum(dones[:-1])
    return ids


def make_windows(
    obs: np.ndarray,
    actions: np.ndarray,
    episode_ids: np.ndarray | None,
    n_obs_steps: int,
    horizon: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Training pairs: (N, n_obs_steps, obs_size) observation windows ending at t and (N, horizon, A) chunks from t.

    Windows never cross an episode boundary: the first observation of the episode is repeated before it and
    the last action after it (the convention of Diffusion Policy), which is also what ``ObservationHistory``
    does at deployment. ``episode_ids`` must be non-decreasing along the rows (steps stored episode by
    episode); ``None`` means one episode.
    """
    obs = np.asarray(obs, dtype=np.float32)
    actions = np.asarray(actions, dtype=np.float32)
    if obs.ndim != 2 or actions.ndim != 2 or len(obs) != len(actions):
        raise TetherError(
            f"obs {obs.shape} and actions {actions.shape} must be 2-D with the same number of rows"
        )
    if n_obs_steps < 1 or horizon < 1:
        raise TetherError(f"n_obs_steps={n_obs_steps}, horizon={horizon}; expected both >= 1")
    n = len(obs)
    ids = np.zeros(n, dtype=np.int64) if episode_ids is None else np.asarray(episode_ids).reshape(-1)
    if len(ids) != n:
        raise TetherError(f"episode_ids has {len(ids)} entries; expected {n} (one per step)")
    if n and np.any(np.diff(ids) < 0):
        raise TetherError("episode_ids decrease somewhere; expected steps stored episode by episode")
    idx = np.arange(n)
    # first and last row of the episode each row belongs to
    change = np.r_[True, ids[1:] != ids[:-1]] if n else np.zeros(0, bool)
    starts = np.maximum.accumulate(np.where(change, idx, 0))
    last = np.r_[ids[1:] != ids[:-1], True] if n else np.zeros(0, bool)
    ends = np.minimum.accumulate(np.where(last, idx, n - 1)[::-1])[::-1]
    obs_idx = np.maximum(idx[:, None] + np.arange(-n_obs_steps + 1, 1)[None, :], starts[:, None])
    act_idx = np.minimum(idx[:, None] + np.arange(horizon)[None, :], ends[:, None])
    return obs[obs_idx], actions[act_idx]


class ObservationHistory:
    """The last ``n_steps`` observations per batch row, oldest first.

    At the start of an episode the first observation fills every slot (matching ``make_windows``);
    ``reset(rows)`` starts new episodes in some rows of a batch (autoreset), ``reset()`` in all. A change of
    batch size means a new set of episodes, so the history restarts rather than mixing rows. The same class
    fills the history in training (the trainer's batch) and at deployment (the policy's own), so both see
    the same windows.
    """

    def __init__(self, n_steps: int) -> None:
        if n_steps < 1:
            raise TetherError(f"n_obs_steps={n_steps}; expected >= 1")
        self.n_steps = n_steps
        self._buf: np.ndarray | None = None
        self._fresh: np.ndarray | None = None

    def reset(self, rows: np.ndarray | None = None) -> None:
        if rows is None or self._buf is None:
            self._buf = None
        else:
            self._fresh[rows] = True

    def push(self, obs: np.ndarray) -> np.ndarray:
        """Add one (B, obs_size) observation; return the (B, n_steps, obs_size) window ending with it."""
        obs = np.asarray(obs, dtype=np.float32)
        if self._buf is None or self._buf.shape[0] != obs.shape[0] or self._buf.shape[2:] != obs.shape[1:]:
            self._buf = np.repeat(obs[:, None], self.n_steps, axis=1)
            self._fresh = np.zeros(obs.shape[0], dtype=bool)
            return self._buf.copy()
        self._buf[:, :-1] = self._buf[:, 1:]
        self._buf[:, -1] = obs
        if self._fresh.any():
            self._buf[self._fresh] = obs[self._fresh][:, None]
            self._fresh[:] = False
        return self._buf.copy()


class ChunkExecutor:
    """Turns predicted action chunks into one action per control step.

    ``receding``: run the first ``n_action_steps`` actions of a chunk, then ask for a new chunk (Diffusion
    Policy's receding horizon; fewer calls to the slow sampler). ``ensemble``: ask for a chunk every step and
    average every chunk's prediction for the current step with weights exp(-decay * i), i = 0 for the oldest
    chunk (ACT's temporal ensembling; smoother, one sampler call per step).
    """

    def __init__(self, horizon: int, n_action_steps: int, mode: str = "receding", decay: float = 0.01) -> None:
        if mode not in EXECUTION_MODES:
            raise TetherError(f"unknown execution mode {mode!r}; expected one of {', '.join(EXECUTION_MODES)}")
        if not 1 <= n_action_steps <= horizon:
            raise TetherError(f"n_action_steps={n_action_steps}; expected 1..horizon ({horizon})")
        self.horizon, self.n_action_steps, self.mode, self.decay = horizon, n_action_steps, mode, float(decay)
        self.reset()

    def reset(self) -> None:
        self._queue: deque[np.ndarray] = deque()
        self._chunks: deque[tuple[int, np.ndarray]] = deque()  # (step the chunk was predicted at, chunk)
        self._step = 0

    def needs_chunk(self, batch_size: int | None = None) -> bool:
        if self.mode == "ensemble":
            return True
        if batch_size is not None and self._queue and self._queue[0].shape[0] != batch_size:
            self.reset()
        return not self._queue

    def add_chunk(self, chunk: np.ndarray) -> None:
        chunk = np.asarray(chunk)
        if chunk.ndim != 3 or chunk.shape[1] != self.horizon:
            raise TetherError(f"chunk has shape {chunk.shape}; expected (B, {self.horizon}, action_size)")
        if self.mode == "receding":
            self._queue.extend(chunk[:, i] for i in range(self.n_action_steps))
        else:
            if self._chunks and self._chunks[-1][1].shape[0] != chunk.shape[0]:
                self.reset()
            self._chunks.append((self._step, chunk))
            while self._chunks and self._chunks[0][0] + self.horizon <= self._step:
                self._chunks.popleft()

    def next_action(self) -> np.ndarray:
        if self.mode == "receding":
            if not self._queue:
                raise TetherError("no queued action; call add_chunk first (needs_chunk() was True)")
            self._step += 1
            return self._queue.popleft()
        live = [(s, c) for s, c in self._chunks if s + self.horizon > self._step]
        if not live:
            raise TetherError("no chunk covers this step; call add_chunk first")
        weights = np.exp(-self.decay * np.arange(len(live)))
        preds = np.stack([c[:, self._step - s] for s, c in live], axis=0)
        action = np.tensordot(weights / weights.sum(), preds, axes=1)
        self._step += 1
        return action.astype(preds.dtype)


__all__ = ["ChunkExecutor", "EXECUTION_MODES", "ObservationHistory", "episode_ids_from_dones", "make_windows"]
