"""H2O's training run: real data checked and split, the actor started, simulator steps through the shared
off-policy loop with the actor frozen until the critic catches up, snapshots, and the final selection."""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch

from tether.errors import TetherError
from tether.policies.base import Policy
from tether.policies.buffers import ReplayBuffer
from tether.policies.hybrid.common import EnvLike, ProgressFn, check_run, fit_to_env, real_buffer, start_actor
from tether.policies.hybrid.common import train_cli
from tether.policies.hybrid.h2o.config import H2OConfig
from tether.policies.hybrid.h2o.learner import H2O
from tether.policies.hybrid.h2o.selection import select_actor
from tether.policies.rl.common import config_to_dict, make_vec_env
from tether.policies.rl.offpolicy import run_offpolicy


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


def train_h2o(
    sim_env: EnvLike,
    real: dict[str, np.ndarray],
    total_steps: int,
    config: H2OConfig | dict[str, Any] | None = None,
    *,
    seed: int = 0,
    policy: Policy | None = None,
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
        selection = select_actor(agent, held, snapshots, cfg.select_margin, cfg.select_max_shift)
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


__all__ = ["train_h2o", "train_h2o_cli"]
