"""Panda forward kinematics from the DH table, checked against PyBullet's independent Panda URDF."""

import numpy as np
import pybullet as p
import pybullet_data

from tether.hardware.kinematics import (
    PANDA_HAND_TCP,
    ee_delta_to_joint_targets,
    panda_fk,
    panda_fk_transform,
    position_jacobian,
)


def test_known_poses() -> None:
    np.testing.assert_allclose(panda_fk(np.zeros(7), ee_offset=0.0), [0.088, 0.0, 0.926], atol=1e-12)
    np.testing.assert_allclose(panda_fk(np.zeros(7)), [0.088, 0.0, 0.926 - PANDA_HAND_TCP], atol=1e-12)
    ready = [0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4]
    np.testing.assert_allclose(panda_fk(ready), [0.3069, 0.0, 0.4869], atol=1e-4)
    R = panda_fk_transform(ready)[:3, :3]
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)


def test_flange_matches_pybullet_urdf(rng: np.random.Generator) -> None:
    cid = p.connect(p.DIRECT)
    try:
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=cid)
        robot = p.loadURDF("franka_panda/panda.urdf", useFixedBase=True, physicsClientId=cid)
        for _ in range(20):
            q = rng.uniform(-2.5, 2.5, 7)
            for j in range(7):
                p.resetJointState(robot, j, q[j], physicsClientId=cid)
            link8 = p.getLinkState(robot, 7, computeForwardKinematics=True, physicsClientId=cid)[4]
            np.testing.assert_allclose(panda_fk(q, ee_offset=0.0), link8, atol=1e-5)
    finally:
        p.disconnect(cid)


def test_jacobian_and_ik_step(rng: np.random.Generator) -> None:
    q = np.array([0.1, -0.6, 0.2, -2.2, 0.1, 1.6, 0.7])
    J = position_jacobian(q)
    dq = rng.normal(size=7) * 1e-4
    np.testing.assert_allclose(panda_fk(q + dq) - panda_fk(q), J @ dq, atol=1e-7)
    delta = np.array([0.02, -0.01, 0.015])
    q1 = ee_delta_to_joint_targets(q, delta)
    np.testing.assert_allclose(panda_fk(q1) - panda_fk(q), delta, atol=2e-3)


def test_adapter_fk_equals_the_sim_arm_ee_pos() -> None:
    """The real-arm adapter computes ee_pos with this FK; the policy was trained on the sim's ee_pos."""
    import gymnasium as gym

    import tether.sim  # noqa: F401

    for backend in ("mujoco", "pybullet"):
        env = gym.make("tether/ArmReach-v0", control_mode="joint_position", backend=backend)
        try:
            contract = env.unwrapped.contract
            for seed in range(3):
                obs, _ = env.reset(seed=seed)
                d = contract.split_obs(obs)
                np.testing.assert_allclose(panda_fk(d["joint_pos"]), d["ee_pos"], atol=1e-4)
        finally:
            env.close()
