"""Toy tasks for the generative / offline-RL / V-GPS tests: a 2-D point mass that must reach the origin.

Numpy and vectorised so a whole evaluation is a few milliseconds; small enough that learning tests fit in
seconds, rich enough that imitating a mixed-quality dataset (BC) is measurably worse than offline RL.
"""

from __future__ import annotations

import numpy as np

from tether.contract import Field, IOContract

HORIZON = 25
STEP = 0.1


def pointmass_contract() -> IOContract:
    return IOContract(
        robot="pointmass", task="reach",
        observations=(Field.make("pos_error", 2, "m", "world"),),
        actions=(Field.make("velocity", 2, "m/s", "world", low=-1.0, high=1.0),),
        control_mode="ee_delta_pose", rate_hz=10.0,
    )


def reset(n: int, rng: np.random.Generator) -> np.ndarray:
    ang = rng.uniform(0, 2 * np.pi, n)
    rad = rng.uniform(0.6, 1.0, n)
    return np.stack([rad * np.cos(ang), rad * np.sin(ang)], 1).astype(np.float32)


def step(s: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s2 = np.clip(s + STEP * np.clip(a, -1, 1), -1.5, 1.5).astype(np.float32)
    return s2, (1.0 - np.linalg.norm(s2, axis=1)).astype(np.float32)


def expert(s: np.ndarray) -> np.ndarray:
    d = np.linalg.norm(s, axis=1, keepdims=True)
    return (-s / np.maximum(d, 1e-6) * np.minimum(1.0, d / STEP)).astype(np.float32)


def rollout_returns(act, n: int = 64, seed: int = 123) -> float:
    """Mean return of ``act(obs)->action`` (batched) over n episodes."""
    rng = np.random.default_rng(seed)
    s = reset(n, rng)
    total = np.zeros(n)
    for _ in range(HORIZON):
        s, r = step(s, act(s))
        total += r
    return float(total.mean())


def normalised_score(ret: float) -> float:
    """0 = uniformly random actions, 1 = the scripted expert."""
    rnd_rng = np.random.default_rng(7)
    lo = rollout_returns(lambda s: rnd_rng.uniform(-1, 1, s.shape).astype(np.float32))
    hi = rollout_returns(expert)
    return (ret - lo) / (hi - lo)


def mixed_dataset(episodes: int = 200, expert_frac: float = 0.2, seed: int = 0) -> dict[str, np.ndarray]:
    """Episodes from a noisy expert (``expert_frac``) and from uniformly random actions (the rest)."""
    rng = np.random.default_rng(seed)
    keys = ("obs", "action", "reward", "next_obs", "terminal", "episode")
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    n_exp = int(round(episodes * expert_frac))
    s = reset(episodes, rng)
    is_exp = np.arange(episodes) < n_exp
    for _ in range(HORIZON):
        a = rng.uniform(-1, 1, s.shape).astype(np.float32)
        a[is_exp] = np.clip(expert(s[is_exp]) + rng.normal(0, 0.1, (n_exp, 2)), -1, 1)
        s2, r = step(s, a)
        for k, v in zip(keys, (s, a, r, s2, np.zeros(episodes, bool), np.arange(episodes))):
            out[k].append(v)
        s = s2
    # stored episode by episode (rows of one episode contiguous, in time order)
    arr = {k: np.stack(v, 1) for k, v in out.items()}
    return {k: v.reshape(episodes * HORIZON, *v.shape[2:]) for k, v in arr.items()}
