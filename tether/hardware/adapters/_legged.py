"""What the two legged adapters (Unitree LowState/LowCmd and generic ros2_control) share: the contract in the
shared vocabulary, the A1 joint names and the velocity-command source (a Twist topic or a fixed command)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tether.contract import Field, IOContract
from tether.hardware.adapters._ros import Latest

LEGS = ("FR", "FL", "RR", "RL")  # Unitree motor order: leg-major, then hip, thigh, calf
PARTS = ("hip", "thigh", "calf")
# Names URDFs use for the same three joints (unitree_ros: thigh/calf; Tether's sim A1: upper/lower).
PART_SYNONYMS = {"hip": "hip", "thigh": "thigh", "upper": "thigh", "calf": "calf", "lower": "calf"}
# Default joint names: Tether's sim A1 (tether/sim/robots/a1.py), so a default contract matches its policies.
A1_JOINTS = tuple(f"{leg}_{part}_joint" for leg in LEGS for part in ("hip", "upper", "lower"))
# A1 joint limits (rad) from its URDF, per part.
A1_LIMITS = {"hip": (-0.802851455917, 0.802851455917), "thigh": (-1.0471975512, 4.18879020479),
             "calf": (-2.69653369433, -0.916297857297)}


def joint_part(name: str) -> str | None:
    """'FR_upper_joint' -> 'thigh' (canonical part), None if the name has no known part token."""
    found = [PART_SYNONYMS[t.lower()] for t in name.replace("-", "_").split("_") if t.lower() in PART_SYNONYMS]
    return found[0] if len(found) == 1 else None

LEGGED_OBS = ("base_ang_vel", "projected_gravity", "command", "joint_pos", "joint_vel", "last_action")
LEGGED_ACTIONS = ("joint_pos_target",)
LEGGED_MODES = ("joint_position",)


def legged_contract(
    *,
    robot: str = "legged",
    task: str = "velocity",
    rate_hz: float = 50.0,
    joints: Sequence[str] = A1_JOINTS,
    joint_low: Sequence[float] | None = None,
    joint_high: Sequence[float] | None = None,
) -> IOContract:
    """Legged contract (shared vocabulary) with the given joint limits (default: A1 URDF limits by part)."""
    j = tuple(joints)
    if joint_low is None or joint_high is None:
        parts = [joint_part(n) for n in j]
        if None in parts:
            from tether.errors import TetherError

            raise TetherError(f"no default limits for joints {list(j)}; pass joint_low/joint_high")
        joint_low = [A1_LIMITS[p][0] for p in parts]
        joint_high = [A1_LIMITS[p][1] for p in parts]
    n = len(j)
    obs = (
        Field.make("base_ang_vel", 3, "rad/s", "body", components=("x", "y", "z")),
        Field.make("projected_gravity", 3, "1", "body", components=("x", "y", "z")),
        Field.make("command", 3, "m/s,m/s,rad/s", "body", components=("vx", "vy", "yaw_rate")),
        Field.make("joint_pos", n, "rad", "joint", components=j),
        Field.make("joint_vel", n, "rad/s", "joint", components=j),
        Field.make("last_action", n, "1", components=j),
    )
    act = (Field.make("joint_pos_target", n, "rad", "joint", low=joint_low, high=joint_high, components=j),)
    return IOContract(robot, task, obs, act, "joint_position", rate_hz)


def velocity_command(latest: Latest, topic: str | None, fixed: np.ndarray) -> np.ndarray:
    """(vx, vy, yaw_rate) from the newest geometry_msgs/Twist on ``topic``, else the fixed command."""
    if topic is not None:
        got = latest.get(topic)
        if got is not None:
            t: Any = got[0]
            return np.array([t.linear.x, t.linear.y, t.angular.z], dtype=float)
    return np.asarray(fixed, dtype=float)


def per_joint(value: float | Sequence[float], n: int, what: str) -> np.ndarray:
    from tether.errors import TetherError

    arr = np.asarray(value, dtype=float)
    try:
        return np.broadcast_to(arr, (n,)).astype(float).copy()
    except ValueError:
        raise TetherError(f"{what} has {arr.size} values; expected a scalar or {n} (one per joint)") from None
