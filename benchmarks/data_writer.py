"""Cost of crash safety: DatasetWriter (a Parquet part every second of frames, meta at every episode end)
against writing the same frames in one pyarrow call at the end (which a SIGKILL would lose entirely).

Also times reading the dataset back and building offline-RL transitions. Prints frames/s and the ratio.
Run: .venv/bin/python benchmarks/data_writer.py
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tether.contract import Field, IOContract
from tether.data.dataset import Dataset, DatasetWriter

EPISODES, LENGTH, FPS = 40, 500, 50.0  # 20k frames: 400 s of a 50 Hz robot


def contract() -> IOContract:
    return IOContract(
        robot="quadrotor", task="hover",
        observations=(Field.make("obs", 22, "1"),),
        actions=(Field.make("motor_thrust", 4, "N", low=0.0, high=8.0),),
        control_mode="motor_thrust", rate_hz=FPS,
    )


def main() -> None:
    rng = np.random.default_rng(0)
    n = EPISODES * LENGTH
    obs = rng.normal(size=(n, 22))
    act = rng.uniform(-1, 1, size=(n, 4))
    rew = rng.normal(size=n)
    tmp = Path(tempfile.mkdtemp(prefix="tether-bench-"))
    try:
        t = time.perf_counter()
        with DatasetWriter(tmp / "ds", contract()) as w:
            for e in range(EPISODES):
                for k in range(LENGTH):
                    i = e * LENGTH + k
                    w.add_frame(obs[i], act[i], float(rew[i]))
                w.end_episode(final_obs=obs[i])
        t_writer = time.perf_counter() - t

        t = time.perf_counter()
        rows = {"observation.state": [], "action": [], "next.reward": [], "episode_index": [], "frame_index": []}
        for e in range(EPISODES):  # the same per-frame Python loop, then one write at the end
            for k in range(LENGTH):
                i = e * LENGTH + k
                rows["observation.state"].append(obs[i].astype(np.float32))
                rows["action"].append(act[i].astype(np.float32))
                rows["next.reward"].append(np.float32(rew[i]))
                rows["episode_index"].append(e)
                rows["frame_index"].append(k)
        def fixed(key: str, k: int) -> pa.Array:
            return pa.FixedSizeListArray.from_arrays(pa.array(np.stack(rows[key]).ravel()), k)

        table = pa.table({
            "observation.state": fixed("observation.state", 22),
            "action": fixed("action", 4),
            "next.reward": pa.array(np.array(rows["next.reward"])),
            "episode_index": pa.array(rows["episode_index"]),
            "frame_index": pa.array(rows["frame_index"]),
        })
        pq.write_table(table, tmp / "oneshot.parquet")
        t_oneshot = time.perf_counter() - t

        t = time.perf_counter()
        ds = Dataset(tmp / "ds")
        tr = ds.to_transitions()
        t_read = time.perf_counter() - t
        assert len(tr["obs"]) == n and ds.num_episodes == EPISODES

        print(f"frames: {n} ({EPISODES} episodes x {LENGTH}, obs 22, action 4)")
        print(f"DatasetWriter (crash-safe, part every {int(FPS)} frames): {n / t_writer:10.0f} frames/s "
              f"({t_writer:.2f} s; {n / t_writer / FPS:.0f}x a {FPS:g} Hz robot)")
        print(f"one-shot pyarrow write (not crash-safe):           {n / t_oneshot:10.0f} frames/s ({t_oneshot:.2f} s)")
        print(f"ratio crash-safe / one-shot time: {t_writer / t_oneshot:.2f}")
        print(f"read back + to_transitions: {n / t_read:10.0f} frames/s ({t_read:.2f} s)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
