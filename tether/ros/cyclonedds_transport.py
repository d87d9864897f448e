"""ROS 2 over plain Cyclone DDS: a participant that ROS 2 nodes see and talk to, with no ROS installed.

Wire contract (ros2-interop.md section 1): DDS topic ``rt/<ros name>``, type name
``<pkg>::msg::dds_::<Name>_``, ``@final`` types so classic CDR (XCDR1, little endian, header ``00 01 00 00``),
participant USER_DATA ``enclave=/;`` (how RMWs recognise a ROS participant) and endpoint USER_DATA
``typehash=RIHS01_<sha256>;`` (what Jazzy+ RMWs parse into their graph cache).

How bytes are sent: the payload is the rosbags CDR serialisation written unchanged with ``ddspy_write`` (the
same call cyclonedds' own DataWriter uses after serialising), so the wire bytes are exactly what rosbags, and
therefore a ROS 2 RMW, produces. A cyclonedds IdlStruct is still generated from the typestore definition for
each type, because discovery needs the type name and Cyclone's XTypes type information; its own
(de)serialiser is never used. Readers ``ddspy_take`` raw samples on one dispatch thread per transport
(a WaitSet), skip ``valid_data=False`` notifications, and decode with the typestore.

QoS mismatches arrive as DDS listener events (``on_requested_incompatible_qos`` /
``on_offered_incompatible_qos``) and are recorded in ``transport.qos_incidents`` plus a logged warning.

Discovery configuration: ``config=None`` uses ``CYCLONEDDS_URI`` if set (as ROS does); ``config="loopback"``
(or :func:`loopback_config`) restricts the participant to 127.0.0.1 without multicast, using the same
peer/participant-index scheme as ROS's ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, so it finds and is found
by localhost-only ROS nodes and never leaks onto the LAN in tests.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import Any

from tether.errors import TetherError
from tether.ros import types as T
from tether.ros._dispatch import CdrPublisher, DispatchingSubscription, DispatchingTransport, pad4
from tether.ros.qos import POLICY_NAMES, QoS, QosIncident, QosIncidentLog, resolve
from tether.ros.transport import WriterInfo

log = logging.getLogger("tether.ros.dds")


DOMAIN_TAG_ENV = "TETHER_DDS_DOMAIN_TAG"
_TAG_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def domain_tag_from_env() -> str | None:
    """``TETHER_DDS_DOMAIN_TAG``: Cyclone's domain tag for loopback participants, or None when unset.

    Participants discover only those with the same tag, so two runs on one host (two CI jobs, two developers'
    test suites) can use the same domain ids without hearing each other's robots. ROS 2 nodes have no tag:
    leave it unset to talk to them.
    """
    tag = os.environ.get(DOMAIN_TAG_ENV, "")
    if not tag:
        return None
    if not _TAG_RE.fullmatch(tag):
        raise TetherError(f"{DOMAIN_TAG_ENV}={tag!r} is not a domain tag; expected 1-64 of A-Z a-z 0-9 _ . -")
    return tag


def loopback_config(max_participants: int = 32, receive_buffer: str | None = None) -> str:
    """Cyclone XML confining discovery and data to 127.0.0.1, unicast only (ROS LOCALHOST range).

    ``receive_buffer`` (e.g. ``"4MB"``) raises the socket receive buffer, which large images need. The
    domain tag from :func:`domain_tag_from_env`, when set, separates this run's participants from others'.
    """
    internal = (
        f'<Internal><SocketReceiveBufferSize min="{receive_buffer}"/></Internal>' if receive_buffer else ""
    )
    tag = domain_tag_from_env()
    return (
        '<CycloneDDS xmlns="https://cdds.io/config"><Domain Id="any">'
        "<General><Interfaces><NetworkInterface address=\"127.0.0.1\"/></Interfaces>"
        "<AllowMulticast>false</AllowMulticast></General>"
        "<Discovery><ParticipantIndex>auto</ParticipantIndex>"
        f"<MaxAutoParticipantIndex>{int(max_participants)}</MaxAutoParticipantIndex>"
        '<Peers><Peer address="127.0.0.1"/></Peers>'
        f"{f'<Tag>{tag}</Tag>' if tag else ''}</Discovery>"
        f"{internal}</Domain></CycloneDDS>"
    )


def with_security(config: str | None, security: str) -> str:
    """``config`` (Cyclone XML, or None for the defaults) with a ``<Security>`` block in its Domain element."""
    if config is None:
        return f'<CycloneDDS xmlns="https://cdds.io/config"><Domain Id="any">{security}</Domain></CycloneDDS>'
    if "</Domain>" not in config:
        raise TetherError("DDS Security needs an inline Cyclone XML configuration (or none); got a file URL")
    return config.replace("</Domain>", security + "</Domain>", 1)


def domain_id_from_env(domain_id: int | None) -> int:
    """Explicit id, else ``ROS_DOMAIN_ID``, else 0 (ROS's rule)."""
    if domain_id is None:
        env = os.environ.get("ROS_DOMAIN_ID", "").strip()
        if not env:
            return 0
        if not env.isdigit():
            raise TetherError(f"ROS_DOMAIN_ID={env!r} is not a number; expected an integer in 0..232")
        domain_id = int(env)
    if not isinstance(domain_id, int) or not 0 <= domain_id <= 232:
        raise TetherError(f"bad ROS domain id {domain_id!r}; expected an integer in 0..232")
    return domain_id


# ----------------------------------------------------------------------------- typestore -> IdlStruct


_IDL_CACHE: dict[tuple[int, str], type] = {}
_IDL_LOCK = threading.Lock()


def _idl_base(typ: str, strlen: int) -> Any:
    from cyclonedds.idl import types as it

    if typ == "string":
        return it.bounded_str[strlen] if strlen else str
    if typ == "wstring":
        raise TetherError("wstring fields are not supported on the Cyclone transport; expected string")
    return {
        "bool": bool,
        "byte": it.byte,
        "char": it.uint8,  # ROS char is uint8 (rosidl_adapter)
        "int8": it.int8,
        "uint8": it.uint8,
        "int16": it.int16,
        "uint16": it.uint16,
        "int32": it.int32,
        "uint32": it.uint32,
        "int64": it.int64,
        "uint64": it.uint64,
        "float32": it.float32,
        "float64": it.float64,
    }[typ]


def idl_struct(store: Any, msgtype: str) -> type:
    """A cyclonedds IdlStruct class equivalent to ``msgtype`` with the ROS 2 DDS type name (cached)."""
    from cyclonedds.idl import make_idl_struct
    from cyclonedds.idl import types as it
    from rosbags.interfaces import Nodetype

    key = (id(store), msgtype)
    with _IDL_LOCK:
        if key in _IDL_CACHE:
            return _IDL_CACHE[key]

    def conv(desc: tuple[Any, Any]) -> Any:
        node, arg = desc
        if node == Nodetype.BASE:
            return _idl_base(arg[0], arg[1])
        if node == Nodetype.NAME:
            return idl_struct(store, arg)
        sub, n = arg
        if node == Nodetype.ARRAY:
            return it.array[conv(sub), n]
        return it.sequence[conv(sub), n] if n else it.sequence[conv(sub)]

    T.check_msgtype(store, msgtype)
    fields = {name: conv(desc) for name, desc in store.fielddefs[msgtype][1]}
    cls = make_idl_struct(msgtype.replace("/", "__") + "_", T.dds_typename(msgtype), fields)
    with _IDL_LOCK:
        _IDL_CACHE.setdefault(key, cls)
        return _IDL_CACHE[key]


# ---------------------------------------------------------------------------------------- domains

_DOMAINS: dict[int, tuple[Any, str | None]] = {}
_DOMAINS_LOCK = threading.Lock()


def _ensure_domain(domain_id: int, config: str | None) -> None:
    """Cyclone allows one configuration per domain id per process; keep it alive and reject a different one."""
    if config is None:
        return
    from cyclonedds.domain import Domain

    with _DOMAINS_LOCK:
        if domain_id in _DOMAINS:
            if _DOMAINS[domain_id][1] != config:
                raise TetherError(
                    f"Cyclone domain {domain_id} already configured differently in this process; "
                    "expected the same config for every transport on one domain"
                )
            return
        _DOMAINS[domain_id] = (Domain(domain_id, config), config)


# ------------------------------------------------------------------------------------ loopback only

_SOCKETS_LOCK = threading.Lock()


def _socket_fds() -> set[int]:
    """This process's open socket file descriptors (Linux /proc)."""
    out = set()
    base = f"/proc/{os.getpid()}/fd"
    try:
        names = os.listdir(base)
    except OSError:
        return out
    for name in names:
        try:
            if os.readlink(f"{base}/{name}").startswith("socket:"):
                out.add(int(name))
        except OSError:
            continue
    return out


def _bound_any(fd: int) -> bool:
    import socket

    s = socket.socket(fileno=os.dup(fd))
    try:
        if s.type != socket.SOCK_DGRAM:
            return False
        addr = s.getsockname()
        return addr[0] in ("0.0.0.0", "::")
    except OSError:
        return False
    finally:
        s.close()


def confine_to_loopback(fds: set[int]) -> list[int]:
    """Bind every wildcard-bound UDP socket among ``fds`` to the loopback device; returns their ports.

    Why: Cyclone binds its unicast receive sockets to INADDR_ANY whatever interface it is told to use (the
    ``bind_to_any`` of ``ddsi_udp_create_conn``; no configuration changes it), so a "loopback only" participant
    still accepts RTPS packets from the whole network. SO_BINDTODEVICE "lo" makes the kernel deliver only what
    arrives on the loopback device. It needs Linux >= 5.7 (or CAP_NET_RAW); where it is refused the transport
    refuses to start rather than pretend.
    """
    import socket

    ports = []
    for fd in sorted(fds):
        if not _bound_any(fd):
            continue
        s = socket.socket(fileno=os.dup(fd))
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
            ports.append(int(s.getsockname()[1]))
        except OSError as exc:
            raise TetherError(f"cannot confine DDS socket {s.getsockname()} to the loopback device ({exc}); "
                              "expected Linux >= 5.7 or CAP_NET_RAW for a --loopback participant") from None
        finally:
            s.close()
    return ports


# ------------------------------------------------------------------------------------ endpoints


@dataclass(frozen=True)
class DiscoveredEndpoint:
    """A reader or writer seen through DDS builtin discovery (what ``ros2 topic info -v`` would list)."""

    topic_name: str  # DDS name, e.g. "rt/joint_states"
    type_name: str  # DDS type, e.g. "sensor_msgs::msg::dds_::JointState_"
    user_data: bytes
    reliability: str  # "reliable" | "best_effort"
    durability: str  # "volatile" | "transient_local" | other Cyclone names
    participant_key: str


class DdsPublisher(CdrPublisher):
    def __init__(self, transport: DdsTransport, topic: str, msgtype: str, qos: QoS, writer: Any) -> None:
        super().__init__(transport, topic, msgtype, qos)
        self._writer = writer

    def publish_raw(self, data: bytes) -> None:
        from cyclonedds._clayer import ddspy_write

        self._check_open()
        ret = ddspy_write(self._writer._ref, pad4(data))
        if ret < 0:
            why = " (Cyclone validates CDR on write: the bytes are malformed for this type)" if ret == -3 else ""
            raise TetherError(f"DDS write of {len(data)} bytes on {self.topic} ({self.msgtype}) failed, code {ret}{why}")
        self.published += 1

    def matched(self) -> int:
        return len(self._writer.get_matched_subscriptions())


class DdsSubscription(DispatchingSubscription):
    reader: Any = None
    condition: Any = None

    def matched(self) -> int:
        return len(self.reader.get_matched_publications()) if self.reader is not None else 0


class DdsTransport(DispatchingTransport):
    """Transport over Cyclone DDS; see the module docstring.

    ``domain_id``: None -> ``ROS_DOMAIN_ID`` or 0. ``distro``: which typestore encodes messages and hashes
    types. ``config``: None (``CYCLONEDDS_URI``/defaults), ``"loopback"``, or Cyclone XML / a file URL.
    """

    _TAKE_BATCH = 64
    subscription_class = DdsSubscription

    def __init__(
        self,
        domain_id: int | None = None,
        distro: str = "humble",
        config: str | None = None,
        enclave: str = "/",
        keystore: str | None = None,
    ) -> None:
        from cyclonedds.core import GuardCondition, WaitSet
        from cyclonedds.domain import DomainParticipant
        from cyclonedds.qos import Policy, Qos

        self.domain_id = domain_id_from_env(domain_id)
        self.distro = distro
        self.enclave = enclave
        self.store = T.typestore(distro)
        self.config = loopback_config() if config == "loopback" else config
        if keystore is not None:  # DDS Security: refused (clearly) where this Cyclone build cannot enforce it
            from tether.ros.security import require_security

            self.config = with_security(self.config, require_security(keystore, enclave))
        loopback = config == "loopback"
        with _SOCKETS_LOCK:  # sockets made while this runs are this participant's (see confine_to_loopback)
            before = _socket_fds() if loopback else set()
            _ensure_domain(self.domain_id, self.config)
            self.participant = DomainParticipant(
                self.domain_id, qos=Qos(Policy.Userdata(data=f"enclave={enclave};".encode()))
            )
            self.confined = confine_to_loopback(_socket_fds() - before) if loopback else []
        self.qos_incidents = QosIncidentLog()
        self.closed = False
        self._topics: dict[str, tuple[str, Any]] = {}
        self._subs: dict[int, DdsSubscription] = {}
        self._pubs: list[DdsPublisher] = []
        self._lock = threading.RLock()
        self._pub_reader: Any = None  # builtin DCPSPublication reader, made on first writers() call
        self._part_reader: Any = None  # builtin DCPSParticipant reader, for enclaves
        self._enclaves: dict[str, str | None] = {}
        self._writer_ids: dict[tuple[int, int], str] = {}  # (reader id, publication handle) -> participant
        self._waitset = WaitSet(self.participant)
        self._guard = GuardCondition(self.participant)
        self._waitset.attach(self._guard)
        self._thread = threading.Thread(target=self._run, name=f"tether-dds-{self.domain_id}", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------------------------- entities

    def _topic(self, topic: str, msgtype: str) -> Any:
        from cyclonedds.topic import Topic

        T.check_topic(topic)
        T.check_msgtype(self.store, msgtype)
        with self._lock:
            if topic in self._topics:
                known, obj = self._topics[topic]
                if known != msgtype:
                    raise TetherError(
                        f"topic {topic} already used with type {known} in this transport; expected {known}, "
                        f"got {msgtype}"
                    )
                return obj
            obj = Topic(self.participant, T.dds_topic(topic), idl_struct(self.store, msgtype))
            self._topics[topic] = (msgtype, obj)
            return obj

    def _user_data(self, msgtype: str) -> bytes:
        return f"typehash={T.rihs01(self.store, msgtype)};".encode()

    def _incident(self, topic: str, side: str, qos: QoS, status: Any) -> None:
        policy = POLICY_NAMES.get(int(status.last_policy_id), f"policy {status.last_policy_id}")
        peer = "writer" if side == "reader" else "reader"
        hint = ""
        if policy == "RELIABILITY":
            hint = (
                " (a best_effort writer cannot serve a reliable reader: subscribe with qos='sensor_data')"
                if side == "reader"
                else " (this writer is best_effort and the remote reader wants reliable)"
            )
        elif policy == "DURABILITY":
            hint = " (a transient_local reader needs a transient_local writer)"
        reason = (
            f"{policy}: local {side} ({qos.reliability}, {qos.durability}) is incompatible with a remote {peer}"
            f"{hint}"
        )
        self.qos_incidents.report(QosIncident(topic, side, policy, int(status.total_count), reason))  # type: ignore[arg-type]

    def publisher(self, topic: str, msgtype: str, qos: Any = "default") -> DdsPublisher:
        from cyclonedds.core import Listener
        from cyclonedds.pub import DataWriter

        self._check_open()
        q = resolve(qos)
        tp = self._topic(topic, msgtype)
        listener = Listener(on_offered_incompatible_qos=lambda _w, st: self._incident(topic, "writer", q, st))
        writer = DataWriter(self.participant, tp, qos=q.to_cyclone(self._user_data(msgtype)), listener=listener)
        pub = DdsPublisher(self, topic, msgtype, q, writer)
        pub._listener = listener  # keep alive as long as the writer
        with self._lock:
            self._pubs.append(pub)
        return pub

    def _attach(self, sub: DispatchingSubscription, qos: QoS) -> None:
        from cyclonedds.core import InstanceState, Listener, ReadCondition, SampleState, ViewState
        from cyclonedds.sub import DataReader

        assert isinstance(sub, DdsSubscription)
        tp = self._topic(sub.topic, sub.msgtype)
        listener = Listener(on_requested_incompatible_qos=lambda _r, st: self._incident(sub.topic, "reader", qos, st))
        reader = DataReader(self.participant, tp, qos=qos.to_cyclone(self._user_data(sub.msgtype)), listener=listener)
        cond = ReadCondition(reader, SampleState.Any | ViewState.Any | InstanceState.Any)
        sub.reader, sub.condition, sub._listener = reader, cond, listener  # type: ignore[attr-defined]
        with self._lock:
            self._subs[id(sub)] = sub
        self._waitset.attach(cond)
        self._guard.set(True)  # wake the dispatcher: transient-local history may already be waiting

    def _detach(self, sub: DispatchingSubscription) -> None:
        with self._lock:
            dsub = self._subs.pop(id(sub), None)
            if dsub is None or self.closed:
                return
            try:
                self._waitset.detach(dsub.condition)
            except Exception:  # already detached by a concurrent close
                pass
            _delete(dsub.condition)
            _delete(dsub.reader)
            dsub.reader = dsub.condition = None

    # ---------------------------------------------------------------------------------- dispatch

    def _run(self) -> None:
        from cyclonedds._clayer import ddspy_take
        from cyclonedds.core import InstanceState, SampleState, ViewState
        from cyclonedds.util import duration

        mask = SampleState.Any | ViewState.Any | InstanceState.Any
        while not self.closed:
            try:
                self._waitset.wait(duration(milliseconds=100))
            except Exception:  # the waitset is deleted under us on close
                if self.closed:
                    return
                raise
            self._guard.set(False)
            with self._lock:
                subs = list(self._subs.values())
            for sub in subs:
                while True:
                    with self._lock:
                        if sub.closed or sub.reader is None or self.closed:
                            break
                        ret = ddspy_take(sub.reader._ref, mask, self._TAKE_BATCH)
                    if isinstance(ret, int) or not ret:
                        break
                    for data, sinfo in ret:
                        if sinfo.valid_data:
                            writer = self._writer_of(sub, int(sinfo.publication_handle)) if sub._info else None
                            enclave = self.enclave_of(writer) if writer is not None else None
                            sub.deliver(data, int(sinfo.source_timestamp), writer, enclave)
                    if len(ret) < self._TAKE_BATCH:
                        break

    # ---------------------------------------------------------------------------------- discovery

    @property
    def participant_id(self) -> str:
        return str(self.participant.guid)

    def _writer_of(self, sub: DdsSubscription, handle: int) -> str | None:
        key = (id(sub), handle)
        got = self._writer_ids.get(key)
        if got is None:
            try:
                with self._lock:
                    if sub.reader is None:
                        return None
                    got = str(sub.reader.get_matched_publication_data(handle).participant_key)
            except Exception:  # the writer left between the sample and the lookup
                return None
            if len(self._writer_ids) > 10_000:
                self._writer_ids.clear()
            self._writer_ids[key] = got
        return got

    def enclave_of(self, participant: str) -> str | None:
        """The ROS enclave a participant announced (``enclave=<name>;`` USER_DATA), None if none (cached)."""
        if participant in self._enclaves:
            return self._enclaves[participant]
        from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsParticipant

        with self._lock:
            if self.closed:
                return None
            if self._part_reader is None:
                self._part_reader = BuiltinDataReader(self.participant, BuiltinTopicDcpsParticipant)
            samples = self._part_reader.read(N=4096)
        for p in samples:
            enclave = None
            for pol in p.qos:
                if getattr(pol, "__scope__", "") == "Userdata":
                    for item in bytes(pol.data).decode("utf-8", "replace").split(";"):
                        if item.startswith("enclave="):
                            enclave = item[len("enclave="):]
            self._enclaves[str(p.key)] = enclave
        return self._enclaves.get(participant)

    def writers(self, topic: str) -> list[WriterInfo]:
        """Every writer on ``topic`` (any type, any QoS) discovery currently knows, this participant's included."""
        from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication
        from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState

        with self._lock:
            self._check_open()
            if self._pub_reader is None:
                self._pub_reader = BuiltinDataReader(self.participant, BuiltinTopicDcpsPublication)
                self._pub_cond = ReadCondition(self._pub_reader, SampleState.Any | ViewState.Any | InstanceState.Alive)
            samples = self._pub_reader.read(N=4096, condition=self._pub_cond)
        dds = T.dds_topic(topic)
        out = []
        for ep in samples:
            if ep.topic_name == dds:
                part = str(ep.participant_key)
                out.append(WriterInfo(part, self.enclave_of(part), ep.type_name))
        return out

    def discovered(self, kind: str = "publications", timeout: float = 0.5) -> list[DiscoveredEndpoint]:
        """Endpoints seen through builtin discovery (``publications`` or ``subscriptions``), remote and local."""
        from cyclonedds.builtin import (
            BuiltinDataReader,
            BuiltinTopicDcpsPublication,
            BuiltinTopicDcpsSubscription,
        )
        from cyclonedds.core import ReadCondition, SampleState, ViewState, InstanceState
        from cyclonedds.util import duration

        topics = {"publications": BuiltinTopicDcpsPublication, "subscriptions": BuiltinTopicDcpsSubscription}
        if kind not in topics:
            raise TetherError(f"unknown endpoint kind {kind!r}; expected one of {sorted(topics)}")
        reader = BuiltinDataReader(self.participant, topics[kind])
        try:
            cond = ReadCondition(reader, SampleState.Any | ViewState.Any | InstanceState.Alive)
            seen: dict[str, DiscoveredEndpoint] = {}
            for ep in reader.take_iter(condition=cond, timeout=duration(seconds=timeout)):
                qos = ep.qos
                ud = b""
                rel, dur = "unknown", "unknown"
                for p in qos:
                    scope, name = getattr(p, "__scope__", ""), type(p).__name__.split(".")[-1]
                    if scope == "Userdata":
                        ud = p.data
                    elif scope == "Reliability":
                        rel = "reliable" if name == "Reliable" else "best_effort"
                    elif scope == "Durability":
                        dur = {"Volatile": "volatile", "TransientLocal": "transient_local"}.get(name, name.lower())
                seen[str(ep.key)] = DiscoveredEndpoint(
                    ep.topic_name, ep.type_name, ud, rel, dur, str(ep.participant_key)
                )
            return list(seen.values())
        finally:
            _delete(reader)

    def discovered_participants(self, timeout: float = 0.5) -> dict[str, bytes]:
        """Participant key -> USER_DATA for every participant seen (ROS ones carry ``enclave=/;``)."""
        from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsParticipant
        from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState
        from cyclonedds.util import duration

        reader = BuiltinDataReader(self.participant, BuiltinTopicDcpsParticipant)
        try:
            cond = ReadCondition(reader, SampleState.Any | ViewState.Any | InstanceState.Alive)
            out: dict[str, bytes] = {}
            for p in reader.take_iter(condition=cond, timeout=duration(seconds=timeout)):
                ud = b""
                for pol in p.qos:
                    if getattr(pol, "__scope__", "") == "Userdata":
                        ud = pol.data
                out[str(p.key)] = ud
            return out
        finally:
            _delete(reader)

    # ---------------------------------------------------------------------------------- lifecycle

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            for sub in self._subs.values():
                sub._closed = True
        self._guard.set(True)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=2.0)
        _delete(self.participant)  # deletes every child entity (readers, writers, topics, waitset)


def _delete(entity: Any) -> None:
    from cyclonedds.core import Entity

    if entity is None:
        return
    ref = getattr(entity, "_ref", None)
    if ref is None:
        return
    if ref in Entity._entities:
        del Entity._entities[ref]
        entity._delete(ref)
