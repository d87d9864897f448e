"""What every wire protocol shares: Tether's own side topics and the goal / velocity-command messages.

The robot's own topics live in each protocol module; these are the ones Tether adds around any robot: the
task goal (an arm's ``target_pos``, a quadrotor's set point), a legged robot's velocity command, the latched
e-stop, and the served robot's self-description and statistics.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tether.data.topics import GOAL_TOPIC, GOAL_TYPE  # noqa: F401 (GOAL_TOPIC: the protocols import it from here)
from tether.hardware.plausibility import Implausible, bounded
from tether.ros import types as T

CMD_VEL_TOPIC = "/cmd_vel"  # geometry_msgs/Twist
ROBOT_INFO_TOPIC = "/tether/robot_info"  # std_msgs/String JSON, latched
ROBOT_STATS_TOPIC = "/tether/robot_stats"  # std_msgs/String JSON, ~2 Hz


def goal_message(store: Any, goal: np.ndarray, frame_id: str) -> Any:
    p = store.types["geometry_msgs/msg/Point"](x=float(goal[0]), y=float(goal[1]), z=float(goal[2]))
    return T.make(store, GOAL_TYPE, header=T.header(store, frame_id), point=p)


def goal_point(msg: Any, bound: float) -> np.ndarray:
    """PointStamped -> (x, y, z); a non-finite or out-of-range goal is implausible (never a policy input)."""
    p = msg.point
    return bounded("goal", np.array([p.x, p.y, p.z], dtype=float), bound)


def twist_message(store: Any, command: np.ndarray) -> Any:
    V3 = store.types["geometry_msgs/msg/Vector3"]
    v = np.asarray(command, dtype=float)
    return store.types["geometry_msgs/msg/Twist"](linear=V3(x=float(v[0]), y=float(v[1]), z=0.0),
                                                  angular=V3(x=0.0, y=0.0, z=float(v[2])))


def twist_command(msg: Any, bound: np.ndarray) -> np.ndarray:
    """Twist -> (vx, vy, yaw_rate), each within ``bound`` (the contract's command range)."""
    v = np.array([msg.linear.x, msg.linear.y, msg.angular.z], dtype=float)
    if not np.all(np.isfinite(v)):
        raise Implausible("cmd_vel_not_finite")
    if np.any(np.abs(v) > np.asarray(bound)):
        raise Implausible("cmd_vel_out_of_bounds")
    return v
