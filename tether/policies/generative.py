"""Shared machinery of the chunked generative policies (diffusion, flow): network, training loop, Policy glue.

Why one base: diffusion and flow policies differ only in how a noise vector becomes an action chunk (the
``ChunkGenerator.loss`` / ``generate`` pair). Observation history, chunk execution, observation
normalisation, EMA training, candidate sampling for V-GPS, checkpoints and ONNX export are identical, and
keeping them in one place is what guarantees that training windows, deployment history and the exported
graph all see the same inputs.

Shapes: an observation window is (B, n_obs_steps, obs_size) in physical units; the generator works on the
flattened, normalised window (the *condition*) and on flattened chunks x of size horizon * action_size in
[-1, 1]. Noise is always an explicit argument of ``generate`` so sampling is a pure function of
(condition, noise): that is what makes ONNX parity, seeded rollouts and V-GPS candidates reproducible.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tether.contract import IOContract
from tether.errors import TetherError
from tether.policies.base import batch_observations, demonstration_arrays
from tether.policies.checkpoint import Checkpoint, save_checkpoint
from tether.policies.history import ChunkExecutor, ObservationHistory, make_windows
from tether.policies.networks import mlp, sinusoidal_embedding
from tether.policies.normalization import RunningNormalizer

# the network every generative class is benchmarked with (same width/depth, chunk of 8, sampler every step)
BENCH_CONFIG: dict[str, Any] = {"horizon": 8, "n_obs_steps": 2, "n_action_steps": 1, "hidden": [256, 256, 256]}


def common_defaults() -> dict[str, Any]:
    """Options every chunked generative policy has (subclasses add their sampler's options)."""
    return {
        "obs_size": 0,
        "action_size": 0,
        "horizon": 8,
        "n_obs_steps": 2,
        "n_action_steps": 4,
        "execution": "receding",
        "ensemble_decay": 0.01,
        "hidden": [256, 256, 256],
        "act": "mish",
        "layer_norm": False,
        "time_dim": 32,
        "time_scale": 100.0,
        "norm_clip": 10.0,
        "seed": 0,
    }


def merge_config(defaults: dict[str, Any], overrides: dict[str, Any], what: str) -> dict[str, Any]:
    """Defaults updated by overrides; unknown keys are an error, CLI strings are parsed as JSON."""
    cfg = dict(defaults)
    for k, v in overrides.items():
        if k not in cfg:
            raise TetherError(f"unknown {what} option {k!r}; expected one of {', '.join(sorted(cfg))}")
        if isinstance(v, str) and not isinstance(cfg[k], str):
            try:
                v = json.loads(v)
            except json.JSONDecodeError:
                raise TetherError(f"{what} option {k}={v!r}; expected a JSON value like {cfg[k]!r}") from None
        v = list(v) if isinstance(v, tuple) else v
        if not _same_kind(cfg[k], v) or (k == "seed" and not 0 <= v < 2**32):
            raise TetherError(f"{what} option {k}={v!r}; expected "
                              f"{'a seed in 0..2**32-1' if k == 'seed' else 'a value like ' + repr(cfg[k])}")
        cfg[k] = v
    return cfg


def _same_kind(default: Any, value: Any) -> bool:
    """``value`` (from the CLI or a checkpoint file) has the default's type: bool, whole number, finite number,
    text or list; a default of None takes anything the option's own check accepts."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list):
        return isinstance(value, list)
    return True


class ConditionalDenoiser(nn.Module):
    """MLP f(x, times, cond) -> same shape as x; used as ε-predictor, velocity or average velocity.

    ``times`` is (B, n_times) in [0, 1]: one time for diffusion/rectified flow, two (t, t - r) for the
    average-velocity (MeanFlow) parameterisation.
    """

    def __init__(self, x_dim: int, cond_dim: int, n_times: int, hidden: list[int], act: str = "mish",
                 layer_norm: bool = False, time_dim: int = 32, time_scale: float = 100.0) -> None:
        super().__init__()
        self.x_dim, self.cond_dim, self.n_times, self.time_dim = x_dim, cond_dim, n_times, time_dim
        # times live in [0, 1]; the scale sets the embedding's fastest frequency. Diffusion's ε-net likes the
        # classic 1000 (one unit per DDPM step); the average-velocity net needs a smooth u in t because its
        # training target contains ∂u/∂t, so flow policies use a smaller scale.
        self.time_scale = float(time_scale)
        self.net = mlp(x_dim + cond_dim + n_times * time_dim, x_dim, hidden, act=act, layer_norm=layer_norm)
        # the embedding's frequencies (those of networks.sinusoidal_embedding, pre-multiplied by the time scale),
        # computed once instead of on every call: at batch 1 such constant ops are most of a denoising step
        ref = sinusoidal_embedding(torch.zeros(1), time_dim)  # shape check only; keeps one definition of the layout
        half = time_dim // 2
        freqs = torch.exp(-torch.log(torch.tensor(10000.0)) * torch.arange(half, dtype=torch.float32) / max(half, 1))
        self.register_buffer("freqs", freqs * self.time_scale, persistent=False)
        self._pad = ref.shape[-1] - 2 * half

    def embed(self, t: torch.Tensor) -> torch.Tensor:
        """(B,) times in [0, 1] -> (B, time_dim); equals sinusoidal_embedding(t * time_scale, time_dim)."""
        args = t.reshape(-1, 1) * self.freqs
        parts = [torch.cos(args), torch.sin(args)]
        if self._pad:
            parts.append(torch.zeros_like(args[:, :1]))
        return torch.cat(parts, dim=-1)

    def forward(self, x: torch.Tensor, times: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        embs = [self.embed(times[:, i]) for i in range(self.n_times)]
        return self.net(torch.cat([x, cond, *embs], dim=-1))


class ChunkGenerator(nn.Module):
    """Observation normaliser + denoiser + a sampler. Subclasses define ``loss`` and ``generate``."""

    n_times = 1

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.obs_size, self.action_size = int(cfg["obs_size"]), int(cfg["action_size"])
        self.horizon, self.n_obs_steps = int(cfg["horizon"]), int(cfg["n_obs_steps"])
        self.x_dim = self.horizon * self.action_size
        self.obs_norm = RunningNormalizer(self.obs_size, clip=float(cfg["norm_clip"]))
        self.denoiser = ConditionalDenoiser(self.x_dim, self.n_obs_steps * self.obs_size, self.n_times,
                                            list(cfg["hidden"]), cfg["act"], bool(cfg["layer_norm"]),
                                            int(cfg["time_dim"]), float(cfg["time_scale"]))

    def condition(self, obs_window: torch.Tensor) -> torch.Tensor:
        """(B, n_obs_steps, obs_size) or (B, n_obs_steps * obs_size) physical -> (B, cond_dim) normalised."""
        b = obs_window.shape[0]
        return self.obs_norm(obs_window.reshape(b, self.n_obs_steps, self.obs_size)).reshape(b, -1)

    def loss(self, cond: torch.Tensor, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def generate(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Deterministic and differentiable: (B, cond_dim), (B, x_dim) standard normal -> (B, x_dim) in [-1, 1]."""
        raise NotImplementedError


class _OnnxSampler(nn.Module):
    """Flattened obs window -> (B, K, horizon, action_size), with the K initial noises a fixed buffer.

    The sampling loop is plain Python over a fixed step count, so tracing unrolls it into the graph.
    """

    def __init__(self, model: ChunkGenerator, noise: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("noise", noise)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        b, k = window.shape[0], self.noise.shape[0]
        cond = self.model.condition(window).repeat_interleave(k, dim=0)
        noise = self.noise.repeat(b, 1)
        return self.model.generate(cond, noise).reshape(b, k, self.model.horizon, self.model.action_size)


class _OnnxFirstAction(nn.Module):
    """obs (B, O) -> the first action of the chunk sampled from one fixed noise; history = obs repeated."""

    def __init__(self, sampler: _OnnxSampler) -> None:
        super().__init__()
        self.sampler = sampler

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        window = obs.repeat(1, self.sampler.model.n_obs_steps)
        return self.sampler(window)[:, 0, 0]


class _OnnxChunk(nn.Module):
    def __init__(self, sampler: _OnnxSampler) -> None:
        super().__init__()
        self.sampler = sampler

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return self.sampler(window)[:, 0]


class GenerativeChunkPolicy(nn.Module):
    """Policy/ChunkedPolicy over a ``ChunkGenerator``: numpy in, numpy out, batched, checkpointable.

    Call exactly one of ``act``, ``act_chunk`` or ``sample_actions`` per control step: each pushes the
    observation into the history. ``act`` returns the next action of the executed chunk (receding horizon or
    temporal ensembling); ``act_chunk`` the whole freshly sampled chunk; ``sample_actions`` K candidates for
    the current step (first action of K independent chunks) for value-guided selection.
    """

    kind = "generative"
    model_cls: type[ChunkGenerator] = ChunkGenerator

    @classmethod
    def sampler_defaults(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        """This kind's own options and the common options it sets differently (may depend on ``overrides``)."""
        raise NotImplementedError

    @classmethod
    def default_config(cls, obs_size: int, action_size: int, **overrides: Any) -> dict[str, Any]:
        d = common_defaults()
        d.update({"obs_size": int(obs_size), "action_size": int(action_size)})
        d.update(cls.sampler_defaults(overrides))
        return merge_config(d, overrides, f"{cls.kind} policy")

    @classmethod
    def benchmark_configs(cls) -> dict[str, dict[str, Any]]:
        """Name -> config of the untrained instances benchmarks/policy_latency.py times."""
        raise NotImplementedError

    @classmethod
    def benchmark_instances(cls, contract: Any) -> dict[str, GenerativeChunkPolicy]:
        """Untrained instances for benchmarks/policy_latency.py: the sampler runs on every ``act`` call."""
        torch.manual_seed(0)
        return {name: cls(contract, cfg) for name, cfg in cls.benchmark_configs().items()}

    def __init__(self, contract: IOContract, config: dict[str, Any] | None = None, *,
                 dr_terms: list[Any] | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__()
        given = dict(config or {})
        obs_size, action_size = given.pop("obs_size", contract.obs_size), given.pop("action_size", contract.action_size)
        cfg = self.default_config(obs_size, action_size, **given)
        if cfg["obs_size"] != contract.obs_size or cfg["action_size"] != contract.action_size:
            raise TetherError(
                f"{self.kind} policy sizes obs={cfg['obs_size']} act={cfg['action_size']} do not match contract "
                f"obs={contract.obs_size} act={contract.action_size}"
            )
        self.contract, self.config = contract, cfg
        self.dr_terms, self.extra = dr_terms, dict(extra or {})
        self.horizon = int(cfg["horizon"])
        self.model = self.model_cls(cfg)
        self.history = ObservationHistory(int(cfg["n_obs_steps"]))
        self.executor = ChunkExecutor(self.horizon, int(cfg["n_action_steps"]), cfg["execution"],
                                      float(cfg["ensemble_decay"]))
        self._gen = torch.Generator().manual_seed(int(cfg["seed"]))
        self.eval()

    # ------------------------------------------------------------------ sampling (torch)
    def noise(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(batch, self.model.x_dim, generator=generator or self._gen)


    def chunks_from_window(self, window: np.ndarray, num_samples: int = 1,
                           generator: torch.Generator | None = None) -> np.ndarray:
        """(B, n_obs_steps, obs_size) window -> (B, K, horizon, A) chunks (stateless; no history update)."""
        w = torch.as_tensor(np.asarray(window, dtype=np.float32))
        b = w.shape[0]
        with torch.inference_mode():
            cond = self.model.condition(w).repeat_interleave(num_samples, dim=0)
            x = self.model.generate(cond, self.noise(b * num_samples, generator))
        return x.reshape(b, num_samples, self.horizon, self.model.action_size).numpy()

    # ------------------------------------------------------------------ Policy protocol
    def act_chunk(self, obs: np.ndarray) -> np.ndarray:
        arr, single = batch_observations(self.contract, obs)
        chunk = self.chunks_from_window(self.history.push(arr))[:, 0]
        return chunk[0] if single else chunk

    def act(self, obs: np.ndarray) -> np.ndarray:
        arr, single = batch_observations(self.contract, obs)
        window = self.history.push(arr)
        if self.executor.needs_chunk(arr.shape[0]):
            self.executor.add_chunk(self.chunks_from_window(window)[:, 0])
        a = self.executor.next_action()
        return a[0] if single else a

    def sample_actions(self, obs: np.ndarray, num_samples: int, seed: int | None = None) -> np.ndarray:
        """(B, obs) -> (B, K, A): the first action of K independently sampled chunks (V-GPS candidates)."""
        if num_samples < 1:
            raise TetherError(f"num_samples={num_samples}; expected >= 1")
        arr, single = batch_observations(self.contract, obs)
        g = None if seed is None else torch.Generator().manual_seed(int(seed))
        out = self.chunks_from_window(self.history.push(arr), num_samples, g)[:, :, 0]
        return out[0] if single else out

    def reset(self) -> None:
        self.history.reset()
        self.executor.reset()

    def reseed(self, seed: int) -> None:
        self._gen.manual_seed(int(seed))

    # ------------------------------------------------------------------ training
    def fit(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        episode_ids: np.ndarray | None = None,
        *,
        steps: int = 5000,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 1e-6,
        ema_decay: float = 0.995,
        seed: int = 0,
        log: Callable[[int, dict[str, float]], None] | None = None,
        log_every: int = 100,
    ) -> dict[str, float]:
        """Behaviour cloning on (obs, actions) steps stored episode by episode; actions normalised to [-1, 1].

        Keeps an exponential moving average of the weights (as Diffusion Policy does) and leaves the EMA
        weights in the policy at the end: the averaged denoiser samples noticeably cleaner on small budgets.
        """
        obs, actions = demonstration_arrays(self.contract, obs, actions)
        windows, chunks = make_windows(obs, actions, episode_ids, self.model.n_obs_steps, self.horizon)
        self.model.obs_norm.update(obs)
        w_all = torch.from_numpy(windows)
        x_all = torch.from_numpy(chunks.reshape(len(chunks), -1))
        gen = torch.Generator().manual_seed(int(seed))
        ema = copy.deepcopy(self.model.denoiser).requires_grad_(False)
        opt = torch.optim.AdamW(self.model.denoiser.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1), eta_min=lr * 0.1)
        self.train()
        stats: dict[str, float] = {}
        running = 0.0
        for step in range(steps):
            idx = torch.randint(0, len(x_all), (batch_size,), generator=gen)
            cond = self.model.condition(w_all[idx])
            loss = self.model.loss(cond, x_all[idx], gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.denoiser.parameters(), 1.0)
            opt.step()
            sched.step()
            decay = min(ema_decay, (1.0 + step) / (10.0 + step))
            with torch.no_grad():
                for pe, p in zip(ema.parameters(), self.model.denoiser.parameters()):
                    pe.lerp_(p, 1.0 - decay)
            running += float(loss.detach())
            if (step + 1) % log_every == 0 or step + 1 == steps:
                n = (step % log_every) + 1
                stats = {"loss": running / n}
                running = 0.0
                if log is not None:
                    log(step + 1, stats)
        self.model.denoiser.load_state_dict(ema.state_dict())
        self.eval()
        self.reset()
        return stats

    # ------------------------------------------------------------------ export / checkpoints
    def onnx_sampler(self, num_samples: int = 1, seed: int = 0) -> nn.Module:
        """(B, n_obs_steps * obs_size) flattened physical window, oldest first -> (B, K, horizon, A)."""
        g = torch.Generator().manual_seed(int(seed))
        noise = torch.randn(num_samples, self.model.x_dim, generator=g)
        return _OnnxSampler(copy.deepcopy(self.model), noise).eval()

    def onnx_module(self, seed: int = 0) -> nn.Module:
        """obs (B, obs_size) -> (B, A), the first action of the chunk; fixed step count and fixed noise.

        Stateless, as ``export_onnx`` requires: the history window is the current observation repeated
        (exactly the window at the first step of an episode). Deployments that keep history or execute
        whole chunks export ``onnx_chunk_module`` instead.
        """
        return _OnnxFirstAction(self.onnx_sampler(1, seed)).eval()

    def onnx_chunk_module(self, seed: int = 0) -> nn.Module:
        """(B, n_obs_steps * obs_size) flattened window, oldest first -> (B, horizon, A) chunk."""
        return _OnnxChunk(self.onnx_sampler(1, seed)).eval()

    @property
    def onnx_window_size(self) -> int:
        return self.model.n_obs_steps * self.contract.obs_size

    @property
    def obs_norm(self) -> RunningNormalizer:
        return self.model.obs_norm

    def save(self, directory: str | Path) -> Path:
        return save_checkpoint(directory, kind=self.kind, tensors=self.model.state_dict(), config=self.config,
                               contract=self.contract, dr_terms=self.dr_terms, extra=self.extra)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> GenerativeChunkPolicy:
        policy = cls(ckpt.contract, ckpt.config, dr_terms=ckpt.dr_terms, extra=ckpt.extra)
        ckpt.load_module(policy.model)
        return policy.eval()

    @classmethod
    def load(cls, directory: str | Path, expected_contract: IOContract | None = None) -> GenerativeChunkPolicy:
        from tether.policies.checkpoint import load_policy

        return load_policy(directory, expected_contract, expected_kind=cls.kind)


__all__ = ["ChunkGenerator", "ConditionalDenoiser", "GenerativeChunkPolicy", "common_defaults", "merge_config"]
