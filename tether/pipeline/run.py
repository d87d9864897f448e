"""``tether pipeline``: the loop from simulation to a robot it never saw and back, with what each stage bought.

Layout of the run folder::

    train/            metrics.csv, tb/ (TensorBoard), checkpoint/      (the sim-trained, zero-shot policy)
    real_params.json  the served robot's hidden parameters (never shown to the policy)
    bags/             zeroshot-<i>/, probe-<i>/, tuned-<i>/, confirm-<i>/ (rosbag2 MCAP, as `ros2 bag record -o`)
    identify/         dr_identified.json, sysid.json, residual plots   (real-to-sim identification)
    data/real/        the recorded episodes as a LeRobot-v3 dataset
    finetune/         checkpoint/ (the fine-tuned policy: the best check under the identified DR)
    robot_rl/         round-<i>/checkpoint/ (robot RL's actor in each round, when it runs; bags/rl-<i>/ its episodes)
    report.md, *.png  the report

The policy finally kept is the one the served robot scored best (success, then final error), never one chosen
by the simulator or by held-out data alone. The best of several scores leans high (the luck of the episodes it
was chosen on counts for it), so while the robot-time budget allows, the kept policy then runs as many episodes
again from start states no other phase used, and those are the success the run reports for it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from tether.errors import TetherError
from tether.pipeline.config import KEEP_TARGET, ROBOT_DEFAULTS, PipelineConfig  # noqa: F401  (re-exported: the CLI's)
from tether.pipeline.stages import (
    CONFIRM_SEED0,
    Deployment,
    Log,
    deploy_phase,
    episode_seconds,
    hybrid_finetune,
    identify,
    probe_phase,
    real_dataset,
    sim_finetune,
    sim_success,
    train,
)


def check_servable(cfg: PipelineConfig) -> None:
    """Refuse, before anything trains, a task or checkpoint the robot's adapter cannot serve (ContractError
    naming the fields), or whose success cannot be scored from what a robot records (its observations, plus the
    state its adapter records beside them: legged velocity tracking needs the base velocity, which a Unitree
    robot's odometry gives), which deploy would otherwise find only after training had run."""
    import gymnasium as gym

    import tether.sim  # noqa: F401  (registers the envs)
    from tether.policies.checkpoint import load_checkpoint
    from tether.policies.envs import env_contract
    from tether.ros.protocols import adapter_class
    from tether.sim.tasks.scoring import score_episode, transition_rewards

    if cfg.checkpoint:
        contract = load_checkpoint(cfg.checkpoint).contract
    else:
        env = gym.make(cfg.env_id)
        try:
            contract = env_contract(env, cfg.env_id)
        finally:
            env.close()
    adapter = adapter_class(cfg.adapter)
    adapter.check_contract(contract)
    obs = np.zeros((2, contract.obs_size))
    try:  # a two-step recording, scored as the robot's episodes will be: its observations and recorded state
        score_episode(contract, obs, state={k: np.zeros((2, n)) for k, n in adapter.recorded_state})
        if cfg.finetune != "sim":  # learning from the robot's transitions: rewards from what a dataset holds
            transition_rewards(contract, obs[:1], np.zeros((1, contract.action_size)), obs[1:])
    except TetherError as exc:
        raise TetherError(f"{cfg.robot}/{cfg.task} cannot be scored on a robot: {exc}; the loop needs a task whose "
                          f"success a robot's own recording shows{' (try --finetune sim)' * (cfg.finetune != 'sim')} "
                          f"(train this one in sim: tether train {cfg.env_id})") from None


def run_pipeline(cfg: PipelineConfig, log: Log = print) -> dict[str, Any]:
    from tether.pipeline.report import CONFIRM_PHASE, write_report

    cfg = cfg.resolved()
    check_servable(cfg)
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "config.json").write_text(json.dumps(asdict(cfg), indent=2, default=str))
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        value = fn()
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t
        return value

    per_episode = episode_seconds(cfg)
    planned = (2 * cfg.episodes + cfg.probe_episodes) * per_episode
    if planned > cfg.robot_seconds_budget:
        raise TetherError(f"{2 * cfg.episodes + cfg.probe_episodes} robot episodes of {per_episode:.0f} s exceed the "
                          f"robot-time budget of {cfg.robot_seconds_budget:.0f} s; expected fewer episodes")
    log(f"tether pipeline: {cfg.robot}/{cfg.task} → run folder {cfg.out}")
    log(f"      served robot: {cfg.real_backend} {cfg.robot}, unseen parameters {cfg.real.get('scale', cfg.real)}, "
        f"{cfg.latency_ms:g} ms each way, over ROS 2 DDS ({cfg.adapter})")
    if cfg.checkpoint:
        ckpt = Path(cfg.checkpoint)
        log(f"[train] skipped: starting from {ckpt}")
    else:
        ckpt = timed("train", lambda: train(cfg, log))
    sim0 = timed("sim eval", lambda: sim_success(cfg, ckpt))
    log(f"      sim success {sim0:.0%}")
    log(f"[zero-shot] {cfg.episodes} episodes on the served robot")
    zero = timed("deploy", lambda: deploy_phase(cfg, ckpt, "zeroshot", cfg.episodes, log))
    log(f"[probe] {cfg.probe_episodes} episodes with bounded exploration (up to {cfg.explore:g} of each action's "
        f"range)")
    probe, probe_scales = timed("deploy", lambda: probe_phase(cfg, ckpt, log))
    recorded = zero.bags + probe.bags
    identified: dict[str, Any] | None = None
    dr_file = None
    if cfg.finetune == "sim":
        dr_file, identified = timed("identify", lambda: identify(cfg, ckpt, recorded, log))
        tune_dr = cfg.dr if dr_file is None else dr_file  # nothing identified: go on under the training DR
        # the deployed policy under the identified DR: the report's "zero-shot", and fine-tuning's first check
        zero_on_id = None if dr_file is None else timed("sim eval", lambda: sim_success(cfg, ckpt, dr_file))
        tuned, tuned_score = timed("fine-tune", lambda: sim_finetune(cfg, ckpt, tune_dr, log, zero_on_id))
        if dr_file is not None:
            on_identified = {"zero_shot": zero_on_id, "tuned": tuned_score}
            log(f"      in sim under the identified DR: {on_identified['zero_shot']:.0%} zero-shot → "
                f"{on_identified['tuned']:.0%} fine-tuned")
            identified["sim_success"] = on_identified
    else:
        dataset = timed("dataset", lambda: real_dataset(cfg, ckpt, recorded, log))
        tuned = timed("fine-tune", lambda: hybrid_finetune(cfg, ckpt, dataset, log))
    sim1 = timed("sim eval", lambda: sim_success(cfg, tuned))
    log(f"      fine-tuned policy on the nominal sim robot: {sim1:.0%} (it is tuned for the robot as identified)")
    log(f"[deploy] the fine-tuned policy, {cfg.episodes} episodes")
    after = timed("deploy", lambda: deploy_phase(cfg, tuned, "tuned", cfg.episodes, log))
    phases = {"zero-shot": zero, "probe": probe, "fine-tuned": after}
    # (name, checkpoint, its evaluation on the robot); on a tie the later stage is kept
    candidates = [("zero-shot", ckpt, zero), ("fine-tuned", tuned, after)]
    robot_rl_summary: dict[str, Any] | None = None
    used = sum(p.robot_seconds for p in phases.values())
    robot_rl_skipped = _robot_rl_skip(cfg, candidates, sim0, used, per_episode)
    if robot_rl_skipped is not None and cfg.robot_rl != "off":
        log(f"[robot RL] skipped: {robot_rl_skipped}")
    if robot_rl_skipped is None:
        from tether.pipeline.robot_rl import robot_rl

        start = _best(candidates)
        rl_ckpt, rounds = timed("robot RL", lambda: robot_rl(cfg, start[1], dr_file or cfg.dr, recorded + after.bags,
                                                             used, log))
        log(f"[deploy] the robot-RL policy, {cfg.episodes} episodes")
        rl_after = timed("deploy", lambda: deploy_phase(cfg, rl_ckpt, "robotrl", cfg.episodes, log))
        phases.update({"robot RL": rounds, "after robot RL": rl_after})
        candidates.append(("robot RL", rl_ckpt, rl_after))
        robot_rl_summary = {"start": start[0], "episodes": len(rounds.bags), "robot_seconds": rounds.robot_seconds,
                            "served_success": rl_after.success_rate, "served_final_error": rl_after.final_error}
    kept_name, chosen, kept_phase = _best(candidates)
    confirm = _confirm(cfg, kept_name, chosen, sum(p.robot_seconds for p in phases.values()), per_episode, log,
                       timed)
    if confirm is not None:
        phases[CONFIRM_PHASE] = confirm
    robot_s = sum(p.robot_seconds for p in phases.values())
    summary = {
        "robot": cfg.robot, "task": cfg.task, "env_id": cfg.env_id, "algo": cfg.algo, "finetune": cfg.finetune,
        "sim_success": sim0, "sim_success_tuned": sim1,
        "served_success_zero_shot": zero.success_rate, "served_success_tuned": after.success_rate,
        "served_final_error_zero_shot": zero.final_error, "served_final_error_tuned": after.final_error,
        # the kept policy's success on fresh episodes when they ran, else the score it was chosen on
        "served_success_kept": (kept_phase if confirm is None else confirm).success_rate,
        "served_success_kept_selection": kept_phase.success_rate,
        "kept": kept_name, "kept_confirmed": confirm is not None,
        "robot_seconds": robot_s, "robot_episodes": sum(len(p.bags) for p in phases.values()),
        "identified": identified, "probe_explore": probe_scales, "robot_rl": robot_rl_summary,
        "robot_rl_skipped": robot_rl_skipped,
        "timings_s": timings, "total_s": time.perf_counter() - t0,
        "checkpoints": {"sim": str(ckpt), "finetuned": str(tuned), "kept": str(chosen),
                        **({"robot_rl": str(candidates[-1][1])} if robot_rl_summary else {})},
        "bags": [str(b) for p in phases.values() for b in p.bags],
    }
    report = write_report(cfg, summary, phases)
    (cfg.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    share = f"{summary['served_success_kept'] / sim0:.0%} of sim's {sim0:.0%}" if sim0 > 0 else "sim success 0%"
    rl_text = f" → {robot_rl_summary['served_success']:.0%} after robot RL" if robot_rl_summary else ""
    fresh = (f"{confirm.success_rate:.0%} on {len(confirm.successes)} fresh episode(s), " if confirm is not None
             else "on the episodes it was chosen on, ")
    log(f"done in {summary['total_s'] / 60:.1f} min, {robot_s / 60:.1f} min of robot time: served-robot success "
        f"{zero.success_rate:.0%} zero-shot → {after.success_rate:.0%} fine-tuned{rl_text} (kept: {summary['kept']}, "
        f"{fresh}{share}); report: {report}")
    return summary


def _best(candidates: list[tuple[str, Path, Deployment]]) -> tuple[str, Path, Deployment]:
    """The policy the served robot scored best (success, then final error); a tie goes to the later stage."""
    best = candidates[0]
    for c in candidates[1:]:
        if (c[2].success_rate, -c[2].final_error) >= (best[2].success_rate, -best[2].final_error):
            best = c
    return best


def _confirm(cfg: PipelineConfig, name: str, checkpoint: Path, used_s: float, per_episode: float, log: Log,
             timed: Callable[[str, Callable[[], Any]], Any]) -> Deployment | None:
    """The kept policy's ``cfg.episodes`` episodes from start states no other phase used, when ``cfg.confirm``
    asks for them and the robot-time budget has room; None otherwise (the run then reports the score the policy
    was chosen on, and says so). Why: choosing the best of two or three scores on the same episodes keeps the
    policy that was luckiest on them as well, so that score overstates what it does next."""
    if not cfg.confirm:
        return None
    if used_s + cfg.episodes * per_episode > cfg.robot_seconds_budget:
        log(f"[confirm] skipped: {used_s:.0f} s of robot time used leaves no room in the "
            f"{cfg.robot_seconds_budget:.0f} s budget for {cfg.episodes} more episodes; the kept policy's success "
            "is the score it was chosen on, which leans high")
        return None
    log(f"[confirm] the kept policy ({name}), {cfg.episodes} episodes from start states no other phase used")
    return timed("deploy", lambda: deploy_phase(cfg, checkpoint, "confirm", cfg.episodes, log,
                                                seed0=CONFIRM_SEED0))


def _robot_rl_skip(cfg: PipelineConfig, candidates: list[tuple[str, Path, Deployment]], sim0: float,
                   used_s: float, per_episode: float) -> str | None:
    """Why robot RL does not run, or None when it does: ``cfg.robot_rl`` "on", or "auto" while the best policy so
    far keeps less than KEEP_TARGET of sim success; and only while the budget leaves room for one robot-RL episode
    and the evaluation of its result. The one reason goes to the log and the report."""
    from tether.policies.algos import IMITATION_ALGOS
    from tether.policies.checkpoint import load_checkpoint

    if cfg.robot_rl == "off":
        return "it was turned off (--robot-rl off)"
    name, start, scored = _best(candidates)
    algo = load_checkpoint(start).extra.get("algo")
    # robot RL's learner (SAC) goes on from an RL actor: not a denoiser, and not an imitator (bc-mlp) whose
    # exploration head never learned and whose task has a scripted expert to fine-tune against in sim instead
    if algo in IMITATION_ALGOS:
        return (f"the best policy so far ({name}) is a {algo} policy, learned by imitation; robot RL fine-tunes an "
                "actor trained by RL (PPO or SAC)")
    best = scored.success_rate
    if cfg.robot_rl == "auto" and (sim0 <= 0 or best >= KEEP_TARGET * sim0):
        return (f"the best policy so far ({name}, {best:.0%} on the served robot) already holds its share of sim "
                f"success ({KEEP_TARGET:.0%} of {sim0:.0%})" if sim0 > 0 else "sim success is 0%: nothing to hold")
    if used_s + (1 + cfg.episodes) * per_episode > cfg.robot_seconds_budget:
        return (f"{used_s:.0f} s of robot time used leaves no room in the {cfg.robot_seconds_budget:.0f} s budget "
                f"for an episode and {cfg.episodes} to evaluate it")
    return None


__all__ = ["Deployment", "PipelineConfig", "run_pipeline"]
