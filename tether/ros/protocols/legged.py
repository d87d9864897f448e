"""What the legged protocols (Unitree LowState/LowCmd and generic ros2_control) share: the robot model's limits
(the sim's A1), its contract from the sim's field builders, the velocity-command source, and the state
estimator's odometry (the base velocity a recording is scored on)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from tether.contract import GAIT_CLOCK, LAST_ACTION, Field, IOContract
from tether.data.topics import ODOM_TYPE
from tether.errors import TetherError
from tether.hardware.limits import RobotLimits
from tether.hardware.plausibility import bounded
from tether.ros import types as T
from tether.ros.protocols.adapter import Latest, Sub, with_action_limits
from tether.ros.protocols.common import twist_command
from tether.sim.robots import a1
from tether.sim.tasks.legged import (
    COMMAND_LIMITS,
    COMMANDED_TASKS,
    JOINT_VEL_LIMIT,
    legged_action_fields,
    legged_metadata,
    legged_observation_fields,
    legged_privileged_fields,
)

A1_JOINTS = a1.JOINTS
# the robot measures the first five; the control loop supplies the last action and the gait clock
LEGGED_OBS = ("base_ang_vel", "projected_gravity", "command", "joint_pos", "joint_vel", LAST_ACTION, GAIT_CLOCK)
LEGGED_ACTIONS = ("joint_pos_target",)
LEGGED_MODES = ("joint_position",)
#: the sim's range for the base's body-frame velocity (a privileged field: recorded from odometry, never observed)
LIN_VEL_BOUND = float(np.max(np.abs(next(f for f in legged_privileged_fields() if f.name == "base_lin_vel").high)))


def default_limits() -> RobotLimits:
    """The A1's URDF joint range and speeds (the sim model's), gains bounds, and plausible state ranges."""
    command = {f"joint_pos_target.{j}": (float(lo), float(hi))
               for j, lo, hi in zip(a1.JOINTS, a1.JOINT_LOWER, a1.JOINT_UPPER)}
    parts = [p for _ in a1.LEGS for p in a1.PARTS]
    rates = {f"joint_pos_target.{j}": float(JOINT_VEL_LIMIT[p]) for j, p in zip(a1.JOINTS, parts)}
    params = {"max_kp": 100.0, "max_kd": 10.0}
    state = {"joint_pos": 2 * np.pi, "joint_vel": 3.0 * max(JOINT_VEL_LIMIT.values()), "base_ang_vel": 60.0}
    return RobotLimits("unitree_a1", command, rates, params, state)


def _reorder(f: Field, joints: Sequence[str]) -> Field:
    """A per-joint field (built in the model's joint order) permuted into ``joints`` order, limits and all."""
    pos = {n: i for i, n in enumerate(f.components)}
    missing = [j for j in joints if j not in pos]
    if missing:
        raise TetherError(f"no joints {missing} on the A1; expected names from {list(f.components)}")
    idx = [pos[j] for j in joints]
    pick = (lambda v: None if v is None else tuple(v[i] for i in idx))
    return dataclasses.replace(f, size=len(idx), low=pick(f.low), high=pick(f.high), components=tuple(joints))


def legged_contract(limits: RobotLimits | None = None, *, task: str = "velocity", rate_hz: float = 50.0,
                    joints: Sequence[str] = A1_JOINTS) -> IOContract:
    """The sim's legged contract (its field builders, joints in the order given) within the robot's limits."""
    joints = tuple(joints)
    obs = tuple(_reorder(f, joints) if f.components == a1.JOINTS else f for f in legged_observation_fields(task=task))
    act = tuple(_reorder(f, joints) for f in legged_action_fields())
    c = IOContract("legged", task, obs, act, "joint_position", rate_hz, metadata=legged_metadata(task))
    return with_action_limits(c, limits or default_limits())


def velocity_command(latest: Latest, topic: str | None, fixed: np.ndarray | None) -> np.ndarray:
    """(vx, vy, yaw_rate) from the newest accepted geometry_msgs/Twist on ``topic``, else the fixed command, else
    (0, 0, 0): stand still (what a task without commands, legged stand, always observes)."""
    if topic is not None:
        got: Any = latest.get(topic)
        if got is not None:
            return np.asarray(got[0], dtype=float)
    return np.zeros(3) if fixed is None else np.asarray(fixed, dtype=float)


def fixed_command(command: Sequence[float] | None) -> np.ndarray | None:
    """A fixed velocity command given to an adapter, checked against the sim's command range; None: none given."""
    if command is None:
        return None
    try:
        v = np.asarray(command, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        v = np.full(1, np.nan)
    if v.shape != (3,) or not np.all(np.isfinite(v)) or np.any(np.abs(v) > command_bound()):
        raise TetherError(f"fixed velocity command {command!r}; expected 3 finite numbers (vx, vy, yaw rate) within "
                          f"+-{command_bound().tolist()}")
    return v


def awaited_command(contract: IOContract, topic: str | None, fixed: np.ndarray | None) -> dict[str, str]:
    """The command topic that must have spoken before the first tick, and who publishes it: a policy that follows
    velocity commands (a task of ``COMMANDED_TASKS``), given no fixed command, waits for the operator's first
    Twist, as an arm or a quadrotor waits for its goal. Why: it read (0, 0, 0), stand still, for the ~100 ms
    before a 10 Hz joystick's first message (on every served episode of a pipeline run, 2026-12-07), which is not
    how any of its sim episodes began: there the command is drawn before the first step, and the gait clock starts
    with it."""
    if topic is None or fixed is not None or contract.task not in COMMANDED_TASKS:
        return {}
    return {topic: "the operator: publish a velocity command, or give the adapter a fixed `command` "
                   "(tether deploy --param 'command=[vx, vy, yaw_rate]')"}


def command_bound() -> np.ndarray:
    return np.asarray(COMMAND_LIMITS, dtype=float)


def velocity_subscription(topic: str | None) -> list[Sub]:
    """The velocity command's Twist topic (each message checked against the sim's command range)."""
    if topic is None:
        return []
    return [Sub(topic, "geometry_msgs/msg/Twist", "default", lambda m: twist_command(m, command_bound()))]


def odometry_message(store: Any, position: np.ndarray, quat_wxyz: np.ndarray, lin_body: np.ndarray,
                     ang_body: np.ndarray) -> Any:
    """nav_msgs/Odometry as a legged state estimator publishes it: pose in ``odom``, twist in the body frame
    (``child_frame_id``), which is what the message defines its twist in."""
    p, q, v, w = (np.asarray(a, dtype=float) for a in (position, quat_wxyz, lin_body, ang_body))
    V3, P = store.types["geometry_msgs/msg/Vector3"], store.types["geometry_msgs/msg/Point"]
    Q = store.types["geometry_msgs/msg/Quaternion"]
    pose = {"position": P(x=p[0], y=p[1], z=p[2]), "orientation": Q(w=q[0], x=q[1], y=q[2], z=q[3])}
    return T.make(store, ODOM_TYPE, header=T.header(store, "odom"), child_frame_id="base", pose={"pose": pose},
                  twist={"twist": {"linear": V3(x=v[0], y=v[1], z=v[2]), "angular": V3(x=w[0], y=w[1], z=w[2])}})


def odometry_velocity(msg: Any) -> np.ndarray:
    """Odometry -> the base's linear velocity in the body frame (m/s), within the task's own range."""
    v = msg.twist.twist.linear
    return bounded("base_lin_vel", np.array([v.x, v.y, v.z], dtype=float), LIN_VEL_BOUND)


def odometry_subscription(topic: str | None) -> list[Sub]:
    """The state estimator's odometry (optional: a robot without one still runs; its recordings cannot score
    velocity tracking). Recorded with the robot's topics; the policy never sees it (privileged in sim)."""
    if topic is None:
        return []
    return [Sub(topic, ODOM_TYPE, "sensor_data", odometry_velocity)]


def per_joint(value: float | Sequence[float], n: int, what: str, bound: float) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    try:
        out = np.broadcast_to(arr, (n,)).astype(float).copy()
    except ValueError:
        raise TetherError(f"{what} has {arr.size} values; expected a scalar or {n} (one per joint)") from None
    if not (np.all(np.isfinite(out)) and np.all(out >= 0) and np.all(out <= bound)):
        raise TetherError(f"{what} {out.tolist()}; expected values in [0, {bound:g}] (the robot limits file's bound)")
    return out
