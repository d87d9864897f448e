"""``tether pipeline``: the whole sim-to-real loop on embedded defaults (what ``make demo`` runs)."""

from __future__ import annotations

import argparse

from tether.cli_types import dr_spec, existing_file, int_range, name, output_dir, positive_int, seed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="train → deploy to a served robot → record → fine-tune → deploy → report")
    p.add_argument("--robot", default="quadrotor", choices=("quadrotor", "arm", "legged"),
                   help="quadrotor (default), arm or legged")
    p.add_argument("--task", default=None, type=name, help="task (default: the robot's fastest to train)")
    p.add_argument("--algo", default=None, type=name, help="sim training algorithm (default per robot)")
    p.add_argument("--train-steps", type=positive_int, default=None)
    p.add_argument("--dr", default="wide", type=dr_spec,
                   help="DR preset or JSON file for sim training (default wide: a robust zero-shot policy)")
    p.add_argument("--real-params", default=None, metavar="FILE", type=existing_file,
                   help="JSON for the served robot's hidden parameters (robot serve --params format)")
    p.add_argument("--episodes", type=int_range(1, 1000), default=4,
                   help="evaluation episodes on the served robot per policy")
    p.add_argument("--probe-episodes", type=int_range(1, 1000), default=3,
                   help="episodes with bounded exploration recorded for identification")
    p.add_argument("--finetune", default="sim", choices=("sim", "h2o", "rlpd"),
                   help="sim: identify the robot from the bags and fine-tune in sim under that DR (default); "
                        "h2o / rlpd: learn from the recorded data plus the simulator")
    p.add_argument("--finetune-steps", type=positive_int, default=None,
                   help="sim fine-tuning steps between checks under the identified DR (default per robot)")
    p.add_argument("--finetune-rounds", type=int_range(1, 100), default=4,
                   help="sim fine-tuning runs at most this many times --finetune-steps, stopping once the policy "
                        "succeeds in 90 %% of sim episodes under the identified DR (default 4)")
    p.add_argument("--no-fresh", dest="finetune_fresh", action="store_false",
                   help="when the warm start falls short of 90 %%, do not also train a fresh policy under the "
                        "identified DR (by default the better of the two is kept)")
    p.add_argument("--robot-rl", default="auto", choices=("auto", "on", "off"),
                   help="fine-tune on the served robot itself, episode by episode over DDS, with the robot and "
                        "identified-sim data mixed (RLPD-style): auto (default) when the best policy so far keeps "
                        "under 95 %% of sim success and the robot-time budget has room; on; off")
    p.add_argument("--robot-rl-episodes", type=int_range(1, 1000), default=12,
                   help="the most robot-RL episodes (the 5-minute robot-time budget may stop it sooner)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--out", type=output_dir, default=None, help="run folder (default runs/pipeline-DATE-TIME)")
    p.set_defaults(func=_run)


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

    torch.set_num_threads(1)  # the served robot and the trainer share the cores
    cfg = PipelineConfig(robot=args.robot, task=args.task, algo=args.algo, train_steps=args.train_steps, dr=args.dr,
                         episodes=args.episodes, probe_episodes=args.probe_episodes, finetune=args.finetune,
                         finetune_steps=args.finetune_steps, finetune_rounds=args.finetune_rounds,
                         finetune_fresh=args.finetune_fresh, robot_rl=args.robot_rl,
                         robot_rl_episodes=args.robot_rl_episodes, seed=args.seed, real=real)
    if args.out:
        cfg.out = args.out
    check_servable(cfg.resolved())  # before any work (run_pipeline checks again, for callers of the API)
    run_pipeline(cfg, log=lambda m: print(m, flush=True))
    return 0
