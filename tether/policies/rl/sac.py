"""SAC: twin (or N) critics with target nets, automatic entropy tuning, LayerNorm critics and high UTD (RLPD).

Why the pieces are separate: world-model (MBPO), hybrid (H2O, RLPD) and offline→online trainers reuse SAC with
other data sources, so the learner (``SAC.update(batch)``), the data (``ReplayBuffer``) and the env loop
(``train_sac``) are independent. RLPD's recipe is options here: ``critic_layer_norm=True``, ``num_qs=10`` with
``num_min_qs=2`` (random subset for the target minimum), ``utd=20``, and ``offline_buffer`` sampled symmetrically
(half of every batch) with online data.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tether.contract import IOContract
from tether.errors import TetherError
from tether.policies.gaussian import GaussianPolicy
from tether.policies.networks import EnsembleQ, adam, soft_update
from tether.policies.buffers import Batch, ReplayBuffer, concat_batches, mix
from tether.policies.rl.common import EnvSource, config_from_dict, config_to_dict, make_vec_env, set_action_bias
from tether.policies.rl.offpolicy import episode_metrics, run_offpolicy


@dataclass
class SACConfig:
    num_envs: int = 1
    buffer_size: int = 1_000_000
    batch_size: int = 256
    learning_starts: int = 1000  # env steps of uniform random actions before learning
    utd: int = 1  # critic updates per env step (RLPD: 20)
    actor_delay: int = 1  # actor/alpha update once every this many critic updates
    gamma: float = 0.99
    tau: float = 0.005
    lr: float = 3e-4
    hidden: tuple[int, ...] = (256, 256)
    critic_hidden: tuple[int, ...] = (256, 256)
    activation: str = "relu"
    num_qs: int = 2
    num_min_qs: int = 2  # size of the random critic subset whose minimum forms the target (RLPD/REDQ)
    critic_layer_norm: bool = False
    init_alpha: float = 1.0
    autotune: bool = True
    target_entropy: float | None = None  # None: -action_size
    backup_entropy: bool = True
    norm_obs: bool = False
    offline_ratio: float = 0.5  # share of each batch drawn from an offline buffer when one is given
    init_neutral_action: bool = True  # start the policy mean at the env's neutral action (hover thrust)
    history: int = 1  # observations the actor and critics read (oldest first); > 1 learns from stacked windows


class SAC:
    """The learner. ``update(batch)`` is one critic step (+ actor/alpha step every ``actor_delay``) + Polyak."""

    def __init__(self, contract: IOContract, config: SACConfig | None = None, *, seed: int = 0) -> None:
        self.cfg = cfg = config or SACConfig()
        if not 1 <= cfg.num_min_qs <= cfg.num_qs:
            raise TetherError(f"num_min_qs={cfg.num_min_qs}; expected 1..num_qs={cfg.num_qs}")
        torch.manual_seed(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.contract = contract
        a = contract.action_size
        self.policy = GaussianPolicy(contract, {
            "net": {"hidden": list(cfg.hidden), "act": cfg.activation, "layer_norm": False},
            "squash": "tanh", "log_std": "state_dependent", "head_scale": 1.0,
            "norm_clip": 10.0 if cfg.norm_obs else 1e9, "history": int(cfg.history),
        })
        self.q = EnsembleQ(self.policy.input_size, a, cfg.num_qs, cfg.critic_hidden, act=cfg.activation,
                           layer_norm=cfg.critic_layer_norm)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.log_alpha = torch.tensor(float(np.log(cfg.init_alpha)), requires_grad=True)
        self.target_entropy = float(cfg.target_entropy if cfg.target_entropy is not None else -a)
        self.actor_opt = adam(self.policy.parameters(), cfg.lr)
        self.critic_opt = adam(self.q.parameters(), cfg.lr)
        self.alpha_opt = adam([self.log_alpha], cfg.lr)
        self.num_updates = 0
        self.buffer: ReplayBuffer | None = None
        self.reference: GaussianPolicy | None = None  # the start actor, frozen: what anchor_to keeps the actor near
        self.bc_weight = 0.0

    @property
    def alpha(self) -> float:
        return float(self.log_alpha.detach().exp())

    def _norm(self, obs: torch.Tensor) -> torch.Tensor:
        return self.policy.normalise(obs)

    def td_target(self, batch: Batch) -> torch.Tensor:
        """r + γ(1 − done)·(min over the critics, or a random ``num_min_qs`` of them, of Q_target(s', a'), minus
        α log π(a'|s') with ``backup_entropy``), a' ~ π(s'); no gradient."""
        cfg = self.cfg
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            next_a, next_logp = self.policy.sample(batch["next_obs"], generator=self.gen)
            tq = self.q_target(self._norm(batch["next_obs"]), next_a)
            if cfg.num_min_qs < cfg.num_qs:
                idx = torch.randperm(cfg.num_qs, generator=self.gen)[: cfg.num_min_qs]
                tq = tq[idx]
            tq = tq.min(0).values
            if cfg.backup_entropy:
                tq = tq - alpha * next_logp
            return batch["reward"] + cfg.gamma * (1.0 - batch["done"]) * tq

    def critic_penalty(self, obs_n: torch.Tensor, action: torch.Tensor,
                       q: torch.Tensor) -> tuple[torch.Tensor | None, dict[str, float]]:
        """A term added to the critic loss and its metrics; none in plain SAC (subclasses such as EDAC add one).

        ``obs_n`` are normalised observations, ``q`` the critics' values (N, B) at the batch's actions.
        """
        return None, {}

    def update(self, batch: Batch) -> dict[str, float]:
        """One SAC step on ``batch`` (obs, action, reward, next_obs, done); returns scalar metrics."""
        cfg = self.cfg
        y = self.td_target(batch)
        obs_n = self._norm(batch["obs"])
        q = self.q(obs_n, batch["action"])
        critic_loss = ((q - y.unsqueeze(0)) ** 2).mean(1).sum()
        penalty, metrics = self.critic_penalty(obs_n, batch["action"], q)
        if penalty is not None:
            critic_loss = critic_loss + penalty
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        soft_update(self.q_target, self.q, cfg.tau)
        self.num_updates += 1
        out = {"train/critic_loss": float(critic_loss.detach()), "train/q_mean": float(q.detach().mean()), **metrics}
        if self.num_updates % cfg.actor_delay == 0:
            out.update(self.update_actor(batch["obs"]))
        return out

    def anchor_to(self, actor: GaussianPolicy, bc_weight: float, actor_lr: float | None = None) -> None:
        """From now on keep the actor near (a frozen copy of) ``actor``, with its own learning rate.

        Why: fine-tuning a loaded actor against a fresh critic, which is only trustworthy near the data, collapses
        the actor (a hover policy at 100 % fell to 0 % after a few thousand robot-RL updates without it). The
        actor step becomes TD3+BC-style (Fujimoto & Gu, 2021): maximise (Q − α log π)/mean|Q| plus
        ``bc_weight``·‖μ(s) − μ_start(s)‖², so the mean action moves only where Q consistently says so;
        dividing by |Q| makes that trade-off independent of the reward scale. α is not tuned then: entropy is
        not the goal.
        """
        self.reference = copy.deepcopy(actor).requires_grad_(False).eval()
        self.bc_weight = float(bc_weight)
        self.actor_opt = adam(self.policy.parameters(), actor_lr if actor_lr is not None else self.cfg.lr)

    def update_actor(self, obs: torch.Tensor) -> dict[str, float]:
        """Actor step (maximise Q - α log π) and temperature step on the same observations (the anchored step
        instead, after :meth:`anchor_to`)."""
        if self.reference is not None and self.bc_weight > 0:
            return self._update_actor_anchored(obs)
        alpha = self.log_alpha.detach().exp()
        self.q.requires_grad_(False)
        a, logp = self.policy.sample(obs, generator=self.gen)
        qa = self.q(self._norm(obs), a)
        qa = qa.min(0).values if self.cfg.num_qs == 2 else qa.mean(0)
        actor_loss = (alpha * logp - qa).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        self.q.requires_grad_(True)
        out = {"train/actor_loss": float(actor_loss.detach()), "train/entropy": float(-logp.detach().mean())}
        if self.cfg.autotune:
            alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()
        out["train/alpha"] = self.alpha
        return out

    def _update_actor_anchored(self, obs: torch.Tensor) -> dict[str, float]:
        alpha = self.log_alpha.detach().exp()
        self.q.requires_grad_(False)
        a, logp = self.policy.sample(obs, generator=self.gen)
        qa = self.q(self._norm(obs), a).min(0).values
        scale = qa.detach().abs().mean().clamp(min=1e-3)
        with torch.no_grad():
            ref = self.reference.deterministic(obs)
        bc = ((self.policy.deterministic(obs) - ref) ** 2).sum(-1).mean()
        actor_loss = (alpha * logp - qa).mean() / scale + self.bc_weight * bc
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        self.q.requires_grad_(True)
        return {"train/actor_loss": float(actor_loss.detach()), "train/entropy": float(-logp.detach().mean()),
                "train/alpha": self.alpha, "train/bc_mse": float(bc.detach())}

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        with torch.inference_mode():
            a, _ = self.policy.sample(torch.as_tensor(np.asarray(obs, np.float32)), deterministic=deterministic,
                                      generator=self.gen)
        return a.numpy()


def train_sac(
    env: EnvSource,
    total_steps: int,
    config: SACConfig | dict[str, Any] | None = None,
    *,
    seed: int = 0,
    run: Any = None,
    env_kwargs: dict[str, Any] | None = None,
    agent: SAC | None = None,
    offline_buffer: ReplayBuffer | None = None,
    buffer: ReplayBuffer | None = None,
    executor: str = "inprocess",
    executor_options: dict[str, Any] | None = None,
) -> SAC:
    """Collect ``total_steps`` env steps with SAC; returns the learner (``.policy`` is the deployable policy,
    ``.buffer`` the online replay buffer).

    ``agent`` continues training an existing learner (fine-tuning); ``offline_buffer`` mixes prior data into
    every batch (RLPD: ``offline_ratio`` of it), in which case learning starts immediately; ``buffer``
    supplies the online buffer.
    """
    cfg = config if isinstance(config, SACConfig) else config_from_dict(SACConfig, config, "SAC")
    if agent is not None:
        cfg = agent.cfg
    if cfg.history != 1:
        raise TetherError(f"history={cfg.history}: train_sac collects single observations; a history actor learns "
                          "from stacked episodes (tether.policies.hybrid.robot_rl); expected history=1")
    venv, info = make_vec_env(env, cfg.num_envs, executor=executor, executor_options=executor_options,
                              **(env_kwargs or {}))
    contract = info.contract
    sac = agent or SAC(contract, cfg, seed=seed)
    if agent is not None:
        sac.contract.check_compatible(contract, what="env")
    elif cfg.init_neutral_action:
        set_action_bias(sac.policy, info.neutral_action)
    policy = sac.policy
    policy.dr_terms = info.dr_terms
    if run is not None:
        run.set_policy(policy)
    buf = buffer or ReplayBuffer(contract.obs_size, contract.action_size, min(cfg.buffer_size, total_steps + 1),
                                 seed=seed)
    offline = offline_buffer if offline_buffer is not None and len(offline_buffer) else None
    starts = 0 if offline is not None or agent is not None else cfg.learning_starts
    sources = [(buf, 1.0 - cfg.offline_ratio), (offline, cfg.offline_ratio)] if offline is not None else [(buf, 1.0)]

    def observe(obs, action, res, stats) -> None:
        if cfg.norm_obs:
            policy.obs_norm.update(res.final_obs)

    def log(stats, finished) -> None:
        run.advance(stats.steps)
        run.log(stats.steps, episode_metrics(stats, finished))
        run.maybe_evaluate(stats.steps, policy)

    try:
        stats = run_offpolicy(venv, total_steps, act=sac.act, learn=lambda: sac.update(concat_batches(
            *mix(sources, cfg.batch_size))), buffer=buf, seed=seed, learning_starts=starts, utd=cfg.utd,
            observe=observe, log=log if run is not None else None)
    finally:
        venv.close()
    policy.extra.update({"algo": "sac", "sac_config": config_to_dict(cfg), "env_steps": stats.steps,
                         "gradient_updates": stats.updates, "env_time_s": stats.env_time_s,
                         "update_time_s": stats.update_time_s})
    sac.buffer = buf  # kept for callers that continue training
    return sac


def train_sac_cli(spec: Any, run: Any) -> GaussianPolicy:
    """``tether train ENV --algo sac`` entry (see tether.policies.algos)."""
    steps = spec.steps or 100_000
    run.set_total(steps)
    return train_sac(spec.env_id, steps, spec.config, seed=spec.seed, run=run,
                     env_kwargs={"backend": spec.backend, "dr": spec.dr}, executor=spec.executor,
                     executor_options=spec.executor_options).policy


__all__: Sequence[str] = ("SAC", "SACConfig", "train_sac")
