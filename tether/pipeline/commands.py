"""``tether pipeline``: the whole sim-to-real loop on embedded defaults (what ``make demo`` runs)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="train → deploy to a served robot → record → fine-tune → deploy → report")
    p.add_argument("--robot", default="quadrotor", help="quadrotor (default), arm or legged")
    p.add_argument("--task", default=None, help="task (default: the robot's fastest to train)")
    p.add_argument("--algo", default=None, help="sim training algorithm (default per robot)")
    p.add_argument("--train-steps", type=int, default=None)
    p.add_argument("--dr", default="wide", help="DR preset for sim training (default wide: a robust zero-shot policy)")
    p.add_argument("--real-params", default=None, metavar="FILE",
                   help="JSON for the served robot's hidden parameters (robot serve --params format)")
    p.add_argument("--episodes", type=int, default=4, help="evaluation episodes on the served robot per policy")
    p.add_argument("--probe-episodes", type=int, default=3,
                   help="episodes with bounded exploration recorded for identification")
    p.add_argument("--finetune", default="sim", choices=("sim", "h2o", "rlpd"),
                   help="sim: identify the robot from the bags and fine-tune in sim under that DR (default); "
                        "h2o / rlpd: learn from the recorded data plus the simulator")
    p.add_argument("--finetune-steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run folder (default runs/pipeline-DATE-TIME)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import torch

    from tether.pipeline.run import PipelineConfig, run_pipeline

    torch.set_num_threads(1)  # the served robot and the trainer share the cores
    cfg = PipelineConfig(robot=args.robot, task=args.task, algo=args.algo, train_steps=args.train_steps, dr=args.dr,
                         episodes=args.episodes, probe_episodes=args.probe_episodes, finetune=args.finetune,
                         finetune_steps=args.finetune_steps, seed=args.seed,
                         real=json.loads(Path(args.real_params).read_text()) if args.real_params else None)
    if args.out:
        cfg.out = Path(args.out)
    run_pipeline(cfg, log=lambda m: print(m, flush=True))
    return 0
