"""The served-robot side of a protocol: a simulator behind a real robot's topics, types, QoS and rules.

Each protocol module's bridge turns simulator state into the messages the real robot's software stack
publishes, and the real robot's command messages into a physical command for the simulator, applying the rules
the real stack applies, so a deployment that works against a served robot has met the same preconditions it
will meet on hardware. ``tether.ros.robot_server`` runs a bridge in real time with wire faults.

The goal the policy's task needs (an arm's ``target_pos``, a quadrotor's set point) is published on
``/tether/goal`` (geometry_msgs/PointStamped, reliable), which is what the adapters read; a legged robot's
velocity command is published on ``/cmd_vel`` (geometry_msgs/Twist) only when one was configured.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tether.ros.protocols.common import GOAL_TOPIC, goal_message

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
    ``on_message()`` takes a command (on the server's loop thread); ``actuate()`` steps the simulator."""

    kind = ""
    goal_frame = "world"
    # How often the real stack publishes state and takes in commands (Hz), which the served robot copies by
    # default; None: once per control step of the policy. Why it matters: the served robot applies a command at
    # its next tick, so a tick as slow as the policy's adds up to a whole control step of latency that the real
    # robot, whose low-level loop runs faster, does not have. Set only where ``actuate`` means the same at any
    # tick (a command held over several ticks acts as it did over one control step in training).
    state_rate_hz: float | None = None

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
        self._goal_moved = False

    def set_goal(self, goal: np.ndarray) -> None:
        """Move the goal (a mission's next waypoint); the server publishes it at once, not at its next ~10 Hz
        repeat, so the policy sees the new goal as soon as the wire allows. Call with ``self.lock`` held."""
        self.goal = np.asarray(goal, dtype=float).copy()
        self.task.goal[:] = self.goal
        self._goal_moved = True

    def goal_moved(self) -> bool:
        """Whether the goal moved since the last call (the server's cue to publish it now)."""
        with self.lock:
            moved, self._goal_moved = self._goal_moved, False
        return moved

    def outputs(self) -> list[tuple[str, str, Any]]:
        return []

    def inputs(self) -> list[tuple[str, str, Any]]:
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
        return None if self.goal is None else goal_message(self.store, self.goal, self.goal_frame)

    def summary(self) -> dict[str, Any]:
        return self.counters.as_dict()
