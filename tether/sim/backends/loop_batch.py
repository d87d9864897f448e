"""A batch of single-world backends stepped one after another: how engines without a batched API join the
batched core (PyBullet), and the reference the batched MuJoCo core is checked against.

Slower than :class:`~tether.sim.backends.mujoco_batch.MujocoBatch` (Python per world and, with an onboard
rate controller, per substep), but the same interface, so every task, trainer and evaluator runs unchanged
on it; use the process executor of :mod:`tether.sim.vector` to spread its worlds over cores.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from tether.sim.backends.base import Backend, BatchBackend
from tether.sim.robots.base import RobotSpec, RotorActuators, Scene


class LoopBatch(BatchBackend):
    def __init__(self, robot: RobotSpec, scene: Scene, n: int, make_world: Callable[[], Backend]) -> None:
        super().__init__(robot, scene, n)
        self.worlds = [make_world() for _ in range(self.n)]
        self.name = self.worlds[0].name
        self._rates = scene.onboard == "rate_controller"
        self._command: np.ndarray | None = None
        if self._rates:
            from tether.sim.robots.quadrotor import RateController

            assert isinstance(robot.actuators, RotorActuators)
            self._rc = RateController(robot.actuators.max_thrust, n=self.n)
            self._command = np.zeros((self.n, 4))

    def _stack(self, fn: Callable[[Backend], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        a, b = zip(*(fn(w) for w in self.worlds))
        return np.stack(a), np.stack(b)

    # ------------------------------------------------------------------ state
    def reset_state(self, ids, joint_pos, joint_vel=None, base_pos=None, base_quat=None,
                    base_lin_vel=None, base_ang_vel=None) -> None:
        ids = np.asarray(ids, dtype=int)

        def row(x, k):
            return None if x is None else np.broadcast_to(np.asarray(x, dtype=np.float64),
                                                          (len(ids), np.shape(x)[-1]))[k]

        for k, i in enumerate(ids):
            if self._rates:  # rotors settled at the allocation of the thrust setpoint
                self.worlds[i].set_command(np.clip(self._command[i, 0] * self._rc.alloc[:, 0], 0, self._rc.max_thrust))
            self.worlds[i].reset_state(row(joint_pos, k), row(joint_vel, k), row(base_pos, k), row(base_quat, k),
                                       row(base_lin_vel, k), row(base_ang_vel, k))
        if self._rates:
            self._rc.reset(ids)

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        return self._stack(lambda w: w.joint_state())

    def base_pose(self) -> tuple[np.ndarray, np.ndarray]:
        return self._stack(lambda w: w.base_pose())

    def base_velocity(self) -> tuple[np.ndarray, np.ndarray]:
        return self._stack(lambda w: w.base_velocity())

    def body_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self._stack(lambda w: w.body_pose(name))

    def set_object_pose(self, name, ids, pos, quat=None) -> None:
        ids = np.asarray(ids, dtype=int)
        pos = np.broadcast_to(np.asarray(pos, dtype=np.float64), (len(ids), 3))
        quat = None if quat is None else np.broadcast_to(np.asarray(quat, dtype=np.float64), (len(ids), 4))
        for k, i in enumerate(ids):
            self.worlds[i].set_object_pose(name, pos[k], None if quat is None else quat[k])

    def foot_contact_forces(self) -> np.ndarray:
        return np.stack([w.foot_contact_forces() for w in self.worlds])

    # ------------------------------------------------------------------ actuation
    def set_command(self, command: np.ndarray) -> None:
        if self._rates:
            self._command[:] = command
            return
        for w, c in zip(self.worlds, np.asarray(command)):
            w.set_command(c)

    def step(self, substeps: int) -> None:
        if not self._rates:
            for w in self.worlds:
                w.step(substeps)
            return
        dt = self.robot.physics_dt
        for _ in range(substeps):
            _, rates = self.base_velocity()
            thrust = self._rc(self._command[:, 0], self._command[:, 1:4], rates, dt)
            for w, t in zip(self.worlds, thrust):
                w.set_command(t)
                w.step(1)

    def set_external_force(self, ids, force_world) -> None:
        ids = np.asarray(ids, dtype=int)
        force = np.broadcast_to(np.asarray(force_world, dtype=np.float64), (len(ids), 3))
        for k, i in enumerate(ids):
            self.worlds[i].set_external_force(force[k])

    @property
    def time(self) -> np.ndarray:
        return np.array([w.time for w in self.worlds])

    def snapshot(self) -> dict[str, Any]:
        state: dict[str, Any] = {"worlds": [w.snapshot() for w in self.worlds]}
        if self._rates:  # the rate controller's integrators and the setpoint it holds
            state["rc"], state["command"] = copy.deepcopy(self._rc), self._command.copy()
        return state

    def restore(self, state: dict[str, Any]) -> None:
        for w, s in zip(self.worlds, state["worlds"]):
            w.restore(s)
        if self._rates:
            self._rc, self._command = state["rc"], state["command"]

    # ------------------------------------------------------------------ per-world parameters
    def param_elements(self, target: str) -> list[str]:
        return self.worlds[0].param_elements(target)

    def get_param(self, target: str, world: int) -> np.ndarray:
        return self.worlds[world].get_param(target)

    def set_param(self, target: str, values: np.ndarray, world: int) -> None:
        self.worlds[world].set_param(target, values)

    def render(self, world: int = 0, width: int = 320, height: int = 240, camera: str | None = None) -> np.ndarray:
        return self.worlds[world].render(width, height, camera)

    def close(self) -> None:
        for w in self.worlds:
            w.close()
