"""ROS 2 QoS presets, their mapping onto Cyclone DDS / rclpy, and the DDS request-vs-offer compatibility rule.

Why this module exists: a QoS mismatch in DDS is silent by design (the endpoints simply never match), and the
classic sim-to-real failure is a RELIABLE subscriber that never hears a BEST_EFFORT PX4 or camera topic.
So Tether checks compatibility itself where it can (loopback, documentation, tests) and every transport
reports the DDS incompatible-QoS events it receives as :class:`QosIncident` records plus a logged warning.

Presets mirror rmw (``rmw/qos_profiles.h``) and the bridge defaults in ros2-interop.md section 1.3:
``default`` (reliable, volatile, keep-last 10), ``sensor_data`` (best-effort, volatile, 5), ``latched``
(reliable, transient-local, 1: /tf_static, /robot_description, e-stop), ``command`` (reliable, volatile, 1:
matches every subscriber), ``system_default`` (what rmw_cyclonedds makes of SystemDefaultsQoS), ``px4_out``
(how to read PX4 /fmu/out/*: best-effort, volatile so it matches PX4's best-effort transient-local writers).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from tether.errors import TetherError

log = logging.getLogger("tether.ros.qos")

Reliability = Literal["reliable", "best_effort"]
Durability = Literal["volatile", "transient_local"]
History = Literal["keep_last", "keep_all"]

_RELIABILITIES = ("reliable", "best_effort")
_DURABILITIES = ("volatile", "transient_local")
_HISTORIES = ("keep_last", "keep_all")


@dataclass(frozen=True)
class QoS:
    """A ROS 2 QoS profile (the policies ROS exposes); durations in seconds, None = infinite."""

    reliability: Reliability = "reliable"
    durability: Durability = "volatile"
    history: History = "keep_last"
    depth: int = 10
    deadline: float | None = None
    lifespan: float | None = None
    liveliness_lease: float | None = None

    def __post_init__(self) -> None:
        if self.reliability not in _RELIABILITIES:
            raise TetherError(f"bad QoS reliability {self.reliability!r}; expected one of {list(_RELIABILITIES)}")
        if self.durability not in _DURABILITIES:
            raise TetherError(f"bad QoS durability {self.durability!r}; expected one of {list(_DURABILITIES)}")
        if self.history not in _HISTORIES:
            raise TetherError(f"bad QoS history {self.history!r}; expected one of {list(_HISTORIES)}")
        if not isinstance(self.depth, int) or self.depth < 1:
            raise TetherError(f"bad QoS depth {self.depth!r}; expected an integer >= 1")
        for name in ("deadline", "lifespan", "liveliness_lease"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise TetherError(f"bad QoS {name} {v!r}; expected None (infinite) or seconds > 0")

    def with_(self, **changes: Any) -> QoS:
        """A copy with some policies changed (``PRESETS['default'].with_(depth=1)``)."""
        return replace(self, **changes)

    # ------------------------------------------------------------------------------------- mappings

    def to_cyclone(self, user_data: bytes | None = None) -> Any:
        """Cyclone DDS Qos as rmw_cyclonedds builds it (``create_readwrite_qos``).

        Adds what the RMW adds: ``autodispose=False`` (so deleting a writer does not send dispose
        notifications), a durability-service mirror for transient-local, XCDR1 data representation only (ROS 2
        RMWs do not match XCDR2), and the endpoint USER_DATA (``typehash=RIHS01_...;``).
        """
        from cyclonedds.qos import Policy, Qos

        def dur(v: float | None) -> int:
            from cyclonedds.util import duration

            return duration(infinite=True) if v is None else int(v * 1e9)

        hist = Policy.History.KeepLast(self.depth) if self.history == "keep_last" else Policy.History.KeepAll
        policies: list[Any] = [
            hist,
            Policy.Reliability.Reliable(max_blocking_time=int(0.1e9))
            if self.reliability == "reliable"
            else Policy.Reliability.BestEffort,
            Policy.Durability.TransientLocal if self.durability == "transient_local" else Policy.Durability.Volatile,
            Policy.WriterDataLifecycle(autodispose=False),
            Policy.DataRepresentation(use_cdrv0_representation=True, use_xcdrv2_representation=False),
        ]
        if self.durability == "transient_local":
            policies.append(
                Policy.DurabilityService(
                    cleanup_delay=0,
                    history=hist,
                    max_samples=-1,
                    max_instances=-1,
                    max_samples_per_instance=-1,
                )
            )
        if self.deadline is not None:
            policies.append(Policy.Deadline(dur(self.deadline)))
        if self.lifespan is not None:
            policies.append(Policy.Lifespan(dur(self.lifespan)))
        if self.liveliness_lease is not None:
            policies.append(Policy.Liveliness.Automatic(dur(self.liveliness_lease)))
        if user_data:
            policies.append(Policy.Userdata(data=bytes(user_data)))
        return Qos(*policies)

    def to_rclpy(self) -> Any:
        """rclpy QoSProfile (needs ROS 2; untested here, where rclpy is not installed)."""
        from rclpy.duration import Duration
        from rclpy.qos import (
            DurabilityPolicy,
            HistoryPolicy,
            LivelinessPolicy,
            QoSProfile,
            ReliabilityPolicy,
        )

        kw: dict[str, Any] = dict(
            history=HistoryPolicy.KEEP_LAST if self.history == "keep_last" else HistoryPolicy.KEEP_ALL,
            depth=self.depth,
            reliability=ReliabilityPolicy.RELIABLE if self.reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL
            if self.durability == "transient_local"
            else DurabilityPolicy.VOLATILE,
        )
        if self.deadline is not None:
            kw["deadline"] = Duration(nanoseconds=int(self.deadline * 1e9))
        if self.lifespan is not None:
            kw["lifespan"] = Duration(nanoseconds=int(self.lifespan * 1e9))
        if self.liveliness_lease is not None:
            kw["liveliness"] = LivelinessPolicy.AUTOMATIC
            kw["liveliness_lease_duration"] = Duration(nanoseconds=int(self.liveliness_lease * 1e9))
        return QoSProfile(**kw)

    def to_rosbag2(self) -> Any:
        """rosbags' Qos record for ``offered_qos_profiles`` in rosbag2 metadata (what ``ros2 bag play`` reuses)."""
        from rosbags.interfaces import Qos as BagQos
        from rosbags.interfaces import QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

        def d(v: float | None) -> Any:
            if v is None:  # rmw's "infinite" as rosbag2 writes it
                return QosTime(sec=0x7FFFFFFF, nsec=0xFFFFFFFF)
            return QosTime(sec=int(v), nsec=int(round((v - int(v)) * 1e9)))

        return BagQos(
            history=QosHistory.KEEP_LAST if self.history == "keep_last" else QosHistory.KEEP_ALL,
            depth=self.depth,
            reliability=QosReliability.RELIABLE if self.reliability == "reliable" else QosReliability.BEST_EFFORT,
            durability=QosDurability.TRANSIENT_LOCAL
            if self.durability == "transient_local"
            else QosDurability.VOLATILE,
            deadline=d(self.deadline),
            lifespan=d(self.lifespan),
            liveliness=QosLiveliness.AUTOMATIC,
            liveliness_lease_duration=d(self.liveliness_lease),
            avoid_ros_namespace_conventions=False,
        )


PRESETS: dict[str, QoS] = {
    "default": QoS("reliable", "volatile", "keep_last", 10),
    "sensor_data": QoS("best_effort", "volatile", "keep_last", 5),
    "latched": QoS("reliable", "transient_local", "keep_last", 1),
    "command": QoS("reliable", "volatile", "keep_last", 1),
    "system_default": QoS("reliable", "volatile", "keep_last", 1),
    "px4_out": QoS("best_effort", "volatile", "keep_last", 5),
    "px4_in": QoS("best_effort", "volatile", "keep_last", 1),
}


def resolve(qos: str | QoS | None) -> QoS:
    """A preset name or QoS object -> QoS (None means 'default')."""
    if qos is None:
        return PRESETS["default"]
    if isinstance(qos, QoS):
        return qos
    if isinstance(qos, str) and qos in PRESETS:
        return PRESETS[qos]
    raise TetherError(f"unknown QoS {qos!r}; expected a tether.ros.qos.QoS or one of {sorted(PRESETS)}")


def incompatibility(writer: QoS | str, reader: QoS | str) -> str | None:
    """Why a writer with ``writer`` QoS cannot serve a reader with ``reader`` QoS (DDS RxO rule), or None.

    Only policies ROS exposes are checked: reliability, durability, deadline, liveliness lease.
    """
    w, r = resolve(writer), resolve(reader)
    if r.reliability == "reliable" and w.reliability == "best_effort":
        return "RELIABILITY: reader requests reliable but writer offers best_effort"
    if r.durability == "transient_local" and w.durability == "volatile":
        return "DURABILITY: reader requests transient_local but writer offers volatile"
    if r.deadline is not None and (w.deadline is None or w.deadline > r.deadline):
        return f"DEADLINE: reader requests {r.deadline}s but writer offers {w.deadline or 'infinite'}s"
    if r.liveliness_lease is not None and (w.liveliness_lease is None or w.liveliness_lease > r.liveliness_lease):
        return (
            f"LIVELINESS: reader requests lease {r.liveliness_lease}s but writer offers "
            f"{w.liveliness_lease or 'infinite'}s"
        )
    return None


# DDS QosPolicyId_t values (DDS 1.4 spec, dds/ddsc/dds_public_qosdefs.h)
POLICY_NAMES = {
    0: "INVALID",
    1: "USER_DATA",
    2: "DURABILITY",
    3: "PRESENTATION",
    4: "DEADLINE",
    5: "LATENCY_BUDGET",
    6: "OWNERSHIP",
    7: "OWNERSHIP_STRENGTH",
    8: "LIVELINESS",
    9: "TIME_BASED_FILTER",
    10: "PARTITION",
    11: "RELIABILITY",
    12: "DESTINATION_ORDER",
    13: "HISTORY",
    14: "RESOURCE_LIMITS",
    15: "ENTITY_FACTORY",
    16: "WRITER_DATA_LIFECYCLE",
    17: "READER_DATA_LIFECYCLE",
    18: "TOPIC_DATA",
    19: "GROUP_DATA",
    20: "TRANSPORT_PRIORITY",
    21: "LIFESPAN",
    22: "DURABILITY_SERVICE",
    23: "PROPERTY",
    24: "TYPE_CONSISTENCY_ENFORCEMENT",
    25: "DATA_REPRESENTATION",
}


@dataclass(frozen=True)
class QosIncident:
    """One reported QoS mismatch: a local endpoint that could not match a remote one."""

    topic: str  # ROS topic name
    side: Literal["reader", "writer"]  # which local endpoint reported it
    policy: str  # e.g. "RELIABILITY"
    total_count: int  # how many incompatible peers so far (DDS status total_count)
    reason: str
    time: float = field(default_factory=time.time)


class QosIncidentLog:
    """Thread-safe list of QoS incidents that also logs each one as a warning (never silent)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[QosIncident] = []

    def report(self, incident: QosIncident) -> None:
        with self._lock:
            self._items.append(incident)
        log.warning(
            "QoS mismatch on %s (%s side): %s [%s, %d incompatible so far]",
            incident.topic,
            incident.side,
            incident.reason,
            incident.policy,
            incident.total_count,
        )

    def items(self, topic: str | None = None) -> list[QosIncident]:
        with self._lock:
            return [i for i in self._items if topic is None or i.topic == topic]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
