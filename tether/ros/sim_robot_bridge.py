"""What a served sim robot says on the wire: per robot kind, the real robot's topics, types, QoS and rules.

Each bridge turns simulator state into the messages the real robot's software stack publishes, and the real
robot's command messages into a physical command for the simulator, applying the rules the real stack applies
(so a deployment that works against a served robot has met the same preconditions it will meet on hardware):

- ``ArmBridge`` (ros2_control): ``/joint_states`` (sensor_msgs/JointState, every joint of the model, by
  name, reliable keep-last 1 like joint_state_broadcaster), commands on ``/<controller>/commands``
  (std_msgs/Float64MultiArray in the controller's joint order) and ``/joint_trajectory_controller/
  joint_trajectory`` (trajectory_msgs/JointTrajectory, matched by ``joint_names``, the last point's
  positions); a command of the wrong length or with unknown joints is rejected and counted, as the
  controllers do.
- ``PX4Bridge`` (uXRCE-DDS): ``/fmu/out/vehicle_odometry`` (NED/FRD) and ``/fmu/out/vehicle_status``
  (best-effort, transient-local, as PX4's writers); inputs ``/fmu/in/offboard_control_mode`` (heartbeat),
  ``vehicle_rates_setpoint``, ``actuator_motors``, ``vehicle_command`` (best-effort readers). Setpoints are
  only executed while armed, in offboard mode, with a heartbeat younger than ``offboard_loss_s`` whose flags
  match the setpoint kind; otherwise they are counted in ``rejected``. Mode switch to offboard is refused
  without a live heartbeat (PX4: "offboard signal lost"). When the heartbeat stops in offboard, the vehicle
  falls back to position hold where it is (PX4's COM_OBL_RC_ACT position mode); NAV_LAND descends and
  disarms on touchdown. Before offboard the vehicle holds position (it starts armed and hovering, as after a
  take-off) through a position controller standing in for PX4's own.
- ``JointLevelBridge`` (legged under ros2_control, ``--interface ros2-control``): ``/joint_states`` and
  ``/imu/data`` (sensor_msgs/Imu) out, ``/joint_group_position_controller/commands`` in.
- ``UnitreeBridge`` (unitree_go): ``/lowstate`` (LowState with crc), ``/lowcmd`` (LowCmd); a LowCmd whose
  crc does not match is dropped and counted (the firmware's rule), as is one with the wrong head/level flag.
  Passive damping (kp = 0 on every used motor) becomes "hold where you are" in the simulator, whose PD
  gains are fixed by the model; the joints still come to rest.

The goal the policy's task needs (an arm's ``target_pos``, a quadrotor's set point) is published on
``/tether/goal`` (geometry_msgs/PointStamped, reliable), which is what the adapters read; a legged robot's
velocity command is published on ``/cmd_vel`` (geometry_msgs/Twist) only when one was configured.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tether.errors import TetherError
from tether.ros import types as T
from tether.ros.qos import QoS

GOAL_TOPIC = "/tether/goal"
CMD_VEL_TOPIC = "/cmd_vel"

Noise = Callable[[np.ndarray], np.ndarray]


def _no_noise(x: np.ndarray) -> np.ndarray:
    return x


@dataclass
class BridgeCounters:
    """What the robot did with what it heard (published as part of /tether/robot_info stats)."""

    received: dict[str, int] = field(default_factory=dict)
    applied: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> count

    def got(self, topic: str) -> None:
        self.received[topic] = self.received.get(topic, 0) + 1

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {"received": dict(self.received), "applied": self.applied, "rejected": dict(self.rejected)}


class Bridge:
    """Base: ``outputs()``/``inputs()`` declare endpoints; ``state_messages()`` builds what to publish now;
    ``on_message()`` takes a command (on the transport's thread); ``actuate()`` steps the simulator."""

    kind = ""

    def __init__(self, env: Any, store: Any, *, noise: Noise = _no_noise,
                 goal: np.ndarray | None = None) -> None:
        self.env = env  # the unwrapped TetherEnv
        self.sim = env.sim
        self.task = env.task
        self.spec = env.robot_spec
        self.store = store
        self.noise = noise
        self.counters = BridgeCounters()
        self.lock = threading.Lock()
        self.goal = None if goal is None else np.asarray(goal, dtype=float)

    def outputs(self) -> list[tuple[str, str, str]]:
        return []

    def inputs(self) -> list[tuple[str, str, str]]:
        return []

    def state_messages(self) -> list[tuple[str, Any]]:
        raise NotImplementedError

    def on_message(self, topic: str, msg: Any) -> None:
        raise NotImplementedError

    def actuate(self, substeps: int) -> None:
        raise NotImplementedError

    def extra_outputs(self) -> list[tuple[str, str, Any]]:
        """Side topics that are not the robot's own (the goal for the policy's task)."""
        return [] if self.goal is None else [(GOAL_TOPIC, "geometry_msgs/msg/PointStamped", "default")]

    def extra_messages(self) -> list[tuple[str, Any]]:
        msg = self.goal_message()
        return [] if msg is None else [(GOAL_TOPIC, msg)]

    def goal_message(self) -> Any | None:
        if self.goal is None:
            return None
        p = self.store.types["geometry_msgs/msg/Point"](x=float(self.goal[0]), y=float(self.goal[1]),
                                                         z=float(self.goal[2]))
        return T.make(self.store, "geometry_msgs/msg/PointStamped", header=T.header(self.store, self.goal_frame),
                      point=p)

    goal_frame = "world"

    def summary(self) -> dict[str, Any]:
        return self.counters.as_dict()


# ------------------------------------------------------------------------------------------------ arm


class ArmBridge(Bridge):
    kind = "arm"
    goal_frame = "panda_link0"

    def __init__(self, env: Any, store: Any, *, controller: str = "forward_position_controller",
                 trajectory_controller: str = "joint_trajectory_controller", **kw: Any) -> None:
        super().__init__(env, store, **kw)
        if env.task.control_mode != "joint_position":
            raise TetherError(f"the served arm needs its task in joint_position mode; got {env.task.control_mode!r}")
        self.joints = tuple(self.spec.joints)
        self.arm_joints = self.joints[:7]
        self.command_topic = f"/{controller.strip('/')}/commands"
        self.trajectory_topic = f"/{trajectory_controller.strip('/')}/joint_trajectory"
        if self.goal is None:
            self.goal = np.asarray(self.task.target[0], dtype=float).copy()
        else:
            self.task.target[:] = self.goal
        q, _ = self.sim.joint_state()
        self.target = np.asarray(q[:7], dtype=float).copy()

    def outputs(self) -> list[tuple[str, str, str]]:
        return [("/joint_states", "sensor_msgs/msg/JointState", "system_default")]

    def inputs(self) -> list[tuple[str, str, str]]:
        return [(self.command_topic, "std_msgs/msg/Float64MultiArray", "system_default"),
                (self.trajectory_topic, "trajectory_msgs/msg/JointTrajectory", "system_default")]

    def state_messages(self) -> list[tuple[str, Any]]:
        q, qd = self.sim.joint_state()
        q, qd = self.noise(np.asarray(q, dtype=float)), self.noise(np.asarray(qd, dtype=float))
        msg = T.make(self.store, "sensor_msgs/msg/JointState", name=list(self.joints), position=q, velocity=qd,
                     effort=np.zeros(len(self.joints)))
        return [("/joint_states", msg)]

    def on_message(self, topic: str, msg: Any) -> None:
        self.counters.got(topic)
        if topic == self.command_topic:
            data = np.asarray(msg.data, dtype=float)
            if data.shape != (7,):
                self.counters.reject("wrong_length")
                return
            target = data
        else:
            names = list(msg.joint_names)
            if not msg.points or any(n not in names for n in self.arm_joints):
                self.counters.reject("bad_trajectory")
                return
            pos = np.asarray(msg.points[-1].positions, dtype=float)
            if pos.size != len(names):
                self.counters.reject("bad_trajectory")
                return
            target = pos[[names.index(n) for n in self.arm_joints]]
        if not np.all(np.isfinite(target)):
            self.counters.reject("not_finite")
            return
        with self.lock:
            self.target = target
            self.counters.applied += 1

    def actuate(self, substeps: int) -> None:
        with self.lock:
            target = self.target.copy()
        action = target
        n_act = self.task.contract.action_size
        if n_act > 7:  # a gripper field: keep it where it is
            action = np.concatenate([target, np.zeros(n_act - 7)])
        self.task.actuate(self.env.core.sim, np.atleast_2d(action), substeps)


# ------------------------------------------------------------------------------------------------ PX4

ARMING_STATE_DISARMED, ARMING_STATE_ARMED = 1, 2
NAV_POSCTL, NAV_AUTO_LOITER, NAV_OFFBOARD, NAV_AUTO_LAND = 2, 4, 14, 18
CMD_NAV_LAND, CMD_DO_SET_MODE, CMD_ARM_DISARM = 21, 176, 400
PX4_OFFBOARD_MAIN_MODE = 6
FORCE_DISARM_MAGIC = 21196.0


class PX4Bridge(Bridge):
    kind = "quadrotor"
    goal_frame = "map"

    def __init__(self, env: Any, store: Any, *, offboard_loss_s: float = 1.0, namespace: str = "",
                 land_speed: float = 0.5, **kw: Any) -> None:
        super().__init__(env, store, **kw)
        from tether.sim.robots import quadrotor as cf

        self.cf = cf
        ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
        self.t_odom, self.t_status = f"{ns}/fmu/out/vehicle_odometry", f"{ns}/fmu/out/vehicle_status"
        self.t_mode, self.t_rates = f"{ns}/fmu/in/offboard_control_mode", f"{ns}/fmu/in/vehicle_rates_setpoint"
        self.t_motors, self.t_cmd = f"{ns}/fmu/in/actuator_motors", f"{ns}/fmu/in/vehicle_command"
        self.offboard_loss_s = float(offboard_loss_s)
        self.land_speed = float(land_speed)
        self.max_thrust = float(self.spec.actuators.max_thrust)  # what the firmware is configured for
        try:  # what the motors really deliver at full command (hidden params may have changed it)
            self.motor_max = float(np.mean(self.sim.get_param("actuator_strength")))
        except Exception:
            self.motor_max = self.max_thrust
        self.rate_controller = cf.RateController(self.max_thrust)
        if self.goal is None:
            self.goal = np.asarray(self.task.goal[0], dtype=float).copy()
        else:
            self.task.goal[:] = self.goal
        pos, _ = self.sim.base_pose()
        self.hold_pos = np.asarray(pos, dtype=float).copy()
        self.armed = True  # starts airborne in position hold, as after a take-off
        self.nav_state = NAV_AUTO_LOITER
        self.last_heartbeat: float | None = None
        self.heartbeat: Any = None
        self.setpoint: tuple[str, np.ndarray] | None = None
        self.failsafes = 0
        self._integral = np.zeros(3)

    def _now_us(self) -> int:
        return time.time_ns() // 1000

    def outputs(self) -> list[tuple[str, str, Any]]:
        px4_out = QoS("best_effort", "transient_local", "keep_last", 1)  # PX4's uXRCE-DDS writers
        return [(self.t_odom, "px4_msgs/msg/VehicleOdometry", px4_out),
                (self.t_status, "px4_msgs/msg/VehicleStatus", px4_out)]

    def inputs(self) -> list[tuple[str, str, str]]:
        return [(self.t_mode, "px4_msgs/msg/OffboardControlMode", "px4_in"),
                (self.t_rates, "px4_msgs/msg/VehicleRatesSetpoint", "px4_in"),
                (self.t_motors, "px4_msgs/msg/ActuatorMotors", "px4_in"),
                # PX4 queues vehicle commands (uORB queue 8, reader depth 2x): arm + mode sent back to back both land
                (self.t_cmd, "px4_msgs/msg/VehicleCommand", QoS("best_effort", "volatile", "keep_last", 16))]

    # ------------------------------------------------------------------ rules
    def heartbeat_alive(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self.last_heartbeat is not None and now - self.last_heartbeat <= self.offboard_loss_s

    def on_message(self, topic: str, msg: Any) -> None:
        self.counters.got(topic)
        now = time.monotonic()
        with self.lock:
            if topic == self.t_mode:
                self.last_heartbeat, self.heartbeat = now, msg
            elif topic == self.t_cmd:
                self._vehicle_command(msg, now)
            elif topic in (self.t_rates, self.t_motors):
                self._setpoint(topic, msg, now)

    def _vehicle_command(self, msg: Any, now: float) -> None:
        cmd = int(msg.command)
        if cmd == CMD_ARM_DISARM:
            if msg.param1 >= 0.5:
                self.armed = True
            else:
                pos, _ = self.sim.base_pose()
                if pos[2] > 0.1 and msg.param2 != FORCE_DISARM_MAGIC:
                    self.counters.reject("disarm_in_air")
                    return
                self.armed = False
        elif cmd == CMD_DO_SET_MODE:
            if int(round(msg.param2)) == PX4_OFFBOARD_MAIN_MODE:
                if not self.heartbeat_alive(now):
                    self.counters.reject("offboard_without_heartbeat")
                    return
                self.nav_state = NAV_OFFBOARD
                self.setpoint = None
            else:
                self._hold_here(NAV_POSCTL)
        elif cmd == CMD_NAV_LAND:
            self._hold_here(NAV_AUTO_LAND)
        else:
            self.counters.reject("unsupported_command")

    def _setpoint(self, topic: str, msg: Any, now: float) -> None:
        if not (self.armed and self.nav_state == NAV_OFFBOARD and self.heartbeat_alive(now)):
            self.counters.reject("not_offboard")
            return
        hb = self.heartbeat
        if topic == self.t_rates:
            if not bool(hb.body_rate):
                self.counters.reject("mode_flag_mismatch")
                return
            from tether.hardware.adapters.px4 import decode_rates_setpoint

            thrust, rates = decode_rates_setpoint(msg, 4 * self.motor_max)
            value = np.concatenate([[thrust], rates])
        else:
            if not bool(hb.direct_actuator):
                self.counters.reject("mode_flag_mismatch")
                return
            from tether.hardware.adapters.px4 import PX4_QUAD_X_MOTOR_MAP, decode_actuator_motors

            value = decode_actuator_motors(msg, self.motor_max, PX4_QUAD_X_MOTOR_MAP)
        if not np.all(np.isfinite(value)):
            self.counters.reject("not_finite")
            return
        self.setpoint = (topic, value)
        self.counters.applied += 1

    def _hold_here(self, nav_state: int) -> None:
        pos, _ = self.sim.base_pose()
        self.hold_pos = np.asarray(pos, dtype=float).copy()  # the integrator (hover-thrust offset) is kept
        self.nav_state = nav_state
        self.setpoint = None

    # ------------------------------------------------------------------ physics
    def _position_controller(self, target: np.ndarray, dt: float) -> tuple[float, np.ndarray]:
        """PX4's position/attitude loops, reduced to a geometric PID controller (the sim task's expert law plus
        an integrator, so a vehicle heavier than nominal - hidden params - still holds its altitude)."""
        cf = self.cf
        pos, quat = self.sim.base_pose()
        lin, _ = self.sim.base_velocity()
        from tether.sim.tasks.quadrotor import quat_to_rotmat

        R = quat_to_rotmat(quat)
        err = target - pos
        self._integral = np.clip(self._integral + err * dt, -1.0, 1.0)
        a_des = 6.0 * err - 4.0 * lin + 4.0 * self._integral + np.array([0.0, 0.0, cf.GRAVITY])
        a_des[:2] = np.clip(a_des[:2], -5.0, 5.0)
        thrust = float(np.clip(cf.MASS * float(a_des @ R[:, 2]), 0.0, 4 * self.max_thrust))
        z_des = a_des / max(np.linalg.norm(a_des), 1e-9)
        rates = 12.0 * (R.T @ np.cross(R[:, 2], z_des))
        rates[2] = -2.0 * np.arctan2(R[1, 0], R[0, 0])
        return thrust, np.clip(rates, -cf.MAX_BODY_RATE, cf.MAX_BODY_RATE)

    def actuate(self, substeps: int) -> None:
        dt = self.spec.physics_dt
        with self.lock:
            if self.nav_state == NAV_OFFBOARD and not self.heartbeat_alive():
                self.failsafes += 1
                self._hold_here(NAV_POSCTL)  # offboard lost: position mode where it is
            mode, setpoint, armed = self.nav_state, self.setpoint, self.armed
            if mode == NAV_AUTO_LAND:
                pos, _ = self.sim.base_pose()
                if pos[2] < 0.05:
                    self.armed = armed = False
                else:
                    self.hold_pos[2] = max(0.0, self.hold_pos[2] - self.land_speed * dt * substeps)
            hold = self.hold_pos.copy()
        if not armed:
            self.sim.set_command(np.zeros(4))
            self.sim.step(substeps)
            return
        if mode == NAV_OFFBOARD and setpoint is not None and setpoint[0] == self.t_motors:
            self.sim.set_command(np.clip(setpoint[1], 0.0, self.motor_max))
            self.sim.step(substeps)
            return
        for _ in range(substeps):
            if mode == NAV_OFFBOARD and setpoint is not None:
                thrust, rates = float(setpoint[1][0]), setpoint[1][1:4]
            else:
                thrust, rates = self._position_controller(hold, dt)
            _, ang = self.sim.base_velocity()
            self.sim.set_command(self.rate_controller(thrust, rates, ang, dt))
            self.sim.step(1)

    def state_messages(self) -> list[tuple[str, Any]]:
        from tether.hardware.adapters.px4 import odometry_message

        pos, quat = self.sim.base_pose()
        lin, ang = self.sim.base_velocity()
        now = self._now_us()
        odom = odometry_message(self.store, self.noise(np.asarray(pos, dtype=float)), np.asarray(quat, dtype=float),
                                self.noise(np.asarray(lin, dtype=float)), self.noise(np.asarray(ang, dtype=float)),
                                now)
        with self.lock:
            status = T.make(self.store, "px4_msgs/msg/VehicleStatus", timestamp=now,
                            arming_state=ARMING_STATE_ARMED if self.armed else ARMING_STATE_DISARMED,
                            nav_state=self.nav_state, nav_state_user_intention=self.nav_state,
                            failsafe=self.failsafes > 0)
        return [(self.t_odom, odom), (self.t_status, status)]

    def summary(self) -> dict[str, Any]:
        d = super().summary()
        d.update(armed=self.armed, nav_state=self.nav_state, failsafes=self.failsafes)
        return d


# ------------------------------------------------------------------------------------------------ Unitree


class UnitreeBridge(Bridge):
    kind = "legged"

    def __init__(self, env: Any, store: Any, *, lowstate_topic: str = "/lowstate", lowcmd_topic: str = "/lowcmd",
                 command: np.ndarray | None = None, **kw: Any) -> None:
        super().__init__(env, store, **kw)
        from tether.hardware.adapters.unitree import motor_indices

        self.joints = tuple(self.spec.joints)
        self.motor_idx = motor_indices(self.joints)
        self.lowstate_topic, self.lowcmd_topic = lowstate_topic, lowcmd_topic
        self.velocity_command = None if command is None else np.asarray(command, dtype=float)
        if self.velocity_command is not None:
            self.task.command[:] = self.velocity_command
        q, _ = self.sim.joint_state()
        self.target = np.asarray(q, dtype=float).copy()
        self.damped = False
        self.tick = 0
        self._lowstate: Any = None

    def outputs(self) -> list[tuple[str, str, str]]:
        return [(self.lowstate_topic, "unitree_go/msg/LowState", "sensor_data")]

    def extra_outputs(self) -> list[tuple[str, str, Any]]:
        return [] if self.velocity_command is None else [(CMD_VEL_TOPIC, "geometry_msgs/msg/Twist", "default")]

    def inputs(self) -> list[tuple[str, str, str]]:
        return [(self.lowcmd_topic, "unitree_go/msg/LowCmd", "sensor_data")]

    def goal_message(self) -> Any | None:
        return None

    def extra_messages(self) -> list[tuple[str, Any]]:
        if self.velocity_command is None:
            return []
        v = self.velocity_command
        V3 = self.store.types["geometry_msgs/msg/Vector3"]
        return [(CMD_VEL_TOPIC, self.store.types["geometry_msgs/msg/Twist"](
            linear=V3(x=float(v[0]), y=float(v[1]), z=0.0), angular=V3(x=0.0, y=0.0, z=float(v[2]))))]

    def on_message(self, topic: str, msg: Any) -> None:
        from tether.hardware.adapters.unitree import HEAD, LEVEL_LOW, MODE_FOC, decode_lowcmd
        from tether.hardware.adapters.unitree_crc import lowcmd_crc

        self.counters.got(topic)
        if int(msg.crc) != lowcmd_crc(msg):
            self.counters.reject("bad_crc")
            return
        if tuple(int(h) for h in msg.head) != HEAD or int(msg.level_flag) != LEVEL_LOW:
            self.counters.reject("bad_head")
            return
        d = decode_lowcmd(msg, self.motor_idx)
        if np.any(d["mode"] != MODE_FOC):
            self.counters.reject("motor_off")
            return
        damp = bool(np.all(d["kp"] == 0.0))
        if not damp and not np.all(np.isfinite(d["q"])):
            self.counters.reject("not_finite")
            return
        with self.lock:
            if damp:
                if not self.damped:
                    q, _ = self.sim.joint_state()
                    self.target = np.asarray(q, dtype=float).copy()
                self.damped = True
            else:
                self.damped = False
                self.target = d["q"].copy()
            self.counters.applied += 1

    def actuate(self, substeps: int) -> None:
        with self.lock:
            target = self.target.copy()
        self.task.actuate(self.env.core.sim, np.atleast_2d(target), substeps)

    def state_messages(self) -> list[tuple[str, Any]]:
        from tether.hardware.adapters.unitree import build_lowstate
        from tether.hardware.adapters.unitree_crc import lowstate_crc
        from tether.sim.tasks.quadrotor import quat_to_rotmat

        q, qd = self.sim.joint_state()
        _, quat = self.sim.base_pose()
        _, ang = self.sim.base_velocity()
        q, qd = self.noise(np.asarray(q, dtype=float)), self.noise(np.asarray(qd, dtype=float))
        gyro = self.noise(np.asarray(ang, dtype=float))
        acc = quat_to_rotmat(quat).T @ np.array([0.0, 0.0, 9.81])
        self.tick += 1
        if self._lowstate is None:  # built once; later ticks update it in place (5x cheaper than rebuilding)
            self._lowstate = build_lowstate(self.store, self.motor_idx, q, qd, quat_wxyz=np.asarray(quat, dtype=float),
                                            gyro=gyro, acc=acc, tick=self.tick)
            return [(self.lowstate_topic, self._lowstate)]
        msg = self._lowstate
        ms = msg.motor_state
        for j, i in enumerate(self.motor_idx):
            ms[i].q, ms[i].dq = float(q[j]), float(qd[j])
        imu = msg.imu_state
        imu.quaternion = np.asarray(quat, dtype=np.float32)
        imu.gyroscope = np.asarray(gyro, dtype=np.float32)
        imu.accelerometer = np.asarray(acc, dtype=np.float32)
        msg.tick = self.tick & 0xFFFFFFFF
        msg.crc = lowstate_crc(msg)
        return [(self.lowstate_topic, msg)]

    def summary(self) -> dict[str, Any]:
        d = super().summary()
        d["damped"] = self.damped
        return d


# ------------------------------------------------------------------------------------ legged, ros2_control


class JointLevelBridge(UnitreeBridge):
    """A legged robot under ros2_control: /joint_states + /imu/data (sensor_msgs/Imu) out, a forward position
    controller's Float64MultiArray in (data in the controller's joint order = the model's joint order)."""

    def __init__(self, env: Any, store: Any, *, controller: str = "joint_group_position_controller",
                 imu_topic: str = "/imu/data", command: np.ndarray | None = None, **kw: Any) -> None:
        super().__init__(env, store, command=command, **kw)
        self.command_topic = f"/{controller.strip('/')}/commands"
        self.imu_topic = imu_topic

    def outputs(self) -> list[tuple[str, str, str]]:
        return [("/joint_states", "sensor_msgs/msg/JointState", "system_default"),
                (self.imu_topic, "sensor_msgs/msg/Imu", "sensor_data")]

    def inputs(self) -> list[tuple[str, str, str]]:
        return [(self.command_topic, "std_msgs/msg/Float64MultiArray", "system_default")]

    def on_message(self, topic: str, msg: Any) -> None:
        self.counters.got(topic)
        data = np.asarray(msg.data, dtype=float)
        if data.shape != (len(self.joints),):
            self.counters.reject("wrong_length")
            return
        if not np.all(np.isfinite(data)):
            self.counters.reject("not_finite")
            return
        with self.lock:
            self.target = data
            self.counters.applied += 1

    def state_messages(self) -> list[tuple[str, Any]]:
        from tether.hardware.adapters.joint_level import imu_message
        from tether.sim.tasks.quadrotor import quat_to_rotmat

        q, qd = self.sim.joint_state()
        _, quat = self.sim.base_pose()
        _, ang = self.sim.base_velocity()
        acc = quat_to_rotmat(quat).T @ np.array([0.0, 0.0, 9.81])
        js = T.make(self.store, "sensor_msgs/msg/JointState", name=list(self.joints),
                    position=self.noise(np.asarray(q, dtype=float)), velocity=self.noise(np.asarray(qd, dtype=float)),
                    effort=np.zeros(len(self.joints)))
        imu = imu_message(self.store, np.asarray(quat, dtype=float), self.noise(np.asarray(ang, dtype=float)), acc)
        return [("/joint_states", js), (self.imu_topic, imu)]


BRIDGES: dict[str, type[Bridge]] = {"arm": ArmBridge, "quadrotor": PX4Bridge, "legged": UnitreeBridge}
#: robot -> interface name -> bridge; the first interface is the default
INTERFACES: dict[str, dict[str, type[Bridge]]] = {
    "arm": {"ros2-control": ArmBridge},
    "quadrotor": {"px4": PX4Bridge},
    "legged": {"unitree": UnitreeBridge, "ros2-control": JointLevelBridge},
}
