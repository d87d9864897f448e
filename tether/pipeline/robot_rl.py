"""Robot RL over DDS, episode by episode: the pipeline's stage (on the served robot) and ``tether robot-rl`` (on a
running robot, real or served).

Each round deploys the current actor for one episode (bounded exploration, through the deploy guard like every
command, recorded), reads the episode back from its bag, and lets the learner
(:class:`tether.policies.hybrid.robot_rl.RobotRL`) update between episodes: robot transitions, with a share of
transitions simulated under the identified DR. Every robot episode the loop has recorded before (zero-shot,
probe, the sim-fine-tuned policy's) is robot data too and goes in first. Robot time is counted as in every
deploy phase, and the rounds stop while enough of the budget is left to evaluate the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.errors import TetherError
from tether.pipeline.config import PipelineConfig
from tether.pipeline.stages import Deployment, Log, deploy_phase, episode_seconds, robot_episode_seconds, scored_deploy

if TYPE_CHECKING:
    from tether.data.robot_runs import Episode
    from tether.policies.hybrid.robot_rl import RobotRL


MAX_EMPTY = 2  # episodes in a row with no robot data before the rounds stop (a crashed robot needs a reset)
EpisodeRunner = Callable[[Path, int], Deployment]  # (actor checkpoint, round) -> its one recorded, scored episode


def learn_on_robot(learner: RobotRL, run_episode: EpisodeRunner, episodes: int, out: Path, log: Log, *,
                   extra: dict[str, Any] | None = None, earlier: Sequence[Path] = (),
                   room: Callable[[Deployment], bool] | None = None) -> tuple[Path, Deployment]:
    """Rounds of robot RL: save the learner's actor as ``out/round-<i>/checkpoint``, run it for one episode on the
    robot (``run_episode``: explored, guarded, recorded, scored), learn from the episode, repeat; ``earlier``
    bags are robot data from before; ``room(rounds so far)`` may stop the rounds (a robot-time budget). Returns
    the checkpoint of the actor the robot scored best in its round (success, then final error; a tie goes to the
    later round) and the rounds' deployment.

    Why select by the robot's score: a fresh critic can steer the actor away from what worked (an unanchored
    actor fell from 100 % to 0 % on a served quadrotor; an anchored one barely moved on a task it had to
    relearn), and the robot's own measurement is the one judge that does not share the critic's errors."""
    from tether.data.robot_runs import read_robot_episodes

    def read(bags: Sequence[Path]) -> list[Episode]:
        """The bags' robot episodes; a bag that cannot be read (a robot restarted mid-episode) is logged, not fatal."""
        return read_robot_episodes(bags, learner.contract, lambda bag, why: log(f"      {bag.name}: not used for "
                                                                                f"robot RL ({why})"))

    recorded = read(earlier)
    if recorded:
        learner.add(recorded)
    learner.improve()
    log(f"      {learner.actor_init} actor; {len(learner.robot)} recorded robot transitions, {learner.updates} "
        f"updates so far")
    rounds = Deployment()
    best: tuple[tuple[float, float], int] | None = None  # (measured score, round) of the best actor so far
    empty = 0  # episodes in a row that gave nothing to learn from
    for i in range(episodes):
        if room is not None and not room(rounds):
            log(f"      stopped after {i} episodes: no room for another in the robot-time budget")
            break
        actor = learner.policy
        actor.extra.update({**(extra or {}), "round": i})
        actor.save(out / f"round-{i}" / "checkpoint")
        one = run_episode(out / f"round-{i}" / "checkpoint", i)
        rounds.extend(one)
        score = (one.success_rate, -one.final_error)
        if best is None or score >= best[0]:
            best = (score, i)
        new = read(one.bags)
        n = learner.add(new) if new else 0
        empty = 0 if n else empty + 1
        if empty:
            log(f"      round {i + 1}: no robot transitions (the robot never followed the policy clear of the task's "
                f"terminal state: crashed, or never left the ground); nothing new to learn")
        if empty == MAX_EMPTY:
            log(f"      stopped after {i + 1} episodes: {empty} in a row gave no data, and the same actor would run "
                f"again; reset the robot between episodes (tether robot-rl --pause)")
            break
        if i == episodes - 1 or not n:
            continue  # nothing to learn from, or no round left to deploy what another update would learn
        metrics = learner.improve()
        log(f"      round {i + 1}: {n} robot transitions ({len(learner.robot)} in all), {learner.updates} updates, "
            f"mean Q {metrics.get('train/q_mean', float('nan')):.2f}")
    if best is None:
        raise TetherError("no robot-RL episode was run; expected room for at least one")
    log(f"      kept: the round-{best[1]} actor, the one the robot scored best in its episode")
    return out / f"round-{best[1]}" / "checkpoint", rounds


def robot_rl(cfg: PipelineConfig, start: Path, prior_dr: Path | str, recorded: list[Path], robot_seconds_used: float,
             log: Log) -> tuple[Path, Deployment]:
    """The pipeline's robot RL from the checkpoint ``start`` (:func:`learn_on_robot`), each episode on a freshly
    started served robot, the rounds stopping while the evaluation of the result still fits the budget."""
    import torch

    from tether.policies.checkpoint import load_policy
    from tether.policies.hybrid.robot_rl import RobotRL

    torch.set_num_threads(1)
    per_episode = episode_seconds(cfg)
    reserve = cfg.episodes * per_episode  # the evaluation of the result must still fit the budget
    if robot_seconds_used + per_episode + reserve > cfg.robot_seconds_budget:
        raise TetherError(f"no robot-RL episode fits the robot-time budget of {cfg.robot_seconds_budget:.0f} s "
                          f"({robot_seconds_used:.0f} s used); expected room for one episode and the evaluation")
    config = {"prior_explore": cfg.robot_rl_explore, **(cfg.robot_rl_config or {})}
    which = "the identified DR" if isinstance(prior_dr, Path) else f"the training DR '{prior_dr}'"
    log(f"[robot RL] from {start}: a prior of simulated episodes under {which}; up to {cfg.robot_rl_episodes} "
        f"robot episodes with exploration {cfg.robot_rl_explore:g}, learning between them")
    learner = RobotRL.with_sim_prior(load_policy(start), cfg.env_id, config, dr=prior_dr, seed=cfg.seed)
    return learn_on_robot(
        learner, lambda ckpt, i: deploy_phase(cfg, ckpt, "rl", 1, log, explore=cfg.robot_rl_explore, first=i,
                                              total=cfg.robot_rl_episodes),
        cfg.robot_rl_episodes, cfg.out / "robot_rl", log,
        extra={"env_id": cfg.env_id, "parent": str(start), "prior_dr": str(prior_dr)}, earlier=recorded,
        room=lambda rounds: robot_seconds_used + rounds.robot_seconds + per_episode + reserve
        <= cfg.robot_seconds_budget)


def robot_rl_live(checkpoint: Path, robot: Any, out: Path, log: Log, *, episodes: int = 12,
                  seconds: float | None = None, explore: float = 0.1, dr: Any = None, sim_env: str | None = None,
                  config: dict[str, Any] | None = None, earlier: Sequence[Path] = (), seed: int = 0,
                  eval_episodes: int = 0, pause: Callable[[str], None] | None = None) -> tuple[Path, Deployment]:
    """Robot RL on a running robot (``tether robot-rl``): :func:`learn_on_robot` with each episode a deploy to
    the robot ``robot`` names (a ``tether.ros.deploy.DeployConfig``: adapter, domain, limits, parameters), of
    ``seconds`` (default: the task's episode plus the hand-over), explored by ``explore`` and recorded to
    ``out/bags/rl-<i>``. The prior is simulated in the checkpoint's env under ``dr`` (the identified DR;
    default: the checkpoint's own terms). ``pause(what)`` runs before each episode (an operator resetting the
    robot). With ``eval_episodes`` > 0 the parent and the best round's actor are then each deployed that many
    times without exploration, and the better of the two is kept (a tie goes to robot RL): robot RL from a
    policy that crashes can make it worse, and one exploratory episode per round is a noisy judge. Writes
    ``out/checkpoint`` (the kept actor) and ``out/summary.json``; returns them and every episode's deployment."""
    import dataclasses
    import json
    import shutil

    import torch

    from tether.policies.checkpoint import load_policy
    from tether.policies.hybrid.finetune import trained_env
    from tether.policies.hybrid.robot_rl import RobotRL

    torch.set_num_threads(1)
    policy = load_policy(checkpoint)
    contract = policy.contract
    env = sim_env or trained_env(policy)
    seconds = seconds or robot_episode_seconds(contract.robot, contract.task)
    prior_dr = dr if dr is not None else getattr(policy, "dr_terms", None)
    log(f"[robot RL] from {checkpoint} on {robot.adapter}: a prior of simulated episodes in {env}; "
        f"{episodes} robot episodes of {seconds:g} s with exploration {explore:g}, learning between them")
    learner = RobotRL.with_sim_prior(policy, env, {"prior_explore": explore, **(config or {})}, dr=prior_dr,
                                     seed=seed)
    (out / "bags").mkdir(parents=True, exist_ok=True)
    numbered = [0]  # /tether/episode of the next deploy

    def deploy_episodes(ckpt: Path, tag: str, n: int, first: int = 0, noise: float = 0.0) -> Deployment:
        """``n`` recorded, scored episodes of ``ckpt`` (bags ``tag-<first>``...), each after ``pause``."""
        done = Deployment()
        for j in range(first, first + n):
            what = f"{tag} episode {j + 1}"
            if pause is not None:
                pause(what)
            one = scored_deploy(dataclasses.replace(robot, checkpoint=str(ckpt), duration_s=seconds,
                                                    episode=numbered[0], record=str(out / "bags" / f"{tag}-{j}"),
                                                    explore=noise, explore_seed=seed + numbered[0]), contract)
            numbered[0] += 1
            log(f"      {what}: {one.summary()}")
            done.extend(one)
        return done

    best, rounds = learn_on_robot(learner, lambda ckpt, i: deploy_episodes(ckpt, "rl", 1, i, explore), episodes,
                                  out, log, earlier=earlier,
                                  extra={"env_id": env, "parent": str(checkpoint), "prior_dr": str(prior_dr)})
    summary: dict[str, Any] = {
        "parent": str(checkpoint), "best_round": str(best),
        "rounds": [{"bag": str(b), "success": bool(s.success), "final_error": s.final_error}
                   for b, s in zip(rounds.bags, rounds.scores)],
        "robot_transitions": len(learner.robot), "gradient_updates": learner.updates}
    spent = Deployment()
    spent.extend(rounds)
    kept_parent = False
    if eval_episodes:
        log(f"[evaluate] the parent and the best round's actor, {eval_episodes} episodes each, no exploration")
        before = deploy_episodes(Path(checkpoint), "parent", eval_episodes)
        after = deploy_episodes(best, "robotrl", eval_episodes)
        spent.extend(before)
        spent.extend(after)
        kept_parent = (after.success_rate, -after.final_error) < (before.success_rate, -before.final_error)
        summary["evaluation"] = {name: {"success_rate": d.success_rate, "final_error": d.final_error}
                                 for name, d in (("parent", before), ("robot_rl", after))}
        log(f"      parent {before.success_rate:.0%} (final error {before.final_error:.3f}), robot RL "
            f"{after.success_rate:.0%} ({after.final_error:.3f}): kept {'the parent' if kept_parent else 'robot RL'}")
    if kept_parent:
        policy.save(out / "checkpoint")
    else:
        shutil.copytree(best, out / "checkpoint")
    summary.update(kept="parent" if kept_parent else str(best), robot_seconds=spent.robot_seconds)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    log(f"      saved {out / 'checkpoint'}; {spent.robot_seconds:.0f} s of robot time in {len(spent.bags)} episodes")
    return out / "checkpoint", spent


__all__ = ["EpisodeRunner", "learn_on_robot", "robot_rl", "robot_rl_live"]
