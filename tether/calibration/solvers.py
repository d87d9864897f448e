"""Adapters from Tether's (N, 4, 4) pose stacks to OpenCV's hand-eye solvers (cv2.calibrateHandEye and
cv2.calibrateRobotWorldHandEye); the solving itself is OpenCV's.

Why a module: OpenCV takes separate lists of rotations and translations and names its frames in its own way;
keeping that translation in one place lets ``handeye`` speak in the B_i = X^-1 H_i Z model only.

Conventions match OpenCV: ``Hg`` are gripper->base poses (T_base_gripper), ``Hc`` target->camera poses
(T_camera_target); ``hand_eye`` returns camera->gripper (A X = X B). ``robot_world_hand_eye`` works on
B_i = P H_i Q with P = gripper->camera, Q = world(board)->base, H_i = base->gripper.

The opencv-contrib 5.0 wheels declare both functions without Python bindings (opencv/opencv#29565), hence the
``<5`` pin; on such a build the calls below fail with a one-line error saying so.
"""

from __future__ import annotations

import cv2
import numpy as np

from tether.calibration.geometry import invert, make_pose
from tether.errors import TetherError

HAND_EYE_FLAGS = {
    "tsai": cv2.CALIB_HAND_EYE_TSAI,
    "park": cv2.CALIB_HAND_EYE_PARK,
    "horaud": cv2.CALIB_HAND_EYE_HORAUD,
    "andreff": cv2.CALIB_HAND_EYE_ANDREFF,
    "daniilidis": cv2.CALIB_HAND_EYE_DANIILIDIS,
}
ROBOT_WORLD_FLAGS = {"shah": cv2.CALIB_ROBOT_WORLD_HAND_EYE_SHAH, "li": cv2.CALIB_ROBOT_WORLD_HAND_EYE_LI}


def _require(name: str) -> None:
    if not hasattr(cv2, name):
        raise TetherError(
            f"cv2 {cv2.__version__} has no Python binding for {name} (opencv/opencv#29565); "
            "expected opencv-contrib-python-headless>=4.9,<5"
        )


def _split(T: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    T = np.asarray(T, dtype=np.float64)
    return [np.ascontiguousarray(t[:3, :3]) for t in T], [np.ascontiguousarray(t[:3, 3:4]) for t in T]


def hand_eye(Hg: np.ndarray, Hc: np.ndarray, method: str) -> np.ndarray:
    """camera->gripper (4x4) from gripper->base and target->camera poses (cv2.calibrateHandEye)."""
    if method not in HAND_EYE_FLAGS:
        raise TetherError(f"unknown hand-eye method {method!r}; expected one of {', '.join(HAND_EYE_FLAGS)}")
    _require("calibrateHandEye")
    R_g, t_g = _split(Hg)
    R_c, t_c = _split(Hc)
    R, t = cv2.calibrateHandEye(R_g, t_g, R_c, t_c, method=HAND_EYE_FLAGS[method])
    return make_pose(np.asarray(R), np.asarray(t).ravel())


def robot_world_hand_eye(H: np.ndarray, B: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(P = gripper->camera, Q = board->base) from B_i = P H_i Q (cv2.calibrateRobotWorldHandEye)."""
    if method not in ROBOT_WORLD_FLAGS:
        raise TetherError(f"unknown robot-world method {method!r}; expected one of {', '.join(ROBOT_WORLD_FLAGS)}")
    _require("calibrateRobotWorldHandEye")
    # OpenCV: world2cam (= B_i, board->camera) and base2gripper (= H_i); returns base2world and gripper2cam.
    R_w2c, t_w2c = _split(B)
    R_b2g, t_b2g = _split(H)
    R_b2w, t_b2w, R_g2c, t_g2c = cv2.calibrateRobotWorldHandEye(
        R_w2c, t_w2c, R_b2g, t_b2g, method=ROBOT_WORLD_FLAGS[method]
    )
    P = make_pose(np.asarray(R_g2c), np.asarray(t_g2c).ravel())
    return P, invert(make_pose(np.asarray(R_b2w), np.asarray(t_b2w).ravel()))
