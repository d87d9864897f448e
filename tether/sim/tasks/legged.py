"""Quadruped tasks: stand still in the default stance, and track a commanded planar velocity.

Both read the same observation, which is what a real quadruped's low-level state gives once an IMU
filter has run: body angular velocity, gravity projected into the body frame, the velocity command, joint
positions and velocities, and the last action. Base linear velocity, base height and foot contact forces
are *privileged* (critic-only): a real A1 does not measure them directly.

Ground: every legged task stands on a heightfield (12 m half-extent, 1 m bump wavelength, flat within
0.5 m of the spawn point); ``terrain="flat"`` gives it zero roughness, ``terrain="rough"`` 8 cm of bumps.
One kind of ground for both keeps the ``terrain_roughness`` DR term meaningful on every legged env (it
scales the nominal roughness, so flat stays flat) and the terrain is a pure function of its seed.

Velocity-tracking reward follows legged_gym (Rudin et al. 2022): exponential tracking kernels on body
planar velocity and yaw rate, penalties on vertical and roll/pitch velocity, torques, joint accelerations
and action rate, and a feet-air-time bonus, all scaled by the control period.
"""

from __future__ import annotations

import math

import numpy as np

from tether.contract import Field, IOContract
from tether.errors import TetherError
from tether.sim.backends.base import Backend
from tether.sim.robots import a1
from tether.sim.robots.base import Scene, Terrain
from tether.sim.tasks.base import StepResult, Task
from tether.sim.tasks.quadrotor import quat_to_rotmat

TERRAIN_ROUGHNESS = {"flat": 0.0, "rough": 0.08}  # m peak-to-peak bumps
TERRAIN_SIZE = 12.0  # half-extent (m): 10 s at 1 m/s from the centre stays on it
TERRAIN_RESOLUTION = 192  # samples per side: 12.5 cm spacing, bumps ~1 m apart
COMMAND_LIMITS = np.array([1.0, 0.6, 1.0])  # |vx| m/s, |vy| m/s, |yaw rate| rad/s
JOINT_VEL_LIMIT = {"hip": 52.4, "upper": 28.6, "lower": 28.6}  # URDF, rad/s
CONTACT_THRESHOLD = 1.0  # N of normal force for a foot to count as touching


def legged_observation_fields(joints: tuple[str, ...] = a1.JOINTS) -> tuple[Field, ...]:
    n = len(joints)
    vel = [JOINT_VEL_LIMIT[p] for _ in a1.LEGS for p in a1.PARTS]
    return (
        Field.make("base_ang_vel", 3, "rad/s", "body", -30.0, 30.0, ("x", "y", "z")),
        Field.make("projected_gravity", 3, "1", "body", -1.0, 1.0, ("x", "y", "z")),
        Field.make("command", 3, "m/s,m/s,rad/s", "body", -COMMAND_LIMITS, COMMAND_LIMITS, ("vx", "vy", "yaw_rate")),
        Field.make("joint_pos", n, "rad", "joint", a1.JOINT_LOWER, a1.JOINT_UPPER, joints),
        Field.make("joint_vel", n, "rad/s", "joint", -np.array(vel), np.array(vel), joints),
        Field.make("last_action", n, "1", "", -1.0, 1.0, joints),
    )


def legged_action_fields(joints: tuple[str, ...] = a1.JOINTS) -> tuple[Field, ...]:
    low, high = a1.action_bounds()
    return (Field.make("joint_pos_target", len(joints), "rad", "joint", low, high, joints),)


def legged_privileged_fields() -> tuple[Field, ...]:
    return (
        Field.make("base_lin_vel", 3, "m/s", "body", -5.0, 5.0, ("x", "y", "z")),
        Field.make("base_height", 1, "m", "terrain", 0.0, 1.0),
        Field.make("foot_contact_force", 4, "N", "", 0.0, 500.0, a1.FEET),
    )


class TerrainHeight:
    """Ground height under a point, from the terrain's own samples (engine-independent).

    Engines normalise heightfield samples to [0, 1] and scale them by the current roughness (MuJoCo
    does the normalising itself), rows along y and columns along x, so bilinear interpolation of the
    same samples is the ground under any point to within the engines' triangulation (< 1 mm here).
    """

    def __init__(self, terrain: Terrain) -> None:
        h = terrain.heights()
        self._h = (h / max(float(h.max()), 1e-12)).tolist()
        self._size = terrain.size
        self._n = terrain.resolution

    def __call__(self, x: float, y: float, roughness: float) -> float:
        if roughness <= 0.0:
            return 0.0
        n, s = self._n, self._size
        top = n - 1 - 1e-9
        u = min(max((x + s) / (2 * s) * (n - 1), 0.0), top)
        v = min(max((y + s) / (2 * s) * (n - 1), 0.0), top)
        j, i = int(u), int(v)
        fu, fv = u - j, v - i
        h = self._h
        z = (h[i][j] * (1 - fu) * (1 - fv) + h[i][j + 1] * fu * (1 - fv)
             + h[i + 1][j] * (1 - fu) * fv + h[i + 1][j + 1] * fu * fv)
        return z * roughness


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


class LeggedTask(Task):
    robot_name = "legged"
    control_modes = ("joint_position",)
    fall_height = 0.15  # trunk origin above the ground under it (m); standing is 0.267
    max_tilt = 1.0  # rad between body z and world z

    def __init__(self, robot, control_mode=None, terrain: str = "flat", terrain_seed: int = 0) -> None:
        if terrain not in TERRAIN_ROUGHNESS:
            raise TetherError(f"unknown terrain {terrain!r}; expected one of {', '.join(TERRAIN_ROUGHNESS)}")
        self.terrain_name = terrain
        self.terrain = Terrain(kind="heightfield", size=TERRAIN_SIZE, resolution=TERRAIN_RESOLUTION,
                               roughness=TERRAIN_ROUGHNESS[terrain], seed=int(terrain_seed))
        self.ground = TerrainHeight(self.terrain)
        super().__init__(robot, control_mode)
        self.command = np.zeros(3)
        self._default = robot.default_joint_pos.copy()
        self._cos_max_tilt = float(np.cos(self.max_tilt))
        self._episode = 0
        self._rough = self.terrain.roughness
        self._cache_key: tuple | None = None
        self._cache: dict = {}

    def scene(self) -> Scene:
        return Scene(terrain=self.terrain)

    def build_contract(self) -> IOContract:
        return IOContract(
            robot="legged",
            task=self.name,
            observations=legged_observation_fields(self.robot.joints),
            actions=legged_action_fields(self.robot.joints),
            control_mode=self.control_mode,
            rate_hz=self.robot.control_rate_hz,
            privileged=legged_privileged_fields(),
            metadata={"terrain": self.terrain_name, "terrain_seed": self.terrain.seed},
        )

    def neutral_action(self) -> np.ndarray:
        return self._default.copy()

    # ------------------------------------------------------------------ episode
    def _spawn(self, sim: Backend, rng: np.random.Generator, joint_noise: float) -> None:
        q = np.clip(self._default + rng.uniform(-joint_noise, joint_noise, self._default.shape),
                    self.robot.joint_lower, self.robot.joint_upper)
        self._episode += 1
        self._rough = self._roughness(sim)  # DR changes it only at reset, before this runs
        ground = self.ground(0.0, 0.0, self._rough)
        sim.set_command(q)
        sim.reset_state(q, base_pos=np.array([0.0, 0.0, self.robot.base_pos[2] + ground]),
                        base_quat=_yaw_quat(rng.uniform(-np.pi, np.pi)))
        self._prev_action = self._default.copy()
        self._prev_qd = np.zeros_like(self._default)
        self._steps = 0

    def _roughness(self, sim: Backend) -> float:
        return float(sim.get_param("terrain_roughness")[0])

    def actuate(self, sim: Backend, action: np.ndarray, substeps: int) -> None:
        sim.set_command(action)
        sim.step(substeps)

    def _state(self, sim: Backend) -> dict:
        """Base pose, velocities and foot forces, read once per control step (observe, reward and the
        privileged critic inputs all use them; the env asks for them in that order every step)."""
        key = (id(sim), self._episode, sim.time)
        if self._cache_key != key:
            pos, quat = sim.base_pose()
            lin, ang = sim.base_velocity()
            R = quat_to_rotmat(quat)
            self._cache = {"pos": pos, "R": R, "lin_body": R.T @ lin, "ang": ang, "feet": None, "height": None}
            self._cache_key = key
        return self._cache

    def _feet(self, sim: Backend) -> np.ndarray:
        st = self._state(sim)
        if st["feet"] is None:
            st["feet"] = sim.foot_contact_forces()
        return st["feet"]

    def observe(self, sim: Backend) -> dict[str, np.ndarray]:
        st = self._state(sim)
        q, qd = sim.joint_state()
        return {
            "base_ang_vel": st["ang"],
            "projected_gravity": -st["R"][2],  # R^T (0, 0, -1): world down in the body frame
            "command": self.command.copy(),
            "joint_pos": q,
            "joint_vel": qd,
        }

    def base_height(self, sim: Backend) -> float:
        """Trunk origin above the ground directly under it (m)."""
        st = self._state(sim)
        if st["height"] is None:
            pos = st["pos"]
            st["height"] = float(pos[2]) - self.ground(float(pos[0]), float(pos[1]), self._rough)
        return st["height"]

    def privileged(self, sim: Backend) -> dict[str, np.ndarray]:
        st = self._state(sim)
        return {
            "base_lin_vel": st["lin_body"],
            "base_height": np.array([self.base_height(sim)]),
            "foot_contact_force": self._feet(sim),
        }

    def _fell(self, obs: dict[str, np.ndarray], height: float) -> bool:
        return bool(height < self.fall_height or -obs["projected_gravity"][2] < self._cos_max_tilt)

    def _action_rate(self, action: np.ndarray) -> float:
        """Squared change of the normalised action since the last step (and remember this one)."""
        c = self.contract
        d = c.to_normalised(action) - c.to_normalised(self._prev_action)
        rate = float(d @ d)
        self._prev_action = np.asarray(action, dtype=float).copy()
        return rate

    def _torque_estimate(self, obs: dict[str, np.ndarray], action: np.ndarray) -> np.ndarray:
        """Nominal PD torque at the end of the step (the true one depends on DR'd gains the task cannot see)."""
        act = self.robot.actuators
        tau = act.kp * (action - obs["joint_pos"]) - act.kd * obs["joint_vel"]
        return np.minimum(np.maximum(tau, -act.torque_limit), act.torque_limit)


class Stand(LeggedTask):
    """Hold the default stance for 5 s from a slightly perturbed one.

    Success: never fell, and after 0.5 s of settling the trunk stayed within ``height_tolerance`` of the
    stance height (0.267 m above the ground) at every step.
    """

    name = "stand"
    episode_seconds = 5.0
    height_tolerance = 0.05
    settle_seconds = 0.5

    def reset(self, sim: Backend, rng: np.random.Generator) -> None:
        self.command = np.zeros(3)
        self._spawn(sim, rng, joint_noise=0.05)
        self._max_height_error = 0.0

    def evaluate(self, sim, obs, action) -> StepResult:
        self._steps += 1
        dt = 1.0 / self.robot.control_rate_hz
        h = self.base_height(sim)
        fell = self._fell(obs, h)
        err = abs(h - a1.STAND_HEIGHT)
        if self._steps * dt >= self.settle_seconds:
            self._max_height_error = max(self._max_height_error, err)
        g = obs["projected_gravity"]
        upright = float(g[0] * g[0] + g[1] * g[1])
        dq = obs["joint_pos"] - self._default
        pose = float(dq @ dq)
        qd = obs["joint_vel"]
        a_rate = self._action_rate(action)
        reward = dt * (math.exp(-((err / 0.03) ** 2)) + 0.5 * math.exp(-upright / 0.02) + 0.3 * math.exp(-pose / 0.1)
                       - 0.01 * a_rate - 0.001 * float(qd @ qd)) - (1.0 if fell else 0.0)
        success = not fell and self._steps >= self.max_steps and self._max_height_error < self.height_tolerance
        return StepResult(float(reward), fell, bool(success),
                          {"base_height": h, "height_error": err, "fallen": fell})

    def expert(self, sim: Backend) -> np.ndarray:
        """Hold the default stance: the PD gains alone keep the A1 standing."""
        return self._default.copy()


class Velocity(LeggedTask):
    """Track a planar velocity command (vx, vy, yaw rate), sampled per episode, for 10 s.

    Success: never fell, and after 1 s to get going the mean planar velocity error stayed below
    ``lin_tolerance`` and the mean yaw-rate error below ``yaw_tolerance``.
    """

    name = "velocity"
    episode_seconds = 10.0
    lin_tolerance = 0.25  # m/s
    yaw_tolerance = 0.3  # rad/s
    warmup_seconds = 1.0
    tracking_sigma = 0.25
    weights = {"lin": 1.0, "yaw": 0.5, "lin_z": -2.0, "ang_xy": -0.05, "torque": -2e-4, "dof_acc": -2.5e-7,
               "action_rate": -0.01, "air_time": 1.0}

    def reset(self, sim: Backend, rng: np.random.Generator) -> None:
        cmd = rng.uniform(-COMMAND_LIMITS, COMMAND_LIMITS)
        if np.linalg.norm(cmd[:2]) < 0.2:  # as legged_gym: tiny planar commands become "stand still"
            cmd[:2] = 0.0
        self.command = cmd
        self._moving = float(np.linalg.norm(cmd[:2]) > 0.1)
        self._spawn(sim, rng, joint_noise=0.05)
        self._air_time = np.zeros(len(self.robot.feet))
        self._was_in_contact = np.ones(len(self.robot.feet), dtype=bool)
        self._error_sums = [0.0, 0.0, 0]  # planar speed error, yaw-rate error, steps counted

    def evaluate(self, sim, obs, action) -> StepResult:
        self._steps += 1
        dt = 1.0 / self.robot.control_rate_hz
        priv = self.privileged(sim)
        v = priv["base_lin_vel"]
        h = float(priv["base_height"][0])
        fell = self._fell(obs, h)
        ex, ey = float(self.command[0] - v[0]), float(self.command[1] - v[1])
        lin_err2 = ex * ex + ey * ey
        yaw_err = float(self.command[2] - obs["base_ang_vel"][2])
        lin_err = math.sqrt(lin_err2)
        if self._steps * dt > self.warmup_seconds:
            sums = self._error_sums
            sums[0] += lin_err
            sums[1] += abs(yaw_err)
            sums[2] += 1

        contact = priv["foot_contact_force"] > CONTACT_THRESHOLD
        first_contact = contact & ~self._was_in_contact
        self._air_time += dt
        air_bonus = float((self._air_time - 0.5) @ first_contact) * self._moving
        self._air_time[contact] = 0.0
        self._was_in_contact = contact

        qd = obs["joint_vel"]
        acc = (qd - self._prev_qd) / dt
        self._prev_qd = qd.copy()
        a_rate = self._action_rate(action)
        w_body = obs["base_ang_vel"]
        tau = self._torque_estimate(obs, action)
        w = self.weights
        terms = {
            "lin": math.exp(-lin_err2 / self.tracking_sigma),
            "yaw": math.exp(-yaw_err * yaw_err / self.tracking_sigma),
            "lin_z": float(v[2] * v[2]),
            "ang_xy": float(w_body[0] * w_body[0] + w_body[1] * w_body[1]),
            "torque": float(tau @ tau),
            "dof_acc": float(acc @ acc),
            "action_rate": a_rate,
            "air_time": air_bonus,
        }
        reward = dt * sum(w[k] * terms[k] for k in w) - (1.0 if fell else 0.0)
        done = self._steps >= self.max_steps
        lin_sum, yaw_sum, n = self._error_sums
        success = bool(done and not fell and n > 0
                       and lin_sum / n < self.lin_tolerance and yaw_sum / n < self.yaw_tolerance)
        return StepResult(float(reward), fell, success,
                          {"base_height": h, "lin_vel_error": lin_err, "yaw_rate_error": abs(yaw_err), "fallen": fell})
