"""Probabilistic ensemble dynamics (PETS / MBPO style).

Each member is an MLP with Gaussian heads predicting the normalised change in observation and the reward,
plus a termination logit. Log-variances are soft-bounded between learned limits (Chua et al. 2018), which is
what keeps the predicted variance meaningful off the data instead of collapsing or exploding. Members are
trained on bootstrap resamples; the ``n_elites`` with the lowest held-out error are the ones used to predict.
Uncertainty is ensemble disagreement: the largest distance of an elite's mean prediction from the elites'
average, in normalised units, so one threshold works across tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tether.errors import TetherError
from tether.policies.networks import EnsembleMLP
from tether.world_models.storage import detached, load_weights, load_world_model, save_world_model


@dataclass
class EnsembleConfig:
    members: int = 7
    elites: int = 5
    hidden: tuple[int, ...] = (200, 200, 200)
    activation: str = "silu"
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 256
    holdout: float = 0.1
    max_epochs: int = 200
    max_updates: int = 5000
    patience: int = 5  # evaluations without a 1 % held-out improvement before stopping
    seed: int = 0
    extra: dict = field(default_factory=dict)


def _as_data(data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Accept replay-buffer (done) or dataset (terminal) naming; refuse anything incomplete."""
    done_key = "done" if "done" in data else "terminal" if "terminal" in data else None
    missing = [k for k in ("obs", "action", "reward", "next_obs") if k not in data]
    if missing or done_key is None:
        raise TetherError(f"transition data is missing {missing or ['done/terminal']}; expected obs, action, "
                          f"reward, next_obs and done (or terminal)")
    out = {k: np.asarray(data[k], np.float32) for k in ("obs", "action", "reward", "next_obs")}
    out["done"] = np.asarray(data[done_key], np.float32).reshape(-1)
    out["reward"] = out["reward"].reshape(-1)
    n = len(out["obs"])
    if n == 0 or any(len(v) != n for v in out.values()):
        raise TetherError(f"transition arrays are empty or differ in length: { {k: len(v) for k, v in out.items()} }")
    return out


class _Net(nn.Module):
    def __init__(self, obs_size: int, action_size: int, cfg: EnsembleConfig) -> None:
        super().__init__()
        self.out = obs_size + 1
        self.body = EnsembleMLP(cfg.members, obs_size + action_size, 2 * self.out + 1, cfg.hidden, act=cfg.activation)
        self.max_logvar = nn.Parameter(torch.full((self.out,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((self.out,), -10.0))
        # normalisation statistics live in buffers so they are saved with the weights
        for name, size in (("in_mean", obs_size + action_size), ("in_std", obs_size + action_size),
                           ("out_mean", self.out), ("out_std", self.out)):
            self.register_buffer(name, torch.zeros(size) if "mean" in name else torch.ones(size))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.body((x - self.in_mean) / self.in_std)
        mean, raw, logit = h[..., : self.out], h[..., self.out : 2 * self.out], h[..., -1]
        logvar = self.max_logvar - F.softplus(self.max_logvar - raw)
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return mean, logvar, logit


class EnsembleWorldModel:
    """Implements the WorldModel protocol; save/load as safetensors + JSON."""

    kind = "ensemble"

    def __init__(self, obs_size: int, action_size: int, config: EnsembleConfig | None = None) -> None:
        self.cfg = config or EnsembleConfig()
        if not 1 <= self.cfg.elites <= self.cfg.members:
            raise TetherError(f"elites={self.cfg.elites}; expected 1..members={self.cfg.members}")
        self.obs_size, self.action_size = int(obs_size), int(action_size)
        torch.manual_seed(self.cfg.seed)
        self.net = _Net(self.obs_size, self.action_size, self.cfg)
        self.elite_idx = np.arange(self.cfg.elites)
        self.rng = np.random.default_rng(self.cfg.seed)
        self.fitted = False

    # ------------------------------------------------------------------ training
    def _targets(self, d: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([d["next_obs"] - d["obs"], d["reward"][:, None]], axis=1)

    def fit(self, data: Mapping[str, np.ndarray], *, max_updates: int | None = None,
            verbose: bool = False) -> dict[str, float]:
        """Fit on all transitions (refitting from the current weights); returns held-out metrics."""
        d = _as_data(data)
        if d["obs"].shape[1] != self.obs_size or d["action"].shape[1] != self.action_size:
            raise TetherError(f"data has obs {d['obs'].shape[1]} / action {d['action'].shape[1]} elements; "
                              f"this model expects {self.obs_size} / {self.action_size}")
        cfg, net = self.cfg, self.net
        x = np.concatenate([d["obs"], d["action"]], axis=1)
        y = self._targets(d)
        n = len(x)
        perm = self.rng.permutation(n)
        n_hold = min(max(int(n * cfg.holdout), 1), 5000) if n > 20 else 0
        hold, train = perm[:n_hold], perm[n_hold:]
        with torch.no_grad():
            net.in_mean.copy_(torch.as_tensor(x[train].mean(0)))
            net.in_std.copy_(torch.as_tensor(x[train].std(0) + 1e-6))
            net.out_mean.copy_(torch.as_tensor(y[train].mean(0)))
            net.out_std.copy_(torch.as_tensor(y[train].std(0) + 1e-6))
        xt, yt = torch.as_tensor(x), torch.as_tensor(y)
        yt_n = (yt - net.out_mean) / net.out_std
        dt = torch.as_tensor(d["done"])
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        # bootstrap: each member sees its own resample of the training set
        boot = torch.as_tensor(self.rng.choice(train, size=(cfg.members, len(train)), replace=True))
        budget = max_updates if max_updates is not None else cfg.max_updates
        steps_per_epoch = max(len(train) // cfg.batch_size, 1)
        best = np.full(cfg.members, np.inf)
        best_state = {k: v.clone() for k, v in net.state_dict().items()}
        stale, updates = 0, 0
        for _epoch in range(cfg.max_epochs):
            order = boot[:, torch.randperm(len(train))]
            for s in range(steps_per_epoch):
                idx = order[:, s * cfg.batch_size : (s + 1) * cfg.batch_size]
                mean, logvar, logit = net(xt[idx])
                target = yt_n[idx]
                nll = (((mean - target) ** 2) * torch.exp(-logvar) + logvar).mean()
                bce = F.binary_cross_entropy_with_logits(logit, dt[idx])
                loss = nll + bce + 0.01 * (net.max_logvar.sum() - net.min_logvar.sum())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                updates += 1
                if updates >= budget:
                    break
            if n_hold:
                mse = self._member_mse(xt[hold], yt_n[hold])
                improved = mse < best * 0.99
                if improved.any():
                    best = np.where(improved, mse, best)
                    stale = 0
                    best_state = {k: v.clone() for k, v in net.state_dict().items()}
                else:
                    stale += 1
            if updates >= budget or stale >= cfg.patience:
                break
        if n_hold:
            net.load_state_dict(best_state)
            mse = self._member_mse(xt[hold], yt_n[hold])
        else:
            mse = np.zeros(cfg.members)
        self.elite_idx = np.argsort(mse)[: cfg.elites]
        self.fitted = True
        return {"wm/holdout_mse": float(mse[self.elite_idx].mean()), "wm/updates": float(updates)}

    @torch.no_grad()
    def _member_mse(self, x: torch.Tensor, y_n: torch.Tensor) -> np.ndarray:
        mean, _, _ = self.net(x)
        return ((mean - y_n) ** 2).mean(dim=(1, 2)).numpy()

    # ------------------------------------------------------------------ prediction
    def _elite_heads(self, x: torch.Tensor, layers: list[tuple[str, object]] | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised mean, bounded log-variance and done logit of the elites only: x (N, in) shared by all
        elites, or (E, N, in) one batch per elite. Skipping the non-elite members is most of the speed-up."""
        net = self.net
        h = (x - net.in_mean) / net.in_std
        if h.dim() == 2:
            h = h.unsqueeze(0).expand(len(self.elite_idx), -1, -1)
        for kind, m in layers or self._elite_layers():
            h = torch.baddbmm(m[0], h, m[1]) if kind == "linear" else m(h)  # type: ignore[index, operator]
        mean, raw, logit = h[..., : net.out], h[..., net.out : 2 * net.out], h[..., -1]
        logvar = net.max_logvar - F.softplus(net.max_logvar - raw)
        logvar = net.min_logvar + F.softplus(logvar - net.min_logvar)
        return mean, logvar, logit

    @torch.no_grad()
    def predict(self, obs: np.ndarray, action: np.ndarray) -> dict[str, np.ndarray]:
        """Per-elite Gaussian predictions in physical units: mean/std of next_obs and reward, done prob."""
        net = self.net
        x = torch.as_tensor(np.concatenate([np.asarray(obs, np.float32), np.asarray(action, np.float32)], -1))
        mean, logvar, logit = self._elite_heads(x)
        std_n = torch.exp(0.5 * logvar)
        mean_p = mean * net.out_std + net.out_mean
        std_p = std_n * net.out_std
        disagreement = (mean - mean.mean(0, keepdim=True)).norm(dim=-1).max(0).values
        return {"mean": mean_p.numpy(), "std": std_p.numpy(), "done_prob": torch.sigmoid(logit).numpy(),
                "disagreement": disagreement.numpy(), "aleatoric": std_n.norm(dim=-1).max(0).values.numpy()}

    def _elite_layers(self) -> list[tuple[str, object]]:
        """The elites' slices of every ensemble layer, so planning runs only the members it trusts."""
        from tether.policies.networks import EnsembleLinear

        e = torch.as_tensor(self.elite_idx, dtype=torch.long)
        layers: list[tuple[str, object]] = []
        for m in self.net.body.net:
            if isinstance(m, EnsembleLinear):
                layers.append(("linear", (m.bias.detach()[e], m.weight.detach()[e])))
            else:
                layers.append(("module", m))
        return layers

    @torch.no_grad()
    def elite_step(self, obs: torch.Tensor, action: torch.Tensor,
                   layers: list[tuple[str, object]] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean prediction of each elite for its own particles: obs (E, N, obs), action (E, N, act) tensors →
        next_obs (E, N, obs), reward (E, N), done logit (E, N). One batched matmul per layer for all elites."""
        net = self.net
        h = (torch.cat([obs, action], -1) - net.in_mean) / net.in_std
        for kind, m in layers or self._elite_layers():
            h = torch.baddbmm(m[0], h, m[1]) if kind == "linear" else m(h)  # type: ignore[index, operator]
        mean = h[..., : net.out] * net.out_std + net.out_mean  # the variance head is not needed to plan
        return obs + mean[..., : self.obs_size], mean[..., self.obs_size], h[..., -1]

    @torch.no_grad()
    def plan_returns(self, obs: torch.Tensor, seqs: torch.Tensor, *, gamma: float = 0.99,
                     reward_fn=None, done_fn=None, uncertainty_penalty: float = 0.0) -> torch.Tensor:
        """Score action sequences for planning: obs (B, obs), seqs (B, K, H, act) → returns (B, K).

        Every elite propagates its own copy of each candidate (PETS-style particles), the return is the
        elites' average, and ``uncertainty_penalty`` × the particles' spread (in units of the typical
        one-step change) is subtracted each step, so a plan that only works in one member's imagination
        loses. ``reward_fn``/``done_fn`` (torch, (obs, act, next_obs)) replace the learned heads when the
        task's reward is known.
        """
        b, k, h, _ = seqs.shape
        layers = self._elite_layers()
        e = len(self.elite_idx)
        o = obs.to(torch.float32).repeat_interleave(k, 0).unsqueeze(0).expand(e, -1, -1)
        total = torch.zeros(e, b * k)
        alive = torch.ones(e, b * k)
        scale = self.net.out_std[: self.obs_size]
        acts = seqs.reshape(b * k, h, -1).to(torch.float32)
        for t in range(h):
            a = acts[:, t].unsqueeze(0).expand(e, -1, -1)
            nxt, r, logit = self.elite_step(o, a, layers)
            if reward_fn is not None:
                r = reward_fn(o, a, nxt)
            done = done_fn(o, a, nxt) if done_fn is not None else logit > 0
            r = r * alive
            if uncertainty_penalty and e > 1:
                spread = ((nxt - nxt.mean(0, keepdim=True)) / scale).norm(dim=-1).max(0).values
                r = r - uncertainty_penalty * spread
            total += (gamma ** t) * r
            alive = alive * (~done).to(alive.dtype)
            o = nxt
        return total.mean(0).reshape(b, k)

    def step(self, obs, action, *, deterministic: bool = False):
        obs = np.asarray(obs, np.float32)
        if obs.ndim != 2 or obs.shape[1] != self.obs_size:
            raise TetherError(f"obs has shape {obs.shape}; expected (B, {self.obs_size})")
        action = np.asarray(action, np.float32)
        if action.shape != (obs.shape[0], self.action_size):
            raise TetherError(f"action has shape {action.shape}; expected ({obs.shape[0]}, {self.action_size})")
        net, b = self.net, obs.shape[0]
        with torch.no_grad():
            mean, logvar, logit = self._elite_heads(torch.as_tensor(np.concatenate([obs, action], -1)))
            disagreement = (mean - mean.mean(0, keepdim=True)).norm(dim=-1).max(0).values
            if deterministic:
                delta_n, done_p = mean.mean(0), torch.sigmoid(logit).mean(0)
            else:  # TS-1: each row follows one randomly chosen elite, sampled from its Gaussian
                pick = torch.as_tensor(self.rng.integers(0, len(self.elite_idx), size=b))
                rows = torch.arange(b)
                eps = torch.as_tensor(self.rng.standard_normal((b, self.obs_size + 1)), dtype=torch.float32)
                delta_n = mean[pick, rows] + torch.exp(0.5 * logvar[pick, rows]) * eps
                done_p = torch.sigmoid(logit[pick, rows])
            delta = (delta_n * net.out_std + net.out_mean).numpy()
        next_obs = obs + delta[:, : self.obs_size]
        return (next_obs.astype(np.float32), delta[:, -1].astype(np.float32), done_p.numpy() > 0.5,
                disagreement.numpy())

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
        tensors = detached(self.net)
        tensors["elite_idx"] = torch.as_tensor(self.elite_idx, dtype=torch.int64)
        return save_world_model(directory, self.kind, self.obs_size, self.action_size, self.cfg, tensors,
                                extra=extra or {})

    @classmethod
    def load(cls, directory: str | Path) -> EnsembleWorldModel:
        meta, tensors = load_world_model(directory, cls.kind, EnsembleConfig)
        cfg = EnsembleConfig(**{**meta["config"], "hidden": tuple(meta["config"]["hidden"])})
        model = cls(meta["obs_size"], meta["action_size"], cfg)
        elite = tensors.pop("elite_idx", None)
        load_weights(model.net, tensors, directory)
        if elite is not None:
            model.elite_idx = elite.numpy()
        model.fitted = True
        return model
