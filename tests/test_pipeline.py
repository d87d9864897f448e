"""The whole loop on a reduced budget: train → served robot over DDS → record → dataset → fine-tune → report."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from tether.errors import TetherError
from tether.sim.tasks.scoring import score_episode as score
from tether.sim.env import TetherEnv


def _expert_episode(robot: str, task: str, seed: int) -> tuple[TetherEnv, np.ndarray, dict]:
    """One episode of the task's scripted expert in sim: the env, its observations (T, obs) and the last info."""
    env = TetherEnv(robot, task)
    obs, _ = env.reset(seed=seed)
    trace, info = [obs], {}
    for _ in range(env.task.max_steps):
        obs, _, term, trunc, info = env.step(env.expert_action())
        trace.append(obs)
        if term or trunc:
            break
    return env, np.array(trace), info


def test_hover_metric_scores_a_recorded_run_like_the_sim_task():
    env, trace, info = _expert_episode("quadrotor", "hover", seed=0)
    s = score(env.contract, trace)
    assert s.success == info["success"] is True
    assert s.error[0] > 0.1 > s.final_error
    drifting = trace.copy()
    drifting[:, 0] += np.linspace(0, 1.0, len(drifting))  # pos_error x grows to 1 m
    assert not score(env.contract, drifting).success


def test_a_vehicle_handed_over_on_the_ground_has_not_crashed_but_one_that_lands_has():
    """PX4 vehicles are often handed over before their hold has lifted them (height under the 3 cm crash line);
    the policy then takes off. That start is not a crash; coming back down to the ground is."""
    env, run, _ = _expert_episode("quadrotor", "hover", seed=1)
    pos_error = env.contract.obs_slices["pos_error"]
    on_ground = run[:1].copy()
    on_ground[0, pos_error] = [0.0, 0.0, 1.0]  # 1 m below the set point (goal height 1 m): sitting on the ground
    assert score(env.contract, np.vstack([on_ground, on_ground, run])).success
    landed = np.vstack([run, on_ground])
    assert not score(env.contract, landed).success and score(env.contract, landed).terminated
    assert not score(env.contract, run).terminated
    assert not score(env.contract, np.repeat(on_ground, 60, axis=0)).success  # never took off


@pytest.mark.parametrize("crashes, expected", [((False, False, False), [0.2, 0.2, 0.2]),
                                               ((True, True, True), [0.2, 0.1, 0.05]),
                                               ((False, True, False), [0.2, 0.2, 0.1])])
def test_the_probe_halves_its_exploration_after_an_episode_that_crashed(monkeypatch, tmp_path, crashes, expected):
    """Identification's probe excites the robot; one that crashes it records little flight and costs a robot, so
    each probe after a crash runs at half the scale. The episodes keep their numbers (bags, start states)."""
    from pathlib import Path

    from tether.pipeline import stages
    from tether.pipeline.config import PipelineConfig
    from tether.sim.tasks.scoring import EpisodeScore

    calls: list[tuple[int, float]] = []

    def deploy(cfg, ckpt, tag, n, log, explore=0.0, first=0, total=None, **kw):  # noqa: ANN001, ANN003, ANN202
        assert total == 3
        calls.append((first, explore))
        s = EpisodeScore(np.ones(5), False, 1.0, crashes[first])
        return stages.Deployment.episode(Path(f"{tag}-{first}"), s, {}, 5.0)

    monkeypatch.setattr(stages, "deploy_phase", deploy)
    cfg = PipelineConfig(explore=0.2, probe_episodes=3, out=tmp_path)
    probe, scales = stages.probe_phase(cfg, tmp_path / "ckpt", lambda _m: None)
    assert scales == expected and [e for _, e in calls] == expected and [i for i, _ in calls] == [0, 1, 2]
    assert [b.name for b in probe.bags] == ["probe-0", "probe-1", "probe-2"] and probe.robot_seconds == 15.0


def test_a_served_reach_that_succeeds_reports_a_final_error_inside_its_radius():
    """A deploy phase reports each episode's final error as the task scores it, over its last second. A fixed 50
    steps is the whole of a 20 Hz arm's 2.5 s reach: reaches that ended within 3 cm were reported at 6 cm."""
    from pathlib import Path

    from tether.pipeline.stages import Deployment

    env, trace, _ = _expert_episode("arm", "reach", seed=0)
    s = score(env.contract, trace)
    phase = Deployment()
    phase.extend(Deployment.episode(Path("reach_0"), s, {}, 2.5))
    assert s.success and phase.successes == [True]
    assert phase.final_error == s.final_error == float(s.error[-int(env.contract.rate_hz):].mean())
    assert phase.final_error < env.task.success_radius and phase.final_error < 0.5 * float(s.error.mean()), s


def test_pipeline_config_refuses_bad_fine_tuning_rounds_and_target():
    from tether.pipeline.run import PipelineConfig

    for bad, match in (({"finetune_rounds": 0}, "fine-tuning rounds 0"),
                       ({"finetune_rounds": 2.5}, "fine-tuning rounds 2.5"),
                       ({"finetune_target": 1.5}, "fine-tuning target 1.5"),
                       ({"finetune_target": 0}, "fine-tuning target 0"),
                       ({"robot_rl": "yes"}, "robot RL 'yes'"),
                       ({"robot_rl_episodes": 0}, "robot-RL episodes 0"),
                       ({"robot_rl_explore": 2.0}, "robot-RL exploration 2.0"),
                       ({"robot_rl_config": {"prior_episodes": 0}}, "prior_episodes=0"),
                       ({"robot_rl_config": {"utd": 0}}, "utd=0"),
                       ({"robot_rl_config": {"no_such": 1}}, "unknown robot RL option 'no_such'"),
                       ({"finetune_demo_share": 0}, "demonstration share 0"),
                       ({"finetune_demo_share": float("nan")}, "demonstration share nan"),
                       ({"finetune_replay": "no"}, "fine-tuning replay 'no'"),
                       ({"finetune_replay": None}, "fine-tuning replay None"),
                       ({"confirm": "yes"}, "confirm 'yes'"),
                       ({"finetune_dagger": 1}, "fine-tuning DAgger 1"),
                       ({"finetune_fresh": "no"}, "fine-tuning fresh policy 'no'"),
                       ({"explore": 1.5}, "probe exploration 1.5"),
                       ({"explore": float("nan")}, "probe exploration nan")):
        with pytest.raises(TetherError, match=match):
            PipelineConfig(**bad).resolved()
    # the probe's first scale: the robot's own (a quadrotor's rate setpoints tilt it past recovery sooner)
    assert PipelineConfig().resolved().explore == 0.075
    assert PipelineConfig(robot="arm").resolved().explore == 0.15
    assert PipelineConfig(explore=0.3).resolved().explore == 0.3


def test_the_kept_policys_fresh_episodes_run_only_when_asked_for_and_the_budget_has_room(tmp_path):
    """The kept policy's rerun on fresh episodes is skipped, with the reason, when the robot-time budget cannot
    hold it or --no-confirm turned it off; nothing is deployed then (a deploy here would fail: no robot is served)."""
    from tether.pipeline.run import PipelineConfig, _confirm

    cfg = PipelineConfig(episodes=4, out=tmp_path / "run").resolved()
    lines: list[str] = []

    def timed(_name, _fn):
        raise AssertionError("deployed")

    assert _confirm(cfg, "fine-tuned", tmp_path, 300.0 - 39.0, 10.0, lines.append, timed) is None
    assert "[confirm] skipped" in lines[-1] and "leans high" in lines[-1]
    cfg.confirm = False
    assert _confirm(cfg, "fine-tuned", tmp_path, 0.0, 10.0, lines.append, timed) is None
    cfg.confirm = True
    deployed: list[str] = []
    assert _confirm(cfg, "fine-tuned", tmp_path, 300.0 - 40.0, 10.0, lines.append,
                    lambda name, _fn: deployed.append(name) or "ran") == "ran"
    assert deployed == ["deploy"] and "4 episodes from start states no other phase used" in lines[-1]


def test_each_run_seed_serves_its_own_start_states():
    """Served episodes' seeds: seed 0 keeps 1000 + i (and the kept policy's fresh episodes 2000 + i); another run
    seed meets none of seed 0's start states, in any phase, and every seed fits the served robot's 32-bit range."""
    from tether.pipeline.stages import CONFIRM_SEED0, EPISODE_SEED0, served_seed

    assert [served_seed(0, EPISODE_SEED0, i) for i in range(3)] == [1000, 1001, 1002]
    assert served_seed(0, CONFIRM_SEED0, 0) == 2000

    def seeds(run_seed):  # every phase's episodes: up to 1000 robot-RL ones, and the fresh ones
        return {served_seed(run_seed, s0, i) for s0 in (EPISODE_SEED0, CONFIRM_SEED0) for i in range(1000)}

    assert len(seeds(0)) == 2000 and not seeds(0) & seeds(1) and not seeds(1) & seeds(7)
    assert all(0 <= s < 2**32 for s in seeds(2**32 - 1))


def test_imitation_fine_tuning_data_follows_the_settings():
    """An imitation learner's fine-tuning records a third as many demonstrations as training did (rounded down)
    and replays the training DR's beside them, unless the config says otherwise."""
    from tether.pipeline.run import PipelineConfig
    from tether.pipeline.stages import finetune_demo_count

    for robot, task, algo in (("arm", "push", "bc-diffusion"), ("legged", "velocity", "bc-mlp")):
        cfg = PipelineConfig(robot=robot, task=task).resolved()
        assert (cfg.algo, finetune_demo_count(cfg), cfg.finetune_replay) == (algo, 100, True)
    for episodes, count in ((6, 2), (8, 2), (3, 1)):
        cfg = PipelineConfig(robot="arm", task="push", demo_episodes=episodes).resolved()
        assert finetune_demo_count(cfg) == count
    mine = PipelineConfig(robot="legged", task="velocity", finetune_demo_share=0.5, finetune_replay=True).resolved()
    assert (finetune_demo_count(mine), mine.finetune_replay) == (150, True)


def test_identification_keeps_the_robots_window_cap(tmp_path, monkeypatch):
    """The loop's identification fits a legged robot on at most 32 windows (its replays are the costly ones: the
    pipeline's time bound) and leaves the others at sysid's own default."""
    import types

    import tether.calibration.recordings as recordings
    import tether.policies.checkpoint as checkpoint
    from tether.pipeline.run import PipelineConfig
    from tether.pipeline.stages import identify

    seen: list[dict] = []

    def fake_identify(paths, **kw):
        seen.append(kw)
        raise TetherError("no windows")

    monkeypatch.setattr(recordings, "identify_recordings", fake_identify)
    monkeypatch.setattr(checkpoint, "load_checkpoint", lambda path: types.SimpleNamespace(contract=None))
    for robot, task in (("legged", "velocity"), ("legged", "stand"), ("quadrotor", "hover"), ("arm", "reach")):
        cfg = PipelineConfig(robot=robot, task=task, out=tmp_path / robot).resolved()
        assert identify(cfg, tmp_path, [tmp_path / "bag"], lambda line: None) == (None, {"error": "no windows"})
    assert [kw.get("max_windows") for kw in seen] == [32, 32, None, None]


def test_training_settings_follow_the_learner_they_were_written_for():
    """A task's defaults hold settings for its own learner (push: a diffusion policy with a 4-observation window);
    another learner chosen with --algo gets the robot's settings when it is the robot's learner, else none. A task
    without its own defaults (waypoints) trains with the robot's: PPO, a 12-observation window, DAgger rounds."""
    from tether.pipeline.config import PipelineConfig, algo_config

    assert algo_config("arm", "push", "bc-diffusion") == {"n_obs_steps": 4}
    assert algo_config("arm", "push", "ppo") == algo_config("arm", "reach", "ppo") == {}
    assert algo_config("quadrotor", "waypoint", "ppo") == algo_config("quadrotor", "hover", "ppo") == {
        "history": 12, "dagger_rounds": 4}
    assert algo_config("quadrotor", "waypoint", "sac") == algo_config("legged", "velocity", "ppo") == {}
    assert algo_config("legged", "velocity", "bc-mlp") == {"history": 4, "batch_size": 512, "dagger_rounds": 2}
    assert algo_config("legged", "velocity", "bc-diffusion") == {}  # the trot's student is now regression BC
    waypoint, hover = PipelineConfig(task="waypoint").resolved(), PipelineConfig().resolved()
    assert (waypoint.algo, waypoint.train_steps, waypoint.finetune_steps) == (
        "ppo", hover.train_steps, hover.finetune_steps)


def test_pipeline_refuses_a_checkpoint_its_robot_cannot_serve_before_any_work(tmp_path):
    """A quadrotor checkpoint given to the arm's pipeline is refused by the arm adapter's contract check, naming
    what it cannot serve, before anything trains or a robot starts; arm push (the cube from a tracker) passes."""
    from tether.contract import ContractError
    from tether.pipeline.run import PipelineConfig, check_servable
    from tether.policies.gaussian import GaussianPolicy, default_gaussian_config
    from tether.ros.protocols.px4 import quad_contract

    c = quad_contract()
    GaussianPolicy(c, default_gaussian_config(c.obs_size, c.action_size)).save(tmp_path / "hover")
    with pytest.raises(ContractError, match="arm-ros2-control adapter cannot serve contract quadrotor/hover"):
        check_servable(PipelineConfig(robot="arm", checkpoint=str(tmp_path / "hover")).resolved())
    check_servable(PipelineConfig(robot="arm", task="push").resolved())


def test_pipeline_refuses_a_task_a_robot_cannot_score_before_any_work(tmp_path, capsys):
    """Legged velocity tracking is scored on the base velocity, which a robot's LowState does not carry: a bag
    has it from the robot's odometry, which the Unitree adapter records, but a dataset (what ``--finetune h2o``
    learns from) holds the observations alone. The loop says so in one line with exit code 2 and writes nothing,
    where it used to train first and fail later. Every task the loop runs passes the same check, legged velocity
    included (the task's own defaults: imitation under the default DR)."""
    from tether.cli import main
    from tether.pipeline.run import PipelineConfig, check_servable

    out = tmp_path / "run"
    assert main(["pipeline", "--robot", "legged", "--task", "velocity", "--finetune", "h2o", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "legged/velocity cannot be scored on a robot" in err[0] and "base_lin_vel" in err[0]
    assert not out.exists()
    for robot, task in (("quadrotor", "hover"), ("quadrotor", "waypoint"), ("arm", "reach"), ("arm", "push"),
                        ("legged", "stand"), ("legged", "velocity")):
        check_servable(PipelineConfig(robot=robot, task=task).resolved())
    cfg = PipelineConfig(robot="legged", task="velocity").resolved()
    assert (cfg.algo, cfg.dr, cfg.latency_ms) == ("bc-mlp", "default", 10.0)
    assert (PipelineConfig(robot="legged").resolved().dr, PipelineConfig().resolved().latency_ms) == ("wide", 20.0)


def test_pipeline_cli_passes_the_served_robots_latency(tmp_path, monkeypatch):
    """``tether pipeline --latency-ms MS`` sets the served robot's one-way delay (the served robot's network is part
    of what the loop is checked on); without it the task's default holds."""
    from tether.cli import main
    from tether.pipeline import run

    seen = []
    monkeypatch.setattr(run, "run_pipeline", lambda cfg, log=print: seen.append(cfg.resolved()))
    for argv, want in ((["--latency-ms", "45"], 45.0), ([], 20.0), (["--robot", "legged", "--task", "velocity"], 10.0)):
        assert main(["pipeline", *argv, "--out", str(tmp_path / f"p{len(seen)}")]) == 0
        assert seen[-1].latency_ms == want


def test_training_stages_set_torch_threads_by_learner_and_restore_them():
    """An imitation learner trains on IMITATION_THREADS where the cores are idle (or their use is not known) and
    on one where only one is idle, an RL learner on one; the count before is restored after, an error included
    (deploy and the served robot keep their one thread)."""
    import torch

    from tether.pipeline.stages import IMITATION_THREADS, training_threads

    before = torch.get_num_threads()
    cores = float(os.cpu_count() or 1)
    for algo, idle, want in (("bc-mlp", cores, IMITATION_THREADS), ("bc-diffusion", None, IMITATION_THREADS),
                             ("bc-mlp", 0.9, 1), ("bc-diffusion", 1.2, 1), ("ppo", cores, 1)):
        with training_threads(algo, lambda idle=idle: idle):
            assert torch.get_num_threads() == want, (algo, idle)
        assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), training_threads("bc-flow"):
        raise RuntimeError("a failed stage")
    assert torch.get_num_threads() == before and IMITATION_THREADS == min(2, os.cpu_count() or 1)


def test_idle_cores_sees_a_busy_core():
    """The idle-core count the imitation learners' threads follow drops by a core while another process spins
    (whatever else runs beside the test only lowers it further)."""
    import subprocess
    import sys

    from tether.pipeline.stages import idle_cores, imitation_threads

    cores = os.cpu_count() or 1
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # the spinner is running
        idle = idle_cores(0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert idle is not None and 0.0 <= idle <= cores - 0.6, idle
    if cores == 2:
        assert imitation_threads(idle) == 1


def test_sim_fine_tuning_checks_every_stretch_and_keeps_the_best(tmp_path):
    """Fine-tuning is checked under the identified DR every ``finetune_steps`` (a last stretch shorter than that
    is checked too) and goes on until the target or the round limit; the kept weights are the best check's."""
    import json as _json

    from tether.pipeline.run import PipelineConfig
    from tether.pipeline.stages import sim_finetune
    from tether.policies.checkpoint import load_checkpoint
    from tether.policies.rl.ppo import PPOConfig, train_ppo

    parent = train_ppo("tether/QuadrotorHover-v0", 32, PPOConfig(num_envs=2, rollout_steps=16), seed=0)
    ckpt = parent.save(tmp_path / "parent")
    dr = tmp_path / "dr.json"
    dr.write_text(_json.dumps([{"target": "body_mass", "distribution": "uniform", "operation": "scale",
                                "range": [1.1, 1.2]}]))
    def checks_of(lines: list[str], run: str) -> list[int]:
        return [int(line.split("after ")[1].split(" steps")[0].replace(",", "")) for line in lines
                if f"{run}, after " in line]

    for steps, rounds, checks, fresh in ((2048, 3, [2048, 4096, 6144], False), (3000, 1, [2048], True)):
        lines: list[str] = []
        cfg = PipelineConfig(finetune_steps=steps, finetune_rounds=rounds, finetune_target=1.0, sim_eval_episodes=1,
                             finetune_fresh=fresh, finetune_dagger=False, out=tmp_path / f"run{steps}").resolved()
        path, score = sim_finetune(cfg, ckpt, dr, lines.append)
        assert checks_of(lines, "warm start") == checks, lines  # a 32-step hover policy never reaches the target
        # short of the target, a fresh policy (the parent's PPO settings: 32-step iterations here) trains under
        # the same DR and is checked too (when asked to)
        assert checks_of(lines, "fresh") == ([2976] if fresh else []), lines
        kept = load_checkpoint(path).extra
        assert score == 0.0 and kept["kept_at_steps"] == checks[0] and kept["kept_run"] == "warm start"  # ties
    # under the training DR (nothing identified) a fresh policy would repeat the original training: not run
    lines = []
    cfg = PipelineConfig(finetune_steps=2048, finetune_rounds=1, finetune_target=1.0, sim_eval_episodes=1,
                         out=tmp_path / "unidentified").resolved()
    sim_finetune(cfg, ckpt, "default", lines.append)
    assert checks_of(lines, "warm start") == [2048] and not checks_of(lines, "fresh"), lines
    assert not [line for line in lines if "DAgger" in line], lines  # nor DAgger: nothing identified to label


def test_metric_refuses_unknown_tasks_and_empty_runs():
    from dataclasses import replace

    contract = replace(TetherEnv("quadrotor", "hover").contract, task="backflip")
    with pytest.raises(TetherError, match="no task quadrotor/backflip to score"):
        score(contract, np.zeros((3, contract.obs_size)))
    with pytest.raises(TetherError, match="expected at least two control steps"):
        score(TetherEnv("quadrotor", "hover").contract, np.zeros((0, 22)))


def test_pipeline_runs_end_to_end_on_a_small_budget(tmp_path):
    """Every stage on a tiny budget: train, zero-shot deploy, probe with exploration, identify from the bags,
    fine-tune in sim under the identified DR, deploy again, report (what closes the gap is measured by
    benchmarks/transfer.py and make demo; this checks the plumbing and the files)."""
    from tether.pipeline.run import PipelineConfig, run_pipeline
    from tether.policies.checkpoint import load_checkpoint
    from tether.ros.recorder import read_bag
    from tether.sim.randomization import terms_from_json

    # robot RL "on" (it runs whatever the served robot scores) with one episode and a small learner
    cfg = PipelineConfig(train_steps=4096, episodes=1, probe_episodes=1, episode_seconds=4.0, finetune_steps=2048,
                         sim_eval_episodes=2, out=tmp_path / "run", domain_id=97, robot_rl="on", robot_rl_episodes=1,
                         robot_rl_config={"prior_episodes": 2, "distill_steps": 50, "critic_warmup": 20, "utd": 1,
                                          "batch_size": 32})
    lines: list[str] = []
    summary = run_pipeline(cfg, log=lines.append)
    run = tmp_path / "run"
    assert any("[identify]" in line for line in lines) and any("done in" in line for line in lines)
    for name in ("report.md", "success.png", "tracking.png", "summary.json", "config.json"):
        assert (run / name).is_file(), name
    report = (run / "report.md").read_text()
    assert "served-robot success" in report and "![Tracking" in report and "Robot time used" in report
    bags = sorted((run / "bags").iterdir())
    # as ros2 bag -o names them
    assert [b.name for b in bags] == ["confirm-0", "probe-0", "rl-0", "robotrl-0", "tuned-0", "zeroshot-0"]
    assert sum(1 for _ in read_bag(bags[-1], topics=["/tether/obs"])) > 20
    saved = json.loads((run / "summary.json").read_text())
    # a 4096-step policy may crash at once: a vehicle resting on the ground leaves nothing to identify, and the
    # loop says so and fine-tunes under the training DR; when it flew long enough, the preset is the fit's
    if saved["identified"].get("error"):
        assert "no replay window" in saved["identified"]["error"] and "Not identified" in report
        assert any("not identified" in line for line in lines)
        assert any("under the training DR 'wide'" in line for line in lines)
    else:
        preset = terms_from_json((run / "identify" / "dr_identified.json").read_text())
        assert any(t.target == "body_mass" for t in preset)  # centred on the fit of the served robot's mass
    sim = load_checkpoint(run / "train" / "checkpoint")
    tuned = load_checkpoint(run / "finetune" / "checkpoint")
    assert tuned.contract == sim.contract
    assert saved["served_success_tuned"] == summary["served_success_tuned"]
    assert 0 < saved["robot_seconds"] <= cfg.robot_seconds_budget and saved["robot_episodes"] == 6
    assert saved["kept"] in ("zero-shot", "fine-tuned", "robot RL")
    # the kept policy ran once more from a start state no other phase used (the last one served), and that
    # episode's success, not the score it was chosen on, is what the run reports for it
    assert saved["kept_confirmed"] and json.loads((run / "real_params.json").read_text())["seed"] == 2000
    assert sum(1 for _ in read_bag(run / "bags" / "confirm-0", topics=["/tether/obs"])) > 20
    chosen_on = {"zero-shot": saved["served_success_zero_shot"], "fine-tuned": saved["served_success_tuned"],
                 "robot RL": saved["robot_rl"]["served_success"]}
    assert saved["served_success_kept_selection"] == chosen_on[saved["kept"]]  # the selection score, kept apart
    assert "on 1 fresh episode it succeeded in" in report
    assert f"| the kept policy ({saved['kept']}) on fresh episodes | {saved['served_success_kept']:.0%} |" in report
    # robot RL: one guarded, recorded episode with exploration, learned from, then its actor deployed and scored
    rl = saved["robot_rl"]
    assert saved["robot_rl_skipped"] is None and "did not run" not in report
    assert rl["episodes"] == 1 and rl["robot_seconds"] > 0 and rl["served_success"] in (0.0, 1.0)
    assert saved["checkpoints"]["robot_rl"] == str(run / "robot_rl" / "round-0" / "checkpoint")  # the one round
    actor = load_checkpoint(saved["checkpoints"]["robot_rl"])
    assert actor.contract == sim.contract and actor.extra["algo"] == "robot_rl"
    assert actor.extra["robot_transitions"] > 0 and actor.extra["gradient_updates"] > 0
    # round 0's actor learned from every robot episode recorded before it, each from its bag, cut where the task
    # says; round 0's own episode came after it
    from tether.data.robot_runs import robot_episodes

    eps = [ep for name in ("zeroshot-0", "probe-0", "tuned-0") for ep in robot_episodes(run / "bags" / name,
                                                                                     sim.contract)]
    assert actor.extra["robot_transitions"] == sum(len(ep) for ep in eps)
    eps += robot_episodes(run / "bags" / "rl-0", sim.contract)
    assert all(np.isfinite(ep.obs).all() and np.abs(ep.action).max() <= 1.0 for ep in eps)
    assert all(ep.reward[-1] < -5 for ep in eps if ep.terminal)  # a crash ends one, with the task's penalty
    assert actor.config["history"] == sim.config.get("history", 1)  # the deployed policy's history is kept
    assert "after robot RL" in report and any("[robot RL]" in line for line in lines)
    guard = [m.msg.data for m in read_bag(run / "bags" / "rl-0", topics=["/tether/guard"])]
    assert guard  # every robot-RL command went through the deploy guard (its reason recorded per tick)


@pytest.mark.slow
def test_loop_closes_on_a_quadrotor_with_twice_the_latency_it_trained_for(tmp_path):
    """The loop as `make demo` runs it (wide DR, a 12-observation actor), on a served robot outside that DR: 40 ms
    each way (wide DR covers 0-3 control steps of latency) and 10 % heavier. Identification from the bags must find
    the mass, and sim fine-tuning under the identified DR must give a policy that works on the robot as identified
    (a warm start that wrecks the parent, as lr 1e-3 with a moving normaliser did, stays far below).

    What the served robot itself scores after fine-tuning (0 % -> 100 % here when the machine is quiet) is
    measured by benchmarks/transfer.py, not asserted: with two episodes per stage and the served robot sharing
    two cores with the rest of the suite, its timing, and so its score, is not the code's alone."""
    from tether.pipeline.run import PipelineConfig, run_pipeline

    cfg = PipelineConfig(episodes=2, probe_episodes=2, sim_eval_episodes=10, latency_ms=40.0,
                         real={"scale": {"body_mass": 1.1}}, out=tmp_path / "run", domain_id=96, seed=0)
    s = run_pipeline(cfg, log=lambda _m: None)
    assert "sim_success" in s["identified"], s["identified"]  # identified (else: why not, from the bags)
    on_identified = s["identified"]["sim_success"]
    print({k: s[k] for k in ("sim_success", "served_success_zero_shot", "served_success_tuned",
                             "served_final_error_zero_shot", "served_final_error_tuned", "robot_seconds")},
          on_identified)
    assert s["sim_success"] >= 0.8
    fit = s["identified"]["report"]["scale"]
    assert abs(fit["body_mass"] - 1.1) < 0.11  # within 10 % of the hidden mass
    assert on_identified["tuned"] >= 0.8 and on_identified["tuned"] >= on_identified["zero_shot"]
    assert s["served_success_kept_selection"] == max(s["served_success_tuned"], s["served_success_zero_shot"])
    assert 0 < s["robot_seconds"] <= cfg.robot_seconds_budget and s["robot_episodes"] == 8  # 2 more, fresh, kept
