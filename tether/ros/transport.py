"""The pub/sub seam between Tether's hardware layer and a ROS 2 wire.

Messages are rosbags typestore message objects (e.g. ``store.types['sensor_msgs/msg/JointState']``), so one
codec serves the live wire, recorded bags and tests. Topics are ROS names (``/joint_states``); a transport
maps them to its wire (Cyclone DDS: ``rt/joint_states`` with type ``sensor_msgs::msg::dds_::JointState_``).
Implementations: Cyclone DDS (default, no ROS install needed), rclpy (chosen when importable), and an
in-process loopback for unit tests; :mod:`tether.ros.transports` chooses and builds one (this module is only
the interface the implementations import).

Every transport serialises to CDR bytes and back (never passes objects through), delivers callbacks on its
own thread (loopback: on the publisher's thread), and never raises a decoding error into a callback thread:
malformed samples are counted in ``Subscription.dropped``; a callback that raises is logged and counted in
``Subscription.errors``. QoS mismatches are reported in ``Transport.qos_incidents`` and logged.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ReceiveInfo:
    """Per-sample metadata passed to callbacks subscribed with ``info=True``."""

    source_ns: int  # writer's source timestamp (ns since UNIX epoch; loopback: publish time)
    received_ns: int  # time.time_ns() when the transport took the sample
    size: int  # CDR bytes on the wire, including the 4-byte encapsulation header
    publisher: str | None = None  # the writing participant's id (None: the transport cannot tell)
    enclave: str | None = None  # that participant's ROS enclave (USER_DATA ``enclave=...;``), if it gave one


@dataclass(frozen=True)
class WriterInfo:
    """A writer seen on a topic through discovery (every QoS and type, matched or not)."""

    participant: str
    enclave: str | None
    type_name: str


def _wait(cond: Callable[[], bool], timeout: float, poll: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


class Publisher(ABC):
    topic: str
    msgtype: str  # ROS type name, e.g. "sensor_msgs/msg/JointState"

    @abstractmethod
    def publish(self, msg: Any) -> None: ...

    def publish_raw(self, data: bytes) -> None:
        """Send already-serialised CDR bytes (with encapsulation header) unchanged."""
        raise NotImplementedError(f"{type(self).__name__} cannot publish raw CDR")

    def matched(self) -> int:
        """Number of subscriptions currently matched (compatible QoS, same topic and type)."""
        raise NotImplementedError(f"{type(self).__name__} does not report matches")

    def wait_matched(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` subscriptions match (discovery is asynchronous); False on timeout."""
        return _wait(lambda: self.matched() >= count, timeout)


class Subscription(ABC):
    topic: str
    msgtype: str
    dropped: int  # messages that arrived but could not be decoded; counted, never raised into the caller
    received: int = 0  # messages delivered to the callback
    errors: int = 0  # callback invocations that raised (logged, never propagated)

    @abstractmethod
    def close(self) -> None: ...

    def matched(self) -> int:
        """Number of publishers currently matched."""
        raise NotImplementedError(f"{type(self).__name__} does not report matches")

    def wait_matched(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` publishers match; False on timeout."""
        return _wait(lambda: self.matched() >= count, timeout)


class Transport(ABC):
    """One node's view of the ROS graph. ``qos`` is a name from ``tether.ros.qos`` presets or a QoS object.

    ``subscribe(..., raw=True)`` hands the callback the CDR ``bytes`` instead of a decoded message (the
    recorder uses it to write bags without re-encoding); ``info=True`` passes a :class:`ReceiveInfo` as second
    argument. Both keywords are optional extensions; positional use is unchanged.
    """

    @abstractmethod
    def publisher(self, topic: str, msgtype: str, qos: Any = "default") -> Publisher: ...

    @abstractmethod
    def subscribe(
        self, topic: str, msgtype: str, callback: Callable[[Any], None], qos: Any = "default"
    ) -> Subscription: ...

    @abstractmethod
    def close(self) -> None: ...

    @property
    def participant_id(self) -> str | None:
        """This transport's own participant id, as :class:`WriterInfo` and :class:`ReceiveInfo` name it."""
        return None

    def writers(self, topic: str) -> list[WriterInfo]:
        """Every writer on ``topic`` that discovery knows of, this participant's included."""
        raise NotImplementedError(f"{type(self).__name__} cannot list a topic's writers")

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
