"""H2O's learner: a SAC actor/critic whose critic loss weights and penalises simulated transitions by the
estimated dynamics gap, plus the TD3+BC-style actor step used when fine-tuning a loaded policy."""

from __future__ import annotations

import math
from typing import Any

import torch

from tether.contract import IOContract
from tether.errors import TetherError
from tether.policies.buffers import Batch, concat_batches
from tether.policies.gaussian import GaussianPolicy
from tether.policies.hybrid.h2o.classifier import DynamicsGapClassifier
from tether.policies.hybrid.h2o.config import H2OConfig
from tether.policies.networks import soft_update
from tether.policies.rl.sac import SAC


class H2O:
    """The learner: a SAC actor/critic/temperature plus the dynamics-gap classifiers and the H2O critic loss."""

    def __init__(self, contract: IOContract, config: H2OConfig | None = None, *, seed: int = 0) -> None:
        self.cfg = cfg = config or H2OConfig()
        cfg.check()
        lo, hi = cfg.clip_ratio
        if not 0.0 < lo <= hi:
            raise TetherError(f"clip_ratio={cfg.clip_ratio}; expected 0 < low <= high")
        self.contract = contract
        self.sac = SAC(contract, cfg, seed=seed)
        self.gen = torch.Generator().manual_seed(seed + 7)
        self.disc = DynamicsGapClassifier(contract.obs_size, contract.action_size, tuple(cfg.disc_hidden))
        self.disc_opt = torch.optim.Adam(list(self.disc.sa.parameters()) + list(self.disc.sas.parameters()),
                                         lr=cfg.disc_lr)
        self.num_updates = 0

    @property
    def policy(self) -> Any:
        return self.sac.policy

    @property
    def reference(self) -> GaussianPolicy | None:
        """The start actor the BC term anchors to (None until :meth:`set_reference`)."""
        return self.sac.reference

    def set_reference(self, actor: GaussianPolicy) -> None:
        """Anchor the actor to (a frozen copy of) ``actor`` and give it its own learning rate
        (:meth:`tether.policies.rl.sac.SAC.anchor_to`)."""
        self.sac.anchor_to(actor, self.cfg.bc_weight, self.cfg.actor_lr)

    @torch.no_grad()
    def value_of(self, actor: GaussianPolicy, obs: torch.Tensor) -> float:
        """Mean over ``obs`` of min_i Q_i(s, μ(s)): how good the critic thinks ``actor``'s deterministic action is."""
        a = actor.deterministic(obs)
        return float(self.sac.q(self.sac._norm(obs), a).min(0).values.mean())

    # ------------------------------------------------------------------ one step
    def update(self, real: Batch, sim: Batch, *, train_actor: bool = True) -> dict[str, float]:
        """Classifier step(s), H2O critic step, then (unless ``train_actor`` is False) SAC actor/α step."""
        cfg, sac = self.cfg, self.sac
        out: dict[str, float] = {}
        for _ in range(cfg.disc_updates):
            d_loss, acc = self.disc.loss(real, sim, cfg.disc_noise, self.gen)
            self.disc_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            self.disc_opt.step()
        out["h2o/disc_loss"], out["h2o/disc_acc"] = float(d_loss.detach()), acc

        log_r = self.disc.log_ratio(sim["obs"], sim["action"], sim["next_obs"])
        w_sim = log_r.exp().clamp(*cfg.clip_ratio)
        u = self.disc.kl_gap(sim["obs"], sim["action"], sim["next_obs"], cfg.gap_samples, cfg.gap_noise, self.gen)
        omega = u / u.sum().clamp(min=1e-8) if float(u.sum()) > 0 else torch.full_like(u, 1.0 / len(u))

        batch = concat_batches(real, sim)
        n_r = len(real["obs"])
        alpha = sac.log_alpha.detach().exp()
        norm = sac._norm
        with torch.no_grad():
            next_a, next_logp = sac.policy.sample(batch["next_obs"], generator=sac.gen)
            tq = sac.q_target(norm(batch["next_obs"]), next_a).min(0).values - alpha * next_logp
            y = batch["reward"] + cfg.gamma * (1.0 - batch["done"]) * tq
        q = sac.q(norm(batch["obs"]), batch["action"])  # (N, B)
        weight = torch.cat([torch.ones(n_r), w_sim])
        td = ((q - y.unsqueeze(0)) ** 2 * weight.unsqueeze(0)).mean(1).sum()
        penalty = self._cql_penalty(sim, q[:, :n_r], omega)
        critic_loss = td + cfg.cql_weight * penalty
        sac.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        sac.critic_opt.step()
        soft_update(sac.q_target, sac.q, cfg.tau)
        sac.num_updates += 1
        self.num_updates += 1
        if train_actor:
            out.update(sac.update_actor(batch["obs"]))
        out.update({"train/critic_loss": float(td.detach()), "train/q_mean": float(q.detach().mean()),
                    "h2o/cql_penalty": float(penalty.detach()), "h2o/sim_weight_mean": float(w_sim.mean()),
                    "h2o/gap_mean": float(u.mean())})
        return out

    def _cql_penalty(self, sim: Batch, q_real: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
        """Σ_i ω_i · T·logsumexp(Q(s_i, a)/T) over sampled actions, minus the mean real Q; summed over critics."""
        cfg, sac = self.cfg, self.sac
        s, s2 = sim["obs"], sim["next_obs"]
        b, k, adim = len(s), cfg.cql_actions, self.contract.action_size
        rep = lambda x: x.unsqueeze(1).expand(b, k, x.shape[-1]).reshape(b * k, -1)  # noqa: E731
        s_rep, s2_rep = rep(s), rep(s2)
        with torch.no_grad():
            a_rand = torch.rand((b * k, adim), generator=self.gen) * 2.0 - 1.0
            a_cur, logp_cur = sac.policy.sample(s_rep, generator=sac.gen)
            a_next, logp_next = sac.policy.sample(s2_rep, generator=sac.gen)
        log_unif = adim * math.log(0.5)
        s_n = sac._norm(s_rep)
        q_rand = sac.q(s_n, a_rand).reshape(-1, b, k) - log_unif
        q_cur = sac.q(s_n, a_cur).reshape(-1, b, k) - logp_cur.reshape(1, b, k)
        q_next = sac.q(s_n, a_next).reshape(-1, b, k) - logp_next.reshape(1, b, k)
        cat = torch.cat([q_rand, q_cur, q_next], dim=2) / cfg.cql_temp
        lse = torch.logsumexp(cat, dim=2) * cfg.cql_temp  # (N, B)
        return ((lse * omega.unsqueeze(0)).sum(1) - q_real.mean(1)).sum()


__all__ = ["H2O"]
