"""The Transport interface over rclpy, for machines with a sourced ROS 2 install.

UNTESTED HERE: rclpy is not installed in Tether's development environment, so this module is written against
the rclpy API (Humble and Jazzy: ``Publisher.publish(bytes)`` routes to ``publish_raw``,
``create_subscription(..., raw=True)`` hands callbacks the serialised CDR, event callbacks report
incompatible QoS) but has never been executed. Tests only check that ``make_transport()`` does not pick it
when rclpy is absent.

Why route bytes through rclpy instead of rclpy message classes: messages stay rosbags objects on every
transport (policy and hardware code never see two message families), and the CDR produced by rosbags is
what the RMW would produce anyway. The ROS message packages must still be installed in the ROS environment
(rclpy needs the type support to create endpoints), e.g. px4_msgs / unitree_go built in the workspace.

Using rclpy brings what the pure-DDS transport lacks: the node appears in ``ros2 node list``, any RMW works
(Fast DDS, Zenoh), and services/actions are possible (not wrapped here).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from tether.errors import TetherError
from tether.ros import types as T
from tether.ros._dispatch import CdrPublisher, DispatchingSubscription, DispatchingTransport
from tether.ros.qos import QoS, QosIncident, QosIncidentLog, resolve

log = logging.getLogger("tether.ros.rclpy")


def _distro_default() -> str:
    env = os.environ.get("ROS_DISTRO", "")
    return env if env in T.DISTROS else "humble"


def _message_class(msgtype: str) -> Any:
    try:
        from rosidl_runtime_py.utilities import get_message

        return get_message(msgtype)
    except (AttributeError, ModuleNotFoundError, ValueError) as exc:
        pkg = msgtype.split("/")[0]
        raise TetherError(
            f"ROS message type {msgtype!r} is not installed in this ROS environment ({exc}); "
            f"expected the {pkg} package to be built and sourced"
        ) from exc


def _event_callbacks() -> tuple[Any, Any]:
    """(PublisherEventCallbacks, SubscriptionEventCallbacks): rclpy.event_handler on Iron+, qos_event on Humble."""
    try:
        from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
    except ImportError:  # Humble
        from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks  # type: ignore[no-redef]
    return PublisherEventCallbacks, SubscriptionEventCallbacks


class RclpyPublisher(CdrPublisher):
    def __init__(self, transport: RclpyTransport, topic: str, msgtype: str, qos: QoS, pub: Any) -> None:
        super().__init__(transport, topic, msgtype, qos)
        self._pub = pub

    def publish_raw(self, data: bytes) -> None:
        self._pub.publish(bytes(data))  # rclpy: bytes -> publish_raw (serialised message)
        self.published += 1

    def matched(self) -> int:
        return int(self._pub.get_subscription_count())


class RclpySubscription(DispatchingSubscription):
    _t: RclpyTransport
    _sub: Any = None

    def matched(self) -> int:
        return int(self._t.node.count_publishers(self.topic))


class RclpyTransport(DispatchingTransport):
    """Transport over rclpy with its own context, node and executor thread (untested here; see module doc)."""

    subscription_class = RclpySubscription

    def __init__(
        self,
        node_name: str = "tether",
        distro: str | None = None,
        domain_id: int | None = None,
        namespace: str = "",
    ) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.distro = distro or _distro_default()
        self.store = T.typestore(self.distro)
        self.context = rclpy.Context()
        init_kw: dict[str, Any] = {"context": self.context}
        if domain_id is not None:
            init_kw["domain_id"] = int(domain_id)
        rclpy.init(**init_kw)
        self.node = rclpy.create_node(node_name, namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.qos_incidents = QosIncidentLog()
        self.closed = False
        self._subs: list[RclpySubscription] = []
        self._thread = threading.Thread(target=self._spin, name="tether-rclpy", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self.closed and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.1)
            except Exception:  # executor shutdown races on close
                if self.closed:
                    return
                log.exception("rclpy executor error")

    def _event(self, topic: str, side: str, q: QoS, event: Any) -> None:
        kind = getattr(event.last_policy_kind, "name", str(event.last_policy_kind))
        policy = kind.replace("RMW_QOS_POLICY_", "").upper()
        reason = f"{policy}: local {side} ({q.reliability}, {q.durability}) is incompatible with a remote peer"
        self.qos_incidents.report(QosIncident(topic, side, policy, int(event.total_count), reason))  # type: ignore[arg-type]

    def publisher(self, topic: str, msgtype: str, qos: Any = "default") -> RclpyPublisher:
        PublisherEventCallbacks, _ = _event_callbacks()
        q = resolve(qos)
        T.check_topic(topic)
        T.check_msgtype(self.store, msgtype)
        cbs = PublisherEventCallbacks(incompatible_qos=lambda ev: self._event(topic, "writer", q, ev))
        pub = self.node.create_publisher(_message_class(msgtype), topic, q.to_rclpy(), event_callbacks=cbs)
        return RclpyPublisher(self, topic, msgtype, q, pub)

    def _attach(self, sub: DispatchingSubscription, qos: QoS) -> None:
        _, SubscriptionEventCallbacks = _event_callbacks()
        assert isinstance(sub, RclpySubscription)
        sub._t = self
        cbs = SubscriptionEventCallbacks(incompatible_qos=lambda ev: self._event(sub.topic, "reader", qos, ev))
        sub._sub = self.node.create_subscription(
            _message_class(sub.msgtype), sub.topic, lambda data: sub.deliver(data), qos.to_rclpy(),
            event_callbacks=cbs, raw=True,
        )
        self._subs.append(sub)

    def _detach(self, sub: DispatchingSubscription) -> None:
        if getattr(sub, "_sub", None) is not None and not self.closed:
            self.node.destroy_subscription(sub._sub)  # type: ignore[attr-defined]
            sub._sub = None  # type: ignore[attr-defined]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._thread.join(timeout=2.0)
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()
