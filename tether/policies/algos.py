"""Training-algorithm registry behind ``tether train --algo NAME``.

Why a registry with lazy "module:function" entries: the CLI must list every algorithm in ``--help`` without
importing torch-heavy trainers, and each area (RL, imitation, offline RL, world models, hybrid) registers its own
algorithms beside its code. A trainer has the signature ``fn(spec: TrainSpec, run: TrainingRun) -> Policy``;
it calls ``run.set_policy`` as soon as a policy exists (so Ctrl-C can save it), ``run.log``/``run.advance``
while training and ``run.maybe_evaluate`` periodically; ``run_training`` saves the final checkpoint.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from tether.errors import TetherError

TrainFn = Callable[..., Any]

#: algorithms that learn by imitating demonstrations (a pipeline gives them the task's scripted expert's)
IMITATION_ALGOS = ("bc-diffusion", "bc-flow", "bc-mlp")

_ALGORITHMS: dict[str, TrainFn | str] = {}
_DESCRIPTIONS: dict[str, str] = {}

# Built-in trainers, imported only when chosen. Other areas add their line here or call register_algorithm.
_BUILTIN: dict[str, tuple[str, str]] = {
    "ppo": ("tether.policies.rl.ppo:train_ppo_cli", "PPO (vectorised envs, GAE, privileged critic)"),
    "sac": ("tether.policies.rl.sac:train_sac_cli", "SAC (twin critics, auto-entropy, LayerNorm/UTD options)"),
    # imitation and offline RL from --dataset (tether.policies.dataset_algos)
    "bc-diffusion": ("tether.policies.dataset_algos:train_bc_diffusion_cli", "diffusion policy BC from --dataset"),
    "bc-flow": ("tether.policies.dataset_algos:train_bc_flow_cli", "flow-matching policy BC from --dataset"),
    "bc-mlp": ("tether.policies.dataset_algos:train_bc_mlp_cli", "deterministic MLP BC (regression) from --dataset"),
    "iql": ("tether.policies.dataset_algos:train_iql_cli", "offline IQL (expectile V, AWR actor) from --dataset"),
    "dql": ("tether.policies.dataset_algos:train_dql_cli", "offline Diffusion-QL from --dataset"),
    "ofql": ("tether.policies.dataset_algos:train_ofql_cli", "offline one-step flow Q-learning from --dataset"),
    "h2o": ("tether.policies.hybrid.h2o:train_h2o_cli", "H2O: real --dataset + sim rollouts, dynamics-gap weighted"),
    "rlpd": ("tether.policies.hybrid.rlpd:train_rlpd_cli", "RLPD: --dataset and online data 50/50, LayerNorm Q ensemble"),
    # world models (tether.world_models.algos)
    "mbpo": ("tether.world_models.algos:train_mbpo_cli", "MBPO: SAC on short ensemble-model rollouts from real states"),
    "mppi": ("tether.world_models.algos:train_mppi_cli", "MPPI/CEM planner over an ensemble fitted to collected data"),
    "offline-mbrl": ("tether.world_models.algos:train_offline_mbrl_cli",
                     "offline model-based RL from --dataset with RAVL critics (edge-of-reach safe)"),
}


def register_algorithm(name: str, fn: TrainFn | str, *, description: str = "") -> None:
    """Register ``fn(spec, run) -> policy`` (or a lazy "package.module:function" path) under ``name``."""
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise TetherError(f"algorithm name {name!r}; expected letters, digits, '-' or '_'")
    if isinstance(fn, str) and ":" not in fn:
        raise TetherError(f"lazy algorithm path {fn!r}; expected 'package.module:function'")
    _ALGORITHMS[name] = fn
    if description:
        _DESCRIPTIONS[name] = description


for _name, (_path, _desc) in _BUILTIN.items():
    register_algorithm(_name, _path, description=_desc)


def available_algorithms() -> dict[str, str]:
    """name → one-line description, without importing any trainer."""
    return {n: _DESCRIPTIONS.get(n, "") for n in sorted(_ALGORITHMS)}


def get_algorithm(name: str) -> TrainFn:
    try:
        fn = _ALGORITHMS[name]
    except KeyError:
        raise TetherError(f"unknown algorithm {name!r}; expected one of {', '.join(sorted(_ALGORITHMS))}") from None
    if isinstance(fn, str):
        module, attr = fn.split(":", 1)
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise TetherError(f"algorithm {name!r} is registered as {module}:{attr}, which cannot be loaded ({exc})") \
                from None
        _ALGORITHMS[name] = fn
    return fn
