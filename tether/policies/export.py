"""ONNX export of a policy's deterministic action path, with a parity check that is printed and enforced.

Why generic: every policy class provides ``onnx_module()`` (an nn.Module mapping a (B, obs_size) float32
observation in physical units to a (B, action_size) action in [-1, 1], normaliser baked in; sampling policies
unroll their fixed-step denoising loop and take their noise as a fixed buffer). Export then runs onnxruntime and
torch on the same random observations (drawn around the policy's own normaliser statistics, so they exercise the
range the network saw) and refuses a model whose max abs difference exceeds ``atol``: a robot must never run an
artefact that computes something other than what was evaluated.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tether.errors import TetherError


class ExportError(TetherError):
    """The policy cannot be exported, or the exported model disagrees with torch beyond tolerance."""


@dataclass(frozen=True)
class ExportReport:
    path: Path
    max_abs_diff: float
    samples: int
    atol: float
    obs_size: int
    action_size: int

    def __str__(self) -> str:
        return (f"exported {self.path} (obs {self.obs_size} -> action {self.action_size}); parity on "
                f"{self.samples} random observations: max abs diff {self.max_abs_diff:.3e} (limit {self.atol:.0e})")


def _resolve_policy(policy_or_dir: Any) -> Any:
    if isinstance(policy_or_dir, (str, Path)):
        from tether.policies.checkpoint import load_policy

        return load_policy(policy_or_dir)
    return policy_or_dir


def parity_observations(policy: Any, n: int, seed: int = 0) -> np.ndarray:
    """Random observations spread around the policy's training statistics (unit normal if it has none)."""
    rng = np.random.default_rng(seed)
    size = policy.contract.obs_size
    mean, std = np.zeros(size), np.ones(size)
    norm = getattr(policy, "obs_norm", None)
    if norm is not None and float(getattr(norm, "count", 0)) > 0:
        mean = norm.mean.detach().cpu().numpy()
        std = np.sqrt(norm.var.detach().cpu().numpy()) + 1e-3
    return (mean + std * rng.standard_normal((n, size))).astype(np.float32)


def export_onnx(
    policy_or_checkpoint_dir: Any,
    out_path: str | Path,
    *,
    parity_samples: int = 256,
    atol: float = 1e-4,
    opset: int = 17,
    seed: int = 0,
    verbose: bool = True,
) -> ExportReport:
    """Export ``policy.onnx_module()`` to ``out_path`` (input "obs", output "action", dynamic batch)."""
    import onnxruntime as ort

    policy = _resolve_policy(policy_or_checkpoint_dir)
    if not hasattr(policy, "onnx_module"):
        raise ExportError(f"{type(policy).__name__} has no onnx_module(); expected a Tether policy class")
    module = policy.onnx_module().eval()
    obs_size, act_size = policy.contract.obs_size, policy.contract.action_size
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(2, obs_size, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module, (dummy,), str(out_path), dynamo=False, opset_version=opset,
                input_names=["obs"], output_names=["action"],
                dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}},
            )
        except Exception as exc:  # torch raises many types here; surface one clear line
            raise ExportError(f"ONNX export of {type(policy).__name__} failed: {exc}") from exc
    obs = parity_observations(policy, parity_samples, seed)
    sess = ort.InferenceSession(str(out_path), providers=["CPUExecutionProvider"])
    onnx_out = sess.run(["action"], {"obs": obs})[0]
    with torch.inference_mode():
        torch_out = module(torch.from_numpy(obs)).numpy()
    if onnx_out.shape != torch_out.shape or onnx_out.shape != (parity_samples, act_size):
        raise ExportError(f"ONNX output shape {onnx_out.shape}, torch {torch_out.shape}; expected "
                          f"({parity_samples}, {act_size})")
    diff = float(np.max(np.abs(onnx_out - torch_out)))
    report = ExportReport(out_path, diff, parity_samples, atol, obs_size, act_size)
    if verbose:
        print(report)
    if not diff <= atol:
        raise ExportError(f"ONNX parity failed for {out_path}: max abs diff {diff:.3e} > {atol:.0e}")
    return report


class OnnxPolicy:
    """Run an exported model through onnxruntime with the Policy protocol (deployment without torch)."""

    def __init__(self, path: str | Path, contract: Any, *, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.contract = contract

    def act(self, obs: np.ndarray) -> np.ndarray:
        arr = np.asarray(obs, dtype=np.float32)
        single = arr.ndim == 1
        out = self.session.run(["action"], {"obs": arr[None] if single else arr})[0]
        return out[0] if single else out

    def reset(self) -> None:
        """Stateless."""
