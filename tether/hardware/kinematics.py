"""Franka Panda forward kinematics from the published DH table, for the arm adapter's ``ee_pos`` field.

A real ros2_control arm publishes joint states only; the policy also wants the end-effector position in
the base frame, so the adapter computes it. The parameters are Franka's published (Craig / modified DH)
table: each row is (a_{i-1}, d_i, alpha_{i-1}), and T_i = RotX(alpha) TransX(a) RotZ(theta) TransZ(d).
The flange sits 0.107 m along joint 7's z; ``ee_offset`` adds the tool (default 0.1034 m, the Franka Hand's
TCP between the fingertips), so ``panda_fk(zeros)`` is (0.088, 0, 0.926 - 0.1034) m.

The small damped-least-squares step (:func:`ee_delta_to_joint_targets`) lets an ``ee_delta_pose`` policy drive
a joint-position controller when the robot side has no Cartesian controller.
"""

from __future__ import annotations

import numpy as np

from tether.errors import TetherError

PANDA_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
# (a_{i-1} [m], d_i [m], alpha_{i-1} [rad]) for joints 1..7, then the flange (fixed, theta = 0)
PANDA_DH = np.array(
    [
        [0.0, 0.333, 0.0],
        [0.0, 0.0, -np.pi / 2],
        [0.0, 0.316, np.pi / 2],
        [0.0825, 0.0, np.pi / 2],
        [-0.0825, 0.384, -np.pi / 2],
        [0.0, 0.0, np.pi / 2],
        [0.088, 0.0, np.pi / 2],
    ]
)
PANDA_FLANGE_D = 0.107
PANDA_HAND_TCP = 0.1034
# Joint limits from Franka's datasheet (rad).
PANDA_Q_LOW = np.array([-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973])
PANDA_Q_HIGH = np.array([2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973])


def _mdh(a: float, d: float, alpha: float, theta: float) -> np.ndarray:
    ca, sa, ct, st = np.cos(alpha), np.sin(alpha), np.cos(theta), np.sin(theta)
    return np.array(
        [
            [ct, -st, 0.0, a],
            [st * ca, ct * ca, -sa, -d * sa],
            [st * sa, ct * sa, ca, d * ca],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


def panda_fk_transform(q: np.ndarray, ee_offset: float = PANDA_HAND_TCP) -> np.ndarray:
    """4x4 base_from_tool transform for the 7 joint angles ``q`` (rad)."""
    q = np.asarray(q, dtype=float).reshape(-1)
    if q.shape != (7,):
        raise TetherError(f"Panda FK got {q.size} joint angles; expected 7")
    T = np.eye(4)
    for (a, d, alpha), theta in zip(PANDA_DH, q):
        T = T @ _mdh(a, d, alpha, theta)
    return T @ _mdh(0.0, PANDA_FLANGE_D + ee_offset, 0.0, 0.0)


def panda_fk(q: np.ndarray, ee_offset: float = PANDA_HAND_TCP) -> np.ndarray:
    """End-effector position (m) in the base frame."""
    return panda_fk_transform(q, ee_offset)[:3, 3]


def position_jacobian(q: np.ndarray, ee_offset: float = PANDA_HAND_TCP, eps: float = 1e-6) -> np.ndarray:
    """3x7 d(ee_pos)/dq by central differences (7 x 2 FK calls: microseconds, plenty at 20-100 Hz)."""
    q = np.asarray(q, dtype=float)
    J = np.empty((3, 7))
    for i in range(7):
        dq = np.zeros(7)
        dq[i] = eps
        J[:, i] = (panda_fk(q + dq, ee_offset) - panda_fk(q - dq, ee_offset)) / (2 * eps)
    return J


def ee_delta_to_joint_targets(q: np.ndarray, delta: np.ndarray, damping: float = 0.05,
                              ee_offset: float = PANDA_HAND_TCP) -> np.ndarray:
    """Joint targets that move the end effector by ``delta`` (m): one damped-least-squares IK step."""
    J = position_jacobian(q, ee_offset)
    dq = J.T @ np.linalg.solve(J @ J.T + damping**2 * np.eye(3), np.asarray(delta, dtype=float))
    return np.clip(np.asarray(q, dtype=float) + dq, PANDA_Q_LOW, PANDA_Q_HIGH)
