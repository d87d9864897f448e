"""Making training/evaluation envs and their IOContracts, for tether envs and plain Gymnasium Box envs alike.

Why: trainers and the CLI take an env id string. Tether ids ("tether/...") need ``import tether.sim`` and accept
``backend``/``dr``; plain Gymnasium envs (Pendulum-v1, used where the robot tasks are not needed) have no contract,
so ``contract_from_env`` describes their Box spaces as one observation field and one action field, and
``make_env`` rescales their actions to [-1, 1] so every policy in Tether sees the same action convention.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from tether.contract import Field, IOContract
from tether.errors import TetherError


def _is_tether_id(env_id: str) -> bool:
    return env_id.startswith("tether/")


def make_env(
    env_id: str,
    *,
    backend: str | None = None,
    dr: str | None = None,
    render_mode: str | None = None,
    **kwargs: Any,
) -> gym.Env:
    """Build one env. Non-tether Box envs get actions rescaled to [-1, 1] (RescaleAction).

    Gymnasium's ``module:id`` form (which imports ``module``) is refused: no id, typed or read, picks code."""
    if not isinstance(env_id, str) or ":" in env_id:
        raise TetherError(f"env id {env_id!r} names a module to import (module:id); expected a registered env id")
    if _is_tether_id(env_id):
        import tether.sim  # noqa: F401  (registers the tether/* ids)

        if backend is not None:
            kwargs["backend"] = backend
        if dr is not None:
            kwargs["dr"] = dr
    elif backend not in (None, "gymnasium") or dr not in (None, "none"):
        raise TetherError(f"env {env_id!r} is a plain Gymnasium env; --backend/--dr apply only to tether/* envs")
    try:
        env = gym.make(env_id, render_mode=render_mode, **kwargs)
    except gym.error.Error as exc:
        known = sorted(k for k in gym.registry if k.startswith("tether/"))
        raise TetherError(f"cannot make env {env_id!r} ({exc}); tether envs are {known}") from None
    if not isinstance(env.action_space, gym.spaces.Box) or not isinstance(env.observation_space, gym.spaces.Box):
        raise TetherError(f"env {env_id!r} has {env.observation_space} / {env.action_space}; expected Box spaces")
    if env.observation_space.shape is None or len(env.observation_space.shape) != 1:
        raise TetherError(f"env {env_id!r} observation shape {env.observation_space.shape}; expected a flat vector")
    if not _is_tether_id(env_id) and not hasattr(env.unwrapped, "contract"):
        lo, hi = env.action_space.low, env.action_space.high
        if not (np.allclose(lo, -1.0) and np.allclose(hi, 1.0)):
            ones = np.ones(env.action_space.shape, dtype=np.float32)
            env = gym.wrappers.RescaleAction(env, -ones, ones)
    return env


def env_contract(env: gym.Env, env_id: str | None = None) -> IOContract:
    """The env's own contract if it has one, else one derived from its spaces."""
    contract = getattr(env.unwrapped, "contract", None)
    if isinstance(contract, IOContract):
        return contract
    return contract_from_env(env, env_id)


def contract_from_env(env: gym.Env, env_id: str | None = None) -> IOContract:
    """Describe a plain Box env: one "obs" field, one "action" field with the *unwrapped* physical limits.

    Units are unknown for a generic env, so they are recorded as "" and the control mode as joint_torque (the
    closest generic meaning: the action is applied directly as a force-like command).
    """
    base = env.unwrapped
    obs_space, act_space = base.observation_space, base.action_space
    if not isinstance(act_space, gym.spaces.Box) or not isinstance(obs_space, gym.spaces.Box):
        raise TetherError(f"env has {obs_space} / {act_space}; expected Box observation and action spaces")
    env_id = env_id or (env.spec.id if env.spec is not None else type(base).__name__)
    n_obs = int(np.prod(obs_space.shape))
    n_act = int(np.prod(act_space.shape))
    low = np.where(np.isfinite(act_space.low), act_space.low, -1.0).reshape(-1)
    high = np.where(np.isfinite(act_space.high), act_space.high, 1.0).reshape(-1)
    dt = getattr(base, "dt", None)
    rate = 1.0 / float(dt) if dt else float(base.metadata.get("render_fps", 0) or 1.0)
    return IOContract(
        robot=f"gym:{env_id}",
        task=env_id,
        observations=(Field.make("obs", n_obs, ""),),
        actions=(Field.make("action", n_act, "", low=low, high=high),),
        control_mode="joint_torque",
        rate_hz=rate,
        metadata={"source": "gymnasium", "env_id": env_id},
    )


def episode_success(info: dict[str, Any]) -> bool | None:
    """The success flag an env reports at episode end (``is_success`` or ``success``), None if it has none."""
    for key in ("is_success", "success"):
        if key in info:
            return bool(np.asarray(info[key]).item())
    return None
