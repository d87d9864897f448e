"""The Policy protocol every trained controller in Tether implements.

Numpy in, numpy out, batched: ``obs`` is (B, obs_size) in the physical units of the policy's IOContract,
actions are (B, action_size) normalised to [-1, 1] (``contract.to_physical`` maps them to units). Chunked
policies (diffusion, flow) also implement ``act_chunk`` returning (B, horizon, action_size); the control loop
executes chunks with temporal ensembling. ``reset()`` clears per-episode state (observation history, queued
chunks). Checkpoints are directories of safetensors + JSON; see ``tether.policies.checkpoint``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from tether.contract import IOContract
from tether.errors import TetherError


def batch_observations(contract: IOContract, obs: np.ndarray, *, finite: bool = True) -> tuple[np.ndarray, bool]:
    """(B, obs_size) float32 observations and whether ``obs`` was a single (obs_size,) one.

    Why one check: every policy must refuse a wrong-sized observation with the same message naming the contract,
    rather than broadcast or slice it; ``finite`` also refuses NaN/inf (for samplers where it would spread).
    """
    arr = np.asarray(obs, dtype=np.float32)
    single = arr.ndim == 1
    if single:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != contract.obs_size:
        raise TetherError(f"observation has shape {np.shape(obs)}; expected (B, {contract.obs_size}) or "
                          f"({contract.obs_size},) for {contract.robot}/{contract.task}")
    if finite and not np.all(np.isfinite(arr)):
        raise TetherError("observation contains NaN/inf; expected finite values")
    return arr, single


def demonstration_arrays(contract: IOContract, obs: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float32 (N, obs_size) observations and (N, action_size) actions normalised to [-1, 1], checked: what every
    policy that learns from labelled steps (behaviour cloning, DAgger) takes."""
    actions = np.asarray(actions, dtype=np.float32)
    if actions.ndim != 2 or actions.shape[1] != contract.action_size:
        raise TetherError(f"actions have shape {actions.shape}; expected (N, {contract.action_size})")
    if np.abs(actions).max(initial=0.0) > 1.0 + 1e-5:
        raise TetherError(
            f"actions reach {np.abs(actions).max():.3f}; expected normalised actions in [-1, 1] "
            "(use contract.to_normalised)"
        )
    obs = np.asarray(obs, dtype=np.float32)
    if obs.ndim != 2 or obs.shape[1] != contract.obs_size:
        raise TetherError(f"obs have shape {obs.shape}; expected (N, {contract.obs_size})")
    return obs, actions


@runtime_checkable
class Actor(Protocol):
    """Anything that acts: what rollouts need (a scripted controller, an exploration wrapper, a policy)."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """(B, obs_size) physical observations -> (B, action_size) actions in [-1, 1]."""
        ...


@runtime_checkable
class Policy(Actor, Protocol):
    """A trained controller: it acts under the contract it was trained with, and is saved as a checkpoint."""

    contract: IOContract

    def reset(self) -> None:
        """Forget per-episode state (history buffers, queued action chunks)."""
        ...

    def save(self, directory: str | Path) -> None:
        """Write the checkpoint directory (safetensors + JSON, never pickle)."""
        ...


@runtime_checkable
class ChunkedPolicy(Policy, Protocol):
    horizon: int

    def act_chunk(self, obs: np.ndarray) -> np.ndarray:
        """(B, obs_size) -> (B, horizon, action_size) actions in [-1, 1]."""
        ...
