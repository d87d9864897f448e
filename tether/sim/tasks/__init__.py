"""Tasks: what a robot is asked to do, as observation fields, reward, termination and a success metric.

``TASKS`` maps (robot, task) to the Task class ("module:Class", imported lazily).
"""

from __future__ import annotations

import importlib

from tether.errors import TetherError
from tether.sim.robots.base import RobotSpec

TASKS: dict[tuple[str, str], str] = {
    ("quadrotor", "hover"): "tether.sim.tasks.quadrotor:Hover",
    ("quadrotor", "waypoint"): "tether.sim.tasks.quadrotor:Waypoint",
    ("arm", "reach"): "tether.sim.tasks.arm:Reach",
    ("arm", "push"): "tether.sim.tasks.arm:Push",
    ("legged", "stand"): "tether.sim.tasks.legged:Stand",
    ("legged", "velocity"): "tether.sim.tasks.legged:Velocity",
}


def task_names(robot: str) -> list[str]:
    return [t for (r, t) in TASKS if r == robot]


def task_class(robot: str, task: str):
    if (robot, task) not in TASKS:
        raise TetherError(f"unknown task {task!r} for robot {robot}; expected one of {', '.join(task_names(robot))}")
    module, attr = TASKS[(robot, task)].split(":")
    return getattr(importlib.import_module(module), attr)


def make_task(robot: str, task: str, spec: RobotSpec, n: int = 1, **kwargs):
    """The task over a batch of ``n`` worlds (``kwargs``: control_mode and the task's own options)."""
    return task_class(robot, task)(spec, n, **kwargs)
