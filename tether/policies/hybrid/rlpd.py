"""RLPD-style fine-tuning (Ball et al., 2023): prior real data and fresh interaction, sampled 50/50, with
LayerNorm critics, a REDQ-style critic ensemble (min over a random subset) and a high update-to-data ratio.

Why it is a thin layer over ``train_sac``: SAC already has every RLPD ingredient as an option; what this
module adds is the offline-to-online part — start from a sim-trained checkpoint (its contract and observation
normalisation kept; a SAC actor taken over as is, any other policy distilled into one), fit the fresh critics
to that actor on the real data before the actor moves (so fine-tuning does not first forget what simulation
taught it), then continue with symmetric sampling of real data and fresh rollouts in ``env`` (the robot, a
served robot, or a simulator).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tether.policies.base import Policy
from tether.policies.hybrid.common import EnvLike, ProgressFn, RunAdapter, check_run, fit_to_env, real_buffer
from tether.policies.hybrid.common import start_actor, train_cli
from tether.policies.hybrid.config import HybridConfig
from tether.policies.rl.common import config_from_dict, config_to_dict, env_factory, probe_env
from tether.policies.rl.sac import SAC, train_sac


@dataclass
class RLPDConfig(HybridConfig):
    """HybridConfig with RLPD's defaults: a high update-to-data ratio, a large LayerNorm critic ensemble."""

    utd: int = 20
    num_qs: int = 10
    num_min_qs: int = 2
    critic_layer_norm: bool = True
    offline_ratio: float = 0.5
    learning_starts: int = 0


def train_rlpd(
    env: EnvLike,
    real: dict[str, np.ndarray],
    total_steps: int,
    config: RLPDConfig | dict[str, Any] | None = None,
    *,
    seed: int = 0,
    policy: Policy | None = None,
    progress: ProgressFn | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> SAC:
    """``total_steps`` env steps of RLPD; every batch is half real data, half fresh rollouts.

    ``policy`` (a loaded checkpoint) is the starting actor. Returns the SAC learner (``.policy`` deploys).
    """
    cfg = config if isinstance(config, RLPDConfig) else config_from_dict(RLPDConfig, config, "RLPD")
    check_run(cfg, total_steps)
    info = probe_env(env_factory(env, **(env_kwargs or {})))
    contract, real = fit_to_env(real, policy, info.contract, "fine-tuning env")
    sac_cfg = cfg.sac_config()
    sac = SAC(contract, sac_cfg, seed=seed)
    offline = real_buffer(real, seed=seed)
    warm = start_actor(sac, policy, real, env, cfg, info.neutral_action, offline, seed=seed, env_kwargs=env_kwargs)
    run = RunAdapter(total_steps, progress)
    # agent= makes train_sac learn from the first step; a fresh actor keeps its random-action phase through
    # learning_starts only when there is no prior data, which RLPD always has.
    sac = train_sac(env, total_steps, sac_cfg, seed=seed, run=run, agent=sac, offline_buffer=offline,
                    env_kwargs=env_kwargs)
    sac.policy.extra.update({"algo": "rlpd", "rlpd_config": config_to_dict(cfg), "actor_init": warm or "fresh"})
    return sac


def train_rlpd_cli(spec: Any, run: Any) -> Any:
    """``tether train ENV --algo rlpd --dataset REAL``: RLPD from scratch with the dataset as prior data."""
    return train_cli(spec, run, train_rlpd, "rlpd", "prior data")


__all__ = ["RLPDConfig", "train_rlpd", "train_rlpd_cli"]
