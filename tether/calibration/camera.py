"""Camera intrinsics from board detections, with bad-view rejection and a coverage report.

Why iterate: one blurred or mis-detected view can pull the focal length by percent while the overall RMS
still looks fine, so views whose own RMS reprojection error is far above the median are dropped and the
calibration is redone until none stands out. Why report coverage: distortion is only constrained where
corners were seen; a calibration from centre-only views extrapolates badly at the image edges. The result
writes the YAML that ROS ``camera_calibration_parsers`` reads (``camera_info_url``), so the same file feeds a
ROS camera driver and Tether's simulated camera.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tether.calibration.boards import BoardSpec, Detection
from tether.errors import TetherError

DISTORTION_MODELS = {"plumb_bob": 5, "rational_polynomial": 8}


@dataclass
class Coverage:
    """Which cells of a grid over the image contain at least one detected corner."""

    grid: tuple[int, int]  # (columns, rows)
    counts: np.ndarray  # (rows, columns) corner counts

    @property
    def fraction(self) -> float:
        return float((self.counts > 0).mean())

    def ascii(self) -> str:
        """One line per grid row: '#' many corners, '+' some, '.' none (quick look in a terminal)."""
        hi = max(1.0, float(np.percentile(self.counts[self.counts > 0], 50)) if (self.counts > 0).any() else 1.0)
        rows = []
        for r in self.counts:
            rows.append("".join("#" if c >= hi else "+" if c > 0 else "." for c in r))
        return "\n".join(rows)


def coverage(detections: Sequence[Detection], image_size: tuple[int, int], grid: tuple[int, int] = (8, 6)) -> Coverage:
    w, h = image_size
    counts = np.zeros((grid[1], grid[0]), dtype=int)
    for d in detections:
        cx = np.clip((d.image_points[:, 0] + 0.5) * grid[0] / w, 0, grid[0] - 1).astype(int)
        cy = np.clip((d.image_points[:, 1] + 0.5) * grid[1] / h, 0, grid[1] - 1).astype(int)
        np.add.at(counts, (cy, cx), 1)
    return Coverage(grid=grid, counts=counts)


@dataclass
class CameraCalibration:
    """Intrinsics plus the evidence for them (per-view errors, rejected views, coverage)."""

    camera_name: str
    image_size: tuple[int, int]  # (width, height)
    camera_matrix: np.ndarray  # 3x3
    distortion: np.ndarray  # (5,) plumb_bob or (8,) rational_polynomial
    distortion_model: str
    rms: float  # overall RMS reprojection error of the kept views, pixels
    per_view_rms: dict[str, float]  # kept views
    rejected: dict[str, str]  # view name -> reason
    coverage: Coverage
    std_intrinsics: dict[str, float] = field(default_factory=dict)  # 1-sigma of fx, fy, cx, cy from OpenCV
    board_poses: dict[str, np.ndarray] = field(default_factory=dict)  # view name -> T_camera_board (4x4)

    @property
    def fx(self) -> float:
        return float(self.camera_matrix[0, 0])

    @property
    def fy(self) -> float:
        return float(self.camera_matrix[1, 1])

    @property
    def cx(self) -> float:
        return float(self.camera_matrix[0, 2])

    @property
    def cy(self) -> float:
        return float(self.camera_matrix[1, 2])

    # ------------------------------------------------------------------ ROS camera_info YAML
    def to_ros_dict(self) -> dict[str, Any]:
        """The camera_calibration_parsers layout. P = [K | 0]: the unrectified monocular convention."""
        K = self.camera_matrix
        P = np.hstack([K, np.zeros((3, 1))])

        def mat(a: np.ndarray) -> dict[str, Any]:
            a = np.atleast_2d(a)
            return {"rows": int(a.shape[0]), "cols": int(a.shape[1]), "data": [float(v) for v in a.ravel()]}

        return {
            "image_width": int(self.image_size[0]),
            "image_height": int(self.image_size[1]),
            "camera_name": self.camera_name,
            "camera_matrix": mat(K),
            "distortion_model": self.distortion_model,
            "distortion_coefficients": mat(self.distortion.reshape(1, -1)),
            "rectification_matrix": mat(np.eye(3)),
            "projection_matrix": mat(P),
        }

    def report(self) -> dict[str, Any]:
        """Everything the YAML cannot hold: errors, rejections, coverage, uncertainty."""
        return {
            "camera_name": self.camera_name,
            "rms_px": self.rms,
            "per_view_rms_px": self.per_view_rms,
            "rejected_views": self.rejected,
            "coverage_fraction": self.coverage.fraction,
            "coverage_grid": self.coverage.counts.tolist(),
            "std_intrinsics": self.std_intrinsics,
            "fx": self.fx,
            "fy": self.fy,
            "cx": self.cx,
            "cy": self.cy,
            "distortion_model": self.distortion_model,
            "distortion": [float(v) for v in self.distortion],
        }

    def summary(self) -> str:
        s = self.std_intrinsics
        lines = [
            f"camera {self.camera_name!r} {self.image_size[0]}x{self.image_size[1]} ({self.distortion_model}): "
            f"fx={self.fx:.2f}±{s.get('fx', 0):.2f} fy={self.fy:.2f}±{s.get('fy', 0):.2f} "
            f"cx={self.cx:.2f}±{s.get('cx', 0):.2f} cy={self.cy:.2f}±{s.get('cy', 0):.2f} px",
            f"RMS reprojection {self.rms:.3f} px over {len(self.per_view_rms)} views; "
            f"{len(self.rejected)} rejected; coverage {100 * self.coverage.fraction:.0f}% of "
            f"{self.coverage.grid[0]}x{self.coverage.grid[1]} cells",
        ]
        lines += [f"  rejected {k}: {v}" for k, v in self.rejected.items()]
        lines.append(self.coverage.ascii())
        return "\n".join(lines)


def camera_from_ros_dict(d: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(K, distortion, (width, height)) from a camera_info YAML dict."""
    try:
        K = np.asarray(d["camera_matrix"]["data"], dtype=float).reshape(3, 3)
        D = np.asarray(d["distortion_coefficients"]["data"], dtype=float).ravel()
        size = (int(d["image_width"]), int(d["image_height"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise TetherError(f"camera_info YAML is malformed ({exc}); expected camera_matrix/distortion_coefficients/image_width/image_height") from None
    return K, D, size


def _view_rms(det: Detection, K: np.ndarray, D: np.ndarray, rvec: np.ndarray, tvec: np.ndarray) -> float:
    proj, _ = cv2.projectPoints(det.object_points.astype(np.float32), rvec, tvec, K, D)
    err = proj.reshape(-1, 2) - det.image_points
    return float(np.sqrt(np.mean(np.sum(err**2, axis=1))))


def _calibrate_once(dets: Sequence[Detection], size: tuple[int, int], model: str, K0: np.ndarray | None):
    obj = [d.object_points.astype(np.float32) for d in dets]
    img = [d.image_points.astype(np.float32).reshape(-1, 1, 2) for d in dets]
    flags = cv2.CALIB_RATIONAL_MODEL if model == "rational_polynomial" else 0
    if K0 is not None:
        flags |= cv2.CALIB_USE_INTRINSIC_GUESS
    K_init = None if K0 is None else K0.copy()
    out = cv2.calibrateCameraExtended(obj, img, size, K_init, None, flags=flags)
    rms, K, D, rvecs, tvecs, std_intr = out[0], out[1], out[2], out[3], out[4], out[5]
    return float(rms), K, D.ravel()[: DISTORTION_MODELS[model]], rvecs, tvecs, np.asarray(std_intr).ravel()


def calibrate_camera(
    detections: Sequence[Detection],
    *,
    model: str = "plumb_bob",
    camera_name: str = "camera",
    outlier_factor: float = 3.0,
    outlier_floor_px: float = 0.5,
    min_views: int = 5,
    coverage_grid: tuple[int, int] = (8, 6),
) -> CameraCalibration:
    """Calibrate from detections; drop views whose RMS exceeds max(outlier_factor * median, floor).

    The floor keeps a near-perfect data set (median 0.05 px) from shedding good views over noise; views
    are dropped in rounds (worst first, all above the threshold at once) while at least ``min_views`` remain.
    """
    if model not in DISTORTION_MODELS:
        raise TetherError(f"unknown distortion model {model!r}; expected one of {', '.join(DISTORTION_MODELS)}")
    dets = list(detections)
    if len(dets) < min_views:
        raise TetherError(
            f"board found in {len(dets)} views; expected at least {min_views} views (tilted, covering the image)"
        )
    sizes = {d.image_size for d in dets}
    if len(sizes) != 1:
        raise TetherError(f"detections come from images of sizes {sorted(sizes)}; expected one resolution")
    size = sizes.pop()
    names = [d.name or f"view{i}" for i, d in enumerate(dets)]
    if len(set(names)) != len(names):
        names = [f"{n}#{i}" for i, n in enumerate(names)]
    keep = list(range(len(dets)))
    rejected: dict[str, str] = {}
    K0 = None
    while True:
        rms, K, D, rvecs, tvecs, std_intr = _calibrate_once([dets[i] for i in keep], size, model, K0)
        per_view = [_view_rms(dets[i], K, D, r, t) for i, r, t in zip(keep, rvecs, tvecs)]
        med = float(np.median(per_view))
        thresh = max(outlier_factor * med, outlier_floor_px)
        bad = [j for j, e in enumerate(per_view) if e > thresh]
        if not bad or len(keep) - len(bad) < min_views:
            break
        for j in bad:
            rejected[names[keep[j]]] = f"RMS {per_view[j]:.2f} px > {thresh:.2f} px ({outlier_factor:g}x median {med:.2f} px)"
        keep = [i for j, i in enumerate(keep) if j not in set(bad)]
        K0 = K
    poses = {}
    for i, r, t in zip(keep, rvecs, tvecs):
        T = np.eye(4)
        T[:3, :3] = cv2.Rodrigues(r)[0]
        T[:3, 3] = np.asarray(t).ravel()
        poses[names[i]] = T
    return CameraCalibration(
        camera_name=camera_name,
        image_size=size,
        camera_matrix=K,
        distortion=D,
        distortion_model=model,
        rms=rms,
        per_view_rms={names[i]: e for i, e in zip(keep, per_view)},
        rejected=rejected,
        coverage=coverage([dets[i] for i in keep], size, coverage_grid),
        std_intrinsics={k: float(v) for k, v in zip(("fx", "fy", "cx", "cy"), std_intr[:4])},
        board_poses=poses,
    )


def board_pose(det: Detection, K: np.ndarray, D: np.ndarray) -> tuple[np.ndarray, float]:
    """T_camera_board from one detection with known intrinsics, and its RMS reprojection error in pixels.

    IPPE is the planar-target solver (no ambiguity flip for well-spread corners); Levenberg-Marquardt then
    refines it on the reprojection error.
    """
    obj = det.object_points.astype(np.float64)
    img = det.image_points.astype(np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, img, K, D, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        raise TetherError(f"board pose could not be solved for view {det.name!r}")
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, K, D, rvec, tvec)
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(rvec)[0]
    T[:3, 3] = tvec.ravel()
    return T, _view_rms(det, K, D, rvec, tvec)


def calibrate_images(
    board: BoardSpec, images: Sequence[np.ndarray | str | Path], names: Sequence[str] | None = None, **kwargs: Any
) -> CameraCalibration:
    """Detect then calibrate; images where no board was found are listed as rejected."""
    from tether.calibration.boards import detect_all

    dets, missed = detect_all(board, images, names)
    calib = calibrate_camera(dets, **kwargs)
    for m in missed:
        calib.rejected[m] = "board not found"
    return calib
