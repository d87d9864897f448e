"""Frame conventions at the PX4 edge: NED world / FRD body (PX4) <-> ENU world / FLU body (REP-103, Tether).

Tether is ENU/FLU everywhere; PX4 is NED/FRD. The conversion lives here, once, so the quadrotor adapter and
the served PX4 robot cannot disagree. Both maps are their own inverse (each is a proper rotation by pi), which
the tests check, and quaternions are (w, x, y, z) Hamilton with ``q`` rotating body vectors into the world.
"""

from __future__ import annotations

import numpy as np

# World: x_enu = y_ned (east), y_enu = x_ned (north), z_enu = -z_ned (up). A rotation by pi about (1, 1, 0)/sqrt2.
NED_TO_ENU = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
# Body: forward stays, right -> left, down -> up. A rotation by pi about x.
FRD_TO_FLU = np.diag([1.0, -1.0, -1.0])

_S = np.sqrt(0.5)
Q_ENU_FROM_NED = np.array([0.0, _S, _S, 0.0])  # (w, x, y, z) of NED_TO_ENU
Q_FRD_FROM_FLU = np.array([0.0, 1.0, 0.0, 0.0])  # (w, x, y, z) of FRD_TO_FLU (its own inverse)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a*b of (w, x, y, z) quaternions (batched on leading dims)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def quat_to_rotmat(q: np.ndarray) -> np.ndarray:
    """(w, x, y, z) -> 3x3 rotation matrix; normalises first so a slightly-off quaternion from a wire is safe."""
    q = np.asarray(q, dtype=float)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(n < 1e-9):
        raise ValueError(f"quaternion {q.tolist()} has zero norm; expected a unit (w, x, y, z) quaternion")
    w, x, y, z = np.moveaxis(q / n, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def canonical_quat(q: np.ndarray) -> np.ndarray:
    """q and -q are the same rotation; pick w >= 0 so round trips compare equal."""
    q = np.asarray(q, dtype=float)
    return np.where(q[..., :1] < 0, -q, q)


def ned_to_enu(v: np.ndarray) -> np.ndarray:
    """A world-frame vector (position, velocity, acceleration) from NED to ENU."""
    v = np.asarray(v, dtype=float)
    return np.stack([v[..., 1], v[..., 0], -v[..., 2]], axis=-1)


enu_to_ned = ned_to_enu  # the same permutation both ways


def frd_to_flu(v: np.ndarray) -> np.ndarray:
    """A body-frame vector (angular rate, body velocity, thrust) from FRD to FLU."""
    v = np.asarray(v, dtype=float)
    return np.stack([v[..., 0], -v[..., 1], -v[..., 2]], axis=-1)


flu_to_frd = frd_to_flu


def quat_ned_frd_to_enu_flu(q_ned_frd: np.ndarray) -> np.ndarray:
    """PX4 attitude (FRD body -> NED world) to Tether attitude (FLU body -> ENU world), both (w, x, y, z).

    q_enu_flu = q_enu_ned * q_ned_frd * q_frd_flu.
    """
    return canonical_quat(quat_mul(quat_mul(Q_ENU_FROM_NED, q_ned_frd), Q_FRD_FROM_FLU))


def quat_enu_flu_to_ned_frd(q_enu_flu: np.ndarray) -> np.ndarray:
    """Inverse of :func:`quat_ned_frd_to_enu_flu` (both frame maps are self-inverse rotations by pi)."""
    return canonical_quat(quat_mul(quat_mul(Q_ENU_FROM_NED, q_enu_flu), Q_FRD_FROM_FLU))


def projected_gravity(q_world_body: np.ndarray) -> np.ndarray:
    """Unit gravity direction expressed in the body frame (ENU world, so gravity is -z)."""
    return quat_to_rotmat(q_world_body).swapaxes(-1, -2) @ np.array([0.0, 0.0, -1.0])


def xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    """ROS geometry_msgs order (x, y, z, w) to Tether order (w, x, y, z)."""
    q = np.asarray(q, dtype=float)
    return np.concatenate([q[..., 3:4], q[..., :3]], axis=-1)


def wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=float)
    return np.concatenate([q[..., 1:4], q[..., :1]], axis=-1)
