"""ros2_control arm (Franka Panda class): /joint_states in, forward-command or trajectory commands out.

Wire (what a ros2_control arm speaks):
- in: ``sensor_msgs/JointState`` on ``/joint_states`` (best-effort reader: matches every broadcaster), always
  indexed by joint *name* (the broadcaster's order is its own and may change between launches);
- out, by ``command_interface``: ``forward`` = ``std_msgs/Float64MultiArray`` on ``/<controller>/commands`` in
  the controller's ``joints`` parameter order (position_controllers/JointGroupPositionController), or
  ``trajectory`` = ``trajectory_msgs/JointTrajectory`` on ``/<controller>/joint_trajectory`` with one point
  reached ``time_from_start`` after receipt (header stamp zero = "start now" for the JTC); an optional gripper
  width goes to a second forward controller as [width/2, width/2] (a parallel gripper with position
  interfaces; the Franka Hand's own driver uses actions, which need the rclpy transport).

A task that observes an object (arm push: ``cube_pos``) reads its pose as ``geometry_msgs/PoseStamped`` on
``/tether/objects/<name>/pose`` (a motion-capture or vision tracker's output, in the arm's base frame
``panda_link0``; a pose in any other frame is dropped, as the policy's frame is the base's). The goal the task
pushes toward (``goal_pos``) is the same ``/tether/goal`` a reach task's ``target_pos`` reads. The observation's
stamp is the older of the joint state's and the object pose's, so a tracker that stops makes the state stale
(deploy's hold / damp), never a cube held where it was last seen.

Kinematics are the simulator's (:mod:`tether.sim.ik` on the same URDF): ``ee_pos`` is the chain's forward
kinematics, and an ``ee_delta_pose`` policy is executed exactly as the sim arm task executes it - one damped
least-squares step from the *commanded* joint positions toward a point kept in the workspace and within
``MAX_LEAD`` of the measured TCP, the whole joint step scaled to the joint speed limits (:meth:`ArmRos2Control.
ik_targets`). The guard then bounds those joint targets (limits and joint speeds from the robot's limits file),
so what reaches the arm is checked in the units it receives, whatever the IK or a spoofed /joint_states did.

The served-robot side (:class:`ArmBridge`) publishes every joint of the model and accepts both command kinds,
rejecting (and counting) a command of the wrong length, with unknown joints or non-finite values, as the
controllers do.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from tether.contract import Field, IOContract
from tether.errors import TetherError
from tether.hardware.limits import RobotLimits
from tether.hardware.plausibility import Implausible, StampCheck, bounded
from tether.ros import types as T
from tether.ros.protocols.adapter import (
    PublisherFilter,
    RosRobot,
    Sub,
    fixed_goal,
    goal_subscription,
    goal_value,
    index_by_name,
    joint_components,
    with_action_limits,
)
from tether.ros.protocols.bridge import Bridge
from tether.ros.protocols.common import GOAL_TOPIC
from tether.sim.robots import panda as P
from tether.sim.tasks import arm as arm_task
from tether.sim.tasks.arm import CartesianStepController

JOINT_STATES_TOPIC = "/joint_states"
FORWARD_CONTROLLER = "forward_position_controller"
TRAJECTORY_CONTROLLER = "joint_trajectory_controller"
COMMAND_INTERFACES = ("forward", "trajectory")
ARM_OBS = ("joint_pos", "joint_vel", "ee_pos", "target_pos", "cube_pos", "goal_pos")
BASE_FRAME = P.BASE_BODY
ARM_ACTIONS = ("joint_pos_target", "ee_delta_pos", "gripper")
ARM_MODES = ("joint_position", "ee_delta_pose")
STATE_QOS, COMMAND_QOS = "sensor_data", "command"


def forward_topic(controller: str) -> str:
    return f"/{controller.strip('/')}/commands"


def trajectory_topic(controller: str) -> str:
    return f"/{controller.strip('/')}/joint_trajectory"


def object_topic(name: str) -> str:
    """Where a tracked object's pose arrives (PoseStamped in the arm's base frame)."""
    return f"/tether/objects/{name}/pose"


# ---------------------------------------------------------------------------------------------- model


def default_limits() -> RobotLimits:
    """The Panda's datasheet limits (the sim model's): joint range and speed, TCP step, gripper width."""
    command = {f"joint_pos_target.{j}": (float(lo), float(hi)) for j, lo, hi in zip(P.ARM_JOINTS, P.Q_LOW, P.Q_HIGH)}
    command.update({f"ee_delta_pos.{a}": (-arm_task.EE_STEP, arm_task.EE_STEP) for a in arm_task.XYZ})
    command["gripper.width"] = (0.0, 2 * P.FINGER_MAX)
    rates = {f"joint_pos_target.{j}": float(v) for j, v in zip(P.ARM_JOINTS, P.VELOCITY_LIMIT)}
    state = {"joint_pos": float(np.max(np.abs(np.r_[P.Q_LOW, P.Q_HIGH]))) + 0.5,
             "joint_vel": 3.0 * float(np.max(P.VELOCITY_LIMIT)), "goal": 1.5, "object": 1.5}
    return RobotLimits("franka_panda", command, rates, {}, state)


_TASK_CONTRACTS: dict[tuple[str, str, bool], IOContract] = {}


def arm_contract(limits: RobotLimits | None = None, *, task: str = "reach", mode: str = "joint_position",
                 rate_hz: float | None = None, gripper: bool = False) -> IOContract:
    """The sim arm task's contract (fields from the task itself) with the robot's action limits."""
    from tether.sim.robots import make_robot
    from tether.sim.tasks import make_task

    if mode not in ARM_MODES:
        raise TetherError(f"arm control mode {mode!r}; expected one of {', '.join(ARM_MODES)}")
    key = (task, mode, gripper)
    if key not in _TASK_CONTRACTS:
        kwargs = {"gripper": True} if gripper else {}
        _TASK_CONTRACTS[key] = make_task("arm", task, make_robot("arm"), control_mode=mode, **kwargs).contract
    c = with_action_limits(_TASK_CONTRACTS[key], limits or default_limits())
    return c if rate_hz is None else dataclasses.replace(c, rate_hz=float(rate_hz))


@lru_cache(maxsize=4)
def panda_chain() -> Any:
    """The arm's kinematic chain from the sim model's URDF (base link -> TCP)."""
    from tether.sim.ik import SerialChain

    return SerialChain(P.panda_urdf(), P.BASE_BODY, P.EE_BODY)


# ---------------------------------------------------------------------------------------- encode/decode


def joint_state_fields(msg: Any, joints: Sequence[str], limits: RobotLimits | None = None) -> dict[str, np.ndarray]:
    """JointState -> joint_pos / joint_vel (and joint_effort when present) in ``joints`` order, by name.

    Raises Implausible (the message is dropped) for missing joints, mismatched array lengths, non-finite or
    out-of-range values."""
    names = list(msg.name)
    try:
        idx = index_by_name(names, joints, JOINT_STATES_TOPIC)
    except TetherError as exc:
        raise Implausible("missing_joints", str(exc)) from None
    pos = np.asarray(msg.position, dtype=float)
    if pos.size != len(names):
        raise Implausible("length_mismatch", f"{len(names)} names but {pos.size} positions")
    pos_bound = limits.state_bound("joint_pos") if limits is not None else np.inf
    vel_bound = limits.state_bound("joint_vel") if limits is not None else np.inf
    out = {"joint_pos": bounded("joint_pos", pos[idx], pos_bound)}
    vel = np.asarray(msg.velocity, dtype=float)
    out["joint_vel"] = bounded("joint_vel", vel[idx], vel_bound) if vel.size == len(names) else np.zeros(len(joints))
    eff = np.asarray(msg.effort, dtype=float)
    if eff.size == len(names):
        out["joint_effort"] = eff[idx]
    return out


def joint_state_message(store: Any, names: Sequence[str], q: np.ndarray, qd: np.ndarray) -> Any:
    return T.make(store, "sensor_msgs/msg/JointState", header=T.header(store, ""), name=list(names),
                  position=np.asarray(q, dtype=float), velocity=np.asarray(qd, dtype=float),
                  effort=np.zeros(len(names)))


def object_position(msg: Any, frame: str, bound: float) -> np.ndarray:
    """PoseStamped -> the object's position (x, y, z) in ``frame``. Implausible (dropped) when the pose is in
    another frame, or not finite, or farther than ``bound`` from the base."""
    if msg.header.frame_id != frame:
        raise Implausible("wrong_frame", f"pose in frame {msg.header.frame_id!r}; expected {frame!r}")
    p = msg.pose.position
    return bounded("object", np.array([p.x, p.y, p.z], dtype=float), bound)


def object_pose_message(store: Any, pos: np.ndarray, quat_wxyz: np.ndarray, frame: str = BASE_FRAME) -> Any:
    """The served side of :func:`object_position`: a tracker's PoseStamped."""
    p, q = np.asarray(pos, dtype=float), np.asarray(quat_wxyz, dtype=float)
    pose = store.types["geometry_msgs/msg/Pose"](
        position=store.types["geometry_msgs/msg/Point"](x=float(p[0]), y=float(p[1]), z=float(p[2])),
        orientation=store.types["geometry_msgs/msg/Quaternion"](w=float(q[0]), x=float(q[1]), y=float(q[2]),
                                                              z=float(q[3])))
    return T.make(store, "geometry_msgs/msg/PoseStamped", header=T.header(store, frame), pose=pose)


def header_stamp_s(msg: Any) -> float | None:
    """header.stamp in seconds, None when unset (zero)."""
    st = msg.header.stamp
    return None if st.sec == 0 and st.nanosec == 0 else st.sec + st.nanosec * 1e-9


def forward_command(store: Any, targets: np.ndarray, contract_joints: Sequence[str],
                    controller_joints: Sequence[str]) -> Any:
    """Float64MultiArray with data in the controller's joint order (which may differ from the policy's)."""
    idx = index_by_name(list(contract_joints), controller_joints, "the contract's joint list")
    return T.make(store, "std_msgs/msg/Float64MultiArray", data=np.asarray(targets, dtype=float)[idx])


def trajectory_command(store: Any, targets: np.ndarray, joints: Sequence[str], time_from_start_s: float) -> Any:
    """One-point JointTrajectory; zero header stamp means 'start on receipt' to the JTC."""
    point = T.make(store, "trajectory_msgs/msg/JointTrajectoryPoint",
                   positions=np.asarray(targets, dtype=float),
                   time_from_start=store.types["builtin_interfaces/msg/Duration"](**_sec_nsec(time_from_start_s)))
    hdr = store.types["std_msgs/msg/Header"](
        stamp=store.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="")
    return T.make(store, "trajectory_msgs/msg/JointTrajectory", header=hdr, joint_names=list(joints), points=[point])


def decode_trajectory(msg: Any, joints: Sequence[str]) -> np.ndarray | None:
    """Served-robot side of :func:`trajectory_command`: the last point's positions for ``joints``, or None."""
    names = list(msg.joint_names)
    if not msg.points or any(n not in names for n in joints):
        return None
    pos = np.asarray(msg.points[-1].positions, dtype=float)
    if pos.size != len(names):
        return None
    return pos[[names.index(n) for n in joints]]


def _sec_nsec(t: float) -> dict[str, int]:
    sec, nsec = divmod(round(t * 1e9), 1_000_000_000)
    return {"sec": int(sec), "nanosec": int(nsec)}


# ---------------------------------------------------------------------------------------------- adapter


class ArmRos2Control(RosRobot):
    """A ros2_control arm as a RobotInterface (see module docstring for topics and types)."""

    robot_kind = "arm"
    serves_obs, serves_actions, serves_modes = tuple(ARM_OBS), tuple(ARM_ACTIONS), tuple(ARM_MODES)
    adapter_name = "arm-ros2-control"

    def __init__(
        self,
        transport: Any,
        contract: IOContract | None = None,
        *,
        limits: RobotLimits | None = None,
        controller: str = "joint_group_position_controller",
        command_interface: str = "forward",
        controller_joints: Sequence[str] | None = None,
        joint_states_topic: str = JOINT_STATES_TOPIC,
        goal_topic: str | None = GOAL_TOPIC,
        goal: Sequence[float] | None = None,
        goal_publishers: PublisherFilter | None = None,
        trajectory_time_s: float | None = None,
        gripper_controller: str = "gripper_controller",
        object_topics: Mapping[str, str] | None = None,
        object_frame: str = BASE_FRAME,
        connect_timeout_s: float = 5.0,
        distro: str = "humble",
    ) -> None:
        limits = limits or default_limits()
        super().__init__(transport, limits=limits, connect_timeout_s=connect_timeout_s, distro=distro)
        self.contract = contract or arm_contract(limits)
        self.check_contract(self.contract)
        if command_interface not in COMMAND_INTERFACES:
            raise TetherError(
                f"command interface {command_interface!r}; expected one of {', '.join(COMMAND_INTERFACES)}")
        self.joints = joint_components(self.contract, "joint_pos", P.ARM_JOINTS)
        if len(self.joints) != 7:  # the chain's joints 1..7, in order, whatever the robot calls them
            raise TetherError(f"the Panda chain has 7 joints; contract has {list(self.joints)}")
        self.ee_mode = self.contract.control_mode == "ee_delta_pose"
        act_joints = (joint_components(self.contract, "joint_pos_target", self.joints) if not self.ee_mode
                      else self.joints)
        self.command_joints = act_joints
        self.controller_joints = tuple(controller_joints or act_joints)
        index_by_name(act_joints, self.controller_joints, "the contract's action joints")  # fail early
        self.command_interface = command_interface
        self.joint_states_topic = joint_states_topic
        self.goal_topic = goal_topic
        self.goal = fixed_goal(goal, limits.state_bound("goal"))
        self.goal_publishers = goal_publishers or PublisherFilter()
        self.trajectory_time_s = trajectory_time_s if trajectory_time_s is not None else self.contract.dt
        self.command_topic = (forward_topic(controller) if command_interface == "forward"
                              else trajectory_topic(controller))
        names = [f.name for f in self.contract.actions]
        self.has_gripper = "gripper" in names
        # Cartesian steps through IK from the commanded joints (the measured ones at the start); a gripper's
        # command is a width, which could jump
        self.incremental_commands = self.ee_mode and not self.has_gripper
        self.gripper_topic = forward_topic(gripper_controller)
        self._command_contract = self._build_command_contract()
        # the sim arm's own ee_delta_pose controller, with this robot's joint bounds and speeds
        jl, jh = limits.bounds(self._arm_only(self._command_contract))
        rates = limits.rates(self._arm_only(self._command_contract))
        self.controller = CartesianStepController(P.panda_urdf(), self.contract.rate_hz, jl, jh,
                                                  np.where(np.isfinite(rates), rates, np.inf))
        self.chain = self.controller.chain
        if not (isinstance(object_frame, str) and object_frame):
            raise TetherError(f"object frame {object_frame!r}; expected the frame id the tracker publishes in")
        self.object_frame = object_frame
        self.object_topics = self._object_topics(object_topics or {})
        self.required_topics = (joint_states_topic, *self.object_topics.values())
        self.control_topic = self.command_topic
        self._q_cmd: np.ndarray | None = None  # the commanded joint positions (what was last sent)
        self._q_prev: np.ndarray | None = None
        self._js_stamps = StampCheck()

    # ------------------------------------------------------------------ contracts
    def _build_command_contract(self) -> IOContract:
        if not self.ee_mode:
            return self.contract
        acts = [Field.make("joint_pos_target", 7, "rad", "joint", P.Q_LOW, P.Q_HIGH, self.joints)]
        acts += [f for f in self.contract.actions if f.name == "gripper"]
        c = dataclasses.replace(self.contract, actions=tuple(acts), control_mode="joint_position")
        return with_action_limits(c, self.robot_limits)

    def _object_topics(self, given: Mapping[str, str]) -> dict[str, str]:
        """Observation field -> pose topic, for the objects the contract observes (``given`` renames a topic by
        object name, e.g. a motion-capture system's ``{"cube": "/vrpn_mocap/cube/pose"}``)."""
        if not isinstance(given, Mapping):
            raise TetherError(f"object topics {given!r}; expected a mapping of object name to topic")
        unknown = sorted(set(given) - set(arm_task.OBJECT_FIELDS.values()))
        if unknown:
            raise TetherError(f"object topics for {unknown}; expected objects among "
                              f"{sorted(arm_task.OBJECT_FIELDS.values())}")
        bad = {k: v for k, v in given.items() if not (isinstance(v, str) and v.startswith("/") and len(v) > 1)}
        if bad:
            raise TetherError(f"object topics {bad}; expected absolute topic names such as '/vrpn_mocap/cube/pose'")
        names = {f.name for f in self.contract.observations}
        return {f: given.get(obj, object_topic(obj)) for f, obj in arm_task.OBJECT_FIELDS.items() if f in names}

    @staticmethod
    def _arm_only(contract: IOContract) -> IOContract:
        return dataclasses.replace(contract, actions=tuple(f for f in contract.actions if f.name != "gripper"))

    @property
    def command_contract(self) -> IOContract:
        return self._command_contract

    # ------------------------------------------------------------------ wire
    def _subscriptions(self) -> list[Sub]:
        bound = self.robot_limits.state_bound("object")
        objects = [Sub(topic, "geometry_msgs/msg/PoseStamped", STATE_QOS,
                       lambda m: object_position(m, self.object_frame, bound))
                   for topic in self.object_topics.values()]
        return [Sub(self.joint_states_topic, "sensor_msgs/msg/JointState", STATE_QOS, self._decode_joint_states),
                *objects,
                *goal_subscription(self.goal_topic, self.robot_limits.state_bound("goal"), self.goal_publishers)]

    def _publishers(self) -> list[tuple[str, str, Any]]:
        msgtype = ("std_msgs/msg/Float64MultiArray" if self.command_interface == "forward"
                   else "trajectory_msgs/msg/JointTrajectory")
        pubs = [(self.command_topic, msgtype, COMMAND_QOS)]
        if self.has_gripper:
            pubs.append((self.gripper_topic, "std_msgs/msg/Float64MultiArray", COMMAND_QOS))
        return pubs

    def _decode_joint_states(self, msg: Any) -> dict[str, np.ndarray]:
        fields = joint_state_fields(msg, self.joints, self.robot_limits)
        stamp = header_stamp_s(msg)
        if stamp is not None:
            self._js_stamps.check(stamp, time.monotonic())
        return fields

    def read_state(self) -> tuple[dict[str, np.ndarray], float]:
        fields, stamp = self._need(self.joint_states_topic)
        obs = dict(fields)
        obs["ee_pos"] = self.chain.position(obs["joint_pos"])
        obs["target_pos"] = obs["goal_pos"] = goal_value(self.latest, self.goal_topic, self.goal, "arm goal")
        for name, topic in self.object_topics.items():
            value, seen = self._need(topic)
            obs[name] = np.asarray(value, dtype=float)
            stamp = min(stamp, seen)  # a tracker that stopped makes the whole state stale
        if self._q_cmd is None:
            self._q_cmd = obs["joint_pos"].copy()
        return obs, stamp

    # ------------------------------------------------------------------ commands
    def ik_targets(self, delta: np.ndarray, ee_measured: np.ndarray) -> np.ndarray:
        """Joint targets for a TCP step ``delta``: the sim arm task's controller
        (:class:`tether.sim.tasks.arm.CartesianStepController`) on the commanded joints."""
        assert self._q_cmd is not None
        return self.controller.step(self._q_cmd[None], np.asarray(delta)[None], np.asarray(ee_measured)[None])[0]

    def to_command(self, action: np.ndarray, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        action = np.asarray(action, dtype=float).reshape(-1)
        if not self.ee_mode:
            return action
        if self._q_cmd is None:
            self._q_cmd = np.asarray(obs["joint_pos"], dtype=float).copy()
        delta = action[:3]
        if not np.all(np.isfinite(delta)):
            return np.r_[np.full(7, np.nan), action[3:]]  # the guard holds; the IK never sees NaN
        return np.r_[self.ik_targets(delta, np.asarray(obs["ee_pos"], dtype=float)), action[3:]]

    def executed_action(self, command: np.ndarray) -> np.ndarray:
        """For ee_delta_pose: the TCP step the sent joint targets command (FK of the new minus the previous
        commanded joints), clipped to the contract; other modes: the command itself."""
        command = np.asarray(command, dtype=float).reshape(-1)
        if not self.ee_mode:
            return command
        prev = self._q_prev if self._q_prev is not None else command[:7]
        delta = self.chain.position(command[:7]) - self.chain.position(prev)
        arm = np.clip(delta, self.contract.action_low[:3], self.contract.action_high[:3])
        return np.r_[arm, command[7:]]

    def send(self, command: np.ndarray, *, damp: bool = False) -> None:
        command = np.asarray(command, dtype=float).reshape(-1)
        n = self._command_contract.action_size
        if command.shape != (n,):
            raise TetherError(f"command has {command.size} elements; expected {n}")
        targets = command[:7]
        if self.command_interface == "forward":
            msg = forward_command(self.store, targets, self.command_joints, self.controller_joints)
        else:
            msg = trajectory_command(self.store, targets, self.command_joints, self.trajectory_time_s)
        self._pub(self.command_topic).publish(msg)
        self._q_prev, self._q_cmd = self._q_cmd, targets.copy()
        if self.has_gripper:
            half = float(command[7]) / 2.0
            self._pub(self.gripper_topic).publish(self.make("std_msgs/msg/Float64MultiArray", data=[half, half]))


# ------------------------------------------------------------------------------------------- served robot


class ArmBridge(Bridge):
    """A ros2_control Panda: /joint_states (every joint of the model, by name, reliable keep-last 1 like
    joint_state_broadcaster), commands on ``/<controller>/commands`` and ``/<trajectory_controller>/
    joint_trajectory``; with a task that has objects (push), a tracker's pose of each on
    ``/tether/objects/<name>/pose`` in the base frame, with the same sensor noise."""

    kind = "arm"
    goal_frame = "panda_link0"
    # ros2_control's controller manager runs at 100 Hz where a robot's config declares no rate (ros2_control
    # PR #404). The arm task limits joint speed per second of physics, so a target held over five ticks moves
    # the joints no faster than one control step of training did.
    state_rate_hz = 100.0

    def __init__(self, env: Any, store: Any, *, controller: str = FORWARD_CONTROLLER,
                 trajectory_controller: str = TRAJECTORY_CONTROLLER, **kw: Any) -> None:
        super().__init__(env, store, **kw)
        if env.task.control_mode != "joint_position":
            raise TetherError(f"the served arm needs its task in joint_position mode; got {env.task.control_mode!r}")
        self.joints = tuple(self.spec.joints)
        self.arm_joints = self.joints[:7]
        self.command_topic = forward_topic(controller)
        self.trajectory_topic = trajectory_topic(trajectory_controller)
        if self.goal is None:
            self.goal = np.asarray(self.task.target[0], dtype=float).copy()
        else:
            self.task.target[:] = self.goal
        q, _ = self.sim.joint_state()
        self.target = np.asarray(q[:7], dtype=float).copy()
        observed = {f.name for f in self.task.contract.observations}
        self.objects = {obj: object_topic(obj) for f, obj in arm_task.OBJECT_FIELDS.items() if f in observed}

    def outputs(self) -> list[tuple[str, str, Any]]:
        return [(JOINT_STATES_TOPIC, "sensor_msgs/msg/JointState", "system_default"),
                *[(topic, "geometry_msgs/msg/PoseStamped", "system_default") for topic in self.objects.values()]]

    def inputs(self) -> list[tuple[str, str, Any]]:
        return [(self.command_topic, "std_msgs/msg/Float64MultiArray", "system_default"),
                (self.trajectory_topic, "trajectory_msgs/msg/JointTrajectory", "system_default")]

    def state_messages(self) -> list[tuple[str, Any]]:
        q, qd = self.sim.joint_state()
        q, qd = self.noise(np.asarray(q, dtype=float)), self.noise(np.asarray(qd, dtype=float))
        out = [(JOINT_STATES_TOPIC, joint_state_message(self.store, self.joints, q, qd))]
        core = self.env.core.sim
        for obj, topic in self.objects.items():
            pos, quat = core.body_pose(obj)  # world; the tracker reports it in the base frame
            base = self.noise(np.asarray(self.task.to_base(core, pos[:1])[0], dtype=float))
            out.append((topic, object_pose_message(self.store, base, quat[0])))
        return out

    def on_message(self, topic: str, msg: Any) -> None:
        self.counters.got(topic)
        if topic == self.command_topic:
            data = np.asarray(msg.data, dtype=float)
            if data.shape != (7,):
                self.counters.reject("wrong_length")
                return
            target = data
        else:
            target = decode_trajectory(msg, self.arm_joints)
            if target is None:
                self.counters.reject("bad_trajectory")
                return
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


__all__ = ["ArmBridge", "ArmRos2Control", "arm_contract", "default_limits", "forward_command",
           "joint_state_fields", "object_pose_message", "object_position", "object_topic", "panda_chain",
           "trajectory_command"]
