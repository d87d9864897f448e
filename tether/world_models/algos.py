"""``tether train ENV --algo mbpo | mppi | offline-mbrl``: the world-model trainers behind the algorithm registry.

``--set`` options go to the trainer's config; ``sac.X=...`` and ``model.X=...`` reach the SAC and ensemble
sub-configs. When the env has a known task reward (tether.world_models.rewards) it is used unless
``--set reward=null`` says otherwise. Each trainer also saves its world model next to the checkpoint
(``OUT/world_model``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tether.errors import TetherError
from tether.policies.rl.common import config_from_dict
from tether.world_models.ensemble import EnsembleConfig, EnsembleWorldModel
from tether.world_models.mbrl import MBPOConfig, OfflineMBRLConfig, train_mbpo, train_offline_mbrl


def _reward_option(config: Mapping[str, Any], default: str | None) -> str | None:
    """``--set reward=NAME`` (a task reward), ``reward=null`` (the model's head), or the env's known reward."""
    if "reward" not in config:
        return default
    value = config["reward"]
    return None if value in (None, "null", "none", "") else str(value)


def _split(spec_config: Mapping[str, Any], cls: type) -> Any:
    """``--set`` options: fields of the trainer config, ``sac.X=...`` and ``model.X=...`` into the sub-dicts."""
    spec_config = {k: v for k, v in spec_config.items() if k != "reward"}
    top: dict[str, Any] = {}
    subs: dict[str, dict[str, Any]] = {"sac": {}, "model": {}}
    for k, v in spec_config.items():
        head, _, rest = k.partition(".")
        if rest and head in subs:
            subs[head][rest] = v
        else:
            top[k] = v
    cfg = config_from_dict(cls, top, cls.__name__)
    for name, extra in subs.items():
        if extra:
            if not hasattr(cfg, name):
                raise TetherError(f"{cls.__name__} has no {name!r} options; got {sorted(extra)}")
            setattr(cfg, name, {**getattr(cfg, name), **extra})
    return cfg


def train_mbpo_cli(spec: Any, run: Any) -> Any:
    """``tether train ENV --algo mbpo`` entry."""
    from tether.world_models.rewards import ENV_REWARDS

    cfg = _split(spec.config, MBPOConfig)
    cfg.reward = _reward_option(spec.config, ENV_REWARDS.get(spec.env_id))
    run.set_total(spec.steps or 5000)
    learner = train_mbpo(spec.env_id, run.total, cfg, seed=spec.seed, run=run,
                         env_kwargs={"backend": spec.backend, "dr": spec.dr})
    if spec.out is not None:
        learner.model.save(spec.out / "world_model")
    return learner.policy


def train_offline_mbrl_cli(spec: Any, run: Any) -> Any:
    """``tether train ENV --algo offline-mbrl --dataset DIR``: fit an ensemble on the dataset, then RAVL."""
    from tether.data.replay import load_transitions
    from tether.policies.envs import env_contract, make_env
    from tether.world_models.rewards import ENV_REWARDS

    if not spec.dataset:
        raise TetherError("offline-mbrl trains from a dataset; pass --dataset DIR")
    cfg = _split({k: v for k, v in spec.config.items() if not k.startswith("model.")}, OfflineMBRLConfig)
    cfg.reward = _reward_option(spec.config, ENV_REWARDS.get(spec.env_id))
    env = make_env(spec.env_id, backend=spec.backend, dr=spec.dr)
    try:
        contract = env_contract(env, spec.env_id)
    finally:
        env.close()
    data = load_transitions(spec.dataset, contract=contract)
    mcfg = config_from_dict(EnsembleConfig, {"seed": spec.seed, **_sub(spec.config, "model")}, "world model")
    model = EnsembleWorldModel(contract.obs_size, contract.action_size, mcfg)
    model.fit(data)
    if spec.out is not None:
        model.save(spec.out / "world_model")
    run.set_total(spec.steps or 50_000)
    learner = train_offline_mbrl(model, data, contract, run.total, cfg, seed=spec.seed, run=run)
    return learner.policy


def _sub(config: Mapping[str, Any], head: str) -> dict[str, Any]:
    return {k.split(".", 1)[1]: v for k, v in config.items() if k.startswith(head + ".")}


def _env_setup(spec: Any) -> tuple[Any, np.ndarray | None, str | None]:
    from tether.policies.rl.common import env_factory, probe_env
    from tether.world_models.rewards import ENV_REWARDS

    info = probe_env(env_factory(spec.env_id, backend=spec.backend, dr=spec.dr))
    return info.contract, info.neutral_action, ENV_REWARDS.get(spec.env_id)


def train_mppi_cli(spec: Any, run: Any) -> Any:
    """``--algo mppi``: collect ``--steps`` real transitions (scripted expert + noise where the env has one,
    else uniform random), fit an ensemble, and return an MPPI planner over it (``--set method=cem`` for CEM)."""
    from tether.policies.envs import make_env
    from tether.world_models.collect import collect_transitions
    from tether.world_models.planners import Planner, PlannerConfig

    contract, neutral, reward = _env_setup(spec)
    model_opts = _sub(spec.config, "model")
    planner_opts = {k: v for k, v in spec.config.items() if not k.startswith(("model.", "collect.")) and k != "reward"}
    collect_opts = _sub(spec.config, "collect")
    pcfg = config_from_dict(PlannerConfig, planner_opts, "planner")
    pcfg.reward = _reward_option(spec.config, reward)
    env = make_env(spec.env_id, backend=spec.backend, dr=spec.dr)
    has_expert = hasattr(env.unwrapped, "expert_action")
    env.close()
    policy = str(collect_opts.get("policy", "expert" if has_expert else "random"))
    noise = collect_opts.get("noise", (0.1, 0.6) if policy == "expert" else (0.0, 0.0))
    if isinstance(noise, str):
        import json

        try:
            noise = json.loads(noise)
        except json.JSONDecodeError:
            raise TetherError(f"collect.noise={noise!r}; expected a JSON pair like [0.1, 0.6]") from None
    noise = tuple(float(x) for x in (noise if isinstance(noise, (list, tuple)) else (noise, noise)))
    steps = spec.steps or 10_000
    run.set_total(steps)
    data = collect_transitions(spec.env_id, steps, policy=policy, noise=noise, seed=spec.seed,
                               env_kwargs={"backend": spec.backend, "dr": spec.dr})
    run.advance(steps)
    mcfg = config_from_dict(EnsembleConfig, {"members": 5, "elites": 3, "hidden": (128, 128), "seed": spec.seed,
                                             **model_opts}, "world model")
    model = EnsembleWorldModel(contract.obs_size, contract.action_size, mcfg)
    metrics = model.fit(data)
    run.log(steps, metrics)
    planner = Planner(model, contract, pcfg, neutral_action=neutral)
    planner.extra = {"algo": "mppi", "env_steps": steps, **metrics}
    run.set_policy(planner)
    return planner
