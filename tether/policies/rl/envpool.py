"""A minimal synchronous pool of envs for on-policy and off-policy collection.

Why not gymnasium.vector.SyncVectorEnv: trainers need, at every step, the *final* observation of an episode that
just ended (to bootstrap truncated episodes), the privileged critic observation the tether envs put in
``info["privileged"]``, and per-episode return/success statistics; a flat loop over envs gives all three with
less overhead than unpacking the vector env's autoreset info dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from tether.policies.envs import episode_success


@dataclass
class StepResult:
    next_obs: np.ndarray  # (N, obs): observation to act on next (post-reset where an episode ended)
    reward: np.ndarray  # (N,)
    terminated: np.ndarray  # (N,) bool
    truncated: np.ndarray  # (N,) bool
    final_obs: np.ndarray  # (N, obs): the true next observation (pre-reset) — use for bootstrapping
    next_priv: np.ndarray | None = None  # (N, P) privileged obs matching next_obs
    final_priv: np.ndarray | None = None  # (N, P) privileged obs matching final_obs
    finished: list[dict[str, Any]] = field(default_factory=list)  # {"return", "length", "success"} per ended episode


class EnvPool:
    """N envs stepped in lock-step; episodes that end are reset immediately (seeded from ``seed``)."""

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], seed: int = 0, privileged_size: int = 0) -> None:
        self.envs = [fn() for fn in env_fns]
        self.n = len(self.envs)
        self.privileged_size = int(privileged_size)
        self._ss = np.random.SeedSequence(seed)
        self._ep_return = np.zeros(self.n)
        self._ep_len = np.zeros(self.n, dtype=np.int64)

    def _next_seed(self) -> int:
        return int(self._ss.spawn(1)[0].generate_state(1)[0])

    def _priv(self, info: dict[str, Any]) -> np.ndarray:
        p = info.get("privileged")
        if p is None:
            return np.zeros(self.privileged_size, dtype=np.float32)
        return np.asarray(p, dtype=np.float32).reshape(-1)

    def reset(self) -> tuple[np.ndarray, np.ndarray | None]:
        obs, priv = [], []
        for env in self.envs:
            o, info = env.reset(seed=self._next_seed())
            obs.append(np.asarray(o, dtype=np.float32))
            priv.append(self._priv(info))
        self._ep_return[:] = 0
        self._ep_len[:] = 0
        return np.stack(obs), (np.stack(priv) if self.privileged_size else None)

    def step(self, actions: np.ndarray) -> StepResult:
        n = self.n
        next_obs = [None] * n
        final_obs = [None] * n
        next_priv: list[Any] = [None] * n
        final_priv: list[Any] = [None] * n
        rew = np.zeros(n, dtype=np.float32)
        term = np.zeros(n, dtype=bool)
        trunc = np.zeros(n, dtype=bool)
        finished = []
        for i, env in enumerate(self.envs):
            o, r, te, tr, info = env.step(actions[i])
            o = np.asarray(o, dtype=np.float32)
            rew[i], term[i], trunc[i] = r, te, tr
            final_obs[i] = o
            if self.privileged_size:
                final_priv[i] = self._priv(info)
            self._ep_return[i] += float(r)
            self._ep_len[i] += 1
            if te or tr:
                finished.append({"return": float(self._ep_return[i]), "length": int(self._ep_len[i]),
                                 "success": episode_success(info)})
                self._ep_return[i] = 0.0
                self._ep_len[i] = 0
                o, info = env.reset(seed=self._next_seed())
                o = np.asarray(o, dtype=np.float32)
            next_obs[i] = o
            if self.privileged_size:
                next_priv[i] = self._priv(info)
        return StepResult(
            next_obs=np.stack(next_obs), reward=rew, terminated=term, truncated=trunc, final_obs=np.stack(final_obs),
            next_priv=np.stack(next_priv) if self.privileged_size else None,
            final_priv=np.stack(final_priv) if self.privileged_size else None,
            finished=finished,
        )

    def close(self) -> None:
        for env in self.envs:
            env.close()


# ---- scale-out seam (added for tether.scale; `tether train --ray ADDRESS` installs a remote pool here) ----
# None: the in-process EnvPool (the default; no Ray import, no Ray process). tether.scale.ray_backend.use_ray()
# sets it to a factory with EnvPool's signature and restores it afterwards.
REMOTE_POOL: Callable[..., EnvPool] | None = None


def make_env_pool(env_fns: Sequence[Callable[[], gym.Env]], seed: int = 0, privileged_size: int = 0) -> EnvPool:
    """The pool trainers should build: local EnvPool, or the remote twin ``--ray`` installed (same results)."""
    if REMOTE_POOL is not None:
        return REMOTE_POOL(env_fns, seed=seed, privileged_size=privileged_size)
    return EnvPool(env_fns, seed=seed, privileged_size=privileged_size)
