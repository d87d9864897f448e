"""NED/FRD <-> ENU/FLU conversions: round trips, agreement with rotation matrices, and physical sanity."""

import numpy as np

from tether.hardware import frames as F


def _random_quats(rng: np.random.Generator, n: int) -> np.ndarray:
    q = rng.normal(size=(n, 4))
    return F.canonical_quat(q / np.linalg.norm(q, axis=1, keepdims=True))


def test_vector_maps_round_trip_and_match_matrices(rng: np.random.Generator) -> None:
    v = rng.normal(size=(100, 3))
    np.testing.assert_allclose(F.enu_to_ned(F.ned_to_enu(v)), v)
    np.testing.assert_allclose(F.flu_to_frd(F.frd_to_flu(v)), v)
    np.testing.assert_allclose(F.ned_to_enu(v), v @ F.NED_TO_ENU.T)
    np.testing.assert_allclose(F.frd_to_flu(v), v @ F.FRD_TO_FLU.T)
    # north is ENU +y, down is ENU -z
    np.testing.assert_allclose(F.ned_to_enu([1.0, 0, 0]), [0, 1, 0])
    np.testing.assert_allclose(F.ned_to_enu([0, 0, 1.0]), [0, 0, -1])
    np.testing.assert_allclose(F.quat_to_rotmat(F.Q_ENU_FROM_NED), F.NED_TO_ENU, atol=1e-12)
    np.testing.assert_allclose(F.quat_to_rotmat(F.Q_FRD_FROM_FLU), F.FRD_TO_FLU, atol=1e-12)


def test_quaternion_round_trip_both_ways(rng: np.random.Generator) -> None:
    q = _random_quats(rng, 200)
    np.testing.assert_allclose(F.quat_enu_flu_to_ned_frd(F.quat_ned_frd_to_enu_flu(q)), q, atol=1e-12)
    np.testing.assert_allclose(F.quat_ned_frd_to_enu_flu(F.quat_enu_flu_to_ned_frd(q)), q, atol=1e-12)


def test_quaternion_conversion_agrees_with_vector_conversion(rng: np.random.Generator) -> None:
    # Rotating a body vector then converting must equal converting then rotating.
    q_ned_frd = _random_quats(rng, 50)
    v_frd = rng.normal(size=(50, 3))
    world_ned = np.einsum("nij,nj->ni", F.quat_to_rotmat(q_ned_frd), v_frd)
    q_enu_flu = F.quat_ned_frd_to_enu_flu(q_ned_frd)
    world_enu = np.einsum("nij,nj->ni", F.quat_to_rotmat(q_enu_flu), F.frd_to_flu(v_frd))
    np.testing.assert_allclose(world_enu, F.ned_to_enu(world_ned), atol=1e-12)


def test_level_vehicle_facing_north_and_east() -> None:
    # PX4 identity attitude: nose north, level. In ENU that is a yaw of +90 deg (x body -> world +y).
    q = F.quat_ned_frd_to_enu_flu(np.array([1.0, 0, 0, 0]))
    R = F.quat_to_rotmat(q)
    np.testing.assert_allclose(R @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(R @ [0, 0, 1], [0, 0, 1], atol=1e-12)  # body up is world up
    # PX4 yaw +90 deg (nose east): ENU identity.
    yaw90 = np.array([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)])
    np.testing.assert_allclose(F.quat_ned_frd_to_enu_flu(yaw90), [1, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(F.projected_gravity(np.array([1.0, 0, 0, 0])), [0, 0, -1])


def test_ros_quaternion_order() -> None:
    q = np.array([0.1, 0.2, 0.3, 0.9])
    np.testing.assert_allclose(F.wxyz_to_xyzw(F.xyzw_to_wxyz(q)), q)
    np.testing.assert_allclose(F.xyzw_to_wxyz(q), [0.9, 0.1, 0.2, 0.3])
