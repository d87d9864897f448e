"""``tether pipeline``: the loop from simulation to a robot it never saw and back, with what each stage bought.

Layout of the run folder::

    train/            metrics.csv, tb/ (TensorBoard), checkpoint/      (the sim-trained, zero-shot policy)
    real_params.json  the served robot's hidden parameters (never shown to the policy)
    bags/             zeroshot-<i>/, probe-<i>/, tuned-<i>/            (rosbag2 MCAP, as `ros2 bag record -o`)
    identify/         dr_identified.json, sysid.json, residual plots   (real-to-sim identification)
    data/real/        the recorded episodes as a LeRobot-v3 dataset
    finetune/         checkpoint/ (the fine-tuned policy: the best check under the identified DR)
    report.md, *.png  the report

The policy finally kept is the one the served robot scored best (success, then final error), never one chosen
by the simulator or by held-out data alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tether.pipeline.config import ROBOT_DEFAULTS, PipelineConfig  # noqa: F401  (re-exported: the CLI's)
from tether.pipeline.stages import (
    Deployment,
    Log,
    deploy_phase,
    episode_seconds,
    hybrid_finetune,
    identify,
    real_dataset,
    sim_finetune,
    sim_success,
    train,
)


def check_servable(cfg: PipelineConfig) -> None:
    """Refuse, before anything trains, a task the robot's adapter cannot serve (ContractError naming the fields):
    arm push observes the cube, and ros2_control has no object-pose input, which deploy found only after
    training had run."""
    import gymnasium as gym

    import tether.sim  # noqa: F401  (registers the envs)
    from tether.policies.checkpoint import load_checkpoint
    from tether.policies.envs import env_contract
    from tether.ros.protocols import adapter_class

    if cfg.checkpoint:
        contract = load_checkpoint(cfg.checkpoint).contract
    else:
        env = gym.make(cfg.env_id)
        try:
            contract = env_contract(env, cfg.env_id)
        finally:
            env.close()
    adapter_class(cfg.adapter).check_contract(contract)


def run_pipeline(cfg: PipelineConfig, log: Log = print) -> dict[str, Any]:
    from tether.pipeline.report import write_report

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
        from tether.errors import TetherError

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
    log(f"[probe] {cfg.probe_episodes} episodes with bounded exploration ({cfg.explore:g} of each action's range)")
    probe = timed("deploy", lambda: deploy_phase(cfg, ckpt, "probe", cfg.probe_episodes, log, explore=cfg.explore))
    recorded = zero.bags + probe.bags
    identified: dict[str, Any] | None = None
    if cfg.finetune == "sim":
        dr_file, identified = timed("identify", lambda: identify(cfg, ckpt, recorded, log))
        tune_dr = cfg.dr if dr_file is None else dr_file  # nothing identified: go on under the training DR
        tuned, tuned_score = timed("fine-tune", lambda: sim_finetune(cfg, ckpt, tune_dr, log))
        if dr_file is not None:
            on_identified = {"zero_shot": timed("sim eval", lambda: sim_success(cfg, ckpt, dr_file)),
                             "tuned": tuned_score}
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
    keep_tuned = (after.success_rate, -after.final_error) >= (zero.success_rate, -zero.final_error)
    chosen = tuned if keep_tuned else ckpt
    robot_s = zero.robot_seconds + probe.robot_seconds + after.robot_seconds
    summary = {
        "robot": cfg.robot, "task": cfg.task, "env_id": cfg.env_id, "algo": cfg.algo, "finetune": cfg.finetune,
        "sim_success": sim0, "sim_success_tuned": sim1,
        "served_success_zero_shot": zero.success_rate, "served_success_tuned": after.success_rate,
        "served_final_error_zero_shot": zero.final_error, "served_final_error_tuned": after.final_error,
        "served_success_kept": max(zero.success_rate, after.success_rate),
        "kept": "fine-tuned" if keep_tuned else "zero-shot",
        "robot_seconds": robot_s, "robot_episodes": len(zero.bags) + len(probe.bags) + len(after.bags),
        "identified": identified,
        "timings_s": timings, "total_s": time.perf_counter() - t0,
        "checkpoints": {"sim": str(ckpt), "finetuned": str(tuned), "kept": str(chosen)},
        "bags": [str(b) for b in zero.bags + probe.bags + after.bags],
    }
    report = write_report(cfg, summary, {"zero-shot": zero, "probe": probe, "fine-tuned": after})
    (cfg.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    ratio = summary["served_success_kept"] / sim0 if sim0 > 0 else float("nan")
    log(f"done in {summary['total_s'] / 60:.1f} min, {robot_s / 60:.1f} min of robot time: served-robot success "
        f"{zero.success_rate:.0%} zero-shot → {after.success_rate:.0%} fine-tuned (kept: {summary['kept']}, "
        f"{ratio:.0%} of sim's {sim0:.0%}); report: {report}")
    return summary


__all__ = ["Deployment", "PipelineConfig", "run_pipeline"]
