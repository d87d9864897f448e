"""Shared plumbing for robot adapters that talk to a robot through a ``tether.ros.transport.Transport``.

Subscriptions decode and check each message as it arrives (on the transport's thread) and keep only the
newest *good* value per topic with the ``time.monotonic()`` it arrived. A message that fails its checks
(:mod:`tether.hardware.plausibility`: non-finite, a non-unit quaternion, a joint missing, stamps going
backwards...) is dropped and counted per topic and reason; it never becomes state, so the newest good state
simply ages and the guard's stale path takes over - one bad message never stops the loop. The stamp the
guard judges staleness by is that local monotonic arrival time, not a remote clock that may jump or drift.

Also here: checking that an adapter can serve a given contract (every observation field it must produce and
every action field it must execute), so a policy trained on a task the adapter cannot feed fails at
construction with the list of what is missing; and which writers a side topic accepts (``PublisherFilter``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tether.contract import ContractError, Field, IOContract
from tether.errors import TetherError
from tether.hardware.interface import ControlStatus, RobotInterface, RobotNotReady
from tether.hardware.limits import RobotLimits
from tether.hardware.plausibility import Implausible, Rejections
from tether.ros.protocols.common import GOAL_TOPIC, goal_point

Decode = Callable[[Any], Any]


class PublisherFilter:
    """Which writers a side topic (goal, e-stop) accepts.

    ``allowed``: DDS participant enclaves (``enclave=<name>;`` in the participant USER_DATA, as ROS 2 nodes
    and SROS2 keystores name them) the operator configured; ``None`` with ``first=True`` accepts the first
    participant heard and no other (trust on first use); ``None`` with ``first=False`` accepts anyone.
    Without DDS Security a participant's enclave is a claim, not a proof: the filter keeps accidents and
    casual intruders out; authentication needs a Cyclone build with the security plugins (tether security).
    """

    def __init__(self, allowed: Sequence[str] | None = None, *, first: bool = True) -> None:
        self.allowed = None if allowed is None else frozenset(allowed)
        self.first = first
        self.pinned: str | None = None

    def check(self, info: Any) -> None:
        publisher = getattr(info, "publisher", None)
        if publisher is None:
            return  # the transport cannot tell writers apart (rclpy): nothing to check against
        if self.allowed is not None:
            if getattr(info, "enclave", None) not in self.allowed:
                raise Implausible("foreign_publisher", f"enclave {getattr(info, 'enclave', None)!r}")
            return
        if not self.first:
            return
        if self.pinned is None:
            self.pinned = publisher
        elif publisher != self.pinned:
            raise Implausible("foreign_publisher", f"participant {publisher}")


@dataclass(frozen=True)
class Sub:
    """One subscription: ``decode`` turns a message into the stored value and raises Implausible to drop it."""

    topic: str
    msgtype: str
    qos: Any
    decode: Decode | None = None
    publishers: PublisherFilter | None = None


class Latest:
    """Newest value of each topic plus its monotonic arrival time and a count (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._msgs: dict[str, tuple[Any, float]] = {}
        self.counts: dict[str, int] = {}

    def callback(self, topic: str) -> Callable[[Any], None]:
        def _cb(msg: Any) -> None:
            self.put(topic, msg)

        return _cb

    def get(self, topic: str) -> tuple[Any, float] | None:
        with self._lock:
            return self._msgs.get(topic)

    def put(self, topic: str, msg: Any, stamp: float | None = None) -> None:
        """Store a value as if it had just arrived (or at ``stamp``)."""
        with self._lock:
            self._msgs[topic] = (msg, time.monotonic() if stamp is None else stamp)
            self.counts[topic] = self.counts.get(topic, 0) + 1


def check_serves(contract: IOContract, obs_fields: Iterable[str], action_fields: Iterable[str],
                 modes: Sequence[str], adapter: str) -> None:
    """Raise ContractError listing every observation/action field or control mode the adapter cannot serve."""
    problems = []
    if contract.control_mode not in modes:
        problems.append(f"control mode {contract.control_mode!r} (supported: {', '.join(modes)})")
    obs_ok, act_ok = set(obs_fields), set(action_fields)
    bad_obs = [f.name for f in contract.observations if f.name not in obs_ok]
    bad_act = [f.name for f in contract.actions if f.name not in act_ok]
    if bad_obs:
        problems.append(f"observation fields {bad_obs} (it provides {sorted(obs_ok)})")
    if bad_act:
        problems.append(f"action fields {bad_act} (it executes {sorted(act_ok)})")
    if problems:
        raise ContractError(f"the {adapter} adapter cannot serve contract {contract.robot}/{contract.task}: "
                            + "; ".join(problems) + "; expected a contract within what the adapter serves")


def joint_components(contract: IOContract, field_name: str, default: Sequence[str]) -> tuple[str, ...]:
    """Joint names of a contract field (its components), falling back to ``default`` when it has none."""
    try:
        f: Field = contract.field(field_name)
    except KeyError:
        return tuple(default)
    names = f.components or tuple(default)
    if len(names) != f.size:
        raise ContractError(f"field {field_name!r} has size {f.size} but {len(names)} joint names {list(names)}")
    return tuple(names)


def index_by_name(names_in_msg: Sequence[str], wanted: Sequence[str], what: str) -> np.ndarray:
    """Indices of ``wanted`` in a message's name list; a missing joint is an error naming it."""
    pos = {n: i for i, n in enumerate(names_in_msg)}
    missing = [n for n in wanted if n not in pos]
    if missing:
        raise TetherError(f"{what} lacks joints {missing}; it has {list(names_in_msg)}")
    return np.array([pos[n] for n in wanted], dtype=int)


class RosRobot(RobotInterface):
    """Base for transport-backed adapters: checked subscriptions, connect timeout, idempotent disconnect."""

    #: what /tether/robot_info must call the robot ("arm", "quadrotor", "legged")
    robot_kind: str = ""
    #: topics whose first message connect() waits for
    required_topics: tuple[str, ...] = ()
    #: required topics that someone other than the robot publishes, and who (named when connect() times out)
    awaited_from: dict[str, str] = {}
    #: the command topic whose subscriber (the robot's controller) means "in control" (None: always in control)
    control_topic: str | None = None
    #: what the adapter can serve: observation fields, action fields, control modes, and its name in errors
    serves_obs: tuple[str, ...] = ()
    serves_actions: tuple[str, ...] = ()
    serves_modes: tuple[str, ...] = ()
    adapter_name: str = ""
    #: fields beyond the observation that its recordings can carry, for scoring, and their sizes (a legged robot's
    #: base velocity from its odometry)
    recorded_state: tuple[tuple[str, int], ...] = ()

    @classmethod
    def check_contract(cls, contract: IOContract) -> None:
        """Raise ContractError naming every field or mode of ``contract`` this adapter cannot serve. A class
        method, so that a pipeline can refuse a task before it trains for it, not when it first deploys."""
        check_serves(contract, cls.serves_obs, cls.serves_actions, cls.serves_modes, cls.adapter_name)

    def __init__(self, transport: Any, *, limits: RobotLimits, connect_timeout_s: float = 5.0,
                 distro: str = "humble") -> None:
        from tether.ros.types import typestore

        if not (np.isfinite(connect_timeout_s) and connect_timeout_s > 0):
            raise TetherError(f"connect timeout {connect_timeout_s} s; expected a finite number > 0")
        self.transport = transport
        self.store = typestore(distro)
        self.robot_limits = limits
        self.latest = Latest()
        self.connect_timeout_s = connect_timeout_s
        self._subs: list[tuple[Sub, Any]] = []
        self._pubs: dict[str, Any] = {}
        self.connected = False
        #: topic -> messages dropped (any reason); ``rejections`` has them per reason
        self.rejected: dict[str, int] = {}
        self.rejections = Rejections()

    # subclasses: declare subscriptions and publishers
    def _subscriptions(self) -> list[Sub]:
        """What to subscribe; decoded values land in ``self.latest`` under the topic."""
        return []

    def _publishers(self) -> list[tuple[str, str, Any]]:
        """(topic, msgtype, qos) to advertise; available as ``self._pubs[topic]``."""
        return []

    def command_topics(self) -> list[str]:
        """Topics on which this adapter must be the only writer (everything it publishes)."""
        return [t for t, _, _ in self._publishers()]

    def recorded_topics(self) -> list[tuple[str, str]]:
        """Topics worth recording for this robot: what it subscribes and publishes, plus protocol extras."""
        return [(s.topic, s.msgtype) for s in self._subscriptions()] + [(t, m) for t, m, _ in self._publishers()]

    def make(self, msgtype: str, **fields: Any) -> Any:
        from tether.ros.types import make

        return make(self.store, msgtype, **fields)

    def connect(self) -> None:
        if self.connected:
            return
        try:
            for topic, msgtype, qos in self._publishers():
                self._pubs[topic] = self.transport.publisher(topic, msgtype, qos)
            for sub in self._subscriptions():
                cb = self._callback(sub)
                if sub.publishers is not None:
                    handle = self.transport.subscribe(sub.topic, sub.msgtype, cb, sub.qos, info=True)
                else:
                    handle = self.transport.subscribe(sub.topic, sub.msgtype, cb, sub.qos)
                self._subs.append((sub, handle))
            self.connected = True
            self.wait_for_state(self.connect_timeout_s)
            self._on_connected()
        except BaseException:
            self.disconnect()
            raise

    def reject(self, topic: str, reason: str, detail: str = "") -> None:
        self.rejected[topic] = self.rejected.get(topic, 0) + 1
        self.rejections.add(topic, reason, detail)

    def _callback(self, sub: Sub) -> Callable[..., None]:
        store = self.latest.callback(sub.topic)

        def _cb(msg: Any, info: Any = None) -> None:
            try:
                if sub.publishers is not None:
                    sub.publishers.check(info)
                value = msg if sub.decode is None else sub.decode(msg)
            except Implausible as exc:
                self.reject(sub.topic, exc.reason, str(exc))
                return
            store(value)

        return _cb

    def state_rejections(self) -> dict[str, dict[str, int]]:
        out = self.rejections.as_dict()
        for sub, handle in self._subs:
            dropped = int(getattr(handle, "dropped", 0) or 0)
            if dropped:
                out.setdefault(sub.topic, {})["undecodable"] = dropped
        return out

    def _on_connected(self) -> None:
        """Hook run once the first state has arrived (e.g. start a heartbeat)."""

    def wait_for_state(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            missing = [t for t in self.required_topics if self.latest.get(t) is None]
            if not missing:
                return
            if time.monotonic() > deadline:
                dropped = [f"{t}: {self.rejections.last(t)}" for t in missing if self.rejections.last(t)]
                others = [f"{t} from {self.awaited_from[t]}" for t in missing if t in self.awaited_from]
                raise RobotNotReady(
                    f"no usable message on {missing} within {timeout_s:g} s; expected the robot to publish them "
                    + (f"({'; '.join(others)}) " if others else "")
                    + "(check ROS_DOMAIN_ID, topic names and QoS)"
                    + (f"; dropped as implausible: {'; '.join(dropped)}" if dropped else "")
                )
            time.sleep(0.005)

    def disconnect(self) -> None:
        self._on_disconnect()
        for _, s in self._subs:
            try:
                s.close()
            except Exception:  # closing is best effort; a dead transport must not block shutdown
                pass
        self._subs.clear()
        self._pubs.clear()
        self.connected = False

    def _on_disconnect(self) -> None:
        """Hook run first in disconnect() (e.g. stop a heartbeat)."""

    def _need(self, topic: str) -> tuple[Any, float]:
        got = self.latest.get(topic)
        if got is None:
            raise RobotNotReady(f"no message on {topic} yet; expected connect() to have waited for it")
        return got

    def control_status(self) -> ControlStatus:
        """Control as far as a plain pub/sub wire can tell: the controller subscribes to ``control_topic`` (an
        unloaded ros2_control controller or a stopped firmware has no subscription; whether an existing one is
        *active* needs the controller manager's services, i.e. the rclpy transport)."""
        if self.control_topic is None:
            return ControlStatus(True)
        topic = self.control_topic
        pub = self._pubs.get(topic)
        try:
            matched = pub.matched() if pub is not None else 0
        except NotImplementedError:  # a transport that cannot tell (rclpy): assume the controller is there
            return ControlStatus(True)
        if matched == 0:
            return ControlStatus(False, f"nothing subscribes to {topic} (controller stopped?)", True)
        return ControlStatus(True)

    def _pub(self, topic: str) -> Any:
        if not self.connected or topic not in self._pubs:
            raise TetherError(f"publishing on {topic} before connect(); expected connect() first")
        return self._pubs[topic]


def goal_subscription(topic: str | None, bound: float, publishers: PublisherFilter | None) -> list[Sub]:
    if topic is None:
        return []
    return [Sub(topic, "geometry_msgs/msg/PointStamped", "default", lambda m: goal_point(m, bound), publishers)]


def fixed_goal(goal: Sequence[float] | None, bound: float) -> np.ndarray | None:
    """A goal given as an option: three finite numbers within the robot's goal range, else a clear error."""
    if goal is None:
        return None
    arr = np.asarray(goal, dtype=float).reshape(-1)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)) or np.any(np.abs(arr) > bound):
        raise TetherError(f"goal {np.asarray(goal).tolist()}; expected 3 finite numbers within +-{bound:g} m")
    return arr


def goal_value(latest: Latest, topic: str | None, fixed: np.ndarray | None, what: str) -> np.ndarray:
    """target_pos from the goal topic (newest accepted) or the fixed parameter; neither -> clear error."""
    if topic is not None:
        got = latest.get(topic)
        if got is not None:
            return np.asarray(got[0], dtype=float)
    if fixed is not None:
        return np.asarray(fixed, dtype=float)
    raise RobotNotReady(f"{what}: no goal on {topic} and no fixed goal; expected one of them")


__all__ = ["GOAL_TOPIC", "Latest", "PublisherFilter", "RosRobot", "Sub", "check_serves", "goal_subscription",
           "goal_value", "index_by_name", "joint_components"]


def with_action_limits(contract: IOContract, limits: RobotLimits) -> IOContract:
    """``contract`` with every action field's limits narrowed to the robot's (by element name)."""
    import dataclasses

    from tether.hardware.limits import intersect

    low, high = intersect(contract, limits)
    fields, i = [], 0
    for f in contract.actions:
        fields.append(dataclasses.replace(f, low=tuple(float(v) for v in low[i:i + f.size]),
                                          high=tuple(float(v) for v in high[i:i + f.size])))
        i += f.size
    return dataclasses.replace(contract, actions=tuple(fields))
