"""Dataset layout on disk: path templates, column conventions, atomic file writes and the Arrow tables that
the writer, the reader and repair share (one home, so the three never disagree on a name or a dtype).

Why atomic writes: a reader (or a crash) must only ever see the old or the new version of a meta file,
never half of one; every file here is written to a temp name and renamed into place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

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
DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "int32": np.int32,
          "bool": np.bool_, "uint8": np.uint8}


MAX_FPS = 100_000.0
MAX_FEATURES = 4096
_TEMPLATE_FIELDS = {"video_key", "chunk_index", "file_index", "episode_chunk", "episode_index"}


def _check_template(value: Any, where: str) -> str:
    """A path template from info.json: relative, no '..', only the placeholders LeRobot defines (a template is
    formatted with Python's str.format, so '{video_key.__class__}' or '../../x' must never get through)."""
    import string

    from tether.validation import ValidationError, expect_str

    text = expect_str(value, where, max_len=512)
    try:
        fields = [f for _, f, spec, conv in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise ValidationError(f"{where} is {text!r}: {exc}") from None
    parts = text.replace("\\", "/").split("/")
    if text.startswith("/") or ".." in parts or any(f not in _TEMPLATE_FIELDS for f in fields):
        raise ValidationError(f"{where} is {text!r}; expected a relative path template using only "
                              f"{sorted(_TEMPLATE_FIELDS)}")
    return text


def read_info(path: Path) -> dict[str, Any]:
    """meta/info.json, read bounded (tether.validation) and schema-checked for what Tether uses: fps, features,
    path templates, chunk size, and the tether block (contract, metadata with a syntax-checked env_id)."""
    from tether.validation import (
        contract_from_data, expect_dict, expect_env_id_text, expect_int, expect_list, expect_number, expect_str,
        read_json,
    )

    where = str(path)
    info = expect_dict(read_json(path, "dataset info"), where, required=("fps",))
    expect_str(info.get("codebase_version", ""), f"{where}: codebase_version", max_len=32)
    expect_number(info["fps"], f"{where}: fps", 0.0, MAX_FPS, lo_open=True)
    if "chunks_size" in info:
        expect_int(info["chunks_size"], f"{where}: chunks_size", 1, 10**9)
    for key in ("data_path", "video_path"):
        if info.get(key) is not None:
            _check_template(info[key], f"{where}: {key}")
    features = expect_dict(info.get("features", {}), f"{where}: features", max_items=MAX_FEATURES)
    for name, spec in features.items():
        expect_dict(spec, f"{where}: features[{name!r}]")
        expect_str(spec.get("dtype", "float32"), f"{where}: features[{name!r}].dtype", max_len=32)
        for i, n in enumerate(expect_list(spec.get("shape", [1]), f"{where}: features[{name!r}].shape", max_len=8)):
            expect_int(n, f"{where}: features[{name!r}].shape[{i}]", 0, 1 << 24)
    tether = expect_dict(info.get("tether") or {}, f"{where}: tether")
    if "contract" in tether:
        contract_from_data(tether["contract"], f"{where}: tether.contract")
    meta = expect_dict(tether.get("metadata") or {}, f"{where}: tether.metadata")
    if meta.get("env_id") is not None:
        expect_env_id_text(meta["env_id"], f"{where}: tether.metadata.env_id")
    return info


def read_stats(path: Path) -> dict[str, Any]:
    """meta/stats.json, read bounded; a JSON object of per-feature statistics."""
    from tether.validation import expect_dict, read_json

    return expect_dict(read_json(path, "dataset stats"), str(path), max_items=MAX_FEATURES)


def chunk_file(n: int, chunks_size: int) -> tuple[int, int]:
    return n // chunks_size, n % chunks_size


def atomic_write_bytes(path: Path, data: bytes, fsync: bool = False) -> None:
    """Write-then-rename so a reader (or a crash) only ever sees the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
    except BaseException:  # disk full or interrupted: the old file stays, no half-written temp is left
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any, fsync: bool = False) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2).encode(), fsync)


def atomic_write_table(path: Path, table: pa.Table, fsync: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        pq.write_table(table, tmp)
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def component_names(fields: Sequence[Any]) -> list[str]:
    names: list[str] = []
    for f in fields:
        if f.components:
            names += [f"{f.name}.{c}" for c in f.components]
        elif f.size == 1:
            names.append(f.name)
        else:
            names += [f"{f.name}.{i}" for i in range(f.size)]
    return names


def arrow_column(values: np.ndarray, dtype: str) -> pa.Array:
    arr = np.asarray(values, dtype=DTYPES[dtype])
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


def tasks_table(tasks: Sequence[str]) -> pa.Table:
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


def episodes_table(rows: list[dict[str, Any]]) -> pa.Table:
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



def empty_table(info: Mapping[str, Any]) -> pa.Table:
    cols = {}
    for name, spec in info.get("features", {}).items():
        if spec.get("dtype") == "video":
            continue
        dt = DTYPES.get(spec.get("dtype", "float32"), np.float32)
        shape = spec.get("shape", [1])
        cols[name] = arrow_column(np.zeros((0, *shape) if shape != [1] else (0,), dt), spec.get("dtype", "float32"))
    return pa.table(cols)

