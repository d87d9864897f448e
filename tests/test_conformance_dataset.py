"""Datasets as LeRobot's own readers see them: every video frame decodes (with PyAV, LeRobot's decoder library)
at exactly k / fps, and stats.json has the quantiles LeRobot's QUANTILES normalisation needs, with image
``count`` in frames."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from tether.contract import Field, IOContract
from tether.data.dataset import Dataset, DatasetWriter
from tether.data.stats import QUANTILE_KEYS, QUANTILES, RunningStats
from tether.data.video import read_video, trim_to_complete

CAM = "observation.images.front"
LEROBOT_TOLERANCE_S = 1e-4  # LeRobotDataset's default tolerance_s


def contract(rate: float) -> IOContract:
    return IOContract(
        robot="arm", task="reach",
        observations=(Field.make("joint_pos", 3, "rad"),),
        actions=(Field.make("joint_pos_target", 2, "rad", low=-1.0, high=1.0),),
        control_mode="joint_position", rate_hz=rate,
    )


def frame(k: int) -> np.ndarray:
    """Frame k: a bar whose width encodes k, so the decoded frame can be told from its neighbours."""
    img = np.zeros((32, 48, 3), np.uint8)
    img[:, : 2 + (k % 23) * 2] = (220, 90, 30)
    img[: 2 + (k % 13) * 2, :, 1] = 200
    return img


def write(root: Path, rate: float, lengths: list[int]) -> list[np.ndarray]:
    frames = []
    rng = np.random.default_rng(0)
    with DatasetWriter(root, contract(rate), video_keys=[CAM]) as w:
        k = 0
        for n in lengths:
            for _ in range(n):
                img = frame(k)
                frames.append(img)
                w.add_frame(rng.normal(size=3), rng.uniform(-1, 1, 2), reward=rng.normal(), images={CAM: img})
                k += 1
            w.end_episode()
    return frames


def decode_with_pyav(path: Path) -> tuple[list[Fraction], list[np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        out = [(Fraction(f.pts) * stream.time_base, f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    return [t for t, _ in out], [img for _, img in out]


def closest(img: np.ndarray, candidates: list[np.ndarray]) -> int:
    return int(np.argmin([np.abs(img.astype(int) - c.astype(int)).mean() for c in candidates]))


@pytest.mark.parametrize("rate", [10.0, 20.0, 29.97, 30.0, 50.0, 60.0, 100.0])
def test_every_video_frame_decodes_at_k_over_fps(tmp_path: Path, rate: float) -> None:
    lengths = [13, 26]
    frames = write(tmp_path / "ds", rate, lengths)
    ds = Dataset(tmp_path / "ds")
    info = ds.info["features"][CAM]["info"]
    assert info["video.codec"] == "h264" and info["video.pix_fmt"] == "yuv420p"
    rows = pq.read_table(tmp_path / "ds/meta/episodes/chunk-000/file-000.parquet").to_pylist()
    start = 0
    for e, n in enumerate(lengths):
        row = rows[e]
        path = tmp_path / "ds" / ds.info["video_path"].format(
            video_key=CAM, chunk_index=row[f"videos/{CAM}/chunk_index"], file_index=row[f"videos/{CAM}/file_index"])
        pts, decoded = decode_with_pyav(path)
        assert len(pts) == n
        t0 = row[f"videos/{CAM}/from_timestamp"]
        assert row[f"videos/{CAM}/to_timestamp"] == pytest.approx(t0 + n / rate)
        # what LeRobot queries: from_timestamp + the frame's timestamp column; it must hit a frame within tolerance
        times = ds.episode(e)["timestamp"].astype(np.float64)
        for k, t in enumerate(pts):
            assert abs(float(t) - k / rate) < 1e-6, (k, float(t), k / rate)
            assert abs(float(t) - (t0 + times[k])) < LEROBOT_TOLERANCE_S
        # and the frame there is the frame that was written at step k
        assert [closest(img, frames[start:start + n]) for img in decoded] == list(range(n))
        start += n


def test_seek_then_decode_finds_the_frame_at_its_timestamp(tmp_path: Path) -> None:
    """LeRobot's PyAV backend seeks to the keyframe before the query and decodes forward to it."""
    rate = 30.0
    frames = write(tmp_path / "ds", rate, [95])
    path = next((tmp_path / "ds" / "videos").rglob("*.mp4"))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for k in (0, 31, 47, 94):
            container.seek(int(Fraction(k, 30) / stream.time_base), stream=stream, backward=True, any_frame=False)
            got = None
            for f in container.decode(stream):
                if abs(float(f.pts * stream.time_base) - k / rate) < LEROBOT_TOLERANCE_S:
                    got = f.to_ndarray(format="rgb24")
                    break
                assert float(f.pts * stream.time_base) < k / rate, f"seek to frame {k} skipped past it"
            assert got is not None, f"no frame at {k / rate} s"
            assert closest(got, frames) == k


@pytest.mark.parametrize("into", [8, 100, 600])  # into the moof header, its sample table, its media data
def test_a_video_cut_by_a_crash_keeps_its_timestamps(tmp_path: Path, into: int) -> None:
    """Fragmented MP4: a file whose writer died inside its third fragment. Tether's reader decodes the two whole
    fragments; after ``trim_to_complete`` (what ``repair`` runs) PyAV opens it and every frame is at k / fps."""
    rate = 20.0
    frames = write(tmp_path / "ds", rate, [60])
    path = next((tmp_path / "ds" / "videos").rglob("*.mp4"))
    raw = path.read_bytes()
    moofs = [i - 4 for i in range(len(raw)) if raw[i:i + 4] == b"moof"]
    assert len(moofs) >= 3  # one fragment per keyframe (one per second)
    path.write_bytes(raw[: moofs[2] + into])
    got = read_video(path)
    assert len(got) == 2 * int(rate)
    assert [closest(img, frames) for img in got] == list(range(len(got)))
    assert trim_to_complete(path) == into and trim_to_complete(path) == 0
    pts, _ = decode_with_pyav(path)
    assert len(pts) == 2 * int(rate)
    assert all(abs(float(t) - k / rate) < 1e-9 for k, t in enumerate(pts))


def test_stats_have_lerobot_quantiles_and_image_count_in_frames(tmp_path: Path) -> None:
    lengths = [40, 25, 35]
    write(tmp_path / "ds", 20.0, lengths)
    ds = Dataset(tmp_path / "ds")
    stats = json.loads((tmp_path / "ds/meta/stats.json").read_text())
    assert QUANTILE_KEYS == ("q01", "q10", "q50", "q90", "q99")
    for key in ("observation.state", "action", "next.reward"):
        s = stats[key]
        assert set(s) == {"min", "max", "mean", "std", "count", *QUANTILE_KEYS}
        data = ds.frames[key].astype(np.float64).reshape(len(ds), -1)
        exact = np.quantile(data, QUANTILES, axis=0, method="inverted_cdf")  # the histogram's definition
        span = data.max(0) - data.min(0)
        for i, q in enumerate(QUANTILE_KEYS):
            assert np.asarray(s[q]).shape == np.asarray(s["mean"]).shape
            # histogram quantiles: within a few of 5000 bins of the exact order statistic
            np.testing.assert_allclose(s[q], exact[i], rtol=0, atol=float(span.max()) * 2e-3 + 1e-12)
        assert np.all(np.diff([s[q] for q in QUANTILE_KEYS], axis=0) >= 0)  # quantiles are ordered
        assert s["count"] == [sum(lengths)]
    img = stats[CAM]
    assert img["count"] == [sum(lengths)]  # frames, as LeRobot counts, not pixels
    for q in ("mean", "std", *QUANTILE_KEYS):
        assert np.asarray(img[q]).shape == (3, 1, 1)
    assert 0.0 <= img["q01"][0][0][0] <= img["q99"][0][0][0] <= 1.0
    # per-episode stats in the episodes index carry the quantiles too (LeRobot aggregates from them)
    rows = pq.read_table(tmp_path / "ds/meta/episodes/chunk-000/file-000.parquet").to_pylist()
    ep1 = ds.episode(1)["observation.state"].astype(np.float64)
    median = np.quantile(ep1, 0.5, axis=0, method="inverted_cdf")
    np.testing.assert_allclose(rows[1]["stats/observation.state/q50"], median,
                               atol=float((ep1.max(0) - ep1.min(0)).max()) * 2e-3)
    assert rows[1]["stats/observation.state/count"] == [25]


def test_running_quantiles_merge_across_batches_and_growing_ranges() -> None:
    """Episodes merged into dataset stats: the histogram re-bins as the range grows and still lands within a
    few bins of numpy's quantiles; a broken merge (counts lost or misplaced) would miss by far more."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(size=(4000, 3)) * [1.0, 50.0, 1e-3], rng.exponential(3.0, size=(1000, 3))])
    rng.shuffle(x)
    total = RunningStats()
    for e in range(20):
        ep = RunningStats()
        for b in range(5):
            ep.update(x[e * 250 + b * 50: e * 250 + (b + 1) * 50])
        total.merge(ep)
    exact = np.quantile(x, QUANTILES, axis=0, method="inverted_cdf")
    span = x.max(0) - x.min(0)
    assert np.all(np.abs(total.quantiles() - exact) <= span * 2e-3)
    assert total.to_dict()["count"] == [5000]
    np.testing.assert_allclose(total.to_dict()["mean"], x.mean(0), rtol=1e-9)
