"""In-process transport for unit tests of the hardware layer: a real CDR round trip without a network.

Why not a plain callback bus: passing objects straight through would hide codec bugs (wrong dtype, wrong
array length, a field the robot never fills). Here every publish serialises with the rosbags typestore and
every subscriber decodes its own copy, the DDS QoS matching rule is applied (an incompatible pair is
reported and gets nothing, as on a real wire), and transient-local writers replay their last ``depth``
samples to late-joining transient-local readers. Delivery is synchronous on the publisher's thread, which
keeps unit tests deterministic. Optional fault injection (``drop``) uses a seeded Generator.

Transports with the same ``domain_id`` share one bus, like DDS participants on one domain.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import numpy as np

from tether.errors import TetherError
from tether.ros import types as T
from tether.ros._dispatch import CdrPublisher, DispatchingSubscription, DispatchingTransport
from tether.ros.qos import QoS, QosIncident, QosIncidentLog, incompatibility, resolve
from tether.ros.transport import Publisher, WriterInfo


class _Bus:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.writers: dict[str, list[_LoopPublisher]] = {}
        self.readers: dict[str, list[tuple[DispatchingSubscription, QoS, LoopbackTransport]]] = {}


_BUSES: dict[int, _Bus] = {}
_BUSES_LOCK = threading.Lock()


def _bus(domain_id: int) -> _Bus:
    with _BUSES_LOCK:
        return _BUSES.setdefault(domain_id, _Bus())


class _LoopPublisher(CdrPublisher):
    _t: LoopbackTransport

    def __init__(self, transport: LoopbackTransport, topic: str, msgtype: str, qos: QoS) -> None:
        super().__init__(transport, topic, msgtype, qos)
        self.history: deque[tuple[bytes, int]] = deque(maxlen=qos.depth)

    def publish_raw(self, data: bytes) -> None:
        self._check_open()
        now = time.time_ns()
        self.published += 1
        bus = self._t.bus
        with bus.lock:
            if self.qos.durability == "transient_local":
                self.history.append((bytes(data), now))
            readers = list(bus.readers.get(self.topic, []))
        for sub, rqos, owner in readers:
            if sub.msgtype != self.msgtype or incompatibility(self.qos, rqos) is not None:
                continue
            if owner.drop > 0 and owner.rng.random() < owner.drop:
                continue
            sub.deliver(data, now, self._t.participant_id, self._t.enclave)

    def matched(self) -> int:
        with self._t.bus.lock:
            return sum(
                1
                for sub, rqos, _ in self._t.bus.readers.get(self.topic, [])
                if sub.msgtype == self.msgtype and incompatibility(self.qos, rqos) is None
            )


class LoopbackTransport(DispatchingTransport):
    """In-process Transport; see the module docstring. ``drop`` in [0, 1) drops received samples at random."""

    def __init__(self, domain_id: int = 0, distro: str = "humble", drop: float = 0.0, seed: int = 0,
                 enclave: str = "/") -> None:
        if not 0.0 <= drop < 1.0:
            raise TetherError(f"bad drop probability {drop!r}; expected 0 <= drop < 1")
        self.domain_id = int(domain_id)
        self.distro = distro
        self.store = T.typestore(distro)
        self.bus = _bus(self.domain_id)
        self.drop = float(drop)
        self.rng = np.random.default_rng(seed)
        self.qos_incidents = QosIncidentLog()
        self.closed = False
        self.enclave = enclave
        self._id = f"loopback-{self.domain_id}-{id(self):x}"
        self._pubs: list[_LoopPublisher] = []
        self._subs: list[DispatchingSubscription] = []

    @property
    def participant_id(self) -> str:
        return self._id

    def writers(self, topic: str) -> list[WriterInfo]:
        with self.bus.lock:
            return [WriterInfo(w._t.participant_id, w._t.enclave, w.msgtype) for w in self.bus.writers.get(topic, [])]

    # The loopback has no discovery thread, so incompatibilities are checked when endpoints appear.
    def _report_pair(self, w: _LoopPublisher, sub: DispatchingSubscription, rqos: QoS, reader_owner: LoopbackTransport) -> None:
        if w.msgtype != sub.msgtype:
            return
        reason = incompatibility(w.qos, rqos)
        if reason is None:
            return
        policy = reason.split(":")[0]
        w._t.qos_incidents.report(QosIncident(w.topic, "writer", policy, 1, reason))
        reader_owner.qos_incidents.report(QosIncident(sub.topic, "reader", policy, 1, reason))

    def publisher(self, topic: str, msgtype: str, qos: Any = "default") -> Publisher:
        self._check_open()
        T.check_topic(topic)
        T.check_msgtype(self.store, msgtype)
        pub = _LoopPublisher(self, topic, msgtype, resolve(qos))
        with self.bus.lock:
            self.bus.writers.setdefault(topic, []).append(pub)
            for sub, rqos, owner in self.bus.readers.get(topic, []):
                self._report_pair(pub, sub, rqos, owner)
        self._pubs.append(pub)
        return pub

    def _attach(self, sub: DispatchingSubscription, rqos: QoS) -> None:
        sub.matched = lambda: self._matched_writers(sub, rqos)  # type: ignore[method-assign]
        with self.bus.lock:
            self.bus.readers.setdefault(sub.topic, []).append((sub, rqos, self))
            writers = list(self.bus.writers.get(sub.topic, []))
        late: list[tuple[bytes, int, LoopbackTransport]] = []
        for w in writers:
            self._report_pair(w, sub, rqos, self)
            if (
                w.msgtype == sub.msgtype
                and rqos.durability == "transient_local"
                and incompatibility(w.qos, rqos) is None
            ):
                late.extend((d, t, w._t) for d, t in w.history)
        for data, ts, writer in sorted(late, key=lambda x: x[1]):
            sub.deliver(data, ts, writer.participant_id, writer.enclave)
        self._subs.append(sub)

    def _matched_writers(self, sub: DispatchingSubscription, rqos: QoS) -> int:
        with self.bus.lock:
            return sum(
                1
                for w in self.bus.writers.get(sub.topic, [])
                if w.msgtype == sub.msgtype and incompatibility(w.qos, rqos) is None
            )

    def _detach(self, sub: DispatchingSubscription) -> None:
        with self.bus.lock:
            entries = self.bus.readers.get(sub.topic, [])
            self.bus.readers[sub.topic] = [e for e in entries if e[0] is not sub]

    def close(self) -> None:
        if self.closed:
            return
        for sub in list(self._subs):
            sub.close()
        with self.bus.lock:
            for pub in self._pubs:
                lst = self.bus.writers.get(pub.topic, [])
                if pub in lst:
                    lst.remove(pub)
        self.closed = True
