"""``tether pipeline``: the whole sim-to-real loop on embedded defaults (what ``make demo`` runs); ``tether
robot-rl``: its robot-RL stage on a running robot, real or served."""

from __future__ import annotations

import argparse

from tether.cli_types import (
    domain_id,
    dr_spec,
    env_id,
    existing_dir,
    existing_file,
    existing_path,
    finite_float,
    int_range,
    key_value,
    name,
    output_dir,
    positive_int,
    seed,
)
from tether.ros.protocols import ADAPTERS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="train → deploy to a served robot → record → fine-tune → deploy → report")
    p.add_argument("--robot", default="quadrotor", choices=("quadrotor", "arm", "legged"),
                   help="quadrotor (default), arm or legged")
    p.add_argument("--task", default=None, type=name, help="task (default: the robot's fastest to train)")
    p.add_argument("--algo", default=None, type=name, help="sim training algorithm (default per robot)")
    p.add_argument("--train-steps", type=positive_int, default=None)
    p.add_argument("--dr", default=None, type=dr_spec,
                   help="DR preset or JSON file for sim training (default: wide, a robust zero-shot policy; the "
                        "task's own where it has one: legged velocity default)")
    p.add_argument("--real-params", default=None, metavar="FILE", type=existing_file,
                   help="JSON for the served robot's hidden parameters (robot serve --params format)")
    p.add_argument("--latency-ms", type=finite_float(0.0, 1000.0), default=None, metavar="MS",
                   help="the served robot's one-way network delay, each way (default: the task's, else 20)")
    p.add_argument("--episodes", type=int_range(1, 1000), default=4,
                   help="evaluation episodes on the served robot per policy")
    p.add_argument("--probe-episodes", type=int_range(1, 1000), default=3,
                   help="episodes with bounded exploration recorded for identification (after one that the task "
                        "ended early, a crash or fall, the next runs at half the exploration)")
    p.add_argument("--explore", type=finite_float(0.0, 1.0), default=None, metavar="SCALE",
                   help="the first probe's exploration, SCALE x each action's half-range (default: 0.075 for the "
                        "quadrotor, 0.15 for the others)")
    p.add_argument("--finetune", default="sim", choices=("sim", "h2o", "rlpd"),
                   help="sim: identify the robot from the bags and fine-tune in sim under that DR (default); "
                        "h2o / rlpd: learn from the recorded data plus the simulator")
    p.add_argument("--finetune-steps", type=positive_int, default=None,
                   help="sim fine-tuning steps between checks under the identified DR (default per robot; "
                        "gradient steps for an imitation learner)")
    p.add_argument("--demo-episodes", type=int_range(3, 100_000), default=None,
                   help="an imitation learner's (--algo bc-diffusion|bc-flow) demonstrations by the task's "
                        "scripted expert; fine-tuning records a third as many under the identified DR "
                        "(default 300)")
    p.add_argument("--finetune-rounds", type=int_range(1, 100), default=4,
                   help="sim fine-tuning runs at most this many times --finetune-steps, stopping once the policy "
                        "succeeds in 90 %% of sim episodes under the identified DR (default 4)")
    p.add_argument("--no-dagger", dest="finetune_dagger", action="store_false",
                   help="when the PPO warm start falls short of 90 %%, do not run DAgger rounds on it under the "
                        "identified DR, labelled by the task's scripted expert (by default the best check is kept)")
    p.add_argument("--no-fresh", dest="finetune_fresh", action="store_false",
                   help="when the warm start (and DAgger) falls short of 90 %%, do not also train a fresh policy "
                        "under the identified DR (by default the best check is kept)")
    p.add_argument("--robot-rl", default="auto", choices=("auto", "on", "off"),
                   help="fine-tune on the served robot itself, episode by episode over DDS, with the robot and "
                        "identified-sim data mixed (RLPD-style): auto (default) when the best policy so far keeps "
                        "under 95 %% of sim success and the robot-time budget has room; on; off")
    p.add_argument("--robot-rl-episodes", type=int_range(1, 1000), default=12,
                   help="the most robot-RL episodes (the 5-minute robot-time budget may stop it sooner)")
    p.add_argument("--no-confirm", dest="confirm", action="store_false",
                   help="do not rerun the kept policy on --episodes fresh episodes (its reported success is then "
                        "the score it was chosen on, which leans high); saves that robot time")
    p.add_argument("--seed", type=seed, default=0,
                   help="training, demonstrations, fine-tuning, and the served robots' start states (default 0)")
    p.add_argument("--out", type=output_dir, default=None, help="run folder (default runs/pipeline-DATE-TIME)")
    p.set_defaults(func=_run)

    p = sub.add_parser("robot-rl", help="fine-tune a checkpoint on a running robot, episode by episode over ROS 2",
                       description="Robot RL (RLPD-style) on the robot itself: deploy the current actor for one "
                                   "episode with bounded exploration (guarded and recorded like every deploy), learn "
                                   "from it between episodes (robot episodes mixed with episodes simulated under "
                                   "--dr, the identified DR), repeat; keep the actor the robot scored best (with "
                                   "--eval-episodes: the better of it and the parent, deployed without exploration). "
                                   "Writes OUT/checkpoint, OUT/round-<i>/checkpoint, OUT/bags/ and OUT/summary.json.")
    p.add_argument("checkpoint", type=existing_dir, help="the deployed policy's checkpoint (PPO or SAC)")
    p.add_argument("--adapter", required=True, choices=tuple(ADAPTERS), help="how to talk to the robot")
    p.add_argument("--dr", default=None, type=dr_spec,
                   help="DR of the simulated prior: the identified preset from tether calibrate sysid (default: "
                        "the checkpoint's training DR)")
    p.add_argument("--sim", default=None, type=env_id, help="env of the simulated prior (default: the checkpoint's)")
    p.add_argument("--episodes", type=int_range(1, 1000), default=12, help="robot episodes (default 12)")
    p.add_argument("--episode-seconds", type=finite_float(0.5, 3600.0), default=None, metavar="S",
                   help="length of one episode (default: the task's episode plus 2 s to hand over control)")
    p.add_argument("--explore", type=finite_float(0.0, 1.0), default=0.1, metavar="SCALE",
                   help="exploration on the robot (band-limited noise, SCALE x each action's half-range, clipped "
                        "to the limits and guarded; default 0.1)")
    p.add_argument("--real", default=None, type=existing_path,
                   help="robot data recorded before (a deploy bag or a folder of them): learned from first")
    p.add_argument("--eval-episodes", type=int_range(0, 1000), default=0, metavar="N",
                   help="then deploy the parent and the best round's actor N times each without exploration and "
                        "keep the better (default 0: keep the best round, judged on its one exploratory episode)")
    p.add_argument("--pause", action="store_true",
                   help="wait for Enter before each episode (reset the robot first); default: run on at once")
    p.add_argument("--robot-limits", default=None, type=existing_file, metavar="FILE",
                   help="the robot's limits (JSON, see tether robot limits); default: the adapter's model")
    p.add_argument("--param", action="append", default=None, metavar="KEY=VALUE",
                   help="adapter option, VALUE as JSON (as for tether deploy)")
    p.add_argument("--domain-id", type=domain_id, default=None, help="ROS_DOMAIN_ID (default: env or 0)")
    p.add_argument("--loopback", action="store_true", help="DDS on 127.0.0.1 only")
    p.add_argument("--set", action="append", type=key_value, metavar="KEY=VALUE",
                   help="robot-RL learner option (RobotRLConfig: utd, prior_episodes, bc_weight, ...; repeatable)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--out", type=output_dir, default=None, help="run folder (default runs/robot-rl-DATE-TIME)")
    p.set_defaults(func=_robot_rl)


def _check(args: argparse.Namespace) -> dict | None:
    """Everything the run reads, checked before it trains a step: env id, algorithm, DR file, params file."""
    from tether.errors import TetherError
    from tether.pipeline.run import ROBOT_DEFAULTS
    from tether.policies.algos import available_algorithms
    from tether.sim.randomization import check_dr_option
    from tether.sim.registry import env_id, parse_env_id
    from tether.sim.served_params import load_served_params

    parse_env_id(env_id(args.robot, args.task or ROBOT_DEFAULTS[args.robot]["task"]))
    if args.algo is not None and args.algo not in available_algorithms():
        raise TetherError(f"--algo {args.algo!r}: unknown algorithm; expected one of "
                          f"{', '.join(available_algorithms())}")
    check_dr_option(args.dr)
    if args.real_params is None:
        return None
    return load_served_params(args.real_params, args.robot, what="--real-params file")


def _run(args: argparse.Namespace) -> int:
    real = _check(args)
    import torch

    from tether.pipeline.run import PipelineConfig, check_servable, run_pipeline

    torch.set_num_threads(1)  # deploy shares the cores with the served robot; training stages set their own
    cfg = PipelineConfig(robot=args.robot, task=args.task, algo=args.algo, train_steps=args.train_steps, dr=args.dr,
                         episodes=args.episodes, probe_episodes=args.probe_episodes, explore=args.explore,
                         finetune=args.finetune,
                         finetune_steps=args.finetune_steps, finetune_rounds=args.finetune_rounds,
                         finetune_dagger=args.finetune_dagger, finetune_fresh=args.finetune_fresh,
                         demo_episodes=args.demo_episodes,
                         robot_rl=args.robot_rl, robot_rl_episodes=args.robot_rl_episodes, confirm=args.confirm,
                         seed=args.seed, real=real, latency_ms=args.latency_ms)
    if args.out:
        cfg.out = args.out
    check_servable(cfg.resolved())  # before any work (run_pipeline checks again, for callers of the API)
    run_pipeline(cfg, log=lambda m: print(m, flush=True))
    return 0


def _robot_rl(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from tether.data.robot_runs import bags_under
    from tether.errors import TetherError
    from tether.pipeline.robot_rl import robot_rl_live
    from tether.policies.cli_options import parse_sets
    from tether.policies.hybrid.robot_rl import RobotRLConfig
    from tether.policies.rl.common import config_from_dict
    from tether.ros.deploy import DeployConfig, parse_params
    from tether.sim.randomization import check_dr_option

    # everything checked before the robot moves
    sets = parse_sets(args.set)
    config_from_dict(RobotRLConfig, sets, "robot RL").check()
    if args.dr is not None:
        check_dr_option(args.dr)
    earlier = bags_under(args.real) if args.real is not None else []
    out = args.out or Path("runs") / time.strftime("robot-rl-%Y%m%d-%H%M%S")
    if out.exists() and any(out.iterdir()):
        raise TetherError(f"--out {str(out)!r} is not empty; expected a new or empty folder for this run")
    robot = DeployConfig(checkpoint=str(args.checkpoint), adapter=args.adapter, domain_id=args.domain_id,
                         loopback=args.loopback, params=parse_params(args.param),
                         robot_limits=None if args.robot_limits is None else str(args.robot_limits))

    def pause(what: str) -> None:
        input(f"{what}: reset the robot, then press Enter (Ctrl-C stops) ")

    robot_rl_live(args.checkpoint, robot, out, lambda m: print(m, flush=True), episodes=args.episodes,
                  seconds=args.episode_seconds, explore=args.explore, dr=args.dr, sim_env=args.sim, config=sets,
                  earlier=earlier, seed=args.seed, eval_episodes=args.eval_episodes,
                  pause=pause if args.pause else None)
    return 0
