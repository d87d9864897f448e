"""Generic joint-level legged robot under ros2_control: /joint_states + sensor_msgs/Imu in, Float64MultiArray out.

For legged robots without a vendor low-level message: joint_state_broadcaster's /joint_states (indexed by
name), an IMU publishing ``sensor_msgs/Imu`` (orientation in ROS (x, y, z, w) order, converted to Tether's
(w, x, y, z) at this edge; angular velocity in the body frame), and a forward-command position controller
taking ``std_msgs/Float64MultiArray`` on /<controller>/commands in its ``joints`` parameter order. There is no
standard ROS message carrying kp/kd, so gains live in the controller (or the hardware interface) and a
guard ``damp`` here can only hold position; use the Unitree adapter where passive damping is available.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tether.contract import IOContract
from tether.hardware import frames
from tether.hardware.adapters._legged import (
    A1_JOINTS,
    LEGGED_ACTIONS,
    LEGGED_MODES,
    LEGGED_OBS,
    legged_contract,
    velocity_command,
)
from tether.hardware.adapters._ros import RosRobot, check_serves, index_by_name, joint_components
from tether.hardware.adapters.arm_ros2_control import forward_command, joint_state_fields


def imu_fields(msg: Any) -> dict[str, np.ndarray]:
    """sensor_msgs/Imu -> base_ang_vel (body), projected_gravity (body), base_quat (w, x, y, z)."""
    o = msg.orientation
    q = frames.xyzw_to_wxyz(np.array([o.x, o.y, o.z, o.w], dtype=float))
    w = msg.angular_velocity
    return {
        "base_ang_vel": np.array([w.x, w.y, w.z], dtype=float),
        "projected_gravity": frames.projected_gravity(q),
        "base_quat": q,
    }


def imu_message(store: Any, quat_wxyz: Sequence[float], gyro: Sequence[float],
                acc: Sequence[float] = (0.0, 0.0, 9.81), frame_id: str = "imu_link") -> Any:
    """Served-robot side of :func:`imu_fields`: a sensor_msgs/Imu (orientation in ROS x, y, z, w order)."""
    from tether.ros.types import header, make

    x, y, z, w = frames.wxyz_to_xyzw(np.asarray(quat_wxyz, dtype=float))
    V3, Q = store.types["geometry_msgs/msg/Vector3"], store.types["geometry_msgs/msg/Quaternion"]
    g, a = (float(v) for v in gyro), (float(v) for v in acc)
    return make(store, "sensor_msgs/msg/Imu", header=header(store, frame_id), orientation=Q(x=x, y=y, z=z, w=w),
                angular_velocity=V3(*g), linear_acceleration=V3(*a))


class JointLevelLegged(RosRobot):
    """A ros2_control legged robot as a RobotInterface (see module docstring)."""

    def __init__(
        self,
        transport: Any,
        contract: IOContract | None = None,
        *,
        controller: str = "joint_group_position_controller",
        controller_joints: Sequence[str] | None = None,
        joint_states_topic: str = "/joint_states",
        imu_topic: str = "/imu/data",
        command_topic: str | None = "/cmd_vel",
        command: Sequence[float] = (0.0, 0.0, 0.0),
        connect_timeout_s: float = 5.0,
        distro: str = "humble",
    ) -> None:
        super().__init__(transport, connect_timeout_s=connect_timeout_s, distro=distro)
        self.contract = contract or legged_contract()
        check_serves(self.contract, LEGGED_OBS, LEGGED_ACTIONS, LEGGED_MODES, "joint-level")
        self.joints = joint_components(self.contract, "joint_pos", A1_JOINTS)
        self.action_joints = joint_components(self.contract, "joint_pos_target", self.joints)
        self.controller_joints = tuple(controller_joints or self.action_joints)
        index_by_name(self.action_joints, self.controller_joints, "the contract's action joints")
        self.joint_states_topic, self.imu_topic = joint_states_topic, imu_topic
        self.command_topic = command_topic
        self.fixed_command = np.asarray(command, dtype=float)
        self.command_out = f"/{controller.strip('/')}/commands"
        self.required_topics = (joint_states_topic, imu_topic)

    def _subscriptions(self) -> list[tuple[str, str, str]]:
        subs = [(self.joint_states_topic, "sensor_msgs/msg/JointState", "sensor_data"),
                (self.imu_topic, "sensor_msgs/msg/Imu", "sensor_data")]
        if self.command_topic is not None:
            subs.append((self.command_topic, "geometry_msgs/msg/Twist", "default"))
        return subs

    def _publishers(self) -> list[tuple[str, str, str]]:
        return [(self.command_out, "std_msgs/msg/Float64MultiArray", "command")]

    def read_state(self) -> tuple[dict[str, np.ndarray], float]:
        js, t_js = self._need(self.joint_states_topic)
        imu, t_imu = self._need(self.imu_topic)
        obs = joint_state_fields(js, self.joints)
        obs.update(imu_fields(imu))
        obs["command"] = velocity_command(self.latest, self.command_topic, self.fixed_command)
        return obs, min(t_js, t_imu)  # the state is only as fresh as its oldest part

    def send(self, command: np.ndarray, *, damp: bool = False) -> None:
        msg = forward_command(self.store, command, self.action_joints, self.controller_joints)
        self._pub(self.command_out).publish(msg)
