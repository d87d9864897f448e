"""A TD-MPC2-style latent world model: encoder, latent dynamics, reward and value heads, policy prior.

Why latent: from images (the sim's renderer, a robot's camera) predicting the next *observation* means
predicting pixels, most of which do not matter for control. TD-MPC2 (Hansen et al. 2024) instead learns a
latent state that is only asked to be (a) predictable from the previous latent and action — the multi-step
*latent consistency* loss against the encoder's embedding of the real next observation — and (b) sufficient
to predict reward and value. There is no decoder. The latent is SimNorm'ed (groups of softmaxes), which
keeps it bounded so multi-step predictions cannot blow up.

Simplifications against TD-MPC2, stated so they are not mistaken for it: reward and Q are regressed with
MSE (TD-MPC2 uses two-hot discrete regression for scale robustness), a fixed entropy weight, and no task
embedding. The model plugs into :class:`tether.world_models.planners.Planner` through ``plan_returns``
(latent MPPI with a terminal Q-value, as TD-MPC2 plans); it has no ``step`` in observation space because
it never reconstructs observations.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tether.errors import TetherError
from tether.world_models.metrics import consecutive_windows
from tether.policies.networks import EnsembleQ, mlp, soft_update
from tether.world_models.storage import detached, load_weights, load_world_model, save_world_model


@dataclass
class LatentConfig:
    latent: int = 64
    simnorm_group: int = 8
    hidden: tuple[int, ...] = (256, 256)
    encoder: str = "mlp"  # "mlp" for flat observations, "conv" for images (C, H, W)
    image_shape: tuple[int, ...] | None = None  # (C, H, W) when encoder == "conv"
    channels: int = 32
    horizon: int = 5  # training unroll length
    rho: float = 0.5  # per-step weight decay of losses along the unroll
    consistency_coef: float = 20.0
    reward_coef: float = 1.0  # TD-MPC2 uses 0.1 with two-hot cross-entropy; MSE on small rewards needs more
    value_coef: float = 0.1
    entropy_coef: float = 1e-4
    num_q: int = 5
    gamma: float = 0.99
    tau: float = 0.01
    lr: float = 3e-4
    batch_size: int = 256
    seed: int = 0


class SimNorm(nn.Module):
    """Softmax over consecutive groups of the latent: bounded, sparse-ish latents (TD-MPC2)."""

    def __init__(self, group: int) -> None:
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shp = x.shape
        return F.softmax(x.reshape(*shp[:-1], -1, self.group), dim=-1).reshape(shp)


def _conv_encoder(shape: tuple[int, ...], channels: int, latent: int) -> nn.Module:
    c, h, w = shape
    net = nn.Sequential(
        nn.Conv2d(c, channels, 5, stride=2, padding=2), nn.ReLU(),
        nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(),
    )
    with torch.no_grad():
        n = net(torch.zeros(1, c, h, w)).shape[-1]
    return nn.Sequential(net, nn.Linear(n, latent))


class _Nets(nn.Module):
    def __init__(self, obs_size: int, action_size: int, cfg: LatentConfig) -> None:
        super().__init__()
        if cfg.latent % cfg.simnorm_group:
            raise TetherError(f"latent={cfg.latent} is not a multiple of simnorm_group={cfg.simnorm_group}")
        if cfg.encoder == "conv":
            if cfg.image_shape is None or len(cfg.image_shape) != 3:
                raise TetherError(f"conv encoder needs image_shape (C, H, W); got {cfg.image_shape}")
            enc = _conv_encoder(tuple(cfg.image_shape), cfg.channels, cfg.latent)
        elif cfg.encoder == "mlp":
            enc = mlp(obs_size, cfg.latent, cfg.hidden, act="mish", layer_norm=True)
        else:
            raise TetherError(f"unknown latent encoder {cfg.encoder!r}; expected 'mlp' or 'conv'")
        self.encoder = nn.Sequential(enc, SimNorm(cfg.simnorm_group))
        za = cfg.latent + action_size
        self.dynamics = nn.Sequential(mlp(za, cfg.latent, cfg.hidden, act="mish", layer_norm=True),
                                      SimNorm(cfg.simnorm_group))
        self.reward = mlp(za, 1, cfg.hidden, act="mish", layer_norm=True)
        self.pi = mlp(cfg.latent, 2 * action_size, cfg.hidden, act="mish", layer_norm=True)
        self.q = EnsembleQ(cfg.latent, action_size, cfg.num_q, cfg.hidden, act="mish", layer_norm=True)
        self.register_buffer("obs_mean", torch.zeros(obs_size))
        self.register_buffer("obs_std", torch.ones(obs_size))
        # rewards are learned standardised (and Q in units of the reward scale) so the reward and value losses
        # weigh as much as the consistency loss whatever the task's reward magnitude: otherwise small rewards
        # let the consistency loss collapse the latent to a constant
        self.register_buffer("reward_mean", torch.zeros(()))
        self.register_buffer("reward_scale", torch.ones(()))


class LatentWorldModel:
    """Fit on time-ordered transitions; plan in latent space (``plan_returns``); save/load safetensors + JSON.

    ``obs_size`` is the flat observation size (for images: C·H·W, observations passed flattened or as
    (B, C, H, W) uint8/float arrays in [0, 255]).
    """

    kind = "latent"

    def __init__(self, obs_size: int, action_size: int, config: LatentConfig | None = None) -> None:
        self.cfg = cfg = config or LatentConfig()
        if cfg.encoder == "conv" and cfg.image_shape is not None and int(np.prod(cfg.image_shape)) != obs_size:
            raise TetherError(f"obs_size={obs_size} but image_shape {cfg.image_shape} has {np.prod(cfg.image_shape)} "
                              f"elements")
        self.obs_size, self.action_size = int(obs_size), int(action_size)
        torch.manual_seed(cfg.seed)
        self.nets = _Nets(self.obs_size, self.action_size, cfg)
        self.q_target = copy.deepcopy(self.nets.q).requires_grad_(False)
        self.opt = torch.optim.Adam([p for n, p in self.nets.named_parameters() if not n.startswith("pi.")], lr=cfg.lr)
        self.pi_opt = torch.optim.Adam(self.nets.pi.parameters(), lr=cfg.lr)
        self.rng = np.random.default_rng(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)

    # ------------------------------------------------------------------ pieces
    def _prep(self, obs: torch.Tensor | np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(obs) if not isinstance(obs, torch.Tensor) else obs).to(torch.float32)
        if self.cfg.encoder == "conv":
            shape = tuple(self.cfg.image_shape)  # type: ignore[arg-type]
            return x.reshape(-1, *shape) / 255.0 - 0.5
        return (x - self.nets.obs_mean) / self.nets.obs_std

    def encode(self, obs: torch.Tensor | np.ndarray) -> torch.Tensor:
        return self.nets.encoder(self._prep(obs))

    def next_latent(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.nets.dynamics(torch.cat([z, a], -1))

    def _reward_n(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.nets.reward(torch.cat([z, a], -1)).squeeze(-1)

    def reward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Predicted reward in the task's units."""
        return self._reward_n(z, a) * self.nets.reward_scale + self.nets.reward_mean

    def policy(self, z: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_std = self.nets.pi(z).chunk(2, -1)
        log_std = log_std.clamp(-5.0, 1.0)
        u = mu if deterministic else mu + log_std.exp() * torch.randn(mu.shape, generator=self.gen)
        a = torch.tanh(u)
        logp = (-0.5 * ((u - mu) / log_std.exp()) ** 2 - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
        logp = logp - torch.log(1 - a.pow(2) + 1e-6).sum(-1)
        return a, logp

    # ------------------------------------------------------------------ training
    def windows(self, data: Mapping[str, np.ndarray], horizon: int) -> np.ndarray:
        """Start indices of ``horizon`` consecutive transitions of one episode (see metrics.consecutive_windows)."""
        return consecutive_windows(data, horizon)

    def fit(self, data: Mapping[str, np.ndarray], *, updates: int = 1000) -> dict[str, float]:
        """Train all heads on windows of ``horizon`` consecutive transitions; returns final losses."""
        cfg = self.cfg
        for k in ("obs", "action", "reward", "next_obs"):
            if k not in data:
                raise TetherError(f"latent model data is missing {k!r}; expected obs, action, reward, next_obs, done")
        obs = np.asarray(data["obs"])
        nxt = np.asarray(data["next_obs"])
        act = np.asarray(data["action"], np.float32)
        if obs.reshape(len(obs), -1).shape[1] != self.obs_size or act.shape[1:] != (self.action_size,):
            raise TetherError(f"data obs {obs.shape[1:]} / action {act.shape[1:]}; this model expects "
                              f"{self.obs_size} / ({self.action_size},)")
        starts = self.windows(data, cfg.horizon)
        if len(starts) == 0:
            raise TetherError(f"no run of {cfg.horizon} consecutive transitions in the data; expected time-ordered "
                              f"episodes (next_obs[t] == obs[t+1])")
        if cfg.encoder == "mlp":
            with torch.no_grad():
                self.nets.obs_mean.copy_(torch.as_tensor(obs.mean(0), dtype=torch.float32))
                self.nets.obs_std.copy_(torch.as_tensor(obs.std(0) + 1e-3, dtype=torch.float32))
        rew = np.asarray(data["reward"], np.float32).reshape(-1)
        with torch.no_grad():
            self.nets.reward_mean.fill_(float(rew.mean()))
            self.nets.reward_scale.fill_(float(rew.std()) + 1e-3)
        done = np.asarray(data.get("done", data.get("terminal", np.zeros(len(obs)))), np.float32).reshape(-1)
        h = cfg.horizon
        out: dict[str, float] = {}
        for _ in range(updates):
            i = starts[self.rng.integers(0, len(starts), cfg.batch_size)][:, None] + np.arange(h)[None]  # (B, H)
            out = self._update(obs[i[:, 0]], nxt[i], act[i], rew[i], done[i])
        return out

    def _update(self, o0, o_next, a, r, d) -> dict[str, float]:
        cfg, nets = self.cfg, self.nets
        b, h = a.shape[:2]
        a = torch.as_tensor(a)
        r, d = torch.as_tensor(r) / nets.reward_scale, torch.as_tensor(d)  # Q in units of the reward scale
        r_n = r - nets.reward_mean / nets.reward_scale
        with torch.no_grad():
            z_next = self.encode(o_next.reshape(b * h, -1)).reshape(b, h, -1)
            pi_next, logp_next = self.policy(z_next)
            tq = self.q_target(z_next.reshape(b * h, -1), pi_next.reshape(b * h, -1))
            idx = torch.randperm(cfg.num_q, generator=self.gen)[:2]
            tq = tq[idx].min(0).values.reshape(b, h)
            td = r + cfg.gamma * (1 - d) * tq
        z = self.encode(o0)
        zs = []
        cons = rew_l = val_l = torch.zeros(())
        for t in range(h):
            w = cfg.rho ** t
            zs.append(z)
            rew_l = rew_l + w * F.mse_loss(self._reward_n(z, a[:, t]), r_n[:, t])
            val_l = val_l + w * ((nets.q(z, a[:, t]) - td[:, t].unsqueeze(0)) ** 2).mean()
            z = self.next_latent(z, a[:, t])
            cons = cons + w * F.mse_loss(z, z_next[:, t])
        loss = (cfg.consistency_coef * cons + cfg.reward_coef * rew_l + cfg.value_coef * val_l) / h
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(nets.parameters(), 20.0)
        self.opt.step()
        # policy prior: maximise Q on the (detached) imagined latents, with a small entropy bonus
        zd = torch.cat(zs).detach()
        pa, logp = self.policy(zd)
        nets.q.requires_grad_(False)
        pi_loss = (cfg.entropy_coef * logp - nets.q(zd, pa).mean(0)).mean()
        nets.q.requires_grad_(True)
        self.pi_opt.zero_grad(set_to_none=True)
        pi_loss.backward()
        self.pi_opt.step()
        soft_update(self.q_target, nets.q, cfg.tau)
        return {"latent/consistency": float(cons.detach()), "latent/reward": float(rew_l.detach()),
                "latent/value": float(val_l.detach()), "latent/pi": float(pi_loss.detach())}

    @torch.no_grad()
    def evaluate(self, data: Mapping[str, np.ndarray], horizon: int | None = None, n: int = 256) -> dict[str, float]:
        """Open-loop errors over ``horizon`` steps on windows of ``data``: latent consistency (squared distance of
        predicted from encoded next latents) next to the latents' spread (squared distance between random pairs:
        what a predictor that ignores the state scores), and reward MSE next to predicting the mean reward."""
        h = horizon or self.cfg.horizon
        starts = self.windows(data, h)
        if len(starts) == 0:
            raise TetherError(f"no run of {h} consecutive transitions to evaluate on")
        rng = np.random.default_rng(0)
        i = starts[rng.integers(0, len(starts), min(n, len(starts)))][:, None] + np.arange(h)[None]
        obs, nxt = np.asarray(data["obs"]), np.asarray(data["next_obs"])
        a = torch.as_tensor(np.asarray(data["action"], np.float32)[i])
        r = torch.as_tensor(np.asarray(data["reward"], np.float32).reshape(-1)[i])
        b = len(i)
        z = self.encode(obs[i[:, 0]])
        z_true = self.encode(nxt[i].reshape(b * h, -1)).reshape(b, h, -1)
        cons, rew = [], []
        for t in range(h):
            rew.append(((self.reward(z, a[:, t]) - r[:, t]) ** 2).mean())
            z = self.next_latent(z, a[:, t])
            cons.append(((z - z_true[:, t]) ** 2).sum(-1).mean())
        r_all = np.asarray(data["reward"], np.float32)
        zt = z_true.reshape(b * h, -1)
        spread = ((zt - zt[torch.randperm(b * h, generator=torch.Generator().manual_seed(0))]) ** 2).sum(-1).mean()
        return {"consistency": float(torch.stack(cons).mean()), "latent_spread": float(spread),
                "reward_mse": float(torch.stack(rew).mean()),
                "reward_mse_baseline": float(((r - float(r_all.mean())) ** 2).mean())}

    # ------------------------------------------------------------------ planning
    @torch.no_grad()
    def plan_returns(self, obs: torch.Tensor, seqs: torch.Tensor, *, gamma: float = 0.99, reward_fn=None,
                     done_fn=None, uncertainty_penalty: float = 0.0) -> torch.Tensor:
        """Latent rollouts of seqs (B, K, H, act) from obs (B, obs): Σ γ^t R(z_t, a_t) + γ^H Q(z_H, π(z_H))."""
        if reward_fn is not None:
            raise TetherError("a latent model plans with its own reward head; reward_fn applies to observation-space "
                              "models only")
        b, k, h, _ = seqs.shape
        z = self.encode(obs).repeat_interleave(k, 0)
        acts = seqs.reshape(b * k, h, -1).to(torch.float32)
        total = torch.zeros(b * k)
        for t in range(h):
            total += gamma ** t * self.reward(z, acts[:, t])
            z = self.next_latent(z, acts[:, t])
        a_h, _ = self.policy(z, deterministic=True)
        q = self.nets.q(z, a_h) * self.nets.reward_scale
        total += gamma ** h * q.mean(0) - uncertainty_penalty * q.std(0)
        return total.reshape(b, k)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The policy prior's deterministic action (what TD-MPC2 falls back to without planning)."""
        with torch.no_grad():
            return self.policy(self.encode(obs), deterministic=True)[0].numpy()

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        tensors = {**detached(self.nets), **detached(self.q_target, "q_target.")}
        return save_world_model(directory, self.kind, self.obs_size, self.action_size, self.cfg, tensors)

    @classmethod
    def load(cls, directory: str | Path) -> LatentWorldModel:
        meta, tensors = load_world_model(directory, cls.kind, LatentConfig)
        c = dict(meta["config"])
        c["hidden"] = tuple(c["hidden"])
        c["image_shape"] = tuple(c["image_shape"]) if c.get("image_shape") else None
        model = cls(meta["obs_size"], meta["action_size"], LatentConfig(**c))
        qt = {k[len("q_target."):]: v for k, v in tensors.items() if k.startswith("q_target.")}
        load_weights(model.nets, {k: v for k, v in tensors.items() if not k.startswith("q_target.")}, directory)
        load_weights(model.q_target, qt, directory)
        return model
