"""Arm push on a served ros2_control arm over DDS: the cube's pose comes from a tracker topic in the arm's base
frame, so a push policy deploys, is recorded, and its episode is scored from the bag by the task's own rule; and
``tether pipeline --robot arm --task push`` runs every stage with an imitation learner.

Real parts: ``tether robot serve`` (MuJoCo Panda with the push scene, cube pose published as a tracker would)
and ``tether deploy --record`` in their own processes over Cyclone DDS on loopback; the bag read back through
``align_bag`` and scored with ``score_episode``."""

from __future__ import annotations

import json

import numpy as np

from tests._deploy_support import arm_hold_gaussian, env_contract, recorded_deploy
from tether.data.rosbag_import import align_bag
from tether.ros.recorder import read_bag
from tether.ros.robot_server import build_env
from tether.sim.tasks.scoring import score_episode

DOMAIN = 207
PUSH = "tether/ArmPush-v0"


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
    ckpt = arm_hold_gaussian(tmp_path / "hold", PUSH)
    recorded_deploy("arm", DOMAIN, tmp_path / "params.json", ckpt, "arm-ros2-control", tmp_path / "bag")
    contract = env_contract(PUSH)
    (ep,) = align_bag(tmp_path / "bag", contract, "flat")
    f = contract.split_obs(ep.obs)
    assert len(ep.obs) >= 40  # 3 s at 20 Hz, less the start-up
    # an ee_delta_pose policy's steps start from the measured joints: no ramp-in scales them (deploy's default)
    reasons = {m.msg.data for m in read_bag(tmp_path / "bag", topics=["/tether/guard"])}
    assert reasons and "ramp" not in reasons, reasons
    np.testing.assert_allclose(f["cube_pos"], np.broadcast_to(cube0, f["cube_pos"].shape), atol=2e-3)
    np.testing.assert_allclose(f["goal_pos"], np.broadcast_to(goal, f["goal_pos"].shape), atol=1e-9)
    score = score_episode(contract, ep.obs)
    start = float(np.linalg.norm((cube0 - goal)[:2]))
    assert not score.success and abs(score.final_error - start) < 5e-3, (score, start)


def test_pipeline_runs_arm_push_by_imitation_through_every_stage(tmp_path):
    """Arm push goes through the loop as an imitation learner: the scripted expert's demos train a diffusion
    policy, the served arm (cube pose from its tracker topic) is deployed zero-shot and probed, identified from
    the bags, and the expert's demos under the identified DR continue the policy's behaviour cloning, which is
    deployed again. Tiny budgets: this checks the plumbing and the files; benchmarks/transfer.py the figures."""
    from tether.data.dataset import Dataset
    from tether.pipeline.run import PipelineConfig, run_pipeline
    from tether.policies.checkpoint import load_checkpoint

    cfg = PipelineConfig(robot="arm", task="push", train_steps=200, finetune_steps=100, demo_episodes=6,
                         episodes=1, probe_episodes=1, sim_eval_episodes=2, robot_rl="on", out=tmp_path / "run",
                         domain_id=98)
    lines: list[str] = []
    summary = run_pipeline(cfg, log=lines.append)
    run = tmp_path / "run"
    assert summary["algo"] == "bc-diffusion" and any("the expert succeeded in" in line for line in lines)
    assert Dataset(run / "train" / "demos").num_episodes == 6
    assert Dataset(run / "finetune" / "demos").num_episodes == 2  # a third, under the DR fine-tuning used
    parent, tuned = load_checkpoint(run / "train" / "checkpoint"), load_checkpoint(run / "finetune" / "checkpoint")
    assert parent.extra["algo"] == tuned.extra["algo"] == "bc-diffusion" and tuned.contract == parent.contract
    assert parent.config["n_obs_steps"] == tuned.config["n_obs_steps"] == 4  # the task's own default settings
    assert tuned.extra["parent"] == str(run / "train" / "checkpoint")
    fine = Dataset(run / "finetune" / "demos")  # only the expert's successes are cloned
    assert tuned.extra["finetune_demos_used"] == sum(bool(e.success) for e in fine.episodes)
    if tuned.extra["finetune_demos_used"]:  # the training DR's demonstrations replayed, against forgetting
        assert tuned.extra["finetune_replay"] == str(run / "train" / "demos")  # the parent's own, not recorded anew
        replay = Dataset(run / "train" / "demos")
        assert not (run / "finetune" / "replay").exists()
        assert tuned.extra["finetune_replay_used"] == sum(bool(e.success) for e in replay.episodes)
    assert [b.name for b in sorted((run / "bags").iterdir())] == ["confirm-0", "probe-0", "tuned-0", "zeroshot-0"]
    # robot RL's learner starts from a Gaussian actor: asked for, it is skipped with the reason, not a crash
    assert any("[robot RL] skipped" in line and "bc-diffusion" in line for line in lines)
    assert "learned by imitation" in summary["robot_rl_skipped"]  # and the report states that one reason
    assert f"Robot RL did not run: {summary['robot_rl_skipped']}." in (run / "report.md").read_text()
    assert summary["robot_episodes"] == 4 and summary["kept"] in ("zero-shot", "fine-tuned")
    assert summary["kept_confirmed"]  # its rerun on a fresh episode is the success reported for it
    assert (run / "report.md").is_file()
