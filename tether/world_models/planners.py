"""Sampling-based planners over a world model, exposed as Tether policies.

MPPI (Williams et al.) and CEM both search open-loop action sequences by rolling candidates through the
model in one batch and keep a warm-started plan between control steps (receding horizon). Because they
implement the Policy protocol and checkpoint as safetensors + JSON (the world model's weights plus the
planner settings), a planner deploys through the same bridge and safety layer as a trained network.

Candidates are scored with the model's reward head, minus ``uncertainty_penalty`` × ensemble disagreement
so the plan stays where the model is trustworthy; a predicted termination ends a candidate's return.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from tether.contract import IOContract
from tether.errors import TetherError
from tether.policies.checkpoint import Checkpoint, register_policy, save_checkpoint
from tether.world_models.ensemble import EnsembleConfig, EnsembleWorldModel


@dataclass
class PlannerConfig:
    method: str = "mppi"  # "mppi" | "cem"
    horizon: int = 15
    samples: int = 256
    iterations: int = 2
    temperature: float = 0.5  # MPPI: softmax temperature on returns
    elite_frac: float = 0.1  # CEM: share of samples refitted
    noise_std: float = 0.5  # initial sampling std in normalised action units
    gamma: float = 0.99
    uncertainty_penalty: float = 0.0
    seed: int = 0


class Planner:
    """Model-predictive control as a Policy: ``act(obs)`` plans from each row of ``obs``."""

    def __init__(self, model: EnsembleWorldModel, contract: IOContract, config: PlannerConfig | None = None,
                 *, neutral_action: np.ndarray | None = None) -> None:
        self.cfg = cfg = config or PlannerConfig()
        if cfg.method not in ("mppi", "cem"):
            raise TetherError(f"unknown planner {cfg.method!r}; expected 'mppi' or 'cem'")
        if model.obs_size != contract.obs_size or model.action_size != contract.action_size:
            raise TetherError(f"world model sizes obs {model.obs_size}/act {model.action_size} do not match the "
                              f"contract's {contract.obs_size}/{contract.action_size}")
        self.model, self.contract = model, contract
        self.neutral = np.zeros(contract.action_size) if neutral_action is None else np.asarray(neutral_action)
        self.rng = np.random.default_rng(cfg.seed)
        self._plans: np.ndarray | None = None

    def reset(self) -> None:
        self._plans = None

    def _returns(self, obs: np.ndarray, seqs: np.ndarray) -> np.ndarray:
        """Discounted model return of each action sequence (K, H, A) from ``obs``."""
        k = seqs.shape[0]
        o = np.repeat(obs[None], k, axis=0)
        total, alive = np.zeros(k), np.ones(k)
        for t in range(seqs.shape[1]):
            o, r, done, unc = self.model.step(o, seqs[:, t], deterministic=True)
            total += (self.cfg.gamma ** t) * alive * (r - self.cfg.uncertainty_penalty * unc)
            alive = alive * (~done)
        return total

    def _plan_one(self, obs: np.ndarray, plan: np.ndarray) -> np.ndarray:
        cfg = self.cfg
        std = np.full_like(plan, cfg.noise_std)
        for _ in range(cfg.iterations):
            noise = self.rng.standard_normal((cfg.samples, *plan.shape)) * std
            seqs = np.clip(plan[None] + noise, -1.0, 1.0)
            seqs[0] = plan  # keep the incumbent
            ret = self._returns(obs, seqs.astype(np.float32))
            if cfg.method == "mppi":
                w = np.exp((ret - ret.max()) / max(cfg.temperature, 1e-8))
                w /= w.sum()
                plan = np.tensordot(w, seqs, axes=1)
                std = np.sqrt(np.tensordot(w, (seqs - plan) ** 2, axes=1)) + 0.05
            else:
                n_elite = max(2, int(cfg.samples * cfg.elite_frac))
                elite = seqs[np.argsort(ret)[-n_elite:]]
                plan, std = elite.mean(0), elite.std(0) + 0.05
        return plan

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.atleast_2d(np.asarray(obs, np.float32))
        b, h, a = obs.shape[0], self.cfg.horizon, self.contract.action_size
        if self._plans is None or self._plans.shape[0] != b:
            self._plans = np.tile(self.neutral, (b, h, 1)).astype(np.float64)
        actions = np.empty((b, a), np.float32)
        for i in range(b):
            plan = self._plan_one(obs[i], self._plans[i])
            actions[i] = plan[0]
            self._plans[i] = np.concatenate([plan[1:], plan[-1:]])  # receding horizon warm start
        return actions

    # ------------------------------------------------------------------ checkpoints
    def save(self, directory: str | Path) -> Path:
        tensors = {f"model.{k}": v for k, v in self.model.net.state_dict().items()}
        tensors["model.elite_idx"] = torch.as_tensor(self.model.elite_idx, dtype=torch.int64)
        mcfg = asdict(self.model.cfg)
        mcfg["hidden"] = list(mcfg["hidden"])
        return save_checkpoint(directory, kind="planner", tensors=tensors, contract=self.contract,
                               config={"planner": asdict(self.cfg), "world_model": mcfg,
                                       "neutral_action": self.neutral.tolist()})


@register_policy("planner")
class _PlannerCheckpoint:
    """Loader for planner checkpoints (``load_policy`` dispatches here on kind "planner")."""

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> Planner:
        mcfg = dict(ckpt.config["world_model"])
        mcfg["hidden"] = tuple(mcfg["hidden"])
        model = EnsembleWorldModel(ckpt.contract.obs_size, ckpt.contract.action_size, EnsembleConfig(**mcfg))
        elite = ckpt.tensor("model.elite_idx")
        state = {k: v for k, v in ckpt.state_dict("model.").items() if k != "elite_idx"}
        model.net.load_state_dict(state)
        model.elite_idx, model.fitted = elite.numpy(), True
        return Planner(model, ckpt.contract, PlannerConfig(**ckpt.config["planner"]),
                       neutral_action=np.asarray(ckpt.config["neutral_action"]))
