"""Physics engines behind one interface, so a robot and task run unchanged on MuJoCo, PyBullet or a later engine.

``BACKENDS`` maps an engine name to its single-world Backend class ("module:Class", imported lazily so that
using one engine never imports the other); ``make_batch`` gives the batched core's view of N worlds: MuJoCo's
native batch, or any single-world engine looped (:class:`~tether.sim.backends.loop_batch.LoopBatch`). A
GPU-parallel engine registers a batch class in ``BATCHES`` the same way.
"""

from __future__ import annotations

import importlib

from tether.errors import TetherError
from tether.sim.backends.base import Backend, BatchBackend
from tether.sim.robots.base import RobotSpec, Scene

BACKENDS: dict[str, str] = {
    "mujoco": "tether.sim.backends.mujoco_backend:MujocoBackend",
    "pybullet": "tether.sim.backends.pybullet_backend:PybulletBackend",
}
# Engines with a native batch; the others are looped.
BATCHES: dict[str, str] = {
    "mujoco": "tether.sim.backends.mujoco_batch:MujocoBatch",
}


def _load(ref: str):
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


def _check(name: str) -> None:
    if name not in BACKENDS:
        raise TetherError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")


def make_backend(name: str, robot: RobotSpec, scene: Scene) -> Backend:
    """One world on engine ``name``."""
    _check(name)
    return _load(BACKENDS[name])(robot, scene)


def make_batch(name: str, robot: RobotSpec, scene: Scene, n: int, threads: int | None = None) -> BatchBackend:
    """``n`` worlds on engine ``name`` behind the batched interface (``threads``: MuJoCo's worker threads)."""
    _check(name)
    if name in BATCHES:
        return _load(BATCHES[name])(robot, scene, n, threads=threads)
    from tether.sim.backends.loop_batch import LoopBatch

    cls = _load(BACKENDS[name])
    return LoopBatch(robot, scene, n, lambda: cls(robot, scene))
