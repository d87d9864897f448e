"""Dataset → rosbag2 in the ``flat`` layout that ``rosbag_import`` reads back (and ``ros2 bag`` / Foxglove open).

Topics, one message per control tick, all stamped on the tick (bag time = stamp, plus a parallel
``<topic>/stamp`` builtin_interfaces/Time so the stamp survives re-recording):

- ``/tether/obs``      std_msgs/Float64MultiArray — the flat contract observation, physical units
- ``/tether/action``   std_msgs/Float64MultiArray — the command in physical units (``contract.to_physical``)
- ``/tether/reward``   std_msgs/Float64MultiArray — one element
- ``/tether/episode``  std_msgs/UInt32 — the episode counter; a change marks a reset

Each episode contributes its frames plus one extra observation tick (its final observation, without an
action), so conversion back reproduces frames, final observations and episode boundaries. This is also the
shape a live recorder should write.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tether.data import topics
from tether.data.topics import stamp_topic
from tether.errors import TetherError

STORAGES = ("mcap", "sqlite3")


def write_flat_bag(dataset: Any, path: str | Path, *, storage: str = "mcap", start_ns: int = 1_700_000_000 * 10**9,
                   typestore: Any = None) -> Path:
    """Write ``dataset`` (a Dataset or its directory) as a flat rosbag2 recording at ``path``."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from tether.data.dataset import Dataset

    ds = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
    if ds.contract is None:
        raise TetherError(f"dataset {ds.root} has no tether contract in meta/info.json; cannot export actions in units")
    if storage not in STORAGES:
        raise TetherError(f"unknown bag storage {storage!r}; expected one of {', '.join(STORAGES)}")
    path = Path(path)
    if path.exists():
        raise TetherError(f"{path} already exists; expected a new bag directory")
    ts = typestore or get_typestore(Stores.ROS2_JAZZY)
    T = ts.types
    c = ds.contract
    dt = 1e9 / ds.fps
    layout = T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)

    def arr(v: np.ndarray) -> Any:
        return T["std_msgs/msg/Float64MultiArray"](layout=layout, data=np.asarray(v, dtype=np.float64).reshape(-1))

    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        array, time_t = "std_msgs/msg/Float64MultiArray", "builtin_interfaces/msg/Time"
        layout_types = {topics.OBS_TOPIC: array, stamp_topic(topics.OBS_TOPIC): time_t,
                        topics.ACTION_TOPIC: array, stamp_topic(topics.ACTION_TOPIC): time_t,
                        topics.REWARD_TOPIC: array, stamp_topic(topics.REWARD_TOPIC): time_t,
                        topics.EPISODE_TOPIC: "std_msgs/msg/UInt32"}
        conns = {t: w.add_connection(t, m, typestore=ts) for t, m in layout_types.items()}

        def put(topic: str, t: int, msg: Any) -> None:
            w.write(conns[topic], t, ts.serialize_cdr(msg, msg.__msgtype__))
            if stamp_topic(topic) in conns:
                stamp = T["builtin_interfaces/msg/Time"](sec=t // 10**9, nanosec=t % 10**9)
                w.write(conns[stamp_topic(topic)], t, ts.serialize_cdr(stamp, stamp.__msgtype__))

        tick = 0
        for i, ep in enumerate(ds.episodes):
            frames = ds.episode(i)
            final = ep.final_observation
            if final is None:  # no successor recorded: the last frame only serves as the final observation
                obs_seq, n_act = frames["observation.state"], ep.length - 1
            else:
                obs_seq, n_act = np.concatenate([frames["observation.state"], final[None]]), ep.length
            phys = c.to_physical(frames["action"][:n_act].astype(np.float64))
            for k in range(len(obs_seq)):
                t = start_ns + int(round(tick * dt))
                put(topics.EPISODE_TOPIC, t, T["std_msgs/msg/UInt32"](data=i))
                put(topics.OBS_TOPIC, t, arr(obs_seq[k]))
                if k < n_act:
                    put(topics.ACTION_TOPIC, t, arr(phys[k]))
                    put(topics.REWARD_TOPIC, t, arr([frames["next.reward"][k]]))
                tick += 1
    return path
