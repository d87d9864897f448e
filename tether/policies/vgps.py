"""V-GPS: value-guided policy steering at deployment (Nakamoto et al.).

Why a wrapper: a frozen generalist policy (diffusion, flow, Gaussian, or anything with
``sample_actions(obs, K, seed)``) often puts some probability on good actions and some on bad ones. Drawing K
candidates and running the one a learned Q(s, a) ranks highest improves it with no retraining; the same
wrapper is Diffusion-QL's/OFQL's action selection. The wrapper is itself a Policy: checkpointable (base policy
in ``DIR/base``, critic tensors beside it) and exportable (candidates from fixed noise, critic and argmax in
one ONNX graph).

Candidates are ranked by the pessimistic min over the critic ensemble. For chunked bases each step re-ranks
the first action of K fresh chunks (the policy steers per step, as the paper does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tether.errors import TetherError
from tether.policies.checkpoint import Checkpoint, load_policy, register_policy, save_checkpoint
from tether.policies.gaussian import GaussianPolicy
from tether.policies.offline.common import Critic

BASE_DIR = "base"


class _OnnxVGPS(nn.Module):
    """obs -> the argmax-Q action among K candidates drawn from fixed noise."""

    def __init__(self, sampler: nn.Module, critic: Critic, obs_size: int, window: int) -> None:
        super().__init__()
        self.sampler, self.critic = sampler, critic
        self.obs_size, self.window = obs_size, window

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        b = obs.shape[0]
        inp = obs.repeat(1, self.window) if self.window > 1 else obs  # stateless: history = current obs repeated
        cands = self.sampler(inp)  # (B, K, A)
        k = cands.shape[1]
        q = self.critic.q_min(obs.repeat_interleave(k, dim=0), cands.reshape(b * k, -1)).reshape(b, k)
        best = torch.argmax(q, dim=1)
        onehot = nn.functional.one_hot(best, k).to(cands.dtype)
        return (onehot.unsqueeze(-1) * cands).sum(dim=1)


class _GaussianCandidates(nn.Module):
    """K tanh/clip-Gaussian samples from a GaussianPolicy with the noise as a fixed buffer."""

    def __init__(self, policy: GaussianPolicy, noise: torch.Tensor) -> None:
        super().__init__()
        self.policy = policy
        self.register_buffer("noise", noise)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        mean, log_std = self.policy.dist_params(obs)
        u = mean.unsqueeze(1) + log_std.exp().unsqueeze(1) * self.noise.unsqueeze(0)
        return torch.tanh(u) if self.policy.config["squash"] == "tanh" else torch.clamp(u, -1.0, 1.0)


class _GenerativeFirstAction(nn.Module):
    def __init__(self, sampler: nn.Module) -> None:
        super().__init__()
        self.sampler = sampler

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return self.sampler(window)[:, :, 0]


@register_policy("vgps")
class VGPSPolicy(nn.Module):
    """Run the argmax-Q of ``num_candidates`` samples from ``base``; implements Policy."""

    kind = "vgps"

    def __init__(self, base: Any, critic: Critic, num_candidates: int = 16, *, seed: int = 0,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__()
        if not hasattr(base, "sample_actions"):
            raise TetherError(f"{type(base).__name__} cannot be sampled; V-GPS needs sample_actions(obs, K, seed)")
        if num_candidates < 1:
            raise TetherError(f"num_candidates={num_candidates}; expected >= 1")
        c = base.contract
        if critic.config["obs_size"] != c.obs_size or critic.config["action_size"] != c.action_size:
            raise TetherError(
                f"critic sizes obs={critic.config['obs_size']} act={critic.config['action_size']} do not match the "
                f"policy's contract obs={c.obs_size} act={c.action_size}"
            )
        self.base = base
        self.critic = critic.eval()
        self.num_candidates = int(num_candidates)
        self.contract = c
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)
        self.extra: dict[str, Any] = dict(extra or getattr(base, "extra", {}) or {})
        self.dr_terms = getattr(base, "dr_terms", None)

    @property
    def obs_norm(self) -> Any:
        return getattr(self.base, "obs_norm", None)

    # ------------------------------------------------------------------ Policy protocol
    def candidates(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, O) -> candidates (B, K, A) and their Q-values (B, K); advances the base's history."""
        arr = np.asarray(obs, dtype=np.float32)
        single = arr.ndim == 1
        if single:
            arr = arr[None]
        cands = np.asarray(self.base.sample_actions(arr, self.num_candidates,
                                                    seed=int(self._rng.integers(0, 2**62))))
        if cands.ndim == 2:  # a base that squeezed a single-row batch
            cands = cands[None]
        return cands, self.critic.q_values(arr, cands)

    def act(self, obs: np.ndarray) -> np.ndarray:
        single = np.ndim(obs) == 1
        cands, q = self.candidates(obs)
        best = cands[np.arange(len(cands)), np.argmax(q, axis=1)]
        return best[0] if single else best

    def sample_actions(self, obs: np.ndarray, num_samples: int, seed: int | None = None) -> np.ndarray:
        """Delegates to the base, so a V-GPS policy can itself be wrapped or used as a candidate source."""
        return self.base.sample_actions(obs, num_samples, seed=seed)

    def reset(self) -> None:
        self.base.reset()

    def reseed(self, seed: int) -> None:
        """Restart the candidate-noise stream (reproducible rollouts)."""
        self._rng = np.random.default_rng(int(seed))

    @classmethod
    def benchmark_instances(cls, contract: Any) -> dict[str, VGPSPolicy]:
        """For benchmarks/policy_latency.py: K = 16 one-step flow candidates ranked by a 2x256 twin critic."""
        from tether.policies.flow import FlowPolicy
        from tether.policies.generative import BENCH_CONFIG

        torch.manual_seed(0)
        base = FlowPolicy(contract, {**BENCH_CONFIG, "variant": "mean"})
        critic = Critic(contract.obs_size, contract.action_size, [256, 256])
        return {"vgps K=16 over one-step flow": cls(base, critic, 16)}

    # ------------------------------------------------------------------ export / checkpoints
    def onnx_module(self, seed: int = 0) -> nn.Module:
        """obs (B, O) -> action (B, A): K candidates from fixed noise, critic, argmax, all in one graph."""
        import copy

        k = self.num_candidates
        if hasattr(self.base, "onnx_sampler"):
            sampler = _GenerativeFirstAction(self.base.onnx_sampler(k, seed))
            window = int(getattr(self.base.model, "n_obs_steps", 1))
        elif hasattr(self.base, "dist_params"):
            g = torch.Generator().manual_seed(int(seed))
            sampler = _GaussianCandidates(copy.deepcopy(self.base),
                                          torch.randn(k, self.contract.action_size, generator=g))
            window = 1
        else:
            raise TetherError(f"V-GPS over a {type(self.base).__name__} cannot be exported; expected a diffusion, "
                              "flow or Gaussian base policy")
        return _OnnxVGPS(sampler, copy.deepcopy(self.critic), self.contract.obs_size, window).eval()

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        self.base.save(directory / BASE_DIR)
        config = {"num_candidates": self.num_candidates, "seed": self.seed, "critic": self.critic.config,
                  "base_kind": getattr(self.base, "kind", type(self.base).__name__)}
        tensors = {f"critic.{k}": v for k, v in self.critic.state_dict().items()}
        return save_checkpoint(directory, kind=self.kind, tensors=tensors, config=config, contract=self.contract,
                               dr_terms=self.dr_terms, extra=self.extra)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> VGPSPolicy:
        base = load_policy(ckpt.directory / BASE_DIR, ckpt.contract)
        critic = Critic.from_checkpoint(ckpt, "critic.", ckpt.config["critic"])
        return cls(base, critic, int(ckpt.config["num_candidates"]), seed=int(ckpt.config.get("seed", 0)),
                   extra=ckpt.extra)

    @classmethod
    def load(cls, directory: str | Path, expected_contract: Any = None) -> VGPSPolicy:
        return load_policy(directory, expected_contract, expected_kind=cls.kind)


__all__ = ["VGPSPolicy"]
