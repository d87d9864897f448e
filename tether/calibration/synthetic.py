"""Rendered calibration data with known ground truth: a board texture and cameras in a MuJoCo scene.

Why it lives in the package (not only in tests): the benchmark, the tests and ``tether calibrate`` demos
need the same ground truth, and a user can check a calibration set-up (board size, view count, pose
spread) before going to the robot. The board image comes from ``BoardSpec.image`` (OpenCV), is saved as a PNG
and loaded as the texture of a plane; the camera has a known vertical field of view, so
fx = fy = (h/2) / tan(fovy/2) with the principal point at the image centre ((w-1)/2, (h-1)/2 in OpenCV's
pixel-centre convention). ``tests/test_calibration_camera.py`` checks that convention against the renderer.

Two set-ups share one scene layout: a "gripper" mocap body moved to commanded poses, carrying the camera
(eye-in-hand, board fixed in the world) or the board (eye-to-hand, camera fixed in the world).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from tether.calibration.boards import BoardSpec
from tether.calibration.geometry import MUJOCO_FROM_OPTICAL, invert, look_at, make_pose, quat_wxyz_from_matrix

SETUPS = ("eye_in_hand", "eye_to_hand")


def intrinsics_from_fovy(fovy_deg: float, width: int, height: int) -> np.ndarray:
    """Pinhole matrix of a MuJoCo camera: square pixels, principal point at the image centre."""
    f = (height / 2.0) / np.tan(np.deg2rad(fovy_deg) / 2.0)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def _fmt(v: np.ndarray) -> str:
    return " ".join(f"{x:.10g}" for x in np.asarray(v, dtype=float).ravel())


@dataclass
class BoardScene:
    """A MuJoCo scene that renders one board from one camera, with every pose known.

    ``T_gripper_camera`` (eye-in-hand) or ``T_world_camera`` (eye-to-hand) is the optical-frame pose of the
    camera (z forward, y down); ``T_world_board`` / ``T_gripper_board`` place the OpenCV board frame.
    """

    board: BoardSpec
    setup: str = "eye_in_hand"
    width: int = 640
    height: int = 480
    fovy_deg: float = 55.0
    T_gripper_camera: np.ndarray = field(default_factory=lambda: make_pose([0.1, -0.05, 0.02], [0.03, -0.02, 0.05]))
    T_world_board: np.ndarray = field(default_factory=lambda: np.eye(4))
    T_world_camera: np.ndarray = field(default_factory=lambda: look_at([0.0, -0.15, 0.75], [0.0, 0.0, 0.3]))
    T_gripper_board: np.ndarray = field(default_factory=lambda: make_pose([0.0, 0.0, 0.0], [0.0, 0.0, 0.01]))
    pixels_per_square: int = 80

    def __post_init__(self) -> None:
        if self.setup not in SETUPS:
            raise ValueError(f"unknown set-up {self.setup!r}; expected one of {', '.join(SETUPS)}")
        import mujoco

        self._mj = mujoco
        ppsq = self.pixels_per_square
        margin_sq = 0.5
        img = self.board.image(pixels_per_square=ppsq, margin_squares=margin_sq)
        s = self.board.square_size
        half_w = img.shape[1] / ppsq * s / 2.0
        half_h = img.shape[0] / ppsq * s / 2.0
        # The texture maps image columns to +x and image rows to -y of the plane (checked by the tests), so
        # the OpenCV board frame (x right, y down the image, z into the board) sits at the top-left square
        # corner, rotated 180 degrees about x from the plane's frame.
        self.T_plane_board = make_pose(np.diag([1.0, -1.0, -1.0]), [-half_w + margin_sq * s, half_h - margin_sq * s, 0.0])
        T_board_plane = invert(self.T_plane_board)
        with tempfile.TemporaryDirectory() as tmp:
            png = Path(tmp) / "board.png"
            cv2.imwrite(str(png), cv2.cvtColor(img, cv2.COLOR_GRAY2RGB))
            xml = self._xml(png, half_w, half_h, T_board_plane)
            self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        self._renderer = None

    # ------------------------------------------------------------------ scene text
    def _xml(self, png: Path, half_w: float, half_h: float, T_board_plane: np.ndarray) -> str:
        def pose_attr(T: np.ndarray) -> str:
            return f'pos="{_fmt(T[:3, 3])}" quat="{_fmt(quat_wxyz_from_matrix(T[:3, :3]))}"'

        def cam_attr(T_parent_optical: np.ndarray) -> str:
            T = T_parent_optical.copy()
            T[:3, :3] = T[:3, :3] @ MUJOCO_FROM_OPTICAL
            return pose_attr(T)

        plane = f'<geom name="board" type="plane" size="{half_w:.6f} {half_h:.6f} 0.01" material="board" contype="0" conaffinity="0"'
        if self.setup == "eye_in_hand":
            board_world = f"<body name=\"board\" {pose_attr(self.T_world_board @ T_board_plane)}>{plane} /></body>"
            gripper_inner = f'<camera name="cam" {cam_attr(self.T_gripper_camera)} fovy="{self.fovy_deg}"/>'
            fixed_cam = ""
        else:
            board_world = ""
            gripper_inner = f"<body name=\"board\" {pose_attr(self.T_gripper_board @ T_board_plane)}>{plane} /></body>"
            fixed_cam = f'<camera name="cam" {cam_attr(self.T_world_camera)} fovy="{self.fovy_deg}"/>'
        return f"""
<mujoco model="calibration_scene">
  <visual>
    <global offwidth="{self.width}" offheight="{self.height}"/>
    <quality offsamples="4"/>
    <headlight ambient="1 1 1" diffuse="0 0 0" specular="0 0 0"/>
    <rgba haze="0 0 0 1"/>
  </visual>
  <asset>
    <texture name="board" type="2d" file="{png}"/>
    <material name="board" texture="board" texrepeat="1 1" texuniform="false" specular="0" shininess="0" reflectance="0"/>
  </asset>
  <worldbody>
    {board_world}
    {fixed_cam}
    <body name="gripper" mocap="true">{gripper_inner}</body>
  </worldbody>
</mujoco>"""

    # ------------------------------------------------------------------ ground truth
    @property
    def camera_matrix(self) -> np.ndarray:
        return intrinsics_from_fovy(self.fovy_deg, self.width, self.height)

    @property
    def hand_eye_truth(self) -> np.ndarray:
        """The transform hand-eye calibration should recover: T_gripper_camera or T_world(base)_camera."""
        return self.T_gripper_camera if self.setup == "eye_in_hand" else self.T_world_camera

    def camera_board(self, T_world_gripper: np.ndarray) -> np.ndarray:
        """True T_camera_board for a gripper pose."""
        if self.setup == "eye_in_hand":
            return invert(T_world_gripper @ self.T_gripper_camera) @ self.T_world_board
        return invert(self.T_world_camera) @ T_world_gripper @ self.T_gripper_board

    # ------------------------------------------------------------------ rendering
    def render(self, T_world_gripper: np.ndarray) -> np.ndarray:
        """RGB image (H, W, 3) with the gripper mocap body at ``T_world_gripper``."""
        mj = self._mj
        self.data.mocap_pos[0] = T_world_gripper[:3, 3]
        self.data.mocap_quat[0] = quat_wxyz_from_matrix(T_world_gripper[:3, :3])
        mj.mj_forward(self.model, self.data)
        if self._renderer is None:
            os.environ.setdefault("MUJOCO_GL", "egl")
            self._renderer = mj.Renderer(self.model, self.height, self.width)
        self._renderer.update_scene(self.data, camera="cam")
        return self._renderer.render().copy()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def random_board_views(
    scene: BoardScene,
    n: int,
    rng: np.random.Generator,
    distance: tuple[float, float] = (0.35, 0.6),
    tilt_deg: float = 35.0,
    roll_deg: float = 30.0,
    offset: float = 0.06,
) -> list[np.ndarray]:
    """Gripper poses that show the board from varied tilted viewpoints (for intrinsics and hand-eye).

    Eye-in-hand: a camera pose looking at a point near the board centre from a random direction within
    ``tilt_deg`` of the board normal, converted to a gripper pose through the known mounting. Eye-to-hand:
    the board is turned by up to ``tilt_deg`` and shifted within the fixed camera's view.
    """
    bw, bh = scene.board.size_m
    centre_board = np.array([bw / 2, bh / 2, 0.0])
    poses = []
    for _ in range(n):
        tilt = np.deg2rad(rng.uniform(0, tilt_deg))
        az = rng.uniform(0, 2 * np.pi)
        roll = np.deg2rad(rng.uniform(-roll_deg, roll_deg))
        if scene.setup == "eye_in_hand":
            # Direction from board centre toward camera, in the board frame (board normal toward viewer is -z).
            d = np.array([np.sin(tilt) * np.cos(az), np.sin(tilt) * np.sin(az), -np.cos(tilt)])
            dist = rng.uniform(*distance)
            aim = centre_board + np.r_[rng.uniform(-offset, offset, 2), 0.0]
            eye = centre_board + dist * d
            T_board_cam = look_at(eye, aim, up=[0.0, -1.0, 0.0]) @ make_pose([0, 0, roll], [0, 0, 0])
            T_world_cam = scene.T_world_board @ T_board_cam
            poses.append(T_world_cam @ invert(scene.T_gripper_camera))
        else:
            # Board centre placed on the camera axis at a random depth, then tilted and rolled.
            depth = rng.uniform(*distance)
            lateral = np.r_[rng.uniform(-offset, offset, 2), depth]
            axis = np.array([np.cos(az), np.sin(az), 0.0])
            R_cam_board = make_pose(axis * tilt, [0, 0, 0])[:3, :3] @ make_pose([0, 0, roll], [0, 0, 0])[:3, :3]
            T_cam_board = make_pose(R_cam_board, lateral - R_cam_board @ centre_board)
            T_world_board = scene.T_world_camera @ T_cam_board
            poses.append(T_world_board @ invert(scene.T_gripper_board))
    return poses


# ---------------------------------------------------------------------- latency ground truth
SLIDER_XML = """
<mujoco>
  <option timestep="0.002"/>
  <worldbody>
    <body name="cart">
      <joint name="x" type="slide" axis="1 0 0" damping="0.5"/>
      <geom type="box" size="0.1 0.1 0.1" mass="2"/>
    </body>
  </worldbody>
  <actuator><velocity joint="x" kv="40" ctrlrange="-2 2"/></actuator>
</mujoco>
"""


def delayed_actuator_log(
    delay_s: float, seconds: float = 24.0, control_hz: float = 50.0, seed: int = 0, noise: float = 0.005
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t, command, response) from a MuJoCo cart whose velocity actuator acts ``delay_s`` late.

    The delay line runs at the 500 Hz physics rate, so delays need not be whole control periods; the plant
    lag is m / kv = 50 ms. Commands are random levels held 8 periods plus per-period noise (the fast content
    pins the delay down); responses are joint velocities sampled just before each command is sent, with
    white measurement noise.
    """
    import mujoco

    model = mujoco.MjModel.from_xml_string(SLIDER_XML)
    data = mujoco.MjData(model)
    rng = np.random.default_rng(seed)
    n = int(seconds * control_hz)
    per = int(round(1.0 / (control_hz * model.opt.timestep)))
    command = np.repeat(rng.uniform(-1.5, 1.5, n // 8 + 1), 8)[:n] + rng.normal(0, 0.2, n)
    queue = [command[0]] * int(round(delay_s / model.opt.timestep))
    t = np.arange(n) / control_hz
    response = np.zeros(n)
    for k in range(n):
        response[k] = data.qvel[0] + rng.normal(0, noise)
        for _ in range(per):
            queue.append(command[k])
            data.ctrl[0] = queue.pop(0)
            mujoco.mj_step(model, data)
    return t, command, response
