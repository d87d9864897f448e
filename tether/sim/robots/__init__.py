"""Robot descriptions: the model file, named joints with real limits, actuator models and sensors, engine-independent.

``ROBOTS`` maps a robot name to the factory that builds its RobotSpec ("module:function", imported lazily).
"""

from __future__ import annotations

import importlib

from tether.errors import TetherError
from tether.sim.robots.base import RobotSpec

ROBOTS: dict[str, str] = {
    "quadrotor": "tether.sim.robots.quadrotor:crazyflie",
    "arm": "tether.sim.robots.panda:panda",
    "legged": "tether.sim.robots.a1:a1",
}


def _load(ref: str):
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


def make_robot(name: str) -> RobotSpec:
    if name not in ROBOTS:
        raise TetherError(f"unknown robot {name!r}; expected one of {', '.join(ROBOTS)}")
    return _load(ROBOTS[name])()
