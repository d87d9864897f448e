"""Collect real transitions from a sim env for fitting world models (tests, benchmarks, ``tether wm``).

Why expert-plus-noise: a world model is only as good as the state-action coverage of its data. The scripted
expert keeps a quadrotor in the air long enough to see the hover regime, and per-episode Gaussian action
noise of random scale spreads the actions around it, which is what a planner will later try. Time-limit
truncations are kept apart from terminations so value targets can bootstrap through them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tether.errors import TetherError


def collect_transitions(
    env_id: str,
    steps: int,
    *,
    policy: Callable[[np.ndarray], np.ndarray] | str = "expert",
    noise: tuple[float, float] = (0.0, 0.0),
    seed: int = 0,
    env_kwargs: dict | None = None,
) -> dict[str, np.ndarray]:
    """``steps`` transitions (obs, action, reward, next_obs, done, timeout) from ``env_id``.

    ``policy`` is "expert" (the env's scripted expert), "random" (uniform actions) or a callable
    obs (obs_size,) -> normalised action. Each episode draws a noise scale uniformly from ``noise`` (a
    range of Gaussian std in normalised action units) added to every action, then clipped to [-1, 1].
    """
    from tether.policies.envs import make_env

    if steps < 1:
        raise TetherError(f"collect steps={steps}; expected >= 1")
    if isinstance(policy, str) and policy not in ("expert", "random"):
        raise TetherError(f"collect policy {policy!r}; expected 'expert', 'random' or a callable")
    env = make_env(env_id, **(env_kwargs or {}))
    rng = np.random.default_rng(seed)
    base = env.unwrapped
    if policy == "expert" and not hasattr(base, "expert_action"):
        env.close()
        raise TetherError(f"env {env_id} has no scripted expert; pass policy='random' or a callable")
    a_size = env.action_space.shape[0]
    keys = ("obs", "action", "reward", "next_obs", "done", "timeout")
    out: dict[str, list] = {k: [] for k in keys}
    try:
        obs, _ = env.reset(seed=seed)
        sigma = rng.uniform(*noise)
        for _ in range(steps):
            if policy == "expert":
                a = np.asarray(base.expert_action(), np.float64)
            elif policy == "random":
                a = rng.uniform(-1.0, 1.0, a_size)
            else:
                a = np.asarray(policy(obs), np.float64).reshape(a_size)
            a = np.clip(a + sigma * rng.standard_normal(a_size), -1.0, 1.0).astype(np.float32)
            nxt, r, term, trunc, _ = env.step(a)
            for k, v in zip(keys, (obs, a, r, nxt, term, trunc and not term)):
                out[k].append(v)
            obs = nxt
            if term or trunc:
                obs, _ = env.reset(seed=int(rng.integers(1 << 31)))
                sigma = rng.uniform(*noise)
    finally:
        env.close()
    res = {k: np.asarray(v, np.float32) for k, v in out.items()}
    return res
