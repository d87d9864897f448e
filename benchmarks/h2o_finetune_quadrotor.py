"""H2O fine-tuning of a sim-trained hover checkpoint on a perturbed "real" quadrotor, guarded vs unguarded.

Why side by side: the question is whether ``finetune()``'s checkpoint defaults help or hurt on the robot, so one
run measures the parent, the defaults (BC-anchored actor + held-out real-data selection) and the same learner
with the guard off (``select_every=0``), on the same real data and the same seeded test episodes.

    .venv/bin/python benchmarks/h2o_finetune_quadrotor.py CHECKPOINT [--steps 6000]

CHECKPOINT: e.g. from ``tether train tether/QuadrotorHover-v0 --algo ppo --dr default --steps 100000``.
The real robot is PyBullet with body_mass ×1.4, motor_time_constant ×2, 2 steps of action latency; 1000 real
transitions (4 episodes, seeds 100-103) are recorded with the parent; test episodes use seeds 500-505.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests._hybrid_support import record_transitions  # noqa: E402

ENV = "tether/QuadrotorHover-v0"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--episodes", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(1)
    import tether.sim  # noqa: F401
    from tether.policies.checkpoint import load_policy
    from tether.policies.evaluation import evaluate_policy
    from tether.policies.hybrid import finetune
    from tether.sim.randomization import DRTerm

    real = [DRTerm("body_mass", "uniform", "scale", (1.4, 1.4)),
            DRTerm("motor_time_constant", "uniform", "scale", (2.0, 2.0)),
            DRTerm("action_latency", "uniform", "abs", (2, 2))]
    parent = load_policy(args.checkpoint)
    arrays = record_transitions(tether.sim.make(ENV, backend="pybullet", dr=real), parent, 4)

    def report(name: str, pol, secs: float | None = None) -> None:
        r = evaluate_policy(pol, ENV, episodes=args.episodes, seed=500, backend="pybullet", dr=real)
        s = evaluate_policy(pol, ENV, episodes=args.episodes, seed=500)
        t = "" if secs is None else f"  fine-tune wall {secs:.0f} s"
        print(f"{name:<28} real return {r.return_mean:7.2f} success {100 * r.success_rate:5.1f}%   "
              f"sim return {s.return_mean:7.2f} success {100 * s.success_rate:5.1f}%{t}", flush=True)

    report("parent", parent)
    for name, cfg in (("h2o defaults (guarded)", {}), ("h2o unguarded", {"select_every": 0})):
        t0 = time.perf_counter()
        new = finetune(args.checkpoint, arrays, sim_env=ENV, algo="h2o", steps=args.steps, seed=0, config=cfg)
        secs = time.perf_counter() - t0
        report(name, new, secs)
        sel = new.extra.get("h2o_config") and new.extra.get("selection")
        if sel:
            print("   selection:", sel["chosen"], f"start Q {sel['start_value']:.3f} best {sel['best_value']:.3f}")


if __name__ == "__main__":
    main()
