"""Camera intrinsics against MuJoCo-rendered ground truth (fx = fy = (h/2)/tan(fovy/2), centred principal point)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml

from tether.calibration.boards import BoardSpec, Detection, detect, detect_all
from tether.calibration.camera import calibrate_camera, calibrate_images, camera_from_ros_dict, coverage
from tether.calibration.synthetic import BoardScene, random_board_views
from tether.cli import main
from tether.errors import TetherError

CHARUCO = BoardSpec("charuco", (7, 5), 0.04, 0.03)
CHECKER = BoardSpec("checkerboard", (9, 7), 0.03)


def _render(board: BoardSpec, n: int, seed: int) -> tuple[BoardScene, list[np.ndarray], list[np.ndarray]]:
    scene = BoardScene(board, fovy_deg=55.0)
    poses = random_board_views(scene, n, np.random.default_rng(seed), distance=(0.3, 0.55), offset=0.1)
    images = [scene.render(T) for T in poses]
    scene.close()
    return scene, poses, images


@pytest.fixture(scope="module")
def charuco_views():
    return _render(CHARUCO, 16, 0)


@pytest.fixture(scope="module")
def checker_views():
    return _render(CHECKER, 15, 1)


def _assert_intrinsics(K: np.ndarray, truth: np.ndarray) -> None:
    assert abs(K[0, 0] / truth[0, 0] - 1) < 0.01, (K[0, 0], truth[0, 0])
    assert abs(K[1, 1] / truth[1, 1] - 1) < 0.01, (K[1, 1], truth[1, 1])
    assert abs(K[0, 2] - truth[0, 2]) < 2.0, (K[0, 2], truth[0, 2])
    assert abs(K[1, 2] - truth[1, 2]) < 2.0, (K[1, 2], truth[1, 2])


def test_rendered_corners_match_the_pinhole_convention(charuco_views):
    """The renderer's projection is the ground truth the other tests lean on: check it corner by corner."""
    scene, poses, images = charuco_views
    K = scene.camera_matrix
    errs = []
    for T, img in zip(poses, images):
        det = detect(CHARUCO, img)
        assert det is not None
        Tcb = scene.camera_board(T)
        proj, _ = cv2.projectPoints(det.object_points, cv2.Rodrigues(Tcb[:3, :3])[0], Tcb[:3, 3], K, np.zeros(5))
        errs.append(np.linalg.norm(proj.reshape(-1, 2) - det.image_points, axis=1))
    errs = np.concatenate(errs)
    assert errs.mean() < 0.2 and errs.max() < 1.0, (errs.mean(), errs.max())


def test_charuco_intrinsics_recovered(charuco_views):
    scene, _, images = charuco_views
    calib = calibrate_images(CHARUCO, images)
    _assert_intrinsics(calib.camera_matrix, scene.camera_matrix)
    assert calib.rms < 0.3
    assert len(calib.per_view_rms) == len(images) and not calib.rejected
    assert 0.4 < calib.coverage.fraction <= 1.0
    assert all(v > 0 for v in calib.std_intrinsics.values())


def test_checkerboard_intrinsics_rational_model(checker_views):
    scene, _, images = checker_views
    calib = calibrate_images(CHECKER, images, model="rational_polynomial")
    assert calib.distortion.shape == (8,)
    _assert_intrinsics(calib.camera_matrix, scene.camera_matrix)
    assert calib.rms < 0.3


def test_bad_view_is_rejected_and_result_stays_accurate(charuco_views):
    scene, _, images = charuco_views
    dets, _ = detect_all(CHARUCO, images)
    rng = np.random.default_rng(3)
    bad = dets[4]
    dets[4] = Detection(bad.name, bad.image_size, bad.ids, bad.image_points + rng.normal(0, 4.0, bad.image_points.shape),
                        bad.object_points)
    calib = calibrate_camera(dets)
    assert list(calib.rejected) == [bad.name]
    assert "median" in calib.rejected[bad.name]
    _assert_intrinsics(calib.camera_matrix, scene.camera_matrix)


def test_coverage_shows_unseen_regions():
    pts = np.array([[10.0 + 5 * i, 10.0 + 7 * j] for i in range(20) for j in range(20)])  # top-left corner only
    det = Detection("d", (640, 480), np.arange(len(pts)), pts, np.zeros((len(pts), 3)))
    cov = coverage([det], (640, 480), grid=(4, 3))
    assert cov.counts[0, 0] == len(pts) and cov.counts.sum() == len(pts)
    assert cov.fraction == pytest.approx(1 / 12)
    assert cov.ascii().splitlines()[0] == "#..."


def test_ros_yaml_layout_and_round_trip(charuco_views, tmp_path):
    _, _, images = charuco_views
    calib = calibrate_images(CHARUCO, images[:8], camera_name="wrist")
    from tether.calibration.io import write_yaml

    path = write_yaml(tmp_path / "wrist.yaml", calib.to_ros_dict())
    d = yaml.safe_load(path.read_text())
    assert list(d) == [
        "image_width", "image_height", "camera_name", "camera_matrix", "distortion_model",
        "distortion_coefficients", "rectification_matrix", "projection_matrix",
    ]
    assert (d["image_width"], d["image_height"], d["camera_name"]) == (640, 480, "wrist")
    assert d["camera_matrix"]["rows"] == 3 and d["camera_matrix"]["cols"] == 3 and len(d["camera_matrix"]["data"]) == 9
    assert d["distortion_model"] == "plumb_bob" and d["distortion_coefficients"]["cols"] == 5
    assert d["projection_matrix"]["cols"] == 4 and len(d["projection_matrix"]["data"]) == 12
    assert d["rectification_matrix"]["data"] == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    K, D, size = camera_from_ros_dict(d)
    np.testing.assert_allclose(K, calib.camera_matrix)
    np.testing.assert_allclose(D, calib.distortion)
    assert size == (640, 480)


def test_no_board_in_any_image_is_one_clear_error():
    blank = [np.full((480, 640), 200, np.uint8) for _ in range(3)]
    with pytest.raises(TetherError, match="no charuco board with 7x5 squares found in any of the 3 images"):
        calibrate_images(CHARUCO, blank)


def test_too_few_views_is_refused(charuco_views):
    _, _, images = charuco_views
    with pytest.raises(TetherError, match="board found in 3 views; expected at least 5"):
        calibrate_images(CHARUCO, images[:3])


def test_cli_camera_writes_yaml_and_reports_missing_board(charuco_views, tmp_path, capsys):
    _, _, images = charuco_views
    paths = []
    for i, img in enumerate(images[:10]):
        p = tmp_path / f"view{i:02d}.png"
        cv2.imwrite(str(p), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        paths.append(str(p))
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((480, 640), 255, np.uint8))
    out = tmp_path / "cam.yaml"
    rc = main(["calibrate", "camera", *paths, str(blank), "--out", str(out), "--name", "front"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "RMS reprojection" in text and "blank.png: board not found" in text
    d = yaml.safe_load(out.read_text())
    assert d["camera_name"] == "front"
    assert (tmp_path / "cam.report.json").is_file()

    rc = main(["calibrate", "camera", str(blank), "--out", str(tmp_path / "x.yaml")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "no charuco board" in err
    rc = main(["calibrate", "camera", str(tmp_path / "missing.png")])
    err = capsys.readouterr().err
    assert rc == 2 and "does not exist" in err
