"""Torch threads for the pipeline's training stages: the learners the pipeline trains, on one thread against two.

The pipeline trains and fine-tunes while no served robot runs, so a 2-core machine has a core to spare then
(``tether.pipeline.stages.training_threads``). This measures what a second torch thread buys each learner the
pipeline trains, with its own settings: ``bc-diffusion`` (arm push: a 4-observation window), ``bc-mlp`` (legged
velocity: 4 observations, batch 512) and PPO (quadrotor hover, the demo's learner). Each run is ``tether train``
in a fresh process (start-up included, as in the pipeline's figures' terms), runs alternate one thread / two
threads (A, B, A, B), and the script prints each run's seconds and the ratio of the medians (> 1: two threads
faster). The demonstrations are recorded first by the task's scripted expert (not timed). ``--busy N`` keeps N
other processes spinning through the timed runs: what the choice costs on a machine that is not idle.

    .venv/bin/python benchmarks/train_threads.py [--repeats 2] [--demos 40] [--bc-steps 3000] [--ppo-steps 60000]
        [--busy N] [--only NAME]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TETHER = [sys.executable, "-m", "tether.cli"]
# (name, env id, algo, extra `tether train` arguments); the bc- ones train on the task's expert demonstrations
LEARNERS = (
    ("arm push, bc-diffusion", "tether/ArmPush-v0", "bc-diffusion", ["--set", "n_obs_steps=4"]),
    ("legged velocity, bc-mlp", "tether/LeggedVelocity-v0", "bc-mlp",
     ["--set", "history=4", "--set", "batch_size=512", "--set", "dagger_rounds=0"]),
    ("quadrotor hover, ppo", "tether/QuadrotorHover-v0", "ppo", []),
)


def _run(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t


def _timed(runs: list[tuple[str, list[str]]], repeats: int, times: dict[tuple[str, int], list[float]],
           tmp: Path) -> None:
    """Each learner on one thread then two, ``repeats`` times over (A, B, A, B)."""
    for r in range(repeats):
        for name, argv in runs:
            for threads in (1, 2):
                out = tmp / f"run-{len(times)}-{r}-{threads}"
                t = _run([*argv, "--threads", str(threads), "--out", str(out)])
                times.setdefault((name, threads), []).append(t)
                print(f"{name}: {threads} thread(s), repeat {r + 1}: {t:.1f} s", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--demos", type=int, default=40, help="expert demonstrations per imitation learner")
    ap.add_argument("--bc-steps", type=int, default=3000)
    ap.add_argument("--ppo-steps", type=int, default=60_000)
    ap.add_argument("--busy", type=int, default=0, help="other processes kept spinning during the timed runs")
    ap.add_argument("--only", default="", help="time only the learners whose name contains this")
    args = ap.parse_args()

    from tether.data.demos import record_episodes

    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for name, env_id, algo, extra in (x for x in LEARNERS if args.only in x[0]):
            argv = [*TETHER, "train", env_id, "--algo", algo, "--no-progress", "--eval-every", "0", *extra]
            if algo.startswith("bc-"):
                demos = Path(tmp) / f"demos-{algo}"
                record_episodes(env_id, demos, args.demos, seed=0)
                argv += ["--dataset", str(demos), "--steps", str(args.bc_steps)]
            else:
                argv += ["--steps", str(args.ppo_steps)]
            runs.append((name, argv))
        times: dict[tuple[str, int], list[float]] = {}
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
        try:
            _timed(runs, args.repeats, times, Path(tmp))
        finally:
            for b in busy:
                b.kill()
    print(f"\n{args.busy} other process(es) spinning")
    print("| learner | 1 thread (s) | 2 threads (s) | ratio of medians |\n|---|---|---|---|")
    for name, _ in runs:
        one, two = times[(name, 1)], times[(name, 2)]
        print(f"| {name} | {' / '.join(f'{t:.1f}' for t in one)} | {' / '.join(f'{t:.1f}' for t in two)} | "
              f"{statistics.median(one) / statistics.median(two):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
