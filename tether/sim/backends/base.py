"""The interface every physics engine implements for Tether.

Tasks and the env talk only to this interface, so a robot and task run unchanged on MuJoCo, PyBullet or a
later engine. It is deliberately state-level (joint and base state, named bodies, actuator-space commands,
named physical parameters) rather than engine-level, which is what lets a GPU-parallel engine implement it
later with a leading batch dimension on every array.

Physical parameters that domain randomisation can change are addressed by *target* name (see
``tether.sim.randomization.BACKEND_TARGETS``): ``get_param(target)`` returns the current values of every
element (body, geom, joint or actuator) in ``param_elements(target)`` order and ``set_param`` writes them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from tether.sim.robots.base import RobotSpec, Scene


class Backend(ABC):
    name: str = ""

    def __init__(self, robot: RobotSpec, scene: Scene) -> None:
        self.robot = robot
        self.scene = scene

    # ------------------------------------------------------------------ state
    @abstractmethod
    def reset_state(
        self,
        joint_pos: np.ndarray,
        joint_vel: np.ndarray | None = None,
        base_pos: np.ndarray | None = None,
        base_quat: np.ndarray | None = None,
        base_lin_vel: np.ndarray | None = None,
        base_ang_vel: np.ndarray | None = None,
    ) -> None:
        """Teleport the robot (actuator state such as motor lag is reset to match)."""

    @abstractmethod
    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions, velocities) of ``robot.joints`` in that order."""

    @abstractmethod
    def base_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(position world m, quaternion w,x,y,z world_from_body)."""

    @abstractmethod
    def base_velocity(self) -> tuple[np.ndarray, np.ndarray]:
        """(linear velocity world m/s, angular velocity body rad/s)."""

    @abstractmethod
    def body_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(position world, quaternion w,x,y,z) of a robot link or scene object."""

    @abstractmethod
    def set_object_pose(self, name: str, pos: np.ndarray, quat: np.ndarray | None = None) -> None:
        """Place a scene object (free box or marker) and zero its velocity."""

    @abstractmethod
    def foot_contact_forces(self) -> np.ndarray:
        """Normal contact force (N) on each of ``robot.feet``."""

    # ------------------------------------------------------------------ actuation and time
    @abstractmethod
    def set_command(self, command: np.ndarray) -> None:
        """Actuator-space command in physical units: joint position targets (PD) or rotor thrusts (N)."""

    @abstractmethod
    def step(self, substeps: int) -> None:
        """Advance ``substeps`` physics steps holding the current command."""

    @abstractmethod
    def set_external_force(self, force_world: np.ndarray, torque_world: np.ndarray | None = None) -> None:
        """Force (N) and torque (N m) on the robot base held until changed (pushes); zeros to clear."""

    @property
    @abstractmethod
    def time(self) -> float: ...

    @abstractmethod
    def snapshot(self) -> Any:
        """The world's whole dynamic state (physics and any actuator or controller state the backend keeps), for
        :meth:`restore`; parameters are not part of it. Each snapshot is restored at most once."""

    @abstractmethod
    def restore(self, state: Any) -> None:
        """Put the world back as :meth:`snapshot` found it: it steps on from there as it would have."""

    # ------------------------------------------------------------------ randomisable parameters
    @abstractmethod
    def param_elements(self, target: str) -> list[str]:
        """Names of the elements ``target`` acts on, in value order."""

    @abstractmethod
    def get_param(self, target: str) -> np.ndarray: ...

    @abstractmethod
    def set_param(self, target: str, values: np.ndarray) -> None: ...

    # ------------------------------------------------------------------ output
    @abstractmethod
    def render(self, width: int = 320, height: int = 240, camera: str | None = None) -> np.ndarray:
        """Offscreen RGB image (H, W, 3) uint8."""

    def close(self) -> None:  # noqa: B027 - optional override
        pass


class BatchBackend(ABC):
    """N worlds of one robot and scene, stepped together: the interface of the batched simulation core.

    Every state array has a leading world axis; writes that concern some worlds take their indices
    ``ids`` (an int array) and values with a matching leading axis. Physical parameters are per world, so
    domain randomisation draws differ between worlds; after a round of ``set_param`` calls,
    ``commit_params()`` makes them take effect. Rotor robots with ``scene.onboard == "rate_controller"``
    take [collective thrust, body rates] commands, which the onboard controller turns into rotor thrusts
    at the physics rate.
    """

    name: str = ""

    def __init__(self, robot: RobotSpec, scene: Scene, n: int) -> None:
        self.robot = robot
        self.scene = scene
        self.n = int(n)

    # ------------------------------------------------------------------ state (N, ...)
    @abstractmethod
    def reset_state(self, ids: np.ndarray, joint_pos: np.ndarray, joint_vel: np.ndarray | None = None,
                    base_pos: np.ndarray | None = None, base_quat: np.ndarray | None = None,
                    base_lin_vel: np.ndarray | None = None, base_ang_vel: np.ndarray | None = None) -> None:
        """Teleport the robots of worlds ``ids``; actuator state (motor lag, onboard controller) is reset."""

    @abstractmethod
    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions, velocities), each (N, n_joints), of ``robot.joints`` in that order."""

    @abstractmethod
    def base_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(position (N, 3) world m, quaternion (N, 4) w,x,y,z world_from_body)."""

    @abstractmethod
    def base_velocity(self) -> tuple[np.ndarray, np.ndarray]:
        """(linear velocity (N, 3) world m/s, angular velocity (N, 3) body rad/s)."""

    @abstractmethod
    def body_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """World (position (N, 3), quaternion (N, 4) w,x,y,z) of a robot link or scene object."""

    @abstractmethod
    def set_object_pose(self, name: str, ids: np.ndarray, pos: np.ndarray, quat: np.ndarray | None = None) -> None:
        """Place a scene object in worlds ``ids`` and zero its velocity."""

    @abstractmethod
    def foot_contact_forces(self) -> np.ndarray:
        """Normal contact force (N, n_feet) on each of ``robot.feet``."""

    @abstractmethod
    def set_command(self, command: np.ndarray) -> None:
        """(N, n_command) commands in physical units, held until changed."""

    @abstractmethod
    def step(self, substeps: int) -> None:
        """Advance every world ``substeps`` physics steps holding the current commands."""

    @abstractmethod
    def set_external_force(self, ids: np.ndarray, force_world: np.ndarray) -> None:
        """Force (k, 3) N on the robot base of worlds ``ids``, held until changed (pushes); zeros to clear."""

    @abstractmethod
    def snapshot(self) -> Any:
        """Every world's whole dynamic state (physics, held commands, onboard controller), for :meth:`restore`;
        parameters are not part of it. Each snapshot is restored at most once."""

    @abstractmethod
    def restore(self, state: Any) -> None:
        """Put every world back as :meth:`snapshot` found it: they step on from there as they would have."""

    @contextmanager
    def lookahead(self) -> Iterator[None]:
        """Commands and steps inside the block are undone when it ends.

        Why: an expert under action latency acts on the state the commands still queued will lead to; the
        simulator is the exact model of that (a Smith predictor), so the expert steps the worlds ahead, reads
        them, and the episode goes on as if it had not (:meth:`tether.sim.tasks.legged.Velocity.expert`)."""
        state = self.snapshot()
        try:
            yield
        finally:
            self.restore(state)

    # ------------------------------------------------------------------ per-world parameters
    @abstractmethod
    def param_elements(self, target: str) -> list[str]: ...

    @abstractmethod
    def get_param(self, target: str, world: int) -> np.ndarray: ...

    @abstractmethod
    def set_param(self, target: str, values: np.ndarray, world: int) -> None: ...

    def commit_params(self) -> None:  # noqa: B027 - optional override
        """Make the parameters written since the last commit take effect."""

    # ------------------------------------------------------------------ output
    @abstractmethod
    def render(self, world: int = 0, width: int = 320, height: int = 240, camera: str | None = None) -> np.ndarray:
        """Offscreen RGB image (H, W, 3) uint8 of one world."""

    def close(self) -> None:  # noqa: B027 - optional override
        pass


class WorldView(Backend):
    """One world of a batch seen through the single-world :class:`Backend` interface.

    For code that drives one robot (served robots, tests, tools): reads return that world's row, writes go
    to it alone, parameter writes take effect at once.
    """

    def __init__(self, batch: BatchBackend, world: int = 0) -> None:
        super().__init__(batch.robot, batch.scene)
        self.batch, self.world = batch, int(world)
        self.name = batch.name
        self._ids = np.array([self.world])

    def reset_state(self, joint_pos, joint_vel=None, base_pos=None, base_quat=None, base_lin_vel=None,
                    base_ang_vel=None) -> None:
        def row(x):
            return None if x is None else np.asarray(x, dtype=np.float64)[None]

        self.batch.reset_state(self._ids, row(joint_pos), row(joint_vel), row(base_pos), row(base_quat),
                               row(base_lin_vel), row(base_ang_vel))

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        q, qd = self.batch.joint_state()
        return q[self.world].copy(), qd[self.world].copy()

    def base_pose(self) -> tuple[np.ndarray, np.ndarray]:
        p, q = self.batch.base_pose()
        return p[self.world], q[self.world]

    def base_velocity(self) -> tuple[np.ndarray, np.ndarray]:
        v, w = self.batch.base_velocity()
        return v[self.world], w[self.world]

    def body_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        p, q = self.batch.body_pose(name)
        return p[self.world], q[self.world]

    def set_object_pose(self, name: str, pos: np.ndarray, quat: np.ndarray | None = None) -> None:
        self.batch.set_object_pose(name, self._ids, np.asarray(pos)[None], None if quat is None else np.asarray(quat)[None])

    def foot_contact_forces(self) -> np.ndarray:
        return self.batch.foot_contact_forces()[self.world].copy()

    def set_command(self, command: np.ndarray) -> None:
        if self.batch.n != 1:
            raise TypeError("set_command on one world of a larger batch; command the batch instead")
        self.batch.set_command(np.asarray(command, dtype=np.float64)[None])

    def step(self, substeps: int) -> None:
        if self.batch.n != 1:
            raise TypeError("step on one world of a larger batch; step the batch instead")
        self.batch.step(substeps)

    def set_external_force(self, force_world: np.ndarray, torque_world: np.ndarray | None = None) -> None:
        if torque_world is not None and np.any(torque_world):
            raise TypeError("the batched core applies forces only; got a torque")
        self.batch.set_external_force(self._ids, np.asarray(force_world)[None])

    @property
    def time(self) -> float:
        return float(np.asarray(self.batch.time)[self.world])

    def snapshot(self) -> Any:
        return self.batch.snapshot()  # the whole batch's: this world's, with the rest unchanged by a restore

    def restore(self, state: Any) -> None:
        self.batch.restore(state)

    def param_elements(self, target: str) -> list[str]:
        return self.batch.param_elements(target)

    def get_param(self, target: str) -> np.ndarray:
        return self.batch.get_param(target, self.world)

    def set_param(self, target: str, values: np.ndarray) -> None:
        self.batch.set_param(target, values, self.world)
        self.batch.commit_params()

    def render(self, width: int = 320, height: int = 240, camera: str | None = None) -> np.ndarray:
        return self.batch.render(self.world, width, height, camera)
