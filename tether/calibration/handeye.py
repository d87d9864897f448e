"""Hand-eye calibration with sample-quality checks, a consistency residual and a bootstrap uncertainty.

Model. Sample i pairs a robot pose ``G_i = T_base_gripper`` with a board pose seen by the camera
``B_i = T_camera_board``. Both set-ups reduce to one equation, B_i = X^-1 H_i Z:
- eye-in-hand: X = T_gripper_camera (wanted), H_i = G_i^-1, Z = T_base_board;
- eye-to-hand: X = T_base_camera (wanted), H_i = G_i, Z = T_gripper_board.
Pairs of samples give the classical A X = X B with A = H_i H_j^-1 and B = B_i B_j^-1.

Why the checks (the failure modes ROS users report as centimetre spread): a relative motion with almost no
rotation carries no information about X's rotation and amplifies noise in its translation, and rotations all
about one axis leave the translation along that axis unobservable. So near-duplicate samples are rejected
and reported, a set whose rotation axes do not span two directions is refused, and samples whose robot and
camera rotation angles disagree (a rotation angle is invariant under A X = X B) are dropped as mis-paired or
mis-detected. OpenCV's linear solvers then seed a nonlinear least-squares refinement of B_i = X^-1 H_i Z
over all samples, and a bootstrap over samples gives the spread of the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from tether.calibration import solvers
from tether.calibration.geometry import invert, make_pose, mean_pose, quat_wxyz_from_matrix, rotation_angle, rotvec
from tether.errors import TetherError

SETUPS = ("eye_in_hand", "eye_to_hand")
HAND_EYE_METHODS = tuple(solvers.HAND_EYE_FLAGS)  # cv2.calibrateHandEye
ROBOT_WORLD_METHODS = tuple(solvers.ROBOT_WORLD_FLAGS)  # cv2.calibrateRobotWorldHandEye
METHODS = (*HAND_EYE_METHODS, *ROBOT_WORLD_METHODS, "refined")


class DegenerateSamplesError(TetherError):
    """The sample set cannot determine the transform; the message says why and what motion to add."""


@dataclass
class SampleCheck:
    """Outcome of the sample-quality checks: which samples are used and why the others are not."""

    kept: list[int]
    rejected: dict[int, str]
    axis_spread_deg: float  # how far the relative rotation axes spread out of one direction
    max_relative_rotation_deg: float


@dataclass
class HandEyeResult:
    setup: str
    transform: np.ndarray  # 4x4: T_gripper_camera (eye-in-hand) or T_base_camera (eye-to-hand)
    parent_frame: str
    child_frame: str
    method: str
    per_method: dict[str, np.ndarray]  # method -> 4x4 (linear solutions and the refined one)
    per_method_residual: dict[str, tuple[float, float]]  # method -> (RMS translation m, RMS rotation rad)
    residual_translation_m: float  # RMS of A X = X B over used sample pairs
    residual_rotation_rad: float
    target_transform: np.ndarray  # Z: T_base_board (eye-in-hand) or T_gripper_board (eye-to-hand)
    check: SampleCheck
    std_translation_m: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))  # bootstrap 1-sigma
    std_rotation_rad: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))  # per axis, rotvec
    bootstrap_runs: int = 0

    # ------------------------------------------------------------------ outputs
    def to_transform_dict(self) -> dict[str, Any]:
        """Tether's transform record: quaternion (w, x, y, z)."""
        return {
            "parent": self.parent_frame,
            "child": self.child_frame,
            "xyz": [float(v) for v in self.transform[:3, 3]],
            "quaternion_wxyz": [float(v) for v in quat_wxyz_from_matrix(self.transform[:3, :3])],
        }

    def to_tf_static(self) -> dict[str, Any]:
        """A tf2_msgs/TFMessage-shaped dict for /tf_static (ROS order x, y, z, w at this edge)."""
        w, x, y, z = quat_wxyz_from_matrix(self.transform[:3, :3])
        t = self.transform[:3, 3]
        return {
            "transforms": [
                {
                    "header": {"stamp": {"sec": 0, "nanosec": 0}, "frame_id": self.parent_frame},
                    "child_frame_id": self.child_frame,
                    "transform": {
                        "translation": {"x": float(t[0]), "y": float(t[1]), "z": float(t[2])},
                        "rotation": {"x": float(x), "y": float(y), "z": float(z), "w": float(w)},
                    },
                }
            ]
        }

    def report(self) -> dict[str, Any]:
        return {
            "setup": self.setup,
            "method": self.method,
            "transform": self.to_transform_dict(),
            "residual_translation_mm": 1e3 * self.residual_translation_m,
            "residual_rotation_deg": float(np.rad2deg(self.residual_rotation_rad)),
            "std_translation_mm": [float(v) for v in 1e3 * self.std_translation_m],
            "std_rotation_deg": [float(v) for v in np.rad2deg(self.std_rotation_rad)],
            "bootstrap_runs": self.bootstrap_runs,
            "samples_used": self.check.kept,
            "samples_rejected": {str(k): v for k, v in self.check.rejected.items()},
            "axis_spread_deg": self.check.axis_spread_deg,
            "per_method": {
                m: {
                    "xyz": [float(v) for v in T[:3, 3]],
                    "quaternion_wxyz": [float(v) for v in quat_wxyz_from_matrix(T[:3, :3])],
                    "residual_translation_mm": 1e3 * self.per_method_residual[m][0],
                    "residual_rotation_deg": float(np.rad2deg(self.per_method_residual[m][1])),
                }
                for m, T in self.per_method.items()
            },
            # Spread to randomise the simulated camera mounting with (no DR target for camera pose exists yet).
            "camera_pose_randomisation": {
                "translation_std_m": [float(v) for v in self.std_translation_m],
                "rotation_std_rad": [float(v) for v in self.std_rotation_rad],
            },
            "target_transform": {
                "xyz": [float(v) for v in self.target_transform[:3, 3]],
                "quaternion_wxyz": [float(v) for v in quat_wxyz_from_matrix(self.target_transform[:3, :3])],
            },
        }

    def summary(self) -> str:
        t = self.transform[:3, 3]
        q = quat_wxyz_from_matrix(self.transform[:3, :3])
        lines = [
            f"hand-eye ({self.setup}, {self.method}): {self.parent_frame} -> {self.child_frame} "
            f"xyz=[{t[0]:.4f}, {t[1]:.4f}, {t[2]:.4f}] m quat_wxyz=[{q[0]:.5f}, {q[1]:.5f}, {q[2]:.5f}, {q[3]:.5f}]",
            f"AX=XB residual {1e3 * self.residual_translation_m:.2f} mm / "
            f"{np.rad2deg(self.residual_rotation_rad):.3f} deg RMS over {len(self.check.kept)} samples; "
            f"bootstrap 1-sigma {np.linalg.norm(1e3 * self.std_translation_m):.2f} mm / "
            f"{np.rad2deg(np.linalg.norm(self.std_rotation_rad)):.3f} deg ({self.bootstrap_runs} runs)",
        ]
        lines += [f"  sample {i} rejected: {why}" for i, why in sorted(self.check.rejected.items())]
        for m, (rt, rr) in self.per_method_residual.items():
            lines.append(f"  {m:>10}: residual {1e3 * rt:.2f} mm / {np.rad2deg(rr):.3f} deg")
        return "\n".join(lines)


# ---------------------------------------------------------------------- input handling
def _as_poses(poses: Any, what: str) -> np.ndarray:
    arr = np.asarray(poses, dtype=float)
    if arr.ndim != 3 or arr.shape[1:] != (4, 4):
        raise TetherError(f"{what} has shape {arr.shape}; expected (N, 4, 4) homogeneous poses")
    if not np.all(np.isfinite(arr)):
        raise TetherError(f"{what} contains NaN or inf; expected finite poses")
    R = arr[:, :3, :3]
    err = np.abs(np.einsum("nij,nkj->nik", R, R) - np.eye(3)).max(axis=(1, 2))
    bad = np.flatnonzero((err > 1e-3) | (np.linalg.det(R) < 0))
    if len(bad):
        raise TetherError(f"{what} sample(s) {bad.tolist()} are not rotations; expected orthonormal 3x3 blocks")
    return arr


def _h_poses(robot: np.ndarray, setup: str) -> np.ndarray:
    return invert(robot) if setup == "eye_in_hand" else robot


# ---------------------------------------------------------------------- sample checks
def check_samples(
    robot_poses: np.ndarray,
    target_poses: np.ndarray,
    setup: str = "eye_in_hand",
    *,
    min_rotation_deg: float = 3.0,
    min_axis_spread_deg: float = 5.0,
    max_angle_mismatch_deg: float = 1.0,
    min_samples: int = 3,
) -> SampleCheck:
    """Select usable samples; raise DegenerateSamplesError when what remains cannot determine X.

    1. Near-duplicates: a sample whose robot rotation differs from every already kept sample by less than
       ``min_rotation_deg`` adds only near-identity relative motions; rejected.
    2. Pairing consistency: rotation angles of A_ij and B_ij must agree (screw invariant); a sample whose median
       disagreement exceeds ``max_angle_mismatch_deg`` and 3x the set's median is rejected.
    3. Diversity: the relative rotation axes must spread at least ``min_axis_spread_deg`` out of one
       direction, otherwise translation along that axis is unobservable; refused.
    """
    H = _h_poses(robot_poses, setup)
    n = len(H)
    rejected: dict[int, str] = {}
    kept: list[int] = []
    for i in range(n):
        if kept:
            angles = rotation_angle(np.einsum("ij,njk->nik", H[i, :3, :3], np.swapaxes(H[kept, :3, :3], 1, 2)))
            j = int(np.argmin(angles))
            if np.rad2deg(angles[j]) < min_rotation_deg:
                rejected[i] = (
                    f"near-identity rotation: {np.rad2deg(angles[j]):.2f} deg from sample {kept[j]} "
                    f"(< {min_rotation_deg:g} deg)"
                )
                continue
        kept.append(i)

    if len(kept) >= 3:
        k = np.array(kept)
        A = np.einsum("aij,bkj->abik", H[k, :3, :3], H[k, :3, :3])  # R_Hi R_Hj^T
        Bm = np.einsum("aij,bkj->abik", target_poses[k, :3, :3], target_poses[k, :3, :3])
        mism = np.abs(rotation_angle(A) - rotation_angle(Bm))
        np.fill_diagonal(mism, np.nan)
        per_sample = np.nanmedian(mism, axis=1)
        overall = float(np.median(per_sample))
        thresh = max(np.deg2rad(max_angle_mismatch_deg), 3.0 * overall)
        for idx, val in zip(kept, per_sample):
            if val > thresh:
                rejected[idx] = (
                    f"robot and camera rotations disagree by {np.rad2deg(val):.2f} deg (median over pairs; "
                    f"limit {np.rad2deg(thresh):.2f} deg): mis-paired sample or bad board detection"
                )
        kept = [i for i in kept if i not in rejected]

    if len(kept) < min_samples:
        raise DegenerateSamplesError(
            f"only {len(kept)} of {n} samples are usable (need >= {min_samples} differing by >= "
            f"{min_rotation_deg:g} deg in rotation); rejected: "
            + "; ".join(f"{i}: {why}" for i, why in sorted(rejected.items())[:3])
        )
    k = np.array(kept)
    rel = rotvec(np.einsum("aij,bkj->abik", H[k, :3, :3], H[k, :3, :3])).reshape(-1, 3)
    ang = np.linalg.norm(rel, axis=1)
    use = ang > np.deg2rad(min_rotation_deg)
    axes = rel[use] / ang[use, None]
    M = (axes[:, :, None] * axes[:, None, :]).mean(axis=0)
    ev = np.sort(np.linalg.eigvalsh(M))[::-1]
    spread = float(np.rad2deg(np.arctan(np.sqrt(max(ev[1], 0.0) / max(ev[0], 1e-12)))))
    if spread < min_axis_spread_deg:
        main_axis = np.linalg.eigh(M)[1][:, -1]
        raise DegenerateSamplesError(
            f"all relative rotations are about one axis ({np.round(main_axis, 2).tolist()} in the "
            f"{'gripper' if setup == 'eye_in_hand' else 'base'} frame; spread {spread:.1f} deg < "
            f"{min_axis_spread_deg:g} deg): translation along it is unobservable; add rotations about another axis"
        )
    return SampleCheck(
        kept=kept, rejected=rejected, axis_spread_deg=spread, max_relative_rotation_deg=float(np.rad2deg(ang.max()))
    )


# ---------------------------------------------------------------------- solvers
def solve_linear(H: np.ndarray, B: np.ndarray, method: str) -> np.ndarray:
    """One OpenCV solver on B_i = X^-1 H_i Z; returns X."""
    if method in HAND_EYE_METHODS:
        # calibrateHandEye wants gripper2base (= H^-1 for the eye-in-hand reading) and target2cam (= B).
        return solvers.hand_eye(invert(H), B, method)
    if method in ROBOT_WORLD_METHODS:
        P, _ = solvers.robot_world_hand_eye(H, B, method)
        return invert(P)
    raise TetherError(f"unknown hand-eye method {method!r}; expected one of {', '.join(METHODS)}")


def estimate_target(H: np.ndarray, B: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Z = mean over samples of H_i^-1 X B_i."""
    return mean_pose(np.einsum("nij,jk,nkl->nil", invert(H), X, B))


def axxb_residual(H: np.ndarray, B: np.ndarray, X: np.ndarray) -> tuple[float, float]:
    """RMS over sample pairs of (A X)^-1 (X B): translation (m) and rotation (rad)."""
    n = len(H)
    i, j = np.triu_indices(n, 1)
    A = np.einsum("nij,njk->nik", H[i], invert(H[j]))
    Bp = np.einsum("nij,njk->nik", B[i], invert(B[j]))
    E = np.einsum("nij,njk->nik", invert(A @ X), X @ Bp)
    return float(np.sqrt(np.mean(np.sum(E[:, :3, 3] ** 2, axis=1)))), float(
        np.sqrt(np.mean(rotation_angle(E[:, :3, :3]) ** 2))
    )


def _exp_so3(w: np.ndarray) -> np.ndarray:
    """Rodrigues' formula, vectorised over leading dims (faster than scipy in the least-squares loop)."""
    th = np.linalg.norm(w, axis=-1)[..., None, None]
    K = np.zeros(w.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -w[..., 2], w[..., 1], -w[..., 0]
    K[..., 1, 0], K[..., 2, 0], K[..., 2, 1] = w[..., 2], -w[..., 1], w[..., 0]
    small = th < 1e-8
    th_safe = np.where(small, 1.0, th)
    a = np.where(small, 1.0, np.sin(th_safe) / th_safe)
    b = np.where(small, 0.5, (1 - np.cos(th_safe)) / th_safe**2)
    return np.eye(3) + a * K + b * (K @ K)


def _log_so3(R: np.ndarray) -> np.ndarray:
    """Rotation vectors of rotations well away from pi (the residuals here are small)."""
    c = np.clip((np.trace(R, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)
    th = np.arccos(c)
    v = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    s = np.sin(th)
    f = np.where(th < 1e-6, 0.5, th / (2 * np.where(th < 1e-6, 1.0, s)))
    return v * f[..., None]


def _pack(T: np.ndarray) -> np.ndarray:
    return np.r_[Rotation.from_matrix(T[:3, :3]).as_rotvec(), T[:3, 3]]


def _unpack(p: np.ndarray) -> np.ndarray:
    return make_pose(_exp_so3(p[:3]), p[3:6])


def refine(H: np.ndarray, B: np.ndarray, X0: np.ndarray, Z0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nonlinear least squares on B_i = X^-1 H_i Z over X and Z jointly (Huber-robust).

    Rotation errors are scaled by the median camera-to-board distance so a radian of board-pose rotation
    weighs as much as the displacement it causes at the board; that puts both residual kinds in metres.
    Parameters are small corrections applied on the right of the seeds, so the log map never nears pi.
    """
    scale = float(np.median(np.linalg.norm(B[:, :3, 3], axis=1))) or 1.0
    RB_T = np.swapaxes(B[:, :3, :3], 1, 2)

    def residual(p: np.ndarray) -> np.ndarray:
        X, Z = X0 @ _unpack(p[:6]), Z0 @ _unpack(p[6:])
        pred = invert(X) @ H @ Z
        r_rot = _log_so3(RB_T @ pred[:, :3, :3]) * scale
        r_t = B[:, :3, 3] - pred[:, :3, 3]
        return np.concatenate([r_rot, r_t], axis=1).ravel()

    p0 = np.zeros(12)
    f0 = np.median(np.abs(residual(p0))) + 1e-6
    sol = least_squares(residual, p0, loss="huber", f_scale=3.0 * f0, x_scale="jac", max_nfev=100)
    return X0 @ _unpack(sol.x[:6]), Z0 @ _unpack(sol.x[6:])


def _solve(
    H: np.ndarray, B: np.ndarray, methods: Sequence[str], residuals: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, tuple[float, float]]]:
    sols, res = {}, {}
    for m in methods:
        if m == "refined":
            continue
        try:
            X = solve_linear(H, B, m)
        except cv2.error:  # OpenCV refuses some degenerate sets outright; the other methods still answer
            continue
        if np.all(np.isfinite(X)):
            sols[m] = X
            if residuals or len(methods) > 2:
                res[m] = axxb_residual(H, B, X)
    if not sols:
        raise DegenerateSamplesError("every OpenCV hand-eye solver failed on these samples")
    if "refined" in methods:
        scale = float(np.median(np.linalg.norm(B[:, :3, 3], axis=1))) or 1.0
        seed = min(res, key=lambda m: res[m][0] + scale * res[m][1]) if res else next(iter(sols))
        Xr, _ = refine(H, B, sols[seed], estimate_target(H, B, sols[seed]))
        sols["refined"] = Xr
        if residuals:
            res["refined"] = axxb_residual(H, B, Xr)
    return sols, res


def calibrate_hand_eye(
    robot_poses: Any,
    target_poses: Any,
    setup: str = "eye_in_hand",
    *,
    method: str = "refined",
    methods: Sequence[str] = METHODS,
    parent_frame: str | None = None,
    child_frame: str = "camera_optical_frame",
    bootstrap: int = 30,
    seed: int | np.random.Generator = 0,
    **check_kwargs: Any,
) -> HandEyeResult:
    """Solve for the camera mounting from N paired samples.

    ``robot_poses``: (N, 4, 4) T_base_gripper from the robot's forward kinematics; ``target_poses``: (N, 4, 4)
    T_camera_board from board detections (``camera.board_pose``). ``method`` picks the reported solution:
    an OpenCV method name, or "refined" (least squares seeded by the best linear solution). Every method in
    ``methods`` is also solved and reported with its residual, so disagreement between them is visible.
    """
    if setup not in SETUPS:
        raise TetherError(f"unknown hand-eye set-up {setup!r}; expected one of {', '.join(SETUPS)}")
    if method not in METHODS:
        raise TetherError(f"unknown hand-eye method {method!r}; expected one of {', '.join(METHODS)}")
    G = _as_poses(robot_poses, "robot_poses")
    B = _as_poses(target_poses, "target_poses")
    if len(G) != len(B):
        raise TetherError(
            f"{len(G)} robot poses but {len(B)} board poses; expected one robot pose per board detection"
        )
    methods = list(dict.fromkeys([*methods, method]))
    check = check_samples(G, B, setup, **check_kwargs)
    k = np.array(check.kept)
    H = _h_poses(G, setup)[k]
    Bk = B[k]
    sols, res = _solve(H, Bk, methods)
    if method not in sols:
        raise DegenerateSamplesError(f"hand-eye method {method!r} failed on these samples")
    X = sols[method]
    result = HandEyeResult(
        setup=setup,
        transform=X,
        parent_frame=parent_frame or ("gripper" if setup == "eye_in_hand" else "base"),
        child_frame=child_frame,
        method=method,
        per_method=sols,
        per_method_residual=res,
        residual_translation_m=res[method][0],
        residual_rotation_rad=res[method][1],
        target_transform=estimate_target(H, Bk, X),
        check=check,
    )
    if bootstrap > 0:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        dts, drs = [], []
        for _ in range(bootstrap):
            idx = rng.integers(0, len(k), len(k))
            if len(np.unique(idx)) < 3:
                continue
            try:
                sb, _ = _solve(H[idx], Bk[idx], [method] if method != "refined" else ["park", "refined"], residuals=False)
            except (DegenerateSamplesError, ValueError, np.linalg.LinAlgError):
                continue
            Xb = sb.get(method)
            if Xb is None:
                continue
            dts.append(Xb[:3, 3] - X[:3, 3])
            drs.append(rotvec(X[:3, :3].T @ Xb[:3, :3]))
        if len(dts) >= 5:
            result.std_translation_m = np.std(dts, axis=0, ddof=1)
            result.std_rotation_rad = np.std(drs, axis=0, ddof=1)
            result.bootstrap_runs = len(dts)
    return result
