"""ONNX export of a policy's whole action path, with its contract embedded and a parity check that is enforced.

What is exported is what ``policy.act`` computes, not a simplification of it (format in ``tether.policies.exported``):

- the observation *history* is a graph input (B, H, O), so a policy conditioned on several observations sees
  them at deployment too (the runtime keeps the ring buffer, filled with the first observation at a reset);
- sampling policies export their real sampler: the whole action chunk, the fixed-step DDIM or Euler loop
  unrolled, with the initial noise as a graph input (B, N), so ``policy.act`` and the exported model agree
  given the same noise, and the chunk is executed (receding horizon / temporal ensembling) by the same
  ``ChunkExecutor`` on both sides;
- V-GPS exports its K candidates, critic and argmax in one graph (noise for all K candidates as the input).

Single-action policies map (B, H * O) → (B, A) through ``policy.onnx_module()`` ((B, O) when H = 1); a policy
with history H > 1 declares it in its config (``history`` or ``n_obs_steps``) and its ``onnx_module`` takes the
flattened window, oldest first.

The contract and what a user needs beside it (action normalisation to physical units, rate, observation layout,
history length, policy kind, chunk execution, noise size) go into ``metadata_props``. Export then runs
onnxruntime and torch on the same random windows and noise (drawn around the policy's own normaliser statistics)
and refuses a model whose max abs difference exceeds ``atol``: a robot must never run an artefact that computes
something other than what was evaluated.
"""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tether.errors import TetherError
from tether.policies import exported as rt
from tether.policies.base import Policy
from tether.policies.exported import ExportedPolicy


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
    history: int = 1
    horizon: int = 1
    noise_size: int = 0

    def __str__(self) -> str:
        noise = f" + noise {self.noise_size}" if self.noise_size else ""
        return (f"exported {self.path} (obs history {self.history}x{self.obs_size}{noise} -> chunk "
                f"{self.horizon}x{self.action_size}, contract embedded); parity on {self.samples} random inputs: "
                f"max abs diff {self.max_abs_diff:.3e} (limit {self.atol:.0e})")


@dataclass
class ExportSpec:
    """What export_onnx writes for one policy: the graph module and how the runtime must drive it."""

    module: nn.Module  # (obs_history (B, H, O)[, noise (B, N)]) -> action_chunk (B, C, A)
    kind: str
    history: int
    horizon: int
    n_action_steps: int = 1
    execution: str = "receding"
    ensemble_decay: float = 0.0
    noise_size: int = 0


# ----------------------------------------------------------------------------------------------- graphs
class _SingleActionGraph(nn.Module):
    """(B, H, O) window -> (B, 1, A) through a policy's deterministic ``onnx_module``."""

    def __init__(self, module: nn.Module, history: int) -> None:
        super().__init__()
        self.module, self.history = module, history

    def forward(self, obs_history: torch.Tensor) -> torch.Tensor:
        b = obs_history.shape[0]
        x = obs_history[:, -1] if self.history == 1 else obs_history.reshape(b, -1)
        return self.module(x).unsqueeze(1)


class _ChunkGraph(nn.Module):
    """(B, H, O) window, (B, horizon * A) noise -> (B, horizon, A): the generator's own sampler, unrolled."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, obs_history: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        b = obs_history.shape[0]
        x = self.model.generate(self.model.condition(obs_history), noise)
        return x.reshape(b, self.model.horizon, self.model.action_size)


class _GenerativeCandidates(nn.Module):
    """K first actions of K chunks from one window: (B, H, O), (B*K, x_dim) -> (B, K, A)."""

    def __init__(self, model: nn.Module, k: int) -> None:
        super().__init__()
        self.model, self.k = model, k

    def forward(self, obs_history: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        b = obs_history.shape[0]
        cond = self.model.condition(obs_history).repeat_interleave(self.k, dim=0)
        x = self.model.generate(cond, noise)
        return x.reshape(b, self.k, self.model.horizon, self.model.action_size)[:, :, 0]


class _GaussianCandidates(nn.Module):
    """K samples of a tanh/clip Gaussian actor, as ``GaussianPolicy.sample``: (B, H, O), (B*K, A) -> (B, K, A)."""

    def __init__(self, policy: nn.Module, k: int, history: int) -> None:
        super().__init__()
        self.policy, self.k, self.history = policy, k, history

    def forward(self, obs_history: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        b = obs_history.shape[0]
        x = obs_history[:, -1] if self.history == 1 else obs_history.reshape(b, -1)
        mean, log_std = self.policy.dist_params(x.repeat_interleave(self.k, dim=0))
        u = mean + log_std.exp() * noise
        a = torch.tanh(u) if self.policy.config["squash"] == "tanh" else torch.clamp(u, -1.0, 1.0)
        return a.reshape(b, self.k, -1)


class _VGPSGraph(nn.Module):
    """Candidates from noise, pessimistic critic on the current observation, argmax: (B, 1, A)."""

    def __init__(self, candidates: nn.Module, critic: nn.Module, k: int) -> None:
        super().__init__()
        self.candidates, self.critic, self.k = candidates, critic, k

    def forward(self, obs_history: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        b = obs_history.shape[0]
        cands = self.candidates(obs_history, noise.reshape(b * self.k, -1))  # (B, K, A)
        obs = obs_history[:, -1]
        q = self.critic.q_min(obs.repeat_interleave(self.k, dim=0), cands.reshape(b * self.k, -1)).reshape(b, self.k)
        onehot = nn.functional.one_hot(torch.argmax(q, dim=1), self.k).to(cands.dtype)
        return (onehot.unsqueeze(-1) * cands).sum(dim=1, keepdim=True)


def _is_generative(policy: Policy) -> bool:
    model = getattr(policy, "model", None)
    return model is not None and hasattr(model, "generate") and hasattr(model, "condition")


def history_length(policy: Policy) -> int:
    """Observations a policy conditions on: the generator's window, or ``history`` / ``n_obs_steps`` in its
    config (the Gaussian actors' observation history), else 1."""
    if _is_generative(policy):
        return int(policy.model.n_obs_steps)
    if hasattr(policy, "base") and hasattr(policy, "critic"):
        return history_length(policy.base)
    cfg = getattr(policy, "config", None)
    if isinstance(cfg, dict):
        for key in ("history", "n_obs_steps", "history_length"):
            if cfg.get(key) is not None:
                return max(1, int(cfg[key]))
    return 1


def export_spec(policy: Policy) -> ExportSpec:
    """The graph and execution settings for ``policy`` (see the module doc); unknown policies are named."""
    kind = str(getattr(policy, "kind", type(policy).__name__))
    if _is_generative(policy):
        cfg = policy.config
        model = copy.deepcopy(policy.model).eval()
        return ExportSpec(_ChunkGraph(model), kind, int(model.n_obs_steps), int(model.horizon),
                          int(cfg["n_action_steps"]), str(cfg["execution"]), float(cfg["ensemble_decay"]),
                          int(model.x_dim))
    if hasattr(policy, "base") and hasattr(policy, "critic") and hasattr(policy, "num_candidates"):
        base, k = policy.base, int(policy.num_candidates)
        history = history_length(base)
        if _is_generative(base):
            cands: nn.Module = _GenerativeCandidates(copy.deepcopy(base.model).eval(), k)
            per = int(base.model.x_dim)
        elif hasattr(base, "dist_params"):
            cands = _GaussianCandidates(copy.deepcopy(base).eval(), k, history)
            per = int(policy.contract.action_size)
        else:
            raise ExportError(f"V-GPS over a {type(base).__name__} cannot be exported; expected a diffusion, flow "
                              "or Gaussian base policy")
        graph = _VGPSGraph(cands, copy.deepcopy(policy.critic).eval(), k)
        return ExportSpec(graph, kind, history, 1, noise_size=k * per)
    if hasattr(policy, "onnx_module"):
        history = history_length(policy)
        return ExportSpec(_SingleActionGraph(policy.onnx_module().eval(), history), kind, history, 1)
    raise ExportError(f"{type(policy).__name__} has no onnx_module(); expected a Tether policy class")


# ----------------------------------------------------------------------------------------------- export
def _resolve_policy(policy_or_dir: Any) -> Any:
    if isinstance(policy_or_dir, (str, Path)):
        from tether.policies.checkpoint import load_policy

        return load_policy(policy_or_dir)
    return policy_or_dir


def parity_observations(policy: Policy, n: int, seed: int = 0) -> np.ndarray:
    """Random observations spread around the policy's training statistics (unit normal if it has none)."""
    rng = np.random.default_rng(seed)
    size = policy.contract.obs_size
    mean, std = np.zeros(size), np.ones(size)
    norm = getattr(policy, "obs_norm", None)
    if norm is not None and float(getattr(norm, "count", 0)) > 0:
        mean = norm.mean.detach().cpu().numpy()
        std = np.sqrt(norm.var.detach().cpu().numpy()) + 1e-3
    return (mean + std * rng.standard_normal((n, size))).astype(np.float32)


def _torch_export(spec: ExportSpec, obs_size: int, path: Path, opset: int, policy_name: str) -> None:
    inputs = [torch.zeros(2, spec.history, obs_size)]
    names = [rt.INPUT_OBS]
    if spec.noise_size:
        inputs.append(torch.zeros(2, spec.noise_size))
        names.append(rt.INPUT_NOISE)
    axes = {n: {0: "batch"} for n in (*names, rt.OUTPUT)}
    with warnings.catch_warnings():
        # known noise only: the TorchScript exporter is chosen on purpose (dynamo=False: it unrolls the samplers'
        # Python loops), and the normaliser's "no statistics yet" branch is a constant of the exported model.
        # Every other warning (a real tracing hazard) is shown; the parity check below is the hard gate.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="Converting a tensor to a Python float",
                                module=r"tether\.policies\.normalization")
        try:
            torch.onnx.export(spec.module, tuple(inputs), str(path), dynamo=False, opset_version=opset,
                              input_names=names, output_names=[rt.OUTPUT], dynamic_axes=axes)
        except Exception as exc:  # torch raises many types here; surface one clear line
            raise ExportError(f"ONNX export of {policy_name} failed: {exc}") from exc


def _metadata(policy: Policy, spec: ExportSpec, report: ExportReport) -> dict[str, str]:
    c = policy.contract
    chunk = {"horizon": spec.horizon, "n_action_steps": spec.n_action_steps, "execution": spec.execution,
             "ensemble_decay": spec.ensemble_decay}
    noise = ({"size": spec.noise_size, "distribution": "standard normal", "dtype": "float32"}
             if spec.noise_size else None)
    obs_layout, start = [], 0
    for f in c.observations:
        obs_layout.append({"name": f.name, "size": f.size, "units": f.units, "frame": f.frame,
                           "components": list(f.components), "start": start, "stop": start + f.size})
        start += f.size
    inputs = {rt.INPUT_OBS: {"shape": ["batch", spec.history, c.obs_size], "dtype": "float32",
                             "meaning": "the last `history` observations in physical units, contract order "
                                        "(tether.obs_layout), oldest first; at an episode start the first "
                                        "observation fills every slot"}}
    if noise:
        inputs[rt.INPUT_NOISE] = {"shape": ["batch", spec.noise_size], "dtype": "float32",
                                  "meaning": "the sampler's initial noise, standard normal, fresh per sample"}
    outputs = {rt.OUTPUT: {"shape": ["batch", spec.horizon, c.action_size], "dtype": "float32",
                           "meaning": "actions normalised to [-1, 1]; run the first n_action_steps (receding) or "
                                      "ensemble overlapping chunks, see tether.policy.chunk"}}
    action = {"formula": "physical = low + (clip(a, -1, 1) + 1) / 2 * (high - low)",
              "low": c.action_low.tolist(), "high": c.action_high.tolist(),
              "fields": [{"name": f.name, "size": f.size, "units": f.units, "frame": f.frame,
                          "components": list(f.components)} for f in c.actions]}
    from tether import __version__

    props = {
        rt.KEY_FORMAT: rt.FORMAT_VERSION,
        rt.KEY_CONTRACT: c.to_dict(),
        rt.KEY_POLICY: {"kind": spec.kind, "history": spec.history, "chunk": chunk, "noise": noise},
        rt.KEY_INPUTS: inputs,
        rt.KEY_OUTPUTS: outputs,
        rt.KEY_ACTION: action,
        rt.KEY_OBS_LAYOUT: obs_layout,
        rt.KEY_RATE: float(c.rate_hz),
        rt.KEY_PARITY: {"max_abs_diff": report.max_abs_diff, "samples": report.samples, "atol": report.atol},
        rt.KEY_VERSIONS: {"tether": __version__, "torch": torch.__version__},
    }
    return {k: json.dumps(v) for k, v in props.items()}


def _embed(path: Path, props: dict[str, str], doc: str) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "tether"
    model.doc_string = doc
    onnx.save(model, str(path))


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
    """Export ``policy``'s action path (module doc) to ``out_path`` with its contract in metadata_props."""
    import onnxruntime as ort

    policy = _resolve_policy(policy_or_checkpoint_dir)
    spec = export_spec(policy)
    if not hasattr(policy, "contract"):
        raise ExportError(f"{type(policy).__name__} has no contract; expected a Tether policy class")
    spec.module.eval()
    obs_size, act_size = policy.contract.obs_size, policy.contract.action_size
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _torch_export(spec, obs_size, out_path, opset, type(policy).__name__)

    window = parity_observations(policy, parity_samples * spec.history, seed).reshape(
        parity_samples, spec.history, obs_size)
    feeds = {rt.INPUT_OBS: window}
    args = [torch.from_numpy(window)]
    if spec.noise_size:
        noise = np.random.default_rng(seed + 1).standard_normal((parity_samples, spec.noise_size)).astype(np.float32)
        feeds[rt.INPUT_NOISE] = noise
        args.append(torch.from_numpy(noise))
    sess = ort.InferenceSession(str(out_path), providers=["CPUExecutionProvider"])
    onnx_out = sess.run([rt.OUTPUT], feeds)[0]
    with torch.inference_mode():
        torch_out = spec.module(*args).numpy()
    expected = (parity_samples, spec.horizon, act_size)
    if onnx_out.shape != torch_out.shape or onnx_out.shape != expected:
        raise ExportError(f"ONNX output shape {onnx_out.shape}, torch {torch_out.shape}; expected {expected}")
    diff = float(np.max(np.abs(onnx_out - torch_out)))
    report = ExportReport(out_path, diff, parity_samples, atol, obs_size, act_size, spec.history, spec.horizon,
                          spec.noise_size)
    if not diff <= atol:
        raise ExportError(f"ONNX parity failed for {out_path}: max abs diff {diff:.3e} > {atol:.0e}")
    c = policy.contract
    _embed(out_path, _metadata(policy, spec, report),
           f"Tether {spec.kind} policy for {c.robot}/{c.task} ({c.control_mode}, {c.rate_hz:g} Hz). Inputs and "
           "outputs are described in metadata_props (tether.*); run it with tether.runtime.ExportedPolicy.")
    if verbose:
        print(report)
    return report


class OnnxPolicy(ExportedPolicy):
    """An exported model through onnxruntime with the Policy protocol (``tether.runtime.ExportedPolicy``), the
    contract read from the file and checked against ``contract`` when one is given."""

    def __init__(self, path: str | Path, contract: Any = None, *, threads: int = 1, seed: int = 0) -> None:
        super().__init__(path, threads=threads, seed=seed, expected_contract=contract)
