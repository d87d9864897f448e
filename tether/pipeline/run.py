"""The stages of ``tether pipeline``, each a plain function over a run folder so a stage can be rerun alone.

Layout of the run folder::

    train/            metrics.csv, tb/ (TensorBoard), checkpoint/   (the sim-trained policy)
    real_params.json  the served robot's hidden parameters (never shown to the policy)
    bags/             before-<i>/, after-<i>/ (before-<i>_0.mcap)  (rosbag2 MCAP, readable by ros2 bag / Foxglove)
    data/real/        the "before" bags as a LeRobot-v3 dataset    (what fine-tuning learns from)
    finetune/         checkpoint/                                   (the fine-tuned policy)
    report.md, *.png  the report

The served robot runs in its own process (``tether robot serve``), so the deploy talks to it only through
ROS 2 DDS on loopback, exactly as it would to a real robot. One robot process per episode plays the part
of an operator putting the robot back at its start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tether.errors import TetherError

Log = Callable[[str], None]
ENGAGE_SECONDS = 2.0

# Per robot: the task, the sim algorithm that trains it fastest, the adapter of the real robot, and the
# parameters of the "real" robot that the policy never saw in training.
ROBOT_DEFAULTS: dict[str, dict[str, Any]] = {
    "quadrotor": {"task": "hover", "algo": "ppo", "train_steps": 100_000, "adapter": "px4",
                  "real": {"scale": {"body_mass": 1.4, "motor_time_constant": 2.0}}},
    "arm": {"task": "reach", "algo": "sac", "train_steps": 30_000, "adapter": "arm-ros2-control",
            "real": {"scale": {"body_mass": 1.3, "joint_damping": 3.0}}},
    "legged": {"task": "stand", "algo": "ppo", "train_steps": 100_000, "adapter": "unitree",
               "real": {"scale": {"body_mass": 1.2, "actuator_gain": 0.8}}},
}


@dataclass
class PipelineConfig:
    robot: str = "quadrotor"
    task: str | None = None
    algo: str | None = None
    train_steps: int | None = None
    dr: str = "default"
    real_backend: str = "pybullet"
    real: dict[str, Any] | None = None
    episodes: int = 4
    latency_ms: float = 20.0  # one-way network delay to and from the served robot
    episode_seconds: float | None = None
    finetune_algo: str = "h2o"
    finetune_steps: int = 4000
    sim_eval_episodes: int = 10
    seed: int = 0
    domain_id: int | None = None
    out: Path = field(default_factory=lambda: Path("runs") / time.strftime("pipeline-%Y%m%d-%H%M%S"))

    def resolved(self) -> PipelineConfig:
        if self.robot not in ROBOT_DEFAULTS:
            raise TetherError(f"unknown robot {self.robot!r}; expected one of {', '.join(ROBOT_DEFAULTS)}")
        d = ROBOT_DEFAULTS[self.robot]
        return PipelineConfig(**{**asdict(self), "task": self.task or d["task"], "algo": self.algo or d["algo"],
                                 "train_steps": self.train_steps or d["train_steps"],
                                 "real": self.real if self.real is not None else d["real"],
                                 "out": Path(self.out)})

    @property
    def env_id(self) -> str:
        from tether.sim.registry import env_id

        return env_id(self.robot, self.task or ROBOT_DEFAULTS[self.robot]["task"])

    @property
    def adapter(self) -> str:
        return ROBOT_DEFAULTS[self.robot]["adapter"]


@dataclass
class Deployment:
    """What one deploy phase (several episodes on the served robot) produced."""

    bags: list[Path]
    errors: list[np.ndarray]
    successes: list[bool]
    loop_stats: list[dict[str, Any]]

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.successes)) if self.successes else 0.0


# ---------------------------------------------------------------------------------------------- stages
def train(cfg: PipelineConfig, log: Log) -> Path:
    from tether.policies.training import TrainSpec, run_training

    log(f"[1/6] train {cfg.algo} on {cfg.env_id} in MuJoCo, DR '{cfg.dr}', {cfg.train_steps:,} steps")
    spec = TrainSpec(env_id=cfg.env_id, algo=cfg.algo, steps=cfg.train_steps, out=cfg.out / "train",
                     seed=cfg.seed, dr=cfg.dr, eval_episodes=5, progress=True)
    _, path = run_training(spec)
    if path is None:
        raise TetherError("training produced no checkpoint")
    return Path(path)


def sim_success(cfg: PipelineConfig, checkpoint: Path) -> float:
    from tether.policies.checkpoint import load_policy
    from tether.policies.evaluation import evaluate_policy

    policy = load_policy(checkpoint)
    result = evaluate_policy(policy, cfg.env_id, episodes=cfg.sim_eval_episodes, seed=10_000 + cfg.seed)
    return float(result.success_rate or 0.0)


def _serve(cfg: PipelineConfig, params_file: Path, seed: int, domain_id: int, log_file: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tether.cli", "robot", "serve", "--robot", cfg.robot, "--backend", cfg.real_backend,
           "--params", str(params_file), "--loopback", "--domain-id", str(domain_id), "--seed", str(seed),
           "--latency", str(cfg.latency_ms)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=log_file.open("a"), stderr=subprocess.STDOUT, env=env)


def deploy_phase(cfg: PipelineConfig, checkpoint: Path, tag: str, log: Log) -> Deployment:
    """Run ``cfg.episodes`` episodes of ``checkpoint`` on freshly started served robots, recording each."""
    from tether.sim.tasks.scoring import score_episode
    from tether.policies.checkpoint import load_checkpoint
    from tether.data.topics import OBS_TOPIC
    from tether.ros.deploy import DeployConfig, deploy
    from tether.ros.recorder import read_bag

    contract = load_checkpoint(checkpoint).contract
    seconds = cfg.episode_seconds or _episode_seconds(cfg)
    params_file = cfg.out / "real_params.json"
    (cfg.out / "bags").mkdir(parents=True, exist_ok=True)
    domain_id = cfg.domain_id if cfg.domain_id is not None else 60 + (os.getpid() % 40)
    out = Deployment([], [], [], [])
    for i in range(cfg.episodes):
        bag = cfg.out / "bags" / f"{tag}-{i}"  # a rosbag2 directory holding <tag>-<i>_0.mcap
        params = {**cfg.real, "seed": 1000 + i}
        params_file.write_text(json.dumps(params, indent=2))
        server = _serve(cfg, params_file, 1000 + i, domain_id, cfg.out / "robot_server.log")
        try:
            result = deploy(DeployConfig(checkpoint=str(checkpoint), adapter=cfg.adapter, duration_s=seconds,
                                         record=str(bag), domain_id=domain_id, loopback=True, episode=i,
                                         robot_info_timeout_s=15.0, connect_timeout_s=30.0, transport="cyclonedds"),
                            log=lambda _m: None, install_signals=False)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        obs = np.array([np.asarray(m.msg.data) for m in read_bag(bag, topics=[OBS_TOPIC])])
        s = score_episode(contract, obs)
        out.bags.append(bag)
        out.errors.append(s.error)
        out.successes.append(s.success)
        out.loop_stats.append(result.as_dict())
        st = result.stats.as_dict()
        log(f"      {tag} episode {i + 1}/{cfg.episodes}: final error {s.final_error:.3f}, "
            f"{'success' if s.success else 'fail'}; loop {st.get('rate_hz', float('nan')):.1f} Hz, "
            f"misses {st.get('miss_rate', float('nan')):.1%}")
    return out


def _episode_seconds(cfg: PipelineConfig) -> float:
    from tether.sim.robots import make_robot
    from tether.sim.tasks import make_task

    # the task's episode plus time for the robot to hand over control (PX4: heartbeat, offboard switch, arming)
    return float(make_task(cfg.robot, cfg.task, make_robot(cfg.robot)).episode_seconds) + ENGAGE_SECONDS


def real_dataset(cfg: PipelineConfig, checkpoint: Path, bags: list[Path], log: Log) -> Path:
    from tether.data.rosbag_import import convert_bags
    from tether.policies.checkpoint import load_checkpoint
    from tether.sim.tasks.scoring import transition_rewards

    contract = load_checkpoint(checkpoint).contract

    def reward_fn(obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        return transition_rewards(contract, obs, action, next_obs)

    out = cfg.out / "data" / "real"
    ds = convert_bags(bags, contract, out, mapping="flat", reward_fn=reward_fn, task=f"{cfg.robot}/{cfg.task}")
    log(f"[4/6] dataset: {len(ds)} real transitions in {len(ds.episodes)} episodes → {out}")
    return out


def finetune(cfg: PipelineConfig, checkpoint: Path, dataset: Path, log: Log) -> Path:
    from tether.data.dataset import Dataset
    from tether.policies.hybrid.finetune import finetune as run_finetune

    log(f"[5/6] fine-tune with {cfg.finetune_algo.upper()}: real data + {cfg.env_id} (sim), "
        f"{cfg.finetune_steps:,} steps")
    out = cfg.out / "finetune"
    shown = [0]

    def progress(step: int, total: int, metrics: dict[str, float]) -> None:
        if step * 10 // max(total, 1) > shown[0] or step >= total:
            shown[0] = step * 10 // max(total, 1)
            ret = metrics.get("eval/return_mean", metrics.get("train/episode_return"))
            log(f"      fine-tune {step:,}/{total:,} steps" + (f", return {ret:.1f}" if ret is not None else ""))

    run_finetune(checkpoint, Dataset(dataset).to_transitions(), sim_env=cfg.env_id, algo=cfg.finetune_algo,
                 steps=cfg.finetune_steps, seed=cfg.seed, out=out, progress=progress)
    return out / "checkpoint"


# ---------------------------------------------------------------------------------------------- driver
def run_pipeline(cfg: PipelineConfig, log: Log = print) -> dict[str, Any]:
    from tether.pipeline.report import write_report

    cfg = cfg.resolved()
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "config.json").write_text(json.dumps(asdict(cfg), indent=2, default=str))
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        value = fn()
        timings[name] = time.perf_counter() - t
        return value

    log(f"tether pipeline: {cfg.robot}/{cfg.task} → run folder {cfg.out}")
    ckpt = timed("train", lambda: train(cfg, log))
    sim_before = timed("sim eval (before)", lambda: sim_success(cfg, ckpt))
    log(f"      sim success {sim_before:.0%}")
    log(f"[2/6] serve a {cfg.real_backend} {cfg.robot} with unseen parameters {cfg.real.get('scale', cfg.real)} "
        f"and {cfg.latency_ms:g} ms latency each way")
    log(f"[3/6] deploy over ROS 2 DDS ({cfg.adapter}), {cfg.episodes} episodes, recording rosbag2 MCAP")
    before = timed("deploy (before)", lambda: deploy_phase(cfg, ckpt, "before", log))
    dataset = timed("dataset", lambda: real_dataset(cfg, ckpt, before.bags, log))
    tuned = timed("fine-tune", lambda: finetune(cfg, ckpt, dataset, log))
    sim_after = timed("sim eval (after)", lambda: sim_success(cfg, tuned))
    log(f"[6/6] deploy the fine-tuned policy again")
    after = timed("deploy (after)", lambda: deploy_phase(cfg, tuned, "after", log))
    from tether.policies.checkpoint import load_checkpoint

    selection = (load_checkpoint(tuned).extra.get("selection") or {}).get("chosen")
    if selection == "parent":
        log("      fine-tuning found no update that beat the sim policy on held-out real data: kept the sim policy")
    summary = {
        "finetune_selection": selection,
        "robot": cfg.robot, "task": cfg.task, "env_id": cfg.env_id, "algo": cfg.algo,
        "sim_success_before": sim_before, "sim_success_after": sim_after,
        "served_success_before": before.success_rate, "served_success_after": after.success_rate,
        "served_final_error_before": float(np.mean([e[-int(50):].mean() for e in before.errors])),
        "served_final_error_after": float(np.mean([e[-int(50):].mean() for e in after.errors])),
        "timings_s": timings, "total_s": time.perf_counter() - t0,
        "checkpoints": {"sim": str(ckpt), "finetuned": str(tuned)}, "dataset": str(dataset),
        "bags": [str(b) for b in before.bags + after.bags],
    }
    report = write_report(cfg, summary, before, after)
    (cfg.out / "summary.json").write_text(json.dumps(summary, indent=2))
    log(f"done in {summary['total_s'] / 60:.1f} min: served-robot success {before.success_rate:.0%} → "
        f"{after.success_rate:.0%} (sim {sim_before:.0%} → {sim_after:.0%}); report: {report}")
    return summary
