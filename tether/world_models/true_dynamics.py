"""Known (error-free) dynamics behind the WorldModel interface, and a 2-D point mass to use them on.

Why: the edge-of-reach finding (Sims et al., RAVL) is that offline model-based RL fails *even with the true
dynamics*, because truncated rollouts leave their last states' values bootstrapped from Q-values nothing
ever trains. The honest regression test for a model-based trainer is therefore to hand it the exact
dynamics and check that its value targets stay bounded; ``TrueDynamics`` makes any exact step function look
like a fitted world model (zero disagreement) so the same trainer code runs on both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from tether.errors import TetherError

StepFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


class TrueDynamics:
    """WorldModel over an exact batched step function ``(obs, action) -> (next_obs, reward, done)``."""

    kind = "true_dynamics"

    def __init__(self, obs_size: int, action_size: int, step_fn: StepFn) -> None:
        self.obs_size, self.action_size = int(obs_size), int(action_size)
        self.step_fn = step_fn

    def fit(self, data: Mapping[str, np.ndarray], **kwargs: Any) -> dict[str, float]:
        return {}  # nothing to learn

    def step(self, obs, action, *, deterministic: bool = False):
        obs = np.asarray(obs, np.float32)
        action = np.asarray(action, np.float32)
        if obs.ndim != 2 or obs.shape[1] != self.obs_size or action.shape != (obs.shape[0], self.action_size):
            raise TetherError(f"obs {obs.shape} / action {action.shape}; expected (B, {self.obs_size}) / "
                              f"(B, {self.action_size})")
        nxt, r, d = self.step_fn(obs, action)
        return (np.asarray(nxt, np.float32), np.asarray(r, np.float32).reshape(-1), np.asarray(d, bool).reshape(-1),
                np.zeros(obs.shape[0], np.float32))

    @torch.no_grad()
    def plan_returns(self, obs: torch.Tensor, seqs: torch.Tensor, *, gamma: float = 0.99, reward_fn=None,
                     done_fn=None, uncertainty_penalty: float = 0.0) -> torch.Tensor:
        b, k, h, a = seqs.shape
        o = obs.numpy().repeat(k, 0)
        total, alive = np.zeros(b * k), np.ones(b * k)
        acts = seqs.reshape(b * k, h, a).numpy()
        for t in range(h):
            o2, r, d, _ = self.step(o, acts[:, t])
            if reward_fn is not None:
                r = reward_fn(torch.as_tensor(o), torch.as_tensor(acts[:, t]), torch.as_tensor(o2)).numpy()
            total += gamma ** t * alive * r
            alive = alive * ~d
            o = o2
        return torch.as_tensor(total.reshape(b, k), dtype=torch.float32)


class PointMass:
    """A 2-D point mass, x' = x + step·a, reward -min(|x' - goal|, 2), no termination.

    Deterministic and cheap, so Monte-Carlo returns of any policy are exact. Rewards are never positive, so
    every true Q-value is <= 0 and any positive estimate is plain over-estimation; states are unbounded, so a
    policy that follows an over-estimated Q-value can wander off as far as the rollouts let it.
    """

    obs_size = 2
    action_size = 2

    def __init__(self, goal: tuple[float, float] = (0.0, 0.0), step_size: float = 0.1) -> None:
        self.goal = np.asarray(goal, np.float32)
        self.step_size = float(step_size)

    def step(self, obs: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        nxt = np.asarray(obs, np.float32) + self.step_size * a
        r = -np.minimum(np.linalg.norm(nxt - self.goal, axis=-1), 2.0)
        return nxt, r.astype(np.float32), np.zeros(len(nxt), bool)

    def model(self) -> TrueDynamics:
        return TrueDynamics(self.obs_size, self.action_size, self.step)

    def dataset(self, n: int, *, center: tuple[float, float] = (1.0, 0.0), radius: float = 0.1,
                action_mean: tuple[float, float] = (0.0, 0.0), action_std: float = 0.2,
                seed: int = 0) -> dict[str, np.ndarray]:
        """Transitions from a narrow behaviour policy around ``center``: the offline data of the RAVL test."""
        rng = np.random.default_rng(seed)
        obs = (np.asarray(center) + rng.uniform(-radius, radius, (n, 2))).astype(np.float32)
        act = np.clip(np.asarray(action_mean) + action_std * rng.standard_normal((n, 2)), -1, 1).astype(np.float32)
        nxt, r, d = self.step(obs, act)
        return {"obs": obs, "action": act, "reward": r, "next_obs": nxt, "done": d.astype(np.float32)}

    def mc_return(self, policy: Callable[[np.ndarray], np.ndarray], start: np.ndarray, gamma: float,
                  horizon: int = 200) -> np.ndarray:
        """Exact discounted return of a deterministic ``policy`` from each start state (B,)."""
        obs = np.asarray(start, np.float32)
        total = np.zeros(len(obs))
        for t in range(horizon):
            obs, r, _ = self.step(obs, policy(obs))
            total += gamma ** t * r
        return total
