"""Repair: write what the reader recovered after a crash back to disk as a clean dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tether.data.dataset.layout import (
    ACTION_KEY, DATA_PATH, DEFAULT_CHUNKS_SIZE, EPISODES_PATH, PARTS_DIR, STATE_KEY, VIDEO_PATH, atomic_write_json,
    atomic_write_table, chunk_file, column_to_numpy, episodes_table, read_stats,
)
from tether.data.dataset.reader import Dataset
from tether.data.stats import compute_stats
from tether.data.video import trim_to_complete


def repair(root: str | Path) -> Dataset:
    """Write what the reader recovered back to disk: merge orphaned parts into data files, give recovered
    episodes an index row (their last frame marked done), and rewrite info/stats. Idempotent."""
    ds = Dataset(root)
    root = Path(root)
    if not ds.recovered:
        return ds
    cs = int(ds.info.get("chunks_size", DEFAULT_CHUNKS_SIZE))
    for (c, f), parts in sorted(ds.orphan_parts.items()):
        tables = [pq.read_table(p) for p in parts]
        if tables:
            table = pa.concat_tables(tables, promote_options="default")
            # the recovered episode in this file ended by a crash: mark its last frame as the episode end
            ep = column_to_numpy(table.column("episode_index"))
            done = column_to_numpy(table.column("next.done")).astype(bool)
            last = np.concatenate([ep[1:] != ep[:-1], [True]]) if len(ep) else np.zeros(0, bool)
            table = table.set_column(table.column_names.index("next.done"), "next.done", pa.array(done | last))
            atomic_write_table(root / DATA_PATH.format(chunk_index=c, file_index=f), table)
        shutil.rmtree(root / PARTS_DIR.format(chunk_index=c, file_index=f), ignore_errors=True)
    file_of = {}
    for c, f in list(ds.data_files) + list(ds.orphan_parts):
        t = pq.read_table(root / DATA_PATH.format(chunk_index=c, file_index=f), columns=["episode_index"]) \
            if (root / DATA_PATH.format(chunk_index=c, file_index=f)).is_file() else None
        if t is not None:
            for e in np.unique(column_to_numpy(t.column("episode_index"))).tolist():
                file_of[int(e)] = (c, f)
    rows = []
    for ep, r in zip(ds.episodes, ds.episode_rows):
        r = dict(r)
        c, f = file_of.get(ep.index, (0, 0))
        r.setdefault("data/chunk_index", c)
        r.setdefault("data/file_index", f)
        if not ep.complete:
            r["data/chunk_index"], r["data/file_index"] = c, f
            vc, vf = chunk_file(ep.index, cs)
            for key in ds.video_keys:
                r.update({f"videos/{key}/chunk_index": vc, f"videos/{key}/file_index": vf,
                          f"videos/{key}/from_timestamp": 0.0, f"videos/{key}/to_timestamp": ep.length / ds.fps})
                video = root / ds.info.get("video_path", VIDEO_PATH).format(video_key=key, chunk_index=vc,
                                                                            file_index=vf)
                if video.is_file():
                    trim_to_complete(video)  # a torn last fragment would make FFmpeg refuse the whole file
        rows.append(r)
    atomic_write_table(root / EPISODES_PATH.format(chunk_index=0, file_index=0), episodes_table(rows))
    stats = compute_stats({k: v for k, v in ds.frames.items() if k in (STATE_KEY, ACTION_KEY, "next.reward")})
    old_stats_path = root / "meta" / "stats.json"
    if old_stats_path.is_file():
        old = read_stats(old_stats_path)
        stats.update({k: v for k, v in old.items() if k in ds.video_keys})
    atomic_write_json(old_stats_path, stats)
    info = dict(ds.info)
    info["total_episodes"] = len(rows)
    info["total_frames"] = len(ds)
    info["total_tasks"] = len(ds.tasks)
    info["splits"] = {"train": f"0:{len(rows)}"}
    info.setdefault("tether", {}).setdefault("metadata", {})
    info["tether"]["repaired_episodes"] = sorted(
        set(info["tether"].get("repaired_episodes", [])) | {e.index for e in ds.episodes if not e.complete}
    )
    atomic_write_json(root / "meta" / "info.json", info)
    return Dataset(root)
