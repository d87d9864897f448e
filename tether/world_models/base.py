"""The world-model contract that planners and model-based trainers rely on, and imagined rollouts.

A world model predicts, for a batch of (observation, normalised action) pairs, the next observation, the
reward, whether the episode terminates, and how unsure it is. Planners (MPPI, CEM) and trainers (MBPO,
offline model-based RL) use only ``step`` and ``imagine``, so any model that implements them plugs in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tether.errors import TetherError
from tether.policies.base import Actor


@runtime_checkable
class WorldModel(Protocol):
    obs_size: int
    action_size: int

    def fit(self, data: Mapping[str, np.ndarray], **kwargs: Any) -> dict[str, float]: ...

    def step(
        self, obs: np.ndarray, action: np.ndarray, *, deterministic: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(B, obs), (B, act) -> next_obs (B, obs), reward (B,), done (B,) bool, uncertainty (B,)."""
        ...


@runtime_checkable
class PlanningModel(Protocol):
    """What a sampling planner needs: score many action sequences from a few start states in one call.

    Observation-space models (EnsembleWorldModel, TrueDynamics) and latent models (LatentWorldModel, which
    has no ``step`` in observation space because it never reconstructs observations) both provide it.
    """

    obs_size: int
    action_size: int

    def plan_returns(self, obs: Any, seqs: Any, *, gamma: float = 0.99, reward_fn: Any = None, done_fn: Any = None,
                     uncertainty_penalty: float = 0.0) -> Any:
        """obs (B, obs) tensor, seqs (B, K, H, act) tensor -> discounted returns (B, K) tensor."""
        ...


@dataclass
class Trajectory:
    """A batch of imagined rollouts, time-major: arrays are (H, B, ...).

    ``alive[t, b]`` is true while rollout b has neither terminated nor been truncated for uncertainty
    before step t; transitions with ``alive`` false are padding and must be ignored.
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray  # penalised reward if a penalty was asked for
    next_obs: np.ndarray
    done: np.ndarray
    uncertainty: np.ndarray
    alive: np.ndarray

    def transitions(self) -> dict[str, np.ndarray]:
        """The alive transitions flattened to a replay-buffer batch."""
        m = self.alive.reshape(-1)
        flat = lambda x: x.reshape(-1, *x.shape[2:])[m]  # noqa: E731
        return {"obs": flat(self.obs), "action": flat(self.action), "reward": flat(self.reward),
                "next_obs": flat(self.next_obs), "done": flat(self.done).astype(np.float32),
                "uncertainty": flat(self.uncertainty)}

    def returns(self, gamma: float = 1.0) -> np.ndarray:
        """Discounted sum of (penalised) rewards over alive steps, per rollout (B,)."""
        disc = gamma ** np.arange(self.reward.shape[0])[:, None]
        return (self.reward * self.alive * disc).sum(0)


def imagine(
    model: WorldModel,
    policy: Actor,
    start_obs: np.ndarray,
    horizon: int,
    *,
    penalty: float = 0.0,
    max_uncertainty: float | None = None,
    deterministic: bool = False,
    reward_fn: Any = None,
    done_fn: Any = None,
) -> Trajectory:
    """Roll ``policy`` (anything with ``act(obs)``) through ``model`` from real start states, in one batch.

    ``penalty`` subtracts ``penalty * uncertainty`` from each reward (MOPO); ``max_uncertainty`` ends a
    rollout at the first step whose uncertainty exceeds it (truncation, as in MOReL-style halting), so
    value targets are never built from states the model does not know. ``reward_fn``/``done_fn`` (torch
    functions of (obs, action, next_obs), see tether.world_models.rewards) replace the model's reward and
    termination heads when the task's reward is known.
    """
    if horizon < 1:
        raise TetherError(f"imagination horizon {horizon}; expected >= 1")
    obs = np.asarray(start_obs, np.float32)
    if obs.ndim != 2 or obs.shape[1] != model.obs_size:
        raise TetherError(f"start_obs has shape {obs.shape}; expected (B, {model.obs_size})")
    b = obs.shape[0]
    keys = ("obs", "action", "reward", "next_obs", "done", "uncertainty", "alive")
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    alive = np.ones(b, bool)
    for _ in range(horizon):
        action = np.asarray(policy.act(obs), np.float32)
        if action.shape != (b, model.action_size):
            raise TetherError(f"policy returned actions of shape {action.shape}; expected ({b}, {model.action_size})")
        nxt, rew, done, unc = model.step(obs, action, deterministic=deterministic)
        if reward_fn is not None or done_fn is not None:
            import torch

            t_args = (torch.as_tensor(obs), torch.as_tensor(action), torch.as_tensor(np.asarray(nxt, np.float32)))
            if reward_fn is not None:
                rew = reward_fn(*t_args).numpy()
            if done_fn is not None:
                done = done_fn(*t_args).numpy()
        if max_uncertainty is not None:
            alive = alive & (unc <= max_uncertainty)
        for k, v in zip(keys, (obs, action, rew - penalty * unc, nxt, done, unc, alive.copy())):
            out[k].append(np.asarray(v))
        alive = alive & ~done
        obs = nxt.astype(np.float32)
    return Trajectory(**{k: np.stack(v) for k, v in out.items()})
