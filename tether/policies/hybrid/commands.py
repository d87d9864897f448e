"""``tether finetune``: a sim-trained checkpoint plus real-robot data (dataset or rosbag2) → a new checkpoint.

Heavy imports happen inside the handler so ``tether --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tether.cli_types import backend, dr_spec, env_id, existing_dir, existing_path, output_dir, positive_int, seed
from tether.policies.cli_options import add_training_options, check_env_and_dr, parse_sets


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "finetune", help="fine-tune a checkpoint with real data (H2O, RLPD or robot RL) and save a new checkpoint",
        description="Fine-tune CHECKPOINT with real transitions. h2o: real dataset + online simulator rollouts, "
                    "simulated transitions weighted and penalised by their estimated dynamics gap. rlpd: real "
                    "dataset and fresh rollouts in ENV sampled 50/50, LayerNorm critic ensemble, high UTD. "
                    "robot-rl: one round of fine-tuning on the robot itself: --real is the deploy bags recorded so "
                    "far (a folder of them), scored by the task's objective, mixed with episodes simulated under "
                    "--dr (the identified DR); deploy the result with --explore and --record, then run again.",
    )
    p.add_argument("checkpoint", type=existing_dir,
                   help="checkpoint directory (e.g. runs/sac-QuadrotorHover-v0-s0/checkpoint)")
    p.add_argument("--real", required=True, type=existing_path,
                   help="real data: a dataset directory or a rosbag2 recording (robot-rl: a deploy bag or a "
                        "folder of them)")
    p.add_argument("--sim", default=None, type=env_id,
                   help="env id to interact with (default: the checkpoint's env, if it is a tether/ id)")
    p.add_argument("--algo", default="h2o", choices=("h2o", "rlpd", "robot-rl"),
                   help="h2o (default), rlpd or robot-rl")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="env steps (default 6000 for h2o, 5000 for rlpd); robot-rl: gradient updates (default 5 per "
                        "robot transition, at most 5000)")
    p.add_argument("--out", type=output_dir, default=None, help="output directory (default runs/finetune-ALGO-sSEED)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--backend", default=None, type=backend, metavar="{mujoco,pybullet}",
                   help="physics backend of the sim env: mujoco or pybullet")
    p.add_argument("--dr", default=None, type=dr_spec,
                   help="DR preset or .json for the sim env (default: the checkpoint's terms)")
    add_training_options(p)
    p.set_defaults(func=_finetune)


def _finetune(args: argparse.Namespace) -> int:
    check_env_and_dr(args.sim, args.dr)
    import torch

    from tether.policies.hybrid.finetune import ALGOS, finetune
    from tether.errors import TetherError

    if args.algo not in ALGOS:
        raise TetherError(f"unknown --algo {args.algo!r}; expected one of {', '.join(ALGOS)}")
    torch.set_num_threads(args.threads)
    out = args.out or Path("runs") / f"finetune-{args.algo}-s{args.seed}"
    bar = None
    progress = None
    if not args.no_progress:
        from tqdm.auto import tqdm

        def progress(step: int, total: int, metrics: dict[str, float]) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, desc=f"finetune {args.algo}", unit="step", dynamic_ncols=True)
            bar.update(max(step - bar.n, 0))
            shown = {k.split("/")[-1]: f"{v:.3g}" for k, v in metrics.items() if "return" in k or "critic" in k}
            if shown:
                bar.set_postfix(shown, refresh=False)
    try:
        finetune(args.checkpoint, args.real, args.sim, algo=args.algo, steps=args.steps, seed=args.seed, out=out,
                 config=parse_sets(args.set), backend=args.backend, dr=args.dr, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    print(f"saved {out / 'checkpoint'}")
    print(f"logs: {out / 'metrics.csv'}, tensorboard --logdir {out / 'tb'}")
    return 0
