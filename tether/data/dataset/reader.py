"""Reading a dataset back, recovering what an interrupted writer left behind.

The reader reads finished files plus the parts of unfinished ones, and rebuilds whatever meta an interrupted
writer did not get to write: episodes missing from the index become ``complete=False`` episodes, stats are
recomputed. It never writes; ``repair`` (repair.py) writes the recovered state back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tether.contract import IOContract
from tether.data.dataset.layout import (
    ACTION_KEY, DEFAULT_CHUNKS_SIZE, STATE_KEY, VIDEO_PATH, chunk_file, column_to_numpy, empty_table, read_info,
    read_stats,
)
from tether.data.stats import compute_stats
from tether.data.video import read_video
from tether.errors import TetherError


def _read_parquet(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise TetherError(f"{path} is not a readable Parquet file ({' '.join(str(exc).split())[:200]}); expected a "
                          "file written by a LeRobot v3.0 dataset writer") from None


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



class Dataset:
    """Read a dataset written by DatasetWriter (or any LeRobot v3.0 dataset with the standard columns),
    recovering frames and episodes an interrupted writer left behind."""

    def __init__(self, root: str | Path) -> None:
        from tether.validation import contract_from_data, walk_folder

        self.root = Path(root)
        info_path = self.root / "meta" / "info.json"
        if not info_path.is_file() and not info_path.is_symlink():
            raise TetherError(f"{self.root} is not a dataset: {info_path} is missing (expected a LeRobot v3.0 dataset)")
        walk_folder(self.root, "dataset")  # a symlink or FIFO anywhere inside is refused, never followed
        self.info: dict[str, Any] = read_info(info_path)  # bounded, schema-checked
        version = str(self.info.get("codebase_version", ""))
        if not version.startswith("v3"):
            raise TetherError(f"dataset {self.root} has codebase_version {version!r}; expected 'v3.0'")
        self.fps = float(self.info["fps"])
        tether = self.info.get("tether") or {}
        self.contract: IOContract | None = (contract_from_data(tether["contract"], f"{info_path}: tether.contract")
                                            if "contract" in tether else None)
        self.metadata: dict[str, Any] = dict(tether.get("metadata", {}))
        self.video_keys = [k for k, v in self.info.get("features", {}).items() if v.get("dtype") == "video"]
        self.notes: list[str] = []  # what recovery had to do, for `tether data info`
        table, self.data_files, self.orphan_parts = self._load_data()
        self.frames: dict[str, np.ndarray] = {name: column_to_numpy(table.column(name)) for name in table.column_names}
        self._check_frames()
        self.tasks = self._load_tasks()
        self.episodes, self.episode_rows = self._load_episodes()
        self.recovered = bool(self.orphan_parts) or any(not e.complete for e in self.episodes)
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
                tables.append(_read_parquet(path))
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
            return empty_table(self.info), files, orphans
        try:
            table = pa.concat_tables(tables, promote_options="default")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise TetherError(f"dataset {self.root}: data files disagree on their columns ({exc}); expected one "
                              "schema") from None
        if "index" not in table.column_names:
            raise TetherError(f"dataset {self.root}: data column 'index' is missing; expected the LeRobot v3.0 "
                              f"columns {STATE_KEY!r}, {ACTION_KEY!r}, 'index' and 'episode_index'")
        order = np.argsort(column_to_numpy(table.column("index")), kind="stable")
        table = table.take(pa.array(order))
        idx = column_to_numpy(table.column("index"))
        if len(idx) > 1 and np.any(np.diff(idx) == 0):
            keep = np.concatenate([[True], np.diff(idx) != 0])
            table = table.filter(pa.array(keep))
            self.notes.append(f"dropped {int((~keep).sum())} duplicate frames")
        return table, files, orphans

    def _check_frames(self) -> None:
        """The standard columns as everything downstream uses them, checked once here (one line naming the
        column, before anything trains on it): present, numbers, as wide as meta/info.json and the contract
        say, finite; index columns whole numbers >= 0."""
        n = len(next(iter(self.frames.values()), ()))
        if n == 0:
            return
        where = f"dataset {self.root}: data column"
        features = self.info.get("features", {})
        widths = {STATE_KEY: None if self.contract is None else self.contract.obs_size,
                  ACTION_KEY: None if self.contract is None else self.contract.action_size, "next.reward": 1}
        for key in (STATE_KEY, ACTION_KEY, "next.reward", "index", "episode_index"):
            if key not in self.frames:
                if key == "next.reward":
                    continue
                raise TetherError(f"{where} {key!r} is missing; expected the LeRobot v3.0 columns {STATE_KEY!r}, "
                                  f"{ACTION_KEY!r}, 'index' and 'episode_index'")
            a = self.frames[key]
            if a.dtype.kind not in "biuf":
                raise TetherError(f"{where} {key!r} holds {a.dtype} values; expected numbers")
            if key in ("index", "episode_index"):
                if a.ndim != 1 or a.dtype.kind not in "iu" or (a.size and int(a.min()) < 0):
                    raise TetherError(f"{where} {key!r} is not whole numbers >= 0, one per frame; expected the "
                                      "frame's position")
                continue
            shape = features.get(key, {}).get("shape")
            want = widths[key] if widths[key] is not None else (int(np.prod(shape)) if shape else None)
            width = 1 if a.ndim == 1 else (a.shape[1] if a.ndim == 2 else -1)
            if width == -1 or (want is not None and width != want):
                raise TetherError(f"{where} {key!r} has rows of {width if width >= 0 else a.shape[1:]} values; "
                                  f"expected {want} (meta/info.json and the contract)")
            bad = ~np.isfinite(a.reshape(n, -1)).all(axis=1)
            if bad.any():
                raise TetherError(f"{where} {key!r} holds NaN or infinite values (first at frame "
                                  f"{int(np.flatnonzero(bad)[0])}); expected finite numbers")

    def _check_episode_row(self, r: dict[str, Any], where: str) -> None:
        """The fields of an episode index row that the reader uses, typed and bounded."""
        from tether.validation import ValidationError, expect_int, expect_list, expect_numbers, expect_str

        try:
            for key in ("episode_index", "length"):
                expect_int(r.get(key), f"{where}: {key}", 0, 2**62)
            for key in ("data/chunk_index", "data/file_index", "dataset_from_index", "dataset_to_index"):
                if r.get(key) is not None:
                    expect_int(r[key], f"{where}: {key}", 0, 2**62)
            if r.get("success") is not None and not isinstance(r["success"], bool):
                raise ValidationError(f"{where}: success is {r['success']!r}; expected true, false or null")
            if r.get("tasks") is not None:
                for j, t in enumerate(expect_list(r["tasks"], f"{where}: tasks", max_len=1000)):
                    expect_str(t, f"{where}: tasks[{j}]")
            fo = r.get("final_observation")
            if fo is not None:
                width = self.frames[STATE_KEY].shape[1] if self.frames.get(STATE_KEY, np.zeros(0)).ndim == 2 else None
                expect_numbers(fo, f"{where}: final_observation", size=width)
        except ValidationError as exc:
            raise TetherError(f"dataset episode index {exc}") from None

    def _load_tasks(self) -> list[str]:
        path = self.root / "meta" / "tasks.parquet"
        if not path.is_file():
            return []
        t = _read_parquet(path)
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
            for i, r in enumerate(_read_parquet(path).to_pylist()):
                self._check_episode_row(r, f"{path} row {i}")
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

    def episode_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Observations, actions and episode ids with each episode's frames contiguous and in time order (what
        a sequence learner windows: a diffusion policy's observation history and action chunks)."""
        ep = np.asarray(self.frames.get("episode_index", np.zeros(len(self), np.int64)))
        fr = np.asarray(self.frames.get("frame_index", np.arange(len(self))))
        order = np.lexsort((fr, ep))
        return self.observations[order], self.actions[order], ep[order]

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
        row = self.episode_rows[i]
        cs = int(self.info.get("chunks_size", DEFAULT_CHUNKS_SIZE))
        c = row.get(f"videos/{key}/chunk_index")
        f = row.get(f"videos/{key}/file_index")
        if c is None or f is None:
            c, f = chunk_file(ep.index, cs)
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
                self._stats = read_stats(path)
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
