"""Diffusion-QL (Wang et al., 2023): a DDPM actor trained with behaviour cloning plus Q guidance.

The actor's action for the Q term is drawn with the full stochastic DDPM chain (T = 5 steps by default, "vp"
schedule as in the paper) and the gradient of Q flows back through every denoising step: that
backpropagation through the chain is the method (and its cost, which OFQL removes). Target actions for the TD
backup come from an EMA copy of the actor. The deployed policy samples ``num_candidates`` actions and runs
the one the critic ranks best (Diffusion-QL's action selection, implemented as a ``VGPSPolicy``); its sampler
is DDIM (η = 0) over the same T steps, which keeps deployment deterministic given the noise and exportable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from tether.contract import IOContract
from tether.policies.diffusion import DiffusionGenerator, DiffusionPolicy
from tether.policies.offline.common import Critic, OfflineData, QGuidedConfig
from tether.policies.offline.q_guided import QGuidedMethod


@dataclass
class DQLConfig(QGuidedConfig):
    num_train_steps: int = 5
    beta_schedule: str = "vp"


def dql_actor(contract: IOContract, cfg: DQLConfig, seed: int = 0) -> DiffusionPolicy:
    return DiffusionPolicy(contract, {
        "horizon": 1, "n_obs_steps": 1, "n_action_steps": 1, "hidden": list(cfg.hidden), "act": "mish",
        "num_train_steps": cfg.num_train_steps, "beta_schedule": cfg.beta_schedule,
        "inference_steps": cfg.num_train_steps, "seed": seed,
    })


def _bc(model: DiffusionGenerator, cond: torch.Tensor, actions: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return model.loss(cond, actions, gen)


def _action(model: DiffusionGenerator, cond: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return model.sample_ddpm(cond, gen)


DQL = QGuidedMethod("dql", dql_actor, _bc, _action)


def train_dql(contract: IOContract, data: OfflineData, cfg: DQLConfig | None = None, *, seed: int = 0,
             log: Any = None) -> tuple[Any, DiffusionPolicy, Critic]:
    """Returns (deployable policy, actor, critic); the policy is a VGPSPolicy when num_candidates > 1."""
    return DQL.train(contract, data, cfg or DQLConfig(), seed=seed, log=log)


__all__ = ["DQL", "DQLConfig", "dql_actor", "train_dql"]
