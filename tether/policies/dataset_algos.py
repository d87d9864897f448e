"""``tether train ENV --algo bc-diffusion|bc-flow|bc-mlp|iql|dql|ofql --dataset DIR``: trainers that read a dataset.

Why a separate module: the learners themselves take plain arrays (so tests and other areas can feed them from
anywhere); this file is only the glue from a ``TrainSpec`` to them: open the dataset, check its contract
against the env's (a dataset recorded with different fields or units must never be silently reinterpreted),
split ``--set`` overrides into policy options and training options, and report progress to the run.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.contract import IOContract
from tether.errors import TetherError

if TYPE_CHECKING:
    from tether.policies.gaussian import GaussianPolicy

_FIT_KEYS = ("batch_size", "lr", "weight_decay", "ema_decay")  # the generative learners' fit options


def _open(spec: Any) -> tuple[IOContract, Any]:
    from tether.data.dataset import Dataset
    from tether.policies.envs import env_contract, make_env

    if not spec.dataset:
        raise TetherError(f"--algo {spec.algo} trains from a dataset; pass --dataset DIR "
                          f"(record one with `tether demos {spec.env_id}`)")
    ds = Dataset(spec.dataset)
    env = make_env(spec.env_id, backend=spec.backend, dr=spec.dr)
    try:
        contract = env_contract(env, spec.env_id)
    finally:
        env.close()
    if ds.contract is not None:
        from tether.contract import ContractError

        try:
            ds.contract.check_compatible(contract, what="env")
        except ContractError as exc:
            raise TetherError(f"--dataset {spec.dataset} was recorded for another robot or task: {exc}") from None
    if len(ds) == 0:
        raise TetherError(f"dataset {spec.dataset} has no frames; expected recorded episodes")
    return contract, ds


def _logger(run: Any, prefix: str = "train/") -> Any:
    def log(step: int, metrics: dict[str, float]) -> None:
        run.log(step, {k if "/" in k else prefix + k: v for k, v in metrics.items()})
        run.advance(step)

    return log


def _train_bc(spec: Any, run: Any, policy_cls: Any, fit_keys: tuple[str, ...] = _FIT_KEYS) -> Any:
    """Behaviour cloning on the dataset, then ``--set dagger_rounds=N`` rounds of DAgger in the env under its
    DR (``tether.policies.dagger``; the task's scripted expert labels the states the policy reaches)."""
    import torch

    from tether.policies.dagger import DaggerConfig, dagger

    overrides = dict(spec.config)
    fit_kwargs = {k: overrides.pop(k) for k in fit_keys if k in overrides}  # the rest are the policy's to check
    rounds = DaggerConfig.pop_from(overrides)
    rounds.check_env(spec.env_id)  # before any work, not after the cloning
    contract, ds = _open(spec)
    overrides.setdefault("seed", spec.seed)
    torch.manual_seed(int(spec.seed))  # the initial weights: the same seed and data give the same policy
    policy = policy_cls(contract, overrides)
    run.set_policy(policy)
    obs, actions, episodes = ds.episode_arrays()
    run.set_total(spec.steps or 5000)
    policy.fit(obs, actions, episodes, steps=run.total, seed=spec.seed, log=_logger(run),
               **{k: (float(v) if k != "batch_size" else int(v)) for k, v in fit_kwargs.items()})
    if rounds.rounds:
        with tempfile.TemporaryDirectory(prefix="tether-dagger-") as tmp:  # no run folder: nothing is kept
            dagger(policy, spec.env_id, (obs, actions, episodes), rounds,
                   Path(tmp) if spec.out is None else Path(spec.out) / "dagger", dr=spec.dr, backend=spec.backend,
                   seed=spec.seed, log=print)
    policy.extra.update({"algo": spec.algo, "dataset": str(spec.dataset), "dagger": rounds.as_extra()})
    return policy


def train_bc_diffusion_cli(spec: Any, run: Any) -> Any:
    from tether.policies.diffusion import DiffusionPolicy

    return _train_bc(spec, run, DiffusionPolicy)


@dataclass
class BCMLPConfig:
    """``--set`` options of ``bc-mlp`` (training options such as ``batch_size`` and ``lr`` go to the fit)."""

    history: int = 4  # observations the actor reads, oldest first
    hidden: tuple[int, ...] = (256, 256)  # layer widths


def bc_mlp_policy(contract: IOContract, overrides: dict[str, Any]) -> GaussianPolicy:
    """The ``bc-mlp`` learner: a deterministic MLP (the Gaussian actor's tanh mean, ELU layers) over a window of
    ``history`` observations, regressed onto the demonstrated actions; it deploys and exports as any PPO actor
    does. Why beside diffusion: an expert that is one function of what it sees has no second mode to keep, and
    regression learns the conditional mean, where a diffusion sampler can draw any action the labels hold. On the
    legged trot's 300 demonstrations under the ``default`` DR (40k steps) it tracked as often as the pipeline's
    diffusion student (75 % nominal and 21 % at mass x1.2, against 83 % and 21 %; 24 PyBullet episodes) in 3.2
    min against 6.7. Under a mass DR of 0.8-1.2 with a 12-observation window it walked the heavy A1 in 16 of 56
    episodes, where a diffusion student of the same demonstrations walked it in 4 of 24 and the pipeline's in 9
    of 56 (benchmarks/RESULTS.md, "A regression student of the trot")."""
    from tether.policies.gaussian import GaussianPolicy
    from tether.policies.networks import mlp_config
    from tether.policies.rl.common import config_from_dict

    cfg = config_from_dict(BCMLPConfig, {k: v for k, v in overrides.items() if k != "seed"}, "bc-mlp")
    if not cfg.hidden or not all(1 <= h <= 4096 for h in cfg.hidden):
        raise TetherError(f"bc-mlp option hidden={list(cfg.hidden)!r}; expected layer widths 1..4096 like [256, 256]")
    return GaussianPolicy(contract, {"net": mlp_config(cfg.hidden, "elu", False), "history": cfg.history})


def train_bc_mlp_cli(spec: Any, run: Any) -> Any:
    return _train_bc(spec, run, bc_mlp_policy, fit_keys=("batch_size", "lr"))  # what GaussianPolicy.fit takes


def train_bc_flow_cli(spec: Any, run: Any) -> Any:
    from tether.policies.flow import FlowPolicy

    return _train_bc(spec, run, FlowPolicy)


def _train_offline(spec: Any, run: Any, algo: str, config_cls: type, train: Any) -> Any:
    """Train an offline learner on ``spec``'s dataset; ``train(contract, data, cfg, seed=, log=)`` returns the
    deployable policy, which records the algorithm and the dataset."""
    from tether.policies.offline.common import OfflineData
    from tether.policies.rl.common import config_from_dict

    contract, ds = _open(spec)
    data = OfflineData.from_transitions(ds.to_transitions())
    cfg = config_from_dict(config_cls, spec.config, algo)
    if spec.steps:
        cfg.steps = int(spec.steps)
    policy = train(contract, data, cfg, seed=spec.seed, log=_logger(run))
    policy.extra.update({"algo": algo, "dataset": str(spec.dataset)})
    return policy


def train_iql_cli(spec: Any, run: Any) -> Any:
    from tether.policies.offline.iql import IQLConfig, train_iql

    return _train_offline(spec, run, "iql", IQLConfig, lambda *a, **kw: train_iql(*a, **kw).policy)


def train_dql_cli(spec: Any, run: Any) -> Any:
    from tether.policies.offline.dql import DQL, DQLConfig

    return _train_offline(spec, run, "dql", DQLConfig, lambda *a, **kw: DQL.train(*a, **kw)[0])


def train_ofql_cli(spec: Any, run: Any) -> Any:
    from tether.policies.offline.ofql import OFQL, OFQLConfig

    return _train_offline(spec, run, "ofql", OFQLConfig, lambda *a, **kw: OFQL.train(*a, **kw)[0])


__all__ = ["train_bc_diffusion_cli", "train_bc_flow_cli", "train_dql_cli",
           "train_iql_cli", "train_ofql_cli"]
