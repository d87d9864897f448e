"""rosbag2 (MCAP or sqlite3) → episode dataset, aligned to the control clock and mapped by joint name.

A *topic mapping* says which topic and message attribute feeds each contract field. Two built-ins:

- ``flat``: the bag carries whole contract vectors, as ``tether deploy --record`` writes them:
  ``/tether/obs`` (std_msgs/Float64MultiArray, the flat observation in physical units) and
  ``/tether/action`` (std_msgs/Float64MultiArray, the *physical* command; normalised here), optionally
  ``/tether/reward`` (Float64MultiArray or Float64) and ``/tether/episode`` (a counter, e.g. std_msgs/UInt32,
  that changes at every reset and splits episodes). Float64MultiArray has no header, so stamps come from a
  parallel ``<topic>/stamp`` topic (builtin_interfaces/Time, one per message) when the bag has one, else
  from the bag's receive time. ``rosbag_export.write_flat_bag`` writes exactly this layout.
- ``ros2-control`` (alias ``arm-ros2-control``): ``/joint_states`` (sensor_msgs/JointState) fills every
  observation field whose components are joint names — ``position`` for ``joint_pos``, ``velocity`` for
  ``joint_vel``, ``effort`` for ``joint_effort`` — picked by ``name[]``, never by position; the command is a
  forward_command_controller ``Float64MultiArray`` (``data[]`` in the controller's joint order, by default
  the contract's) or a ``trajectory_msgs/JointTrajectory`` (matched by ``joint_names``, last point).
  Fields no topic carries (an arm's ``ee_pos``, ``target_pos``) must be given as constants or derived from
  the aligned fields (e.g. forward kinematics), otherwise the conversion names them and stops.

Alignment, and why: streams are stamped by ``header.stamp`` (capture time; a zero stamp or no header falls
back to the bag time) and resampled with a zero-order hold onto the grid ``t_k = t0 + k/rate``. ``t0`` is the
first observation at or after the time from which every stream has a value (observations and the episode
counter at ``t0``, commands and rewards before ``t1``): the grid takes its phase from the observations, so
one stream that starts late cannot shift the pairs. The grid ends at the earliest last observation stamp.
Observation k is the latest sample at or before ``t_k`` (within 1 µs: writers round k/rate to whole ns
differently); action k is the latest command before ``t_{k+1}`` — the command in force during step k, which
arrives after the observation that caused it by the loop's latency. With stamps on the control clock (as
``tether deploy`` writes them) this reproduces the recorded pairs exactly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tether.contract import IOContract
from tether.data import topics
from tether.errors import TetherError

WHOLE = "*"  # mapping key meaning "the whole flat observation/action vector"
FLAT_OBS_TOPIC = topics.OBS_TOPIC
FLAT_ACTION_TOPIC = topics.ACTION_TOPIC
FLAT_REWARD_TOPIC = topics.REWARD_TOPIC
FLAT_EPISODE_TOPIC = topics.EPISODE_TOPIC
STAMP_TOL_NS = 1_000  # stamps this close after a grid point count as on it
JOINT_STATE_ATTRS = {"joint_pos": "position", "joint_vel": "velocity", "joint_effort": "effort"}


# a message field path from a mapping file: names that do not start with '_', each with optional [i] indices
_ATTR_PATH = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\[-?\d+\])*(\.[A-Za-z][A-Za-z0-9_]*(\[-?\d+\])*)*")


class BagMappingError(TetherError):
    """The bag cannot feed the contract: the message lists every missing topic, type or joint name."""


@dataclass(frozen=True)
class Source:
    """Where one contract field (or the whole vector, key ``*``) comes from.

    ``attr`` is an attribute path into the message (``position``, ``data``, ``points[-1].positions``).
    ``by_name``: pick elements by the message's joint names (``name`` / ``joint_names``) equal to
    ``names`` (default: the contract field's components). Without it, ``names`` lists the message's element
    order (e.g. a controller's ``joints`` parameter) and elements are picked by the contract's components;
    with neither, elements ``start:start+size`` are taken. ``stamp``: ``auto`` (header, else parallel
    ``<topic>/stamp``, else bag time), ``header``, ``bag``, or the name of a parallel stamp topic.
    """

    topic: str
    attr: str = "data"
    by_name: bool = False
    names: tuple[str, ...] | None = None
    start: int = 0
    stamp: str = "auto"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "source spec") -> Source:
        from tether.validation import expect_dict, expect_int, expect_list, expect_str

        known = {"topic", "attr", "by_name", "names", "start", "stamp"}
        if not isinstance(d, Mapping):
            expect_dict(d, where)
        bad = sorted(set(d) - known)
        if bad or "topic" not in d:
            raise TetherError(
                f"{where} {dict(d)} has unknown keys {bad} or no 'topic'; expected keys {sorted(known)}"
            )
        # an attribute path from a file reaches message fields only: no '_'-names (no __class__.__init__ ...)
        attr = expect_str(d.get("attr", "data"), f"{where}.attr", max_len=256, pattern=_ATTR_PATH,
                          expected="a message field path like position or points[-1].positions")
        by_name = d.get("by_name", False)
        if not isinstance(by_name, bool):
            raise TetherError(f"{where}.by_name is {by_name!r}; expected true or false")
        names = None if d.get("names") is None else tuple(
            expect_str(n, f"{where}.names[{i}]", max_len=256)
            for i, n in enumerate(expect_list(d["names"], f"{where}.names", max_len=10_000)))
        return cls(expect_str(d["topic"], f"{where}.topic", max_len=256), attr, by_name, names,
                   expect_int(d.get("start", 0), f"{where}.start", 0, 1 << 20),
                   expect_str(d.get("stamp", "auto"), f"{where}.stamp", max_len=256))


@dataclass(frozen=True)
class TopicMapping:
    """Which topic feeds which contract field; see the module docstring for the two built-ins."""

    name: str
    observations: Mapping[str, Source]
    actions: Mapping[str, Source]
    reward: Source | None = None
    episode: Source | None = None  # a counter that changes at every reset (std_msgs/UInt32 or similar)
    action_is_normalised: bool = False
    constants: Mapping[str, Sequence[float]] = field(default_factory=dict)
    # name -> fn(aligned fields {name: (T, size)}) -> (T, size); e.g. forward kinematics for ee_pos
    derived: Mapping[str, Callable[[dict[str, np.ndarray]], np.ndarray]] = field(default_factory=dict)
    optional_reward: bool = True

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "topic mapping") -> TopicMapping:
        """A mapping from JSON: {"observations": {field: source}, "actions": {...}, "reward": source,
        "constants": {field: [..]}, "action_is_normalised": bool}; every field typed (data from a file)."""
        from tether.validation import expect_dict, expect_numbers, expect_str

        d = expect_dict(dict(d) if isinstance(d, Mapping) else d, where,
                        allowed=("name", "observations", "actions", "reward", "episode", "action_is_normalised",
                                 "constants"))
        groups = {g: expect_dict(d.get(g, {}), f"{where}: {g}", max_items=4096) for g in ("observations", "actions")}
        normalised = d.get("action_is_normalised", False)
        if not isinstance(normalised, bool):
            raise TetherError(f"{where}: action_is_normalised is {normalised!r}; expected true or false")
        return cls(
            name=expect_str(d.get("name", "custom"), f"{where}: name", max_len=64),
            observations={k: Source.from_dict(v, f"{where}: observations.{k}")
                          for k, v in groups["observations"].items()},
            actions={k: Source.from_dict(v, f"{where}: actions.{k}") for k, v in groups["actions"].items()},
            reward=None if d.get("reward") is None else Source.from_dict(d["reward"], f"{where}: reward"),
            episode=None if d.get("episode") is None else Source.from_dict(d["episode"], f"{where}: episode"),
            action_is_normalised=normalised,
            constants={k: expect_numbers(v, f"{where}: constants.{k}", max_len=1 << 20)
                       for k, v in expect_dict(d.get("constants", {}), f"{where}: constants", max_items=4096).items()},
        )


def flat_mapping(obs_topic: str = FLAT_OBS_TOPIC, action_topic: str = FLAT_ACTION_TOPIC,
                 reward_topic: str | None = FLAT_REWARD_TOPIC, episode_topic: str | None = FLAT_EPISODE_TOPIC,
                 action_is_normalised: bool = False) -> TopicMapping:
    return TopicMapping(
        name="flat",
        observations={WHOLE: Source(obs_topic)},
        actions={WHOLE: Source(action_topic)},
        reward=None if reward_topic is None else Source(reward_topic),
        episode=None if episode_topic is None else Source(episode_topic),
        action_is_normalised=action_is_normalised,
    )


def ros2_control_mapping(
    contract: IOContract,
    *,
    joint_states: str = "/joint_states",
    command_topic: str = "/forward_position_controller/commands",
    controller_joints: Sequence[str] | None = None,
    command_is_trajectory: bool | None = None,
    constants: Mapping[str, Sequence[float]] | None = None,
    derived: Mapping[str, Callable[[dict[str, np.ndarray]], np.ndarray]] | None = None,
) -> TopicMapping:
    """The ros2_control arm / joint-level robot: joint fields from /joint_states by name, the single joint
    action field from a forward-command (Float64MultiArray) or trajectory topic. ``command_is_trajectory``
    None means decide from the type the bag records on ``command_topic``."""
    obs: dict[str, Source] = {}
    for f in contract.observations:
        if f.name in JOINT_STATE_ATTRS:
            obs[f.name] = Source(joint_states, JOINT_STATE_ATTRS[f.name], by_name=True)
    joint_actions = [f for f in contract.actions if f.components]
    if len(contract.actions) != 1 or not joint_actions:
        raise TetherError(
            f"ros2-control mapping needs exactly one action field with joint-name components; contract "
            f"{contract.robot}/{contract.task} has {[f.name for f in contract.actions]}"
        )
    af = contract.actions[0]
    if command_is_trajectory:
        act = Source(command_topic, "points[-1].positions", by_name=True)
    elif command_is_trajectory is None:
        act = Source(command_topic, "?command", names=None if controller_joints is None else tuple(controller_joints))
    else:
        act = Source(command_topic, "data", names=tuple(controller_joints) if controller_joints else af.components)
    return TopicMapping(name="ros2-control", observations=obs, actions={af.name: act},
                        constants=dict(constants or {}), derived=dict(derived or {}))


BUILTIN_MAPPINGS = ("flat", "ros2-control", "arm-ros2-control")


def resolve_mapping(
    spec: str | TopicMapping | Mapping[str, Any] | None, contract: IOContract, **kwargs: Any
) -> TopicMapping:
    """A mapping from a built-in name, a JSON file path, a dict, or a TopicMapping."""
    if spec is None or spec == "flat":
        return flat_mapping(**kwargs)
    if isinstance(spec, TopicMapping):
        return spec
    if isinstance(spec, Mapping):
        return TopicMapping.from_dict(spec)
    if spec in ("ros2-control", "arm-ros2-control"):
        return ros2_control_mapping(contract, **kwargs)
    path = Path(spec)
    if path.is_file():
        from tether.validation import read_json

        return TopicMapping.from_dict(read_json(path, "mapping file", finite=True, follow_link=True),
                                      f"mapping file {str(path)!r}")
    raise TetherError(f"unknown topic mapping {spec!r}; expected one of {list(BUILTIN_MAPPINGS)} or a JSON file")


# ----------------------------------------------------------------------------------------- reading the bag
_TOKEN = re.compile(r"^(\w+)((?:\[-?\d+\])*)$")


def _get_attr(msg: Any, path: str) -> Any:
    obj = msg
    for token in path.split("."):
        m = _TOKEN.match(token)
        if not m:
            raise TetherError(
                f"bad attribute path {path!r}; expected names with optional [index], e.g. points[-1].positions"
            )
        obj = getattr(obj, m.group(1))
        for idx in re.findall(r"\[(-?\d+)\]", m.group(2)):
            obj = obj[int(idx)]
    return obj


def _stamp_ns(t: Any) -> int:
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


@dataclass
class _Stream:
    stamps: np.ndarray  # int64 ns, sorted
    values: np.ndarray  # (N, k)


def read_topics(
    paths: Sequence[Path], topics: set[str], typestore: Any
) -> tuple[dict[str, list[tuple[int, Any]]], dict[str, str]]:
    from rosbags.highlevel import AnyReader

    out: dict[str, list[tuple[int, Any]]] = {t: [] for t in topics}
    types: dict[str, str] = {}
    try:
        with AnyReader(list(paths), default_typestore=typestore) as reader:
            for c in reader.connections:
                types.setdefault(c.topic, c.msgtype)
            conns = [c for c in reader.connections if c.topic in topics]
            # rosbags reads an empty connection list as "every connection": none of ours, nothing to read
            for conn, t_ns, raw in reader.messages(connections=conns) if conns else ():
                out[conn.topic].append((int(t_ns), reader.deserialize(raw, conn.msgtype)))
    except Exception as exc:  # rosbags raises its own error types for unreadable bags
        if isinstance(exc, TetherError):
            raise
        raise TetherError(f"cannot read bag {', '.join(map(str, paths))}: {exc}") from None
    return out, types


def _bag_topics(paths: Sequence[Path], typestore: Any) -> dict[str, str]:
    from rosbags.highlevel import AnyReader

    try:
        with AnyReader(list(paths), default_typestore=typestore) as reader:
            return {c.topic: c.msgtype for c in reader.connections}
    except Exception as exc:
        raise TetherError(f"cannot read bag {', '.join(map(str, paths))}: {exc}") from None


def default_typestore() -> Any:
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


@dataclass
class AlignedEpisode:
    """One bag resampled onto the control grid: frames k = 0..T-1 plus the observation after the last."""

    obs: np.ndarray  # (T, obs_size) physical
    action: np.ndarray  # (T, action_size) normalised unless the mapping says otherwise
    reward: np.ndarray  # (T,)
    stamps_ns: np.ndarray  # (T,) grid times on the bag's clock
    final_obs: np.ndarray  # (obs_size,)
    source: str


def align_bag(
    bag: str | Path | Sequence[str | Path],
    contract: IOContract,
    mapping: str | TopicMapping | Mapping[str, Any] | None = "flat",
    *,
    typestore: Any = None,
    rate_hz: float | None = None,
    max_stale_periods: float | None = 5.0,
    **mapping_kwargs: Any,
) -> list[AlignedEpisode]:
    """Read one recording (a bag directory, or several files of one recording) and resample it onto the
    contract's control clock; returns its episodes. Raises BagMappingError naming every missing topic, wrong
    type or joint name.

    Episodes split where the optional episode topic changes value (the recorder bumps it at every reset) and
    where any stream's held sample is older than ``max_stale_periods`` control periods (dropouts, a restarted
    robot): stale data would otherwise be held silently into frames that never happened."""
    from tether.bag_names import resolve_bag

    paths = [resolve_bag(bag)] if isinstance(bag, (str, Path)) else [resolve_bag(b) for b in bag]
    for p in paths:
        if not p.exists():
            raise TetherError(f"bag {p} does not exist; expected a rosbag2 directory or .mcap/.db3 file")
    ts = typestore or default_typestore()
    m = resolve_mapping(mapping, contract, **mapping_kwargs)
    rate = float(rate_hz or contract.rate_hz)
    bag_types = _bag_topics(paths, ts)
    problems: list[str] = []

    # resolve "?command": forward-command Float64MultiArray vs JointTrajectory, decided by the recorded type
    actions = dict(m.actions)
    for name, src in actions.items():
        if src.attr == "?command":
            t = bag_types.get(src.topic)
            f = contract.field(name)
            if t == "trajectory_msgs/msg/JointTrajectory":
                actions[name] = Source(src.topic, "points[-1].positions", by_name=True, stamp=src.stamp)
            else:
                actions[name] = Source(src.topic, "data", names=src.names or f.components, stamp=src.stamp)
    # coverage: every contract field has exactly one source (a topic, a constant or a derivation)
    coverage = (("observation", contract.observations, m.observations), ("action", contract.actions, actions))
    for label, fields, srcs in coverage:
        if WHOLE in srcs:
            continue
        unknown = sorted(set(srcs) - {f.name for f in fields})
        if unknown:
            known = [f.name for f in fields]
            problems.append(f"mapping names {label} fields {unknown} that the contract lacks ({known})")
        uncovered = [f.name for f in fields
                     if f.name not in srcs and f.name not in m.constants and f.name not in m.derived]
        if uncovered:
            problems.append(
                f"contract {label} fields {uncovered} have no source in mapping {m.name!r} "
                "(give a topic, a constant or a derived function)"
            )
    needed: dict[str, list[str]] = {}
    for label, srcs in (("obs", m.observations), ("action", actions)):
        for name, src in srcs.items():
            needed.setdefault(src.topic, []).append(f"the whole {label} vector" if name == WHOLE else f"{label} {name}")
    missing = {t: who for t, who in needed.items() if t not in bag_types}
    if missing:
        problems.append(
            "bag lacks topics " + ", ".join(f"{t} (for {', '.join(w)})" for t, w in sorted(missing.items()))
            + f"; bag has {sorted(bag_types)}"
        )
    reward_src = m.reward if (m.reward is not None and m.reward.topic in bag_types) else None
    episode_src = m.episode if (m.episode is not None and m.episode.topic in bag_types) else None
    if m.reward is not None and reward_src is None and not m.optional_reward:
        problems.append(f"bag lacks reward topic {m.reward.topic}")
    if problems:
        raise BagMappingError(f"cannot convert {paths[0]} with mapping {m.name!r}: " + "; ".join(problems))

    all_srcs = [*m.observations.values(), *actions.values(), *([reward_src] if reward_src else []),
                *([episode_src] if episode_src else [])]
    topics = {s.topic for s in all_srcs}
    stamp_topics = {f"{t}/stamp" for t in topics if f"{t}/stamp" in bag_types}
    stamp_topics |= {s.stamp for s in all_srcs if s.stamp not in ("auto", "header", "bag")}
    msgs, _ = read_topics(paths, topics | stamp_topics, ts)

    streams: dict[tuple[str, str], _Stream] = {}

    def field_size(name: str, label: str) -> int:
        if name == WHOLE:
            return contract.obs_size if label == "obs" else contract.action_size
        return contract.field(name).size

    def extract(name: str, src: Source, label: str) -> _Stream | None:
        data = msgs[src.topic]
        if not data:
            problems.append(f"topic {src.topic} has no messages (for {label} {name})")
            return None
        size = 1 if label in ("reward", "episode") else field_size(name, label)
        comps: tuple[str, ...] = ()
        if name not in (WHOLE,) and label not in ("reward", "episode"):
            comps = contract.field(name).components
        want = src.names if (src.by_name and src.names) else comps
        if src.by_name and not want:
            problems.append(f"{label} {name}: by-name source {src.topic} but the field has no component names")
            return None
        vals = np.empty((len(data), size))
        cache: dict[tuple[str, ...], np.ndarray] = {}
        for i, (_, msg) in enumerate(data):
            try:
                raw = np.atleast_1d(np.asarray(_get_attr(msg, src.attr), dtype=np.float64))
            except (AttributeError, IndexError) as exc:
                problems.append(f"{label} {name}: {src.topic} ({bag_types.get(src.topic)}) has no {src.attr!r} ({exc})")
                return None
            if src.by_name:
                msg_names = tuple(getattr(msg, "name", None) or getattr(msg, "joint_names", None) or ())
                idx = cache.get(msg_names)
                if idx is None:
                    absent = [n for n in want if n not in msg_names]
                    if absent:
                        problems.append(
                            f"{label} {name}: joint names {absent} not in {src.topic} names {list(msg_names)}"
                        )
                        return None
                    idx = cache[msg_names] = np.array([msg_names.index(n) for n in want])
                if raw.shape[0] < len(msg_names):
                    problems.append(f"{label} {name}: {src.topic} message {i} has {raw.shape[0]} {src.attr} values "
                                    f"for {len(msg_names)} names")
                    return None
                row = raw[idx]
            elif src.names is not None and comps:
                absent = [n for n in comps if n not in src.names]
                if absent:
                    problems.append(f"{label} {name}: joint names {absent} not in the command order {list(src.names)} "
                                    f"of {src.topic}")
                    return None
                order = np.array([src.names.index(n) for n in comps])
                if raw.shape[0] != len(src.names):
                    problems.append(f"{label} {name}: {src.topic} message {i} has {raw.shape[0]} values; expected "
                                    f"{len(src.names)} ({list(src.names)})")
                    return None
                row = raw[order]
            else:
                if raw.shape[0] < src.start + size or (name == WHOLE and raw.shape[0] != size):
                    problems.append(f"{label} {name}: {src.topic} message {i} has {raw.shape[0]} values; expected "
                                    f"{size} (contract {label} size)")
                    return None
                row = raw[src.start:src.start + size]
            vals[i] = row
        stamps = _stamps(src, data, msgs, bag_types, label, name)
        if stamps is None:
            return None
        order = np.argsort(stamps, kind="stable")
        return _Stream(stamps[order], vals[order])

    def _stamps(src: Source, data: list, msgs: dict, types: dict, label: str, name: str) -> np.ndarray | None:
        bag_t = np.array([t for t, _ in data], dtype=np.int64)
        mode = src.stamp
        parallel = f"{src.topic}/stamp" if mode == "auto" else (mode if mode not in ("header", "bag") else None)
        if mode in ("auto", "header"):
            if hasattr(data[0][1], "header"):
                hs = np.array([_stamp_ns(m.header.stamp) for _, m in data], dtype=np.int64)
                return np.where(hs > 0, hs, bag_t)  # a zero stamp means "now" (JointTrajectory convention)
            if mode == "header":
                problems.append(f"{label} {name}: {src.topic} has no header to stamp from")
                return None
        if parallel and parallel in msgs:
            st = msgs[parallel]
            if len(st) != len(data):
                problems.append(f"{label} {name}: stamp topic {parallel} has {len(st)} messages for {len(data)} "
                                f"on {src.topic}")
                return None
            return np.array([_stamp_ns(m) for _, m in st], dtype=np.int64)
        return bag_t

    fields: dict[str, np.ndarray] = {}
    for label, srcs in (("obs", m.observations), ("action", actions)):
        for name, src in srcs.items():
            s = extract(name, src, label)
            if s is not None:
                streams[(label, name)] = s
    if reward_src is not None:
        s = extract("reward", reward_src, "reward")
        if s is not None:
            streams[("reward", "reward")] = s
    if episode_src is not None:
        s = extract("episode", episode_src, "episode")
        if s is not None:
            streams[("episode", "episode")] = s
    if problems:
        raise BagMappingError(f"cannot convert {paths[0]} with mapping {m.name!r}: " + "; ".join(problems))

    period_ns = 1e9 / rate
    # Where every stream has a value: observations and the episode counter are sampled at t_k, commands and
    # rewards just before t_{k+1} (a command may follow the first observation by up to a period).
    sampled_late = {"action", "reward"}
    ready = max(int(s.stamps[0]) - (int(np.ceil(period_ns)) - 1 if lab in sampled_late else 0)
                for (lab, _), s in streams.items())
    # The grid's phase comes from the observations themselves: t0 is the first observation at or after
    # `ready`, not `ready` itself. One late first sample on any other stream (the wall-clock stamp of a
    # preempted writer) would otherwise move the origin past observation 1 and shift every pair by a step.
    anchor = max((s for (lab, _), s in streams.items() if lab == "obs"), key=lambda s: int(s.stamps[0]))
    first = int(np.searchsorted(anchor.stamps, ready - STAMP_TOL_NS, side="left"))
    t_end = min(int(s.stamps[-1]) for (lab, _), s in streams.items() if lab == "obs")
    if first >= len(anchor.stamps) or int(anchor.stamps[first]) > t_end:
        raise BagMappingError(f"streams in {paths[0]} do not overlap in time (every stream has a value only from "
                              f"{ready} ns, after the last observation at {t_end} ns)")
    t0 = int(anchor.stamps[first])
    n_grid = int(np.floor((t_end + STAMP_TOL_NS - t0) * rate / 1e9 + 1e-9)) + 1
    grid = t0 + np.round(np.arange(n_grid + 1) * period_ns).astype(np.int64)
    if n_grid < 2:
        raise BagMappingError(f"bag {paths[0]} spans less than two control periods at {rate:g} Hz")
    stale_ns = np.inf if max_stale_periods is None else max_stale_periods * 1e9 / rate

    def zoh(s: _Stream, at: np.ndarray, tol: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Held values at ``at`` (a sample up to ``tol`` ns after a point counts as at it) and how old each
        held sample is (ns)."""
        idx = np.clip(np.searchsorted(s.stamps, at + tol, side="right") - 1, 0, None)
        return s.values[idx], np.maximum(at - s.stamps[idx], 0)

    # observations: a stamp within STAMP_TOL_NS after a grid point is on it (writers round k/rate to whole ns
    # differently); commands: the latest before the next grid point
    obs_at, act_at = grid[:n_grid], grid[1:n_grid + 1] - 1
    obs_parts: dict[str, np.ndarray] = {}
    act_parts: dict[str, np.ndarray] = {}
    ok_obs = np.ones(n_grid, bool)
    ok_act = np.ones(n_grid, bool)
    for (lab, name), s in streams.items():
        if lab == "obs":
            obs_parts[name], age = zoh(s, obs_at, STAMP_TOL_NS)
            ok_obs &= age <= stale_ns
        elif lab == "action":
            act_parts[name], age = zoh(s, act_at)
            ok_act &= age <= stale_ns

    def assemble(fields_: Sequence[Any], parts: dict[str, np.ndarray], n: int) -> np.ndarray:
        if WHOLE in parts:
            return parts[WHOLE]
        out = {}
        for f in fields_:
            if f.name in parts:
                out[f.name] = parts[f.name]
            elif f.name in m.constants:
                out[f.name] = np.broadcast_to(np.asarray(m.constants[f.name], dtype=np.float64), (n, f.size))
        for f in fields_:
            if f.name not in out and f.name in m.derived:
                v = np.asarray(m.derived[f.name]({**out}), dtype=np.float64)
                if v.shape != (n, f.size):
                    raise TetherError(f"derived field {f.name!r} returned shape {v.shape}; expected {(n, f.size)}")
                out[f.name] = v
        return np.concatenate([out[f.name] for f in fields_], axis=-1)

    obs_all = assemble(contract.observations, obs_parts, n_grid)
    act = assemble(contract.actions, act_parts, n_grid)
    if not m.action_is_normalised:
        act = contract.to_normalised(act)
    reward = (zoh(streams[("reward", "reward")], act_at)[0][:, 0]
              if ("reward", "reward") in streams else np.zeros(n_grid))
    epi = (zoh(streams[("episode", "episode")], obs_at, STAMP_TOL_NS)[0][:, 0]
           if ("episode", "episode") in streams else np.zeros(n_grid))
    # frame k is usable when its observation and action are fresh and the next observation (its successor)
    # is fresh and belongs to the same episode; maximal runs of usable frames are episodes
    usable = np.zeros(n_grid, bool)
    usable[:-1] = ok_obs[:-1] & ok_act[:-1] & ok_obs[1:] & (epi[1:] == epi[:-1])
    edges = np.flatnonzero(np.diff(np.concatenate([[0], usable.astype(np.int8), [0]])))
    episodes = []
    for a, b in zip(edges[::2].tolist(), edges[1::2].tolist()):
        episodes.append(AlignedEpisode(obs=obs_all[a:b], action=act[a:b], reward=reward[a:b],
                                       stamps_ns=grid[a:b], final_obs=obs_all[b], source=str(paths[0])))
    if not episodes:
        raise BagMappingError(f"bag {paths[0]} has no stretch of fresh data at {rate:g} Hz (every grid point has a "
                              f"sample older than {max_stale_periods} periods)")
    return episodes


def convert_bags(
    bags: Sequence[str | Path] | str | Path,
    contract: IOContract,
    out: str | Path,
    mapping: str | TopicMapping | Mapping[str, Any] | None = "flat",
    *,
    typestore: Any = None,
    dtype: str = "float64",
    task: str | None = None,
    reward_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
    append: bool = False,
    max_stale_periods: float | None = 5.0,
    **mapping_kwargs: Any,
) -> Any:
    """Convert bags into (time-limited) episodes of a dataset at ``out``; returns the Dataset.

    ``reward_fn(obs, action, next_obs) -> reward`` recomputes rewards from the aligned data when the bag has
    none (a real robot rarely publishes one). ``dtype`` defaults to float64 so conversion is exact.
    """
    from tether.data.dataset import Dataset, DatasetWriter

    bag_list = [bags] if isinstance(bags, (str, Path)) else list(bags)
    if not bag_list:
        raise TetherError("no bags to convert; expected at least one rosbag2 path")
    episodes = [ep for b in bag_list
                for ep in align_bag(b, contract, mapping, typestore=typestore, max_stale_periods=max_stale_periods,
                                    **mapping_kwargs)]
    meta = {"source": "rosbag2", "bags": [str(b) for b in bag_list],
            "mapping": mapping if isinstance(mapping, str) or mapping is None else getattr(mapping, "name", "custom")}
    with DatasetWriter(out, contract, contract.rate_hz, dtype=dtype, task=task, metadata=meta, append=append) as w:
        for ep in episodes:
            rew = ep.reward
            if reward_fn is not None:
                nxt = np.concatenate([ep.obs[1:], ep.final_obs[None]])
                rew = np.asarray(reward_fn(ep.obs, ep.action, nxt), dtype=np.float64).reshape(-1)
            for k in range(len(ep.obs)):
                w.add_frame(ep.obs[k], ep.action[k], float(rew[k]),
                            timestamp=float((ep.stamps_ns[k] - ep.stamps_ns[0]) / 1e9))
            w.end_episode(success=None, final_obs=ep.final_obs)
    return Dataset(out)
