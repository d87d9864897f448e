"""Quadrotor tasks: hover at a set point, and fly through a sequence of waypoints.

Both read the same observation (position error to the current goal, attitude as a rotation matrix, world
linear velocity, body rates, last action), which is what a PX4 odometry message provides once converted
to ENU/FLU, so a policy trained here deploys through the PX4 adapter unchanged. The default control mode
is collective thrust + body rates through the onboard rate controller (what PX4's vehicle_rates_setpoint
carries; it runs inside the physics, see ``Scene.onboard``); per-motor thrust is the alternative.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tether.contract import Field, IOContract
from tether.sim.backends.base import BatchBackend
from tether.sim.robots import quadrotor as cf
from tether.sim.robots.base import Scene, SceneObject
from tether.sim.tasks.base import Fields, PendingCommands, Task, norm, require

GOAL_MARKER = "goal"
CRASH_HEIGHT = 0.03  # m
MAX_ERROR = 2.0  # m from the goal
MAX_TILT = 1.4  # rad
# a goal move, told from the vehicle's own motion in one control step: 5 m/s for one step of stale odometry
# is 0.1 m; waypoints closer together than that are all but never drawn
GOAL_JUMP = 0.1  # m
NEAR = 0.5  # m: a waypoint's reward pulls the vehicle in over this last stretch


def quat_to_rotmat(q: np.ndarray) -> np.ndarray:
    """(w, x, y, z) -> world_from_body rotation: (4,) -> (3, 3), or (N, 4) -> (N, 3, 3)."""
    q = np.asarray(q, dtype=np.float64)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    xx, yy, zz, xy, xz, yz, wx, wy, wz = x * x, y * y, z * z, x * y, x * z, y * z, w * x, w * y, w * z
    R = np.empty(q.shape[:-1] + (9,))
    R[..., 0], R[..., 1], R[..., 2] = 1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy)
    R[..., 3], R[..., 4], R[..., 5] = 2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx)
    R[..., 6], R[..., 7], R[..., 8] = 2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy)
    return R.reshape(q.shape[:-1] + (3, 3))


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


def flight_objective(fields: Fields, goal_z: Any = 1.0, max_error: float = MAX_ERROR) -> tuple[Any, Any, Any]:
    """(shaped reward, crashed, position error) shared by every quadrotor task.

    Reward 1 - |e| - 0.05 |omega| - 0.05 |v|, and -10 on a crash: |e| > ``max_error`` (2 m), tilt > 1.4 rad,
    or height (goal height - e_z) under 3 cm.
    """
    require(fields, ("pos_error", "base_rotmat", "base_lin_vel", "base_ang_vel"), "quadrotor")
    e = fields["pos_error"]
    err = norm(e)
    crashed = (err > max_error) | (fields["base_rotmat"][..., 8] < math.cos(MAX_TILT)) | (goal_z - e[..., 2] < CRASH_HEIGHT)
    reward = 1.0 - err - 0.05 * norm(fields["base_ang_vel"]) - 0.05 * norm(fields["base_lin_vel"]) - 10.0 * crashed
    return reward, crashed, err


def crashed_in_flight(crashed: Any) -> bool:
    """Whether the vehicle crashed while flown: entered the crashed state after it was first clear of it.

    Why: a PX4 vehicle is often handed over while still on the ground (its hold has not lifted it yet when
    offboard engages), and "height under 3 cm" marks those first steps; the policy then takes off. A simulated
    episode starts in the air, where this is the same as "ever crashed". A vehicle that never leaves the ground
    fails on its position error instead."""
    c = np.asarray(crashed, dtype=bool).reshape(-1)
    clear = np.flatnonzero(~c)
    return bool(len(clear) and c[clear[0]:].any())


class QuadrotorTask(Task):
    robot_name = "quadrotor"
    error_metric, error_label = "position_error", "position error (m)"
    control_modes = ("thrust_body_rates", "motor_thrust")
    spawn_spread = 0.3  # m around the spawn point
    spawn_tilt = 0.2  # rad

    def __init__(self, robot, n: int = 1, control_mode: str | None = None) -> None:
        super().__init__(robot, n, control_mode)
        self.goal = np.tile([0.0, 0.0, 1.0], (self.n, 1))
        self._expert_rc = cf.RateController(robot.actuators.max_thrust, n=self.n)  # the expert's own inner loop

    def scene(self) -> Scene:
        onboard = "rate_controller" if self.control_mode == "thrust_body_rates" else None
        return Scene(objects=(SceneObject(GOAL_MARKER, "marker", (0.02,), rgba=(0.1, 0.8, 0.2, 0.6)),),
                     onboard=onboard)

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
    def _spawn(self, sim: BatchBackend, ids: np.ndarray, rngs: Sequence[np.random.Generator], centre: np.ndarray,
               spread: float) -> None:
        k = len(ids)
        pos, quat = np.empty((k, 3)), np.empty((k, 4))
        lin, ang = np.empty((k, 3)), np.empty((k, 3))
        for j, rng in enumerate(rngs):
            pos[j] = centre + rng.uniform(-spread, spread, 3)
            axis = rng.normal(size=3)
            angle = rng.uniform(0, self.spawn_tilt)
            quat[j] = np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis / np.linalg.norm(axis)])
            lin[j], ang[j] = rng.uniform(-0.2, 0.2, 3), rng.uniform(-0.2, 0.2, 3)
        pos[:, 2] = np.maximum(pos[:, 2], 0.3)
        command = np.zeros((sim.n, self.contract.action_size))
        command[:] = self.neutral_action()
        sim.set_command(command)  # rotors start settled at hover thrust
        sim.reset_state(ids, np.zeros((k, 0)), base_pos=pos, base_quat=quat, base_lin_vel=lin, base_ang_vel=ang)
        self._expert_rc.reset(ids)
        self.steps[ids] = 0

    def _set_goal(self, sim: BatchBackend, ids: np.ndarray, goal: np.ndarray) -> None:
        self.goal[ids] = goal
        sim.set_object_pose(GOAL_MARKER, ids, goal)

    def actuate(self, sim: BatchBackend, action: np.ndarray, substeps: int) -> None:
        sim.set_command(action)
        sim.step(substeps)

    def observe(self, sim: BatchBackend) -> dict[str, np.ndarray]:
        pos, quat = sim.base_pose()
        lin, ang = sim.base_velocity()
        return {
            "pos_error": self.goal - pos,
            "base_rotmat": quat_to_rotmat(quat).reshape(-1, 9),
            "base_lin_vel": lin,
            "base_ang_vel": ang,
        }

    def context(self) -> dict[str, np.ndarray]:
        return {"goal_z": self.goal[:, 2]}

    def default_context(self) -> dict[str, Any]:
        return {"goal_z": 1.0}

    # ------------------------------------------------------------------ expert
    # rad/s of body rate per unit of tilt error in the expert. Why 6, not geometric_controller's 12: at 12 it
    # oscillates once the motors lag or the commands arrive late (waypoints: 0 % with motor lag x3, 6 % at 4 steps
    # of latency; at 6: 100 % on both, and 100 % nominal and under the wide DR, 16-32 episodes each)
    expert_tilt_gain = 6.0

    def expert(self, sim: BatchBackend, pending: PendingCommands | None = None) -> np.ndarray:
        """The scripted expert (:func:`geometric_controller`) in this task's control mode, a privileged teacher:
        it sizes thrust for each world's own mass, rotor gain and gravity, read from the simulator. Why: sized
        for the nominal vehicle it sags or climbs wherever DR moved those (under the quadrotor's ``wide`` DR it
        visited all four waypoints in 28 % of episodes), and a student imitating it learns that error; a student
        with an observation history can infer what the teacher was told, as in RMA."""
        obs = self.observe(sim)
        mass, gravity = self._world_physics(sim)
        cmd = geometric_controller(obs, 4 * self.robot.actuators.max_thrust, mass=mass, gravity=gravity,
                                   tilt_gain=self.expert_tilt_gain)
        if self.control_mode == "motor_thrust":
            return self._expert_rc(cmd[:, 0], cmd[:, 1:], obs["base_ang_vel"],
                                   self.robot.physics_dt * self.robot.substeps)
        return cmd

    def _world_physics(self, sim: BatchBackend) -> tuple[np.ndarray, np.ndarray]:
        """Per world (N,): the effective mass, body mass divided by the rotors' mean gain (a scale, 1 when
        nominal: the thrust a command buys), and gravity (m/s^2, positive)."""
        mass, gravity = np.empty(sim.n), np.empty(sim.n)
        for w in range(sim.n):
            mass[w] = sim.get_param("body_mass", w).sum() / sim.get_param("actuator_gain", w).mean()
            gravity[w] = -float(sim.get_param("gravity", w)[0])
        return mass, gravity


POSITION_GAIN, VELOCITY_GAIN = 6.0, 4.0  # geometric_controller's PD on position: 1/s^2 per m, 1/s per m/s


def geometric_controller(fields: Fields, max_collective_thrust: float, mass: float | np.ndarray = cf.MASS,
                         gravity: float | np.ndarray = cf.GRAVITY, tilt_gain: float = 12.0,
                         accel_offset: np.ndarray | None = None) -> np.ndarray:
    """Collective thrust + body rates (N, 4) that fly to the goal: PD on position to a desired force, tilt toward
    it, keep yaw at 0. From observation fields alone, so it can fly a robot as well as the sim; ``mass`` and
    ``gravity`` (scalars, or one per row) size the thrust, nominal unless told. ``accel_offset`` (m/s^2, (3,) or
    (N, 3)) is added to the PD's desired acceleration: where a position integrator's term goes."""
    R = np.asarray(fields["base_rotmat"]).reshape(-1, 3, 3)
    a_des = (POSITION_GAIN * np.reshape(fields["pos_error"], (-1, 3))
             - VELOCITY_GAIN * np.reshape(fields["base_lin_vel"], (-1, 3)))
    if accel_offset is not None:
        a_des = a_des + accel_offset
    a_des[:, :2] = np.clip(a_des[:, :2], -5.0, 5.0)
    a_des[:, 2] += gravity
    z_body = R[:, :, 2]
    thrust = mass * np.einsum("ni,ni->n", a_des, z_body)
    z_des = a_des / np.linalg.norm(a_des, axis=1, keepdims=True)
    e_world = np.cross(z_body, z_des)
    yaw = np.arctan2(R[:, 1, 0], R[:, 0, 0])
    rates = tilt_gain * np.einsum("nji,nj->ni", R, e_world)
    rates[:, 2] = -2.0 * yaw
    rates = np.clip(rates, -cf.MAX_BODY_RATE, cf.MAX_BODY_RATE)
    return np.concatenate([np.clip(thrust, 0.0, max_collective_thrust)[:, None], rates], axis=1)


class Hover(QuadrotorTask):
    """Hold a set point 1 m up for 5 s from a perturbed start. Success: no crash, and the mean position error
    over the last second is under 0.1 m."""

    name = "hover"
    episode_seconds = 5.0
    success_radius = 0.1
    max_error = MAX_ERROR

    def reset(self, sim: BatchBackend, ids: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        self._set_goal(sim, ids, np.array([0.0, 0.0, 1.0]))
        self._spawn(sim, ids, rngs, np.array([0.0, 0.0, 1.0]), self.spawn_spread)

    def objective(self, prev, action, fields, ctx=None):
        goal_z = 1.0 if ctx is None else ctx.get("goal_z", 1.0)
        reward, crashed, err = flight_objective(fields, goal_z)
        return reward, crashed, {"position_error": err, "crashed": crashed}

    def success(self, metrics: Mapping[str, np.ndarray], terminated: bool) -> bool:
        err = np.asarray(metrics["position_error"], dtype=np.float64)
        tail = err[-max(1, int(round(self.robot.control_rate_hz))):]
        return bool(len(err) and not crashed_in_flight(metrics["crashed"]) and tail.mean() < self.success_radius)


class Waypoint(QuadrotorTask):
    """Visit 4 random waypoints (within 0.15 m each) in order inside 12 s, then hold the last. Success: all
    visited, no crash."""

    name = "waypoint"
    episode_seconds = 12.0
    reach_radius = 0.15
    n_waypoints = 4
    max_error = 3.0  # m: consecutive waypoints lie up to 2.4 m apart

    def __init__(self, robot, n: int = 1, control_mode: str | None = None) -> None:
        super().__init__(robot, n, control_mode)
        self.waypoints = np.zeros((self.n, self.n_waypoints, 3))
        self.index = np.zeros(self.n, dtype=np.int64)

    def reset(self, sim: BatchBackend, ids: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        for j, rng in zip(ids, rngs):
            self.waypoints[j] = np.column_stack([rng.uniform(-0.8, 0.8, self.n_waypoints),
                                                 rng.uniform(-0.8, 0.8, self.n_waypoints),
                                                 rng.uniform(0.6, 1.4, self.n_waypoints)])
        self.index[ids] = 0
        self._set_goal(sim, ids, self.waypoints[ids, 0])
        self._spawn(sim, ids, rngs, np.array([0.0, 0.0, 1.0]), 0.1)

    def context(self) -> dict[str, np.ndarray]:
        return {"goal_z": self.goal[:, 2]}

    def objective(self, prev, action, fields, ctx=None):
        """Per step: 0.1 alive, progress toward the current waypoint (10 per metre closed), a pull over its last
        half metre (up to 1), +1 within the reach radius; -10 on a crash. The last waypoint stays the goal until
        the episode ends, as a served robot's mission holds it.

        Why: with the hover reward (1 - |e| per step) reaching a waypoint moved the goal up to 2.4 m away and the
        reward dropped, and the last one ended the episode, so PPO learned to hover just outside the first
        waypoint (0-5 % of episodes visited all four after 1.5M steps). Progress alone sums to the path flown at
        any pace; without the pull, policies stalled 0.2-0.4 m short (55-85 % nominal success, two seeds), with
        it they reached all four in 95-100 % (1.5M steps, wide DR); the alive term makes a crash never pay."""
        ctx = ctx or {}
        _, crashed, err = flight_objective(fields, ctx.get("goal_z", 1.0), self.max_error)
        toward = (fields["base_lin_vel"] * fields["pos_error"]).sum(-1) / (err + 1e-6)  # speed toward it, m/s
        reached = err < self.reach_radius
        dt = 1.0 / self.robot.control_rate_hz
        near = (1.0 - err / NEAR).clip(0.0, None)  # the pull over the last half metre
        reward = 0.1 + 10.0 * dt * toward - 0.01 * norm(fields["base_ang_vel"]) + near + reached - 10.0 * crashed
        # the goal moved between the two observations: the error changed by more than the vehicle's own motion
        moved = norm(fields["pos_error"] - prev["pos_error"]
                     + 0.5 * dt * (fields["base_lin_vel"] + prev["base_lin_vel"])) > GOAL_JUMP
        return reward, crashed, {"position_error": err, "crashed": crashed, "reached": reached, "goal_moved": moved}

    def evaluate(self, sim, prev, fields, action):
        out = super().evaluate(sim, prev, fields, action)
        hit = np.nonzero(out.metrics["reached"] & (self.index < self.n_waypoints))[0]
        self.index[hit] += 1
        move = hit[self.index[hit] < self.n_waypoints]
        if len(move):
            self._set_goal(sim, move, self.waypoints[move, self.index[move]])
        out.metrics["waypoints_reached"] = self.index.astype(np.float64)
        return out

    def success(self, metrics: Mapping[str, np.ndarray], terminated: bool) -> bool:
        return bool(len(metrics["crashed"]) and not crashed_in_flight(metrics["crashed"])
                    and waypoints_reached(metrics, self.reach_radius) >= self.n_waypoints)


def waypoints_reached(metrics: Mapping[str, np.ndarray], reach_radius: float) -> int:
    """Waypoints visited in an episode: the simulator's count when it kept one. In a recording (a served or real
    robot's mission, which moves the goal once the vehicle reaches it) every goal move is a waypoint reached -
    counted on the recorded goal topic where there is one (``goal_moves``), else seen as a jump of the error
    (``goal_moved``) - and the last goal counts once the error to it fell under the reach radius."""
    if "waypoints_reached" in metrics:
        return int(np.asarray(metrics["waypoints_reached"])[-1])
    err = np.asarray(metrics["position_error"], dtype=np.float64)
    if "goal_moves" in metrics:
        moves = np.asarray(metrics["goal_moves"])
        return int(moves[-1]) + int(bool(np.any(err[moves == moves[-1]] < reach_radius)))
    moved = np.nonzero(np.asarray(metrics["goal_moved"], dtype=bool))[0]
    since = err[moved[-1]:] if len(moved) else err
    return len(moved) + int(bool(np.any(since < reach_radius)))
