"""Sampling-based planners over a world model, exposed as Tether policies.

MPPI (Williams et al.) and CEM both search open-loop action sequences by rolling candidates through the
model in one batch and keep a warm-started plan between control steps (receding horizon). Because they
implement the Policy protocol and checkpoint as safetensors + JSON (the world model's weights plus the
planner settings), a planner deploys through the same bridge and safety layer as a trained network.

Why the choices below:

- Candidates for every row of a batch of observations are scored in one torch call
  (``model.plan_returns``): per-step Python and per-call overhead, not FLOPs, dominate small-MLP planning.
- Scoring uses the task's known reward when one is named (``reward="quadrotor_hover"``, see
  :mod:`tether.world_models.rewards`): the model is then only asked for dynamics, which it predicts far
  better than small reward differences near the optimum.
- Sampling noise is smooth in time (a low-pass filter, ``smoothing``): white noise on body rates mostly
  cancels within a few control steps and explores nothing, while correlated noise produces the
  sustained tilts a quadrotor needs to move.
- MPPI's temperature is relative to the spread of returns, so one setting works across reward scales.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tether.contract import IOContract
from tether.errors import TetherError
from tether.policies.checkpoint import Checkpoint, register_policy, register_policy_module, save_checkpoint
from tether.world_models.ensemble import EnsembleConfig, EnsembleWorldModel
from tether.world_models.rewards import task_reward

METHODS = ("mppi", "cem")


@dataclass
class PlannerConfig:
    method: str = "mppi"  # "mppi" | "cem"
    horizon: int = 15
    samples: int = 256
    iterations: int = 3
    temperature: float = 0.1  # MPPI: softmax temperature, in units of the returns' standard deviation
    elite_frac: float = 0.1  # CEM: share of samples refitted
    noise_std: float | list[float] = 0.5  # initial sampling std in normalised action units (scalar or per dim)
    min_std: float = 0.05
    smoothing: float = 0.5  # noise low-pass coefficient in [0, 1): 0 = white noise
    gamma: float = 0.99
    uncertainty_penalty: float = 0.0
    reward: str | None = None  # a name in tether.world_models.rewards, or None to use the model's reward head
    seed: int = 0
    extra: dict = field(default_factory=dict)


class Planner:
    """Model-predictive control as a Policy: ``act(obs)`` plans from every row of ``obs`` (in one batch)."""

    def __init__(self, model: Any, contract: IOContract, config: PlannerConfig | None = None,
                 *, neutral_action: np.ndarray | None = None, reward_fn: Any = None, done_fn: Any = None) -> None:
        self.cfg = cfg = config or PlannerConfig()
        if cfg.method not in METHODS:
            raise TetherError(f"unknown planner {cfg.method!r}; expected one of {', '.join(METHODS)}")
        if cfg.horizon < 1 or cfg.samples < 2 or cfg.iterations < 1:
            raise TetherError(f"planner horizon={cfg.horizon}, samples={cfg.samples}, iterations={cfg.iterations}; "
                              f"expected horizon >= 1, samples >= 2, iterations >= 1")
        if not 0.0 <= cfg.smoothing < 1.0:
            raise TetherError(f"planner smoothing={cfg.smoothing}; expected 0 <= smoothing < 1")
        if model.obs_size != contract.obs_size or model.action_size != contract.action_size:
            raise TetherError(f"world model sizes obs {model.obs_size}/act {model.action_size} do not match the "
                              f"contract's {contract.obs_size}/{contract.action_size}")
        self.model, self.contract = model, contract
        a = contract.action_size
        self.neutral = np.zeros(a) if neutral_action is None else np.asarray(neutral_action, np.float64).reshape(a)
        std = np.broadcast_to(np.asarray(cfg.noise_std, np.float64), (a,)) if np.ndim(cfg.noise_std) == 0 else \
            np.asarray(cfg.noise_std, np.float64)
        if std.shape != (a,):
            raise TetherError(f"planner noise_std has {std.size} values; expected 1 or {a}")
        self.noise_std = torch.tensor(np.array(std), dtype=torch.float32)
        if cfg.reward is not None and reward_fn is None:
            reward_fn, done_fn = task_reward(cfg.reward, contract)
        self.reward_fn, self.done_fn = reward_fn, done_fn
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self._plans: torch.Tensor | None = None
        self.extra: dict[str, Any] = {}
        self.dr_terms = None

    def reset(self) -> None:
        self._plans = None

    def _noise(self, b: int, std: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        w = torch.randn(b, cfg.samples, cfg.horizon, self.contract.action_size, generator=self.gen)
        if cfg.smoothing > 0:  # AR(1) with unit stationary variance: correlated in time, same amplitude
            c = cfg.smoothing
            for t in range(1, cfg.horizon):
                w[:, :, t] = c * w[:, :, t - 1] + (1 - c * c) ** 0.5 * w[:, :, t]
        return w * std.unsqueeze(1)

    @torch.no_grad()
    def plan(self, obs: np.ndarray, plans: torch.Tensor) -> torch.Tensor:
        """Refine ``plans`` (B, H, act) from ``obs`` (B, obs); returns the new plans."""
        cfg = self.cfg
        o = torch.as_tensor(np.asarray(obs, np.float32))
        b = o.shape[0]
        std = self.noise_std.expand(b, cfg.horizon, -1).clone()
        for _ in range(cfg.iterations):
            seqs = (plans.unsqueeze(1) + self._noise(b, std)).clamp(-1.0, 1.0)
            seqs[:, 0] = plans  # keep the incumbent
            ret = self.model.plan_returns(o, seqs, gamma=cfg.gamma, reward_fn=self.reward_fn, done_fn=self.done_fn,
                                          uncertainty_penalty=cfg.uncertainty_penalty)
            if cfg.method == "mppi":
                scale = ret.std(dim=1, keepdim=True).clamp_min(1e-6) * max(cfg.temperature, 1e-6)
                w = torch.softmax((ret - ret.max(dim=1, keepdim=True).values) / scale, dim=1)
                plans = torch.einsum("bk,bkha->bha", w, seqs)
                var = torch.einsum("bk,bkha->bha", w, (seqs - plans.unsqueeze(1)) ** 2)
                std = var.sqrt().clamp_min(cfg.min_std)
            else:
                n_elite = max(2, int(cfg.samples * cfg.elite_frac))
                idx = ret.topk(n_elite, dim=1).indices
                elite = torch.gather(seqs, 1, idx[:, :, None, None].expand(-1, -1, *seqs.shape[2:]))
                plans, std = elite.mean(1), elite.std(1).clamp_min(cfg.min_std)
        return plans

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, np.float32)
        if obs.ndim == 1:
            obs = obs[None]
        if obs.ndim != 2 or obs.shape[1] != self.contract.obs_size:
            raise TetherError(f"planner got observations of shape {obs.shape}; expected (B, {self.contract.obs_size})")
        b, h = obs.shape[0], self.cfg.horizon
        if self._plans is None or self._plans.shape[0] != b:
            self._plans = torch.as_tensor(np.tile(self.neutral, (b, h, 1)), dtype=torch.float32)
        plans = self.plan(obs, self._plans)
        # receding horizon: shift by one step, repeat the last action as the new tail
        self._plans = torch.cat([plans[:, 1:], plans[:, -1:]], dim=1)
        return plans[:, 0].numpy().astype(np.float32)

    # ------------------------------------------------------------------ checkpoints
    def save(self, directory: str | Path) -> Path:
        if not isinstance(self.model, EnsembleWorldModel):
            raise TetherError(f"planner checkpoints hold an ensemble world model; this planner uses a "
                              f"{type(self.model).__name__}")
        if self.reward_fn is not None and self.cfg.reward is None:
            raise TetherError("this planner scores with a custom reward_fn, which a checkpoint cannot hold; "
                              "use a named task reward (PlannerConfig.reward) to save it")
        tensors = {f"model.{k}": v for k, v in self.model.net.state_dict().items()}
        tensors["model.elite_idx"] = torch.as_tensor(self.model.elite_idx, dtype=torch.int64)
        mcfg = asdict(self.model.cfg)
        mcfg["hidden"] = list(mcfg["hidden"])
        return save_checkpoint(directory, kind="planner", tensors=tensors, contract=self.contract,
                               config={"planner": asdict(self.cfg), "world_model": mcfg,
                                       "neutral_action": self.neutral.tolist()},
                               dr_terms=self.dr_terms, extra=self.extra)


@register_policy("planner")
class _PlannerCheckpoint:
    """Loader for planner checkpoints (``load_policy`` dispatches here on kind "planner")."""

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> Planner:
        import dataclasses

        from tether.validation import ValidationError, expect_dict, expect_int, expect_numbers

        where = f"checkpoint {ckpt.directory}: config"
        try:  # the config is file data: its keys are the dataclasses' fields, its sizes bounded
            cfg = expect_dict(ckpt.config, where, required=("world_model", "planner", "neutral_action"))
            mcfg = dict(expect_dict(cfg["world_model"], f"{where}.world_model",
                                    allowed=[f.name for f in dataclasses.fields(EnsembleConfig)]))
            pcfg = expect_dict(cfg["planner"], f"{where}.planner",
                               allowed=[f.name for f in dataclasses.fields(PlannerConfig)])
            for key, hi in (("samples", 65_536), ("iterations", 1000)):
                if key in pcfg:
                    expect_int(pcfg[key], f"{where}.planner.{key}", 1, hi)
            neutral = expect_numbers(cfg["neutral_action"], f"{where}.neutral_action", size=ckpt.contract.action_size)
        except ValidationError as exc:
            raise TetherError(str(exc)) from None
        mcfg["hidden"] = tuple(mcfg["hidden"])
        model = EnsembleWorldModel(ckpt.contract.obs_size, ckpt.contract.action_size, EnsembleConfig(**mcfg))
        elite = ckpt.tensor("model.elite_idx")
        sub = {k: v for k, v in ckpt.state_dict("model.").items() if k != "elite_idx"}
        try:
            model.net.load_state_dict(sub)
        except RuntimeError as exc:
            raise TetherError(f"checkpoint {ckpt.directory}: the world model's tensors do not fit its config "
                              f"({' '.join(str(exc).split())[:300]}); expected the weights saved with it") from None
        model.elite_idx, model.fitted = elite.numpy(), True
        planner = Planner(model, ckpt.contract, PlannerConfig(**pcfg), neutral_action=np.asarray(neutral))
        planner.extra = dict(ckpt.extra)
        return planner


register_policy_module("planner", __name__)
