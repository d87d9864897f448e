"""Evaluation fanned out to a Ray cluster: contiguous blocks of episodes, one per worker, same seeds as local.

Checkpoints cross the wire as the bytes of their safetensors + JSON files (validated on the driver, re-validated
by ``load_policy`` in each worker), never as pickled policy objects.
"""

from __future__ import annotations

import functools
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tether.errors import TetherError
from tether.scale.cluster import _import_ray, cluster_cpus, get, ray_for


def checkpoint_bytes(checkpoint_dir: str | Path) -> dict[str, bytes]:
    """Every file of the checkpoint (manifest-verified here first, so errors name the driver's path)."""
    from tether.policies.checkpoint import checkpoint_files

    return checkpoint_files(checkpoint_dir)


def _eval_chunk(files: dict[str, bytes], env_id: str, start: int, count: int, seed: int, backend: str | None,
                dr: str | None, env_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """Episodes ``start .. start+count-1`` (reset seeds ``seed+start ...``), run in a Ray worker."""
    import torch

    from tether.policies.checkpoint import load_policy
    from tether.policies.evaluation import evaluate_policy

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="tether-ckpt-") as tmp:
        for name, data in files.items():  # relative paths from a verified manifest (no '..', no absolute)
            (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / name).write_bytes(data)
        policy = load_policy(tmp)
    r = evaluate_policy(policy, env_id, episodes=count, seed=seed + start, backend=backend, dr=dr,
                        env_kwargs=env_kwargs)
    import ray

    return {"returns": [float(x) for x in r.returns], "lengths": [int(x) for x in r.lengths],
            "successes": None if r.successes is None else [bool(x) for x in r.successes],
            "where": {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
                      "pid": os.getpid(), "episodes": [start, start + count]}}


@functools.cache
def _eval_task() -> Any:
    return _import_ray().remote(num_cpus=1)(_eval_chunk)


def evaluate(
    checkpoint_dir: str | Path,
    env_id: str | None = None,
    episodes: int = 10,
    address: str | None = None,
    *,
    seed: int = 0,
    backend: str | None = None,
    dr: str | None = None,
    num_workers: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> Any:
    """Evaluate a checkpoint on the cluster; returns the same :class:`EvalResult` local evaluation would.

    Episodes are split into contiguous blocks, one per worker (default: one per cluster CPU); block ``[a, b)``
    runs with reset seeds ``seed+a .. seed+b-1``, so every episode sees the seed it would see locally and the
    per-episode returns match ``evaluate_policy`` exactly for policies whose ``act`` is deterministic and
    stateless across episodes. ``extra["workers"]`` says where each block ran.
    """
    from tether.policies.checkpoint import load_checkpoint, recorded_env_id
    from tether.policies.evaluation import EvalResult

    if episodes < 1:
        raise TetherError(f"episodes={episodes}; expected >= 1")
    if env_id is None:
        ckpt = load_checkpoint(checkpoint_dir)
        env_id = recorded_env_id(ckpt)  # from a file: only a registered tether/ id
        if not env_id:
            raise TetherError(f"checkpoint {checkpoint_dir} does not record its env; pass env_id")
    files = checkpoint_bytes(checkpoint_dir)
    ray = ray_for(address)
    k = min(episodes, num_workers if num_workers is not None else max(cluster_cpus(ray), 1))
    if k < 1:
        raise TetherError(f"num_workers={num_workers}; expected >= 1")
    blocks = [b for b in np.array_split(np.arange(episodes), k) if len(b)]
    ref = ray.put(files)
    task = _eval_task()
    futures = [task.options(scheduling_strategy="SPREAD").remote(ref, env_id, int(b[0]), len(b), int(seed), backend,
                                                                 dr, env_kwargs) for b in blocks]
    parts = get(ray, futures, f"evaluating {checkpoint_dir} on {env_id}")
    successes = None if any(p["successes"] is None for p in parts) else np.asarray(
        [s for p in parts for s in p["successes"]])
    return EvalResult(np.asarray([x for p in parts for x in p["returns"]]),
                      np.asarray([x for p in parts for x in p["lengths"]]), successes,
                      extra={"workers": [p["where"] for p in parts], "env_id": env_id})
