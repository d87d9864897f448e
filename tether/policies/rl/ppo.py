"""PPO for sim training: vectorised envs, GAE, observation and reward normalisation, optional privileged critic.

Why these choices: the clipped surrogate with GAE is the workhorse of sim-to-real locomotion and flight (legged
gym, rsl_rl); observation normalisation lives *inside* the deployed policy (so the robot sees the training stats);
the critic may read privileged simulator state (``info["privileged"]``: true masses, frictions, disturbances) that
no robot provides — an asymmetric actor-critic, since the critic is discarded at deployment. Truncated episodes
are bootstrapped with V(final observation), not treated as terminal, so time limits do not bias values.

The normaliser statistics are frozen during a rollout and its update and refreshed after it, so the log-probs
stored at collection are exactly those the first update epoch recomputes (ratio starts at 1).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tether.contract import IOContract
from tether.errors import TetherError
from tether.policies.gaussian import GaussianPolicy
from tether.policies.history import ObservationHistory
from tether.policies.networks import ValueNet, adam
from tether.policies.normalization import RunningNormalizer
from tether.policies.rl.common import EnvSource, config_from_dict, config_to_dict, make_vec_env, set_action_bias


@dataclass
class PPOConfig:
    # Defaults validated on tether/QuadrotorHover-v0 (no DR): 100 % eval success after 150k steps for seeds 0-5
    # (benchmarks/RESULTS.md). 32 batched envs x 64 steps per rollout, 10 epochs of 4 minibatches.
    num_envs: int = 32
    rollout_steps: int = 64  # per env, per iteration
    epochs: int = 10
    minibatch_size: int = 512
    lr: float = 1e-3
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    value_clip: float | None = None  # clip the value update to ±value_clip around the old value
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None  # stop the epoch loop early when the approximate KL exceeds this
    hidden: tuple[int, ...] = (128, 128)
    critic_hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    log_std_init: float = -1.0
    init_neutral_action: bool = True  # start the policy mean at the env's neutral action (hover thrust)
    norm_obs: bool = True
    norm_reward: bool = True
    privileged_critic: bool = True  # use info["privileged"] in the critic when the env provides it
    history: int = 1  # observations the actor reads (> 1: a window, for robots unlike the nominal one)


class PPO:
    """The learner: a Gaussian policy (clip-squashed), a value net, and one ``update(rollout)`` step."""

    def __init__(self, contract: IOContract, config: PPOConfig | None = None, *, seed: int = 0,
                 privileged_size: int = 0) -> None:
        self.cfg = cfg = config or PPOConfig()
        torch.manual_seed(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.contract = contract
        self.priv_size = privileged_size if cfg.privileged_critic else 0
        self.policy = GaussianPolicy(contract, {
            "net": {"hidden": list(cfg.hidden), "act": cfg.activation, "layer_norm": False},
            "squash": "clip", "log_std": "state_independent", "log_std_init": cfg.log_std_init,
            "head_scale": 0.01, "history": int(cfg.history),
        })
        critic_in = contract.obs_size + self.priv_size
        self.critic_norm = RunningNormalizer(critic_in)
        self.critic = ValueNet(critic_in, cfg.critic_hidden, act=cfg.activation)
        self.params = list(self.policy.parameters()) + list(self.critic.parameters())
        self.opt = adam(self.params, cfg.lr, eps=1e-5)
        self.ret_norm = RunningNormalizer(1)

    def value(self, obs: torch.Tensor, priv: torch.Tensor | None) -> torch.Tensor:
        x = obs if priv is None or self.priv_size == 0 else torch.cat([obs, priv], dim=-1)
        return self.critic(self.critic_norm(x))

    def update_normalizers(self, obs: np.ndarray, priv: np.ndarray | None, actor: bool = True) -> None:
        """Running observation statistics; ``actor=False`` leaves the actor's as they are (a warm-started actor
        keeps the input scaling its weights were trained for)."""
        if not self.cfg.norm_obs:
            return
        if actor:
            self.policy.obs_norm.update(obs)
        self.critic_norm.update(obs if priv is None or self.priv_size == 0 else np.concatenate([obs, priv], -1))

    def update(self, batch: dict[str, torch.Tensor], critic_only: bool = False) -> dict[str, float]:
        """Clipped-surrogate epochs over one rollout: keys obs (the critic's), x (the actor's input, stacked when
        the actor reads a history; obs otherwise), priv?, raw_action, logp, value, adv, ret."""
        cfg = self.cfg
        n = batch["obs"].shape[0]
        mb = min(cfg.minibatch_size, n)
        stats: dict[str, list[float]] = {"pg_loss": [], "v_loss": [], "entropy": [], "approx_kl": [], "clipfrac": []}
        priv = batch.get("priv")
        self.policy.train()
        for _ in range(cfg.epochs):
            perm = torch.randperm(n, generator=self.gen)
            kl_stop = False
            for start in range(0, n - mb + 1, mb):
                idx = perm[start:start + mb]
                obs = batch["obs"][idx]
                newlogp, entropy = self.policy.log_prob_entropy(batch.get("x", batch["obs"])[idx],
                                                                batch["raw_action"][idx])
                logratio = newlogp - batch["logp"][idx]
                ratio = logratio.exp()
                adv = batch["adv"][idx]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
                v = self.value(obs, None if priv is None else priv[idx])
                ret = batch["ret"][idx]
                if cfg.value_clip is not None:
                    old_v = batch["value"][idx]
                    v_clipped = old_v + (v - old_v).clamp(-cfg.value_clip, cfg.value_clip)
                    v_loss = 0.5 * torch.max((v - ret) ** 2, (v_clipped - ret) ** 2).mean()
                else:
                    v_loss = 0.5 * ((v - ret) ** 2).mean()
                ent = entropy.mean()
                loss = cfg.vf_coef * v_loss if critic_only else pg_loss - cfg.ent_coef * ent + cfg.vf_coef * v_loss
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm, foreach=True)
                self.opt.step()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean().item()
                    stats["approx_kl"].append(approx_kl)
                    stats["clipfrac"].append(((ratio - 1).abs() > cfg.clip_coef).float().mean().item())
                stats["pg_loss"].append(pg_loss.item())
                stats["v_loss"].append(v_loss.item())
                stats["entropy"].append(ent.item())
                if cfg.target_kl is not None and approx_kl > 1.5 * cfg.target_kl:
                    kl_stop = True
                    break
            if kl_stop:
                break
        self.policy.eval()
        out = {f"train/{k}": float(np.mean(v)) for k, v in stats.items() if v}
        out["train/updates"] = float(len(stats["pg_loss"]))
        out["train/std"] = float(self.policy.log_std.detach().exp().mean())
        return out


def compute_gae(rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, last_value: np.ndarray,
                gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """(T, N) arrays → (advantages, returns). ``dones[t]`` marks that transition t ended its episode."""
    T = rewards.shape[0]
    adv = np.zeros_like(rewards)
    last = np.zeros_like(last_value)
    for t in reversed(range(T)):
        next_v = last_value if t == T - 1 else values[t + 1]
        nonterm = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_v * nonterm - values[t]
        last = delta + gamma * lam * nonterm * last
        adv[t] = last
    return adv, adv + values


def train_ppo(
    env: EnvSource,
    total_steps: int,
    config: PPOConfig | dict[str, Any] | None = None,
    *,
    seed: int = 0,
    run: Any = None,
    env_kwargs: dict[str, Any] | None = None,
    executor: str = "inprocess",
    executor_options: dict[str, Any] | None = None,
    init_policy: GaussianPolicy | None = None,
    critic_warmup_iters: int = 0,
    until: Callable[[int, GaussianPolicy], bool] | None = None,
) -> GaussianPolicy:
    """Train and return the policy (its ``extra`` holds training stats). ``run`` is an optional TrainingRun.

    ``executor`` / ``executor_options``: where the batched envs run (``tether.sim.vector``: in-process,
    processes, Ray with ``{"address": ...}``). ``init_policy`` continues training a PPO policy (its weights,
    normaliser and history length; fine-tuning under another DR, say); its fresh critic first learns alone for
    ``critic_warmup_iters`` rollouts, so the actor is not steered by a value function that knows nothing yet, and
    the actor's observation normaliser stays as trained (moving it would shift every input under its weights).
    ``until(steps, policy)``, called after every update, ends training early when it returns True (the pipeline
    stops fine-tuning once the policy works on the robot as identified).
    """
    cfg = config if isinstance(config, PPOConfig) else config_from_dict(PPOConfig, config, "PPO")
    if total_steps < cfg.num_envs * cfg.rollout_steps:
        raise TetherError(f"PPO total_steps={total_steps}; expected >= num_envs*rollout_steps "
                          f"= {cfg.num_envs * cfg.rollout_steps}")
    venv, info = make_vec_env(env, cfg.num_envs, executor=executor, executor_options=executor_options,
                              **(env_kwargs or {}))
    contract, priv_size = info.contract, info.privileged_size
    if init_policy is not None:
        init_policy.contract.check_compatible(contract, what="env")
        if init_policy.config["squash"] != "clip":
            raise TetherError("PPO continues only PPO policies (clipped Gaussian); got a tanh-squashed actor")
        cfg = dataclasses.replace(cfg, history=init_policy.history)
    ppo = PPO(contract, cfg, seed=seed, privileged_size=priv_size)
    if init_policy is not None:
        ppo.policy.load_state_dict(init_policy.state_dict())
    policy = ppo.policy
    policy.dr_terms = info.dr_terms
    if cfg.init_neutral_action and init_policy is None:
        set_action_bias(policy, info.neutral_action)
    if run is not None:
        run.set_policy(policy)
    obs, priv = venv.reset_batch(seed)
    warm = init_policy is not None
    ppo.update_normalizers(obs, priv, actor=not warm)
    N, T, A = cfg.num_envs, cfg.rollout_steps, contract.action_size
    window = ObservationHistory(policy.history) if policy.history > 1 else None  # the actor's input, as at deploy
    x = window.push(obs).reshape(N, -1) if window is not None else obs
    iterations = total_steps // (N * T)
    disc_ret = np.zeros(N)
    recent: list[dict[str, Any]] = []
    steps = 0
    t_env = t_update = 0.0
    n_updates = 0
    last_metrics: dict[str, float] = {}
    try:
        for it in range(iterations):
            if cfg.anneal_lr:
                for g in ppo.opt.param_groups:
                    g["lr"] = cfg.lr * (1.0 - it / iterations)
            b_obs = np.zeros((T, N, contract.obs_size), np.float32)
            b_x = np.zeros((T, N, policy.input_size), np.float32) if window is not None else None
            b_priv = np.zeros((T, N, ppo.priv_size), np.float32) if ppo.priv_size else None
            b_raw = np.zeros((T, N, A), np.float32)
            b_logp = np.zeros((T, N), np.float32)
            b_val = np.zeros((T, N), np.float32)
            b_rew = np.zeros((T, N), np.float32)
            b_done = np.zeros((T, N), np.float32)
            t0 = time.perf_counter()
            for t in range(T):
                with torch.inference_mode():
                    obs_t = torch.from_numpy(obs)
                    priv_t = None if priv is None or not ppo.priv_size else torch.from_numpy(priv)
                    raw, logp = policy.sample(torch.from_numpy(x), generator=ppo.gen)
                    val = ppo.value(obs_t, priv_t)
                raw_np = raw.numpy()
                res = venv.step_batch(np.clip(raw_np, -1.0, 1.0))
                rew = res.reward.astype(np.float64)
                if cfg.norm_reward:
                    disc_ret = disc_ret * cfg.gamma + rew
                    ppo.ret_norm.update(disc_ret[:, None])
                    rew = rew / np.sqrt(float(ppo.ret_norm.var[0]) + 1e-8)
                trunc_only = res.truncated & ~res.terminated
                if trunc_only.any():
                    idx = np.nonzero(trunc_only)[0]
                    with torch.inference_mode():
                        fp = None if res.final_privileged is None or not ppo.priv_size else torch.from_numpy(
                            res.final_privileged[idx])
                        boot = ppo.value(torch.from_numpy(res.final_obs[idx]), fp).numpy()
                    rew[idx] += cfg.gamma * boot
                done = res.terminated | res.truncated
                disc_ret[done] = 0.0
                b_obs[t], b_raw[t], b_logp[t], b_val[t] = obs, raw_np, logp.numpy(), val.numpy()
                if b_x is not None:
                    b_x[t] = x
                if b_priv is not None:
                    b_priv[t] = priv
                b_rew[t], b_done[t] = rew, done
                obs, priv = res.obs, res.privileged
                if window is not None:
                    if done.any():
                        window.reset(np.nonzero(done)[0])
                    x = window.push(obs).reshape(N, -1)
                else:
                    x = obs
                recent.extend(res.finished())
            with torch.inference_mode():
                last_v = ppo.value(torch.from_numpy(obs), None if priv is None or not ppo.priv_size
                                   else torch.from_numpy(priv)).numpy()
            adv, ret = compute_gae(b_rew, b_val, b_done, last_v, cfg.gamma, cfg.gae_lambda)
            steps += N * T
            t1 = time.perf_counter()
            batch = {
                "obs": torch.from_numpy(b_obs.reshape(T * N, -1)),
                "raw_action": torch.from_numpy(b_raw.reshape(T * N, -1)),
                "logp": torch.from_numpy(b_logp.reshape(-1)),
                "value": torch.from_numpy(b_val.reshape(-1)),
                "adv": torch.from_numpy(adv.reshape(-1).astype(np.float32)),
                "ret": torch.from_numpy(ret.reshape(-1).astype(np.float32)),
            }
            if b_priv is not None:
                batch["priv"] = torch.from_numpy(b_priv.reshape(T * N, -1))
            if b_x is not None:
                batch["x"] = torch.from_numpy(b_x.reshape(T * N, -1))
            metrics = ppo.update(batch, critic_only=it < critic_warmup_iters)
            last_metrics = metrics
            ppo.update_normalizers(b_obs.reshape(T * N, -1), None if b_priv is None else b_priv.reshape(T * N, -1),
                                   actor=not warm)
            t2 = time.perf_counter()
            t_env += t1 - t0
            t_update += t2 - t1
            n_updates += int(metrics["train/updates"])
            if recent:
                metrics["rollout/return_mean"] = float(np.mean([e["return"] for e in recent]))
                metrics["rollout/length_mean"] = float(np.mean([e["length"] for e in recent]))
                succ = [e["success"] for e in recent if e["success"] is not None]
                if succ:
                    metrics["rollout/success_rate"] = float(np.mean(succ))
                recent = []
            metrics["time/env_steps_per_s"] = steps / max(t_env, 1e-9)
            metrics["time/updates_per_s"] = n_updates / max(t_update, 1e-9)
            if run is not None:
                run.advance(steps)
                run.log(steps, metrics)
                run.maybe_evaluate(steps, policy)
            if until is not None and until(steps, policy):
                break
    finally:
        venv.close()
        policy.extra.update({"algo": "ppo", "ppo_config": config_to_dict(cfg), "env_steps": steps,
                             "final_v_loss": last_metrics.get("train/v_loss", float("nan")),
                             "gradient_updates": n_updates, "env_time_s": t_env, "update_time_s": t_update})
    return policy


# Warm-start fine-tuning (``--init``, the pipeline's sim fine-tuning under an identified DR): a smaller step than
# training from scratch and ten critic-only rollouts first. On the quadrotor moved to an identified heavy, laggy
# model (150k steps, seeds 1-2) this kept 100 % / 95 % sim success where lr 1e-3 with 3 warm-up rollouts and a
# moving actor normaliser fell to 15 % / 30 % from the parent's 90 %.
FINETUNE_LR = 3e-4
FINETUNE_CRITIC_WARMUP = 10

# env steps ``tether train ENV --algo ppo`` runs when --steps is not given (what reaches the task's success)
DEFAULT_STEPS = {"tether/QuadrotorHover-v0": 150_000, "tether/ArmReach-v0": 300_000, "tether/LeggedStand-v0": 200_000}


# Regression steps per DAgger round on a PPO actor (64 episodes a round): on the quadrotor's identified heavy,
# weak, late robot 3000 took the actor from 25 % to 70 % and 95 % in two rounds, 14 s (benchmarks/RESULTS.md,
# "DAgger after PPO")
DAGGER_STEPS = 3000


def train_ppo_cli(spec: Any, run: Any) -> GaussianPolicy:
    """``tether train ENV --algo ppo`` entry (see tether.policies.algos). ``--set dagger_rounds=N`` then runs N
    DAgger rounds under the run's DR (:func:`tether.policies.dagger.dagger`): the actor flies, the task's scripted
    expert labels every state it reached, and the actor regresses onto the labels (:meth:`GaussianPolicy.fit`).
    Why: the expert is told each world's mass and rotor gain, and an actor with a history learns to infer them;
    PPO alone does not get there (benchmarks/RESULTS.md, "DAgger after PPO")."""
    from tether.policies.dagger import DaggerConfig, dagger

    steps = spec.steps or DEFAULT_STEPS.get(spec.env_id, 200_000)
    init, config = None, {"dagger_steps": DAGGER_STEPS, **(spec.config or {})}
    rounds = DaggerConfig.pop_from(config)  # what is left are PPO's settings
    rounds.check_env(spec.env_id)  # before any work, not after the training
    run.set_total(steps)
    if spec.init_checkpoint:
        from tether.policies.checkpoint import load_policy

        init = load_policy(spec.init_checkpoint, expected_kind=GaussianPolicy.kind)
        config = {"lr": FINETUNE_LR, **config}
    policy = train_ppo(spec.env_id, steps, config, seed=spec.seed, run=run,
                       env_kwargs={"backend": spec.backend, "dr": spec.dr}, executor=spec.executor,
                       executor_options=spec.executor_options, init_policy=init,
                       critic_warmup_iters=FINETUNE_CRITIC_WARMUP if init is not None else 0)
    if rounds.rounds:
        with tempfile.TemporaryDirectory(prefix="tether-dagger-") as tmp:  # no run folder: nothing is kept
            dagger(policy, spec.env_id, None, rounds, Path(tmp) if spec.out is None else Path(spec.out) / "dagger",
                   dr=spec.dr, backend=spec.backend, seed=spec.seed, log=print)
        policy.extra["dagger"] = rounds.as_extra()
    return policy
