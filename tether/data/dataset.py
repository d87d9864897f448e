"""Episode datasets in the LeRobot v3.0 layout, written crash-safely and read back with recovery.

Layout (what LeRobot's ``LeRobotDataset`` v3.0 expects, plus a ``tether`` block in info.json)::

    meta/info.json                      codebase_version "v3.0", fps, features, path templates,
                                        "tether": {contract, action_space, metadata}
    meta/stats.json                     mean/std/min/max/count per feature
    meta/tasks.parquet                  task_index, task
    meta/episodes/chunk-000/file-000.parquet   one row per finished episode (lengths, file pointers, stats)
    data/chunk-CCC/file-FFF.parquet     frames of many episodes, columns per feature
    videos/<key>/chunk-CCC/file-FFF.mp4 one episode per file (fragmented MP4)

Why the writer is crash-safe: a Parquet file is unreadable until its footer is written, so a recorder killed
with SIGKILL would lose the whole open file. Instead, while a data file is open its frames go to small,
complete Parquet *parts* (``data/chunk-CCC/.file-FFF.parts/part-NNNNNN.parquet``), each written to a temp
name and renamed into place (a rename is atomic), at least once per ``flush_every_s`` of frames. When the
file is closed the parts are concatenated into ``file-FFF.parquet`` and removed. Meta files are rewritten
atomically at every episode end and info.json exists from the first moment. The reader reads finished files
plus the parts of unfinished ones, and rebuilds whatever meta an interrupted writer did not get to write
(episodes missing from the index become ``complete=False`` episodes; stats are recomputed). ``repair()``
writes the recovered state back as a clean dataset.

Conventions: ``observation.state`` is the flat contract observation in physical units; ``action`` is the
policy action *normalised to [-1, 1]* (``contract.to_physical`` maps it to units). ``next.done`` marks the
last frame of an episode (LeRobot's meaning); ``next.terminated`` marks a true MDP terminal (the env said
``terminated``), which is what offline RL must not bootstrap through.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tether.contract import IOContract
from tether.data.stats import RunningStats, compute_stats, image_batch_for_stats, image_stats_dict
from tether.data.video import VideoWriter, read_video
from tether.errors import TetherError

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
PARTS_DIR = "data/chunk-{chunk_index:03d}/.file-{file_index:03d}.parts"
DEFAULT_CHUNKS_SIZE = 1000
STATE_KEY = "observation.state"
ACTION_KEY = "action"
STANDARD_COLUMNS = (
    STATE_KEY, ACTION_KEY, "next.reward", "next.done", "next.terminated",
    "timestamp", "frame_index", "episode_index", "index", "task_index",
)
_DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "int32": np.int32,
           "bool": np.bool_, "uint8": np.uint8}


# ----------------------------------------------------------------------------------------------- helpers
def _chunk_file(n: int, chunks_size: int) -> tuple[int, int]:
    return n // chunks_size, n % chunks_size


def _atomic_write_bytes(path: Path, data: bytes, fsync: bool = False) -> None:
    """Write-then-rename so a reader (or a crash) only ever sees the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def _atomic_write_json(path: Path, obj: Any, fsync: bool = False) -> None:
    _atomic_write_bytes(path, json.dumps(obj, indent=2).encode(), fsync)


def _atomic_write_table(path: Path, table: pa.Table, fsync: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    if fsync:
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def _component_names(fields: Sequence[Any]) -> list[str]:
    names: list[str] = []
    for f in fields:
        if f.components:
            names += [f"{f.name}.{c}" for c in f.components]
        elif f.size == 1:
            names.append(f.name)
        else:
            names += [f"{f.name}.{i}" for i in range(f.size)]
    return names


def _arrow_column(values: np.ndarray, dtype: str) -> pa.Array:
    arr = np.asarray(values, dtype=_DTYPES[dtype])
    if arr.ndim == 1:
        return pa.array(arr)
    flat = pa.array(arr.reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, int(np.prod(arr.shape[1:])))


def column_to_numpy(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A Parquet column as numpy: scalars → (N,), fixed or variable list columns of equal length → (N, k)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    t = col.type
    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        n = len(col)
        values = col.flatten().to_numpy(zero_copy_only=False)
        if n == 0:
            return values.reshape(0, 0)
        if values.size % n:
            raise TetherError(f"list column of type {t} has rows of unequal length; expected fixed-size rows")
        return values.reshape(n, values.size // n)
    return col.to_numpy(zero_copy_only=False)


@dataclass
class EpisodeInfo:
    """One episode as the reader sees it; ``complete`` is False for an episode recovered after a crash."""

    index: int
    start: int  # position of the first frame in Dataset.frames (row order), not the global ``index`` column
    length: int
    task: str
    success: bool | None
    complete: bool
    final_observation: np.ndarray | None
    data_file: tuple[int, int]

    @property
    def stop(self) -> int:
        return self.start + self.length


# ------------------------------------------------------------------------------------------------ writer
class DatasetWriter:
    """Record episodes frame by frame into a LeRobot v3.0 dataset directory.

    ``features``: extra per-frame columns ``{name: {"dtype": "float32", "shape": [k]}}`` passed to
    ``add_frame`` as keyword arguments (use ``**{"a.b": v}`` for dotted names). ``video_keys``: camera
    streams (e.g. ``"observation.images.front"``) whose (H, W, 3) uint8 frames are passed in ``images=``.
    """

    def __init__(
        self,
        root: str | Path,
        contract: IOContract,
        fps: float | None = None,
        *,
        features: Mapping[str, Mapping[str, Any]] | None = None,
        video_keys: Sequence[str] = (),
        task: str | None = None,
        dtype: str = "float32",
        flush_every_s: float = 1.0,
        data_files_size_in_mb: float = 100.0,
        chunks_size: int = DEFAULT_CHUNKS_SIZE,
        metadata: Mapping[str, Any] | None = None,
        fsync: bool = False,
        append: bool = False,
    ) -> None:
        self.root = Path(root)
        self.contract = contract
        self.fps = float(contract.rate_hz if fps is None else fps)
        if not self.fps > 0:
            raise TetherError(f"fps is {fps}; expected a positive frame rate")
        if dtype not in ("float32", "float64"):
            raise TetherError(f"dtype {dtype!r} is not supported; expected 'float32' or 'float64'")
        self.dtype = dtype
        self.extra_features = {k: dict(v) for k, v in (features or {}).items()}
        for name, spec in self.extra_features.items():
            if name in STANDARD_COLUMNS or spec.get("dtype") not in _DTYPES:
                raise TetherError(
                    f"extra feature {name!r} has dtype {spec.get('dtype')!r}; expected a name not in "
                    f"{list(STANDARD_COLUMNS)} and dtype one of {sorted(_DTYPES)}"
                )
            spec["shape"] = [int(s) for s in spec.get("shape", [1])]
        self.video_keys = tuple(video_keys)
        self.default_task = task or f"{contract.robot}/{contract.task}"
        self.flush_frames = max(1, int(round(self.fps * flush_every_s)))
        self.flush_every_s = float(flush_every_s)
        self.file_limit_bytes = int(data_files_size_in_mb * 1e6)
        self.chunks_size = int(chunks_size)
        self.metadata = dict(metadata or {})
        self.fsync = fsync

        self._episodes: list[dict[str, Any]] = []
        self._tasks: list[str] = []
        self._stats: dict[str, RunningStats] = {}
        self._video_shapes: dict[str, tuple[int, int]] = {}
        self._next_index = 0
        self._data_file_n = 0
        if (self.root / "meta" / "info.json").exists():
            if not append:
                raise TetherError(
                    f"a dataset already exists at {self.root}; pass append=True to add episodes or choose an "
                    "empty directory"
                )
            self._resume()
        elif self.root.exists() and any(self.root.iterdir()):
            raise TetherError(f"{self.root} is not empty and holds no dataset; expected an empty or new directory")
        self.root.mkdir(parents=True, exist_ok=True)

        # state of the open data file
        self._file_tables: list[pa.Table] = []
        self._file_bytes = 0
        self._part_n = 0
        # state of the open episode
        self._ep_index = len(self._episodes)
        self._pending: list[dict[str, Any]] = []
        self._ep_frames = 0
        self._ep_first_index = self._next_index
        self._ep_stats: dict[str, RunningStats] = {}
        self._ep_task = self.default_task
        self._ep_ended_flag = False
        self._videos: dict[str, VideoWriter] = {}
        self._last_flush = time.monotonic()
        self._closed = False
        self._write_info()

    # ------------------------------------------------------------------ public API
    def start_episode(self, task: str | None = None) -> None:
        """Optional: set the task string of the next episode (episodes also start implicitly)."""
        if self._ep_frames:
            raise TetherError("start_episode called while an episode is being recorded; call end_episode first")
        self._ep_task = task or self.default_task

    def add_frame(
        self,
        obs: np.ndarray | Mapping[str, Any],
        action: np.ndarray | Mapping[str, Any],
        reward: float = 0.0,
        done: bool = False,
        *,
        truncated: bool = False,
        timestamp: float | None = None,
        images: Mapping[str, np.ndarray] | None = None,
        **extra: Any,
    ) -> None:
        """Append one control step: the observation the policy saw, the normalised action it took, and the
        reward/termination that followed. ``done`` means terminated (no bootstrapping); ``truncated`` a
        time limit. Either one must be followed by ``end_episode``."""
        if self._closed:
            raise TetherError("add_frame on a closed DatasetWriter")
        if self._ep_ended_flag:
            raise TetherError("add_frame after a done/truncated frame; call end_episode first")
        o = self.contract.flatten_obs(obs) if isinstance(obs, Mapping) else np.asarray(obs, dtype=np.float64)
        a = (self.contract._assemble(self.contract.actions, action)
             if isinstance(action, Mapping) else np.asarray(action, dtype=np.float64))
        if o.shape != (self.contract.obs_size,):
            raise TetherError(f"observation has shape {o.shape}; expected ({self.contract.obs_size},)")
        if a.shape != (self.contract.action_size,):
            raise TetherError(f"action has shape {a.shape}; expected ({self.contract.action_size},)")
        row: dict[str, Any] = {
            STATE_KEY: o,
            ACTION_KEY: a,
            "next.reward": float(reward),
            "next.done": bool(done or truncated),
            "next.terminated": bool(done),
            "timestamp": float(self._ep_frames / self.fps if timestamp is None else timestamp),
            "frame_index": self._ep_frames,
            "episode_index": self._ep_index,
            "index": self._next_index,
            "task_index": self._task_index(self._ep_task),
        }
        unknown = sorted(set(extra) - set(self.extra_features))
        missing = sorted(set(self.extra_features) - set(extra))
        if unknown or missing:
            raise TetherError(
                f"add_frame extras: unknown {unknown}, missing {missing}; declared features are "
                f"{sorted(self.extra_features)}"
            )
        for name, value in extra.items():
            shape = tuple(self.extra_features[name]["shape"])
            v = np.asarray(value, dtype=_DTYPES[self.extra_features[name]["dtype"]])
            if v.size != int(np.prod(shape)):
                raise TetherError(f"feature {name!r} value has shape {v.shape}; expected {shape}")
            row[name] = v.reshape(shape) if shape != (1,) else v.reshape(())
        self._add_images(images or {})
        self._pending.append(row)
        self._ep_frames += 1
        self._next_index += 1
        self._ep_ended_flag = bool(done or truncated)
        now = time.monotonic()
        if len(self._pending) > self.flush_frames or (
            len(self._pending) > 1 and now - self._last_flush >= self.flush_every_s
        ):
            self._flush(keep_last=True)

    def end_episode(self, success: bool | None = None, final_obs: np.ndarray | None = None) -> int:
        """Close the episode. ``final_obs`` (the observation after the last action) lets a time-limited
        episode keep its last transition in ``to_transitions``. Returns the episode index."""
        if self._ep_frames == 0:
            raise TetherError("end_episode with no frames recorded; add frames first")
        fo = None
        if final_obs is not None:
            fo = np.asarray(
                self.contract.flatten_obs(final_obs) if isinstance(final_obs, Mapping) else final_obs,
                dtype=np.float64,
            )
            if fo.shape != (self.contract.obs_size,):
                raise TetherError(f"final_obs has shape {fo.shape}; expected ({self.contract.obs_size},)")
        self._pending[-1]["next.done"] = True
        self._flush(keep_last=False)
        for vw in self._videos.values():
            vw.close()
        c, f = _chunk_file(self._data_file_n, self.chunks_size)
        row: dict[str, Any] = {
            "episode_index": self._ep_index,
            "tasks": [self._ep_task],
            "length": self._ep_frames,
            "data/chunk_index": c,
            "data/file_index": f,
            "dataset_from_index": self._ep_first_index,
            "dataset_to_index": self._ep_first_index + self._ep_frames,
        }
        vc, vf = _chunk_file(self._ep_index, self.chunks_size)
        for key in self.video_keys:
            n_vid = self._videos[key].frames if key in self._videos else 0
            if n_vid != self._ep_frames:
                raise TetherError(
                    f"episode {self._ep_index} has {n_vid} frames for camera {key!r}; expected one per frame "
                    f"({self._ep_frames})"
                )
            row.update({f"videos/{key}/chunk_index": vc, f"videos/{key}/file_index": vf,
                        f"videos/{key}/from_timestamp": 0.0,
                        f"videos/{key}/to_timestamp": self._ep_frames / self.fps})
        row["meta/episodes/chunk_index"] = 0
        row["meta/episodes/file_index"] = 0
        row["success"] = success if success is None else bool(success)
        row["final_observation"] = None if fo is None else fo.tolist()
        for key, rs in self._ep_stats.items():
            for stat, value in rs.to_dict().items():
                row[f"stats/{key}/{stat}"] = value
            self._stats.setdefault(key, RunningStats()).merge(rs)
        self._episodes.append(row)
        if self._file_bytes >= self.file_limit_bytes:
            self._finalize_file()
        self._write_meta()
        ep = self._ep_index
        self._ep_index += 1
        self._ep_frames = 0
        self._ep_first_index = self._next_index
        self._ep_stats = {}
        self._ep_task = self.default_task
        self._ep_ended_flag = False
        self._videos = {}
        return ep

    def close(self) -> None:
        """End an open episode (as truncated, success unknown), merge parts into files, write meta."""
        if self._closed:
            return
        if self._ep_frames:
            self.end_episode(success=None)
        self._finalize_file()
        self._write_meta()
        self._closed = True

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def num_episodes(self) -> int:
        return len(self._episodes)

    # ------------------------------------------------------------------ internals
    def _task_index(self, task: str) -> int:
        if task not in self._tasks:
            self._tasks.append(task)
            _atomic_write_table(self.root / "meta" / "tasks.parquet", _tasks_table(self._tasks), self.fsync)
        return self._tasks.index(task)

    def _add_images(self, images: Mapping[str, np.ndarray]) -> None:
        unknown = sorted(set(images) - set(self.video_keys))
        if unknown:
            raise TetherError(f"images for unknown cameras {unknown}; declared video_keys are {list(self.video_keys)}")
        for key, img in images.items():
            if key not in self._videos:
                c, f = _chunk_file(self._ep_index, self.chunks_size)
                path = self.root / VIDEO_PATH.format(video_key=key, chunk_index=c, file_index=f)
                self._videos[key] = VideoWriter(path, self.fps)
            img = np.asarray(img)
            self._videos[key].add(img)
            if key not in self._video_shapes:
                self._video_shapes[key] = (int(img.shape[0]), int(img.shape[1]))
                self._write_info()
            step = max(1, int(np.sqrt(img.shape[0] * img.shape[1] / 4096)))
            self._stats.setdefault(key, RunningStats()).update(image_batch_for_stats(img[::step, ::step][None]))

    def _rows_to_table(self, rows: list[dict[str, Any]]) -> pa.Table:
        cols: dict[str, pa.Array] = {}
        for key, dt in ((STATE_KEY, self.dtype), (ACTION_KEY, self.dtype), ("next.reward", "float32"),
                        ("next.done", "bool"), ("next.terminated", "bool"), ("timestamp", "float32"),
                        ("frame_index", "int64"), ("episode_index", "int64"), ("index", "int64"),
                        ("task_index", "int64")):
            cols[key] = _arrow_column(np.stack([np.asarray(r[key]) for r in rows]), dt)
        for key, spec in self.extra_features.items():
            cols[key] = _arrow_column(np.stack([np.asarray(r[key]) for r in rows]), spec["dtype"])
        return pa.table(cols)

    def _flush(self, keep_last: bool) -> None:
        rows = self._pending[:-1] if keep_last else self._pending
        if not rows:
            return
        table = self._rows_to_table(rows)
        for key in (STATE_KEY, ACTION_KEY, "next.reward", *self.extra_features):
            # stats per flushed batch, not per frame: same numbers (exact parallel merge), far less overhead
            batch = np.stack([np.asarray(r[key], dtype=np.float64).reshape(-1) for r in rows])
            self._ep_stats.setdefault(key, RunningStats()).update(batch)
        c, f = _chunk_file(self._data_file_n, self.chunks_size)
        parts = self.root / PARTS_DIR.format(chunk_index=c, file_index=f)
        path = parts / f"part-{self._part_n:06d}.parquet"
        _atomic_write_table(path, table, self.fsync)
        self._part_n += 1
        self._file_tables.append(table)
        self._file_bytes += path.stat().st_size
        self._pending = self._pending[-1:] if keep_last else []
        self._last_flush = time.monotonic()

    def _finalize_file(self) -> None:
        if not self._file_tables:
            return
        c, f = _chunk_file(self._data_file_n, self.chunks_size)
        table = pa.concat_tables(self._file_tables)
        _atomic_write_table(self.root / DATA_PATH.format(chunk_index=c, file_index=f), table, self.fsync)
        shutil.rmtree(self.root / PARTS_DIR.format(chunk_index=c, file_index=f), ignore_errors=True)
        self._file_tables, self._file_bytes, self._part_n = [], 0, 0
        self._data_file_n += 1

    def _features(self) -> dict[str, Any]:
        c = self.contract
        feats: dict[str, Any] = {
            STATE_KEY: {"dtype": self.dtype, "shape": [c.obs_size], "names": _component_names(c.observations)},
            ACTION_KEY: {"dtype": self.dtype, "shape": [c.action_size], "names": _component_names(c.actions)},
            "next.reward": {"dtype": "float32", "shape": [1], "names": None},
            "next.done": {"dtype": "bool", "shape": [1], "names": None},
            "next.terminated": {"dtype": "bool", "shape": [1], "names": None},
        }
        for key, spec in self.extra_features.items():
            feats[key] = {"dtype": spec["dtype"], "shape": list(spec["shape"]), "names": spec.get("names")}
        for key in self.video_keys:
            h, w = self._video_shapes.get(key, (0, 0))
            feats[key] = {
                "dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
                "info": {"video.height": h, "video.width": w, "video.codec": "h264", "video.pix_fmt": "yuv420p",
                         "video.is_depth_map": False, "video.fps": self.fps, "video.channels": 3,
                         "has_audio": False},
            }
        for key in ("timestamp",):
            feats[key] = {"dtype": "float32", "shape": [1], "names": None}
        for key in ("frame_index", "episode_index", "index", "task_index"):
            feats[key] = {"dtype": "int64", "shape": [1], "names": None}
        return feats

    def _write_info(self) -> None:
        n_eps = len(self._episodes)
        total_frames = sum(int(e["length"]) for e in self._episodes)
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.contract.robot,
            "total_episodes": n_eps,
            "total_frames": total_frames,
            "total_tasks": len(self._tasks),
            "chunks_size": self.chunks_size,
            "data_files_size_in_mb": self.file_limit_bytes / 1e6,
            "video_files_size_in_mb": 200,
            "fps": int(self.fps) if self.fps.is_integer() else self.fps,  # LeRobot stores an int
            "splits": {"train": f"0:{n_eps}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.video_keys else None,
            "features": self._features(),
            "tether": {
                "contract": self.contract.to_dict(),
                "action_space": "normalised",
                "metadata": self.metadata,
            },
        }
        _atomic_write_json(self.root / "meta" / "info.json", info, self.fsync)

    def _write_meta(self) -> None:
        _atomic_write_table(self.root / EPISODES_PATH.format(chunk_index=0, file_index=0),
                            _episodes_table(self._episodes), self.fsync)
        stats = {}
        for key, rs in self._stats.items():
            stats[key] = image_stats_dict(rs) if key in self.video_keys else rs.to_dict()
        _atomic_write_json(self.root / "meta" / "stats.json", stats, self.fsync)
        self._write_info()

    def _resume(self) -> None:
        """Append mode: repair whatever a previous writer left, then continue numbering after it."""
        ds = repair(self.root)
        if ds.contract is not None:
            ds.contract.check_compatible(self.contract, what="dataset")
        if abs(ds.fps - self.fps) > 1e-9:
            raise TetherError(f"dataset at {self.root} is recorded at {ds.fps} fps; this writer uses {self.fps}")
        if tuple(ds.video_keys) != self.video_keys:
            raise TetherError(f"dataset cameras {ds.video_keys} differ from this writer's {list(self.video_keys)}")
        self._episodes = ds._episode_rows
        self._tasks = list(ds.tasks)
        self._next_index = int(ds.frames["index"].max()) + 1 if len(ds) else 0
        self._data_file_n = max((c * self.chunks_size + f for c, f in ds._data_files), default=-1) + 1
        for key in (STATE_KEY, ACTION_KEY, "next.reward", *self.extra_features):
            if key in ds.frames:
                rs = RunningStats()
                rs.update(ds.frames[key].reshape(len(ds), -1))
                self._stats[key] = rs
        self._video_shapes = {k: tuple(ds.info["features"][k]["shape"][:2]) for k in ds.video_keys}


def _tasks_table(tasks: Sequence[str]) -> pa.Table:
    """LeRobot reads tasks.parquet with pandas and looks tasks up by the *index* (the task string); the
    pandas metadata below makes ``pd.read_parquet`` rebuild that index without pandas being needed here."""
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(list(tasks))})
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "creator": {"library": "tether", "version": "0.1.0"},
        "pandas_version": "2.2.0",
    }
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def _episodes_table(rows: list[dict[str, Any]]) -> pa.Table:
    if not rows:
        return pa.table({"episode_index": pa.array([], pa.int64()), "length": pa.array([], pa.int64())})
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    cols = {}
    for k in keys:
        vals = [r.get(k) for r in rows]
        if k == "final_observation":
            cols[k] = pa.array(vals, pa.list_(pa.float64()))
        elif k == "success":
            cols[k] = pa.array(vals, pa.bool_())
        elif k.endswith("/count") or k.endswith("_index") or k == "length":
            cols[k] = pa.array(vals, pa.list_(pa.int64()) if k.endswith("/count") else pa.int64())
        elif k.startswith("stats/"):
            cols[k] = pa.array(vals, pa.list_(pa.float64()))
        else:
            cols[k] = pa.array(vals)
    return pa.table(cols)


# ------------------------------------------------------------------------------------------------ reader
class Dataset:
    """Read a dataset written by DatasetWriter (or any LeRobot v3.0 dataset with the standard columns),
    recovering frames and episodes an interrupted writer left behind."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        info_path = self.root / "meta" / "info.json"
        if not info_path.is_file():
            raise TetherError(f"{self.root} is not a dataset: {info_path} is missing (expected a LeRobot v3.0 dataset)")
        self.info: dict[str, Any] = json.loads(info_path.read_text())
        version = str(self.info.get("codebase_version", ""))
        if not version.startswith("v3"):
            raise TetherError(f"dataset {self.root} has codebase_version {version!r}; expected 'v3.0'")
        self.fps = float(self.info["fps"])
        tether = self.info.get("tether") or {}
        self.contract = IOContract.from_dict(tether["contract"]) if "contract" in tether else None
        self.metadata: dict[str, Any] = dict(tether.get("metadata", {}))
        self.video_keys = [k for k, v in self.info.get("features", {}).items() if v.get("dtype") == "video"]
        self.notes: list[str] = []  # what recovery had to do, for `tether data info`
        table, self._data_files, self._orphans = self._load_data()
        self.frames: dict[str, np.ndarray] = {name: column_to_numpy(table.column(name)) for name in table.column_names}
        self.tasks = self._load_tasks()
        self.episodes, self._episode_rows = self._load_episodes()
        self.recovered = bool(self._orphans) or any(not e.complete for e in self.episodes)
        self._stats: dict[str, Any] | None = None

    # ------------------------------------------------------------------ loading
    def _load_data(self) -> tuple[pa.Table, list[tuple[int, int]], dict[tuple[int, int], list[Path]]]:
        tables: list[pa.Table] = []
        files: list[tuple[int, int]] = []
        orphans: dict[tuple[int, int], list[Path]] = {}
        data_dir = self.root / "data"
        for chunk_dir in sorted(data_dir.glob("chunk-*")) if data_dir.is_dir() else []:
            c = int(chunk_dir.name.split("-")[1])
            for path in sorted(chunk_dir.glob("file-*.parquet")):
                tables.append(pq.read_table(path))
                files.append((c, int(path.stem.split("-")[1])))
            for parts_dir in sorted(chunk_dir.glob(".file-*.parts")):
                f = int(parts_dir.name.split("-")[1].split(".")[0])
                if (c, f) in files:
                    continue  # the writer merged these parts already and died before removing them
                parts = sorted(parts_dir.glob("part-*.parquet"))
                good = []
                for p in parts:
                    try:
                        tables.append(pq.read_table(p))
                        good.append(p)
                    except (OSError, pa.ArrowInvalid) as exc:
                        self.notes.append(f"skipped unreadable part {p.relative_to(self.root)}: {exc}")
                orphans[(c, f)] = good
                self.notes.append(f"recovered {len(good)} unmerged parts of data file chunk {c} file {f}")
        if not tables:
            return _empty_table(self.info), files, orphans
        table = pa.concat_tables(tables, promote_options="default")
        order = np.argsort(column_to_numpy(table.column("index")), kind="stable")
        table = table.take(pa.array(order))
        idx = column_to_numpy(table.column("index"))
        if len(idx) > 1 and np.any(np.diff(idx) == 0):
            keep = np.concatenate([[True], np.diff(idx) != 0])
            table = table.filter(pa.array(keep))
            self.notes.append(f"dropped {int((~keep).sum())} duplicate frames")
        return table, files, orphans

    def _load_tasks(self) -> list[str]:
        path = self.root / "meta" / "tasks.parquet"
        if not path.is_file():
            return []
        t = pq.read_table(path)
        if "task" in t.column_names and "task_index" in t.column_names:
            pairs = sorted(zip(column_to_numpy(t.column("task_index")).tolist(), t.column("task").to_pylist()))
            return [task for _, task in pairs]
        # LeRobot writes tasks as the pandas index column
        name = next((n for n in t.column_names if n != "task_index"), None)
        return [] if name is None else t.column(name).to_pylist()

    def _load_episodes(self) -> tuple[list[EpisodeInfo], list[dict[str, Any]]]:
        rows: dict[int, dict[str, Any]] = {}
        ep_dir = self.root / "meta" / "episodes"
        for path in sorted(ep_dir.glob("chunk-*/file-*.parquet")) if ep_dir.is_dir() else []:
            for r in pq.read_table(path).to_pylist():
                rows[int(r["episode_index"])] = r
        ep_col = self.frames.get("episode_index", np.zeros(0, np.int64))
        episodes: list[EpisodeInfo] = []
        kept_rows: list[dict[str, Any]] = []
        if len(ep_col) == 0:
            return episodes, kept_rows
        bounds = np.flatnonzero(np.diff(ep_col)) + 1
        starts = np.concatenate([[0], bounds])
        stops = np.concatenate([bounds, [len(ep_col)]])
        for s, e in zip(starts.tolist(), stops.tolist()):
            ei = int(ep_col[s])
            r = rows.get(ei)
            length = e - s
            task_idx = int(self.frames["task_index"][s]) if "task_index" in self.frames else 0
            task = self.tasks[task_idx] if task_idx < len(self.tasks) else ""
            if r is not None and int(r["length"]) != length:
                self.notes.append(f"episode {ei}: index says {r['length']} frames, data has {length}; using data")
                r = None
            if r is None:
                self.notes.append(f"episode {ei}: rebuilt from data ({length} frames, not ended by the writer)")
                r = {"episode_index": ei, "tasks": [task], "length": length,
                     "dataset_from_index": int(self.frames["index"][s]),
                     "dataset_to_index": int(self.frames["index"][e - 1]) + 1,
                     "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
                     "success": None, "final_observation": None}
                complete = False
            else:
                complete = True
            fo = r.get("final_observation")
            episodes.append(EpisodeInfo(
                index=ei, start=s, length=length, task=(r.get("tasks") or [task])[0],
                success=r.get("success"), complete=complete,
                final_observation=None if fo is None else np.asarray(fo, dtype=np.float64),
                data_file=(int(r.get("data/chunk_index", 0) or 0), int(r.get("data/file_index", 0) or 0)),
            ))
            kept_rows.append(r)
        return episodes, kept_rows

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.frames.get("index", ()))

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def observations(self) -> np.ndarray:
        return self.frames[STATE_KEY]

    @property
    def actions(self) -> np.ndarray:
        return self.frames[ACTION_KEY]

    def episode(self, i: int) -> dict[str, np.ndarray]:
        """Columns of the i-th episode (position in ``episodes``)."""
        if not 0 <= i < len(self.episodes):
            raise TetherError(f"episode {i} out of range; dataset has {len(self.episodes)} episodes")
        ep = self.episodes[i]
        return {k: v[ep.start:ep.stop] for k, v in self.frames.items()}

    def video(self, key: str, i: int) -> np.ndarray:
        """Decoded frames (T, H, W, 3) of camera ``key`` for the i-th episode."""
        if key not in self.video_keys:
            raise TetherError(f"no camera {key!r} in dataset; cameras are {self.video_keys}")
        ep = self.episodes[i]
        row = self._episode_rows[i]
        cs = int(self.info.get("chunks_size", DEFAULT_CHUNKS_SIZE))
        c = row.get(f"videos/{key}/chunk_index")
        f = row.get(f"videos/{key}/file_index")
        if c is None or f is None:
            c, f = _chunk_file(ep.index, cs)
        t0 = float(row.get(f"videos/{key}/from_timestamp") or 0.0)
        first = int(round(t0 * self.fps))
        path = self.root / self.info.get("video_path", VIDEO_PATH).format(video_key=key, chunk_index=c, file_index=f)
        return read_video(path, first, first + ep.length)

    @property
    def stats(self) -> dict[str, Any]:
        """stats.json when it matches the data; recomputed when the writer did not finish."""
        if self._stats is None:
            path = self.root / "meta" / "stats.json"
            if path.is_file() and not self.recovered:
                self._stats = json.loads(path.read_text())
            else:
                self._stats = compute_stats(
                    {k: v for k, v in self.frames.items() if k in (STATE_KEY, ACTION_KEY, "next.reward")}
                )
        return self._stats

    def to_transitions(self) -> dict[str, np.ndarray]:
        """(s, a, r, s', terminal, timeout) arrays for offline RL and replay buffers.

        Within an episode s' is the next frame's observation. An episode's last frame becomes a transition
        only when its successor is known: a terminal (s' is then irrelevant and set to s, never bootstrapped)
        or a recorded ``final_observation`` (a timeout: bootstrap from s'). Otherwise it is dropped — this is
        always the case for the tail of an episode recovered after a crash.
        """
        obs, act = self.observations, self.actions
        rew = self.frames["next.reward"]
        term = self.frames.get("next.terminated", np.zeros(len(self), bool)).astype(bool)
        keys = ("obs", "action", "reward", "next_obs", "terminal", "timeout")
        parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        for ep in self.episodes:
            s, e = ep.start, ep.stop
            n = ep.length - 1
            o, a, r, t = obs[s:e], act[s:e], rew[s:e], term[s:e]
            no = o[1:]
            tt = t[:-1]
            to = np.zeros(n, bool)
            if t[-1]:
                fo = ep.final_observation
                last_next, last_to, take = (fo if fo is not None else o[-1]), False, True
            elif ep.final_observation is not None and ep.complete:
                last_next, last_to, take = ep.final_observation, True, True
            else:
                take = False
            if take:
                n += 1
                no = np.concatenate([no, np.asarray(last_next, dtype=o.dtype)[None]])
                tt = np.concatenate([tt, [bool(t[-1])]])
                to = np.concatenate([to, [last_to]])
            parts["obs"].append(o[:n])
            parts["action"].append(a[:n])
            parts["reward"].append(r[:n])
            parts["next_obs"].append(no)
            parts["terminal"].append(tt)
            parts["timeout"].append(to)
        obs_dim = obs.shape[1] if obs.ndim == 2 else 0
        act_dim = act.shape[1] if act.ndim == 2 else 0
        empty = {"obs": np.zeros((0, obs_dim), np.float32), "action": np.zeros((0, act_dim), np.float32),
                 "reward": np.zeros(0, np.float32), "next_obs": np.zeros((0, obs_dim), np.float32),
                 "terminal": np.zeros(0, bool), "timeout": np.zeros(0, bool)}
        out = {k: (np.concatenate(v) if v else empty[k]) for k, v in parts.items()}
        out["reward"] = out["reward"].astype(np.float32)
        out["terminal"] = out["terminal"].astype(bool)
        out["timeout"] = out["timeout"].astype(bool)
        return out

    def summary(self) -> str:
        c = self.contract
        lines = [
            f"dataset {self.root}",
            f"  format LeRobot {self.info.get('codebase_version')}, {self.fps:g} fps, {len(self)} frames, "
            f"{self.num_episodes} episodes ({sum(e.complete for e in self.episodes)} complete)",
        ]
        if c is not None:
            lines.append(f"  contract {c.robot}/{c.task} mode {c.control_mode} at {c.rate_hz:g} Hz, "
                         f"obs {c.obs_size} [{', '.join(f.name for f in c.observations)}], "
                         f"action {c.action_size} [{', '.join(f.name for f in c.actions)}]")
        if self.episodes:
            lens = [e.length for e in self.episodes]
            succ = [e.success for e in self.episodes if e.success is not None]
            lines.append(f"  episode length min {min(lens)} mean {np.mean(lens):.1f} max {max(lens)}"
                         + (f", success {np.mean(succ):.0%} of {len(succ)}" if succ else ""))
            if "next.reward" in self.frames:
                returns = [float(self.frames["next.reward"][e.start:e.stop].sum()) for e in self.episodes]
                lines.append(f"  return mean {np.mean(returns):.3f} min {min(returns):.3f} max {max(returns):.3f}")
        if self.tasks:
            lines.append(f"  tasks {self.tasks}")
        if self.video_keys:
            lines.append(f"  cameras {self.video_keys}")
        if self.metadata:
            lines.append(f"  metadata {json.dumps(self.metadata, sort_keys=True)}")
        repaired = (self.info.get("tether") or {}).get("repaired_episodes")
        if repaired:
            lines.append(f"  episodes {repaired} were cut short by a crash and repaired")
        for note in self.notes:
            lines.append(f"  recovery: {note}")
        return "\n".join(lines)


def _empty_table(info: Mapping[str, Any]) -> pa.Table:
    cols = {}
    for name, spec in info.get("features", {}).items():
        if spec.get("dtype") == "video":
            continue
        dt = _DTYPES.get(spec.get("dtype", "float32"), np.float32)
        shape = spec.get("shape", [1])
        cols[name] = _arrow_column(np.zeros((0, *shape) if shape != [1] else (0,), dt), spec.get("dtype", "float32"))
    return pa.table(cols)


def repair(root: str | Path) -> Dataset:
    """Write what the reader recovered back to disk: merge orphaned parts into data files, give recovered
    episodes an index row (their last frame marked done), and rewrite info/stats. Idempotent."""
    ds = Dataset(root)
    root = Path(root)
    if not ds.recovered:
        return ds
    cs = int(ds.info.get("chunks_size", DEFAULT_CHUNKS_SIZE))
    for (c, f), parts in sorted(ds._orphans.items()):
        tables = [pq.read_table(p) for p in parts]
        if tables:
            table = pa.concat_tables(tables, promote_options="default")
            # the recovered episode in this file ended by a crash: mark its last frame as the episode end
            ep = column_to_numpy(table.column("episode_index"))
            done = column_to_numpy(table.column("next.done")).astype(bool)
            last = np.concatenate([ep[1:] != ep[:-1], [True]]) if len(ep) else np.zeros(0, bool)
            table = table.set_column(table.column_names.index("next.done"), "next.done", pa.array(done | last))
            _atomic_write_table(root / DATA_PATH.format(chunk_index=c, file_index=f), table)
        shutil.rmtree(root / PARTS_DIR.format(chunk_index=c, file_index=f), ignore_errors=True)
    file_of = {}
    for c, f in list(ds._data_files) + list(ds._orphans):
        t = pq.read_table(root / DATA_PATH.format(chunk_index=c, file_index=f), columns=["episode_index"]) \
            if (root / DATA_PATH.format(chunk_index=c, file_index=f)).is_file() else None
        if t is not None:
            for e in np.unique(column_to_numpy(t.column("episode_index"))).tolist():
                file_of[int(e)] = (c, f)
    rows = []
    for ep, r in zip(ds.episodes, ds._episode_rows):
        r = dict(r)
        c, f = file_of.get(ep.index, (0, 0))
        r.setdefault("data/chunk_index", c)
        r.setdefault("data/file_index", f)
        if not ep.complete:
            r["data/chunk_index"], r["data/file_index"] = c, f
            vc, vf = _chunk_file(ep.index, cs)
            for key in ds.video_keys:
                r.update({f"videos/{key}/chunk_index": vc, f"videos/{key}/file_index": vf,
                          f"videos/{key}/from_timestamp": 0.0, f"videos/{key}/to_timestamp": ep.length / ds.fps})
        rows.append(r)
    _atomic_write_table(root / EPISODES_PATH.format(chunk_index=0, file_index=0), _episodes_table(rows))
    stats = compute_stats({k: v for k, v in ds.frames.items() if k in (STATE_KEY, ACTION_KEY, "next.reward")})
    old_stats_path = root / "meta" / "stats.json"
    if old_stats_path.is_file():
        old = json.loads(old_stats_path.read_text())
        stats.update({k: v for k, v in old.items() if k in ds.video_keys})
    _atomic_write_json(old_stats_path, stats)
    info = dict(ds.info)
    info["total_episodes"] = len(rows)
    info["total_frames"] = len(ds)
    info["total_tasks"] = len(ds.tasks)
    info["splits"] = {"train": f"0:{len(rows)}"}
    info.setdefault("tether", {}).setdefault("metadata", {})
    info["tether"]["repaired_episodes"] = sorted(
        set(info["tether"].get("repaired_episodes", [])) | {e.index for e in ds.episodes if not e.complete}
    )
    _atomic_write_json(root / "meta" / "info.json", info)
    return Dataset(root)
