"""Model-based policy training: MBPO (online, Dyna-style) and offline model-based RL with RAVL value targets.

Both train SAC (tether.policies.rl.sac) on short imagined rollouts branched from real states:

- **MBPO** (Janner et al. 2019): collect real steps with the current policy, refit the ensemble every
  ``model_train_every`` steps, branch ``rollout_length``-step rollouts from real states into a model
  buffer, and take ``utd`` SAC updates per real step on batches that are mostly imagined. The gain is
  sample efficiency: most gradient steps use model data, so far fewer real steps are needed.
- **Offline model-based RL** (MOPO/MOBILE loop, no new real data): the same rollouts from dataset states,
  mixed with a small share of dataset transitions. The trap (Sims et al., "The Edge-of-Reach Problem") is
  that a rollout's last states appear only as *next* states: their Q-values are never regressed toward
  anything, yet they are bootstrapped into every target that leads to them, and the actor steers toward
  wherever that untrained Q extrapolates high. This happens even with the true dynamics, so an uncertainty
  penalty on the *model* cannot fix it. **RAVL** does it on the value side: a large LayerNorm critic
  ensemble (default 10) whose target is the minimum over all critics, plus EDAC's gradient-diversity term
  so the critics disagree where data does not pin them down — precisely at edge-of-reach states.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tether.contract import IOContract
from tether.errors import TetherError
from tether.policies.buffers import ReplayBuffer, concat_batches, mix
from tether.policies.rl.common import config_from_dict, config_to_dict, make_vec_env, set_action_bias
from tether.policies.rl.offpolicy import episode_metrics, run_offpolicy
from tether.policies.rl.sac import SAC, SACConfig
from tether.world_models.base import Trajectory, imagine
from tether.world_models.ensemble import EnsembleConfig, EnsembleWorldModel, _as_data
from tether.world_models.rewards import task_reward


class EnsembleSAC(SAC):
    """SAC whose critic loss adds EDAC's ensemble gradient-diversity term (weight ``eta``).

    With ``num_qs=10, num_min_qs=10, critic_layer_norm=True, eta=1`` this is RAVL's value learner; with
    ``eta=0`` it is exactly SAC. The diversity term pushes the critics' action-gradients apart (mean pairwise
    cosine similarity), so the ensemble's minimum is pessimistic off the data instead of all members
    agreeing on the same extrapolation.
    """

    def __init__(self, contract: IOContract, config: SACConfig | None = None, *, eta: float = 0.0,
                 seed: int = 0) -> None:
        super().__init__(contract, config, seed=seed)
        if eta < 0:
            raise TetherError(f"EDAC eta={eta}; expected >= 0")
        if eta > 0 and self.cfg.num_qs < 2:
            raise TetherError(f"EDAC diversity needs num_qs >= 2; got {self.cfg.num_qs}")
        self.eta = float(eta)

    def _diversity(self, obs_n: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        n = self.cfg.num_qs
        a = action.unsqueeze(0).expand(n, -1, -1).clone().requires_grad_(True)
        q = self.q.net(torch.cat([obs_n.unsqueeze(0).expand(n, -1, -1), a], dim=-1)).squeeze(-1)
        (g,) = torch.autograd.grad(q.sum(), a, create_graph=True)
        g = g / (g.norm(dim=-1, keepdim=True) + 1e-10)  # (N, B, A)
        gram = torch.einsum("nba,mba->bnm", g, g)
        off = gram.sum(dim=(1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(-1)
        return off.mean() / (n - 1)

    def critic_penalty(self, obs_n: torch.Tensor, action: torch.Tensor,
                       q: torch.Tensor) -> tuple[torch.Tensor | None, dict[str, float]]:
        """η × the critics' gradient diversity (none with η = 0, which is exactly SAC)."""
        if self.eta == 0.0:
            return None, {}
        div = self._diversity(obs_n, action)
        return self.eta * div, {"train/q_std": float(q.detach().std(0).mean()), "train/diversity": float(div.detach())}

    def q_value(self, obs: np.ndarray, action: np.ndarray | None = None, *, reduce: str = "min") -> np.ndarray:
        """Q(obs, action) (action defaults to the policy's deterministic action), min or mean over critics."""
        with torch.no_grad():
            o = torch.as_tensor(np.asarray(obs, np.float32))
            a = torch.as_tensor(np.asarray(action, np.float32)) if action is not None else \
                self.policy.sample(o, deterministic=True)[0]
            q = self.q(self._norm(o), a)
        return (q.min(0).values if reduce == "min" else q.mean(0)).numpy()


def _sac_config(overrides: Mapping[str, Any] | SACConfig | None, defaults: Mapping[str, Any]) -> SACConfig:
    if isinstance(overrides, SACConfig):
        return overrides
    return config_from_dict(SACConfig, {**defaults, **dict(overrides or {})}, "SAC")


def _add_rollout(buffer: ReplayBuffer, traj: Trajectory) -> int:
    tr = traj.transitions()
    if len(tr["obs"]):
        buffer.add(tr["obs"], tr["action"], tr["reward"], tr["next_obs"], tr["done"])
    return len(tr["obs"])


# --------------------------------------------------------------------------------------------- offline
@dataclass
class OfflineMBRLConfig:
    """Defaults are RAVL's (anyasims/edge-of-reach): 10 LayerNorm critics, min over all, eta 1, k = 5,
    5 % real data. ``naive()`` is the baseline that fails at edge-of-reach states."""

    sac: dict = field(default_factory=lambda: {"num_qs": 10, "num_min_qs": 10, "critic_layer_norm": True})
    eta: float = 1.0
    rollout_length: int = 5
    rollout_batch: int = 512
    rollout_every: int = 250  # gradient updates between rollout batches
    dataset_ratio: float = 0.05
    model_retain: int = 50_000  # imagined transitions kept (oldest overwritten)
    penalty: float = 0.0  # MOPO: reward -= penalty * model disagreement
    max_uncertainty: float | None = None
    reward: str | None = None  # known task reward name (tether.world_models.rewards), else the model's head
    batch_size: int = 256

    @classmethod
    def naive(cls, **kw: Any) -> OfflineMBRLConfig:
        """Plain offline MBPO: twin critics without LayerNorm or diversity (the failing baseline)."""
        return cls(**{"sac": {"num_qs": 2, "num_min_qs": 2, "critic_layer_norm": False}, "eta": 0.0, **kw})


def train_offline_mbrl(
    model: Any,
    data: Mapping[str, np.ndarray],
    contract: IOContract,
    updates: int,
    config: OfflineMBRLConfig | None = None,
    *,
    seed: int = 0,
    run: Any = None,
    agent: EnsembleSAC | None = None,
) -> EnsembleSAC:
    """Train a policy from ``data`` and ``model`` (fitted ensemble or TrueDynamics) only; returns the learner.

    The learner keeps ``last_rollout`` (the latest Trajectory, so the edge-of-reach states are its final
    ``next_obs``) and ``history`` (logged metrics).
    """
    cfg = config or OfflineMBRLConfig()
    if updates < 1:
        raise TetherError(f"offline updates={updates}; expected >= 1")
    if cfg.rollout_length < 1 or not 0.0 <= cfg.dataset_ratio <= 1.0:
        raise TetherError(f"rollout_length={cfg.rollout_length}, dataset_ratio={cfg.dataset_ratio}; expected "
                          f">= 1 and within [0, 1]")
    d = _as_data(data)
    if d["obs"].shape[1] != contract.obs_size or d["action"].shape[1] != contract.action_size:
        raise TetherError(f"data has obs {d['obs'].shape[1]} / action {d['action'].shape[1]}; the contract "
                          f"expects {contract.obs_size} / {contract.action_size}")
    sac_cfg = _sac_config(cfg.sac, {"batch_size": cfg.batch_size})
    learner = agent or EnsembleSAC(contract, sac_cfg, eta=cfg.eta, seed=seed)
    real = ReplayBuffer.from_arrays(d["obs"], d["action"], d["reward"], d["next_obs"], d["done"], seed=seed)
    imagined = ReplayBuffer(contract.obs_size, contract.action_size, cfg.model_retain, seed=seed + 1)
    rng = np.random.default_rng(seed + 2)
    reward_fn, done_fn = task_reward(cfg.reward, contract) if cfg.reward else (None, None)
    learner.history = []
    if run is not None:
        run.set_policy(learner.policy)
    metrics: dict[str, float] = {}
    for step in range(updates):
        if step % cfg.rollout_every == 0:
            start = d["obs"][rng.integers(0, len(d["obs"]), cfg.rollout_batch)]
            traj = imagine(model, learner, start, cfg.rollout_length, penalty=cfg.penalty,
                           max_uncertainty=cfg.max_uncertainty, reward_fn=reward_fn, done_fn=done_fn)
            _add_rollout(imagined, traj)
            learner.last_rollout = traj
        sources = [(real, cfg.dataset_ratio), (imagined, 1.0 - cfg.dataset_ratio)]
        metrics = learner.update(concat_batches(*mix(sources, sac_cfg.batch_size)))
        if run is not None and (step + 1) % max(updates // 20, 1) == 0:
            run.advance(step + 1)
            run.log(step + 1, metrics)
            run.maybe_evaluate(step + 1, learner.policy)
        if (step + 1) % max(updates // 20, 1) == 0:
            learner.history.append({"step": step + 1, **metrics})
    learner.policy.extra.update({"algo": "offline-mbrl", "updates": updates, "eta": cfg.eta,
                                 "sac_config": config_to_dict(sac_cfg), "rollout_length": cfg.rollout_length})
    return learner


# --------------------------------------------------------------------------------------------- MBPO
@dataclass
class MBPOConfig:
    sac: dict = field(default_factory=dict)  # SACConfig overrides
    model: dict = field(default_factory=lambda: {"members": 5, "elites": 3, "hidden": (128, 128)})
    init_steps: int = 250  # uniform random actions before the first model fit
    model_train_every: int = 250  # real steps between refits (warm-started)
    model_updates: int = 400  # gradient steps per refit
    rollout_every: int = 25  # real steps between rollout batches
    rollout_batch: int = 256
    rollout_length: int = 3
    model_retain: int = 20_000
    real_ratio: float = 0.1
    utd: int = 5  # SAC updates per real step
    penalty: float = 0.0
    max_uncertainty: float | None = None
    reward: str | None = None


def train_mbpo(
    env: Any,
    total_steps: int,
    config: MBPOConfig | None = None,
    *,
    seed: int = 0,
    run: Any = None,
    env_kwargs: dict[str, Any] | None = None,
) -> EnsembleSAC:
    """MBPO on ``env`` (an id or factory) for ``total_steps`` real steps; returns the SAC learner with
    ``model`` (the fitted ensemble) and ``buffer`` (the real transitions) attached."""
    cfg = config or MBPOConfig()
    if total_steps < 1:
        raise TetherError(f"MBPO total_steps={total_steps}; expected >= 1")
    venv, info = make_vec_env(env, 1, **(env_kwargs or {}))
    contract = info.contract
    sac_cfg = _sac_config(cfg.sac, {})
    learner = EnsembleSAC(contract, sac_cfg, seed=seed)
    if sac_cfg.init_neutral_action:
        set_action_bias(learner.policy, info.neutral_action)
    learner.policy.dr_terms = info.dr_terms
    mcfg = config_from_dict(EnsembleConfig, {"seed": seed, **cfg.model}, "world model")
    model = EnsembleWorldModel(contract.obs_size, contract.action_size, mcfg)
    reward_fn, done_fn = task_reward(cfg.reward, contract) if cfg.reward else (None, None)
    real = ReplayBuffer(contract.obs_size, contract.action_size, total_steps + 1, seed=seed)
    imagined = ReplayBuffer(contract.obs_size, contract.action_size, cfg.model_retain, seed=seed + 1)
    rng = np.random.default_rng(seed + 2)
    if run is not None:
        run.set_policy(learner.policy)
    timing = {"model": 0.0}

    def observe(obs, action, res, stats) -> None:
        """Refit the model and refill the imagined buffer on MBPO's schedule (before this step's updates)."""
        step = stats.steps + len(obs)
        if step < cfg.init_steps:
            return
        t0 = time.perf_counter()
        if step == cfg.init_steps or step % cfg.model_train_every == 0:
            model.fit(real.arrays(), max_updates=cfg.model_updates)
        if step % cfg.rollout_every == 0 or step == cfg.init_steps:
            start = real.obs[rng.integers(0, len(real), cfg.rollout_batch)]
            traj = imagine(model, learner, start, cfg.rollout_length, penalty=cfg.penalty,
                           max_uncertainty=cfg.max_uncertainty, reward_fn=reward_fn, done_fn=done_fn)
            _add_rollout(imagined, traj)
        timing["model"] += time.perf_counter() - t0

    def log(stats, finished) -> None:
        run.advance(stats.steps)
        run.log(stats.steps, episode_metrics(stats, finished))
        run.maybe_evaluate(stats.steps, learner.policy)

    sources = [(real, cfg.real_ratio), (imagined, 1.0 - cfg.real_ratio)]
    try:
        stats = run_offpolicy(venv, total_steps, act=learner.act, buffer=real, seed=seed,
                              learn=lambda: learner.update(concat_batches(*mix(sources, sac_cfg.batch_size))),
                              learning_starts=cfg.init_steps, utd=cfg.utd, observe=observe,
                              log=log if run is not None else None, log_every=max(total_steps // 10, 1))
    finally:
        venv.close()
    returns = [e["return"] for e in stats.episodes]
    t_model, t_sac = timing["model"], stats.update_time_s
    learner.policy.extra.update({"algo": "mbpo", "env_steps": total_steps, "model_time_s": t_model,
                                 "sac_time_s": t_sac, "sac_config": config_to_dict(sac_cfg)})
    learner.model, learner.buffer, learner.episode_returns = model, real, returns
    return learner
