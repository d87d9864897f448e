"""Rigid-transform helpers shared by the calibrators.

Poses are 4x4 homogeneous matrices ``T_a_b`` that map points expressed in frame ``b`` into frame ``a``
(so ``T_base_gripper`` is the gripper's pose in the base frame). Quaternions are (w, x, y, z) as everywhere
inside Tether; only the ROS edge (``tf_static``) writes (x, y, z, w). Kept dependency-light (numpy + scipy)
so the solvers, the tests and the benchmark agree on one convention.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

# MuJoCo cameras look along -z with +y up; OpenCV (and ROS *_optical_frame) look along +z with +y down.
MUJOCO_FROM_OPTICAL = np.diag([1.0, -1.0, -1.0])


def make_pose(rotation: np.ndarray, translation: Sequence[float]) -> np.ndarray:
    """4x4 pose from a 3x3 rotation matrix (or rotation vector of length 3) and a translation."""
    rotation = np.asarray(rotation, dtype=float)
    if rotation.shape == (3,):
        rotation = Rotation.from_rotvec(rotation).as_matrix()
    T = np.eye(4)
    T[:3, :3] = rotation
    T[:3, 3] = np.asarray(translation, dtype=float).reshape(3)
    return T


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid transform (or a stack of them) without a general matrix inverse."""
    T = np.asarray(T, dtype=float)
    R = T[..., :3, :3]
    t = T[..., :3, 3]
    out = np.zeros_like(T)
    Rt = np.swapaxes(R, -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", Rt, t)
    out[..., 3, 3] = 1.0
    return out


def quat_wxyz_from_matrix(R: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) with w >= 0 so equal rotations print identically."""
    x, y, z, w = Rotation.from_matrix(np.asarray(R, dtype=float)[:3, :3]).as_quat()
    q = np.array([w, x, y, z])
    return -q if q[0] < 0 else q


def matrix_from_quat_wxyz(q: Sequence[float]) -> np.ndarray:
    w, x, y, z = (float(v) for v in q)
    n = np.sqrt(w * w + x * x + y * y + z * z)
    if not n > 0:
        raise ValueError(f"quaternion {list(q)} has zero norm; expected a unit quaternion (w, x, y, z)")
    return Rotation.from_quat([x / n, y / n, z / n, w / n]).as_matrix()


def pose_from_xyz_quat(xyz: Sequence[float], quat_wxyz: Sequence[float]) -> np.ndarray:
    return make_pose(matrix_from_quat_wxyz(quat_wxyz), xyz)


def rotation_angle(R: np.ndarray) -> np.ndarray:
    """Rotation angle(s) in radians of a rotation matrix (or stack), robust near 0 and pi."""
    R = np.asarray(R, dtype=float)[..., :3, :3]
    return np.linalg.norm(Rotation.from_matrix(R.reshape(-1, 3, 3)).as_rotvec(), axis=-1).reshape(R.shape[:-2])


def rotvec(R: np.ndarray) -> np.ndarray:
    R = np.asarray(R, dtype=float)[..., :3, :3]
    return Rotation.from_matrix(R.reshape(-1, 3, 3)).as_rotvec().reshape(*R.shape[:-2], 3)


def pose_error(T_est: np.ndarray, T_true: np.ndarray) -> tuple[float, float]:
    """(translation error in metres, rotation error in radians) between two poses."""
    dt = float(np.linalg.norm(T_est[:3, 3] - T_true[:3, 3]))
    dr = float(rotation_angle(T_est[:3, :3].T @ T_true[:3, :3]))
    return dt, dr


def mean_pose(Ts: np.ndarray) -> np.ndarray:
    """Chordal mean: average the matrices and project the rotation back onto SO(3)."""
    Ts = np.asarray(Ts, dtype=float)
    U, _, Vt = np.linalg.svd(Ts[:, :3, :3].mean(axis=0))
    R = U @ Vt
    if np.linalg.det(R) < 0:
        U[:, -1] *= -1
        R = U @ Vt
    return make_pose(R, Ts[:, :3, 3].mean(axis=0))


def look_at(eye: Sequence[float], target: Sequence[float], up: Sequence[float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """Pose of an OpenCV optical frame (z forward, y down) at ``eye`` looking at ``target``."""
    eye, target, up = (np.asarray(v, dtype=float) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:
        x = np.cross(z, [1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.cross(z, [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return make_pose(np.column_stack([x, y, z]), eye)
