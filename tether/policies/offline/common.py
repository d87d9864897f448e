"""What the offline learners share: the transition arrays they read, the twin critic, and the Q-guided trainer.

Why plain arrays: every source (a ``tether.data`` dataset via ``to_transitions``, a replay buffer, arrays a
test generates) reduces to (obs, actions, rewards, next_obs, terminals), so the learners never depend on where
data came from. Only true terminals stop bootstrapping; time-limit endings are not terminals.

``train_q_guided`` is the Diffusion-QL recipe (Wang et al. 2023) with the generator left abstract: behaviour
cloning loss of the generative actor + η·(−Q(s, a_π) / mean|Q|), twin-Q TD targets with actions from an EMA
copy of the actor. Diffusion-QL plugs in the DDPM chain (gradients through every denoising step); OFQL plugs in
the one-step average-velocity generator (gradients through one network call).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tether.contract import IOContract
from tether.errors import TetherError
from tether.policies.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from tether.policies.generative import GenerativeChunkPolicy
from tether.policies.networks import EnsembleQ, soft_update
from tether.policies.normalization import RunningNormalizer

_ALIASES = {
    "obs": ("obs", "observations", "observation"),
    "actions": ("actions", "action"),
    "rewards": ("rewards", "reward"),
    "next_obs": ("next_obs", "next_observations", "next_observation"),
    "terminals": ("terminals", "terminal", "terminated", "dones", "done"),
}


@dataclass
class OfflineData:
    """Transitions as float32 arrays: obs (N, O), actions (N, A) in [-1, 1], rewards (N,), next_obs, terminals."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminals: np.ndarray

    def __post_init__(self) -> None:
        self.obs = np.asarray(self.obs, np.float32)
        self.actions = np.asarray(self.actions, np.float32)
        self.rewards = np.asarray(self.rewards, np.float32).reshape(-1)
        self.next_obs = np.asarray(self.next_obs, np.float32)
        self.terminals = np.asarray(self.terminals, np.float32).reshape(-1)
        n = len(self.obs)
        if self.obs.ndim != 2 or self.next_obs.shape != self.obs.shape:
            raise TetherError(f"obs {self.obs.shape} / next_obs {self.next_obs.shape}; expected equal (N, obs_size)")
        if self.actions.ndim != 2 or len(self.actions) != n or len(self.rewards) != n or len(self.terminals) != n:
            raise TetherError(
                f"transition arrays disagree: obs {self.obs.shape}, actions {self.actions.shape}, rewards "
                f"{self.rewards.shape}, terminals {self.terminals.shape}; expected N rows each"
            )
        if n == 0:
            raise TetherError("offline dataset is empty; expected at least one transition")
        for name in ("obs", "actions", "rewards", "next_obs"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise TetherError(f"offline {name} contain NaN/inf; expected finite values")
        if np.abs(self.actions).max() > 1.0 + 1e-5:
            raise TetherError(
                f"offline actions reach {np.abs(self.actions).max():.3f}; expected normalised actions in [-1, 1]"
            )

    @classmethod
    def from_transitions(cls, tr: Mapping[str, np.ndarray]) -> OfflineData:
        """From a dict such as ``Dataset.to_transitions()`` (obs, action, reward, next_obs, terminal)."""
        got: dict[str, np.ndarray] = {}
        for key, names in _ALIASES.items():
            for n in names:
                if n in tr:
                    got[key] = tr[n]
                    break
            else:
                raise TetherError(f"transitions lack {key!r} (any of {list(names)}); got keys {sorted(tr)}")
        return cls(**got)

    def __len__(self) -> int:
        return len(self.obs)

    def check_contract(self, contract: IOContract) -> None:
        if self.obs.shape[1] != contract.obs_size or self.actions.shape[1] != contract.action_size:
            raise TetherError(
                f"dataset obs/action sizes {self.obs.shape[1]}/{self.actions.shape[1]} do not match contract "
                f"{contract.robot}/{contract.task} sizes {contract.obs_size}/{contract.action_size}"
            )

    def torch(self) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(getattr(self, k)) for k in ("obs", "actions", "rewards", "next_obs", "terminals")}


class Critic(nn.Module):
    """Twin (ensemble) Q(s, a) on physical observations with the normaliser inside, checkpointable on its own."""

    def __init__(self, obs_size: int, action_size: int, hidden: list[int] | tuple[int, ...] = (256, 256),
                 *, n: int = 2, act: str = "relu", layer_norm: bool = False) -> None:
        super().__init__()
        self.config = {"obs_size": int(obs_size), "action_size": int(action_size), "hidden": [int(h) for h in hidden],
                       "n": int(n), "act": act, "layer_norm": bool(layer_norm)}
        self.obs_norm = RunningNormalizer(obs_size)
        self.qs = EnsembleQ(obs_size, action_size, n, tuple(hidden), act=act, layer_norm=layer_norm)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """(B, O), (B, A) -> (n, B)."""
        return self.qs(self.obs_norm(obs), action)

    def q_min(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self(obs, action).min(dim=0).values

    def q_values(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Numpy: (B, O) with (B, A) -> (B,), or with (B, K, A) candidates -> (B, K); pessimistic min over critics."""
        o = torch.as_tensor(np.asarray(obs, np.float32))
        a = torch.as_tensor(np.asarray(actions, np.float32))
        with torch.inference_mode():
            if a.ndim == 3:
                b, k, _ = a.shape
                return self.q_min(o.repeat_interleave(k, 0), a.reshape(b * k, -1)).reshape(b, k).numpy()
            return self.q_min(o, a).numpy()

    def save(self, directory: str | Path, contract: IOContract) -> Path:
        return save_checkpoint(directory, kind="critic", tensors=self.state_dict(), config=self.config,
                               contract=contract)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Critic:
        return cls(int(cfg["obs_size"]), int(cfg["action_size"]), list(cfg["hidden"]), n=int(cfg.get("n", 2)),
                   act=str(cfg.get("act", "relu")), layer_norm=bool(cfg.get("layer_norm", False)))

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, prefix: str = "", config: Mapping[str, Any] | None = None) -> Critic:
        critic = cls.from_config(config if config is not None else ckpt.config)
        ckpt.load_module(critic, prefix)
        return critic.eval()

    @classmethod
    def load(cls, directory: str | Path) -> Critic:
        ckpt = load_checkpoint(directory)
        if ckpt.kind != "critic":
            raise TetherError(f"checkpoint {directory} holds a {ckpt.kind!r}; expected a 'critic'")
        return cls.from_checkpoint(ckpt)


def td_target(critic_target: Critic, next_obs: torch.Tensor, next_action: torch.Tensor, rewards: torch.Tensor,
              terminals: torch.Tensor, gamma: float) -> torch.Tensor:
    with torch.no_grad():
        return rewards + gamma * (1.0 - terminals) * critic_target.q_min(next_obs, next_action)


@dataclass
class OfflineConfig:
    """What every offline learner's settings have: how long, how big a batch, the TD backup, how often to log."""

    steps: int = 20_000  # gradient steps (each on one minibatch drawn uniformly from the data)
    batch_size: int = 256
    gamma: float = 0.99
    tau: float = 0.005  # Polyak rate of the target critic
    log_every: int = 500  # steps between logged means of the training losses


def minibatches(data: OfflineData, cfg: OfflineConfig, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
    """``cfg.steps`` minibatches (s, a, r, s', terminal) drawn with replacement from ``data`` with ``gen``."""
    t = data.torch()
    n = len(data)
    for _ in range(cfg.steps):
        idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        yield t["obs"][idx], t["actions"][idx], t["rewards"][idx], t["next_obs"][idx], t["terminals"][idx]


class MeanLog:
    """Sums scalar losses step by step and logs their means every ``log_every`` steps and at the last one.

    Why: logging one minibatch's loss is noise; every offline learner reports the mean since its last log line.
    """

    def __init__(self, cfg: OfflineConfig, log: Callable[[int, dict[str, float]], None] | None) -> None:
        self.every, self.last, self.log = cfg.log_every, cfg.steps, log
        self.sums: dict[str, float] = {}

    def add(self, step: int, values: Mapping[str, torch.Tensor]) -> None:
        """Add the losses of (0-based) ``step``; log and restart the means where a log line is due."""
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v.detach())
        if (step + 1) % self.every == 0 or step + 1 == self.last:
            if self.log is not None:
                count = (step % self.every) + 1
                self.log(step + 1, {f"train/{k}": v / count for k, v in self.sums.items()})
            self.sums = {}


@dataclass
class QGuidedConfig(OfflineConfig):
    """Knobs shared by Diffusion-QL and OFQL (defaults follow Diffusion-QL's D4RL locomotion settings)."""

    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    eta: float = 1.0  # weight of the normalised Q term against behaviour cloning
    hidden: tuple[int, ...] = (256, 256, 256)
    critic_hidden: tuple[int, ...] = (256, 256, 256)
    critic_layer_norm: bool = False
    ema_decay: float = 0.995  # the EMA actor gives TD targets' next actions and, at the end, the deployed weights
    ema_every: int = 5  # steps between EMA updates
    ema_start: int = 1000  # before this step the EMA copies the actor outright
    grad_clip: float = 5.0
    num_candidates: int = 10  # deployment: sample N actions, run the argmax-Q one (1 = plain one-sample policy)


def train_q_guided(
    actor: GenerativeChunkPolicy,
    data: OfflineData,
    cfg: QGuidedConfig,
    *,
    bc_loss: Callable[[Any, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor],
    policy_action: Callable[[Any, torch.Tensor, torch.Generator], torch.Tensor],
    seed: int = 0,
    log: Callable[[int, dict[str, float]], None] | None = None,
    critic: Critic | None = None,
) -> tuple[Any, Critic]:
    """Train ``actor`` (a single-step GenerativeChunkPolicy) and a twin critic.

    Returns (actor holding its EMA weights, critic).

    ``bc_loss(model, cond, actions, gen)`` is the generator's imitation loss; ``policy_action(model, cond, gen)``
    draws a differentiable action from the generator (for the Q term, and without grad for TD targets).
    """
    if actor.horizon != 1 or actor.model.n_obs_steps != 1:
        raise TetherError(f"offline actors act per step; got horizon={actor.horizon}, "
                          f"n_obs_steps={actor.model.n_obs_steps}; expected 1 and 1")
    data.check_contract(actor.contract)
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    model = actor.model
    model.obs_norm.update(data.obs)
    if critic is None:
        critic = Critic(data.obs.shape[1], data.actions.shape[1], list(cfg.critic_hidden),
                        layer_norm=cfg.critic_layer_norm)
        critic.obs_norm.update(data.obs)
    critic_target = copy.deepcopy(critic).requires_grad_(False)
    ema = copy.deepcopy(model).requires_grad_(False)
    actor_opt = torch.optim.Adam(model.denoiser.parameters(), lr=cfg.actor_lr)
    critic_opt = torch.optim.Adam(critic.qs.parameters(), lr=cfg.critic_lr)
    model.train()
    means = MeanLog(cfg, log)
    for step, (s, a, r, s2, d) in enumerate(minibatches(data, cfg, gen)):
        # ---- critic: twin-Q TD with next actions from the EMA actor
        with torch.no_grad():
            a2 = policy_action(ema, ema.condition(s2), gen)
        y = td_target(critic_target, s2, a2, r, d, cfg.gamma)
        q = critic(s, a)
        critic_loss = ((q - y.unsqueeze(0)) ** 2).mean(dim=1).sum()
        critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        nn.utils.clip_grad_norm_(critic.qs.parameters(), cfg.grad_clip)
        critic_opt.step()
        # ---- actor: behaviour cloning + normalised Q maximisation
        cond = model.condition(s)
        bc = bc_loss(model, cond, a, gen)
        critic.requires_grad_(False)
        qs = critic(s, policy_action(model, cond, gen))
        critic.requires_grad_(True)
        i = int(torch.randint(0, 2, (1,), generator=gen)) if qs.shape[0] > 1 else 0
        q_loss = -qs[i].mean() / qs[1 - i if qs.shape[0] > 1 else 0].abs().mean().detach().clamp_min(1e-6)
        actor_loss = bc + cfg.eta * q_loss
        actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        nn.utils.clip_grad_norm_(model.denoiser.parameters(), cfg.grad_clip)
        actor_opt.step()
        soft_update(critic_target, critic, cfg.tau)
        if step % cfg.ema_every == 0:
            with torch.no_grad():
                decay = 0.0 if step < cfg.ema_start else cfg.ema_decay
                for pe, p in zip(ema.denoiser.parameters(), model.denoiser.parameters()):
                    pe.lerp_(p, 1.0 - decay)
        means.add(step, {"critic_loss": critic_loss, "bc_loss": bc, "q_loss": q_loss, "q_mean": q.mean()})
    model.denoiser.load_state_dict(ema.denoiser.state_dict())
    actor.eval()
    actor.reset()
    return actor, critic.eval()


__all__ = ["Critic", "MeanLog", "OfflineConfig", "OfflineData", "QGuidedConfig", "minibatches", "td_target",
           "train_q_guided"]
