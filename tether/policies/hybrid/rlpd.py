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

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from tether.errors import TetherError
from tether.policies.hybrid.common import (
    EnvLike,
    ProgressFn,
    RunAdapter,
    check_transitions,
    critic_warmup,
    real_buffer,
    is_sac_actor,
    policy_states,
    warm_start_actor,
)
from tether.policies.rl.common import config_from_dict, config_to_dict, env_factory, probe_env, set_action_bias
from tether.policies.rl.sac import SAC, SACConfig, train_sac


@dataclass
class RLPDConfig(SACConfig):
    """SACConfig with RLPD's defaults, plus the warm-up used when starting from a checkpoint."""

    utd: int = 20
    num_qs: int = 10
    num_min_qs: int = 2
    critic_layer_norm: bool = True
    offline_ratio: float = 0.5
    learning_starts: int = 0
    init_alpha: float = 0.1
    critic_warmup: int = 1000  # critic-only updates on real data before the loaded actor is trained
    distill_states: int = 2000  # env steps of a non-SAC parent policy whose states its distillation uses

    def sac_config(self) -> SACConfig:
        names = {f.name for f in fields(SACConfig)}
        return SACConfig(**{k: getattr(self, k) for k in names})


def train_rlpd(
    env: EnvLike,
    real: dict[str, np.ndarray],
    total_steps: int,
    config: RLPDConfig | dict[str, Any] | None = None,
    *,
    seed: int = 0,
    policy: Any = None,
    progress: ProgressFn | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> SAC:
    """``total_steps`` env steps of RLPD; every batch is half real data, half fresh rollouts.

    ``policy`` (a loaded checkpoint) is the starting actor. Returns the SAC learner (``.policy`` deploys).
    """
    cfg = config if isinstance(config, RLPDConfig) else config_from_dict(RLPDConfig, config, "RLPD")
    if total_steps < 1:
        raise TetherError(f"steps={total_steps}; expected a positive number of env steps")
    if not 0.0 < cfg.offline_ratio < 1.0:
        raise TetherError(f"offline_ratio={cfg.offline_ratio}; expected a share strictly between 0 and 1")
    factory = env_factory(env, **(env_kwargs or {}))
    info = probe_env(factory)
    contract = policy.contract if policy is not None else info.contract
    contract.check_compatible(info.contract, what="fine-tuning env")
    real = check_transitions(real, contract)
    sac_cfg = cfg.sac_config()
    sac = SAC(contract, sac_cfg, seed=seed)
    warm = None
    if policy is not None:
        states = real["obs"] if is_sac_actor(policy) else np.concatenate(
            [real["obs"], policy_states(env, policy, cfg.distill_states, seed=seed, env_kwargs=env_kwargs)])
        warm = warm_start_actor(sac, policy, states, seed=seed)
    elif cfg.init_neutral_action:
        set_action_bias(sac.policy, info.neutral_action)
    offline = real_buffer(real, seed=seed)
    if policy is not None:
        critic_warmup(sac, lambda: offline.sample(cfg.batch_size), cfg.critic_warmup)
    run = RunAdapter(total_steps, progress)
    # agent= makes train_sac learn from the first step; a fresh actor keeps its random-action phase through
    # learning_starts only when there is no prior data, which RLPD always has.
    sac = train_sac(env, total_steps, sac_cfg, seed=seed, run=run, agent=sac, offline_buffer=offline,
                    env_kwargs=env_kwargs)
    sac.policy.extra.update({"algo": "rlpd", "rlpd_config": config_to_dict(cfg), "actor_init": warm or "fresh"})
    return sac




def train_rlpd_cli(spec: Any, run: Any) -> Any:
    """``tether train ENV --algo rlpd --dataset REAL``: RLPD from scratch with the dataset as prior data."""
    from tether.policies.envs import env_contract, make_env
    from tether.policies.hybrid.common import load_real

    if not spec.dataset:
        raise TetherError("--algo rlpd needs prior data: pass --dataset DATASET_OR_BAG")
    probe = make_env(spec.env_id, backend=spec.backend, dr=spec.dr)
    try:
        contract = env_contract(probe, spec.env_id)
    finally:
        probe.close()
    real, prov = load_real(spec.dataset, contract)

    def progress(step: int, _total: int, metrics: dict[str, float]) -> None:
        run.advance(step)
        run.log(step, metrics)

    sac = train_rlpd(spec.env_id, real, spec.steps or 20_000, spec.config, seed=spec.seed, progress=progress,
                     env_kwargs={"backend": spec.backend, "dr": spec.dr})
    sac.policy.extra["real_data"] = prov
    return sac.policy


__all__ = ["RLPDConfig", "train_rlpd", "train_rlpd_cli"]
