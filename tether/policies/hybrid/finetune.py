"""``finetune()``: one call from a sim-trained checkpoint and real-robot data to a fine-tuned checkpoint.

Why a single entry point: the pipeline, the CLI and notebooks all do the same thing — load the checkpoint
(its contract is the law: the real data and the simulator must match it), load and check the real data,
pick the simulator the checkpoint was trained in (with the DR terms it was trained under unless told
otherwise), run H2O or RLPD, and write a checkpoint whose extra JSON says where it came from: the parent
checkpoint, the real data, the simulator, its DR terms and the algorithm's settings.

Output layout when ``out`` is given (the same as ``tether train``)::

    OUT/checkpoint/   the fine-tuned policy     OUT/metrics.csv, OUT/tb/   the training curves
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tether.errors import TetherError
from tether.policies.base import Policy
from tether.policies.hybrid.common import EnvLike, ProgressFn, load_real

ALGOS = ("h2o", "rlpd", "robot-rl")


def _load_start(checkpoint: Any) -> tuple[Any, dict[str, Any]]:
    """(policy, description of the parent) from a checkpoint directory or an in-memory policy."""
    if isinstance(checkpoint, (str, Path)):
        from tether.policies.checkpoint import load_checkpoint, load_policy

        ckpt = load_checkpoint(checkpoint)
        policy = load_policy(checkpoint)
        parent = {"path": str(Path(checkpoint).resolve()), "kind": ckpt.kind, "weights_sha256": ckpt.weights_sha256,
                  "algo": ckpt.extra.get("algo"), "env_id": ckpt.extra.get("env_id")}
        return policy, parent
    if getattr(checkpoint, "contract", None) is None or not hasattr(checkpoint, "act"):
        raise TetherError(f"checkpoint is a {type(checkpoint).__name__}; expected a checkpoint directory or a policy")
    extra = getattr(checkpoint, "extra", {}) or {}
    return checkpoint, {"path": None, "kind": getattr(checkpoint, "kind", type(checkpoint).__name__),
                        "algo": extra.get("algo"), "env_id": extra.get("env_id")}


def trained_env(policy: Policy) -> str:
    """The env a policy was trained on, as its checkpoint records it: the simulator to pair it with."""
    from tether.sim.registry import env_id_from_file  # an id from a file: a registered tether/ id or nothing

    found = (getattr(policy, "extra", None) or {}).get("env_id") or policy.contract.metadata.get("env_id")
    if found is None:
        raise TetherError("the checkpoint does not record the env it was trained on; pass sim_env (--sim ENV_ID)")
    return env_id_from_file(found, "the checkpoint")


class _Logger:
    """metrics.csv + TensorBoard under ``out`` (when given), forwarding every row to the user's callback."""

    def __init__(self, out: Path | None, progress: ProgressFn | None) -> None:
        self.out, self.progress = out, progress
        self.rows: list[dict[str, float]] = []
        self.writer = None
        if out is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir=str(out / "tb"))
            except ImportError:
                self.writer = None

    def __call__(self, step: int, total: int, metrics: dict[str, float]) -> None:
        row = {"step": float(step), **{k: float(v) for k, v in metrics.items()}}
        self.rows.append(row)
        if self.writer is not None:
            for k, v in metrics.items():
                self.writer.add_scalar(k, float(v), step)
        if self.out is not None:
            keys: list[str] = []
            for r in self.rows:
                keys.extend(k for k in r if k not in keys)
            with open(self.out / "metrics.csv", "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=keys)
                w.writeheader()
                w.writerows(self.rows)
        if self.progress is not None:
            self.progress(step, total, metrics)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def finetune(
    checkpoint: Any,
    real: Any,
    sim_env: EnvLike | None = None,
    *,
    algo: str = "h2o",
    steps: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    online_env: EnvLike | None = None,
    config: Mapping[str, Any] | None = None,
    backend: str | None = None,
    dr: str | Sequence[Any] | None = None,
    reward_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
    progress: ProgressFn | None = None,
) -> Any:
    """Fine-tune ``checkpoint`` (a directory or a policy) with ``real`` data; returns the new policy.

    - ``real``: a dict of arrays (obs, action, reward, next_obs, terminal), a dataset directory or a rosbag2
      recording (converted with the checkpoint's contract; ``reward_fn(obs, action, next_obs)`` fills rewards).
    - ``sim_env``: env id or factory; default: the env the checkpoint was trained on. For ``h2o`` it is the
      simulator; for ``rlpd`` the env to interact with unless ``online_env`` (e.g. the robot) is given.
    - ``dr``: DR for a tether ``sim_env`` id: preset name or terms; default: the checkpoint's own DR terms.
    - ``steps``: env steps (default 6 000 for h2o, 5 000 for rlpd); ``config``: algorithm overrides on top of
      ``h2o.FINETUNE_DEFAULTS`` (conservative: BC-anchored actor, critic warm-up, held-out real selection).
    - ``algo="robot-rl"`` (:mod:`tether.policies.hybrid.robot_rl`): ``real`` is whole robot episodes (a deploy
      bag, or a folder of them, scored by the task's objective); the prior is simulated in ``sim_env`` under
      ``dr`` (pass the identified DR); ``steps`` counts gradient updates (default: ``utd`` per robot transition,
      at most ``max_updates``); ``config``: :class:`~tether.policies.hybrid.robot_rl.RobotRLConfig` overrides.
      One call is one round of the loop: deploy what it writes with exploration, record, call again with every
      bag so far (the critic is relearned from all of them each time).
    - ``out``: write ``out/checkpoint`` plus ``metrics.csv`` and TensorBoard logs.
    - ``progress(step, total, metrics)`` is called as training goes.
    """
    import torch

    if algo not in ALGOS:
        raise TetherError(f"unknown fine-tuning algorithm {algo!r}; expected one of {', '.join(ALGOS)}")
    if steps is not None and steps < 1:
        raise TetherError(f"steps={steps}; expected a positive number of env steps")
    policy, parent = _load_start(checkpoint)
    contract = policy.contract
    if algo == "robot-rl":  # whole robot episodes (a bag, or a folder of one bag per deployed episode)
        from tether.policies.hybrid.robot_rl import RobotRLConfig, load_robot_data
        from tether.policies.rl.common import config_from_dict

        if reward_fn is not None:
            raise TetherError("robot-rl scores robot episodes with the task's own objective; drop reward_fn")
        rl_config = config_from_dict(RobotRLConfig, config, "robot RL")
        rl_config.check()
        episodes, real_prov = load_robot_data(real, contract)
    else:
        tr, real_prov = load_real(real, contract, reward_fn=reward_fn)
    env = sim_env if sim_env is not None else trained_env(policy)
    env_desc = env if isinstance(env, str) else getattr(env, "__name__", type(env).__name__)
    env_kwargs: dict[str, Any] = {}
    if isinstance(env, str) and env.startswith("tether/"):
        terms = dr if dr is not None else getattr(policy, "dr_terms", None)
        env_kwargs = {"backend": backend, "dr": terms if terms is not None else "none"}
    elif dr is not None or backend is not None:
        if not isinstance(env, str):
            raise TetherError("dr/backend apply to a tether env id; a factory builds its env itself")
        env_kwargs = {"backend": backend, "dr": dr}
    out_path = Path(out) if out is not None else None
    if out_path is not None:
        out_path.mkdir(parents=True, exist_ok=True)
    logger = _Logger(out_path, progress)
    torch_threads = torch.get_num_threads()
    t0 = time.perf_counter()
    try:
        if algo == "h2o":
            from tether.policies.hybrid.h2o import FINETUNE_DEFAULTS, train_h2o

            n = steps or 6_000
            agent = train_h2o(env, tr, n, {**FINETUNE_DEFAULTS, **dict(config or {})}, seed=seed, policy=policy,
                              progress=logger, env_kwargs=env_kwargs)
            new = agent.policy
            online_desc = env_desc
        elif algo == "robot-rl":
            from tether.policies.hybrid.robot_rl import RobotRL

            learner = RobotRL.with_sim_prior(policy, env, rl_config, dr=env_kwargs.get("dr"),
                                             backend=backend, seed=seed)
            learner.add(episodes)
            learner.improve(steps, progress=logger)
            new, n = learner.policy, learner.updates
            online_desc = "the robot's recorded episodes"
        else:
            from tether.policies.hybrid.rlpd import train_rlpd

            n = steps or 5_000
            target = online_env if online_env is not None else env
            kwargs = env_kwargs if online_env is None else {}
            sac = train_rlpd(target, tr, n, dict(config or {}), seed=seed, policy=policy, progress=logger,
                             env_kwargs=kwargs)
            new = sac.policy
            online_desc = target if isinstance(target, str) else getattr(target, "__name__", type(target).__name__)
    finally:
        logger.close()
        torch.set_num_threads(torch_threads)
    new.extra.update({
        "finetuned_from": parent,
        "real_data": real_prov,
        "sim_env": env_desc,
        "online_env": online_desc,
        "env_id": env_desc if isinstance(env, str) else parent.get("env_id"),
        "backend": backend,
        "seed": seed,
        "steps": n,
        "finetune_time_s": time.perf_counter() - t0,
    })
    if new.dr_terms is None and getattr(policy, "dr_terms", None) is not None:
        new.dr_terms = policy.dr_terms
    if out_path is not None:
        new.save(out_path / "checkpoint")
    return new


__all__ = ["ALGOS", "finetune", "trained_env"]
