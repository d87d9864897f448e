"""Episode datasets: LeRobot v3 layout, round trip, stats, video, transitions, and a recorder killed with
SIGKILL whose dataset still loads with at most the last second missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from tether.contract import Field, IOContract
from tether.data.dataset import Dataset, DatasetWriter, repair
from tether.errors import TetherError

FPS = 50.0


def quad_contract() -> IOContract:
    return IOContract(
        robot="quadrotor", task="hover",
        observations=(Field.make("pos_error", 3, "m", "world"), Field.make("base_lin_vel", 3, "m/s", "world")),
        actions=(Field.make("motor_thrust", 4, "N", low=0.0, high=8.0, components=("m0", "m1", "m2", "m3")),),
        control_mode="motor_thrust", rate_hz=FPS,
    )


def obs_of(i: int) -> np.ndarray:
    """Deterministic frame content from the global index, exactly representable in float32."""
    return np.array([i, -i, 0.5 * i, 1.0, 2.0, i % 7], dtype=np.float64)


def act_of(i: int) -> np.ndarray:
    return np.array([(i % 5) / 4 - 0.5, 0.25, -0.25, (i % 3) / 2 - 0.5])


def test_layout_roundtrip_stats_and_transitions(tmp_path: Path) -> None:
    c = quad_contract()
    root = tmp_path / "ds"
    lengths = [12, 7, 9]
    idx = 0
    with DatasetWriter(root, c, features={"observation.privileged": {"dtype": "float32", "shape": [2]}},
                       metadata={"env": "test"}) as w:
        for e, n in enumerate(lengths):
            for t in range(n):
                w.add_frame(obs_of(idx), act_of(idx), reward=float(t), done=(e == 0 and t == n - 1),
                            **{"observation.privileged": [idx, 1]})
                idx += 1
            w.end_episode(success=e != 1, final_obs=obs_of(1000 + e) if e == 1 else None)
    # LeRobot v3 layout
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == FPS and info["total_frames"] == sum(lengths)
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["features"]["observation.state"]["names"][:3] == ["pos_error.0", "pos_error.1", "pos_error.2"]
    assert info["features"]["action"]["names"] == [f"motor_thrust.m{i}" for i in range(4)]
    assert IOContract.from_dict(info["tether"]["contract"]) == c
    data = pq.read_table(root / "data/chunk-000/file-000.parquet")
    assert {"observation.state", "action", "next.reward", "next.done", "episode_index", "frame_index",
            "timestamp", "index", "task_index"} <= set(data.column_names)
    eps = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in eps] == [(0, 12), (12, 19), (19, 28)]
    assert pq.read_table(root / "meta/tasks.parquet").to_pylist() == [{"task_index": 0, "task": "quadrotor/hover"}]
    # LeRobot looks tasks up through the pandas index, so the task string must be that index
    assert json.loads(pq.read_schema(root / "meta/tasks.parquet").metadata[b"pandas"])["index_columns"] == ["task"]
    assert not list(root.glob("data/*/.file-*"))  # parts merged and removed on close

    ds = Dataset(root)
    assert not ds.recovered and ds.num_episodes == 3 and [e.success for e in ds.episodes] == [True, False, True]
    np.testing.assert_array_equal(ds.observations, np.stack([obs_of(i) for i in range(28)]))
    np.testing.assert_array_equal(ds.frames["observation.privileged"][:, 0], np.arange(28))
    np.testing.assert_array_equal(ds.episode(1)["frame_index"], np.arange(7))
    stats = json.loads((root / "meta/stats.json").read_text())
    np.testing.assert_allclose(stats["observation.state"]["mean"], ds.observations.mean(0), rtol=1e-9)
    np.testing.assert_allclose(stats["action"]["std"], ds.actions.std(0), rtol=1e-6)
    assert stats["next.reward"]["max"] == [11.0] and stats["observation.state"]["count"] == [28]

    tr = ds.to_transitions()
    # ep0 ends terminal (kept), ep1 ends with a final obs (kept, timeout), ep2 has no successor (last dropped)
    assert len(tr["obs"]) == 12 + 7 + 8
    assert tr["terminal"].sum() == 1 and tr["terminal"][11]
    assert tr["timeout"].sum() == 1 and tr["timeout"][18]
    np.testing.assert_array_equal(tr["next_obs"][18], obs_of(1001))
    np.testing.assert_array_equal(tr["next_obs"][12:18], ds.observations[13:19])
    np.testing.assert_array_equal(tr["reward"][:12], np.arange(12))


def test_bad_input_is_named(tmp_path: Path) -> None:
    c = quad_contract()
    w = DatasetWriter(tmp_path / "a", c)
    with pytest.raises(TetherError, match=r"observation has shape \(5,\); expected \(6,\)"):
        w.add_frame(np.zeros(5), np.zeros(4))
    with pytest.raises(TetherError, match="unknown \\['foo'\\]"):
        w.add_frame(np.zeros(6), np.zeros(4), foo=1)
    w.add_frame(np.zeros(6), np.zeros(4), done=True)
    with pytest.raises(TetherError, match="call end_episode first"):
        w.add_frame(np.zeros(6), np.zeros(4))
    w.close()
    with pytest.raises(TetherError, match="already exists"):
        DatasetWriter(tmp_path / "a", c)
    with pytest.raises(TetherError, match="meta/info.json is missing"):
        Dataset(tmp_path / "nothing")


def test_video_stream_roundtrip(tmp_path: Path) -> None:
    c = quad_contract()
    key = "observation.images.front"
    rng = np.random.default_rng(0)
    frames = []
    with DatasetWriter(tmp_path / "v", c, video_keys=[key]) as w:
        for e in range(2):
            for t in range(10 + e):
                img = np.zeros((32, 48, 3), np.uint8)
                img[:, : 4 * (t + 1)] = (200, 60, 20)  # a bar that grows: frames are distinguishable
                img += rng.integers(0, 3, img.shape, dtype=np.uint8)
                frames.append(img)
                w.add_frame(np.zeros(6), np.zeros(4), images={key: img})
            w.end_episode()
    ds = Dataset(tmp_path / "v")
    assert ds.info["features"][key]["shape"] == [32, 48, 3] and ds.video_keys == [key]
    v1 = ds.video(key, 1)
    assert v1.shape == (11, 32, 48, 3)
    err = np.abs(v1.astype(int) - np.stack(frames[10:]).astype(int)).mean()
    assert err < 4.0  # lossy H.264 at crf 18, but the right frames in the right order
    def dist(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a.astype(int) - b.astype(int)).mean())

    assert dist(v1[3], frames[13]) < dist(v1[3], frames[15])
    assert len(ds.stats[key]["mean"]) == 3


CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_data_dataset import quad_contract, obs_of, act_of
    from tether.data.dataset import DatasetWriter
    w = DatasetWriter({root!r}, quad_contract(), video_keys=["observation.images.cam"])
    i = 0
    for e in range(100):
        for t in range(80):
            img = np.full((16, 16, 3), (i * 3) % 250, np.uint8)
            w.add_frame(obs_of(i), act_of(i), reward=1.0, images={{"observation.images.cam": img}})
            i += 1
            print(i, flush=True)
            time.sleep(0.002)
        w.end_episode(success=True, final_obs=obs_of(i))
    """
)


def test_sigkill_mid_recording_loses_at_most_one_second(tmp_path: Path) -> None:
    root = tmp_path / "crash"
    script = CHILD.format(tests=str(Path(__file__).parent), root=str(root))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    reported = 0
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            reported = int(line)
            if reported >= 80 * 2 + 55:  # two finished episodes and 55 frames (> 1 s) into the third
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert list(root.glob("data/chunk-000/.file-000.parts/part-*.parquet")), "the writer never flushed a part"

    ds = Dataset(root)
    assert ds.recovered and any("rebuilt from data" in n for n in ds.notes)
    n = len(ds)
    assert reported - FPS <= n  # at most one second (fps frames) lost
    np.testing.assert_array_equal(ds.frames["index"], np.arange(n))
    np.testing.assert_array_equal(ds.observations, np.stack([obs_of(i) for i in range(n)]))
    np.testing.assert_array_equal(ds.actions, np.stack([act_of(i) for i in range(n)]).astype(np.float32))
    assert [e.complete for e in ds.episodes] == [True, True, False][: ds.num_episodes]
    assert ds.num_episodes == 3 and ds.episodes[2].length == n - 160
    assert [e.success for e in ds.episodes[:2]] == [True, True]
    # the recovered tail has no known successor, so its last frame is not a transition
    assert len(ds.to_transitions()["obs"]) == 80 + 80 + (n - 160 - 1)
    # the two finished episodes' videos decode fully
    assert ds.video("observation.images.cam", 1).shape[0] == 80
    assert ds.stats["observation.state"]["count"] == [n]

    fixed = repair(root)
    assert not fixed.recovered and not list(root.glob("data/chunk-000/.file-*"))
    np.testing.assert_array_equal(fixed.observations, ds.observations)
    assert pq.read_table(root / "data/chunk-000/file-000.parquet").column("next.done").to_pylist()[-1] is True
    # the repaired dataset accepts more episodes, numbered after the recovered ones
    with DatasetWriter(root, quad_contract(), video_keys=["observation.images.cam"], append=True) as w:
        for t in range(5):
            img = np.zeros((16, 16, 3), np.uint8)
            w.add_frame(obs_of(n + t), act_of(n + t), images={"observation.images.cam": img})
        w.end_episode()
    more = Dataset(root)
    assert more.num_episodes == 4 and len(more) == n + 5 and not more.recovered
    np.testing.assert_array_equal(more.frames["index"], np.arange(n + 5))
    assert more.episodes[3].data_file == (0, 1)


def _mutated(tmp: Path, name: str, data: Any = None, episodes: Any = None) -> Path:
    """A small finished dataset whose data table and/or episode index are rewritten by the given functions."""
    import pyarrow as pa  # noqa: F401  (the functions below use it through pq tables)

    root = tmp / name
    with DatasetWriter(root, quad_contract()) as w:
        for e in range(2):
            for t in range(5):
                w.add_frame(obs_of(10 * e + t), act_of(10 * e + t), reward=float(t))
            w.end_episode(success=True, final_obs=obs_of(100 + e))
    for fn, rel in ((data, "data/chunk-000/file-000.parquet"), (episodes, "meta/episodes/chunk-000/file-000.parquet")):
        if fn is not None:
            pq.write_table(fn(pq.read_table(root / rel)), root / rel)
    return root


def _set(table: Any, name: str, values: list, typ: Any = None) -> Any:
    import pyarrow as pa

    i = table.schema.get_field_index(name)
    return table.set_column(i, name, pa.array(values, type=typ if typ is not None else table.schema.field(name).type))


def _nan_at(table: Any, name: str, row: int) -> Any:
    rows = table.column(name).to_pylist()
    rows[row] = [float("nan")] * len(rows[row])
    return _set(table, name, rows)


def test_malformed_data_files_are_named_before_anything_reads_them(tmp_path: Path, capsys) -> None:
    """NaN/inf, wrong widths, text or missing standard columns, and a malformed episode index: `tether wm fit`
    (and every Dataset reader) refuses them in one line, exit 2, nothing written."""
    import pyarrow as pa

    from tether.cli import main

    cases = {
        "nan action": (_mutated(tmp_path, "a", data=lambda t: _nan_at(t, "action", 3)), "'action' holds NaN"),
        "inf state": (_mutated(tmp_path, "b", data=lambda t: _nan_at(t, "observation.state", 1)),
                      "'observation.state' holds NaN"),
        "action 2 wide": (_mutated(tmp_path, "c", data=lambda t: _set(
            t, "action", [r[:2] for r in t.column("action").to_pylist()], pa.list_(pa.float32(), 2))),
            "'action' has rows of 2 values; expected 4"),
        "text state": (_mutated(tmp_path, "d", data=lambda t: _set(
            t, "observation.state", [str(r) for r in t.column("observation.state").to_pylist()], pa.string())),
            "'observation.state' holds object values"),
        "no action": (_mutated(tmp_path, "e", data=lambda t: t.drop(["action"])), "'action' is missing"),
        "no index": (_mutated(tmp_path, "f", data=lambda t: t.drop(["index"])), "'index' is missing"),
        "negative episode": (_mutated(tmp_path, "g", data=lambda t: _set(
            t, "episode_index", [-1] * t.num_rows)), "'episode_index' is not whole numbers >= 0"),
        "episode index null": (_mutated(tmp_path, "h", episodes=lambda t: _set(t, "episode_index", [None, 1])),
                               "episode_index is None"),
        "length text": (_mutated(tmp_path, "i", episodes=lambda t: _set(t, "length", ["x", "y"], pa.string())),
                        "length is 'x'"),
        "final obs 2 wide": (_mutated(tmp_path, "j", episodes=lambda t: _set(
            t, "final_observation", [[1.0, 2.0]] * 2)), "final_observation has 2 numbers; expected 6"),
    }
    torn = _mutated(tmp_path, "k")
    data_file = torn / "data/chunk-000/file-000.parquet"
    data_file.write_bytes(data_file.read_bytes()[:100])
    cases["torn parquet"] = (torn, "not a readable Parquet file")
    failures = []
    for name, (root, text) in cases.items():
        out = tmp_path / f"wm-{root.name}"
        rc = main(["wm", "fit", str(root), "--members", "2", "--elites", "1", "--updates", "2", "--hidden", "8",
                   "--out", str(out)])
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        if rc != 2 or len(err) != 1 or text not in err[0] or "expected" not in err[0] or out.exists():
            failures.append(f"{name}: exit {rc}, {err[-3:]}, wrote {out.exists()}")
    assert not failures, "\n".join(failures)
