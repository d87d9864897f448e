"""Arm push on a served ros2_control arm over DDS: the cube's pose comes from a tracker topic in the arm's base
frame, so a push policy deploys, is recorded, and its episode is scored from the bag by the task's own rule.

Real parts: ``tether robot serve`` (MuJoCo Panda with the push scene, cube pose published as a tracker would)
and ``tether deploy --record`` in their own processes over Cyclone DDS on loopback; the bag read back through
``align_bag`` and scored with ``score_episode``."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import torch

from tests._deploy_support import PY, REPO, ServedRobot, env_contract
from tether.data.rosbag_import import align_bag
from tether.policies.gaussian import GaussianPolicy, default_gaussian_config
from tether.ros.robot_server import build_env
from tether.sim.tasks.scoring import score_episode

DOMAIN = 207
PUSH = "tether/ArmPush-v0"


def _hold_policy(path):
    """A push-contract actor whose mean holds the end effector where it is (a zero TCP step)."""
    c = env_contract(PUSH)
    policy = GaussianPolicy(c, default_gaussian_config(c.obs_size, c.action_size, squash="clip",
                                                       log_std="state_independent",
                                                       net={"hidden": [16], "act": "tanh", "layer_norm": False}))
    with torch.no_grad():
        policy.net[-1].weight.zero_()
        policy.net[-1].bias.zero_()
    policy.extra["env_id"] = PUSH
    policy.save(path)
    return path


def test_push_deploys_on_a_served_arm_with_the_cube_from_its_tracker(tmp_path) -> None:
    """The bag's ``cube_pos`` is where the served robot's simulator put the cube (its base frame), its
    ``goal_pos`` is the served task's goal, and the episode scores by the push rule from them: the cube,
    untouched by a holding arm, stays as far from the goal as it started."""
    params = {"env_id": PUSH, "seed": 7}
    (tmp_path / "params.json").write_text(json.dumps(params))
    env = build_env("arm", "mujoco", params)  # the same world the served robot builds from the same params
    cube0 = env.task.cube_pos(env.core.sim)[0]
    goal = env.task.target[0].copy()
    env.close()
    ckpt = _hold_policy(tmp_path / "hold")
    srv = ServedRobot("arm", DOMAIN, "--params", str(tmp_path / "params.json"))
    try:
        srv.wait_ready()
        run = subprocess.run([PY, "-m", "tether.cli", "deploy", str(ckpt), "--adapter", "arm-ros2-control",
                              "--loopback", "--domain-id", str(DOMAIN), "--duration", "3",
                              "--record", str(tmp_path / "bag")],
                             cwd=REPO, capture_output=True, text=True, timeout=180)
    finally:
        srv.stop()
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    contract = env_contract(PUSH)
    (ep,) = align_bag(tmp_path / "bag", contract, "flat")
    f = contract.split_obs(ep.obs)
    assert len(ep.obs) >= 40  # 3 s at 20 Hz, less the ramp-in and start-up
    np.testing.assert_allclose(f["cube_pos"], np.broadcast_to(cube0, f["cube_pos"].shape), atol=2e-3)
    np.testing.assert_allclose(f["goal_pos"], np.broadcast_to(goal, f["goal_pos"].shape), atol=1e-9)
    score = score_episode(contract, ep.obs)
    start = float(np.linalg.norm((cube0 - goal)[:2]))
    assert not score.success and abs(score.final_error - start) < 5e-3, (score, start)
