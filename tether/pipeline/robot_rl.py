"""The pipeline's robot-RL stage: fine-tune on the served robot itself, over DDS, episode by episode.

Each round deploys the current actor for one episode (bounded exploration, through the deploy guard like every
command, recorded), reads the episode back from its bag, and lets the learner
(:class:`tether.policies.hybrid.robot_rl.RobotRL`) update between episodes: robot transitions, with a share of
transitions simulated under the identified DR. Every robot episode the loop has recorded before (zero-shot,
probe, the sim-fine-tuned policy's) is robot data too and goes in first. Robot time is counted as in every
deploy phase, and the rounds stop while enough of the budget is left to evaluate the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tether.errors import TetherError
from tether.pipeline.config import PipelineConfig
from tether.pipeline.stages import Deployment, Log, deploy_phase, episode_seconds

if TYPE_CHECKING:
    from tether.data.robot_runs import Episode


def robot_rl(cfg: PipelineConfig, start: Path, prior_dr: Path | str, recorded: list[Path], robot_seconds_used: float,
             log: Log) -> tuple[Path, Deployment]:
    """Robot RL from the checkpoint ``start``; returns the checkpoint of the actor the robot scored best in its
    round (success, then final error; a tie goes to the later round) and the rounds' deployment.

    Why select by the robot's score: a fresh critic can steer the actor away from what worked (an unanchored
    actor fell from 100 % to 0 % on a served quadrotor; an anchored one barely moved on a task it had to
    relearn), and the robot's own measurement is the one judge that does not share the critic's errors."""
    import torch

    from tether.data.robot_runs import read_robot_episodes
    from tether.policies.checkpoint import load_checkpoint, load_policy
    from tether.policies.hybrid.robot_rl import RobotRL

    torch.set_num_threads(1)
    contract = load_checkpoint(start).contract
    per_episode = episode_seconds(cfg)
    reserve = cfg.episodes * per_episode  # the evaluation of the result must still fit the budget
    out = cfg.out / "robot_rl"
    policy = load_policy(start)
    config = {"prior_explore": cfg.robot_rl_explore, **(cfg.robot_rl_config or {})}
    which = "the identified DR" if isinstance(prior_dr, Path) else f"the training DR '{prior_dr}'"
    log(f"[robot RL] from {start}: a prior of simulated episodes under {which}; up to {cfg.robot_rl_episodes} "
        f"robot episodes with exploration {cfg.robot_rl_explore:g}, learning between them")
    learner = RobotRL.with_sim_prior(policy, cfg.env_id, config, dr=prior_dr, seed=cfg.seed)

    def read(bags: list[Path]) -> list[Episode]:
        """The bags' robot episodes; a bag that cannot be read (a robot restarted mid-episode) is logged, not fatal."""
        return read_robot_episodes(bags, contract, lambda bag, why: log(f"      {bag.name}: not used for robot RL "
                                                                        f"({why})"))

    earlier = read(recorded)
    if earlier:
        learner.add(earlier)
    learner.improve()
    log(f"      {learner.actor_init} actor; {len(learner.robot)} recorded robot transitions, {learner.updates} "
        f"updates so far")
    rounds = Deployment()
    best: tuple[tuple[float, float], int] | None = None  # (measured score, round) of the best actor so far
    for i in range(cfg.robot_rl_episodes):
        if robot_seconds_used + rounds.robot_seconds + per_episode + reserve > cfg.robot_seconds_budget:
            log(f"      stopped after {i} episodes: the robot-time budget keeps {reserve:.0f} s for the evaluation")
            break
        actor = learner.policy
        actor.extra.update({"env_id": cfg.env_id, "parent": str(start), "prior_dr": str(prior_dr), "round": i})
        actor.save(out / f"round-{i}" / "checkpoint")
        one = deploy_phase(cfg, out / f"round-{i}" / "checkpoint", "rl", 1, log, explore=cfg.robot_rl_explore,
                           first=i)
        rounds.extend(one)
        score = (one.success_rate, -one.final_error)
        if best is None or score >= best[0]:
            best = (score, i)
        new = read(one.bags)
        n = learner.add(new) if new else 0
        if i == cfg.robot_rl_episodes - 1:
            break  # no round left to deploy what another update would learn
        metrics = learner.improve()
        log(f"      round {i + 1}: {n} robot transitions ({len(learner.robot)} in all), {learner.updates} updates, "
            f"mean Q {metrics.get('train/q_mean', float('nan')):.2f}")
    if best is None:
        raise TetherError(f"no robot-RL episode fits the robot-time budget of {cfg.robot_seconds_budget:.0f} s "
                          f"({robot_seconds_used:.0f} s used); expected room for one episode and the evaluation")
    log(f"      kept: the round-{best[1]} actor, the one the robot scored best in its episode")
    return out / f"round-{best[1]}" / "checkpoint", rounds


__all__ = ["robot_rl"]
