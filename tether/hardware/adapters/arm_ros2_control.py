"""Franka-style arm under ros2_control: /joint_states in, forward-command or trajectory commands out.

In: ``sensor_msgs/JointState`` on /joint_states, always indexed by joint *name* (the broadcaster's order is
its own and may change between launches); a joint the contract needs but the message lacks is an error that
names it. ``ee_pos`` is computed by Panda forward kinematics; ``target_pos`` comes from a
``geometry_msgs/PointStamped`` goal topic (default /tether/goal) or a fixed parameter.

Out, selected by ``command_interface``:
- ``forward``: ``std_msgs/Float64MultiArray`` on /<controller>/commands, data in the controller's ``joints``
  parameter order (``controller_joints``; defaults to the contract's joint order), as
  position_controllers/JointGroupPositionController expects;
- ``trajectory``: ``trajectory_msgs/JointTrajectory`` on /<controller>/joint_trajectory with one point reached
  ``time_from_start`` after receipt (header stamp zero = "start now" for the JTC).
An ``ee_delta_pose`` contract is executed through one damped-least-squares IK step per tick onto the same
joint-position interface, so any position controller can run it. An optional ``gripper`` action (opening
width, m) goes to a second forward controller (``gripper_controller``) as [width/2, width/2] for the two
finger joints, which is how a ros2_control parallel gripper with position interfaces takes it (the Franka Hand's
own driver uses actions instead, which need the rclpy transport).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tether.contract import Field, IOContract
from tether.errors import TetherError
from tether.hardware.adapters._ros import (
    RosRobot,
    check_serves,
    goal_subscription,
    goal_value,
    index_by_name,
    joint_components,
)
from tether.hardware.kinematics import (
    PANDA_HAND_TCP,
    PANDA_JOINTS,
    PANDA_Q_HIGH,
    PANDA_Q_LOW,
    ee_delta_to_joint_targets,
    panda_fk,
)

COMMAND_INTERFACES = ("forward", "trajectory")
ARM_OBS = ("joint_pos", "joint_vel", "ee_pos", "target_pos")
ARM_ACTIONS = ("joint_pos_target", "ee_delta_pos", "gripper")
ARM_MODES = ("joint_position", "ee_delta_pose")


def arm_contract(
    *,
    robot: str = "arm",
    task: str = "reach",
    mode: str = "joint_position",
    rate_hz: float = 20.0,
    joint_low: Sequence[float] = tuple(PANDA_Q_LOW),
    joint_high: Sequence[float] = tuple(PANDA_Q_HIGH),
    ee_delta_max: float = 0.05,
    joints: Sequence[str] = PANDA_JOINTS,
    gripper_max: float | None = None,
) -> IOContract:
    """The arm contract in the shared vocabulary, with the limits the caller gives (defaults: Panda datasheet)."""
    j = tuple(joints)
    obs = (
        Field.make("joint_pos", len(j), "rad", "joint", components=j),
        Field.make("joint_vel", len(j), "rad/s", "joint", components=j),
        Field.make("ee_pos", 3, "m", "base", components=("x", "y", "z")),
        Field.make("target_pos", 3, "m", "base", components=("x", "y", "z")),
    )
    if mode == "joint_position":
        act: tuple[Field, ...] = (
            Field.make("joint_pos_target", len(j), "rad", "joint", low=joint_low, high=joint_high, components=j),)
    elif mode == "ee_delta_pose":
        act = (Field.make("ee_delta_pos", 3, "m", "base", low=-ee_delta_max, high=ee_delta_max,
                          components=("x", "y", "z")),)
    else:
        raise TetherError(f"arm control mode {mode!r}; expected one of {', '.join(ARM_MODES)}")
    if gripper_max is not None:
        act = (*act, Field.make("gripper", 1, "m", "", low=0.0, high=gripper_max, components=("width",)))
    return IOContract(robot, task, obs, act, mode, rate_hz)


def joint_state_fields(msg: Any, joints: Sequence[str]) -> dict[str, np.ndarray]:
    """JointState -> joint_pos / joint_vel (and joint_effort when present) in ``joints`` order, by name."""
    idx = index_by_name(list(msg.name), joints, "/joint_states")
    pos = np.asarray(msg.position, dtype=float)
    if pos.size != len(msg.name):
        raise TetherError(f"/joint_states has {len(msg.name)} names but {pos.size} positions; expected equal")
    out = {"joint_pos": pos[idx]}
    vel = np.asarray(msg.velocity, dtype=float)
    out["joint_vel"] = vel[idx] if vel.size == len(msg.name) else np.zeros(len(joints))
    eff = np.asarray(msg.effort, dtype=float)
    if eff.size == len(msg.name):
        out["joint_effort"] = eff[idx]
    return out


def forward_command(store: Any, targets: np.ndarray, contract_joints: Sequence[str],
                    controller_joints: Sequence[str]) -> Any:
    """Float64MultiArray with data in the controller's joint order (which may differ from the policy's)."""
    from tether.ros.types import make

    idx = index_by_name(list(contract_joints), controller_joints, "the contract's joint list")
    return make(store, "std_msgs/msg/Float64MultiArray", data=np.asarray(targets, dtype=float)[idx])


def trajectory_command(store: Any, targets: np.ndarray, joints: Sequence[str], time_from_start_s: float) -> Any:
    """One-point JointTrajectory; zero header stamp means 'start on receipt' to the JTC."""
    from tether.ros.types import make

    point = make(store, "trajectory_msgs/msg/JointTrajectoryPoint",
                 positions=np.asarray(targets, dtype=float),
                 time_from_start=store.types["builtin_interfaces/msg/Duration"](
                     **_sec_nsec(time_from_start_s)))
    hdr = store.types["std_msgs/msg/Header"](
        stamp=store.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="")
    return make(store, "trajectory_msgs/msg/JointTrajectory", header=hdr, joint_names=list(joints), points=[point])


def _sec_nsec(t: float) -> dict[str, int]:
    sec, nsec = divmod(round(t * 1e9), 1_000_000_000)
    return {"sec": int(sec), "nanosec": int(nsec)}


class ArmRos2Control(RosRobot):
    """A ros2_control arm as a RobotInterface (see module docstring for topics and types)."""

    def __init__(
        self,
        transport: Any,
        contract: IOContract | None = None,
        *,
        controller: str = "joint_group_position_controller",
        command_interface: str = "forward",
        controller_joints: Sequence[str] | None = None,
        joint_states_topic: str = "/joint_states",
        goal_topic: str | None = "/tether/goal",
        goal: Sequence[float] | None = None,
        ee_offset: float = PANDA_HAND_TCP,
        trajectory_time_s: float | None = None,
        gripper_controller: str = "gripper_controller",
        connect_timeout_s: float = 5.0,
        distro: str = "humble",
    ) -> None:
        super().__init__(transport, connect_timeout_s=connect_timeout_s, distro=distro)
        self.contract = contract or arm_contract()
        check_serves(self.contract, ARM_OBS, ARM_ACTIONS, ARM_MODES, "arm-ros2-control")
        if command_interface not in COMMAND_INTERFACES:
            raise TetherError(
                f"command interface {command_interface!r}; expected one of {', '.join(COMMAND_INTERFACES)}")
        self.joints = joint_components(self.contract, "joint_pos", PANDA_JOINTS)
        if len(self.joints) != 7:
            raise TetherError(f"the Panda FK needs 7 joints; contract has {list(self.joints)}")
        act_joints = (joint_components(self.contract, "joint_pos_target", self.joints)
                      if self.contract.control_mode == "joint_position" else self.joints)
        self.command_joints = act_joints
        self.controller_joints = tuple(controller_joints or act_joints)
        index_by_name(act_joints, self.controller_joints, "the contract's action joints")  # fail early
        self.command_interface = command_interface
        self.joint_states_topic = joint_states_topic
        self.goal_topic = goal_topic
        self.goal = None if goal is None else np.asarray(goal, dtype=float)
        self.ee_offset = ee_offset
        self.trajectory_time_s = trajectory_time_s if trajectory_time_s is not None else self.contract.dt
        name = controller.strip("/")
        self.command_topic = f"/{name}/commands" if command_interface == "forward" else f"/{name}/joint_trajectory"
        names = [f.name for f in self.contract.actions]
        self.has_gripper = "gripper" in names
        self.gripper_topic = f"/{gripper_controller.strip('/')}/commands"
        arm_field = next(n for n in names if n != "gripper")
        self._arm_slice = self.contract.action_slices[arm_field]
        self.required_topics = (joint_states_topic,)
        self._last_q: np.ndarray | None = None

    def _subscriptions(self) -> list[tuple[str, str, str]]:
        return [(self.joint_states_topic, "sensor_msgs/msg/JointState", "sensor_data"),
                *goal_subscription(self.goal_topic)]

    def _publishers(self) -> list[tuple[str, str, str]]:
        msgtype = ("std_msgs/msg/Float64MultiArray" if self.command_interface == "forward"
                   else "trajectory_msgs/msg/JointTrajectory")
        pubs = [(self.command_topic, msgtype, "command")]
        if self.has_gripper:
            pubs.append((self.gripper_topic, "std_msgs/msg/Float64MultiArray", "command"))
        return pubs

    def read_state(self) -> tuple[dict[str, np.ndarray], float]:
        msg, stamp = self._need(self.joint_states_topic)
        obs = joint_state_fields(msg, self.joints)
        obs["ee_pos"] = panda_fk(obs["joint_pos"], self.ee_offset)
        obs["target_pos"] = goal_value(self.latest, self.goal_topic, self.goal, "arm target_pos")
        self._last_q = obs["joint_pos"]
        return obs, stamp

    def joint_targets(self, command: np.ndarray) -> np.ndarray:
        """Physical action -> joint targets in ``command_joints`` order (IK for ee_delta_pose)."""
        command = np.asarray(command, dtype=float).reshape(-1)
        if self.contract.control_mode == "joint_position":
            return command
        if self._last_q is None:
            raise TetherError("ee_delta_pose command before any joint state; expected read_state() first")
        return ee_delta_to_joint_targets(self._last_q, command[:3], ee_offset=self.ee_offset)

    def send(self, command: np.ndarray, *, damp: bool = False) -> None:
        command = np.asarray(command, dtype=float).reshape(-1)
        if command.shape != (self.contract.action_size,):
            raise TetherError(f"command has {command.size} elements; expected {self.contract.action_size}")
        targets = self.joint_targets(command[self._arm_slice])
        if self.command_interface == "forward":
            msg = forward_command(self.store, targets, self.command_joints, self.controller_joints)
        else:
            msg = trajectory_command(self.store, targets, self.command_joints, self.trajectory_time_s)
        self._pub(self.command_topic).publish(msg)
        if self.has_gripper:
            half = float(command[self.contract.action_slices["gripper"]][0]) / 2.0
            self._pub(self.gripper_topic).publish(self.make("std_msgs/msg/Float64MultiArray", data=[half, half]))
