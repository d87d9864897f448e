"""The real-vs-sim classifiers whose logit difference estimates H2O's dynamics log-ratio."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tether.policies.buffers import Batch
from tether.policies.networks import mlp
from tether.policies.normalization import RunningNormalizer


class DynamicsGapClassifier(nn.Module):
    """Real-vs-sim classifiers on (s, a) and (s, a, s' - s); ``log_ratio`` is log P_real(s'|s,a)/P_sim(s'|s,a)."""

    def __init__(self, obs_size: int, action_size: int, hidden: tuple[int, ...] = (256, 256)) -> None:
        super().__init__()
        self.obs_norm = RunningNormalizer(obs_size)
        self.delta_norm = RunningNormalizer(obs_size)
        self.sa = mlp(obs_size + action_size, 1, hidden)
        self.sas = mlp(2 * obs_size + action_size, 1, hidden)

    def fit_normalisers(self, obs: np.ndarray, next_obs: np.ndarray) -> None:
        self.obs_norm.update(obs)
        self.delta_norm.update(next_obs - obs)

    def _inputs(self, obs: torch.Tensor, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.obs_norm(obs), self.delta_norm(next_obs - obs)

    def logits(self, s: torch.Tensor, a: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(l_sa, l_adv) on normalised inputs (s, a, Δs)."""
        l_sa = self.sa(torch.cat([s, a], -1)).squeeze(-1)
        l_adv = self.sas(torch.cat([s, a, d], -1)).squeeze(-1)
        return l_sa, l_adv

    def loss(self, real: Batch, sim: Batch, noise: float, gen: torch.Generator) -> tuple[torch.Tensor, float]:
        """BCE of both classifiers (real = 1) on noisy inputs; also returns the (s, a, s') accuracy."""
        n_r = len(real["obs"])
        s = torch.cat([real["obs"], sim["obs"]])
        s2 = torch.cat([real["next_obs"], sim["next_obs"]])
        a = torch.cat([real["action"], sim["action"]])
        sn, dn = self._inputs(s, s2)
        if noise > 0:
            sn = sn + noise * torch.randn(sn.shape, generator=gen)
            dn = dn + noise * torch.randn(dn.shape, generator=gen)
            a = a + noise * torch.randn(a.shape, generator=gen)
        label = torch.cat([torch.ones(n_r), torch.zeros(len(s) - n_r)])
        l_sa, l_adv = self.logits(sn, a, dn)
        # the (s,a,s') classifier is l_sa + l_adv; l_sa is detached there so l_adv learns only the dynamics part
        loss = (F.binary_cross_entropy_with_logits(l_sa, label)
                + F.binary_cross_entropy_with_logits(l_sa.detach() + l_adv, label))
        acc = float(((l_sa + l_adv > 0).float() == label).float().mean())
        return loss, acc

    @torch.no_grad()
    def log_ratio(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        sn, dn = self._inputs(obs, next_obs)
        return self.logits(sn, action, dn)[1]

    @torch.no_grad()
    def kl_gap(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor, samples: int, noise: float,
               gen: torch.Generator) -> torch.Tensor:
        """u(s, a) ≈ E_{s'~P_sim}[log P_sim/P_real], s' drawn around the simulated next state; clamped at 0."""
        sn, dn = self._inputs(obs, next_obs)
        b = len(obs)
        dk = dn.unsqueeze(1) + noise * torch.randn((b, samples, dn.shape[1]), generator=gen)
        sk = sn.unsqueeze(1).expand(b, samples, sn.shape[1])
        ak = action.unsqueeze(1).expand(b, samples, action.shape[1])
        _, l_adv = self.logits(sk.reshape(b * samples, -1), ak.reshape(b * samples, -1), dk.reshape(b * samples, -1))
        return (-l_adv.reshape(b, samples)).mean(1).clamp(min=0.0)


__all__ = ["DynamicsGapClassifier"]
