"""ROS 2 message types without ROS: one rosbags typestore per distro, plus the bundled vendor packages.

Why one codec: the live DDS wire, the rclpy transport, recorded bags and the tests all serialise through the
same rosbags typestore, so a message that round-trips here is byte-identical on every path. The built-in
rosbags stores only know the core packages; the vendor packages Tether talks to (control_msgs, px4_msgs,
unitree_go, unitree_hg) are bundled as ``.msg`` text under ``tether/ros/msg/<pkg>/msg/`` (written from the
published upstream definitions, see the comment at the top of each file) and registered at load time.
Definitions that differ per distro under the same type name (control_msgs JointTrajectoryControllerState)
live under ``tether/ros/msg/_distro/<distro>/<pkg>/msg/`` and override the common ones.

Type hashes (RIHS01, REP-2011) come from rosbags and were checked against hashes emitted by real rosidl
builds (see tests/test_ros_types.py).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.interfaces import Nodetype
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from tether.errors import TetherError

#: Distros Tether ships message definitions for (rosbags store behind each).
DISTROS: dict[str, Stores] = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}

#: The bundled non-core packages (registered into every store).
BUNDLED_PACKAGES = ("control_msgs", "px4_msgs", "unitree_go", "unitree_hg")

MSG_ROOT = Path(__file__).with_name("msg")

_NUMPY_DTYPES = {
    "bool": np.bool_,
    "byte": np.uint8,
    "char": np.uint8,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
}


def _check_distro(distro: str) -> str:
    if distro not in DISTROS:
        raise TetherError(f"unknown ROS 2 distro {distro!r}; expected one of {sorted(DISTROS)}")
    return distro


def msg_files(root: Path) -> dict[str, Path]:
    """Map ``pkg/msg/Name`` to its ``.msg`` file for a tree laid out as ``<root>/<pkg>/msg/<Name>.msg``."""
    found: dict[str, Path] = {}
    for path in sorted(root.glob("*/msg/*.msg")):
        pkg = path.parent.parent.name
        if pkg.startswith("_"):
            continue
        found[f"{pkg}/msg/{path.stem}"] = path
    return found


def load_msg_dir(store: Typestore, root: str | Path) -> list[str]:
    """Register every ``<root>/<pkg>/msg/*.msg`` into ``store``; returns the type names registered.

    Use it to add a package Tether does not bundle (e.g. px4_msgs of another PX4 release) to a typestore;
    later definitions replace earlier ones of the same name only if they are identical, else rosbags raises.
    """
    root = Path(root)
    if not root.is_dir():
        raise TetherError(f"message directory {str(root)!r} does not exist; expected <root>/<pkg>/msg/*.msg")
    files = msg_files(root)
    if not files:
        raise TetherError(f"no .msg files under {str(root)!r}; expected the layout <root>/<pkg>/msg/<Name>.msg")
    return _register(store, files)


def _register(store: Typestore, files: dict[str, Path]) -> list[str]:
    types: dict[str, Any] = {}
    for name, path in files.items():
        types.update(get_types_from_msg(path.read_text(encoding="utf-8"), name))
    store.register(types)
    return sorted(files)


@functools.lru_cache(maxsize=None)
def typestore(distro: str = "humble") -> Typestore:
    """The cached rosbags typestore for ``distro`` with Tether's bundled vendor packages registered.

    Cached because building a store costs tens of milliseconds and every publisher/subscriber needs one; treat
    the returned object as shared (register extra packages with ``load_msg_dir`` only at start-up).
    """
    _check_distro(distro)
    store = get_typestore(DISTROS[distro])
    files = msg_files(MSG_ROOT)
    files.update(msg_files(MSG_ROOT / "_distro" / distro))
    _register(store, files)
    return store


def check_msgtype(store: Typestore, msgtype: str) -> str:
    """Return ``msgtype`` if the store knows it, else raise naming close candidates."""
    if not isinstance(msgtype, str) or msgtype not in store.fielddefs:
        pkg = str(msgtype).split("/")[0]
        same_pkg = sorted(t for t in store.fielddefs if t.startswith(pkg + "/"))[:12]
        hint = f"known {pkg} types: {same_pkg}" if same_pkg else f"bundled packages: {list(BUNDLED_PACKAGES)}"
        raise TetherError(f"unknown ROS message type {msgtype!r}; expected 'pkg/msg/Name' ({hint})")
    return msgtype


# ---------------------------------------------------------------------------------------------- naming


def dds_typename(msgtype: str) -> str:
    """``sensor_msgs/msg/JointState`` -> ``sensor_msgs::msg::dds_::JointState_`` (the rmw mangling)."""
    parts = msgtype.split("/")
    if len(parts) != 3 or not all(parts):
        raise TetherError(f"bad ROS message type {msgtype!r}; expected 'pkg/msg/Name'")
    pkg, kind, name = parts
    return f"{pkg}::{kind}::dds_::{name}_"


def msgtype_from_dds(typename: str) -> str:
    """Inverse of :func:`dds_typename`."""
    parts = typename.split("::")
    if len(parts) != 4 or parts[2] != "dds_" or not parts[3].endswith("_"):
        raise TetherError(f"bad DDS type name {typename!r}; expected 'pkg::msg::dds_::Name_'")
    return f"{parts[0]}/{parts[1]}/{parts[3][:-1]}"


def check_topic(topic: str) -> str:
    """Validate a fully-qualified ROS topic name (``/ns/name``); relative names need a node, which we lack."""
    if not isinstance(topic, str) or not topic.startswith("/") or topic == "/" or topic.endswith("/"):
        raise TetherError(f"bad ROS topic name {topic!r}; expected an absolute name like '/joint_states'")
    for token in topic[1:].split("/"):
        if not token or not (token[0].isalpha() or token[0] == "_") or not all(
            c.isalnum() or c == "_" for c in token
        ):
            raise TetherError(
                f"bad ROS topic name {topic!r}; tokens must be [A-Za-z_][A-Za-z0-9_]* separated by '/'"
            )
    return topic


def dds_topic(topic: str) -> str:
    """``/joint_states`` -> ``rt/joint_states`` (rmw ``make_fqtopic`` with the ``rt`` prefix)."""
    return "rt" + check_topic(topic)


def ros_topic(dds_name: str) -> str:
    """``rt/joint_states`` -> ``/joint_states``."""
    if not dds_name.startswith("rt/"):
        raise TetherError(f"DDS topic {dds_name!r} is not a ROS topic; expected the 'rt/' prefix")
    return dds_name[2:]


def rihs01(store: Typestore, msgtype: str) -> str:
    """REP-2011 type hash ``RIHS01_<sha256>`` as ROS Iron+ puts it into endpoint USER_DATA."""
    return store.hash_rihs01(check_msgtype(store, msgtype))


# ------------------------------------------------------------------------------------ building messages


def _default(store: Typestore, desc: tuple[Any, Any]) -> Any:
    node, arg = desc
    if node == Nodetype.BASE:
        typ = arg[0]
        if typ == "string" or typ == "wstring":
            return ""
        if typ == "bool":
            return False
        if typ.startswith("float"):
            return 0.0
        return 0
    if node == Nodetype.NAME:
        return make(store, arg, _stamp_header=False)
    sub, length = arg
    if node == Nodetype.ARRAY:
        if sub[0] == Nodetype.BASE and sub[1][0] in _NUMPY_DTYPES:
            return np.zeros(length, dtype=_NUMPY_DTYPES[sub[1][0]])
        return [_default(store, sub) for _ in range(length)]
    # sequence
    if sub[0] == Nodetype.BASE and sub[1][0] in _NUMPY_DTYPES:
        return np.zeros(0, dtype=_NUMPY_DTYPES[sub[1][0]])
    return []


def _coerce(store: Typestore, msgtype: str, name: str, desc: tuple[Any, Any], value: Any) -> Any:
    node, arg = desc
    if node == Nodetype.NAME:
        if isinstance(value, dict):
            return make(store, arg, _stamp_header=False, **value)
        return value
    if node in (Nodetype.ARRAY, Nodetype.SEQUENCE):
        sub, length = arg
        if sub[0] == Nodetype.BASE and sub[1][0] in _NUMPY_DTYPES:
            arr = np.asarray(value, dtype=_NUMPY_DTYPES[sub[1][0]]).reshape(-1)
        elif sub[0] == Nodetype.NAME:
            arr = [make(store, sub[1], _stamp_header=False, **v) if isinstance(v, dict) else v for v in value]
        else:
            arr = list(value)
        if node == Nodetype.ARRAY and len(arr) != length:
            raise TetherError(f"{msgtype}.{name} has {len(arr)} elements; expected exactly {length}")
        if node == Nodetype.SEQUENCE and length and len(arr) > length:
            raise TetherError(f"{msgtype}.{name} has {len(arr)} elements; expected at most {length}")
        return arr
    return value


def make(store: Typestore, msgtype: str, _stamp_header: bool = True, **fields: Any) -> Any:
    """Build a ``msgtype`` message; missing fields get zeros/empties, a missing ``header`` gets now().

    Lists become numpy arrays of the field's dtype (what rosbags' serialiser wants), nested messages may be
    given as dicts, fixed arrays are length-checked. Unknown field names raise, listing the valid ones.
    """
    check_msgtype(store, msgtype)
    _, fdefs = store.fielddefs[msgtype]
    names = [n for n, _ in fdefs]
    unknown = sorted(set(fields) - set(names))
    if unknown:
        raise TetherError(f"{msgtype} has no field(s) {unknown}; expected some of {names}")
    values: dict[str, Any] = {}
    for name, desc in fdefs:
        if name in fields:
            values[name] = _coerce(store, msgtype, name, desc, fields[name])
        elif _stamp_header and name == "header" and desc == (Nodetype.NAME, "std_msgs/msg/Header"):
            values[name] = store.types["std_msgs/msg/Header"](stamp=now_stamp(store), frame_id="")
        else:
            values[name] = _default(store, desc)
    return store.types[msgtype](**values)


def serialize(store: Typestore, msg: Any, msgtype: str | None = None) -> bytes:
    """CDR bytes (with the 4-byte encapsulation header) exactly as a ROS 2 RMW puts them on the wire."""
    msgtype = msgtype or getattr(msg, "__msgtype__", None)
    if msgtype is None:
        raise TetherError(f"cannot serialise {type(msg).__name__}; expected a rosbags message object")
    check_msgtype(store, msgtype)
    try:
        return bytes(store.serialize_cdr(msg, msgtype))
    except Exception as exc:  # rosbags raises SerdeError/struct.error/TypeError... for a wrongly filled message
        raise TetherError(
            f"cannot serialise {msgtype}: {type(exc).__name__}: {exc} (build messages with tether.ros.types.make)"
        ) from exc


def deserialize(store: Typestore, data: bytes | memoryview, msgtype: str) -> Any:
    """Decode CDR bytes; raises TetherError on malformed input (transports catch it and count a drop)."""
    check_msgtype(store, msgtype)
    buf = bytes(data)
    if len(buf) < 4 or buf[0] != 0 or buf[1] not in (0, 1):
        raise TetherError(f"malformed CDR for {msgtype}: bad encapsulation header {buf[:4].hex()!r}")
    try:
        return store.deserialize_cdr(buf, msgtype)
    except Exception as exc:  # rosbags raises struct.error, IndexError, UnicodeDecodeError, AssertionError...
        raise TetherError(f"malformed CDR for {msgtype} ({len(buf)} bytes): {type(exc).__name__}: {exc}") from exc


# --------------------------------------------------------------------------------------------- stamps


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (or Duration) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def stamp_to_sec(stamp: Any) -> float:
    """builtin_interfaces/Time (or Duration) -> float seconds."""
    return int(stamp.sec) + int(stamp.nanosec) * 1e-9


def ns_to_stamp(store: Typestore, ns: int) -> Any:
    """Integer nanoseconds -> builtin_interfaces/Time (floor division, so nanosec is always in [0, 1e9))."""
    sec, nsec = divmod(int(ns), 1_000_000_000)
    if not -(2**31) <= sec < 2**31:
        raise TetherError(f"time {ns} ns does not fit builtin_interfaces/Time; expected |sec| < 2**31")
    return store.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec)


def sec_to_stamp(store: Typestore, t: float) -> Any:
    """Float seconds -> builtin_interfaces/Time (rounded to the nearest nanosecond)."""
    if not math.isfinite(t):
        raise TetherError(f"time {t!r} is not finite; expected seconds as a finite float")
    return ns_to_stamp(store, round(t * 1e9))


def now_stamp(store: Typestore) -> Any:
    """Wall-clock time as ROS uses it for header stamps (system time unless use_sim_time)."""
    return ns_to_stamp(store, time.time_ns())


def header(store: Typestore, frame_id: str = "", stamp_ns: int | None = None) -> Any:
    """A std_msgs/Header with ``frame_id`` and the given (default: now) stamp."""
    stamp = now_stamp(store) if stamp_ns is None else ns_to_stamp(store, stamp_ns)
    return store.types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def registered(store: Typestore, packages: Iterable[str] = BUNDLED_PACKAGES) -> list[str]:
    """Type names in ``store`` that belong to ``packages`` (handy for listing what a robot can speak)."""
    pk = tuple(p + "/" for p in packages)
    return sorted(t for t in store.fielddefs if t.startswith(pk))
