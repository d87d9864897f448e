"""Engine-independent robot descriptions.

A RobotSpec names one model file (URDF, loaded by every engine so MuJoCo and PyBullet simulate the same
geometry and inertias), the actuated joints with their real limits, and the actuator model as data. Each
backend realises the actuator model its own way (MuJoCo natively through actuators with filter dynamics,
PyBullet with explicit torques per substep) so that domain randomisation of gains, strength and motor lag
means the same thing on both engines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PDActuators:
    """Joint position targets tracked by PD with a symmetric torque limit: tau = kp (q* - q) - kd qdot."""

    kp: np.ndarray
    kd: np.ndarray
    torque_limit: np.ndarray


@dataclass(frozen=True)
class RotorActuators:
    """Rotors on a floating base: first-order lag from commanded to actual thrust, yaw torque = ±ratio·thrust.

    ``positions`` are rotor centres in the body frame (FLU); ``spin`` is +1 for counter-clockwise (seen from
    above) rotors, whose reaction torque on the body is clockwise, i.e. -ratio·thrust about body z.
    """

    positions: np.ndarray  # (n_rotors, 3) m, body frame
    spin: np.ndarray  # (n_rotors,) ±1
    max_thrust: float  # N per rotor
    torque_to_thrust: float  # m (km / kf)
    time_constant: float  # s, first-order motor lag
    linear_drag: np.ndarray  # (3,) N/(m/s), world-frame translational drag


Actuators = PDActuators | RotorActuators


@dataclass
class RobotSpec:
    name: str
    model_path: Path  # URDF read by every backend
    floating_base: bool
    joints: tuple[str, ...]  # actuated joints, in action/observation order
    joint_lower: np.ndarray
    joint_upper: np.ndarray
    default_joint_pos: np.ndarray
    base_pos: np.ndarray  # initial base position (m)
    base_quat: np.ndarray  # initial base orientation (w, x, y, z)
    actuators: Actuators
    physics_dt: float
    control_rate_hz: float
    end_effector: str | None = None  # body whose pose is the end effector
    feet: tuple[str, ...] = ()  # bodies whose contact forces are sensed
    fixed_base_z: float = 0.0
    # Optional tweak of the MuJoCo spec after URDF import (contact settings, visual geoms, …).
    mujoco_edit: Callable[[Any], None] | None = None
    dr_presets: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def substeps(self) -> int:
        n = round(1.0 / (self.control_rate_hz * self.physics_dt))
        if abs(n * self.physics_dt * self.control_rate_hz - 1.0) > 1e-6:
            raise ValueError(
                f"robot {self.name}: control rate {self.control_rate_hz} Hz is not a whole number of "
                f"{self.physics_dt} s physics steps"
            )
        return n


@dataclass(frozen=True)
class SceneObject:
    """Something a task adds to the world: a free box to push, or a visual-only marker for a goal."""

    name: str
    kind: str  # "box" (free, collides) or "marker" (visual sphere, no collision, moved by the task)
    size: tuple[float, ...]  # box half-extents (3,) or marker radius (1,)
    mass: float = 0.0
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rgba: tuple[float, float, float, float] = (0.8, 0.3, 0.2, 1.0)
    friction: float = 0.8


@dataclass(frozen=True)
class Terrain:
    """Flat ground, or a heightfield whose bumps are scaled by ``roughness`` (m peak-to-peak)."""

    kind: str = "flat"  # "flat" | "heightfield"
    size: float = 8.0  # half-extent of the square heightfield (m)
    resolution: int = 96  # samples per side
    roughness: float = 0.0
    seed: int = 0

    def heights(self, roughness: float | None = None) -> np.ndarray:
        """Smooth random bumps in [0, 1] scaled later; the same seed always gives the same ground."""
        rng = np.random.default_rng(self.seed)
        coarse = rng.uniform(0.0, 1.0, size=(self.resolution // 8 + 2,) * 2)
        from scipy.ndimage import zoom

        fine = zoom(coarse, self.resolution / coarse.shape[0], order=3)[: self.resolution, : self.resolution]
        fine = (fine - fine.min()) / max(np.ptp(fine), 1e-9)
        # Keep the centre flat so the robot spawns on level ground.
        yy, xx = np.mgrid[0 : self.resolution, 0 : self.resolution] / (self.resolution - 1) * 2 - 1
        r = np.sqrt(xx**2 + yy**2) * self.size
        fine = fine * np.clip((r - 0.5) / 0.5, 0.0, 1.0)
        return fine / max(fine.max(), 1e-9)  # peak exactly 1 so both engines scale it the same


@dataclass(frozen=True)
class Scene:
    """What a task adds to the robot's world.

    ``onboard``: a controller that runs on the robot at the physics rate between the policy's command and the
    actuators (``"rate_controller"``: the quadrotor's body-rate PID). The batched MuJoCo core runs it inside
    ``mj_step``; other backends run it per substep in numpy. None: commands go straight to the actuators.
    """

    objects: tuple[SceneObject, ...] = ()
    terrain: Terrain = Terrain()
    onboard: str | None = None
