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
    num_envs: int = 1,
) -> dict[str, np.ndarray]:
    """``steps`` transitions (obs, action, reward, next_obs, done, timeout) from ``env_id``, collected on
    ``num_envs`` batched envs; each env's transitions stay contiguous and in time order (so multi-step windows
    are real trajectories), one env after another.

    ``policy`` is "expert" (the env's scripted expert), "random" (uniform actions) or a callable
    obs batch (N, obs_size) -> normalised actions. Each episode draws a noise scale uniformly from ``noise`` (a
    range of Gaussian std in normalised action units) added to every action, then clipped to [-1, 1].
    """
    from tether.policies.rl.common import make_vec_env

    if steps < 1:
        raise TetherError(f"collect steps={steps}; expected >= 1")
    if isinstance(policy, str) and policy not in ("expert", "random"):
        raise TetherError(f"collect policy {policy!r}; expected 'expert', 'random' or a callable")
    n = max(1, min(int(num_envs), steps))
    venv, info = make_vec_env(env_id, n, **(env_kwargs or {}))
    rng = np.random.default_rng(seed)
    a_size = info.contract.action_size
    keys = ("obs", "action", "reward", "next_obs", "done", "timeout")
    out: dict[str, list] = {k: [] for k in keys}
    try:
        obs, _ = venv.reset_batch(seed)
        sigma = rng.uniform(*noise, size=n)
        while len(out["obs"]) * n < steps:
            if policy == "expert":
                a = venv.expert_action().astype(np.float64)
            elif policy == "random":
                a = rng.uniform(-1.0, 1.0, (n, a_size))
            else:
                a = np.asarray(policy(obs), np.float64).reshape(n, a_size)
            a = np.clip(a + sigma[:, None] * rng.standard_normal((n, a_size)), -1.0, 1.0).astype(np.float32)
            res = venv.step_batch(a)
            for k, v in zip(keys, (obs, a, res.reward, res.final_obs, res.terminated,
                                   res.truncated & ~res.terminated)):
                out[k].append(v)
            done = res.done
            sigma[done] = rng.uniform(*noise, size=int(done.sum()))
            obs = res.obs
    except TetherError as exc:
        if policy == "expert" and "no scripted expert" in str(exc):
            raise TetherError(f"env {env_id} has no scripted expert; pass policy='random' or a callable") from None
        raise
    finally:
        venv.close()
    # (T, N, ...) -> (N*T, ...) with each env's steps contiguous, then cut to ``steps``
    return {k: np.swapaxes(np.asarray(v, np.float32), 0, 1).reshape(-1, *np.shape(v[0])[1:])[:steps]
            for k, v in out.items()}
