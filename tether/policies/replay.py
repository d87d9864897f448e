"""ActionReplayPolicy: a checkpointed sequence of normalised actions played back one per tick.

Why it exists: to push a fixed, known command sequence through the exact deploy path (contract check, guard,
loop, adapter, wire, recorder) - replaying a dataset's actions on a robot for system identification, an
open-loop excitation signal, or a deliberately hostile sequence (NaN, +/-1e9) that proves the guard keeps
every command inside the limits. It is a real Policy (``act``/``reset``/``save``) stored as safetensors +
JSON like every other checkpoint, so ``tether deploy`` loads it through ``load_policy``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from tether.contract import IOContract
from tether.errors import TetherError
from tether.policies.checkpoint import Checkpoint, register_policy, register_policy_module, save_checkpoint

KIND = "action_replay"


@register_policy(KIND)
class ActionReplayPolicy:
    """``act`` ignores the observation and returns row ``k`` of ``actions`` (cycling); ``reset`` rewinds."""

    def __init__(self, contract: IOContract, actions: np.ndarray) -> None:
        a = np.asarray(actions, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != contract.action_size or a.shape[0] < 1:
            raise TetherError(f"actions have shape {a.shape}; expected (T >= 1, {contract.action_size})")
        self.contract = contract
        self.actions = a
        self._k = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        batch = obs.shape[0] if obs.ndim == 2 else None
        a = self.actions[self._k % len(self.actions)]
        self._k += 1
        return np.repeat(a[None], batch, axis=0) if batch is not None else a.copy()

    def reset(self) -> None:
        self._k = 0

    def save(self, directory: str | Path) -> Path:
        return save_checkpoint(directory, kind=KIND, tensors={"actions": torch.from_numpy(self.actions.copy())},
                               config={"length": int(len(self.actions))}, contract=self.contract)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> ActionReplayPolicy:
        return cls(ckpt.contract, ckpt.tensor("actions").numpy())


register_policy_module(KIND, __name__)


def replay_from(contract: IOContract, actions: Any) -> ActionReplayPolicy:
    return ActionReplayPolicy(contract, np.asarray(actions, dtype=np.float64))
