"""Network building blocks shared by every policy class (Gaussian, diffusion, flow, critics).

Why one builder: a checkpoint stores only the *config* of a network (sizes, activation, LayerNorm flag) next to
its tensors, and rebuilds the module from that config on load. Building every MLP through ``mlp`` keeps the
parameter names stable ("net.0.weight", ...) so a config + state dict always round-trip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from tether.errors import TetherError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "mish": nn.Mish,
    "leaky_relu": nn.LeakyReLU,
}


def activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise TetherError(f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}") from None


def mlp(
    in_dim: int,
    out_dim: int,
    hidden: Sequence[int] = (256, 256),
    *,
    act: str = "relu",
    layer_norm: bool = False,
    output_act: str | None = None,
    output_scale: float | None = None,
) -> nn.Sequential:
    """Linear → [LayerNorm] → act, repeated per hidden width, then a linear head.

    ``layer_norm`` after every hidden linear is what RLPD/"LayerNorm critics" rely on to keep Q-values bounded at
    high update-to-data ratios. ``output_scale`` shrinks the head's initial weights (small initial actions for
    PPO policies, near-zero initial predictions for residual heads).
    """
    if in_dim < 1 or out_dim < 1:
        raise TetherError(f"mlp sizes in={in_dim} out={out_dim}; expected both >= 1")
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden:
        if width < 1:
            raise TetherError(f"hidden width {width}; expected >= 1")
        layers.append(nn.Linear(last, int(width)))
        if layer_norm:
            layers.append(nn.LayerNorm(int(width)))
        layers.append(activation(act))
        last = int(width)
    head = nn.Linear(last, out_dim)
    if output_scale is not None:
        with torch.no_grad():
            head.weight.mul_(output_scale)
            head.bias.zero_()
    layers.append(head)
    if output_act is not None:
        layers.append(activation(output_act))
    return nn.Sequential(*layers)


def mlp_config(hidden: Sequence[int] = (256, 256), act: str = "relu", layer_norm: bool = False) -> dict[str, Any]:
    """The JSON-able description that ``mlp_from_config`` rebuilds (stored in checkpoint configs)."""
    return {"hidden": [int(h) for h in hidden], "act": act, "layer_norm": bool(layer_norm)}


def mlp_from_config(in_dim: int, out_dim: int, cfg: dict[str, Any], **kwargs: Any) -> nn.Sequential:
    return mlp(in_dim, out_dim, tuple(cfg.get("hidden", (256, 256))), act=cfg.get("act", "relu"),
               layer_norm=bool(cfg.get("layer_norm", False)), **kwargs)


class EnsembleLinear(nn.Module):
    """N independent linear layers applied in one batched matmul: (N, B, in) → (N, B, out)."""

    def __init__(self, n: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default init, per member
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleMLP(nn.Module):
    """N MLPs with identical shapes evaluated together (one batched matmul per layer instead of N small ones).

    Why: twin/10-member critics (SAC, RLPD, REDQ) and dynamics ensembles are dominated by per-layer Python and
    kernel-launch overhead at RL batch sizes; fusing members is the main lever on gradient updates per second.
    Input (B, in) is shared by all members, or (N, B, in) per member; output is (N, B, out).
    """

    def __init__(self, n: int, in_dim: int, out_dim: int, hidden: Sequence[int] = (256, 256), *,
                 act: str = "relu", layer_norm: bool = False) -> None:
        super().__init__()
        self.n = int(n)
        layers: list[nn.Module] = []
        last = in_dim
        for width in hidden:
            layers.append(EnsembleLinear(n, last, int(width)))
            if layer_norm:
                layers.append(nn.LayerNorm(int(width)))  # normalises the feature axis; affine shared across members
            layers.append(activation(act))
            last = int(width)
        layers.append(EnsembleLinear(n, last, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n, -1, -1)
        return self.net(x)


class EnsembleQ(nn.Module):
    """N independent Q(s, a) networks evaluated together; returns (N, B). Twin critics are N=2."""

    def __init__(self, in_dim: int, action_dim: int, n: int = 2, hidden: Sequence[int] = (256, 256), *,
                 act: str = "relu", layer_norm: bool = False) -> None:
        super().__init__()
        self.n = int(n)
        self.net = EnsembleMLP(n, in_dim + action_dim, 1, hidden, act=act, layer_norm=layer_norm)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, action], dim=-1)).squeeze(-1)


class ValueNet(nn.Module):
    """V(s) MLP returning (B,)."""

    def __init__(self, in_dim: int, hidden: Sequence[int] = (256, 256), *, act: str = "relu",
                 layer_norm: bool = False) -> None:
        super().__init__()
        self.net = mlp(in_dim, 1, hidden, act=act, layer_norm=layer_norm)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)


def adam(params, lr: float, **kwargs: Any) -> torch.optim.Adam:
    """Adam with the fused CPU kernel where this torch has it: one kernel for all parameters instead of a Python
    loop per tensor, which is most of an optimiser step for the small networks RL uses."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, **kwargs)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging target ← (1-τ)·target + τ·source, in place, without autograd."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Timestep embedding for diffusion/flow networks: (B,) or (B,1) in any range → (B, dim)."""
    t = t.reshape(-1, 1).float()
    half = dim // 2
    freqs = torch.exp(-torch.log(torch.tensor(max_period)) * torch.arange(half, dtype=torch.float32) / max(half, 1))
    args = t * freqs.unsqueeze(0)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb
