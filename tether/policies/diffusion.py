"""Diffusion policy: DDPM training (ε-prediction), DDIM sampling in K steps, over action chunks.

Why DDPM-train / DDIM-sample: the ε-network is trained once on the full T-step forward process; at deployment
DDIM (η = 0) walks a K-step subsequence of it deterministically, so K trades latency for quality without
retraining and the sampler is a pure function of (observation, initial noise) that unrolls into ONNX. The
stochastic DDPM ancestral chain is kept for Diffusion-QL, whose actor gradient flows through it
(``sample_ddpm``). Predicted clean samples are clipped to [-1, 1] at every step because actions are
normalised to that box; clipping keeps the first, noisiest steps from throwing the chain off the support.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from tether.errors import TetherError
from tether.policies.checkpoint import register_policy
from tether.policies.generative import BENCH_CONFIG, ChunkGenerator, GenerativeChunkPolicy

BETA_SCHEDULES = ("cosine", "linear", "vp")


def make_betas(schedule: str, num_steps: int) -> np.ndarray:
    """β_1..β_T for T = ``num_steps`` (float64).

    ``cosine``: Nichol & Dhariwal; ``linear``: Ho et al.'s 1e-4..0.02 rescaled by 1000/T so short chains still
    end near pure noise; ``vp``: the variance-preserving SDE discretisation Diffusion-QL uses for T = 5..20.
    """
    t_n = int(num_steps)
    if t_n < 1:
        raise TetherError(f"num_train_steps={num_steps}; expected >= 1")
    if schedule == "cosine":
        s = 0.008
        x = np.linspace(0, t_n, t_n + 1, dtype=np.float64)
        ac = np.cos(((x / t_n) + s) / (1 + s) * math.pi / 2) ** 2
        ac = ac / ac[0]
        betas = 1 - ac[1:] / ac[:-1]
    elif schedule == "linear":
        scale = 1000.0 / t_n
        betas = np.linspace(1e-4 * scale, 0.02 * scale, t_n, dtype=np.float64)
    elif schedule == "vp":
        b_min, b_max = 0.1, 10.0
        t = np.arange(1, t_n + 1, dtype=np.float64)
        alpha = np.exp(-b_min / t_n - 0.5 * (b_max - b_min) * (2 * t - 1) / t_n**2)
        betas = 1 - alpha
    else:
        raise TetherError(f"unknown beta schedule {schedule!r}; expected one of {', '.join(BETA_SCHEDULES)}")
    return np.clip(betas, 1e-8, 0.999)


def ddim_timesteps(num_train_steps: int, num_inference_steps: int) -> list[int]:
    """Descending, evenly spaced subsequence of 0..T-1 that always starts at T-1 and ends at 0."""
    k = int(num_inference_steps)
    if not 1 <= k <= num_train_steps:
        raise TetherError(f"inference_steps={k}; expected 1..num_train_steps ({num_train_steps})")
    if k == 1:
        return [num_train_steps - 1]
    return [int(v) for v in np.linspace(num_train_steps - 1, 0, k).round()]


class DiffusionGenerator(ChunkGenerator):
    """ε-network plus the DDPM forward process and DDIM/DDPM reverse samplers."""

    n_times = 1

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.num_train_steps = int(cfg["num_train_steps"])
        self.timesteps = ddim_timesteps(self.num_train_steps, int(cfg["inference_steps"]))
        self.clip_sample = bool(cfg["clip_sample"])
        betas = make_betas(cfg["beta_schedule"], self.num_train_steps)
        ac = np.cumprod(1.0 - betas)
        # schedule constants are buffers so they ride along into the checkpoint and the ONNX graph
        self.register_buffer("betas", torch.tensor(betas, dtype=torch.float32))
        self.register_buffer("alphas_cumprod", torch.tensor(ac, dtype=torch.float32))
        self._ac = ac  # float64 copy for Python-side constants in the samplers

    def _time(self, t: int | torch.Tensor, batch: int) -> torch.Tensor:
        if isinstance(t, int):
            return torch.full((batch, 1), t / self.num_train_steps)
        return (t.float() / self.num_train_steps).reshape(-1, 1)

    def loss(self, cond: torch.Tensor, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b = x0.shape[0]
        t = torch.randint(0, self.num_train_steps, (b,), generator=generator)
        eps = torch.randn(x0.shape, generator=generator)
        ac = self.alphas_cumprod[t].unsqueeze(-1)
        xt = ac.sqrt() * x0 + (1 - ac).sqrt() * eps
        return ((self.denoiser(xt, self._time(t, b), cond) - eps) ** 2).mean()

    def generate(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Deterministic DDIM (η = 0) over ``self.timesteps``; a fixed Python loop, unrolled when traced."""
        x = noise
        b = x.shape[0]
        for i, t in enumerate(self.timesteps):
            a_t = float(self._ac[t])
            a_prev = float(self._ac[self.timesteps[i + 1]]) if i + 1 < len(self.timesteps) else 1.0
            eps = self.denoiser(x, self._time(t, b), cond)
            x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
            if self.clip_sample:
                x0 = torch.clamp(x0, -1.0, 1.0)
            x = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps
        return torch.clamp(x, -1.0, 1.0)

    def sample_ddpm(self, cond: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Stochastic DDPM ancestral chain over all T steps, differentiable (Diffusion-QL's actor path)."""
        b = cond.shape[0]
        x = torch.randn(b, self.x_dim, generator=generator)
        for t in range(self.num_train_steps - 1, -1, -1):
            a_t = float(self._ac[t])
            a_prev = float(self._ac[t - 1]) if t > 0 else 1.0
            beta = 1.0 - a_t / a_prev
            eps = self.denoiser(x, self._time(t, b), cond)
            x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
            if self.clip_sample:
                x0 = torch.clamp(x0, -1.0, 1.0)
            # posterior q(x_{t-1} | x_t, x0) mean and variance
            mean = (math.sqrt(a_prev) * beta / (1 - a_t)) * x0 + (math.sqrt(1 - beta) * (1 - a_prev) / (1 - a_t)) * x
            if t > 0:
                var = beta * (1 - a_prev) / (1 - a_t)
                x = mean + math.sqrt(var) * torch.randn(b, self.x_dim, generator=generator)
            else:
                x = mean
        return torch.clamp(x, -1.0, 1.0)


@register_policy("diffusion")
class DiffusionPolicy(GenerativeChunkPolicy):
    """Diffusion Policy (Chi et al.) with an MLP ε-network: chunks, history, receding horizon or ensembling.

    Defaults: trained on a 100-step cosine schedule, sampled with 10 DDIM steps (``kind`` is set by the decorator).
    """

    model_cls = DiffusionGenerator
    model: DiffusionGenerator

    @classmethod
    def sampler_defaults(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        return {"num_train_steps": 100, "beta_schedule": "cosine", "inference_steps": 10, "clip_sample": True,
                "time_scale": 1000.0}

    @classmethod
    def benchmark_configs(cls) -> dict[str, dict[str, Any]]:
        return {"diffusion DDIM-10 (3x256, H8)": BENCH_CONFIG}


__all__ = ["BENCH_CONFIG", "BETA_SCHEDULES", "DiffusionGenerator", "DiffusionPolicy", "ddim_timesteps", "make_betas"]
