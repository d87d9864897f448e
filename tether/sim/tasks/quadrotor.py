"""Quadrotor tasks: hover at a set point, and fly through a sequence of waypoints.

Both read the same observation (position error to the current goal, attitude as a rotation matrix, world
linear velocity, body rates, last action), which is what a PX4 odometry message provides once converted
to ENU/FLU, so a policy trained here deploys through the PX4 adapter unchanged. The default control mode
is collective thrust + body rates through the onboard rate controller (what PX4's vehicle_rates_setpoint
carries); per-motor thrust is the alternative.
"""

from __future__ import annotations

import math
from collections import deque

import mujoco
import numpy as np

from tether.contract import Field, IOContract
from tether.sim.backends.base import Backend
from tether.sim.robots import quadrotor as cf
from tether.sim.robots.base import Scene, SceneObject
from tether.sim.tasks.base import StepResult, Task

GOAL_MARKER = "goal"


def quat_to_rotmat(q: np.ndarray) -> np.ndarray:
    """(w, x, y, z) -> 3x3 world_from_body (MuJoCo's C routine: this runs every control step)."""
    mat = np.empty(9)
    mujoco.mju_quat2Mat(mat, np.asarray(q, dtype=np.float64))
    return mat.reshape(3, 3)


def _norm(v: np.ndarray) -> float:
    return math.sqrt(float(v @ v))


def quadrotor_observation_fields() -> tuple[Field, ...]:
    return (
        Field.make("pos_error", 3, "m", "world", -5.0, 5.0, ("x", "y", "z")),
        Field.make("base_rotmat", 9, "1", "world_from_body", -1.0, 1.0),
        Field.make("base_lin_vel", 3, "m/s", "world", -10.0, 10.0, ("x", "y", "z")),
        Field.make("base_ang_vel", 3, "rad/s", "body", -30.0, 30.0, ("x", "y", "z")),
        Field.make("last_action", 4, "1", "", -1.0, 1.0),
    )


def quadrotor_action_fields(control_mode: str, max_thrust: float = cf.MAX_THRUST) -> tuple[Field, ...]:
    if control_mode == "motor_thrust":
        return (Field.make("motor_thrust", 4, "N", "body", 0.0, max_thrust, ("m1", "m2", "m3", "m4")),)
    return (
        Field.make("collective_thrust", 1, "N", "body", 0.0, 4 * max_thrust),
        Field.make("body_rates", 3, "rad/s", "body", -cf.MAX_BODY_RATE, cf.MAX_BODY_RATE, ("x", "y", "z")),
    )


class QuadrotorTask(Task):
    robot_name = "quadrotor"
    control_modes = ("thrust_body_rates", "motor_thrust")
    crash_height = 0.03
    max_error = 2.0
    max_tilt = 1.4  # rad

    def __init__(self, robot, control_mode=None) -> None:
        super().__init__(robot, control_mode)
        self.rate_controller = cf.RateController(robot.actuators.max_thrust)
        self._expert_rc = cf.RateController(robot.actuators.max_thrust)  # the expert's own stateful inner loop
        self.goal = np.array([0.0, 0.0, 1.0])

    def scene(self) -> Scene:
        return Scene(objects=(SceneObject(GOAL_MARKER, "marker", (0.02,), rgba=(0.1, 0.8, 0.2, 0.6)),))

    def build_contract(self) -> IOContract:
        return IOContract(
            robot="quadrotor",
            task=self.name,
            observations=quadrotor_observation_fields(),
            actions=quadrotor_action_fields(self.control_mode, self.robot.actuators.max_thrust),
            control_mode=self.control_mode,
            rate_hz=self.robot.control_rate_hz,
        )

    def neutral_action(self) -> np.ndarray:
        if self.control_mode == "motor_thrust":
            return np.full(4, cf.HOVER_THRUST)
        return np.array([4 * cf.HOVER_THRUST, 0.0, 0.0, 0.0])

    # ------------------------------------------------------------------ episode
    def _spawn(self, sim: Backend, rng: np.random.Generator, goal: np.ndarray, spread: float) -> None:
        pos = goal + rng.uniform(-spread, spread, 3)
        pos[2] = max(pos[2], 0.3)
        axis = rng.normal(size=3)
        angle = rng.uniform(0, 0.2)
        quat = np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis / np.linalg.norm(axis)])
        sim.set_command(np.full(4, cf.HOVER_THRUST))
        sim.reset_state(np.zeros(0), base_pos=pos, base_quat=quat,
                        base_lin_vel=rng.uniform(-0.2, 0.2, 3), base_ang_vel=rng.uniform(-0.2, 0.2, 3))
        self.rate_controller.reset()

    def actuate(self, sim: Backend, action: np.ndarray, substeps: int) -> None:
        if self.control_mode == "motor_thrust":
            sim.set_command(action)
            sim.step(substeps)
            return
        dt = self.robot.physics_dt
        for _ in range(substeps):
            _, rates = sim.base_velocity()
            sim.set_command(self.rate_controller(action[0], action[1:4], rates, dt))
            sim.step(1)

    def observe(self, sim: Backend) -> dict[str, np.ndarray]:
        pos, quat = sim.base_pose()
        lin, ang = sim.base_velocity()
        return {
            "pos_error": self.goal - pos,
            "base_rotmat": quat_to_rotmat(quat).reshape(9),
            "base_lin_vel": lin,
            "base_ang_vel": ang,
        }

    def _crashed(self, obs: dict[str, np.ndarray], sim: Backend) -> bool:
        pos, _ = sim.base_pose()
        tilt = np.arccos(np.clip(obs["base_rotmat"][8], -1.0, 1.0))
        return bool(pos[2] < self.crash_height or _norm(obs["pos_error"]) > self.max_error
                    or tilt > self.max_tilt)

    def _shaped_reward(self, obs: dict[str, np.ndarray], crashed: bool) -> float:
        err = _norm(obs["pos_error"])
        r = 1.0 - err - 0.05 * _norm(obs["base_ang_vel"]) - 0.05 * _norm(obs["base_lin_vel"])
        return float(r - (10.0 if crashed else 0.0))

    def reward_from_obs(self, obs: dict[str, np.ndarray]) -> float:
        return self._shaped_reward(obs, crashed=False)

    # ------------------------------------------------------------------ expert
    def expert(self, sim: Backend) -> np.ndarray:
        """Geometric position controller: PD on position to a desired force, tilt toward it, keep yaw at 0."""
        obs = self.observe(sim)
        R = obs["base_rotmat"].reshape(3, 3)
        a_des = 6.0 * obs["pos_error"] - 4.0 * obs["base_lin_vel"] + np.array([0.0, 0.0, cf.GRAVITY])
        a_des[:2] = np.clip(a_des[:2], -5.0, 5.0)
        thrust = cf.MASS * float(a_des @ R[:, 2])
        z_des = a_des / np.linalg.norm(a_des)
        e_world = np.cross(R[:, 2], z_des)
        yaw = np.arctan2(R[1, 0], R[0, 0])
        rates = 12.0 * (R.T @ e_world)
        rates[2] = -2.0 * yaw
        rates = np.clip(rates, -cf.MAX_BODY_RATE, cf.MAX_BODY_RATE)
        thrust = float(np.clip(thrust, 0.0, 4 * self.robot.actuators.max_thrust))
        if self.control_mode == "motor_thrust":
            return self._expert_rc(thrust, rates, obs["base_ang_vel"], self.robot.physics_dt * self.robot.substeps)
        return np.concatenate([[thrust], rates])


class Hover(QuadrotorTask):
    """Hold a set point 1 m up for 5 s from a perturbed start. Success: mean error < 0.1 m in the last second."""

    name = "hover"
    episode_seconds = 5.0
    success_radius = 0.1

    def reset(self, sim: Backend, rng: np.random.Generator) -> None:
        self.goal = np.array([0.0, 0.0, 1.0])
        sim.set_object_pose(GOAL_MARKER, self.goal)
        self._spawn(sim, rng, self.goal, 0.3)
        self._recent: deque[float] = deque(maxlen=int(self.robot.control_rate_hz))
        self._steps = 0

    def evaluate(self, sim, obs, action) -> StepResult:
        crashed = self._crashed(obs, sim)
        err = _norm(obs["pos_error"])
        self._steps += 1
        self._recent.append(err)
        success = (not crashed and self._steps >= self.max_steps
                   and float(np.mean(self._recent)) < self.success_radius)
        return StepResult(self._shaped_reward(obs, crashed), crashed, success, {"position_error": err})


class Waypoint(QuadrotorTask):
    """Visit 4 random waypoints (within 0.15 m each) in order inside 12 s. Success: all visited."""

    name = "waypoint"
    episode_seconds = 12.0
    reach_radius = 0.15
    n_waypoints = 4

    def reset(self, sim: Backend, rng: np.random.Generator) -> None:
        self.waypoints = np.column_stack([rng.uniform(-0.8, 0.8, self.n_waypoints),
                                          rng.uniform(-0.8, 0.8, self.n_waypoints),
                                          rng.uniform(0.6, 1.4, self.n_waypoints)])
        self.index = 0
        self.goal = self.waypoints[0].copy()
        sim.set_object_pose(GOAL_MARKER, self.goal)
        self._spawn(sim, rng, np.array([0.0, 0.0, 1.0]), 0.1)

    def evaluate(self, sim, obs, action) -> StepResult:
        crashed = self._crashed(obs, sim)
        err = _norm(obs["pos_error"])
        reward = self._shaped_reward(obs, crashed)
        if err < self.reach_radius and self.index < self.n_waypoints:
            self.index += 1
            reward += 10.0
            if self.index < self.n_waypoints:
                self.goal = self.waypoints[self.index].copy()
                sim.set_object_pose(GOAL_MARKER, self.goal)
        done = self.index >= self.n_waypoints
        return StepResult(reward, crashed or done, done and not crashed,
                          {"position_error": err, "waypoints_reached": self.index})
