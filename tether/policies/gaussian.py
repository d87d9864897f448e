"""Gaussian MLP policy: the actor that PPO and SAC train and that deploys as a plain deterministic MLP.

Two flavours share one class because they differ only in how the Gaussian meets the [-1, 1] action box:
- ``squash="tanh"`` + state-dependent log-std (SAC): a = tanh(u), log-prob corrected by the tanh Jacobian;
- ``squash="clip"`` + state-independent log-std (PPO): the raw Gaussian sample is what PPO's ratio uses, the env
  receives it clipped to [-1, 1].
Deployment uses the deterministic path (tanh(mean) or clip(mean)) with the observation normaliser baked in, which
is also what ``onnx_module`` exports.

``history`` > 1 makes the actor read the last ``history`` observations (oldest first, each normalised by the
same per-frame statistics): with actions inside each observation (``last_action``), a short window shows how
the robot responded to what it was told, which is what lets one policy act right on a heavier, laggier or
weaker robot than the nominal one (implicit system identification, as RMA's adaptation module does
explicitly). Trainers feed stacked windows to the torch API; ``act`` keeps its own window per batch row
(:class:`~tether.policies.history.ObservationHistory`, first observation repeated at an episode start) and
``reset`` starts new episodes. The exported graph takes the stacked window.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tether.contract import IOContract
from tether.errors import TetherError
from tether.policies.base import batch_observations, demonstration_arrays
from tether.policies.checkpoint import Checkpoint, register_policy, save_checkpoint
from tether.policies.history import ObservationHistory, make_windows
from tether.policies.networks import mlp, mlp_config
from tether.policies.normalization import RunningNormalizer

_LOG_2PI = math.log(2.0 * math.pi)


def default_gaussian_config(obs_size: int, action_size: int, **overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "obs_size": int(obs_size),
        "action_size": int(action_size),
        "net": mlp_config((256, 256), "relu", False),
        "squash": "tanh",
        "log_std": "state_dependent",
        "log_std_init": 0.0,
        "log_std_min": -5.0,
        "log_std_max": 2.0,
        "norm_clip": 10.0,
        "head_scale": 0.01,
        "history": 1,
    }
    for k, v in overrides.items():
        if k not in cfg:
            raise TetherError(f"unknown Gaussian policy option {k!r}; expected one of {', '.join(cfg)}")
        cfg[k] = v
    return cfg


class _Deterministic(nn.Module):
    """obs → deterministic action; the export/latency path (normaliser included)."""

    def __init__(self, policy: GaussianPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.policy.deterministic(obs)


@register_policy("gaussian_mlp")
class GaussianPolicy(nn.Module):
    """Numpy-in/numpy-out Policy and torch actor at once (``act`` for robots, ``sample``/``log_prob`` for RL)."""

    kind = "gaussian_mlp"

    def __init__(self, contract: IOContract, config: dict[str, Any], *, dr_terms: list[Any] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__()
        cfg = default_gaussian_config(contract.obs_size, contract.action_size)
        cfg.update(config)
        if cfg["obs_size"] != contract.obs_size or cfg["action_size"] != contract.action_size:
            raise TetherError(
                f"Gaussian policy sizes obs={cfg['obs_size']} act={cfg['action_size']} do not match contract "
                f"obs={contract.obs_size} act={contract.action_size}"
            )
        if cfg["squash"] not in ("tanh", "clip"):
            raise TetherError(f"squash {cfg['squash']!r}; expected 'tanh' or 'clip'")
        if cfg["log_std"] not in ("state_dependent", "state_independent"):
            raise TetherError(f"log_std {cfg['log_std']!r}; expected 'state_dependent' or 'state_independent'")
        if not isinstance(cfg["history"], int) or not 1 <= cfg["history"] <= 64:
            raise TetherError(f"history {cfg['history']!r}; expected a whole number of observations in 1..64")
        from tether.validation import expect_number

        lo = expect_number(cfg["log_std_min"], "Gaussian policy config log_std_min", -20.0, 20.0)
        expect_number(cfg["log_std_max"], "Gaussian policy config log_std_max", lo, 20.0)
        expect_number(cfg["log_std_init"], "Gaussian policy config log_std_init", -20.0, 20.0)
        self.contract = contract
        self.config = cfg
        self.dr_terms = dr_terms
        self.extra: dict[str, Any] = dict(extra or {})
        a = cfg["action_size"]
        self.state_dependent = cfg["log_std"] == "state_dependent"
        self.history = int(cfg["history"])
        self.input_size = self.history * cfg["obs_size"]
        self.obs_norm = RunningNormalizer(cfg["obs_size"], clip=float(cfg["norm_clip"]))
        self._window = ObservationHistory(self.history)
        self.net = mlp(self.input_size, 2 * a if self.state_dependent else a, cfg["net"]["hidden"],
                       act=cfg["net"]["act"], layer_norm=cfg["net"]["layer_norm"], output_scale=cfg["head_scale"])
        if not self.state_dependent:
            self.log_std = nn.Parameter(torch.full((a,), float(cfg["log_std_init"])))
        self.eval()

    # ------------------------------------------------------------------ torch API (training)
    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame normalisation of an observation (B, obs) or a stacked window (B, history * obs)."""
        if self.history == 1:
            return self.obs_norm(x)
        lead = x.shape[:-1]
        return self.obs_norm(x.reshape(*lead, self.history, -1)).reshape(*lead, self.input_size)

    def dist_params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pre-squash mean, log_std), both (B, A); ``obs`` (B, history * obs) is in physical units (normalised
        here)."""
        out = self.net(self.normalise(obs))
        lo, hi = float(self.config["log_std_min"]), float(self.config["log_std_max"])
        if self.state_dependent:
            mean, log_std = out.chunk(2, dim=-1)
            log_std = lo + 0.5 * (hi - lo) * (torch.tanh(log_std) + 1.0)
        else:
            mean = out
            log_std = self.log_std.clamp(lo, hi).expand_as(mean)
        return mean, log_std

    def sample(self, obs: torch.Tensor, *, deterministic: bool = False,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(action, log_prob). tanh: action in (-1,1). clip: the *raw* Gaussian sample (clip before the env)."""
        mean, log_std = self.dist_params(obs)
        std = log_std.exp()
        if deterministic:
            u = mean
        else:
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
            u = mean + std * noise
        logp = (-0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * _LOG_2PI).sum(-1)
        if self.config["squash"] == "tanh":
            # log(1 - tanh(u)^2) written stably: 2 (log 2 - u - softplus(-2u))
            logp = logp - (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
            return torch.tanh(u), logp
        return u, logp

    def log_prob_entropy(self, obs: torch.Tensor, raw_action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-prob of a raw (unsquashed, unclipped) action and the Gaussian entropy (PPO)."""
        if self.config["squash"] == "tanh":
            raise TetherError("log_prob_entropy is for squash='clip' (PPO) policies")
        mean, log_std = self.dist_params(obs)
        std = log_std.exp()
        logp = (-0.5 * ((raw_action - mean) / std) ** 2 - log_std - 0.5 * _LOG_2PI).sum(-1)
        entropy = (0.5 + 0.5 * _LOG_2PI + log_std).sum(-1)
        return logp, entropy

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        mean, _ = self.dist_params(obs)
        if self.config["squash"] == "tanh":
            return torch.tanh(mean)
        return torch.clamp(mean, -1.0, 1.0)

    # ------------------------------------------------------------------ Policy protocol (numpy, deployment)
    def _obs_tensor(self, obs: np.ndarray) -> tuple[torch.Tensor, bool]:
        arr, single = batch_observations(self.contract, obs, finite=False)
        return torch.from_numpy(arr), single

    def window(self, obs: np.ndarray) -> np.ndarray:
        """The stacked input for the latest observations (B, obs): the policy's own history, advanced one step."""
        if self.history == 1:
            return np.asarray(obs, dtype=np.float32)
        w = self._window.push(obs)
        return w.reshape(w.shape[0], self.input_size)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic action in [-1, 1]: (B, obs) → (B, A) (a 1-D obs gives a 1-D action)."""
        x, single = self._obs_tensor(obs)
        if self.history > 1:
            x = torch.from_numpy(self.window(x.numpy()))
        with torch.inference_mode():
            a = self.deterministic(x).numpy()
        return a[0] if single else a

    def sample_actions(self, obs: np.ndarray, num_samples: int, seed: int | None = None) -> np.ndarray:
        """(B, obs) → (B, K, A) stochastic actions in [-1, 1] (V-GPS candidates)."""
        if self.history > 1:
            raise TetherError("sampling candidate actions needs a memoryless policy; this one reads a history")
        x, single = self._obs_tensor(obs)
        g = torch.Generator().manual_seed(int(seed if seed is not None else np.random.SeedSequence().entropy % 2**63))
        with torch.inference_mode():
            xb = x.repeat_interleave(num_samples, dim=0)
            a, _ = self.sample(xb, generator=g)
            if self.config["squash"] == "clip":
                a = a.clamp(-1.0, 1.0)
        out = a.reshape(x.shape[0], num_samples, -1).numpy()
        return out[0] if single else out

    def reset(self) -> None:
        """Start new episodes: forget the observation history (nothing else is kept between steps)."""
        self._window.reset()

    def fit(self, obs: np.ndarray, actions: np.ndarray, episode_ids: np.ndarray | None = None, *,
            steps: int = 3000, batch_size: int = 256, lr: float = 3e-4, seed: int = 0,
            log: Callable[[int, dict[str, float]], None] | None = None, log_every: int = 100) -> dict[str, float]:
        """Regress the deterministic action onto labelled steps (stored episode by episode; actions normalised
        to [-1, 1]): how DAgger (``tether.policies.dagger``) teaches an RL actor the task's expert, and how
        ``bc-mlp`` clones demonstrations (``tether.policies.dataset_algos.bc_mlp_policy``).

        Only the actor's network learns. The exploration std and a trained observation normaliser stay as they
        were, so the actor still reads its inputs as it did and PPO can go on from it (an untrained normaliser
        takes the data's statistics first). Windows of ``history`` observations are padded at episode starts as
        ``act`` fills its own. Why: on a quadrotor heavier, weaker and later than any it trained on, PPO under
        the identified DR reached 25-50 % in 2-4M steps, while two DAgger rounds on the same actor reached 95 %
        in 14 s (benchmarks/RESULTS.md, "DAgger after PPO")."""
        obs, actions = demonstration_arrays(self.contract, obs, actions)
        if not len(obs):
            raise TetherError("no labelled steps to fit; expected at least one")
        if float(self.obs_norm.count) == 0.0:
            self.obs_norm.update(obs)
        windows, labels = make_windows(obs, actions, episode_ids, self.history, 1)
        x_all = torch.from_numpy(windows.reshape(len(windows), self.input_size))
        y_all = torch.from_numpy(labels[:, 0])
        gen = torch.Generator().manual_seed(int(seed))
        opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        tanh = self.config["squash"] == "tanh"
        self.train()
        loss = torch.zeros(())
        for step in range(steps):
            idx = torch.randint(0, len(x_all), (batch_size,), generator=gen)
            mean, _ = self.dist_params(x_all[idx])
            loss = F.mse_loss(torch.tanh(mean) if tanh else mean, y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if log is not None and ((step + 1) % log_every == 0 or step + 1 == steps):
                log(step + 1, {"loss": float(loss.detach())})
        self.eval()
        self.reset()
        return {"loss": float(loss.detach())}

    def onnx_module(self) -> nn.Module:
        return _Deterministic(self).eval()

    # ------------------------------------------------------------------ checkpoints
    def save(self, directory: str | Path) -> Path:
        return save_checkpoint(directory, kind=self.kind, tensors=self.state_dict(), config=self.config,
                               contract=self.contract, dr_terms=self.dr_terms, extra=self.extra)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> GaussianPolicy:
        policy = cls(ckpt.contract, ckpt.config, dr_terms=ckpt.dr_terms, extra=ckpt.extra)
        ckpt.load_module(policy)
        return policy.eval()

    @classmethod
    def load(cls, directory: str | Path, expected_contract: IOContract | None = None) -> GaussianPolicy:
        from tether.policies.checkpoint import load_policy

        return load_policy(directory, expected_contract, expected_kind=cls.kind)
