"""The pub/sub seam between Tether's hardware layer and a ROS 2 wire.

Messages are rosbags typestore message objects (e.g. ``store.types['sensor_msgs/msg/JointState']``), so one
codec serves the live wire, recorded bags and tests. Topics are ROS names (``/joint_states``); a transport
maps them to its wire (Cyclone DDS: ``rt/joint_states`` with type ``sensor_msgs::msg::dds_::JointState_``).
Implementations: Cyclone DDS (default, no ROS install needed), rclpy (chosen when importable), and an
in-process loopback for unit tests.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any


class Publisher(ABC):
    topic: str
    msgtype: str  # ROS type name, e.g. "sensor_msgs/msg/JointState"

    @abstractmethod
    def publish(self, msg: Any) -> None: ...


class Subscription(ABC):
    topic: str
    msgtype: str
    dropped: int  # messages that arrived but could not be decoded; counted, never raised into the caller

    @abstractmethod
    def close(self) -> None: ...


class Transport(ABC):
    """One node's view of the ROS graph. ``qos`` is a name from ``tether.ros.qos`` presets or a QoS object."""

    @abstractmethod
    def publisher(self, topic: str, msgtype: str, qos: Any = "default") -> Publisher: ...

    @abstractmethod
    def subscribe(
        self, topic: str, msgtype: str, callback: Callable[[Any], None], qos: Any = "default"
    ) -> Subscription: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
