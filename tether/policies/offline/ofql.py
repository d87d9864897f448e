"""One-step flow Q-learning (OFQL; Nguyen & Yoo, "Revisiting Diffusion Q-Learning").

Diffusion-QL with the DDPM actor replaced by an average-velocity (MeanFlow) flow actor: the behaviour-cloning
term is the MeanFlow loss, and every action the algorithm needs (the Q term's action, the TD target's next
action, the deployed action) is generated in ONE network call, a = ε - u(ε, 0, 1). The Q gradient therefore
passes through a single evaluation of the generator: no multi-step sampling, no backpropagation through a
denoising chain, no distillation and no auxiliary network. Deployment optionally re-ranks ``num_candidates``
one-step samples with the critic, the same selection Diffusion-QL uses, so the two compare like for like.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from tether.contract import IOContract
from tether.policies.flow import FlowGenerator, FlowPolicy
from tether.policies.offline.common import Critic, OfflineData, QGuidedConfig
from tether.policies.offline.q_guided import QGuidedMethod


@dataclass
class OFQLConfig(QGuidedConfig):
    mf_ratio: float = 0.5  # fraction of training pairs with r != t (the rest train the instantaneous velocity)
    mf_adaptive_p: float = 0.5


def ofql_actor(contract: IOContract, cfg: OFQLConfig, seed: int = 0) -> FlowPolicy:
    return FlowPolicy(contract, {
        "variant": "mean", "horizon": 1, "n_obs_steps": 1, "n_action_steps": 1, "hidden": list(cfg.hidden),
        "act": "mish", "inference_steps": 1, "mf_ratio": cfg.mf_ratio, "mf_adaptive_p": cfg.mf_adaptive_p,
        "seed": seed,
    })


def _bc(model: FlowGenerator, cond: torch.Tensor, actions: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return model.mean_flow_loss(cond, actions, gen)


def _action(model: FlowGenerator, cond: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return model.one_step(cond, torch.randn(cond.shape[0], model.x_dim, generator=gen))


OFQL = QGuidedMethod("ofql", ofql_actor, _bc, _action)


def train_ofql(contract: IOContract, data: OfflineData, cfg: OFQLConfig | None = None, *, seed: int = 0,
              log: Any = None) -> tuple[Any, FlowPolicy, Critic]:
    """Returns (deployable policy, actor, critic); the policy is a VGPSPolicy when num_candidates > 1."""
    return OFQL.train(contract, data, cfg or OFQLConfig(), seed=seed, log=log)


__all__ = ["OFQL", "OFQLConfig", "ofql_actor", "train_ofql"]
