"""Physics engines behind one interface, so a robot and task run unchanged on MuJoCo, PyBullet or a later engine.

``BACKENDS`` maps an engine name to its Backend class ("module:Class", imported lazily so that using one
engine never imports the other). A GPU-parallel engine registers here the same way.
"""

from __future__ import annotations

import importlib

from tether.errors import TetherError
from tether.sim.backends.base import Backend
from tether.sim.robots.base import RobotSpec, Scene

BACKENDS: dict[str, str] = {
    "mujoco": "tether.sim.backends.mujoco_backend:MujocoBackend",
    "pybullet": "tether.sim.backends.pybullet_backend:PybulletBackend",
}


def make_backend(name: str, robot: RobotSpec, scene: Scene) -> Backend:
    if name not in BACKENDS:
        raise TetherError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    module, attr = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), attr)(robot, scene)
