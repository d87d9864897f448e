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

import numpy as np

from tether.errors import TetherError
from tether.pipeline.config import PipelineConfig
from tether.pipeline.stages import Deployment, Log, control_since, deploy_phase, episode_seconds

if TYPE_CHECKING:
    from tether.contract import IOContract
    from tether.policies.hybrid.robot_rl import Episode


def robot_episodes(bag: Path, contract: IOContract) -> list[Episode]:
    """The bag's episodes on the control grid, from when the robot first followed the policy (a PX4 vehicle
    flies itself until offboard engages) and was first clear of the task's terminal state (a vehicle handed over
    on the ground has not crashed, as the task's own scoring says), with the task's reward and termination
    (judged against the goal each observation was made against, where the bag recorded one); an episode ends at
    its first terminal transition after that (a crash), as a sim episode would."""
    from tether.calibration.recordings import goal_track, goals_made_against
    from tether.data.rosbag_import import align_bag
    from tether.data.topics import GOAL_TOPIC
    from tether.policies.hybrid.robot_rl import Episode
    from tether.ros.recorder import read_bag
    from tether.sim.tasks.scoring import transition_outcomes

    since = control_since(bag)
    track = goal_track([(m.log_ns, m.msg) for m in read_bag(bag, topics=[GOAL_TOPIC])])
    period_ns = int(round(1e9 / contract.rate_hz))
    out = []
    for ep in align_bag(bag, contract, "flat"):
        keep = ep.stamps_ns >= since
        if keep.sum() < 2:
            continue
        obs = np.concatenate([ep.obs[keep], ep.final_obs[None]])
        act = ep.action[keep]
        goal_z = None
        if track is not None:  # the goal each observation was made against (a mission moves it)
            stamps = np.concatenate([ep.stamps_ns[keep], ep.stamps_ns[-1:] + period_ns])
            held, goals = goals_made_against(contract, obs, stamps, track)
            goal_z = goals[held][1:, 2]
        reward, terminated = transition_outcomes(contract, obs[:-1], contract.to_physical(act), obs[1:],
                                                 goal_z=goal_z)
        clear = np.flatnonzero(~terminated)
        if clear.size == 0:
            continue  # never clear of the terminal state (a vehicle that never left the ground)
        s = int(clear[0])  # a vehicle handed over on the ground starts "crashed": the episode starts once it is not
        hit = np.flatnonzero(terminated[s:])
        t = s + (int(hit[0]) + 1 if hit.size else len(act) - s)
        out.append(Episode(obs[s: t + 1], act[s:t], reward[s:t], terminal=bool(hit.size)))
    return out


def robot_rl(cfg: PipelineConfig, start: Path, prior_dr: Path | str, recorded: list[Path], robot_seconds_used: float,
             log: Log) -> tuple[Path, Deployment]:
    """Robot RL from the checkpoint ``start``; returns the checkpoint of the actor the robot scored best in its
    round (success, then final error; a tie goes to the later round) and the rounds' deployment.

    Why select by the robot's score: a fresh critic can steer the actor away from what worked (an unanchored
    actor fell from 100 % to 0 % on a served quadrotor; an anchored one barely moved on a task it had to
    relearn), and the robot's own measurement is the one judge that does not share the critic's errors."""
    import torch

    from tether.policies.checkpoint import load_checkpoint, load_policy
    from tether.policies.hybrid.robot_rl import RobotRL, sim_episodes

    torch.set_num_threads(1)
    contract = load_checkpoint(start).contract
    per_episode = episode_seconds(cfg)
    reserve = cfg.episodes * per_episode  # the evaluation of the result must still fit the budget
    out = cfg.out / "robot_rl"
    policy = load_policy(start)
    which = "the identified DR" if isinstance(prior_dr, Path) else f"the training DR '{prior_dr}'"
    log(f"[robot RL] from {start}: prior {cfg.robot_rl_prior_episodes} sim episodes under {which}; up to "
        f"{cfg.robot_rl_episodes} robot episodes with exploration {cfg.robot_rl_explore:g}, learning between them")
    prior = sim_episodes(cfg.env_id, policy, cfg.robot_rl_prior_episodes, dr=prior_dr, explore=cfg.robot_rl_explore,
                         seed=cfg.seed + 20_000)
    learner = RobotRL(policy, prior, dict(cfg.robot_rl_config or {}), seed=cfg.seed)
    def read(bags: list[Path]) -> list[Episode]:
        """The bags' robot episodes; a bag that cannot be read (a robot restarted mid-episode) is logged, not fatal."""
        eps: list[Episode] = []
        for bag in bags:
            try:
                eps += robot_episodes(bag, contract)
            except TetherError as exc:
                log(f"      {bag.name}: not used for robot RL ({exc})")
        return eps

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


__all__ = ["robot_episodes", "robot_rl"]
