"""Implicit Q-Learning (Kostrikov et al., 2022): in-sample value learning plus advantage-weighted extraction.

Why IQL for mixed-quality robot data: it never queries Q at actions outside the dataset. V(s) is an upper
expectile (τ) of Q(s, a) over the dataset's own actions, Q regresses to r + γ V(s'), and the policy is
extracted afterwards by advantage-weighted regression, weights exp(β (Q - V)) clipped at ``max_weight``.
The critic it leaves behind is also the learned Q that V-GPS uses to re-rank any policy's samples.
The policy is a ``GaussianPolicy`` (state-independent log-std, clipped mean), so it deploys and exports
like every other Gaussian actor.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from tether.contract import IOContract
from tether.policies.gaussian import GaussianPolicy
from tether.policies.networks import ValueNet, mlp_config, soft_update
from tether.policies.offline.common import Critic, MeanLog, OfflineConfig, OfflineData, minibatches


@dataclass
class IQLConfig(OfflineConfig):
    """OfflineConfig plus IQL's value expectile, advantage weighting and networks."""

    expectile: float = 0.7  # τ: V(s) is this upper expectile of Q(s, a) over the dataset's actions
    beta: float = 3.0  # inverse temperature of the advantage weights
    max_weight: float = 100.0
    lr: float = 3e-4
    hidden: tuple[int, ...] = (256, 256)
    critic_layer_norm: bool = False


@dataclass
class IQLResult:
    policy: GaussianPolicy
    critic: Critic
    value: nn.Module  # physical obs (B, O) -> V(s) (B,)


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """Asymmetric L2: |τ - 1(diff < 0)| · diff², diff = Q - V."""
    weight = torch.where(diff > 0, expectile, 1.0 - expectile)
    return (weight * diff**2).mean()


def train_iql(contract: IOContract, data: OfflineData, cfg: IQLConfig | None = None, *, seed: int = 0,
              log: Callable[[int, dict[str, float]], None] | None = None) -> IQLResult:
    cfg = cfg or IQLConfig()
    data.check_contract(contract)
    torch.manual_seed(int(seed))
    gen = torch.Generator().manual_seed(int(seed))
    policy = GaussianPolicy(contract, {"net": mlp_config(cfg.hidden, "relu", False), "squash": "clip",
                                       "log_std": "state_independent", "log_std_init": -1.0, "head_scale": 1.0})
    policy.obs_norm.update(data.obs)
    critic = Critic(contract.obs_size, contract.action_size, list(cfg.hidden), layer_norm=cfg.critic_layer_norm)
    critic.obs_norm.update(data.obs)
    critic_target = copy.deepcopy(critic).requires_grad_(False)
    # V sees the same normalised observations as Q; the normaliser travels with it (physical obs in)
    value = nn.Sequential(copy.deepcopy(critic.obs_norm), ValueNet(contract.obs_size, cfg.hidden))
    q_opt = torch.optim.Adam(critic.qs.parameters(), lr=cfg.lr)
    v_opt = torch.optim.Adam(value.parameters(), lr=cfg.lr)
    pi_opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    pi_sched = torch.optim.lr_scheduler.CosineAnnealingLR(pi_opt, T_max=max(cfg.steps, 1))
    policy.train()
    means = MeanLog(cfg, log)
    for step, (s, a, r, s2, d) in enumerate(minibatches(data, cfg, gen)):
        with torch.no_grad():
            q_t = critic_target.q_min(s, a)
        # ---- V: expectile of the dataset's Q
        v = value(s)
        v_loss = expectile_loss(q_t - v, cfg.expectile)
        v_opt.zero_grad(set_to_none=True)
        v_loss.backward()
        v_opt.step()
        # ---- Q: regress to r + γ V(s')
        with torch.no_grad():
            y = r + cfg.gamma * (1.0 - d) * value(s2)
        q = critic(s, a)
        q_loss = ((q - y.unsqueeze(0)) ** 2).mean(dim=1).sum()
        q_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        q_opt.step()
        soft_update(critic_target, critic, cfg.tau)
        # ---- policy: advantage-weighted regression on dataset actions
        with torch.no_grad():
            w = torch.exp(cfg.beta * (q_t - v.detach())).clamp(max=cfg.max_weight)
        logp, _ = policy.log_prob_entropy(s, a)
        pi_loss = -(w * logp).mean()
        pi_opt.zero_grad(set_to_none=True)
        pi_loss.backward()
        nn.utils.clip_grad_norm_(policy.parameters(), 10.0)
        pi_opt.step()
        pi_sched.step()
        means.add(step, {"v_loss": v_loss, "q_loss": q_loss, "pi_loss": pi_loss, "q_mean": q_t.mean()})
    policy.extra.update({"algo": "iql"})
    policy.eval()
    return IQLResult(policy=policy, critic=critic.eval(), value=value.eval())


__all__ = ["IQLConfig", "IQLResult", "expectile_loss", "train_iql"]
