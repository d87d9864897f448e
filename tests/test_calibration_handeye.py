"""Hand-eye calibration on MuJoCo-rendered board views with known camera mounting."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from tether.calibration import solvers
from tether.calibration.boards import BoardSpec, detect_all
from tether.calibration.camera import board_pose, calibrate_camera
from tether.calibration.geometry import invert, make_pose, pose_error, quat_wxyz_from_matrix
from tether.calibration.handeye import DegenerateSamplesError, calibrate_hand_eye
from tether.calibration.io import write_json, write_yaml
from tether.calibration.synthetic import BoardScene, random_board_views
from tether.cli import main
from tether.errors import TetherError

BOARD = BoardSpec("charuco", (7, 5), 0.04, 0.03)
N_VIEWS = 15


def _rendered(setup: str, seed: int):
    scene = BoardScene(BOARD, setup=setup)
    poses = random_board_views(scene, N_VIEWS, np.random.default_rng(seed))
    images = [scene.render(T) for T in poses]
    scene.close()
    dets, missed = detect_all(BOARD, images)
    assert not missed
    calib = calibrate_camera(dets)  # intrinsics from the same images, as a user would
    boards = np.array([board_pose(d, calib.camera_matrix, calib.distortion)[0] for d in dets])
    return scene, np.array(poses), boards, images, calib


@pytest.fixture(scope="module")
def eye_in_hand():
    return _rendered("eye_in_hand", 2)


@pytest.fixture(scope="module")
def eye_to_hand():
    return _rendered("eye_to_hand", 2)


def _noisy(G: np.ndarray, sigma_m: float, sigma_deg: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([T @ make_pose(rng.normal(0, np.deg2rad(sigma_deg), 3), rng.normal(0, sigma_m, 3)) for T in G])


@pytest.mark.parametrize("which", ["eye_in_hand", "eye_to_hand"])
def test_rendered_hand_eye_within_2mm_and_0_3deg(which, request):
    scene, G, B, _, _ = request.getfixturevalue(which)
    result = calibrate_hand_eye(G, B, which, bootstrap=20)
    dt, dr = pose_error(result.transform, scene.hand_eye_truth)
    assert dt < 2e-3 and np.rad2deg(dr) < 0.3, (dt, np.rad2deg(dr))
    # every linear solver is reported, and agrees on clean data
    assert set(result.per_method) >= {"tsai", "park", "horaud", "andreff", "daniilidis", "shah", "li", "refined"}
    for m, X in result.per_method.items():
        et, er = pose_error(X, scene.hand_eye_truth)
        assert et < 3e-3 and np.rad2deg(er) < 0.3, (m, et, np.rad2deg(er))
    assert result.residual_translation_m < 3e-3 and np.rad2deg(result.residual_rotation_rad) < 0.3
    assert result.bootstrap_runs >= 15 and np.all(result.std_translation_m < 2e-3)
    # the board transform is the other unknown of B = X^-1 H Z: check it too
    truth_Z = scene.T_world_board if which == "eye_in_hand" else scene.T_gripper_board
    zt, zr = pose_error(result.target_transform, truth_Z)
    assert zt < 3e-3 and np.rad2deg(zr) < 0.3


@pytest.mark.parametrize("which", ["eye_in_hand", "eye_to_hand"])
def test_noisy_robot_poses_stay_bounded(which, request):
    """Stated bound: robot pose noise of 1 mm and 0.1 deg (1-sigma per axis) on 15 views keeps the error
    under 5 mm and 0.5 deg, and within 3.5 bootstrap standard deviations (norm over axes)."""
    scene, G, B, _, _ = request.getfixturevalue(which)
    for seed in range(3):
        result = calibrate_hand_eye(_noisy(G, 1e-3, 0.1, seed), B, which, bootstrap=30, seed=seed)
        dt, dr = pose_error(result.transform, scene.hand_eye_truth)
        assert dt < 5e-3 and np.rad2deg(dr) < 0.5, (seed, dt, np.rad2deg(dr))
        assert dt < 3.5 * np.linalg.norm(result.std_translation_m), (dt, result.std_translation_m)
        assert dr < 3.5 * np.linalg.norm(result.std_rotation_rad), (dr, result.std_rotation_rad)


def test_rotations_about_one_axis_are_refused():
    X = make_pose([0.1, -0.05, 0.02], [0.03, -0.02, 0.05])
    Z = make_pose([0.0, 0.0, 0.3], [0.5, 0.0, 0.0])
    G = np.array([make_pose([0, 0, a], [0.4 + 0.01 * i, 0.02 * i, 0.3]) for i, a in enumerate(np.linspace(-1, 1, 10))])
    B = np.array([invert(X) @ invert(g) @ Z for g in G])
    with pytest.raises(DegenerateSamplesError, match="all relative rotations are about one axis"):
        calibrate_hand_eye(G, B)


def test_near_identity_rotations_are_rejected_and_reported(eye_in_hand):
    scene, G, B, _, _ = eye_in_hand
    # Samples that only translate (rotation < 1 deg apart) carry no rotation information.
    rng = np.random.default_rng(0)
    G_small = np.array([G[0] @ make_pose(rng.normal(0, 0.004, 3), rng.normal(0, 0.03, 3)) for _ in range(8)])
    B_small = np.array([invert(scene.T_gripper_camera) @ invert(g) @ scene.T_world_board for g in G_small])
    with pytest.raises(DegenerateSamplesError, match=r"only 1 of 8 samples are usable.*near-identity rotation"):
        calibrate_hand_eye(G_small, B_small)
    # Mixed in with good samples they are dropped, named in the report, and the answer stays accurate.
    G_mix = np.concatenate([G, G_small[:3]])
    B_mix = np.concatenate([B, B_small[:3]])
    G_mix[len(G):] = G[0] @ make_pose([0.003, 0, 0], [0.01, 0, 0])
    B_mix[len(B):] = invert(scene.T_gripper_camera) @ invert(G_mix[len(G):]) @ scene.T_world_board
    result = calibrate_hand_eye(G_mix, B_mix, bootstrap=0)
    assert sorted(result.check.rejected) == [len(G), len(G) + 1, len(G) + 2]
    assert all("near-identity" in why for why in result.check.rejected.values())
    dt, dr = pose_error(result.transform, scene.hand_eye_truth)
    assert dt < 2e-3 and np.rad2deg(dr) < 0.3


def test_mis_paired_sample_is_dropped(eye_to_hand):
    scene, G, B, _, _ = eye_to_hand
    B_bad = B.copy()
    B_bad[5] = B[9]  # board pose from another view: a stale detection
    result = calibrate_hand_eye(G, B_bad, "eye_to_hand", bootstrap=0)
    assert 5 in result.check.rejected and "disagree" in result.check.rejected[5]
    dt, dr = pose_error(result.transform, scene.hand_eye_truth)
    assert dt < 2e-3 and np.rad2deg(dr) < 0.3


def test_mismatched_counts_and_bad_poses_are_clear_errors(eye_in_hand):
    _, G, B, _, _ = eye_in_hand
    with pytest.raises(TetherError, match="15 robot poses but 14 board poses"):
        calibrate_hand_eye(G, B[:-1])
    bad = G.copy()
    bad[2, :3, :3] *= 2.0
    with pytest.raises(TetherError, match=r"sample\(s\) \[2\] are not rotations"):
        calibrate_hand_eye(bad, B)
    with pytest.raises(TetherError, match="unknown hand-eye set-up 'eye_on_hand'"):
        calibrate_hand_eye(G, B, "eye_on_hand")
    with pytest.raises(TetherError, match="unknown hand-eye method 'tsia'"):
        calibrate_hand_eye(G, B, methods=["tsia"])


def test_opencv_adapters_recover_the_exact_transform_on_noise_free_motions():
    """The frame conventions handed to cv2.calibrateHandEye / calibrateRobotWorldHandEye are right."""
    rng = np.random.default_rng(1)
    X = make_pose(rng.normal(0, 1, 3), rng.normal(0, 0.1, 3))
    Z = make_pose(rng.normal(0, 1, 3), rng.normal(0, 0.5, 3))
    H = np.array([make_pose(rng.normal(0, 0.6, 3), rng.normal(0, 0.3, 3)) for _ in range(8)])
    B = np.array([invert(X) @ h @ Z for h in H])
    assert set(solvers.HAND_EYE_FLAGS) == {"tsai", "park", "horaud", "andreff", "daniilidis"}
    for m in solvers.HAND_EYE_FLAGS:
        dt, dr = pose_error(solvers.hand_eye(invert(H), B, m), X)
        assert dt < 1e-8 and dr < 1e-8, m
    for m in solvers.ROBOT_WORLD_FLAGS:
        P, Q = solvers.robot_world_hand_eye(H, B, m)
        assert max(pose_error(P, invert(X))) < 1e-8 and max(pose_error(Q, Z)) < 1e-8, m


def test_outputs_transform_and_tf_static(eye_in_hand):
    _, G, B, _, _ = eye_in_hand
    r = calibrate_hand_eye(G, B, parent_frame="panda_hand", child_frame="wrist_cam_optical_frame", bootstrap=0)
    d = r.to_transform_dict()
    assert (d["parent"], d["child"]) == ("panda_hand", "wrist_cam_optical_frame")
    np.testing.assert_allclose(d["xyz"], r.transform[:3, 3])
    w, x, y, z = d["quaternion_wxyz"]
    tf = r.to_tf_static()["transforms"][0]
    assert tf["header"]["frame_id"] == "panda_hand" and tf["child_frame_id"] == "wrist_cam_optical_frame"
    q = tf["transform"]["rotation"]
    assert (q["x"], q["y"], q["z"], q["w"]) == pytest.approx((x, y, z, w))
    np.testing.assert_allclose(quat_wxyz_from_matrix(r.transform), [w, x, y, z])
    json.dumps(r.report())  # plain data all the way down


def test_cli_handeye_from_images(eye_in_hand, tmp_path, capsys):
    scene, G, _, images, calib = eye_in_hand
    write_yaml(tmp_path / "cam.yaml", calib.to_ros_dict())
    samples = []
    for i, (T, img) in enumerate(zip(G, images)):
        cv2.imwrite(str(tmp_path / f"s{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        samples.append({"robot": {"xyz": T[:3, 3].tolist(), "quaternion_wxyz": quat_wxyz_from_matrix(T).tolist()},
                        "image": f"s{i}.png"})
    write_json(tmp_path / "samples.json", {"setup": "eye_in_hand", "parent_frame": "tool0", "camera": "cam.yaml",
                                           "board": BOARD.to_dict(), "samples": samples})
    out = tmp_path / "he.json"
    rc = main(["calibrate", "handeye", str(tmp_path / "samples.json"), "--out", str(out), "--bootstrap", "10"])
    assert rc == 0, capsys.readouterr().err
    assert "AX=XB residual" in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["tf_static"]["transforms"][0]["header"]["frame_id"] == "tool0"
    dt = np.linalg.norm(np.array(res["transform"]["xyz"]) - scene.hand_eye_truth[:3, 3])
    assert dt < 2e-3

    write_json(tmp_path / "bad.json", {"samples": samples[:1] + [{"image": "s1.png"}]})
    rc = main(["calibrate", "handeye", str(tmp_path / "bad.json")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "sample 1 'robot' is not a pose" in err
