"""A Q-guided offline method as data: which generative actor it builds and how that actor imitates and acts.

Why a separate module from ``offline/common.py``: the deployable policy re-ranks samples with the critic
(``VGPSPolicy``), and ``vgps`` imports the critic from ``common``; keeping the method here keeps that one-way.
Diffusion-QL and OFQL are each one :class:`QGuidedMethod`; ``train_q_guided`` is the shared recipe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from tether.contract import IOContract
from tether.policies.offline.common import Critic, OfflineData, QGuidedConfig, train_q_guided


@dataclass(frozen=True)
class QGuidedMethod:
    """``make_actor(contract, cfg, seed)`` builds the per-step generative actor; ``bc_loss(model, cond, actions,
    gen)`` is its imitation loss and ``policy_action(model, cond, gen)`` draws a differentiable action."""

    algo: str
    make_actor: Callable[[IOContract, Any, int], Any]
    bc_loss: Callable[[Any, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]
    policy_action: Callable[[Any, torch.Tensor, torch.Generator], torch.Tensor]

    def train(self, contract: IOContract, data: OfflineData, cfg: QGuidedConfig, *, seed: int = 0,
              log: Any = None) -> tuple[Any, Any, Critic]:
        """Returns (deployable policy, actor, critic); the policy is a VGPSPolicy when num_candidates > 1."""
        from tether.policies.vgps import VGPSPolicy

        actor = self.make_actor(contract, cfg, seed)
        actor, critic = train_q_guided(actor, data, cfg, bc_loss=self.bc_loss, policy_action=self.policy_action,
                                       seed=seed, log=log)
        actor.extra.update({"algo": self.algo})
        policy = VGPSPolicy(actor, critic, cfg.num_candidates, seed=seed) if cfg.num_candidates > 1 else actor
        return policy, actor, critic


__all__ = ["QGuidedMethod"]
