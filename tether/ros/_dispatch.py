"""Shared pub/sub paths for every transport: encode and write CDR, decode it, call the user's callback,
count what went wrong.

Why shared: the guarantee "a malformed sample is dropped and counted, a raising callback is logged and
counted, nothing propagates into the transport's thread" must hold identically for DDS, rclpy and loopback,
and so must the checks made before an endpoint exists. Each transport only says how a subscription attaches
to and detaches from its wire (:meth:`DispatchingTransport._attach` / ``_detach``) and how raw CDR is written
(:meth:`CdrPublisher.publish_raw`).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from tether.errors import TetherError
from tether.ros import types as T
from tether.ros.qos import QoS, resolve
from tether.ros.transport import Publisher, ReceiveInfo, Subscription, Transport

log = logging.getLogger("tether.ros")


class DispatchingSubscription(Subscription):
    """A subscription whose transport hands it raw CDR; it decodes and invokes the callback safely."""

    def __init__(
        self,
        topic: str,
        msgtype: str,
        callback: Callable[..., None],
        store: Any,
        raw: bool = False,
        info: bool = False,
        on_close: Callable[[DispatchingSubscription], None] | None = None,
    ) -> None:
        self.topic = topic
        self.msgtype = msgtype
        self.dropped = 0
        self.received = 0
        self.errors = 0
        self.last_error: str | None = None
        self._callback = callback
        self._store = store
        self._raw = raw
        self._info = info
        self._on_close = on_close
        self._closed = False
        self._lock = threading.Lock()  # callbacks for one subscription never run concurrently

    @property
    def closed(self) -> bool:
        return self._closed

    def deliver(self, data: bytes, source_ns: int | None = None, publisher: str | None = None,
                enclave: str | None = None) -> None:
        """Decode ``data`` and run the callback; never raises."""
        if self._closed:
            return
        recv_ns = time.time_ns()
        with self._lock:
            try:
                msg: Any = bytes(data) if self._raw else T.deserialize(self._store, data, self.msgtype)
                if self._raw and (len(msg) < 4 or msg[0] != 0 or msg[1] not in (0, 1)):
                    raise TetherError(f"malformed CDR for {self.msgtype}: bad encapsulation header")
            except TetherError as exc:
                self.dropped += 1
                self.last_error = str(exc)
                log.debug("dropped sample on %s: %s", self.topic, exc)
                return
            try:
                if self._info:
                    info = ReceiveInfo(source_ns if source_ns is not None else recv_ns, recv_ns, len(data),
                                       publisher, enclave)
                    self._callback(msg, info)
                else:
                    self._callback(msg)
                self.received += 1
            except Exception as exc:  # a user bug must not kill the transport's receive thread
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("callback for %s raised", self.topic)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._on_close is not None:
            self._on_close(self)


class CdrPublisher(Publisher):
    """A publisher that serialises with its transport's typestore; subclasses write the raw CDR."""

    def __init__(self, transport: Any, topic: str, msgtype: str, qos: QoS) -> None:
        self.topic = topic
        self.msgtype = msgtype
        self.qos = qos
        self._t = transport
        self.published = 0

    def publish(self, msg: Any) -> None:
        self.publish_raw(T.serialize(self._t.store, msg, self.msgtype))

    def _check_open(self) -> None:
        if self._t.closed:
            raise TetherError(f"publish on {self.topic} after the transport was closed; expected an open transport")


class DispatchingTransport(Transport):
    """A transport whose subscriptions are :class:`DispatchingSubscription` s: the subscribe path lives here."""

    store: Any
    closed: bool
    subscription_class: ClassVar[type[DispatchingSubscription]] = DispatchingSubscription

    def subscribe(
        self,
        topic: str,
        msgtype: str,
        callback: Callable[..., None],
        qos: Any = "default",
        *,
        raw: bool = False,
        info: bool = False,
    ) -> DispatchingSubscription:
        self._check_open()
        T.check_topic(topic)
        T.check_msgtype(self.store, msgtype)
        q = resolve(qos)
        sub = self.subscription_class(topic, msgtype, callback, self.store, raw, info, on_close=self._detach)
        self._attach(sub, q)
        return sub

    @abstractmethod
    def _attach(self, sub: DispatchingSubscription, qos: QoS) -> None:
        """Connect ``sub`` to the wire so that received CDR reaches ``sub.deliver``."""

    @abstractmethod
    def _detach(self, sub: DispatchingSubscription) -> None:
        """Disconnect a closing ``sub`` from the wire (called once, from ``sub.close()``)."""

    def _check_open(self) -> None:
        if self.closed:
            raise TetherError("transport is closed; expected an open transport")


def pad4(data: bytes) -> bytes:
    """Pad CDR to a 4-byte multiple and record the pad count in the encapsulation options (XTypes 7.6.3.1.2).

    That is what Cyclone's own C writer does; readers (Cyclone, rmw, rosbags) strip or ignore the padding.
    """
    pad = -len(data) % 4
    if pad == 0:
        return bytes(data)
    return bytes(data[:3]) + bytes([(data[3] & ~0x3) | pad]) + bytes(data[4:]) + b"\0" * pad
