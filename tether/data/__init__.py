"""Episode datasets in the LeRobot v3 layout, crash-safe recording, rosbag2 conversion and replay buffers.

- ``dataset``: ``DatasetWriter`` (crash-safe recorder) and ``Dataset`` (reader that recovers interrupted
  recordings), ``repair``.
- ``rosbag_import``: rosbag2 (MCAP/sqlite3) → dataset, aligned to the control clock, mapped by joint name.
- ``rosbag_export``: dataset → rosbag2 in the ``flat`` layout the importer (and a live recorder) uses.
- ``replay``: datasets / bags → transitions and SAC's ReplayBuffer.
- ``demos``: record env rollouts (scripted expert by default).
- ``stats``, ``video``: per-feature statistics; MP4 camera streams.

Submodules import pyarrow, rosbags or ffmpeg lazily from here, so ``import tether.data`` stays cheap.
"""
