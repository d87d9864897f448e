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

The package is split by job: ``layout`` (paths, column conventions, atomic I/O, shared tables), ``writer``
(DatasetWriter), ``reader`` (Dataset, EpisodeInfo) and ``repair``. Import the public names from here.
"""

from __future__ import annotations

from tether.data.dataset.layout import (
    ACTION_KEY, CODEBASE_VERSION, DATA_PATH, DEFAULT_CHUNKS_SIZE, EPISODES_PATH, PARTS_DIR, STANDARD_COLUMNS,
    STATE_KEY, VIDEO_PATH, column_to_numpy, component_names,
)
from tether.data.dataset.reader import Dataset, EpisodeInfo
from tether.data.dataset.repair import repair
from tether.data.dataset.writer import DatasetWriter

_component_names = component_names  # the name tether.data.demos imports

__all__ = [
    "ACTION_KEY", "CODEBASE_VERSION", "DATA_PATH", "DEFAULT_CHUNKS_SIZE", "EPISODES_PATH", "PARTS_DIR",
    "STANDARD_COLUMNS", "STATE_KEY", "VIDEO_PATH", "Dataset", "DatasetWriter", "EpisodeInfo", "column_to_numpy",
    "component_names", "repair",
]
