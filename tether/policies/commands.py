"""``tether train``, ``tether eval`` and ``tether export``: the policy lifecycle from the command line.

Heavy imports (torch, gymnasium, the simulators) happen inside the handlers so ``tether --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tether.cli_types import (
    backend,
    dr_spec, env_id, existing_dir, finite_float, int_range, nonneg_int, output_dir, output_file, positive_int, seed,
)
from tether.policies.cli_options import add_ray_option, add_training_options, check_env_and_dr, parse_sets


def register(subparsers: argparse._SubParsersAction) -> None:
    from tether.policies.algos import available_algorithms

    algos = available_algorithms()

    def algo(text: str) -> str:
        if text not in algos:
            raise argparse.ArgumentTypeError(f"unknown algorithm {text!r}; expected one of {', '.join(algos)}")
        return text

    p = subparsers.add_parser(
        "train", help="train a policy in simulation (or from a dataset) and save a checkpoint",
        description="Train a policy. Algorithms: " + "; ".join(f"{k}: {v}" if v else k for k, v in algos.items()),
    )
    p.add_argument("env_id", type=env_id,
                   help="env id, e.g. tether/QuadrotorHover-v0 (or a Gymnasium Box env like Pendulum-v1)")
    p.add_argument("--algo", required=True, type=algo, help=f"training algorithm: {', '.join(algos)}")
    p.add_argument("--dr", default=None, type=dr_spec, help="domain-randomisation preset (none, default, wide) or "
                                                             "a JSON file of terms")
    p.add_argument("--backend", default=None, type=backend, metavar="{mujoco,pybullet}",
                   help="physics backend: mujoco (default) or pybullet")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="env steps (online) or gradient steps (offline)")
    p.add_argument("--out", type=output_dir, default=None, help="output directory (default runs/ALGO-ENV-sSEED)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--eval-every", type=nonneg_int, default=None,
                   help="evaluate every N steps (default steps/5; 0 off)")
    p.add_argument("--eval-episodes", type=nonneg_int, default=5)
    p.add_argument("--dataset", type=existing_dir, default=None,
                   help="dataset directory for offline / imitation algorithms")
    p.add_argument("--init", type=existing_dir, default=None, metavar="CHECKPOINT",
                   help="continue training this checkpoint (PPO), e.g. fine-tuning under an identified DR file")
    add_training_options(p)
    add_ray_option(p, "collect PPO/SAC rollouts")
    p.set_defaults(func=_train)

    e = subparsers.add_parser("eval", help="evaluate a checkpoint: success rate and return mean ± std")
    e.add_argument("checkpoint", type=existing_dir)
    e.add_argument("env_id", nargs="?", type=env_id, default=None,
                   help="env id (default: the one the checkpoint was trained on, if it is a tether/ id)")
    e.add_argument("--backend", default=None, type=backend, metavar="{mujoco,pybullet}", help="physics backend")
    e.add_argument("--dr", default=None, type=dr_spec, help="domain-randomisation preset or JSON file for evaluation")
    e.add_argument("--episodes", type=int_range(1, 1_000_000), default=10)
    e.add_argument("--seed", type=seed, default=0)
    e.add_argument("--video", type=output_file((".mp4", ".gif")), default=None, help="write an mp4 of the episodes")
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    add_ray_option(e, "run the episodes")
    e.set_defaults(func=_eval)

    x = subparsers.add_parser("export", help="export a checkpoint to ONNX with an enforced parity check")
    x.add_argument("checkpoint", type=existing_dir)
    x.add_argument("--onnx", type=output_file(".onnx"), required=True,
                   help="output .onnx path (its folder must exist)")
    x.add_argument("--samples", type=int_range(1, 1_000_000), default=256,
                   help="random observations for the parity check")
    x.add_argument("--atol", type=finite_float(0.0, 1.0, lo_open=True), default=1e-4,
                   help="max abs diff allowed between torch and onnxruntime")
    x.set_defaults(func=_export)


def _train(args: argparse.Namespace) -> int:
    from tether.errors import TetherError

    check_env_and_dr(args.env_id, args.dr)
    if not args.env_id.startswith("tether/") and (args.backend or args.dr not in (None, "none")):
        raise TetherError(f"env {args.env_id!r} is a plain Gymnasium env; --backend/--dr apply only to tether/* envs")
    if args.init is not None and args.algo != "ppo":
        raise TetherError(f"--init continues a PPO policy; expected --algo ppo, got {args.algo!r}")
    import torch

    from tether.policies.algos import get_algorithm
    from tether.policies.training import TrainSpec, run_training

    torch.set_num_threads(args.threads)  # small RL nets: extra threads mostly add sync overhead
    get_algorithm(args.algo)  # fail fast with the list of algorithms
    _note_effective_steps(args.algo, args.steps, parse_sets(args.set))
    out = args.out or Path("runs") / f"{args.algo}-{args.env_id.split('/')[-1]}-s{args.seed}"
    spec = TrainSpec(env_id=args.env_id, algo=args.algo, steps=args.steps, out=out, seed=args.seed, dr=args.dr,
                     backend=args.backend, eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                     config=parse_sets(args.set), dataset=args.dataset, progress=not args.no_progress,
                     init_checkpoint=None if args.init is None else str(args.init),
                     executor="ray" if args.ray else "inprocess",
                     executor_options={"address": args.ray} if args.ray else {})
    _, path = run_training(spec)
    print(f"saved {path}")
    print(f"logs: {out / 'metrics.csv'}, tensorboard --logdir {out / 'tb'}")
    return 0


def _note_effective_steps(algo: str, steps: int | None, sets: dict[str, Any]) -> None:
    """PPO collects whole rollouts (num_envs x rollout_steps): say so when --steps is not a multiple of one."""
    if algo != "ppo" or not steps:
        return
    from tether.policies.dagger import DaggerConfig
    from tether.policies.rl.common import config_from_dict
    from tether.policies.rl.ppo import PPOConfig

    ppo_sets = dict(sets)
    DaggerConfig.pop_from(ppo_sets)  # the rounds after PPO (checked here too): not PPO options
    cfg = config_from_dict(PPOConfig, ppo_sets, "PPO")
    per = cfg.num_envs * cfg.rollout_steps
    if steps > per and steps % per:
        print(f"tether train: PPO collects whole rollouts of {cfg.num_envs} envs x {cfg.rollout_steps} steps = {per}; "
              f"--steps {steps} trains {steps // per * per} env steps")


def _eval(args: argparse.Namespace) -> int:
    from tether.errors import TetherError
    from tether.policies.checkpoint import load_checkpoint, load_policy, recorded_env_id
    from tether.policies.evaluation import evaluate_policy

    check_env_and_dr(args.env_id, args.dr)
    ckpt = load_checkpoint(args.checkpoint)
    env_id = args.env_id or recorded_env_id(ckpt)  # from the file: only a registered tether/ id, never imported
    if not env_id:
        raise TetherError(f"checkpoint {args.checkpoint} does not record its env; pass ENV_ID")
    if args.ray and args.video:
        raise TetherError("--video records frames on this machine; expected either --video or --ray, not both")
    policy = load_policy(args.checkpoint)
    # --ray: the episodes' worlds step in Ray actors (the vector API's "ray" executor), same per-episode seeds
    result = evaluate_policy(policy, env_id, episodes=args.episodes, seed=args.seed, backend=args.backend,
                             dr=args.dr, video=args.video, executor="ray" if args.ray else "inprocess",
                             executor_options={"address": args.ray} if args.ray else None)
    if args.json:
        print(json.dumps({"env_id": env_id, "episodes": args.episodes, "success_rate": result.success_rate,
                          "return_mean": result.return_mean, "return_std": result.return_std,
                          "length_mean": float(result.lengths.mean())}))
    else:
        print(f"{env_id} ({args.backend or 'default backend'}): {result.summary()}")
    if args.video:
        print(f"video: {args.video}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from tether.policies.export import export_onnx

    export_onnx(args.checkpoint, args.onnx, parity_samples=args.samples, atol=args.atol)
    return 0
