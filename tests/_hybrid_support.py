"""Shared helpers for the hybrid fine-tuning tests and benchmarks: "real" transitions recorded with a policy."""

from __future__ import annotations

from typing import Any

import numpy as np

KEYS = ("obs", "action", "reward", "next_obs", "terminal")


def record_transitions(env: Any, policy: Any, episodes: int, *, seed: int = 100,
                       max_steps: int = 250) -> dict[str, np.ndarray]:
    """``episodes`` rollouts of ``policy`` in ``env`` (reset seeds ``seed``, ``seed`` + 1, ...; each at most
    ``max_steps`` long) as the float32 transition arrays the fine-tuners take; ``env`` is closed afterwards."""
    out: dict[str, list] = {k: [] for k in KEYS}
    try:
        for ep in range(episodes):
            o, _ = env.reset(seed=seed + ep)
            for _ in range(max_steps):
                a = policy.act(o)
                o2, r, te, tr, _ = env.step(a)
                for k, v in zip(KEYS, (o, a, r, o2, te)):
                    out[k].append(v)
                o = o2
                if te or tr:
                    break
    finally:
        env.close()
    return {k: np.asarray(v, np.float32) for k, v in out.items()}
