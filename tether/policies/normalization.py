"""Running observation normaliser, kept inside the policy so deployment sees exactly the training statistics.

Why a module with float64 buffers: the statistics are part of the policy's state dict, so they are saved to
safetensors with the weights (bit-exact round trip) and baked into ONNX export; accumulating in float64 with
Chan/Welford batched updates keeps millions of samples from drifting. The forward pass works in the input's
dtype so torch and onnxruntime compute the same float32 arithmetic.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tether.errors import TetherError


class RunningNormalizer(nn.Module):
    """y = clip((x - mean) / sqrt(var + eps), -clip, clip); ``update`` folds a batch into mean/var."""

    def __init__(self, size: int, *, eps: float = 1e-8, clip: float = 10.0) -> None:
        super().__init__()
        if size < 0:
            raise TetherError(f"normaliser size {size}; expected >= 0")
        self.size = int(size)
        self.eps = float(eps)
        self.clip = float(clip)
        self.register_buffer("mean", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("var", torch.ones(size, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    def update(self, x: np.ndarray | torch.Tensor) -> None:
        """Fold a batch (B, size) into the running statistics (parallel-variance / Chan et al.)."""
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.size)
        n = x.shape[0]
        if n == 0:
            return
        if not np.all(np.isfinite(x)):
            raise TetherError("normaliser update got NaN/inf observations; expected finite values")
        b_mean = x.mean(axis=0)
        b_var = x.var(axis=0)
        count = float(self.count)
        mean = self.mean.numpy()
        var = self.var.numpy() if count > 0 else np.zeros(self.size)
        tot = count + n
        delta = b_mean - mean
        new_mean = mean + delta * n / tot
        m2 = var * count + b_var * n + delta**2 * count * n / tot
        self.mean.copy_(torch.from_numpy(new_mean))
        self.var.copy_(torch.from_numpy(m2 / tot))
        self.count.fill_(tot)

    def check_loaded(self) -> None:
        """Statistics read from a file: a negative variance would make sqrt(var + eps) NaN, so NaN actions."""
        negative = int((~(self.var >= 0)).sum())
        if float(self.count) < 0 or negative:
            raise TetherError(f"normaliser count {float(self.count):g} with {negative} negative variance(s); "
                              "expected a count and variances >= 0")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Never updated (normalisation switched off): identity. Deciding in Python is safe for ONNX export because
        # the stats are frozen by then, so the traced graph is the right one for this policy.
        if self.size == 0 or float(self.count) == 0.0:
            return x
        mean = self.mean.to(x.dtype)
        std = torch.sqrt(self.var.to(x.dtype) + self.eps)
        return torch.clamp((x - mean) / std, -self.clip, self.clip)

    def normalize_np(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self(torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy()

    def extra_repr(self) -> str:
        return f"size={self.size}, count={float(self.count):.0f}, clip={self.clip}"
