"""Writing episodes crash-safely, frame by frame.

Why the writer is crash-safe: a Parquet file is unreadable until its footer is written, so a recorder killed
with SIGKILL would lose the whole open file. Instead, while a data file is open its frames go to small,
complete Parquet *parts* (``data/chunk-CCC/.file-FFF.parts/part-NNNNNN.parquet``), each written to a temp
name and renamed into place (a rename is atomic), at least once per ``flush_every_s`` of frames. When the
file is closed the parts are concatenated into ``file-FFF.parquet`` and removed. Meta files are rewritten
atomically at every episode end and info.json exists from the first moment.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tether.contract import IOContract
from tether.data.dataset.layout import (
    ACTION_KEY, CODEBASE_VERSION, DATA_PATH, DEFAULT_CHUNKS_SIZE, DTYPES, EPISODES_PATH, PARTS_DIR,
    STANDARD_COLUMNS, STATE_KEY, VIDEO_PATH, arrow_column, atomic_write_json, atomic_write_table, chunk_file,
    column_to_numpy, component_names, episodes_table, tasks_table,
)
from tether.data.dataset.repair import repair
from tether.data.stats import (
    RunningStats, compute_stats, image_batch_for_stats, image_running_stats, image_stats_dict,
)
from tether.data.video import VideoWriter
from tether.errors import TetherError


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
            if name in STANDARD_COLUMNS or spec.get("dtype") not in DTYPES:
                raise TetherError(
                    f"extra feature {name!r} has dtype {spec.get('dtype')!r}; expected a name not in "
                    f"{list(STANDARD_COLUMNS)} and dtype one of {sorted(DTYPES)}"
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
        self._ep_tables: list[pa.Table] = []  # this episode's flushed rows (per-episode stats at its end)
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
            v = np.asarray(value, dtype=DTYPES[self.extra_features[name]["dtype"]])
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
        c, f = chunk_file(self._data_file_n, self.chunks_size)
        row: dict[str, Any] = {
            "episode_index": self._ep_index,
            "tasks": [self._ep_task],
            "length": self._ep_frames,
            "data/chunk_index": c,
            "data/file_index": f,
            "dataset_from_index": self._ep_first_index,
            "dataset_to_index": self._ep_first_index + self._ep_frames,
        }
        vc, vf = chunk_file(self._ep_index, self.chunks_size)
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
        ep_table = pa.concat_tables(self._ep_tables)
        ep_stats = compute_stats({key: column_to_numpy(ep_table.column(key)) for key in self._stat_keys()})
        for key, stats in ep_stats.items():
            for stat, value in stats.items():
                row[f"stats/{key}/{stat}"] = value
        self._episodes.append(row)
        if self._file_bytes >= self.file_limit_bytes:
            self._finalize_file()
        self._write_meta()
        ep = self._ep_index
        self._ep_index += 1
        self._ep_frames = 0
        self._ep_first_index = self._next_index
        self._ep_tables = []
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

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # leaving on an error (disk full, Ctrl-C): finish what can be finished; the first error is the news
            self.close()
        except (OSError, TetherError):
            pass  # what reached the disk is readable: Dataset() recovers unmerged parts and unindexed episodes

    @property
    def num_episodes(self) -> int:
        return len(self._episodes)

    # ------------------------------------------------------------------ internals
    def _task_index(self, task: str) -> int:
        if task not in self._tasks:
            self._tasks.append(task)
            atomic_write_table(self.root / "meta" / "tasks.parquet", tasks_table(self._tasks), self.fsync)
        return self._tasks.index(task)

    def _add_images(self, images: Mapping[str, np.ndarray]) -> None:
        unknown = sorted(set(images) - set(self.video_keys))
        if unknown:
            raise TetherError(f"images for unknown cameras {unknown}; declared video_keys are {list(self.video_keys)}")
        for key, img in images.items():
            if key not in self._videos:
                c, f = chunk_file(self._ep_index, self.chunks_size)
                path = self.root / VIDEO_PATH.format(video_key=key, chunk_index=c, file_index=f)
                self._videos[key] = VideoWriter(path, self.fps)
            img = np.asarray(img)
            self._videos[key].add(img)
            if key not in self._video_shapes:
                self._video_shapes[key] = (int(img.shape[0]), int(img.shape[1]))
                self._write_info()
            step = max(1, int(np.sqrt(img.shape[0] * img.shape[1] / 4096)))
            pixels = image_batch_for_stats(img[::step, ::step][None])
            self._stats.setdefault(key, image_running_stats()).update(pixels, samples=1)  # count = frames

    def _rows_to_table(self, rows: list[dict[str, Any]]) -> pa.Table:
        cols: dict[str, pa.Array] = {}
        for key, dt in ((STATE_KEY, self.dtype), (ACTION_KEY, self.dtype), ("next.reward", "float32"),
                        ("next.done", "bool"), ("next.terminated", "bool"), ("timestamp", "float32"),
                        ("frame_index", "int64"), ("episode_index", "int64"), ("index", "int64"),
                        ("task_index", "int64")):
            cols[key] = arrow_column(np.stack([np.asarray(r[key]) for r in rows]), dt)
        for key, spec in self.extra_features.items():
            cols[key] = arrow_column(np.stack([np.asarray(r[key]) for r in rows]), spec["dtype"])
        return pa.table(cols)

    def _stat_keys(self) -> tuple[str, ...]:
        return (STATE_KEY, ACTION_KEY, "next.reward", *self.extra_features)

    def _flush(self, keep_last: bool) -> None:
        rows = self._pending[:-1] if keep_last else self._pending
        if not rows:
            return
        table = self._rows_to_table(rows)
        for key in self._stat_keys():
            # dataset stats per flushed batch, of the values as stored (what any reader of the files computes):
            # moments merge exactly; quantile histograms settle on the data's range after the first batches
            batch = column_to_numpy(table.column(key))
            self._stats.setdefault(key, RunningStats()).update(batch.reshape(len(batch), -1))
        self._ep_tables.append(table)
        c, f = chunk_file(self._data_file_n, self.chunks_size)
        parts = self.root / PARTS_DIR.format(chunk_index=c, file_index=f)
        path = parts / f"part-{self._part_n:06d}.parquet"
        atomic_write_table(path, table, self.fsync)
        self._part_n += 1
        self._file_tables.append(table)
        self._file_bytes += path.stat().st_size
        self._pending = self._pending[-1:] if keep_last else []
        self._last_flush = time.monotonic()

    def _finalize_file(self) -> None:
        if not self._file_tables:
            return
        c, f = chunk_file(self._data_file_n, self.chunks_size)
        table = pa.concat_tables(self._file_tables)
        atomic_write_table(self.root / DATA_PATH.format(chunk_index=c, file_index=f), table, self.fsync)
        shutil.rmtree(self.root / PARTS_DIR.format(chunk_index=c, file_index=f), ignore_errors=True)
        self._file_tables, self._file_bytes, self._part_n = [], 0, 0
        self._data_file_n += 1

    def _features(self) -> dict[str, Any]:
        c = self.contract
        feats: dict[str, Any] = {
            STATE_KEY: {"dtype": self.dtype, "shape": [c.obs_size], "names": component_names(c.observations)},
            ACTION_KEY: {"dtype": self.dtype, "shape": [c.action_size], "names": component_names(c.actions)},
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
        atomic_write_json(self.root / "meta" / "info.json", info, self.fsync)

    def _write_meta(self) -> None:
        atomic_write_table(self.root / EPISODES_PATH.format(chunk_index=0, file_index=0),
                            episodes_table(self._episodes), self.fsync)
        stats = {}
        for key, rs in self._stats.items():
            stats[key] = image_stats_dict(rs) if key in self.video_keys else rs.to_dict()
        atomic_write_json(self.root / "meta" / "stats.json", stats, self.fsync)
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
        self._episodes = ds.episode_rows
        self._tasks = list(ds.tasks)
        self._next_index = int(ds.frames["index"].max()) + 1 if len(ds) else 0
        self._data_file_n = max((c * self.chunks_size + f for c, f in ds.data_files), default=-1) + 1
        for key in self._stat_keys():
            if key in ds.frames:
                rs = RunningStats()
                rs.update(ds.frames[key].reshape(len(ds), -1))
                self._stats[key] = rs
        self._video_shapes = {k: tuple(ds.info["features"][k]["shape"][:2]) for k in ds.video_keys}
