"""H2O: dynamics-aware hybrid offline-and-online RL (Niu et al., 2022) on top of Tether's SAC learner.

The setting is the sim-to-real one: a small fixed dataset from the real robot, and a simulator whose dynamics
are close but wrong. Training on both at once, H2O trusts simulated transitions only where the simulator
agrees with reality, measured by two real-vs-sim classifiers (as in the authors' ``SimpleSAC/sim2real_sac.py``):

- ``d_sa(s, a)`` and ``d_sas(s, a, s')`` with logits ``l_sa`` and ``l_sa + l_adv``. With balanced batches,
  ``l_adv = log P_real(s'|s, a) - log P_sim(s'|s, a)``: the dynamics log-ratio. Inputs get Gaussian noise
  (0.1 in normalised units) so the classifiers do not separate the two buffers on irrelevant detail.
- Critic loss = TD on real data + TD on simulated data weighted by the clipped ratio ``exp(l_adv)`` in
  [1e-5, 1] (simulated transitions that reality would not produce stop teaching Q)
  + ``cql_weight`` × (Σ_i ω_i logsumexp_a Q(s_i, a) over simulated states − mean Q on real data), where
  ω ∝ u(s, a), the estimated KL(P_sim || P_real) from ``gap_samples`` next states drawn around the simulated
  one. Q-values are pushed down where the simulator is least trustworthy and up on real data.
- Actor and temperature: SAC on the states of both buffers.

Fine-tuning a loaded checkpoint (``FINETUNE_DEFAULTS``, what ``finetune()`` uses) adds guards, because a fresh
critic steering a good actor mostly undoes it: critic warm-up on real data, then H2O critic updates with the actor
frozen until the TD loss settles; a TD3+BC-style actor loss anchored to the start actor with a low learning rate;
small Gaussian exploration noise in the simulator; and a final choice between actor snapshots and the parent by
the critic's value on a held-out tail of the real data (never the test episodes), with a margin and a cap on how
far the mean action may move. When no snapshot clears it, the parent itself comes back unchanged.

Small nets and single-threaded torch keep it CPU-sized; every random choice is seeded.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tether.contract import IOContract
from tether.errors import TetherError
from tether.policies.hybrid.common import EnvLike, ProgressFn, check_run, fit_to_env, real_buffer, start_actor
from tether.policies.hybrid.common import train_cli
from tether.policies.hybrid.config import HybridConfig
from tether.policies.networks import mlp, soft_update
from tether.policies.normalization import RunningNormalizer
from tether.policies.buffers import Batch, ReplayBuffer, concat_batches
from tether.policies.rl.common import config_to_dict, make_vec_env
from tether.policies.rl.offpolicy import run_offpolicy
from tether.policies.rl.sac import SAC


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
        self.reference: Any = None  # the start actor, frozen: the behaviour the BC term anchors to

    @property
    def policy(self) -> Any:
        return self.sac.policy

    def set_reference(self, actor: Any) -> None:
        """Anchor the actor to (a frozen copy of) ``actor`` and give it its own learning rate."""
        self.reference = copy.deepcopy(actor).requires_grad_(False).eval()
        lr = self.cfg.actor_lr if self.cfg.actor_lr is not None else self.cfg.lr
        self.sac.actor_opt = torch.optim.Adam(self.sac.policy.parameters(), lr=lr)

    def update_actor_bc(self, obs: torch.Tensor) -> dict[str, float]:
        """TD3+BC-style step: maximise (Q − α log π)/mean|Q| while staying near the start actor's mean action.

        Why: a fresh critic is only trustworthy near the data; dividing by |Q| makes the trade-off independent of
        the reward scale, and the BC term keeps the deployable mean where the starting policy was except where Q
        consistently says otherwise (Fujimoto & Gu, 2021). α is not tuned here: entropy is not the goal.
        """
        sac = self.sac
        alpha = sac.log_alpha.detach().exp()
        sac.q.requires_grad_(False)
        a, logp = sac.policy.sample(obs, generator=sac.gen)
        qa = sac.q(sac._norm(obs), a).min(0).values
        scale = qa.detach().abs().mean().clamp(min=1e-3)
        with torch.no_grad():
            ref = self.reference.deterministic(obs)
        bc = ((sac.policy.deterministic(obs) - ref) ** 2).sum(-1).mean()
        actor_loss = (alpha * logp - qa).mean() / scale + self.cfg.bc_weight * bc
        sac.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        sac.actor_opt.step()
        sac.q.requires_grad_(True)
        return {"train/actor_loss": float(actor_loss.detach()), "train/entropy": float(-logp.detach().mean()),
                "train/alpha": sac.alpha, "h2o/bc_mse": float(bc.detach())}

    @torch.no_grad()
    def value_of(self, actor: Any, obs: torch.Tensor) -> float:
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
            out.update(sac.update_actor(batch["obs"]) if self.reference is None or cfg.bc_weight <= 0
                       else self.update_actor_bc(batch["obs"]))
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


def _unfreeze_step(cfg: H2OConfig, steps: int, total: int, freeze: int, window: list[float],
                   prev: float | None) -> int | None:
    """``steps`` when the actor may start moving: after ``actor_freeze`` steps and, with ``freeze_td_tol``, once
    the TD loss's 200-step mean changes by less than that share (the critic has caught up), at most
    ``freeze_max`` steps and half the run in all (a short run still trains its actor)."""
    if steps < freeze:
        return None
    if cfg.freeze_td_tol <= 0 or steps >= max(min(cfg.freeze_max, total // 2), freeze):
        return steps
    if prev is not None and len(window) >= 200:
        cur = float(np.mean(window))
        if abs(cur - prev) <= cfg.freeze_td_tol * max(abs(prev), 1e-8):
            return steps
    return None


def _select(agent: H2O, held: dict[str, np.ndarray], snapshots: list[tuple[int, dict[str, torch.Tensor]]],
            margin: float, max_shift: float = 0.0) -> dict[str, Any]:
    """Keep the snapshot the final critic values most on held-out real states, or go back to the start actor.

    Why: the test episodes must never choose the policy, and the simulated return says nothing about the robot.
    The held-out real states were seen by neither the critic, the classifiers nor the actor; a snapshot replaces
    the start only if its value there beats the start's by ``margin`` (a share of |Q|), so an update that
    the critic cannot support on real states is undone.
    """
    obs = torch.from_numpy(np.ascontiguousarray(held["obs"]))
    start = agent.value_of(agent.reference, obs)
    final_state = copy.deepcopy(agent.sac.policy.state_dict())
    best_step, best_val, best_state = -1, start, None
    scores = []
    with torch.no_grad():
        ref_a = agent.reference.deterministic(obs)
    for step, state in snapshots + [(-2, final_state)]:
        agent.sac.policy.load_state_dict(state)
        val = agent.value_of(agent.sac.policy, obs)
        with torch.no_grad():
            shift = float((agent.sac.policy.deterministic(obs) - ref_a).pow(2).sum(-1).mean().sqrt())
        scores.append([step, val, shift])
        if val > best_val and val > start + margin * abs(start) and (max_shift <= 0 or shift <= max_shift):
            best_step, best_val, best_state = step, val, state
    if best_state is None:
        agent.sac.policy.load_state_dict(agent.reference.state_dict())
        chosen = "start"
    else:
        agent.sac.policy.load_state_dict(best_state)
        chosen = "final" if best_step == -2 else f"step {best_step}"
    agent.snapshots = snapshots  # type: ignore[attr-defined]
    return {"chosen": chosen, "start_value": start, "best_value": best_val, "held_out": int(len(obs)),
            "scores": scores}


def train_h2o(
    sim_env: EnvLike,
    real: dict[str, np.ndarray],
    total_steps: int,
    config: H2OConfig | dict[str, Any] | None = None,
    *,
    seed: int = 0,
    policy: Any = None,
    progress: ProgressFn | None = None,
    log_every: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> H2O:
    """Run H2O for ``total_steps`` simulator steps (``utd`` updates each) with the checked real transitions.

    ``policy`` (a loaded checkpoint) starts the actor from what simulation already taught; otherwise the actor
    starts fresh and the first ``learning_starts`` simulator steps use uniform random actions.
    Returns the learner; ``.policy`` is the deployable GaussianPolicy, ``.sim_buffer`` the simulated data.
    """
    from tether.policies.rl.common import config_from_dict

    cfg = config if isinstance(config, H2OConfig) else config_from_dict(H2OConfig, config, "H2O")
    check_run(cfg, total_steps, "simulator")
    venv, info = make_vec_env(sim_env, 1, **(env_kwargs or {}))
    contract, real = fit_to_env(real, policy, info.contract, "simulator env")
    if not 0.0 <= cfg.holdout < 0.5:
        raise TetherError(f"holdout={cfg.holdout}; expected a share of the real data in [0, 0.5)")
    n_hold = int(len(real["obs"]) * cfg.holdout) if cfg.select_every > 0 else 0
    # the tail (the latest recording) is held out whole, not shuffled: neighbouring steps are near-duplicates
    held = {k: v[len(v) - n_hold:] for k, v in real.items()} if n_hold > 0 else None
    train_real = {k: v[: len(v) - n_hold] for k, v in real.items()} if n_hold > 0 else real
    agent = H2O(contract, cfg, seed=seed)
    real_buf = real_buffer(train_real, seed=seed)
    agent.disc.fit_normalisers(train_real["obs"], train_real["next_obs"])
    warm = start_actor(agent.sac, policy, real, sim_env, cfg, info.neutral_action, real_buf, seed=seed,
                       env_kwargs=env_kwargs)
    if policy is not None:
        agent.set_reference(agent.sac.policy)
    sim_buf = ReplayBuffer(contract.obs_size, contract.action_size, min(cfg.buffer_size, total_steps + 1),
                           seed=seed + 1)
    rng = np.random.default_rng(seed + 2)
    starts = 0 if policy is not None else cfg.learning_starts
    # Why freeze: the fresh critics must first see the loaded actor's own simulated rollouts (weighted by the
    # gap estimate) before they steer it; otherwise early actor steps undo what simulation taught it.
    freeze = cfg.actor_freeze if policy is not None else 0
    n_real = max(1, int(round(cfg.batch_size * cfg.offline_ratio)))
    n_sim = max(1, cfg.batch_size - n_real)
    snapshots: list[tuple[int, dict[str, torch.Tensor]]] = []
    state: dict[str, Any] = {"td_window": [], "td_prev": None, "unfrozen_at": None if freeze > 0 else 0}
    t0 = time.perf_counter()

    def act(obs: np.ndarray) -> np.ndarray:
        if cfg.explore_noise is None:
            return agent.sac.act(obs)
        mean = agent.sac.policy.act(np.asarray(obs, np.float32))
        return np.clip(mean + cfg.explore_noise * rng.standard_normal(mean.shape), -1.0, 1.0)

    def learn() -> dict[str, float]:
        metrics = agent.update(real_buf.sample(n_real), sim_buf.sample(n_sim),
                               train_actor=state["unfrozen_at"] is not None)
        if state["unfrozen_at"] is None:
            state["td_window"].append(metrics["train/critic_loss"])
        return metrics

    def observe(obs, action, res, stats) -> None:
        steps = stats.steps + len(obs)
        if state["unfrozen_at"] is None:
            state["unfrozen_at"] = _unfreeze_step(cfg, steps, total_steps, freeze, state["td_window"],
                                                  state["td_prev"])
            if len(state["td_window"]) >= 200:
                state["td_prev"], state["td_window"] = float(np.mean(state["td_window"])), []
        elif cfg.select_every > 0 and held is not None and (steps - state["unfrozen_at"]) % cfg.select_every == 0:
            snapshots.append((steps, copy.deepcopy(agent.sac.policy.state_dict())))

    def log(stats, finished) -> None:
        m = dict(stats.metrics)
        if finished:
            m["rollout/sim_return_mean"] = float(np.mean([e["return"] for e in finished]))
        m["time/elapsed_s"] = time.perf_counter() - t0
        m["h2o/actor_frozen"] = float(state["unfrozen_at"] is None)
        progress(stats.steps, total_steps, m)

    try:
        stats = run_offpolicy(venv, total_steps, act=act, learn=learn, buffer=sim_buf, seed=seed,
                              learning_starts=starts, utd=cfg.utd, observe=observe,
                              log=log if progress is not None else None,
                              log_every=log_every or max(min(1000, total_steps // 10), 1))
    finally:
        venv.close()
    steps, unfrozen_at = stats.steps, state["unfrozen_at"]
    selection = None
    if held is not None and agent.reference is not None:
        selection = _select(agent, held, snapshots, cfg.select_margin, cfg.select_max_shift)
    if selection is not None and selection["chosen"] == "start" and warm == "distilled":
        # the distilled copy is only as good as the distillation; falling back means the parent itself
        agent.sac.policy = copy.deepcopy(policy)
        agent.sac.policy.extra = dict(getattr(policy, "extra", {}) or {})
        selection["chosen"] = "parent"
    pol = agent.sac.policy
    pol.dr_terms = info.dr_terms
    pol.extra.update({"algo": "h2o", "h2o_config": config_to_dict(cfg), "sim_steps": steps,
                      "gradient_updates": agent.num_updates, "actor_init": warm or "fresh",
                      "actor_unfrozen_at": unfrozen_at, "selection": selection})
    agent.sim_buffer = sim_buf  # type: ignore[attr-defined]
    return agent


def train_h2o_cli(spec: Any, run: Any) -> Any:
    """``tether train SIM_ENV --algo h2o --dataset REAL``: H2O from scratch (``tether finetune`` starts from a
    checkpoint)."""
    return train_cli(spec, run, train_h2o, "h2o", "the real data")


__all__ = ["FINETUNE_DEFAULTS", "H2O", "H2OConfig", "DynamicsGapClassifier", "train_h2o", "train_h2o_cli"]
