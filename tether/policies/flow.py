"""Flow-matching policy: rectified flow with K Euler steps, and a one-step average-velocity (MeanFlow) variant.

Convention (shared with OFQL): z_t = (1 - t)·x + t·ε, so t = 0 is data and t = 1 is noise, and the
conditional velocity is v = ε - x. Sampling integrates from t = 1 down to t = 0.

- ``variant="rectified"`` learns the instantaneous velocity v(z_t, t) (conditional flow matching) and samples
  with K Euler steps. Its learned trajectories bend where modes split, so K = 1 lands between modes.
- ``variant="mean"`` learns the *average* velocity u(z_t, r, t) = 1/(t - r) ∫_r^t v(z_τ, τ) dτ through the
  MeanFlow identity u = v - (t - r)·d/dt u, where d/dt u = v·∂_z u + ∂_t u is one Jacobian-vector product
  (``torch.func.jvp``; its result is a stop-gradient target). One step z_0 = z_1 - u(z_1, 0, 1) then jumps
  straight from noise to an action, which is what makes the policy fast enough for control rates and what
  OFQL trains through. K > 1 steps z_r = z_t - (t - r)·u(z_t, r, t) remain available.
The network sees the pair (t, t - r) for the mean variant, as in MeanFlow.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.func import jvp

from tether.errors import TetherError
from tether.policies.checkpoint import register_policy
from tether.policies.generative import BENCH_CONFIG, ChunkGenerator, GenerativeChunkPolicy

FLOW_VARIANTS = ("rectified", "mean")


class FlowGenerator(ChunkGenerator):
    """Velocity (rectified) or average-velocity (mean) network with its loss and Euler sampler."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        if cfg["variant"] not in FLOW_VARIANTS:
            raise TetherError(f"unknown flow variant {cfg['variant']!r}; expected one of {', '.join(FLOW_VARIANTS)}")
        self.variant = cfg["variant"]
        self.n_times = 2 if self.variant == "mean" else 1
        super().__init__(cfg)
        self.steps = int(cfg["inference_steps"])
        if self.steps < 1:
            raise TetherError(f"inference_steps={self.steps}; expected >= 1")
        self.mf_ratio = float(cfg["mf_ratio"])
        self.mf_adaptive_p = float(cfg["mf_adaptive_p"])

    # ------------------------------------------------------------------ networks
    def velocity(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.denoiser(z, t.reshape(-1, 1), cond)

    def average_velocity(self, z: torch.Tensor, r: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.denoiser(z, torch.stack([t.reshape(-1), (t - r).reshape(-1)], dim=-1), cond)

    # ------------------------------------------------------------------ training
    def _sample_times(self, b: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.rand(b, generator=generator)
        c = torch.rand(b, generator=generator)
        t, r = torch.maximum(a, c), torch.minimum(a, c)
        same = torch.rand(b, generator=generator) >= self.mf_ratio
        return torch.where(same, t, r), t

    def mean_flow_loss(self, cond: torch.Tensor, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """MeanFlow objective with the adaptive weight w = 1/(‖Δ‖² + c)^p (stop-gradient)."""
        b = x0.shape[0]
        eps = torch.randn(x0.shape, generator=generator)
        r, t = self._sample_times(b, generator)
        tc = t.unsqueeze(-1)
        z = (1 - tc) * x0 + tc * eps
        v = eps - x0

        def fn(z_: torch.Tensor, r_: torch.Tensor, t_: torch.Tensor) -> torch.Tensor:
            return self.average_velocity(z_, r_, t_, cond)

        u, dudt = jvp(fn, (z, r, t), (v, torch.zeros_like(r), torch.ones_like(t)))
        target = (v - (t - r).unsqueeze(-1) * dudt).detach()
        err = ((u - target) ** 2).sum(-1)
        if self.mf_adaptive_p > 0:
            err = err / (err.detach() + 1e-3) ** self.mf_adaptive_p
        return err.mean()

    def loss(self, cond: torch.Tensor, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.variant == "mean":
            return self.mean_flow_loss(cond, x0, generator)
        b = x0.shape[0]
        eps = torch.randn(x0.shape, generator=generator)
        t = torch.rand(b, generator=generator)
        tc = t.unsqueeze(-1)
        z = (1 - tc) * x0 + tc * eps
        return ((self.velocity(z, t, cond) - (eps - x0)) ** 2).mean()

    # ------------------------------------------------------------------ sampling
    def one_step(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """z_0 = z_1 - u(z_1, 0, 1), clipped to the action box: OFQL's differentiable actor."""
        b = noise.shape[0]
        return torch.clamp(noise - self.average_velocity(noise, torch.zeros(b), torch.ones(b), cond), -1.0, 1.0)

    def generate(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        b = noise.shape[0]
        z = noise
        for i in range(self.steps):
            t = 1.0 - i / self.steps
            r = 1.0 - (i + 1) / self.steps
            tt = torch.full((b,), t)
            if self.variant == "mean":
                z = z - (t - r) * self.average_velocity(z, torch.full((b,), r), tt, cond)
            else:
                z = z - (t - r) * self.velocity(z, tt, cond)
        return torch.clamp(z, -1.0, 1.0)


@register_policy("flow")
class FlowPolicy(GenerativeChunkPolicy):
    """Flow-matching policy over action chunks; ``variant`` picks rectified (K Euler steps) or mean (one step)."""

    model_cls = FlowGenerator
    model: FlowGenerator

    @classmethod
    def sampler_defaults(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        variant = str(overrides.get("variant", "rectified"))
        return {"variant": variant, "inference_steps": 1 if variant == "mean" else 10, "mf_ratio": 0.5,
                "mf_adaptive_p": 0.5, "time_scale": 10.0}

    @classmethod
    def benchmark_configs(cls) -> dict[str, dict[str, Any]]:
        """Same network as the diffusion benchmark."""
        return {"flow rectified Euler-10 (3x256, H8)": {**BENCH_CONFIG, "variant": "rectified"},
                "flow one-step mean (3x256, H8)": {**BENCH_CONFIG, "variant": "mean"}}


__all__ = ["FLOW_VARIANTS", "FlowGenerator", "FlowPolicy"]
