"""The stages of ``tether pipeline``, each a plain function over a run folder so a stage can be rerun alone.

train (sim, wide DR) -> deploy zero-shot on the served robot -> probe it with bounded exploration ->
identify its parameters from the bags -> fine-tune in sim under the identified DR (warm start; an imitation
learner continues on the scripted expert's demonstrations there) [or H2O/RLPD on the recorded data] -> deploy
the candidate -> [robot RL on the served robot, ``tether.pipeline.robot_rl``, when
the robot still falls short] -> keep whichever policy the robot itself scored best.

The served robot runs in its own process (``tether robot serve``), so every deploy talks to it only through
ROS 2 DDS on loopback, exactly as it would to a real robot; one robot process per episode plays the part of an
operator putting the robot back at its start. Robot time is the wall time of those episodes, counted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tether.errors import TetherError
from tether.pipeline.config import PipelineConfig, defaults

if TYPE_CHECKING:
    from tether.contract import IOContract
    from tether.data.dataset import Dataset
    from tether.policies.base import Policy
    from tether.sim.tasks.scoring import EpisodeScore

Log = Callable[[str], None]
ENGAGE_SECONDS = 2.0  # time for the robot to hand over control (PX4: heartbeat, offboard switch, arming)
# served episode i runs seed EPISODE_SEED0 + i; the kept policy's check on fresh episodes starts at CONFIRM_SEED0,
# past every other phase's (robot RL runs at most 1000 episodes); each pipeline seed has its own block of them
EPISODE_SEED0, CONFIRM_SEED0, SEED_BLOCK = 1000, 2000, 100_000
FINETUNE_BC_LR = 3e-4  # behaviour cloning from a trained policy: a third of training's, not a restart
# torch threads while an imitation learner trains or fine-tunes. No served robot runs then (one starts per deploy
# episode, and deploy sets its own one thread), so a second core can go to gradient steps: 3,000 steps of the push
# diffusion policy took 31-34 s on one thread and 23-25 s on two, of the legged bc-mlp 25-28 s and 17 s. PPO's small
# networks gained nothing (11-13 s for 60k hover steps either way), so RL keeps one (benchmarks/train_threads.py).
# Only on cores nothing else is using: with one other process spinning, the push steps took 38-41 s on one thread
# and 91-102 s on two (torch's threads wait on each other for the busy core; `train_threads.py --busy 1`)
IMITATION_THREADS = min(2, os.cpu_count() or 1)


@dataclass
class Deployment:
    """What one deploy phase (several episodes on the served robot) produced."""

    bags: list[Path] = field(default_factory=list)
    # each episode's score by the task's own objective: its error per step, success, and final error (the mean over
    # its last second of control; not a fixed count of steps: 50 are one second at a quadrotor's 50 Hz but 2.5 s of
    # a 20 Hz arm's approach, which put a reach that ended 4 mm from its goal at 6 cm, 2026-12-06)
    scores: list[EpisodeScore] = field(default_factory=list)
    loop_stats: list[dict[str, Any]] = field(default_factory=list)
    robot_seconds: float = 0.0

    @classmethod
    def episode(cls, bag: Path, score: EpisodeScore, loop_stats: dict[str, Any], seconds: float) -> Deployment:
        """One scored episode: its bag, the task's score of it, the control loop's statistics and its robot time."""
        return cls([bag], [score], [loop_stats], seconds)

    @property
    def errors(self) -> list[np.ndarray]:
        return [s.error for s in self.scores]

    @property
    def successes(self) -> list[bool]:
        return [s.success for s in self.scores]

    @property
    def final_errors(self) -> list[float]:
        return [s.final_error for s in self.scores]

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.successes)) if self.scores else 0.0

    @property
    def final_error(self) -> float:
        return float(np.mean(self.final_errors)) if self.scores else float("nan")

    def summary(self) -> str:
        """The last episode in words: its final error, success, and the control loop's rate and misses."""
        st = self.loop_stats[-1] if self.loop_stats else {}
        rate, misses = st.get("achieved_rate_hz", float("nan")), st.get("miss_rate", float("nan"))
        return (f"final error {self.final_errors[-1]:.3f}, {'success' if self.successes[-1] else 'fail'}; "
                f"loop {rate:.1f} Hz, misses {misses:.1%}")

    def extend(self, other: Deployment) -> None:
        """Append another phase's episodes (and its robot time) to this one."""
        self.bags += other.bags
        self.scores += other.scores
        self.loop_stats += other.loop_stats
        self.robot_seconds += other.robot_seconds


@dataclass
class BestCheck:
    """The best of a fine-tuning run's sim checks: its score, a copy of the weights, and where it was taken
    (``at``: steps, rounds). Why a copy: training goes on after a check, and a later stretch can be worse."""

    score: float = -1.0
    state: dict[str, Any] | None = None
    policy: Policy | None = None
    at: dict[str, Any] = field(default_factory=dict)

    def offer(self, score: float, policy: Policy, **at: Any) -> None:
        """Keep ``policy``'s weights if ``score`` beats the best so far."""
        import copy

        if score > self.score:
            self.score, self.state, self.policy, self.at = score, copy.deepcopy(policy.state_dict()), policy, at

    def restore(self) -> Policy:
        """The policy that scored best, with the weights it had then."""
        self.policy.load_state_dict(self.state)
        return self.policy


# ---------------------------------------------------------------------------------------------- sim
def idle_cores(seconds: float = 0.3) -> float | None:
    """How many cores nothing used over the next ``seconds`` (from Linux's /proc/stat; None where it cannot be
    read). The caller sleeps meanwhile, so its own work is not counted."""
    import time

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]  # all, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return (os.cpu_count() or 1) * (idle1 - idle0) / max(total1 - total0, 1)


def imitation_threads(idle: float | None) -> int:
    """Torch threads for an imitation learner given the cores found idle: IMITATION_THREADS, fewer where another
    process keeps a core busy (one core idle of two: one thread); IMITATION_THREADS where it is not known."""
    return IMITATION_THREADS if idle is None else max(1, min(IMITATION_THREADS, int(idle + 0.5)))


@contextmanager
def training_threads(algo: str | None, idle: Callable[[], float | None] = idle_cores) -> Iterator[None]:
    """Torch's thread count while ``algo`` trains in the pipeline: :func:`imitation_threads` of the cores ``idle``
    finds free for an imitation learner, one otherwise; restored after."""
    import torch

    from tether.policies.algos import IMITATION_ALGOS

    before = torch.get_num_threads()
    torch.set_num_threads(imitation_threads(idle()) if algo in IMITATION_ALGOS else 1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train(cfg: PipelineConfig, log: Log) -> Path:
    from tether.policies.algos import IMITATION_ALGOS
    from tether.policies.training import TrainSpec, run_training

    from tether.pipeline.config import algo_config

    log(f"[train] {cfg.algo} on {cfg.env_id} in MuJoCo, DR '{cfg.dr}', {cfg.train_steps:,} steps")
    config = algo_config(cfg.robot, cfg.task, cfg.algo)
    dataset = None
    if cfg.algo in IMITATION_ALGOS:
        dataset = str(expert_demos(cfg, cfg.out / "train" / "demos", cfg.demo_episodes, cfg.dr, cfg.seed, log))
    # a live bar on a terminal; in a log file (CI, benchmarks) its redraws would bury the stage lines
    spec = TrainSpec(env_id=cfg.env_id, algo=cfg.algo, steps=cfg.train_steps, out=cfg.out / "train",
                     seed=cfg.seed, dr=cfg.dr, eval_episodes=5, progress=sys.stderr.isatty(), config=config,
                     dataset=dataset)
    with training_threads(cfg.algo):
        _, path = run_training(spec)
    if path is None:
        raise TetherError("training produced no checkpoint")
    return Path(path)


def expert_demos(cfg: PipelineConfig, out: Path, episodes: int, dr: Path | str, seed: int, log: Log) -> Path:
    """``episodes`` episodes of the task's scripted expert in MuJoCo under ``dr``, failures included (what an
    imitation learner trains from), written as a dataset to ``out``."""
    from tether.data.demos import WIDE_BATCH, record_episodes

    log(f"      {episodes} demonstrations by the scripted expert under DR '{dr}'")
    ds = record_episodes(cfg.env_id, out, episodes, seed=seed, env_kwargs={"dr": str(dr)}, batch=WIDE_BATCH)
    ok = float(np.mean([bool(e.success) for e in ds.episodes])) if ds.episodes else 0.0
    log(f"      the expert succeeded in {ok:.0%} of them")
    return out


def sim_success(cfg: PipelineConfig, policy: Path | Policy, dr: Path | str | None = None) -> float:
    """Success in MuJoCo on the nominal robot (no DR): the reference the served robot is held to; with ``dr``
    (the identified DR file, or a preset) how well a policy (a checkpoint, or one in memory) does under it."""
    from tether.policies.checkpoint import load_policy
    from tether.policies.evaluation import evaluate_policy

    policy = load_policy(policy) if isinstance(policy, (str, Path)) else policy
    result = evaluate_policy(policy, cfg.env_id, episodes=cfg.sim_eval_episodes, seed=10_000 + cfg.seed,
                             dr=None if dr is None else str(dr))
    return float(result.success_rate or 0.0)


def sim_finetune(cfg: PipelineConfig, checkpoint: Path, dr_file: Path | str, log: Log,
                 deployed_score: float | None = None) -> tuple[Path, float]:
    """Fine-tune the deployed policy in sim under the identified DR (or, when nothing could be identified, the
    training DR ``cfg.dr``) the way it learned: :func:`ppo_finetune` for a policy trained by RL,
    :func:`imitation_finetune` for one that imitates the task's expert; minutes, not a retrain. Returns the
    fine-tuned checkpoint and its sim success under that DR. ``deployed_score`` is the deployed policy's
    :func:`sim_success` under ``dr_file`` where the caller has it already (the pipeline reports it), so it is not
    evaluated twice.

    The deployed policy, whatever learned it, is checked there first. One that already meets ``finetune_target`` is
    kept as it is, and it is kept where its fine-tuning did worse there (a tie goes to the tuned policy). Why: a
    policy trained with DAgger under the wide DR often flies the identified robot already (on 6 of 7 served
    quadrotors, 2026-12-05), and training it further can only risk that; the check is one sim evaluation (about 1 s
    for hover). The same held for arm push students: on the 8 served-arm runs of 2026-12-05 where the deployed
    student met the target under the identified DR (92-100 %), the fine-tuned one served 91 % of 80 episodes against
    its parent's 95 % (and push's fine-tuning took 226 s of the last run's 17.3 min). Where the deployed policy
    falls short, the fine-tuning below still helps it (hover: 85 % -> 100 % on a light, slow-motor vehicle 30 ms
    away; legged velocity: 60 % -> 90 % under the identified DR of an A1 at mass x1.2)."""
    from tether.policies.algos import IMITATION_ALGOS
    from tether.policies.checkpoint import load_policy

    parent = load_policy(checkpoint)
    as_deployed = BestCheck()
    as_deployed.offer(sim_success(cfg, parent, dr_file) if deployed_score is None else deployed_score, parent,
                      steps=0, run="deployed")
    log(f"[fine-tune] the deployed policy: sim success under {_dr_name(dr_file)} {as_deployed.score:.0%}")
    if as_deployed.score >= cfg.finetune_target:
        log("      it meets the target there: kept as it is")
        return _save_tuned(cfg, checkpoint, dr_file, as_deployed)
    algo = parent.extra.get("algo")
    with training_threads(algo):
        if algo in IMITATION_ALGOS:
            tuned, score = imitation_finetune(cfg, checkpoint, dr_file, log)
        else:
            tuned, score = ppo_finetune(cfg, parent, checkpoint, dr_file, log)
    if as_deployed.score <= score:  # a tie goes to the tuned policy
        return tuned, score
    log(f"      kept instead: the deployed policy ({as_deployed.score:.0%}): fine-tuning did worse there")
    return _save_tuned(cfg, checkpoint, dr_file, as_deployed)


def _dr_name(dr_file: Path | str) -> str:
    """How the log names the DR fine-tuning runs under: an identified one is a file, a preset a name."""
    return "the identified DR" if isinstance(dr_file, Path) else f"the training DR '{dr_file}'"


def ppo_finetune(cfg: PipelineConfig, parent: Policy, checkpoint: Path, dr_file: Path | str, log: Log
                 ) -> tuple[Path, float]:
    """Warm-start an RL-trained policy (``parent``, loaded from ``checkpoint``) under ``dr_file`` with PPO, then,
    short of the target, DAgger and a fresh policy; returns the best check's checkpoint and its score there.

    One run of up to ``finetune_rounds`` x ``finetune_steps``, checked in sim under the identified DR after
    every ``finetune_steps``: it stops once the policy succeeds in ``finetune_target`` of those episodes, and the
    best check is kept. Why: how far the robot lies from the training DR decides how much training closes the
    gap (a quadrotor 1.8x as heavy with 3.5x the motor lag went 5 % -> 0 % in 500k steps and -> 90-95 % in
    1.5M), and a fixed budget sized for the hardest robot would spend minutes on the easy ones. (Separate
    rounds, each a fresh warm start, reached only 45 % in 2M: every restart re-learns the critic and anneals the
    step size again.)

    When the warm start ends short of the target under an identified DR and ``cfg.finetune_dagger`` is set,
    DAgger rounds (:func:`_dagger_finetune`) go on from its best check where the task has a scripted expert: the
    actor flies the identified robot in sim, the expert labels every state it reached, and the actor regresses
    onto everything gathered (:meth:`GaussianPolicy.fit`). Why: PPO improves a nearly right policy slowly. On a
    quadrotor heavier, weaker and later than any it trained on (thrust per mass x1.9, 5 steps of loop delay) the
    warm start reached 25 % in 2M steps and 50 % in 4M, and the served vehicle settled 0.11 m off the set point;
    two DAgger rounds took the same actor to 95 % in 14 s, and after a third the served vehicle flew 8 of 8.

    When the target is still not met and ``cfg.finetune_fresh`` is set, a fresh policy (the parent's PPO
    settings) trains under that DR with the same budget and checks, and the best check of all is kept. Why: a
    warm start inherits the parent's nearly spent exploration (a waypoint policy ends its training with an action
    std of ~0.01); on a waypoint quadrotor 40 ms away it stayed at 0 %, while a fresh policy trained under the
    identified DR reached 95 % in 1.25M steps (seed 1; on a weak-motor vehicle one seed reached 90 %, another
    5 %, which the best-check rule then leaves unused)."""
    from tether.policies.dagger import DaggerConfig
    from tether.policies.rl.ppo import DAGGER_STEPS, FINETUNE_CRITIC_WARMUP, FINETUNE_LR, train_ppo
    from tether.sim.tasks import task_class

    which = _dr_name(dr_file)
    best = BestCheck()
    total = cfg.finetune_steps * cfg.finetune_rounds

    def tune(run: str, init: Policy | None, config: dict[str, Any], seed: int, warmup: int) -> None:
        checked = [0]

        def evaluate(steps: int, policy: Policy) -> float:
            checked[0] = steps
            score = sim_success(cfg, policy, dr_file)
            log(f"      {run}, after {steps:,} steps: sim success under {which} {score:.0%}")
            best.offer(score, policy, steps=steps, run=run)
            return score

        def check(steps: int, policy: Policy) -> bool:
            return steps - checked[0] >= cfg.finetune_steps and evaluate(steps, policy) >= cfg.finetune_target

        policy = train_ppo(cfg.env_id, total, config, seed=seed, env_kwargs={"dr": str(dr_file)}, init_policy=init,
                           critic_warmup_iters=warmup, until=check)
        if policy.extra["env_steps"] != checked[0]:  # the last stretch, shorter than a check interval
            evaluate(policy.extra["env_steps"], policy)

    log(f"[fine-tune] PPO from the deployed policy under {which}: up to {total:,} steps, checked every "
        f"{cfg.finetune_steps:,}, until {cfg.finetune_target:.0%} sim success")
    tune("warm start", parent, {"history": parent.history, "lr": FINETUNE_LR}, cfg.seed + 1, FINETUNE_CRITIC_WARMUP)
    if (best.score < cfg.finetune_target and cfg.finetune_dagger and isinstance(dr_file, Path)
            and task_class(cfg.robot, cfg.task).has_expert()):
        log(f"[fine-tune] the warm start reached {best.score:.0%}; DAgger on its best check under {which}, labelled "
            f"by the task's expert: up to {cfg.finetune_rounds} rounds, same target")
        policy, at = best.restore(), best.at
        score = _dagger_finetune(cfg, policy, None, DaggerConfig(steps=DAGGER_STEPS), dr_file, best.score, log)
        best.offer(score, policy, steps=at["steps"], run=f"{at['run']} + DAgger")
    if best.score < cfg.finetune_target and cfg.finetune_fresh and isinstance(dr_file, Path):
        log(f"[fine-tune] the best check reached {best.score:.0%}; a fresh policy under {which}: up to "
            f"{total:,} steps, same checks")
        config = dict(parent.extra.get("ppo_config") or {"history": parent.history})
        tune("fresh", None, config, cfg.seed + 2, 0)
    log(f"      kept: the {best.at['run']} policy after {best.at['steps']:,} steps ({best.score:.0%})")
    return _save_tuned(cfg, checkpoint, dr_file, best)


def _save_tuned(cfg: PipelineConfig, checkpoint: Path, dr_file: Path | str, best: BestCheck) -> tuple[Path, float]:
    """The kept check's policy saved as the fine-tuned checkpoint, with where it came from; and its score."""
    tuned = best.restore()
    tuned.extra.update({"env_id": cfg.env_id, "parent": str(checkpoint), "dr_file": str(dr_file),
                        "kept_at_steps": best.at["steps"], "kept_run": best.at["run"],
                        "identified_dr_success": best.score})
    return tuned.save(cfg.out / "finetune" / "checkpoint"), best.score


def imitation_finetune(cfg: PipelineConfig, checkpoint: Path, dr_file: Path | str, log: Log
                       ) -> tuple[Path, float]:
    """Fine-tune a policy that imitates the task's scripted expert (diffusion, flow) the way it learned: the
    expert demonstrates on the robot as identified (``finetune_demo_share`` of ``demo_episodes``, by default a
    third), and behaviour cloning goes on from the parent's weights on the successful
    demonstrations for ``finetune_steps`` gradient steps (none under the identified DR: the parent is kept). A
    parent trained with DAgger (``tether.policies.dagger``) then runs rounds there, short of ``finetune_target``:
    its own episodes on the identified robot, labelled by the expert (:func:`_dagger_finetune`). One without
    DAgger has the expert's demonstrations under the training DR ``cfg.dr`` replayed beside the new ones (the
    parent's own when this run trained it, else ``demo_episodes`` recorded anew, about 40 s for 300 pushes),
    unless ``finetune_replay`` is off (then the student fits the identified robot alone: for legged velocity
    mixed on two served A1s, RESULTS). Returns the checkpoint and its sim success under that DR.

    Why the expert: it closes its own loop, so what it does on the identified robot is what works there (the
    joint targets a heavier, more damped arm actually follows), and it predicts through the identified latency's
    queued commands (:meth:`tether.sim.core.SimCore.expert_action`): on an arm at x0.6 gain with 2 steps its
    pushes succeed in 97 % against 75 % on the measured TCP, and the student fine-tuned on them in 85-90 % on
    PyBullet against 45-75 % (three evaluation seeds). PPO cannot continue a denoiser. Why only
    successes: where the expert itself mostly fails (16 of 100 pushes on one identified arm), cloning every
    demonstration took the served arm from 60 % to 0 %. Why replay without DAgger: cloning the identified
    robot's demonstrations alone forgets. On two identified arms (20k steps, 50 sim episodes each) it went
    82 % -> 70 % and 92 % -> 82 % under the identified DR, and 94 % -> 86 % and 94 % -> 90 % on the nominal
    robot; with the training DR's demonstrations mixed in, 78 % and 98 % under the identified DR, 94 % and 98 %
    nominal (with only as many training-DR as identified-DR demonstrations: 82 % and 82 %). Why no replay with
    DAgger: the rounds show the policy the states it strays into, labelled for this robot, which is what the
    replay stood in for; and the replay teaches the thrust of the training DR's lighter vehicles. A waypoint
    policy on a quadrotor 1.6x as heavy with 3x the motor lag went 56 % -> 41 % -> 0 % over two rounds with
    the replay, and 56 % -> 100 % -> 100 % with the identified robot's data alone (32 sim episodes each)."""
    from tether.data.dataset import Dataset
    from tether.policies.checkpoint import load_policy
    from tether.policies.dagger import DaggerConfig

    policy = load_policy(checkpoint)
    rounds = DaggerConfig.from_extra(policy.extra)
    which = _dr_name(dr_file)
    log(f"[fine-tune] {policy.extra['algo']} from the deployed policy on the expert's demonstrations under {which}")
    demos = expert_demos(cfg, cfg.out / "finetune" / "demos", finetune_demo_count(cfg), dr_file,
                         cfg.seed + 1, log)
    obs, actions, episodes = _successes(Dataset(demos))
    good = len(np.unique(episodes))
    replay, replayed = None, 0
    if good:
        if not rounds.rounds and cfg.finetune_replay:
            replay = _replay(cfg, checkpoint, log)
            r_obs, r_actions, r_episodes = _successes(Dataset(replay))
            replayed = len(np.unique(r_episodes))
            obs, actions = np.concatenate([obs, r_obs]), np.concatenate([actions, r_actions])
            episodes = np.concatenate([episodes, r_episodes + episodes.max() + 1])  # ids stay one per episode
        policy.fit(obs, actions, episodes, steps=cfg.finetune_steps, lr=FINETUNE_BC_LR, seed=cfg.seed + 1)
        log(f"      {cfg.finetune_steps:,} steps on the {good} successful demonstrations"
            + (f" (and {replayed} replayed)" if replay else ""))
        score = sim_success(cfg, policy, dr_file)
        log(f"      sim success under {which}: {score:.0%}")
        if rounds.rounds and score < cfg.finetune_target:
            score = _dagger_finetune(cfg, policy, (obs, actions, episodes), rounds, dr_file, score, log)
    else:
        score = sim_success(cfg, policy, dr_file)
        log(f"      no demonstration succeeded under {which}: the parent is kept as it is ({score:.0%} there)")
    policy.extra.update({"env_id": cfg.env_id, "parent": str(checkpoint), "dr_file": str(dr_file),
                         "finetune_demos": str(demos), "finetune_demos_used": good,
                         "finetune_replay": None if replay is None else str(replay),
                         "finetune_replay_used": replayed, "identified_dr_success": score})
    return policy.save(cfg.out / "finetune" / "checkpoint"), score


def finetune_demo_count(cfg: PipelineConfig) -> int:
    """Demonstrations an imitation learner's fine-tuning records under the identified DR: ``finetune_demo_share``
    of ``demo_episodes`` (rounded down, as a third always was), at least one."""
    return max(1, int(cfg.demo_episodes * cfg.finetune_demo_share + 1e-9))


def _dagger_finetune(cfg: PipelineConfig, policy: Policy, data: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
                     rounds: Any, dr_file: Path | str, score: float, log: Log) -> float:
    """DAgger rounds on the identified robot in sim, as the parent's training ran them, each checked in sim under
    that DR: up to ``finetune_rounds``, stopping at ``finetune_target``; the best check's weights are kept (in
    ``policy``) and its success returned. Why checked: how far the robot lies from the training DR decides how
    many rounds it takes (a waypoint policy on a quadrotor 1.6x as heavy with 3x the motor lag reached 100 %
    after one; on one 1.8x as heavy with 3.5x the lag, 2 % -> 44 % -> 84 % over two)."""
    from dataclasses import replace

    from tether.policies.dagger import dagger

    best = BestCheck()
    best.offer(score, policy, rounds=0)

    def check(done: int, p: Policy) -> bool:
        s = sim_success(cfg, p, dr_file)
        log(f"      after DAgger round {done}: sim success under the identified DR {s:.0%}")
        best.offer(s, p, rounds=done)
        return s >= cfg.finetune_target

    dagger(policy, cfg.env_id, data, replace(rounds, rounds=cfg.finetune_rounds), cfg.out / "finetune" / "dagger",
           dr=dr_file, seed=cfg.seed + 3, log=log, until=check)
    best.restore()
    policy.extra["dagger_rounds_kept"] = best.at["rounds"]
    log(f"      kept: the policy after {best.at['rounds']} DAgger rounds ({best.score:.0%})")
    return best.score


def _replay(cfg: PipelineConfig, checkpoint: Path, log: Log) -> Path:
    """The expert's demonstrations under the training DR: the parent's own when this run trained it, else
    ``demo_episodes`` recorded anew."""
    trained_here = cfg.out / "train" / "demos"
    if Path(checkpoint).resolve() == (cfg.out / "train" / "checkpoint").resolve() and trained_here.is_dir():
        return trained_here
    return expert_demos(cfg, cfg.out / "finetune" / "replay", cfg.demo_episodes, cfg.dr, cfg.seed + 2, log)


def _successes(ds: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A dataset's successful episodes as (observations, actions, episode ids), each episode contiguous."""
    obs, actions, episodes = ds.episode_arrays()
    keep = np.isin(episodes, [e.index for e in ds.episodes if e.success])
    return obs[keep], actions[keep], episodes[keep]


def hybrid_finetune(cfg: PipelineConfig, checkpoint: Path, dataset: Path, log: Log) -> Path:
    """H2O or RLPD on the recorded data plus the simulator (the alternative to identification)."""
    from tether.data.dataset import Dataset
    from tether.policies.hybrid.finetune import finetune as run_finetune

    log(f"[fine-tune] {cfg.finetune.upper()}: real data + {cfg.env_id} (sim), {cfg.finetune_steps:,} steps")
    out = cfg.out / "finetune"
    run_finetune(checkpoint, Dataset(dataset).to_transitions(), sim_env=cfg.env_id, algo=cfg.finetune,
                 steps=cfg.finetune_steps, seed=cfg.seed, out=out)
    return out / "checkpoint"


# ---------------------------------------------------------------------------------------------- robot
def _serve(cfg: PipelineConfig, params_file: Path, seed: int, domain_id: int, log_file: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tether.cli", "robot", "serve", "--robot", cfg.robot, "--backend", cfg.real_backend,
           "--params", str(params_file), "--loopback", "--domain-id", str(domain_id), "--seed", str(seed),
           "--latency", str(cfg.latency_ms)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=log_file.open("a"), stderr=subprocess.STDOUT, env=env)


def episode_seconds(cfg: PipelineConfig) -> float:
    return float(cfg.episode_seconds) if cfg.episode_seconds else robot_episode_seconds(cfg.robot, cfg.task)


def robot_episode_seconds(robot: str, task: str | None) -> float:
    """How long one robot episode runs: the task's episode plus the time the robot takes to hand over control."""
    from tether.sim.robots import make_robot
    from tether.sim.tasks import make_task

    return float(make_task(robot, task, make_robot(robot)).episode_seconds) + ENGAGE_SECONDS


def served_seed(run_seed: int, seed0: int, episode: int) -> int:
    """The seed of a served robot's episode (its start state, and its command or goal): ``seed0 + episode`` in the
    run seed's own block, so runs with other ``--seed`` values meet other start states (with one seed, repeated
    runs were repeated passes over the same few episodes), within the 32-bit range a served robot accepts."""
    return (seed0 + episode + run_seed * SEED_BLOCK) % 2**32


def deploy_phase(cfg: PipelineConfig, checkpoint: Path, tag: str, episodes: int, log: Log,
                 explore: float = 0.0, first: int = 0, seed0: int = EPISODE_SEED0,
                 total: int | None = None) -> Deployment:
    """``episodes`` episodes of ``checkpoint`` on freshly started served robots, each recorded and scored by the
    task's own objective; ``explore`` > 0 adds bounded exploration (for identification, or robot RL); ``first``
    numbers the episodes on from a phase run in parts (their bags and the robot's start states differ), ``total``
    is then the whole phase's count (for the log). Episode ``i`` is served with :func:`served_seed` (``seed0 + i``
    for run seed 0): phases that compare policies share seeds, and a phase that must not reuse any start state
    takes another ``seed0``."""
    from tether.policies.checkpoint import load_checkpoint
    from tether.ros.deploy import DeployConfig

    contract = load_checkpoint(checkpoint).contract
    seconds = episode_seconds(cfg)
    params_file = cfg.out / "real_params.json"
    (cfg.out / "bags").mkdir(parents=True, exist_ok=True)
    domain_id = cfg.domain_id if cfg.domain_id is not None else 60 + (os.getpid() % 40)
    out = Deployment()
    for i in range(first, first + episodes):
        bag = cfg.out / "bags" / f"{tag}-{i}"
        seed = served_seed(cfg.seed, seed0, i)
        params = {"env_id": cfg.env_id, **cfg.real, "seed": seed}  # the served robot runs the policy's task
        params_file.write_text(json.dumps(params, indent=2))
        server = _serve(cfg, params_file, seed, domain_id, cfg.out / "robot_server.log")
        try:
            one = scored_deploy(DeployConfig(checkpoint=str(checkpoint), adapter=cfg.adapter, duration_s=seconds,
                                             record=str(bag), domain_id=domain_id, loopback=True, episode=i,
                                             robot_info_timeout_s=15.0, connect_timeout_s=30.0,
                                             transport="cyclonedds", explore=explore, explore_seed=seed),
                                contract)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        out.extend(one)
        log(f"      {tag} episode {i + 1}/{total or first + episodes}: {one.summary()}")
    return out


def probe_phase(cfg: PipelineConfig, checkpoint: Path, log: Log) -> tuple[Deployment, list[float]]:
    """``cfg.probe_episodes`` recorded episodes with bounded exploration, for identification; returns them and the
    exploration scale each ran with. After an episode that the task ended early (a crash, a fall) the next runs at
    half the scale: the excitation is for identification, and a crashed robot teaches it little (the heavy, slow
    demo quadrotor crashed in 3 of 3 probes at 0.15 of each action's range; in sim at its parameters it crashed
    in 15 of 16 episodes at 0.15, 1 of 16 at 0.1 and none at 0.05, 2026-12-07)."""
    scale, scales, out = cfg.explore, [], Deployment()
    for i in range(cfg.probe_episodes):
        scales.append(scale)
        out.extend(deploy_phase(cfg, checkpoint, "probe", 1, log, explore=scale, first=i,
                                 total=cfg.probe_episodes))
        if out.scores[-1].terminated and i + 1 < cfg.probe_episodes:
            scale /= 2
            log(f"      the task ended probe episode {i + 1} early: the next runs with exploration {scale:g}")
    return out, scales


def scored_deploy(deploy_cfg: Any, contract: IOContract) -> Deployment:
    """One recorded deploy (``deploy_cfg``: a ``tether.ros.deploy.DeployConfig`` with ``record`` set), scored by
    the task's own objective from its bag over a sim episode's length from when the robot followed the policy;
    its robot time is the time the deploy ran. Why the cut: a robot episode runs longer than the task's (the
    robot's hand-over), and the extra seconds would give the robot time that the sim success it is held to did
    not have (a damped arm scored 4 of 10 pushes in 7 s, 2 of 10 in the task's 5)."""
    import time

    from tether.data.robot_runs import controlled_run
    from tether.ros.deploy import deploy
    from tether.sim.tasks.scoring import score_episode, task_for

    t0 = time.monotonic()
    result = deploy(deploy_cfg, log=lambda _m: None, install_signals=False)
    seconds = time.monotonic() - t0
    bag = Path(deploy_cfg.record)
    run = controlled_run(bag, contract)
    n = int(round(task_for(contract).episode_seconds * contract.rate_hz)) + 1  # a sim episode's observations
    s = score_episode(contract, run.obs[:n], goal=None if run.goal is None else run.goal[:n],
                      goal_moves=None if run.goal_moves is None else run.goal_moves[:n],
                      state=None if run.state is None else {k: v[:n] for k, v in run.state.items()})
    return Deployment.episode(bag, s, result.as_dict(), seconds)


def identify(cfg: PipelineConfig, checkpoint: Path, bags: list[Path], log: Log
             ) -> tuple[Path | None, dict[str, Any]]:
    """System identification from the deploy bags: the DR to fine-tune under (physical terms centred on the fit,
    plus the training DR's sensor noise and pushes, which identification does not replace), and the residual
    report (simulated vs recorded states with nominal and with identified parameters). ``None`` and the reason
    when the bags hold nothing to fit (a policy that crashed at once leaves a vehicle resting on the ground)."""
    from tether.calibration.recordings import identify_recordings
    from tether.calibration.residuals import residual_report
    from tether.policies.checkpoint import load_checkpoint
    from tether.sim.core import resolve_dr
    from tether.sim.randomization import ENV_TARGETS, DRTerm, terms_to_json
    from tether.sim.robots import make_robot

    contract = load_checkpoint(checkpoint).contract
    goal = (cfg.real or {}).get("goal")
    log(f"[identify] system identification from {len(bags)} deploy bags")
    try:
        windows = defaults(cfg.robot, cfg.task).get("identify_windows")  # the robot's cap, else sysid's own
        data, result = identify_recordings([str(b) for b in bags], contract=contract, goal=goal, seed=cfg.seed,
                                           **({} if windows is None else {"max_windows": windows}))
    except TetherError as exc:
        log(f"      not identified: {exc}")
        return None, {"error": str(exc)}
    out = cfg.out / "identify"
    out.mkdir(parents=True, exist_ok=True)
    identified = [DRTerm.from_dict(t) for t in result.dr_preset()["terms"]]
    kept = [t for t in resolve_dr(cfg.dr, make_robot(cfg.robot).dr_presets, cfg.robot)
            if t.target in ENV_TARGETS and t.target != "action_latency"
            and not any(i.target == t.target for i in identified)]
    dr_file = out / "dr_identified.json"
    dr_file.write_text(terms_to_json(identified + kept))
    written = residual_report(data, result).write(out)
    summary = {"fit": result.summary(), "report": result.report(), "residual_files": [str(p) for p in written]}
    (out / "sysid.json").write_text(json.dumps(summary, indent=2, default=str))
    for line in result.summary().splitlines():
        log(f"      {line}")
    return dr_file, summary


def real_dataset(cfg: PipelineConfig, checkpoint: Path, bags: list[Path], log: Log) -> Path:
    from tether.data.rosbag_import import convert_bags
    from tether.policies.checkpoint import load_checkpoint
    from tether.sim.tasks.scoring import transition_rewards

    contract = load_checkpoint(checkpoint).contract

    def reward_fn(obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        return transition_rewards(contract, obs, contract.to_physical(action), next_obs)  # datasets: normalised

    out = cfg.out / "data" / "real"
    ds = convert_bags(bags, contract, out, mapping="flat", reward_fn=reward_fn, task=f"{cfg.robot}/{cfg.task}")
    log(f"[dataset] {len(ds)} real transitions in {len(ds.episodes)} episodes → {out}")
    return out
