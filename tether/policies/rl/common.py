"""Pieces PPO and SAC share: config parsing with clear errors, env factories from a TrainSpec, DR provenance.

Why: both trainers accept the same forms of input (an env id string or a factory; a dict of overrides from
``--set key=value``) and must record the same provenance (contract, DR terms) in their checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np
import torch

from tether.contract import IOContract
from tether.errors import TetherError
from tether.policies.envs import env_contract, make_env
from tether.policies.gaussian import GaussianPolicy

C = TypeVar("C")

EnvSource = str | Callable[[], gym.Env]


def config_from_dict(cls: type[C], overrides: Mapping[str, Any] | None, what: str) -> C:
    """Build a dataclass config, coercing strings from the CLI and naming unknown keys."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if key not in fields:
            raise TetherError(f"unknown {what} option {key!r}; expected one of {', '.join(sorted(fields))}")
        default = getattr(cls(), key)  # type: ignore[call-arg]
        if isinstance(value, str) and not isinstance(default, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise TetherError(f"{what} option {key}={value!r}; expected a JSON value like {default!r}") from None
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = _checked_option(what, key, value, default)
    return cls(**kwargs)  # type: ignore[call-arg]


def _checked_option(what: str, key: str, value: Any, default: Any) -> Any:
    """An option override of the default's kind (bool, whole number, number, list, text) with finite numbers:
    ``--set lr=nan`` or ``--set num_envs=2.5`` is refused here, before any training starts."""
    import math
    import numbers

    def bad(expected: str) -> TetherError:
        return TetherError(f"{what} option {key}={value!r}; expected {expected} like {default!r}")

    if isinstance(default, bool):
        if not isinstance(value, (bool, np.bool_)):
            raise bad("true or false")
    elif isinstance(default, numbers.Integral):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise bad("a whole number")
    elif isinstance(default, numbers.Real):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
            raise bad("a finite number")
    elif isinstance(default, (tuple, list)):
        if not isinstance(value, (tuple, list)):
            raise bad("a list")
        if any(isinstance(v, float) and not math.isfinite(v) for v in value):
            raise bad("a list of finite numbers")
    elif isinstance(value, float) and not math.isfinite(value):
        raise bad("a finite number")
    return value


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=list))


def env_factory(env: EnvSource, **kwargs: Any) -> Callable[[], gym.Env]:
    if isinstance(env, str):
        return lambda: make_env(env, **kwargs)
    if callable(env):
        return env
    raise TetherError(f"env is a {type(env).__name__}; expected an env id string or a factory returning an env")


@dataclass(frozen=True)
class EnvInfo:
    contract: IOContract
    privileged_size: int
    dr_terms: list[Any] | None
    neutral_action: np.ndarray | None  # normalised action that holds the robot still (hover thrust, PD hold)


def make_vec_env(env: EnvSource, num_envs: int, *, executor: str = "inprocess",
                 executor_options: Mapping[str, Any] | None = None, **env_kwargs: Any) -> tuple[Any, EnvInfo]:
    """The batched envs a trainer steps (``tether.sim.vector``) and what it needs to know about them.

    ``tether/`` ids run on the batched core (executor by name: in-process, processes, Ray); plain Gymnasium
    ids and factories run through the same vector API one env at a time.
    """
    from tether.sim.vector import make_vec

    options = dict(executor_options or {})
    autoreset = env_kwargs.pop("autoreset", True)  # plain envs always autoreset; callers ignore what follows
    if isinstance(env, str) and env.startswith("tether/"):
        kwargs = {k: v for k, v in env_kwargs.items() if v is not None}
        venv = make_vec(env, num_envs, executor=executor, autoreset=autoreset, **kwargs, **options)
        contract = venv.contract
        neutral = venv.neutral_action
    else:
        venv = make_vec(env_factory(env, **env_kwargs), num_envs)
        probe = venv.executor.envs[0]
        contract = env_contract(probe, env if isinstance(env, str) else None)
        neutral = neutral_action_of(probe, contract)
    dr = _jsonable_terms(venv.dr_terms) if venv.dr_terms is not None else dr_terms_of(venv.executor.envs[0])
    return venv, EnvInfo(contract, contract.privileged_size, dr, neutral)


def probe_env(factory: Callable[[], gym.Env]) -> EnvInfo:
    """Contract, privileged obs size, DR terms and neutral action of the env a factory builds."""
    env = factory()
    try:
        spec_id = env.spec.id if env.spec is not None else None
        contract = env_contract(env, spec_id)
        dr = dr_terms_of(env)
        neutral = neutral_action_of(env, contract)
    finally:
        env.close()
    return EnvInfo(contract, contract.privileged_size, dr, neutral)


def neutral_action_of(env: gym.Env, contract: IOContract) -> np.ndarray | None:
    """The task's neutral command, normalised, if the env exposes one (tether tasks do)."""
    base = env.unwrapped
    fn = getattr(base, "neutral_action", None) or getattr(getattr(base, "task", None), "neutral_action", None)
    if fn is None:
        return None
    try:
        physical = np.asarray(fn() if callable(fn) else fn, dtype=np.float64)
        if physical.shape != (contract.action_size,):
            return None
        return np.clip(contract.to_normalised(physical), -1.0, 1.0).astype(np.float32)
    except (TypeError, ValueError):
        return None


def set_action_bias(policy: GaussianPolicy, neutral: np.ndarray | None, limit: float = 0.9) -> None:
    """Start a policy's mean at the neutral action (e.g. hover thrust) instead of the middle of the range.

    Why: for a quadrotor the middle of the thrust range is far from hover, and an untrained policy that flies
    away every episode wastes most of a small training budget before it has learned to stay in the air.
    """
    if neutral is None:
        return
    head = policy.net[-1]
    a = policy.contract.action_size
    target = torch.as_tensor(np.clip(neutral, -limit, limit), dtype=head.bias.dtype)
    if policy.config["squash"] == "tanh":
        target = torch.atanh(target)
    with torch.no_grad():
        head.bias[:a] = target


def dr_terms_of(env: gym.Env) -> list[Any] | None:
    """The DR terms an env samples from, as JSON-able data (opaque here; the sim module defines their shape)."""
    base = env.unwrapped
    for attr in ("dr_terms", "randomization_terms"):
        terms = getattr(base, attr, None)
        if terms is not None:
            return _jsonable_terms(terms)
    rnd = getattr(base, "randomizer", None) or getattr(base, "dr", None)
    if rnd is not None:
        for attr in ("to_list", "to_dict", "terms"):
            v = getattr(rnd, attr, None)
            if v is not None:
                return _jsonable_terms(v() if callable(v) else v)
    return None


def _jsonable_terms(terms: Any) -> list[Any]:
    if isinstance(terms, Mapping):
        terms = [terms]
    out = []
    for t in terms:
        if hasattr(t, "to_dict"):
            t = t.to_dict()
        elif dataclasses.is_dataclass(t) and not isinstance(t, type):
            t = dataclasses.asdict(t)
        out.append(json.loads(json.dumps(t, default=str)))
    return out
