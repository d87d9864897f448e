"""H2O's settings: what it adds to the hybrid (SAC + real data) config, and the guarded fine-tuning defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tether.policies.hybrid.config import HybridConfig


@dataclass
class H2OConfig(HybridConfig):
    """HybridConfig (SAC learner, buffer, ``offline_ratio``: the share of each batch drawn from the real data,
    warm start) with H2O's own pieces: the dynamics-gap classifiers, the gap-weighted CQL penalty, and the
    guards used when fine-tuning a loaded policy."""

    # dynamics-gap classifiers
    disc_hidden: tuple[int, ...] = (256, 256)
    disc_lr: float = 3e-4
    disc_noise: float = 0.1  # std of Gaussian input noise, in normalised units
    disc_updates: int = 1  # classifier steps per critic step
    clip_ratio: tuple[float, float] = (1e-5, 1.0)
    # CQL-style penalty on simulated Q-values, weighted by the dynamics gap
    cql_weight: float = 0.01
    cql_temp: float = 1.0
    cql_actions: int = 10  # sampled actions per kind (uniform, π(s), π(s')) in the log-sum-exp
    gap_samples: int = 10  # next states drawn per simulated pair for the KL gap estimate
    gap_noise: float = 0.1  # std of those draws around the simulated next state, in normalised units
    actor_freeze: int = 1000  # sim steps (starting from a policy) with H2O critic updates but a fixed actor
    # Conservative fine-tuning of a loaded policy (finetune() turns these on; see FINETUNE_DEFAULTS):
    actor_lr: float | None = None  # None: lr
    bc_weight: float = 0.0  # > 0: TD3+BC-style actor loss, Q/|Q| + bc_weight·‖μ(s) − μ_start(s)‖²
    explore_noise: float | None = None  # std of Gaussian noise on the deterministic action in sim (None: π samples)
    freeze_td_tol: float = 0.0  # > 0: after actor_freeze, keep the actor frozen until the TD loss settles ...
    freeze_max: int = 0  # ... (relative change of its running mean below this tol), at most this many steps
    holdout: float = 0.0  # share of the real data (its tail) kept out of training for the final selection
    select_every: int = 0  # > 0: snapshot the actor every so many steps; return the best on the held-out data
    select_margin: float = 0.0  # a snapshot must beat the start policy's held-out score by this much
    select_max_shift: float = 0.0  # ... and move the mean action (RMS, held-out states) at most this much (0: any)


# What ``finetune()`` uses when H2O starts from a checkpoint (user config overrides each key). Why these values,
# measured on a PPO hover checkpoint vs a heavier, slower, 2-step-latency PyBullet quadrotor (benchmarks/RESULTS.md):
# 256-unit nets and 10×3 CQL actions cost ~0.2 s per step on one core, 64-unit nets ~10 ms; the fresh critic needs
# real-data warm-up and a frozen actor until its TD loss settles; the CQL penalty at 0.01 dragged Q below zero
# (0.001 does not); every actor step the critic asked for lowered the real return, so the actor moves slowly,
# is anchored to the start (TD3+BC weight 2.5) and is kept only if the critic prefers it on held-out real states by
# 2 % of |Q| while moving the mean action by at most 0.05 (RMS); otherwise the parent itself comes back.
FINETUNE_DEFAULTS: dict[str, Any] = {
    "hidden": (64, 64), "critic_hidden": (64, 64), "disc_hidden": (64, 64), "batch_size": 128,
    "cql_actions": 4, "gap_samples": 4, "cql_weight": 0.001, "gamma": 0.95,
    "autotune": False, "init_alpha": 0.01, "actor_lr": 3e-5, "bc_weight": 2.5, "explore_noise": 0.1,
    "critic_warmup": 2000, "actor_freeze": 1000, "freeze_td_tol": 0.05, "freeze_max": 2000,
    "holdout": 0.2, "select_every": 500, "select_margin": 0.02, "select_max_shift": 0.05,
}


__all__ = ["FINETUNE_DEFAULTS", "H2OConfig"]
