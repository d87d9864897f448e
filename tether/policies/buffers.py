"""Replay buffers and batch mixing: the data side of every off-policy learner (SAC, RLPD, H2O, MBPO).

Why one home: real, simulated, offline and imagined transitions all flow through the same buffer type and
the same ``mix`` rule (each source gives its share of a batch), so learners differ only in their update.
``terminated`` is true only for real terminal states (not time-limit truncations), so targets bootstrap
through truncations. ``sample`` returns torch tensors keyed obs/action/reward/next_obs/done.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from tether.contract import IOContract
from tether.errors import TetherError

Batch = dict[str, torch.Tensor]


class ReplayBuffer:
    """Fixed-capacity ring buffer of (obs, action, reward, next_obs, terminated) in float32 numpy arrays.

    ``terminated`` is true only for real terminal states (not time-limit truncations), so targets bootstrap
    through truncations. ``sample`` returns torch tensors keyed obs/action/reward/next_obs/done.
    """

    def __init__(self, obs_size: int, action_size: int, capacity: int = 1_000_000, *, seed: int = 0) -> None:
        if capacity < 1:
            raise TetherError(f"replay capacity {capacity}; expected >= 1")
        self.obs_size, self.action_size, self.capacity = int(obs_size), int(action_size), int(capacity)
        self.obs = np.zeros((capacity, obs_size), np.float32)
        self.action = np.zeros((capacity, action_size), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.next_obs = np.zeros((capacity, obs_size), np.float32)
        self.done = np.zeros(capacity, np.float32)
        self.rng = np.random.default_rng(seed)
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray | float, next_obs: np.ndarray,
            terminated: np.ndarray | bool) -> None:
        """Add one transition or a batch (leading dim B)."""
        obs = np.asarray(obs, np.float32).reshape(-1, self.obs_size)
        b = obs.shape[0]
        action = np.asarray(action, np.float32).reshape(b, self.action_size)
        next_obs = np.asarray(next_obs, np.float32).reshape(b, self.obs_size)
        reward = np.asarray(reward, np.float32).reshape(b)
        terminated = np.asarray(terminated, np.float32).reshape(b)
        if b > self.capacity:
            obs, action, reward, next_obs, terminated = (x[-self.capacity:] for x in
                                                         (obs, action, reward, next_obs, terminated))
            b = self.capacity
        idx = (self.pos + np.arange(b)) % self.capacity
        self.obs[idx], self.action[idx], self.reward[idx] = obs, action, reward
        self.next_obs[idx], self.done[idx] = next_obs, terminated
        self.pos = int((self.pos + b) % self.capacity)
        self.size = int(min(self.size + b, self.capacity))

    def sample(self, batch_size: int) -> Batch:
        if self.size == 0:
            raise TetherError("cannot sample from an empty replay buffer")
        idx = self.rng.integers(0, self.size, size=batch_size)
        return {
            "obs": torch.from_numpy(self.obs[idx]),
            "action": torch.from_numpy(self.action[idx]),
            "reward": torch.from_numpy(self.reward[idx]),
            "next_obs": torch.from_numpy(self.next_obs[idx]),
            "done": torch.from_numpy(self.done[idx]),
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """Views of the stored transitions (oldest first is not guaranteed once the ring wraps)."""
        n = self.size
        return {"obs": self.obs[:n], "action": self.action[:n], "reward": self.reward[:n],
                "next_obs": self.next_obs[:n], "done": self.done[:n]}

    @classmethod
    def from_arrays(cls, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
                    terminated: np.ndarray, *, capacity: int | None = None, seed: int = 0) -> ReplayBuffer:
        """A buffer pre-filled from arrays (offline datasets, imagined rollouts)."""
        obs = np.asarray(obs)
        action = np.asarray(action)
        if obs.ndim != 2 or action.ndim != 2 or len(obs) != len(action):
            raise TetherError(f"from_arrays got obs {obs.shape}, action {action.shape}; expected (N, obs) and (N, act)")
        buf = cls(obs.shape[1], action.shape[1], capacity or max(len(obs), 1), seed=seed)
        buf.add(obs, action, reward, next_obs, terminated)
        return buf

    @classmethod
    def from_transitions(cls, source: Any, *, capacity: int | None = None, seed: int = 0,
                         contract: IOContract | None = None,
                         reward_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None
                         ) -> ReplayBuffer:
        """A buffer from a dataset, a dataset directory, a bag or a transitions dict (``tether.data.replay``)."""
        from tether.data.replay import load_transitions

        tr = source if isinstance(source, dict) else load_transitions(source, contract=contract, reward_fn=reward_fn)
        missing = [k for k in ("obs", "action", "reward", "next_obs", "terminal") if k not in tr]
        if missing:
            raise TetherError(f"transitions lack {missing}; expected obs, action, reward, next_obs, terminal")
        return cls.from_arrays(tr["obs"], tr["action"], tr["reward"], tr["next_obs"], tr["terminal"],
                               capacity=capacity, seed=seed)


def concat_batches(*batches: Batch) -> Batch:
    """Concatenate batches key-wise."""
    keys = batches[0].keys()
    return {k: torch.cat([b[k] for b in batches], dim=0) for k in keys}


def mix(sources: Sequence[tuple[ReplayBuffer, float]], batch_size: int) -> list[Batch]:
    """One batch per source, each its ``share`` of ``batch_size`` (the sizes add up exactly); an empty source
    gives its share to the others. The learner decides whether to concatenate them (SAC, RLPD, MBPO) or to
    weigh them apart (H2O)."""
    live = [(b, s) for b, s in sources if b is not None and len(b) > 0 and s > 0]
    if not live:
        raise TetherError("no data to learn from: every replay source is empty")
    total = sum(s for _, s in live)
    sizes = [int(round(batch_size * s / total)) for _, s in live]
    sizes[-1] = batch_size - sum(sizes[:-1])
    return [b.sample(n) for (b, _), n in zip(live, sizes) if n > 0]
