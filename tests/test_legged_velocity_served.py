"""Legged velocity tracking on a served Unitree robot: the robot's state estimator publishes nav_msgs/Odometry
(twist in the body frame), the deploy records it beside the LowState, and the episode is scored from the bag on
the base velocity it carries, which a LowState lacks; the served robot's operator commands the velocity the
task drew for the episode. So ``tether pipeline --robot legged --task velocity`` runs instead of refusing.

Real parts: the served robot's bridge on MuJoCo, and ``tether robot serve`` / ``tether deploy --record`` in their
own processes over Cyclone DDS on loopback; the bag read back with rosbags and scored with ``score_episode``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests._deploy_support import env_contract, make_gaussian_checkpoint, recorded_deploy
from tether.errors import TetherError

DOMAIN = 211
VELOCITY = "tether/LeggedVelocity-v0"


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def test_served_odometry_is_the_base_velocity_in_the_body_frame_and_the_command_is_the_episodes_draw():
    """A base yawed 90 degrees moving along world +x at 0.5 m/s reports (0, -0.5, 0) in its own frame (what
    velocity tracking scores), and the served robot commands what its task drew for the episode's seed."""
    from tether.ros import types as T
    from tether.ros.protocols.legged import odometry_velocity
    from tether.ros.protocols.unitree import UnitreeBridge
    from tether.ros.robot_server import build_env

    store = T.typestore("humble")
    commands = []
    for seed in (7, 8):
        env = build_env("legged", "mujoco", {"env_id": VELOCITY, "seed": seed})
        drawn = env.task.command[0].copy()
        bridge = UnitreeBridge(env, store)
        np.testing.assert_array_equal(bridge.velocity_command, drawn)
        commands.append(drawn)
        (_, twist), = bridge.extra_messages()
        np.testing.assert_allclose([twist.linear.x, twist.linear.y, twist.angular.z], drawn, atol=1e-12)
        q, _ = env.sim.joint_state()
        env.sim.reset_state(q, base_pos=[0.0, 0.0, 0.35], base_quat=_yaw_quat(np.pi / 2),
                            base_lin_vel=[0.5, 0.0, 0.0], base_ang_vel=[0.0, 0.0, 0.3])
        msgs = dict(bridge.state_messages())
        odom = msgs["/odom"]
        assert odom.child_frame_id == "base" and odom.header.frame_id == "odom"
        np.testing.assert_allclose(odometry_velocity(odom), [0.0, -0.5, 0.0], atol=1e-9)
        np.testing.assert_allclose([odom.twist.twist.angular.z], [0.3], atol=1e-9)
        np.testing.assert_allclose([odom.pose.pose.position.z], [0.35], atol=1e-9)
        env.close()
    assert not np.allclose(commands[0], commands[1])  # a new draw per episode seed
    stand = build_env("legged", "mujoco", {"seed": 7})  # the stand task: no command published unless given one
    assert UnitreeBridge(stand, store).extra_messages() == []
    stand.close()


def test_odometry_is_aligned_to_the_observations_it_preceded():
    """Each observation gets the newest odometry heard by its log time (the first before any), and a contract that
    observes the base velocity itself takes nothing from odometry."""
    from types import SimpleNamespace

    from tether.data.robot_runs import odometry_state

    def odom(vx):
        return SimpleNamespace(twist=SimpleNamespace(twist=SimpleNamespace(linear=SimpleNamespace(x=vx, y=0, z=0))))

    contract = env_contract(VELOCITY)
    msgs = [(100, odom(1.0)), (200, odom(2.0)), (300, odom(3.0))]
    got = odometry_state(contract, np.array([50, 100, 150, 250, 400]), msgs)["base_lin_vel"]
    np.testing.assert_array_equal(got[:, 0], [1.0, 1.0, 1.0, 2.0, 3.0])
    assert odometry_state(contract, np.array([50]), []) == {}
    assert odometry_state(env_contract("tether/QuadrotorHover-v0"), np.array([150]), msgs) == {}


def test_a_velocity_policy_deploys_on_a_served_unitree_robot_and_its_bag_scores_on_the_recorded_odometry(tmp_path):
    """Deploy records /odom; ``controlled_run`` gives one base velocity per observation, the observation's command
    is the served robot's draw, and the task's rule scores the episode from them (planar error = command minus
    the recorded velocity); without the odometry the same episode cannot be scored, and says why."""
    from tether.data.robot_runs import controlled_run
    from tether.data.rosbag_import import default_typestore, read_topics
    from tether.ros.robot_server import build_env
    from tether.sim.tasks.scoring import score_episode

    params = {"env_id": VELOCITY, "seed": 7}
    (tmp_path / "params.json").write_text(json.dumps(params))
    env = build_env("legged", "mujoco", params)
    drawn = env.task.command[0].copy()
    env.close()
    ckpt = make_gaussian_checkpoint(tmp_path / "policy", VELOCITY)
    recorded_deploy("legged", DOMAIN, tmp_path / "params.json", ckpt, "unitree", tmp_path / "bag")
    contract = env_contract(VELOCITY)
    got = controlled_run(tmp_path / "bag", contract)
    assert len(got.obs) >= 100  # 3 s at 50 Hz, less the start-up
    v = got.state["base_lin_vel"]
    assert v.shape == (len(got.obs), 3) and np.all(np.isfinite(v)) and np.any(v != 0.0)
    msgs, types = read_topics([tmp_path / "bag"], {"/odom"}, default_typestore())
    assert types["/odom"] == "nav_msgs/msg/Odometry" and len(msgs["/odom"]) >= len(got.obs) // 2
    f = contract.split_obs(got.obs)
    np.testing.assert_allclose(f["command"], np.broadcast_to(drawn, f["command"].shape), atol=1e-9)  # heard over
    # /cmd_vel before the first tick: deploy waits for it, as a sim episode draws it before its first step
    score = score_episode(contract, got.obs, state=got.state)
    expected = np.linalg.norm(f["command"][1:, :2] - v[1:, :2], axis=1)
    np.testing.assert_allclose(score.error, expected, atol=1e-9)
    with pytest.raises(TetherError, match="base_lin_vel"):
        score_episode(contract, got.obs)

