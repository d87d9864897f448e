"""SAC: twin (or N) critics with target nets, automatic entropy tuning, LayerNorm critics and high UTD (RLPD).

Why the pieces are separate: world-model (MBPO), hybrid (H2O, RLPD) and offline→online trainers reuse SAC with
other data sources, so the learner (``SAC.update(batch)``), the data (``ReplayBuffer``) and the env loop
(``train_sac``) are independent. RLPD's recipe is options here: ``critic_layer_norm=True``, ``num_qs=10`` with
``num_min_qs=2`` (random subset for the target minimum), ``utd=20``, and ``offline_buffer`` sampled symmetrically
(half of every batch) with online data.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tether.contract import IOContract
from tether.errors import TetherError
from tether.policies.gaussian import GaussianPolicy
from tether.policies.networks import EnsembleQ, adam, soft_update
from tether.policies.rl.common import (
    EnvSource,
    config_from_dict,
    config_to_dict,
    env_factory,
    probe_env,
    set_action_bias,
)
from tether.policies.rl.envpool import make_env_pool

Batch = dict[str, torch.Tensor]


class ReplayBuffer:
    """Fixed-capacity ring buffer of (obs, action, reward, next_obs, terminated) in float32 numpy arrays.

    ``terminated`` is true only for real terminal states (not time-limit truncations), so targets bootstrap
    through truncations. ``sample`` returns torch tensors keyed obs/action/reward/next_obs/done.
    """

    def __init__(self, obs_size: int, action_size: int, capacity: int = 1_000_000, *, seed: int = 0) -> None:
        if capacity < 1:
            raise TetherError(f"replay capacity {capacity}; expected >= 1")
        self.obs_size, self.action_size, self.capacity = int(obs_size), int(action_size), int(capacity)
        self.obs = np.zeros((capacity, obs_size), np.float32)
        self.action = np.zeros((capacity, action_size), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.next_obs = np.zeros((capacity, obs_size), np.float32)
        self.done = np.zeros(capacity, np.float32)
        self.rng = np.random.default_rng(seed)
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray | float, next_obs: np.ndarray,
            terminated: np.ndarray | bool) -> None:
        """Add one transition or a batch (leading dim B)."""
        obs = np.asarray(obs, np.float32).reshape(-1, self.obs_size)
        b = obs.shape[0]
        action = np.asarray(action, np.float32).reshape(b, self.action_size)
        next_obs = np.asarray(next_obs, np.float32).reshape(b, self.obs_size)
        reward = np.asarray(reward, np.float32).reshape(b)
        terminated = np.asarray(terminated, np.float32).reshape(b)
        if b > self.capacity:
            obs, action, reward, next_obs, terminated = (x[-self.capacity:] for x in
                                                         (obs, action, reward, next_obs, terminated))
            b = self.capacity
        idx = (self.pos + np.arange(b)) % self.capacity
        self.obs[idx], self.action[idx], self.reward[idx] = obs, action, reward
        self.next_obs[idx], self.done[idx] = next_obs, terminated
        self.pos = int((self.pos + b) % self.capacity)
        self.size = int(min(self.size + b, self.capacity))

    def sample(self, batch_size: int) -> Batch:
        if self.size == 0:
            raise TetherError("cannot sample from an empty replay buffer")
        idx = self.rng.integers(0, self.size, size=batch_size)
        return {
            "obs": torch.from_numpy(self.obs[idx]),
            "action": torch.from_numpy(self.action[idx]),
            "reward": torch.from_numpy(self.reward[idx]),
            "next_obs": torch.from_numpy(self.next_obs[idx]),
            "done": torch.from_numpy(self.done[idx]),
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """Views of the stored transitions (oldest first is not guaranteed once the ring wraps)."""
        n = self.size
        return {"obs": self.obs[:n], "action": self.action[:n], "reward": self.reward[:n],
                "next_obs": self.next_obs[:n], "done": self.done[:n]}

    @classmethod
    def from_arrays(cls, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
                    terminated: np.ndarray, *, capacity: int | None = None, seed: int = 0) -> ReplayBuffer:
        """A buffer pre-filled from arrays (offline datasets, imagined rollouts)."""
        obs = np.asarray(obs)
        action = np.asarray(action)
        if obs.ndim != 2 or action.ndim != 2 or len(obs) != len(action):
            raise TetherError(f"from_arrays got obs {obs.shape}, action {action.shape}; expected (N, obs) and (N, act)")
        buf = cls(obs.shape[1], action.shape[1], capacity or max(len(obs), 1), seed=seed)
        buf.add(obs, action, reward, next_obs, terminated)
        return buf


def concat_batches(*batches: Batch) -> Batch:
    """Concatenate batches key-wise (RLPD symmetric sampling: half offline, half online)."""
    keys = batches[0].keys()
    return {k: torch.cat([b[k] for b in batches], dim=0) for k in keys}


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
    offline_ratio: float = 0.5
    init_neutral_action: bool = True  # start the policy mean at the env's neutral action (hover thrust)  # share of each batch drawn from an offline buffer when one is given


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
            "norm_clip": 10.0 if cfg.norm_obs else 1e9,
        })
        self.q = EnsembleQ(contract.obs_size, a, cfg.num_qs, cfg.critic_hidden, act=cfg.activation,
                           layer_norm=cfg.critic_layer_norm)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.log_alpha = torch.tensor(float(np.log(cfg.init_alpha)), requires_grad=True)
        self.target_entropy = float(cfg.target_entropy if cfg.target_entropy is not None else -a)
        self.actor_opt = adam(self.policy.parameters(), cfg.lr)
        self.critic_opt = adam(self.q.parameters(), cfg.lr)
        self.alpha_opt = adam([self.log_alpha], cfg.lr)
        self.num_updates = 0
        self.buffer: ReplayBuffer | None = None

    @property
    def alpha(self) -> float:
        return float(self.log_alpha.detach().exp())

    def _norm(self, obs: torch.Tensor) -> torch.Tensor:
        return self.policy.obs_norm(obs)

    def update(self, batch: Batch) -> dict[str, float]:
        """One SAC step on ``batch`` (obs, action, reward, next_obs, done); returns scalar metrics."""
        cfg = self.cfg
        alpha = self.log_alpha.detach().exp()
        obs_n, next_n = self._norm(batch["obs"]), self._norm(batch["next_obs"])
        with torch.no_grad():
            next_a, next_logp = self.policy.sample(batch["next_obs"], generator=self.gen)
            tq = self.q_target(next_n, next_a)
            if cfg.num_min_qs < cfg.num_qs:
                idx = torch.randperm(cfg.num_qs, generator=self.gen)[: cfg.num_min_qs]
                tq = tq[idx]
            tq = tq.min(0).values
            if cfg.backup_entropy:
                tq = tq - alpha * next_logp
            y = batch["reward"] + cfg.gamma * (1.0 - batch["done"]) * tq
        q = self.q(obs_n, batch["action"])
        critic_loss = ((q - y.unsqueeze(0)) ** 2).mean(1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        soft_update(self.q_target, self.q, cfg.tau)
        self.num_updates += 1
        out = {"train/critic_loss": float(critic_loss.detach()), "train/q_mean": float(q.detach().mean())}
        if self.num_updates % cfg.actor_delay == 0:
            out.update(self.update_actor(batch["obs"]))
        return out

    def update_actor(self, obs: torch.Tensor) -> dict[str, float]:
        """Actor step (maximise Q - α log π) and temperature step on the same observations."""
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

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        with torch.inference_mode():
            a, _ = self.policy.sample(torch.as_tensor(np.asarray(obs, np.float32)), deterministic=deterministic,
                                      generator=self.gen)
        return a.numpy()


def _sample(buffer: ReplayBuffer, offline: ReplayBuffer | None, batch_size: int, ratio: float) -> Batch:
    if offline is None or len(offline) == 0:
        return buffer.sample(batch_size)
    n_off = int(round(batch_size * ratio))
    if len(buffer) == 0 or n_off >= batch_size:
        return offline.sample(batch_size)
    return concat_batches(offline.sample(n_off), buffer.sample(batch_size - n_off))


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
) -> SAC:
    """Collect ``total_steps`` env steps with SAC; returns the learner (``.policy`` is the deployable policy,
    ``.buffer`` the online replay buffer).

    ``agent`` continues training an existing learner (fine-tuning); ``offline_buffer`` mixes prior data into
    every batch (RLPD), in which case learning starts immediately; ``buffer`` supplies the online buffer.
    """
    cfg = config if isinstance(config, SACConfig) else config_from_dict(SACConfig, config, "SAC")
    if agent is not None:
        cfg = agent.cfg
    factory = env_factory(env, **(env_kwargs or {}))
    info = probe_env(factory)
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
    pool = make_env_pool([factory] * cfg.num_envs, seed=seed)
    rng = np.random.default_rng(seed + 1)
    obs, _ = pool.reset()
    starts = 0 if (offline_buffer is not None and len(offline_buffer)) or agent is not None else cfg.learning_starts
    steps = updates = 0
    t_env = t_update = 0.0
    recent: list[dict[str, Any]] = []
    metrics: dict[str, float] = {}
    log_every = max(min(1000, total_steps // 10), cfg.num_envs, 1)
    next_log = log_every
    try:
        while steps < total_steps:
            t0 = time.perf_counter()
            if steps < starts:
                action = rng.uniform(-1.0, 1.0, size=(pool.n, contract.action_size)).astype(np.float32)
            else:
                action = sac.act(obs)
            res = pool.step(action)
            buf.add(obs, action, res.reward, res.final_obs, res.terminated)
            if cfg.norm_obs:
                policy.obs_norm.update(res.final_obs)
            obs = res.next_obs
            steps += pool.n
            recent.extend(res.finished)
            t1 = time.perf_counter()
            if steps >= starts and len(buf) + (len(offline_buffer) if offline_buffer is not None else 0) > 0:
                for _ in range(cfg.utd * pool.n):
                    metrics = sac.update(_sample(buf, offline_buffer, cfg.batch_size, cfg.offline_ratio))
                    updates += 1
            t2 = time.perf_counter()
            t_env += t1 - t0
            t_update += t2 - t1
            if run is not None:
                run.advance(steps)
                if steps >= next_log or steps >= total_steps:
                    next_log += log_every
                    m = dict(metrics)
                    if recent:
                        m["rollout/return_mean"] = float(np.mean([e["return"] for e in recent]))
                        succ = [e["success"] for e in recent if e["success"] is not None]
                        if succ:
                            m["rollout/success_rate"] = float(np.mean(succ))
                        recent = []
                    m["time/env_steps_per_s"] = steps / max(t_env, 1e-9)
                    m["time/updates_per_s"] = updates / max(t_update, 1e-9)
                    run.log(steps, m)
                run.maybe_evaluate(steps, policy)
    finally:
        pool.close()
        policy.extra.update({"algo": "sac", "sac_config": config_to_dict(cfg), "env_steps": steps,
                             "gradient_updates": updates, "env_time_s": t_env, "update_time_s": t_update})
    sac.buffer = buf  # kept for callers that continue training
    return sac


def train_sac_cli(spec: Any, run: Any) -> GaussianPolicy:
    """``tether train ENV --algo sac`` entry (see tether.policies.algos)."""
    steps = spec.steps or 100_000
    return train_sac(spec.env_id, steps, spec.config, seed=spec.seed, run=run,
                     env_kwargs={"backend": spec.backend, "dr": spec.dr}).policy


__all__: Sequence[str] = ("SAC", "SACConfig", "ReplayBuffer", "concat_batches", "train_sac")
