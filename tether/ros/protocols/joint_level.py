"""Generic joint-level legged robot under ros2_control: /joint_states + sensor_msgs/Imu in, Float64MultiArray out.

For legged robots without a vendor low-level message: joint_state_broadcaster's /joint_states (indexed by
name), an IMU publishing ``sensor_msgs/Imu`` on ``/imu/data`` (orientation in ROS (x, y, z, w) order, converted
to Tether's (w, x, y, z) at this edge; angular velocity in the body frame), and a forward-command position
controller taking ``std_msgs/Float64MultiArray`` on /<controller>/commands in its ``joints`` parameter order.
There is no standard ROS message carrying kp/kd, so gains live in the controller (or the hardware interface)
and a guard ``damp`` here can only hold position; use the Unitree protocol where passive damping exists. The
velocity command arrives as on the Unitree protocol (a Twist topic, or a fixed value; a velocity policy given no
fixed value waits for the first Twist).

The served-robot side (:class:`JointLevelBridge`) is the Unitree bridge's simulator behind these topics.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from tether.contract import IOContract
from tether.hardware import frames
from tether.hardware.limits import RobotLimits
from tether.hardware.plausibility import StampCheck, bounded, unit_quaternion
from tether.ros import types as T
from tether.ros.protocols.adapter import RosRobot, Sub, index_by_name, joint_components
from tether.ros.protocols.common import CMD_VEL_TOPIC
from tether.ros.protocols.legged import (
    A1_JOINTS,
    LEGGED_ACTIONS,
    LEGGED_MODES,
    LEGGED_OBS,
    awaited_command,
    default_limits,
    fixed_command,
    legged_contract,
    velocity_command,
    velocity_subscription,
)
from tether.ros.protocols.ros2_control import (
    JOINT_STATES_TOPIC,
    forward_command,
    forward_topic,
    header_stamp_s,
    joint_state_fields,
    joint_state_message,
)
from tether.ros.protocols.unitree import UnitreeBridge

IMU_TOPIC = "/imu/data"
CONTROLLER = "joint_group_position_controller"


def imu_fields(msg: Any, limits: RobotLimits | None = None) -> dict[str, np.ndarray]:
    """sensor_msgs/Imu -> base_ang_vel (body), projected_gravity (body), base_quat (w, x, y, z); raises
    Implausible for a non-unit orientation or non-finite / out-of-range rates."""
    o = msg.orientation
    q = unit_quaternion("orientation", frames.xyzw_to_wxyz(np.array([o.x, o.y, o.z, o.w], dtype=float)))
    w = msg.angular_velocity
    bound = limits.state_bound("base_ang_vel") if limits is not None else np.inf
    return {
        "base_ang_vel": bounded("base_ang_vel", np.array([w.x, w.y, w.z], dtype=float), bound),
        "projected_gravity": frames.projected_gravity(q),
        "base_quat": q,
    }


def imu_message(store: Any, quat_wxyz: Sequence[float], gyro: Sequence[float],
                acc: Sequence[float] = (0.0, 0.0, 9.81), frame_id: str = "imu_link") -> Any:
    """Served-robot side of :func:`imu_fields`: a sensor_msgs/Imu (orientation in ROS x, y, z, w order)."""
    x, y, z, w = frames.wxyz_to_xyzw(np.asarray(quat_wxyz, dtype=float))
    V3, Q = store.types["geometry_msgs/msg/Vector3"], store.types["geometry_msgs/msg/Quaternion"]
    g, a = (float(v) for v in gyro), (float(v) for v in acc)
    return T.make(store, "sensor_msgs/msg/Imu", header=T.header(store, frame_id), orientation=Q(x=x, y=y, z=z, w=w),
                  angular_velocity=V3(*g), linear_acceleration=V3(*a))


class JointLevelLegged(RosRobot):
    """A ros2_control legged robot as a RobotInterface (see module docstring)."""

    robot_kind = "legged"
    serves_obs, serves_actions, serves_modes = tuple(LEGGED_OBS), tuple(LEGGED_ACTIONS), tuple(LEGGED_MODES)
    adapter_name = "joint-level"

    def __init__(
        self,
        transport: Any,
        contract: IOContract | None = None,
        *,
        limits: RobotLimits | None = None,
        controller: str = CONTROLLER,
        controller_joints: Sequence[str] | None = None,
        joint_states_topic: str = JOINT_STATES_TOPIC,
        imu_topic: str = IMU_TOPIC,
        command_topic: str | None = CMD_VEL_TOPIC,
        command: Sequence[float] | None = None,
        connect_timeout_s: float = 5.0,
        distro: str = "humble",
    ) -> None:
        limits = limits or default_limits()
        super().__init__(transport, limits=limits, connect_timeout_s=connect_timeout_s, distro=distro)
        self.contract = contract or legged_contract(limits)
        self.check_contract(self.contract)
        self.joints = joint_components(self.contract, "joint_pos", A1_JOINTS)
        self.action_joints = joint_components(self.contract, "joint_pos_target", self.joints)
        self.controller_joints = tuple(controller_joints or self.action_joints)
        index_by_name(self.action_joints, self.controller_joints, "the contract's action joints")
        self.joint_states_topic, self.imu_topic = joint_states_topic, imu_topic
        self.command_topic = command_topic
        self.fixed_command = fixed_command(command)
        self.command_out = forward_topic(controller)
        self.awaited_from = awaited_command(self.contract, command_topic, self.fixed_command)
        self.required_topics = (joint_states_topic, imu_topic) + tuple(self.awaited_from)
        self.control_topic = self.command_out
        self._stamps = {joint_states_topic: StampCheck(), imu_topic: StampCheck()}

    def _stamped(self, topic: str, msg: Any, fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        stamp = header_stamp_s(msg)
        if stamp is not None:
            self._stamps[topic].check(stamp, time.monotonic())
        return fields

    def _subscriptions(self) -> list[Sub]:
        js, imu = self.joint_states_topic, self.imu_topic
        subs = [Sub(js, "sensor_msgs/msg/JointState", "sensor_data",
                    lambda m: self._stamped(js, m, joint_state_fields(m, self.joints, self.robot_limits))),
                Sub(imu, "sensor_msgs/msg/Imu", "sensor_data",
                    lambda m: self._stamped(imu, m, imu_fields(m, self.robot_limits)))]
        return subs + velocity_subscription(self.command_topic)

    def _publishers(self) -> list[tuple[str, str, Any]]:
        return [(self.command_out, "std_msgs/msg/Float64MultiArray", "command")]

    def read_state(self) -> tuple[dict[str, np.ndarray], float]:
        js, t_js = self._need(self.joint_states_topic)
        imu, t_imu = self._need(self.imu_topic)
        obs = dict(js)
        obs.update(imu)
        obs["command"] = velocity_command(self.latest, self.command_topic, self.fixed_command)
        return obs, min(t_js, t_imu)  # the state is only as fresh as its oldest part

    def send(self, command: np.ndarray, *, damp: bool = False) -> None:
        msg = forward_command(self.store, command, self.action_joints, self.controller_joints)
        self._pub(self.command_out).publish(msg)


class JointLevelBridge(UnitreeBridge):
    """A legged robot under ros2_control: /joint_states + /imu/data (sensor_msgs/Imu) out, a forward position
    controller's Float64MultiArray in (data in the controller's joint order = the model's joint order)."""

    def __init__(self, env: Any, store: Any, *, controller: str = CONTROLLER, imu_topic: str = IMU_TOPIC,
                 command: np.ndarray | None = None, **kw: Any) -> None:
        super().__init__(env, store, command=command, **kw)
        self.command_topic = forward_topic(controller)
        self.imu_topic = imu_topic

    def outputs(self) -> list[tuple[str, str, Any]]:
        return [(JOINT_STATES_TOPIC, "sensor_msgs/msg/JointState", "system_default"),
                (self.imu_topic, "sensor_msgs/msg/Imu", "sensor_data")]

    def inputs(self) -> list[tuple[str, str, Any]]:
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
        q, qd = self.sim.joint_state()
        q, qd = self.noise(np.asarray(q, dtype=float)), self.noise(np.asarray(qd, dtype=float))
        quat, gyro, acc = self.imu()
        js = joint_state_message(self.store, self.joints, q, qd)
        return [(JOINT_STATES_TOPIC, js), (self.imu_topic, imu_message(self.store, quat, gyro, acc))]
