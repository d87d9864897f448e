"""Shared plumbing for adapters that talk to a robot through a ``tether.ros.transport.Transport``.

Subscriptions only store the newest message per topic together with the ``time.monotonic()`` it arrived;
``read_state`` converts the newest messages into observation fields on the control thread. That keeps the
transport's callback thread cheap (no numpy work, no locks held across user code) and makes the stamp the
guard judges staleness by a local, monotonic arrival time rather than a remote clock that may jump or drift.

Also here: checking that an adapter can serve a given contract (every observation field it must produce and
every action field it must execute), so a policy trained on a task the adapter cannot feed fails at
construction with the list of what is missing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from tether.contract import ContractError, Field, IOContract
from tether.errors import TetherError
from tether.hardware.interface import RobotInterface, RobotNotReady


class Latest:
    """Newest message of each topic plus its monotonic arrival time and a count (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._msgs: dict[str, tuple[Any, float]] = {}
        self.counts: dict[str, int] = {}

    def callback(self, topic: str) -> Callable[[Any], None]:
        def _cb(msg: Any) -> None:
            t = time.monotonic()
            with self._lock:
                self._msgs[topic] = (msg, t)
                self.counts[topic] = self.counts.get(topic, 0) + 1

        return _cb

    def get(self, topic: str) -> tuple[Any, float] | None:
        with self._lock:
            return self._msgs.get(topic)

    def put(self, topic: str, msg: Any, stamp: float | None = None) -> None:
        """Store a message as if it had just arrived (or at ``stamp``): for adapters' own derived state."""
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
                            + "; ".join(problems))


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
    """Base for transport-backed adapters: subscription bookkeeping, connect timeout, idempotent disconnect."""

    #: topics whose first message connect() waits for
    required_topics: tuple[str, ...] = ()

    def __init__(self, transport: Any, *, connect_timeout_s: float = 5.0, distro: str = "humble") -> None:
        from tether.ros.types import typestore

        self.transport = transport
        self.store = typestore(distro)
        self.latest = Latest()
        self.connect_timeout_s = connect_timeout_s
        self._subs: list[Any] = []
        self._pubs: dict[str, Any] = {}
        self.connected = False
        #: topic -> predicate; messages failing it are counted in ``rejected`` and never become state
        self.filters: dict[str, Callable[[Any], bool]] = {}
        self.rejected: dict[str, int] = {}

    # subclasses: declare subscriptions and publishers
    def _subscriptions(self) -> list[tuple[str, str, str]]:
        """(topic, msgtype, qos) to subscribe; messages land in ``self.latest`` under the topic."""
        return []

    def _publishers(self) -> list[tuple[str, str, str]]:
        """(topic, msgtype, qos) to advertise; available as ``self._pubs[topic]``."""
        return []

    def make(self, msgtype: str, **fields: Any) -> Any:
        from tether.ros.types import make

        return make(self.store, msgtype, **fields)

    def connect(self) -> None:
        if self.connected:
            return
        try:
            for topic, msgtype, qos in self._publishers():
                self._pubs[topic] = self.transport.publisher(topic, msgtype, qos)
            for topic, msgtype, qos in self._subscriptions():
                self._subs.append(self.transport.subscribe(topic, msgtype, self._callback(topic), qos))
            self.connected = True
            self.wait_for_state(self.connect_timeout_s)
            self._on_connected()
        except BaseException:
            self.disconnect()
            raise

    def _callback(self, topic: str) -> Callable[[Any], None]:
        store = self.latest.callback(topic)
        check = self.filters.get(topic)
        if check is None:
            return store

        def _cb(msg: Any) -> None:
            if check(msg):
                store(msg)
            else:
                self.rejected[topic] = self.rejected.get(topic, 0) + 1

        return _cb

    def _on_connected(self) -> None:
        """Hook run once the first state has arrived (e.g. start a heartbeat)."""

    def wait_for_state(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            missing = [t for t in self.required_topics if self.latest.get(t) is None]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise RobotNotReady(
                    f"no message on {missing} within {timeout_s:g} s; expected the robot to publish them "
                    "(check ROS_DOMAIN_ID, topic names and QoS)"
                )
            time.sleep(0.005)

    def disconnect(self) -> None:
        self._on_disconnect()
        for s in self._subs:
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

    def _pub(self, topic: str) -> Any:
        if not self.connected or topic not in self._pubs:
            raise TetherError(f"publishing on {topic} before connect(); expected connect() first")
        return self._pubs[topic]


def goal_subscription(topic: str | None) -> list[tuple[str, str, str]]:
    return [] if topic is None else [(topic, "geometry_msgs/msg/PointStamped", "default")]


def goal_value(latest: Latest, topic: str | None, fixed: np.ndarray | None, what: str) -> np.ndarray:
    """target_pos from the goal topic (newest) or the fixed parameter; neither -> clear error."""
    if topic is not None:
        got = latest.get(topic)
        if got is not None:
            p = got[0].point
            return np.array([p.x, p.y, p.z], dtype=float)
    if fixed is not None:
        return np.asarray(fixed, dtype=float)
    raise RobotNotReady(f"{what}: no goal on {topic} and no fixed goal; expected one of them")
