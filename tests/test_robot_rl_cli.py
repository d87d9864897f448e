"""Robot RL from the command line, as on a real robot: ``tether finetune --algo robot-rl`` (one round from the
bags so far) and ``tether robot-rl`` (the rounds on a running robot over DDS).

A served PX4 quadrotor stands in for the robot: ``tether deploy --explore --record`` runs an episode into a folder
of bags (the operator's loop), and the command reads every bag in the folder as robot episodes (the task's reward,
from when the robot followed the policy), leaves out a bag it cannot read, and writes a checkpoint that carries the
parent's contract and history and says which bags shaped it. ``tether robot-rl`` runs the whole loop on one
served arm that keeps running between episodes (a robot that needs no reset; ``--pause`` waits for an operator
who resets one). Bad robot data is one line and exit code 2.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from tether.data.robot_runs import bags_under, read_robot_episodes, robot_episodes
from tether.data.topics import ACTION_TOPIC, GUARD_TOPIC
from tether.errors import TetherError
from tether.policies.checkpoint import load_checkpoint
from tether.policies.gaussian import GaussianPolicy, default_gaussian_config
from tests._deploy_support import (
    PY,
    REPO,
    ServedRobot,
    arm_hold_gaussian,
    bag_messages,
    deploy_loopback,
    hover_actions,
    hover_contract,
)

DOMAIN, LIVE = 190, 191
LEARNER = ["--set", "prior_episodes=2", "--set", "distill_steps=50", "--set", "critic_warmup=20",
           "--set", "batch_size=32"]  # a small learner: the tests check the plumbing, test_robot_rl the learning
SMALL = [*LEARNER, "--no-progress", "--threads", "1"]  # ... as tether finetune takes it


def _hover_gaussian(path, thrust: float = 1.0):
    """A PPO-style actor (clipped Gaussian, history 2) whose mean is ``thrust`` x the sim vehicle's hover thrust,
    rates zero."""
    c = hover_contract()
    policy = GaussianPolicy(c, default_gaussian_config(c.obs_size, c.action_size, squash="clip",
                                                       log_std="state_independent", history=2,
                                                       net={"hidden": [16], "act": "tanh", "layer_norm": False}))
    with torch.no_grad():
        head = policy.net[-1]
        head.weight.zero_()
        mean = hover_actions(c, n=1)[0]
        mean[0] = c.to_normalised(c.to_physical(mean) * np.array([thrust, 1, 1, 1]))[0]
        head.bias.copy_(torch.as_tensor(mean))
    policy.extra["env_id"] = "tether/QuadrotorHover-v0"
    policy.save(path)
    return path


def _tether(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "tether.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_one_round_of_robot_rl_from_the_command_line(tmp_path) -> None:
    parent = _hover_gaussian(tmp_path / "parent")
    bags = tmp_path / "bags"
    bags.mkdir()
    srv = ServedRobot("quadrotor", DOMAIN, "--goal", "0", "0", "1")
    try:
        srv.wait_ready()
        dep = deploy_loopback(parent, "px4", DOMAIN, 5, "--explore", "0.1", "--record", str(bags / "rl-0"))
        assert dep.wait(120) == 0, "\n".join(dep.lines[-10:] + dep.err[-10:])
    finally:
        srv.stop()
    torn = bags / "rl-1"  # a recording the robot's restart tore: left out and named, not fatal
    torn.mkdir()
    (torn / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 9, storage_identifier: mcap}\n")
    (bags / "notes").mkdir()  # not a bag: not read

    contract = load_checkpoint(parent).contract
    episodes = robot_episodes(bags / "rl-0", contract)
    assert episodes and sum(map(len, episodes)) > 50  # the vehicle flew under the policy, clear of the ground

    out = tmp_path / "round-1"
    run = _tether("finetune", str(parent), "--algo", "robot-rl", "--real", str(bags), "--steps", "40",
                  "--out", str(out), *SMALL)
    assert run.returncode == 0, run.stderr[-2000:]
    ckpt = load_checkpoint(out / "checkpoint")
    assert ckpt.contract == contract and ckpt.extra["algo"] == "robot_rl"
    assert ckpt.extra["robot_transitions"] == sum(map(len, episodes))  # exactly what the bag holds, no more
    assert ckpt.extra["gradient_updates"] == 40 and ckpt.extra["actor_init"] == "distilled"
    real = ckpt.extra["real_data"]
    assert real["bags"] == ["rl-0", "rl-1"] and len(real["skipped"]) == 1 and real["skipped"][0].startswith("rl-1:")
    assert ckpt.extra["finetuned_from"]["path"] == str(parent.resolve())
    actor = GaussianPolicy.load(out / "checkpoint")
    assert actor.history == 2  # the parent's history, which deploy stacks live
    actions = actor.act(np.stack([ep.obs[0] for ep in episodes]))
    assert np.all(np.isfinite(actions)) and np.all(np.abs(actions) <= 1.0)
    assert (out / "metrics.csv").is_file()

    # the next round starts from this one's actor (its weights taken as they are); one bag is robot data too
    run = _tether("finetune", str(out / "checkpoint"), "--algo", "robot-rl", "--real", str(bags / "rl-0"),
                  "--steps", "10", "--out", str(tmp_path / "round-2"), *SMALL)
    assert run.returncode == 0, run.stderr[-2000:]
    assert load_checkpoint(tmp_path / "round-2" / "checkpoint").extra["actor_init"] == "weights"


def test_bad_robot_data_is_one_line_and_exit_code_2(tmp_path) -> None:
    parent = _hover_gaussian(tmp_path / "parent")
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "link").symlink_to(empty)
    for real, words in ((empty, "holds no rosbag2 bag"), (tmp_path / "link", "symbolic link")):
        run = _tether("finetune", str(parent), "--algo", "robot-rl", "--real", str(real), "--out",
                      str(tmp_path / "o"), *SMALL)
        assert run.returncode == 2 and words in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    run = _tether("finetune", str(parent), "--algo", "robot-rl", "--real", str(empty), "--set", "prior_episodes=0")
    assert run.returncode == 2 and "prior_episodes=0" in run.stderr, run.stderr
    assert not (tmp_path / "o").exists()  # nothing written before the input was checked
    for args, words in ((["--set", "utd=0"], "utd=0"), (["--episodes", "0"], "--episodes"),
                        (["--explore", "2"], "--explore"), (["--real", str(empty)], "holds no rosbag2 bag")):
        run = _tether("robot-rl", str(parent), "--adapter", "px4", "--out", str(tmp_path / "o"), *args)
        assert run.returncode == 2 and words in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert not (tmp_path / "o").exists()
    with pytest.raises(TetherError, match="expected the bags of tether deploy --record"):
        bags_under(empty)  # the same check in-process


def test_robot_rl_runs_its_rounds_on_a_running_robot(tmp_path) -> None:
    parent = arm_hold_gaussian(tmp_path / "parent")
    out = tmp_path / "rl"
    srv = ServedRobot("arm", LIVE, "--goal", "0.5", "0.0", "0.3")
    try:
        srv.wait_ready()
        run = _tether("robot-rl", str(parent), "--adapter", "arm-ros2-control", "--loopback", "--domain-id",
                      str(LIVE), "--episodes", "2", "--episode-seconds", "4", "--eval-episodes", "1", "--out", str(out),
                      *LEARNER, timeout=400)
    finally:
        srv.stop()
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    bags = [out / "bags" / "rl-0", out / "bags" / "rl-1"]
    assert [r["bag"] for r in summary["rounds"]] == [str(b) for b in bags]
    contract = load_checkpoint(parent).contract
    per_bag = [robot_episodes(b, contract) for b in bags]
    assert all(per_bag), "the arm followed the policy in both episodes"
    assert summary["robot_transitions"] == sum(len(e) for e in read_robot_episodes(bags, contract))
    for b in bags:  # every command went through the guard, which recorded its reason
        assert len(bag_messages(b, [GUARD_TOPIC])) == len(bag_messages(b, [ACTION_TOPIC])) >= 60
    best = load_checkpoint(summary["best_round"])
    assert summary["best_round"] == str(out / f"round-{best.extra['round']}" / "checkpoint")
    assert best.contract == contract and best.extra["algo"] == "robot_rl"
    assert (out / "round-0" / "checkpoint").is_dir() and (out / "round-1" / "checkpoint").is_dir()
    # the evaluation: the parent and the best round, one episode each without exploration; the better is kept
    ev = summary["evaluation"]
    assert (out / "bags" / "parent-0").is_dir() and (out / "bags" / "robotrl-0").is_dir()
    parent_wins = (ev["robot_rl"]["success_rate"], -ev["robot_rl"]["final_error"]) < (
        ev["parent"]["success_rate"], -ev["parent"]["final_error"])
    assert summary["kept"] == ("parent" if parent_wins else summary["best_round"])
    x = np.stack([ep.obs[0] for ep in per_bag[0]])
    kept = GaussianPolicy.load(out / "checkpoint")
    expected = GaussianPolicy.load(parent if parent_wins else summary["best_round"])
    np.testing.assert_allclose(kept.act(x), expected.act(x))


def test_robot_rl_stops_when_a_crashed_robot_gives_nothing_to_learn(tmp_path) -> None:
    """With no reset between episodes, a vehicle that fell stays down: once it has tipped over its episodes hold no
    transition, the learner makes no update and the same actor would run again, so the rounds stop after two such
    episodes and say that the robot needs a reset (``--pause``) instead of spending the robot time."""
    parent = _hover_gaussian(tmp_path / "parent", thrust=0.0)  # no thrust: it falls once it has control
    out = tmp_path / "rl"
    srv = ServedRobot("quadrotor", LIVE + 1, "--goal", "0", "0", "1")
    try:
        srv.wait_ready()
        run = _tether("robot-rl", str(parent), "--adapter", "px4", "--loopback", "--domain-id", str(LIVE + 1),
                      "--episodes", "8", "--episode-seconds", "4", "--out", str(out),
                      *LEARNER, timeout=400)
    finally:
        srv.stop()
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "2 in a row gave no data" in run.stdout and "--pause" in run.stdout, run.stdout[-2000:]
    rounds = json.loads((out / "summary.json").read_text())["rounds"]
    contract = load_checkpoint(parent).contract
    got = [len(robot_episodes(Path(r["bag"]), contract)) for r in rounds]
    # The first episode starts in the air; after it the vehicle is down, but PX4's hold can hop an upright vehicle
    # above the crash height before it tips over, an episode of real data, so "empty" is not every one after it.
    # The rule under test: the rounds stop at the first two empty episodes in a row, and not before.
    pairs = [i for i in range(len(got) - 1) if got[i] == got[i + 1] == 0]
    assert got[0] > 0 and len(rounds) < 8 and pairs == [len(got) - 2], got
