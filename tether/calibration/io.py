"""File formats of the calibrators: ROS camera_info YAML, JSON reports, array logs and hand-eye samples.

Array logs (latency, system identification) are read through a suffix -> loader table so the dataset and
rosbag2 readers can plug in their own formats without this package importing them (``register_loader``).
Built in: ``.npz`` (numpy, read with allow_pickle=False, so loading never runs code) and ``.json`` (an object
of equal-length arrays).

Hand-eye samples (JSON):
    {"setup": "eye_in_hand" | "eye_to_hand", "parent_frame": "...", "child_frame": "...",
     "samples": [{"robot": {"xyz": [x, y, z], "quaternion_wxyz": [w, x, y, z]},       # T_base_gripper
                  "target": {"xyz": [...], "quaternion_wxyz": [...]}}, ...]}        # T_camera_board
or, to detect the board in images, each sample has "image": "path.png" instead of "target", and the top level
has "camera": "camera.yaml" (camera_info YAML) and "board": {BoardSpec fields}. Relative paths are relative to
the samples file. NPZ: arrays ``robot_poses`` and ``target_poses`` of shape (N, 4, 4).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tether.errors import TetherError

ArrayLoader = Callable[[Path], dict[str, np.ndarray]]


def write_yaml(path: str | Path, data: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None))
    return path


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise TetherError(f"YAML file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise TetherError(f"{str(path)!r} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise TetherError(f"{str(path)!r} holds {type(data).__name__}; expected a YAML mapping")
    return data


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def write_json(path: str | Path, data: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(data), indent=2) + "\n")
    return path


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """A JSON file read bounded (size and nesting, tether.validation): a path the user typed may be a link."""
    from tether.validation import read_json as read_bounded

    return read_bounded(path, what, follow_link=True)


# ---------------------------------------------------------------------- array logs
def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            out = {k: np.asarray(f[k]) for k in f.files}
    except (ValueError, OSError, EOFError) as exc:
        raise TetherError(f"{str(path)!r} is not a readable .npz of plain arrays ({exc})") from None
    return out


def _load_json_arrays(path: Path) -> dict[str, np.ndarray]:
    data = read_json(path, "log")
    if not isinstance(data, dict):
        raise TetherError(f"{str(path)!r} holds {type(data).__name__}; expected an object of arrays")
    out = {}
    for k, v in data.items():
        if isinstance(v, (list, int, float)):
            try:
                out[k] = np.asarray(v, dtype=float)
            except (TypeError, ValueError):
                raise TetherError(f"{str(path)!r} key {k!r} is not numeric; expected a (nested) list of numbers") from None
        else:
            out[k] = np.asarray(v)  # metadata beside the arrays; require() refuses it where a number is needed
    return out


_LOADERS: dict[str, ArrayLoader] = {".npz": _load_npz, ".json": _load_json_arrays}


def register_loader(suffix: str, loader: ArrayLoader) -> None:
    """Let another module (dataset, rosbag2) provide logs as a name -> array dict for a file suffix."""
    _LOADERS[suffix.lower()] = loader


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise TetherError(f"log {str(path)!r} does not exist; expected a {'/'.join(sorted(_LOADERS))} file")
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        raise TetherError(f"log {str(path)!r} has an unknown format; expected one of {', '.join(sorted(_LOADERS))}")
    return loader(path)


def require(arrays: dict[str, np.ndarray], keys: list[str], what: str, optional: Sequence[str] = ()) -> None:
    """``keys`` present; they and the ``optional`` keys present hold numbers (not text or objects)."""
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise TetherError(f"{what} lacks {missing}; it has {sorted(arrays)}")
    for k in (*keys, *optional):
        if k in arrays and np.asarray(arrays[k]).dtype.kind not in "biuf":
            raise TetherError(f"{what}: {k!r} holds {np.asarray(arrays[k]).dtype} values; expected numbers")


# ---------------------------------------------------------------------- hand-eye samples
def _pose(d: Any, where: str) -> np.ndarray:
    from tether.calibration.geometry import pose_from_xyz_quat

    try:
        return pose_from_xyz_quat(d["xyz"], d["quaternion_wxyz"])
    except (KeyError, TypeError, ValueError) as exc:
        raise TetherError(f"{where} is not a pose ({exc}); expected {{'xyz': [3], 'quaternion_wxyz': [4]}}") from None


def _inside(samples_file: Path, rel: Any, what: str) -> Path:
    """A path named in a samples file: relative, below the file's folder (a file never makes us read elsewhere),
    not a link."""
    from tether.validation import check_regular_file

    parts = Path(rel).parts if isinstance(rel, str) else ()
    if not isinstance(rel, str) or not parts or Path(rel).is_absolute() or ".." in parts:
        raise TetherError(f"samples file {str(samples_file)!r}: {what} is {rel!r}; expected a path relative to "
                          "the samples file's folder, without '..'")
    return check_regular_file(samples_file.parent / rel, f"samples file {str(samples_file)!r}: {what}")


def load_hand_eye_samples(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(robot_poses T_base_gripper, target_poses T_camera_board, metadata) from a samples file."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        arrays = load_arrays(path)
        require(arrays, ["robot_poses", "target_poses"], f"samples file {str(path)!r}")
        return arrays["robot_poses"].astype(float), arrays["target_poses"].astype(float), {}
    data = read_json(path, "samples file")
    if not isinstance(data, dict) or not isinstance(data.get("samples"), list):
        raise TetherError(f"samples file {str(path)!r} has no 'samples' list; see tether.calibration.io for the format")
    samples = data["samples"]
    for i, s in enumerate(samples):
        if not isinstance(s, dict):
            raise TetherError(f"samples file {str(path)!r}: sample {i} is a {type(s).__name__}; expected an object "
                              "with 'robot' and 'target' (or 'image')")
    if not samples:
        raise TetherError(f"samples file {str(path)!r} has an empty 'samples' list; expected paired robot/board poses")
    meta = {k: v for k, v in data.items() if k != "samples"}
    robot = np.array([_pose(s.get("robot"), f"sample {i} 'robot'") for i, s in enumerate(samples)])
    if all("target" in s for s in samples):
        target = np.array([_pose(s["target"], f"sample {i} 'target'") for i, s in enumerate(samples)])
        return robot, target, meta
    if not all("image" in s for s in samples):
        raise TetherError(f"samples file {str(path)!r}: every sample needs 'target' (a pose) or 'image' (a path)")
    from tether.calibration.boards import BoardSpec, detect, load_image
    from tether.calibration.camera import board_pose, camera_from_ros_dict

    if "camera" not in data or "board" not in data:
        raise TetherError(f"samples file {str(path)!r} uses images; expected top-level 'camera' (YAML path) and 'board'")
    images = [_inside(path, s["image"], f"sample {i} 'image'") for i, s in enumerate(samples)]  # all before work
    K, D, _ = camera_from_ros_dict(read_yaml(_inside(path, data["camera"], "'camera'")))
    board = BoardSpec.from_dict(data["board"])
    keep_robot, target, missing = [], [], []
    for i, s in enumerate(samples):
        det = detect(board, load_image(images[i]), name=s["image"])
        if det is None:
            missing.append(s["image"])
            continue
        keep_robot.append(robot[i])
        target.append(board_pose(det, K, D)[0])
    if not target:
        raise TetherError(f"no {board.kind} board found in any of the {len(samples)} sample images")
    meta["images_without_board"] = missing
    return np.array(keep_robot), np.array(target), meta
