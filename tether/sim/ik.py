"""Differential inverse kinematics on a serial chain read from the robot's own URDF.

The ``ee_delta_pose`` control mode needs the end-effector position Jacobian. Reading the chain from the same
URDF file the engines load (rather than asking each engine for a Jacobian) gives the same answer on MuJoCo,
PyBullet and any later engine, costs ~0.1 ms, and needs nothing but joint angles, so the identical
controller can run next to a real arm. Tests check it against MuJoCo's ``mj_jacBody`` and the engines'
forward kinematics.

The IK step is damped least squares on the 3×n position Jacobian, plus a null-space pull toward a rest pose:
a 7-joint arm has 4 redundant directions for a 3-D position task, and without the pull the elbow and the
wrist orientation drift over an episode.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tether.errors import TetherError


def _rpy_to_rotmat(rpy: np.ndarray) -> np.ndarray:
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


@dataclass(frozen=True)
class _Joint:
    name: str
    kind: str  # revolute | continuous | prismatic | fixed
    origin: np.ndarray  # 4x4 parent_from_joint at q = 0
    axis: np.ndarray  # (3,) unit, joint frame


class SerialChain:
    """Kinematics of the joint path from ``base`` to ``tip`` in a URDF; ``joint_names`` are the movable ones."""

    def __init__(self, urdf: str | Path, base: str, tip: str) -> None:
        path = Path(urdf)
        if not path.exists():
            raise TetherError(f"URDF {path} does not exist")
        root = ET.fromstring(path.read_text())
        by_child = {j.find("child").get("link"): j for j in root.findall("joint")}  # not transmissions' refs
        links = {l.get("name") for l in root.iter("link")}
        for name in (base, tip):
            if name not in links:
                raise TetherError(f"no link {name!r} in {path.name}; links are {sorted(links)}")
        chain: list[_Joint] = []
        link = tip
        while link != base:
            if link not in by_child:
                raise TetherError(f"link {tip!r} is not below {base!r} in {path.name}")
            j = by_child[link]
            if j.get("type") not in ("revolute", "continuous", "prismatic", "fixed"):
                raise TetherError(f"joint {j.get('name')!r} has type {j.get('type')!r}; a serial chain takes "
                                  "revolute, continuous, prismatic or fixed joints")
            o = j.find("origin")
            T = np.eye(4)
            if o is not None:
                T[:3, :3] = _rpy_to_rotmat(np.array([float(v) for v in o.get("rpy", "0 0 0").split()]))
                T[:3, 3] = [float(v) for v in o.get("xyz", "0 0 0").split()]
            a = j.find("axis")
            axis = np.array([float(v) for v in a.get("xyz").split()]) if a is not None else np.array([1.0, 0, 0])
            axis = axis / max(np.linalg.norm(axis), 1e-12)
            chain.append(_Joint(j.get("name"), j.get("type"), T, axis))
            link = j.find("parent").get("link")
        self.joints = tuple(reversed(chain))
        self.joint_names = tuple(j.name for j in self.joints if j.kind != "fixed")
        # Precompute per movable joint: the fixed transform in front of it (fixed joints folded in), its axis and
        # the Rodrigues matrices; plus the fixed transform after the last movable joint. Keeps FK to 7 steps.
        self._steps: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]] = []
        pending = np.eye(4)
        for j in self.joints:
            pending = pending @ j.origin
            if j.kind == "fixed":
                continue
            x, y, z = j.axis
            K = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
            self._steps.append(
                (pending[:3, :3].copy(), pending[:3, 3].copy(), j.axis, K, K @ K, j.kind == "prismatic"))
            pending = np.eye(4)
        self._tip = (pending[:3, :3].copy(), pending[:3, 3].copy())
        self._prismatic = np.array([st[5] for st in self._steps], dtype=bool)

    @property
    def dof(self) -> int:
        return len(self.joint_names)

    def _frames(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(tip rotation (..., 3, 3), tip position (..., 3), joint origins (..., dof, 3), joint axes (..., dof, 3)),
        all in the base frame; ``q`` is (dof,) or batched (N, dof)."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape[-1:] != (self.dof,) or q.ndim > 2:
            raise TetherError(f"chain has {self.dof} joints {list(self.joint_names)}; got positions of shape "
                              f"{q.shape}")
        lead = q.shape[:-1]
        R = np.broadcast_to(np.eye(3), (*lead, 3, 3))
        p = np.zeros((*lead, 3))
        origins, axes = np.empty((*lead, self.dof, 3)), np.empty((*lead, self.dof, 3))
        I3 = np.eye(3)
        for i, (Ro, po, axis, K, K2, prismatic) in enumerate(self._steps):
            p = p + R @ po
            R = R @ Ro
            origins[..., i, :], axes[..., i, :] = p, R @ axis
            qi = q[..., i, None, None]
            if prismatic:
                p = p + axes[..., i, :] * q[..., i, None]
            else:  # Rodrigues: exp(theta K) = I + sin(theta) K + (1 - cos(theta)) K^2
                R = R @ (I3 + np.sin(qi) * K + (1.0 - np.cos(qi)) * K2)
        Rt, pt = self._tip
        return R @ Rt, p + R @ pt, origins, axes

    def forward(self, q: np.ndarray) -> np.ndarray:
        """4x4 base_from_tip transform ((..., 4, 4) for batched ``q``)."""
        R, p, _, _ = self._frames(q)
        T = np.zeros((*R.shape[:-2], 4, 4))
        T[..., :3, :3], T[..., :3, 3], T[..., 3, 3] = R, p, 1.0
        return T

    def position(self, q: np.ndarray) -> np.ndarray:
        return self._frames(q)[1]

    def position_jacobian(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(tip position (..., 3), d position / dq (..., 3, dof)) in the base frame, analytically."""
        _, p, origins, axes = self._frames(q)
        d = p[..., None, :] - origins  # (..., dof, 3); the column of joint i is axis_i x (tip - origin_i)
        a = axes
        J = np.stack([a[..., 1] * d[..., 2] - a[..., 2] * d[..., 1],
                      a[..., 2] * d[..., 0] - a[..., 0] * d[..., 2],
                      a[..., 0] * d[..., 1] - a[..., 1] * d[..., 0]], axis=-2)  # (..., 3, dof)
        if self._prismatic.any():
            J[..., self._prismatic] = np.swapaxes(axes[..., self._prismatic, :], -1, -2)
        return p, J


def dls_step(J: np.ndarray, dx: np.ndarray, damping: float = 0.05, null_bias: np.ndarray | None = None) -> np.ndarray:
    """Joint step for a task-space step ``dx``: Jᵀ(JJᵀ + λ²I)⁻¹dx, plus ``null_bias`` projected into J's null space.

    Batched over leading axes (J (..., m, n), dx (..., m)). The damping ``λ`` (m) bounds joint speed near
    singularities at the price of a small tracking lag.
    """
    J = np.asarray(J, dtype=np.float64)
    Jt = np.swapaxes(J, -1, -2)
    JJt = J @ Jt + damping**2 * np.eye(J.shape[-2])
    J_pinv = Jt @ np.linalg.inv(JJt)
    dq = (J_pinv @ np.asarray(dx, dtype=np.float64)[..., None])[..., 0]
    if null_bias is not None:
        nb = np.asarray(null_bias, dtype=np.float64)[..., None]
        dq = dq + (nb - J_pinv @ (J @ nb))[..., 0]
    return dq


class DifferentialIK:
    """Move the tip by a Cartesian step: a few damped-least-squares iterations on the chain's own kinematics.

    Works on *commanded* joint positions, not measured ones: a PD arm under gravity sits slightly below its
    target, and re-linearising at the measured pose every step would let that sag accumulate into drift.
    """

    def __init__(self, chain: SerialChain, lower: np.ndarray, upper: np.ndarray, rest: np.ndarray,
                 damping: float = 0.05, null_gain: float = 0.2, iterations: int = 2) -> None:
        self.chain = chain
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        self.rest = np.asarray(rest, float)
        self.damping, self.null_gain, self.iterations = damping, null_gain, iterations

    def step(self, q: np.ndarray, target: np.ndarray, linearisation: tuple[np.ndarray, np.ndarray] | None = None
             ) -> np.ndarray:
        """One damped-least-squares step from ``q`` toward ``target``; pass ``chain.position_jacobian(q)`` if known."""
        q = np.asarray(q, dtype=np.float64)
        p, J = linearisation if linearisation is not None else self.chain.position_jacobian(q)
        q = q + dls_step(J, np.asarray(target) - p, self.damping, self.null_gain * (self.rest - q))
        return np.clip(q, self.lower, self.upper)

    def solve(self, q: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Joint positions near ``q`` whose tip is closer to ``target`` (m, base frame), within joint limits."""
        q = np.asarray(q, dtype=np.float64).copy()
        for _ in range(self.iterations):
            q = self.step(q, target)
        return q
