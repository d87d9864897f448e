"""World-model benchmarks, each measured side by side with its reference in one run.

1. Imagination throughput: transitions per second from the fitted ensemble (batched, one torch call per step
   for all elites and particles) against real env steps per second of the same task. Target >= 20x.
2. Sample efficiency on tether/ArmReach-v0: real env steps until the deterministic policy's mean return over
   evaluation episodes clears a threshold, MBPO against model-free SAC (same SAC settings as tests/test_sac.py).

Usage: python benchmarks/world_model.py [--quick] [--write-results]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

ENV_HOVER = "tether/QuadrotorHover-v0"
ENV_REACH = "tether/ArmReach-v0"
SAC_REACH = dict(hidden=(128, 128), critic_hidden=(128, 128), batch_size=128, learning_starts=500, gamma=0.9,
                 init_alpha=0.05, lr=1e-3)  # tests/test_sac.py's configuration
THRESHOLD = -4.0  # ArmReach return (tests/test_sac.py threshold): random actions ~ -16


def imagination_throughput(quick: bool) -> dict[str, float]:
    from tether.policies.envs import make_env
    from tether.world_models.collect import collect_transitions
    from tether.world_models.ensemble import EnsembleConfig, EnsembleWorldModel

    env = make_env(ENV_HOVER)
    neutral = env.unwrapped.contract.to_normalised(env.unwrapped.task.neutral_action()).astype(np.float32)
    env.reset(seed=0)
    n = 500 if quick else 2000
    t0 = time.perf_counter()
    for _ in range(n):
        _, _, term, trunc, _ = env.step(neutral)
        if term or trunc:
            env.reset()
    real = n / (time.perf_counter() - t0)
    env.close()
    data = collect_transitions(ENV_HOVER, 2000, noise=(0.1, 0.6), seed=0)
    out = {"real_steps_per_s": real}
    for label, cfg in (("5x(128,128), 3 elites", EnsembleConfig(members=5, elites=3, hidden=(128, 128))),
                       ("7x(200,200,200), 5 elites", EnsembleConfig(members=7, elites=5, hidden=(200, 200, 200)))):
        model = EnsembleWorldModel(22, 4, cfg)
        model.fit(data, max_updates=50)  # speed does not depend on accuracy
        for batch in (256, 4096):
            obs = torch.as_tensor(np.repeat(data["obs"][:1], batch, 0))
            act = torch.as_tensor(np.repeat(neutral[None], batch, 0))
            e = len(model.elite_idx)
            o = obs.unsqueeze(0).expand(e, -1, -1)
            a = act.unsqueeze(0).expand(e, -1, -1)
            layers = model._elite_layers()
            reps = 20 if quick else 100
            t0 = time.perf_counter()
            for _ in range(reps):
                o = model.elite_step(o, a, layers)[0]
            per_s = reps * batch * e / (time.perf_counter() - t0)  # every elite advances its own particle
            out[f"{label}, batch {batch}"] = per_s
            # the numpy step() API (one sampled member per row, as MBPO rollouts use it)
            ob, ac = data["obs"][:1].repeat(batch, 0), np.repeat(neutral[None], batch, 0)
            t0 = time.perf_counter()
            for _ in range(max(reps // 4, 5)):
                ob = model.step(ob, ac)[0]
            out[f"{label}, batch {batch}, step()"] = max(reps // 4, 5) * batch / (time.perf_counter() - t0)
    return out


def _eval(policy, episodes: int, seed: int) -> float:
    from tether.policies.evaluation import evaluate_policy

    return evaluate_policy(policy, ENV_REACH, episodes=episodes, seed=seed).return_mean


class _EvalRun:
    """The slice of TrainingRun the trainers call: evaluates the deterministic policy every ``every`` steps."""

    def __init__(self, every: int, episodes: int = 10) -> None:
        self.every, self.episodes, self.curve, self._next, self._t0 = every, episodes, [], every, time.perf_counter()

    def set_policy(self, policy) -> None:
        pass

    def advance(self, step: int) -> None:
        pass

    def log(self, step: int, metrics) -> None:
        pass

    def maybe_evaluate(self, step: int, policy) -> None:
        if step >= self._next:
            self._next += self.every
            self.curve.append((step, _eval(policy, self.episodes, 321), time.perf_counter() - self._t0))


def sample_efficiency(quick: bool) -> dict[str, object]:
    """Real steps to reach THRESHOLD: one run per method, evaluated (10 episodes, fixed seeds) at fixed step counts."""
    from tether.policies.rl.sac import train_sac
    from tether.world_models.mbrl import MBPOConfig, train_mbpo

    mbpo_run = _EvalRun(250)
    train_mbpo(ENV_REACH, 1500 if quick else 2000, MBPOConfig(**MBPO_REACH), seed=0, run=mbpo_run)
    sac_run = _EvalRun(500)
    train_sac(ENV_REACH, 6000, SAC_REACH, seed=0, run=sac_run)
    return {"mbpo": mbpo_run.curve, "sac": sac_run.curve}


# the configuration tests/test_world_models_mbrl.py uses
MBPO_REACH = dict(sac={k: v for k, v in SAC_REACH.items() if k != "learning_starts"}, init_steps=200,
                  model_train_every=250, model_updates=500, rollout_every=25, rollout_batch=256, rollout_length=5,
                  utd=10, real_ratio=0.05, reward="arm_reach")


def _first(curve, sustained: bool = False) -> str:
    """First evaluated step count above THRESHOLD (``sustained``: and above it at every later evaluation)."""
    for i, (steps, ret, _) in enumerate(curve):
        if ret > THRESHOLD and (not sustained or all(r > THRESHOLD for _, r, _ in curve[i:])):
            return str(steps)
    return f"> {curve[-1][0]}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--skip-efficiency", action="store_true")
    p.add_argument("--write-results", action="store_true", help="replace the World models section of RESULTS.md")
    args = p.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    tp = imagination_throughput(args.quick)
    real = tp.pop("real_steps_per_s")
    lines = [f"Real {ENV_HOVER} env steps/s (single env, MuJoCo): {real:.0f}", "",
             "| model | batch | imagined transitions/s | x real |", "|---|---|---|---|"]
    for k, v in tp.items():
        label, _, rest = k.partition(", batch ")
        lines.append(f"| {label} | {rest} | {v:,.0f} | {v / real:.0f}x |")
    print("\n".join(lines))
    eff = None
    if not args.skip_efficiency:
        eff = sample_efficiency(args.quick)
        for name in ("mbpo", "sac"):
            for steps, ret, dt in eff[name]:  # type: ignore[union-attr]
                print(f"{name}: {steps} real steps -> return {ret:.2f} ({dt:.0f} s)")
        print(f"steps to return > {THRESHOLD} (first / sustained): MBPO {_first(eff['mbpo'])} / "
              f"{_first(eff['mbpo'], True)}, SAC {_first(eff['sac'])} / {_first(eff['sac'], True)}")
    if args.write_results:
        _write(lines, eff, load)


def _write(lines: list[str], eff, load: float) -> None:
    path = Path(__file__).with_name("RESULTS.md")
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    date = datetime.date.today().isoformat()
    sec = [f"## World models (tether.world_models)", "",
           f"Date {date}; machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), no GPU; "
           f"Python {platform.python_version()}; torch threads 1; load average at start {load:.1f} "
           f"(shared machine: absolute rates are depressed, ratios measured in the same run).",
           "Command: `.venv/bin/python benchmarks/world_model.py --write-results`.", "",
           "1. Imagination throughput (ensemble elites' mean prediction, one torch call per step; step() is the numpy "
           "API sampling one elite per row, as MBPO rollouts use it) against real env steps of the same task. "
           "Target >= 20x.", ""] + lines
    if eff is not None:
        sec += ["", f"2. Sample efficiency on {ENV_REACH}: real env steps until the deterministic policy's mean return "
                f"over 10 evaluation episodes exceeds {THRESHOLD} (random ~ -16). One seed-0 run "
                "per method, evaluated along the way; wall s is training time so far (machine load inflates it).", "",
                "| method | real steps | eval return | wall s |", "|---|---|---|---|"]
        for name in ("mbpo", "sac"):
            for steps, ret, dt in eff[name]:
                sec.append(f"| {name.upper()} | {steps} | {ret:.2f} | {dt:.0f} |")
        best_sac = max(r for _, r, _ in eff["sac"])
        beat = next((st for st, r, _ in eff["mbpo"] if r > best_sac), None)
        sec += ["", f"Steps to threshold (first / from then on): MBPO {_first(eff['mbpo'])} / "
                f"{_first(eff['mbpo'], True)}, SAC {_first(eff['sac'])} / {_first(eff['sac'], True)}. "
                f"MBPO exceeds SAC's best return over all {eff['sac'][-1][0]} steps ({best_sac:.2f}) at "
                f"{beat if beat is not None else 'no evaluated budget'} real steps."]
    block = "\n".join(sec) + "\n"
    head = "## World models (tether.world_models)"
    if head in text:
        start = text.index(head)
        nxt = text.find("\n## ", start + len(head))
        text = text[:start] + block + (text[nxt + 1:] if nxt != -1 else "")
    else:
        text = text.rstrip() + "\n\n" + block
    path.write_text(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
