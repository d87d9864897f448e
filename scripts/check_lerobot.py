"""Check that LeRobot itself loads a Tether dataset with video: metadata, stats with quantiles, frames indexed
by timestamp, and a DataLoader with ``delta_timestamps`` (LeRobot's history / action-chunk windows).

Why a script and not a test: every LeRobot release pins an older torch than Tether's (lerobot 0.4.x: torch < 2.11,
torchvision < 0.26, torchcodec < 0.11), and from PyPI that torch is the CUDA build, so lerobot cannot live in
Tether's own environment. Run it in a separate one, for example::

    python3 -m venv /tmp/lerobot-check
    /tmp/lerobot-check/bin/pip install "lerobot==0.4.4"          # brings its own torch, torchvision, torchcodec
    /tmp/lerobot-check/bin/pip install --no-deps -e .             # Tether's code (its deps below, if missing)
    /tmp/lerobot-check/bin/pip install pyarrow imageio-ffmpeg safetensors
    /tmp/lerobot-check/bin/python scripts/check_lerobot.py [--backend pyav|torchcodec] [--keep DIR]

Run on this project's CPU-only machines (2026-12-02): lerobot 0.4.4 installed with ``--no-deps`` next to the local
torch 2.13.0+cpu wheel, its dataset dependencies (datasets, huggingface-hub, draccus, av, accelerate, ...),
torchcodec 0.13.0 (CPU; FFmpeg 5.1 runtime libraries from Debian: libavcodec59 libavformat59 libavutil57
libswscale6 libswresample4 libavdevice59 libavfilter8), and a stand-in ``torchvision`` package on PYTHONPATH
(PyPI's torchvision is linked against CUDA torch and does not import next to CPU torch; LeRobot's dataset code only
imports it, and ``--backend torchcodec`` decodes without it). Result: all checks pass; with libx264 B-frames put
back into the writer the same run fails with LeRobot's FrameTimestampError, as issue 13 reported. LeRobot's
``pyav`` backend needs torchvision.io.VideoReader and was not run.

It writes a small dataset with one camera (frames whose content encodes their index), loads it with
``lerobot.datasets.lerobot_dataset.LeRobotDataset(repo_id, root=DIR)`` (local files only: nothing is downloaded),
and checks every frame LeRobot decodes against the frame Tether wrote, at LeRobot's default tolerance_s = 1e-4.
Exit code 0 when everything holds, 1 with the first failure named otherwise.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CAM = "observation.images.front"
FPS = 20
LENGTHS = (30, 24)


def frame(k: int) -> np.ndarray:
    """Frame k (H=48, W=64): a bar whose width and a band whose height encode k."""
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, : 2 + (k % 31) * 2] = (230, 80, 20)
    img[: 2 + (k % 23) * 2, :, 1] = 210
    return img


def write_dataset(root: Path) -> list[np.ndarray]:
    from tether.contract import Field, IOContract
    from tether.data.dataset import DatasetWriter

    contract = IOContract(
        robot="arm", task="reach", observations=(Field.make("joint_pos", 3, "rad"),),
        actions=(Field.make("joint_pos_target", 2, "rad", low=-1.0, high=1.0),),
        control_mode="joint_position", rate_hz=float(FPS),
    )
    rng = np.random.default_rng(0)
    frames = []
    with DatasetWriter(root, contract, video_keys=[CAM]) as w:
        k = 0
        for n in LENGTHS:
            for _ in range(n):
                frames.append(frame(k))
                w.add_frame(np.array([k, -k, 0.5 * k]), rng.uniform(-1, 1, 2), reward=float(k),
                            images={CAM: frames[-1]})
                k += 1
            w.end_episode(success=True)
    return frames


def closest(img_chw01, frames: list[np.ndarray]) -> int:
    img = (np.asarray(img_chw01).transpose(1, 2, 0) * 255.0).round()
    return int(np.argmin([np.abs(img - f.astype(np.float64)).mean() for f in frames]))


def check(root: Path, frames: list[np.ndarray], backend: str | None) -> None:
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("tether/check", root=root, video_backend=backend)
    print(f"loaded: {ds.num_episodes} episodes, {ds.num_frames} frames, fps {ds.fps}, video backend "
          f"{ds.video_backend}, cameras {ds.meta.video_keys}")
    assert ds.num_episodes == len(LENGTHS) and ds.num_frames == sum(LENGTHS), "episode/frame counts"
    stats = ds.meta.stats
    for key in ("observation.state", "action", CAM):
        missing = {"q01", "q10", "q50", "q90", "q99"} - set(stats[key])
        assert not missing, f"stats of {key} lack {sorted(missing)}"
    assert int(np.asarray(stats[CAM]["count"]).reshape(-1)[0]) == sum(LENGTHS), "image count is not in frames"

    # every frame, indexed one by one: LeRobot decodes it at its timestamp within tolerance_s = 1e-4
    for i in range(len(ds)):
        item = ds[i]
        got = closest(item[CAM], frames)
        assert got == i, f"item {i}: LeRobot decoded frame {got}"
        assert float(item["observation.state"][0]) == i
    print(f"indexed all {len(ds)} frames: each decodes to the frame written at that step")

    # a DataLoader with delta_timestamps: 2 past camera frames + now, a 4-step action chunk
    deltas = {CAM: [-2 / FPS, -1 / FPS, 0.0], "observation.state": [-1 / FPS, 0.0],
              "action": [k / FPS for k in range(4)]}
    ds = LeRobotDataset("tether/check", root=root, delta_timestamps=deltas, video_backend=backend)
    loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True, num_workers=0,
                                         generator=torch.Generator().manual_seed(0))
    seen = 0
    for batch in loader:
        assert tuple(batch[CAM].shape[1:]) == (3, 3, 48, 64), tuple(batch[CAM].shape)
        assert tuple(batch["action"].shape[1:]) == (4, 2)
        for b in range(batch[CAM].shape[0]):
            idx = int(batch["index"][b])
            ep_start = 0 if idx < LENGTHS[0] else LENGTHS[0]
            for j, dt in enumerate((-2, -1, 0)):
                want = max(idx + dt, ep_start)  # LeRobot pads at the episode start with the first frame
                got = closest(batch[CAM][b, j], frames)
                assert got == want, f"index {idx} delta {dt}: decoded frame {got}, expected {want}"
        seen += batch[CAM].shape[0]
    assert seen == sum(LENGTHS)
    print(f"DataLoader with delta_timestamps: {seen} samples, camera windows and action chunks as expected")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default=None, help="LeRobot video backend: torchcodec (its default) or pyav")
    ap.add_argument("--keep", type=Path, default=None, help="write the dataset here and keep it")
    args = ap.parse_args(argv)
    tmp = None
    root = args.keep
    if root is None:
        tmp = tempfile.mkdtemp(prefix="tether-lerobot-")
        root = Path(tmp) / "ds"
    try:
        frames = write_dataset(root)
        check(root, frames, args.backend)
    except AssertionError as exc:
        print(f"check_lerobot: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print("check_lerobot: LeRobot reads the Tether dataset")
    return 0


if __name__ == "__main__":
    sys.exit(main())
