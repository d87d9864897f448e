"""One inverse kinematics for sim and robot: the ros2_control arm adapter turns an ``ee_delta_pose`` action into
the same joint targets as the sim arm task, for the same state and action (issue 14), and its FK is the sim's
``ee_pos``.

The adapter is given the sim task's commanded joints (both integrate on commanded, not measured, joints) and
the sim's measured joint positions; the sim then steps with the same action. Both run the one controller,
``tether.sim.tasks.arm.CartesianStepController`` (the adapter through ``ArmRos2Control.ik_targets``).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import tether.sim  # noqa: F401  (registers the env ids)
from tether.ros.loopback import LoopbackTransport
from tether.ros.protocols.ros2_control import ArmRos2Control


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
def test_adapter_and_sim_give_the_same_joint_targets(backend):
    env = gym.make("tether/ArmReach-v0", backend=backend, dr="none")
    task, sim = env.unwrapped.task, env.unwrapped.sim
    contract = env.unwrapped.contract
    assert contract.control_mode == "ee_delta_pose"
    t = LoopbackTransport(domain_id=19101)
    arm = ArmRos2Control(t, contract)
    rng = np.random.default_rng(7)
    try:
        worst, moved = 0.0, 0.0
        for seed in range(2):
            env.reset(seed=seed)
            for k in range(12):
                a = rng.uniform(-1, 1, 3) if k % 3 else np.sign(rng.normal(size=3))  # full 5 cm steps too
                q, _ = sim.joint_state()
                obs = {"joint_pos": np.asarray(q[:7]), "ee_pos": arm.chain.position(q[:7])}
                np.testing.assert_allclose(obs["ee_pos"], task.ee_pos(env.unwrapped.core.sim)[0], atol=1e-5)  # FK = the sim's ee_pos
                arm._q_cmd = task.q_cmd[0].copy()
                before = task.q_cmd[0].copy()
                mine = arm.to_command(contract.to_physical(a), obs)
                env.step(a)
                worst = max(worst, float(np.abs(mine[:7] - task.q_cmd[0]).max()))
                moved = max(moved, float(np.abs(task.q_cmd[0] - before).max()))
        assert worst < 1e-6, worst
        assert moved > 0.05  # the steps were large enough for the workspace / lead / speed rules to matter
    finally:
        env.close()
        t.close()
