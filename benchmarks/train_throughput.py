"""Training throughput: tether PPO/SAC vs Stable-Baselines3 PPO/SAC on the same tether env and network sizes.

Both sides run in this process, one after the other, on the same env (default tether/QuadrotorHover-v0, MuJoCo),
with the same network sizes, batch sizes, rollout lengths and update counts, 1 torch thread, and comparable
features (SB3 PPO gets VecNormalize for obs + reward normalisation, which tether PPO does inside the policy).
Reported per algorithm:
- env steps/s: total env steps / total wall time of training (collection + updates, end to end);
- gradient updates/s: gradient steps / time spent inside the update phase (SB3: ``model.train``).
Ratios are tether / SB3 (> 1 means tether is faster).

    .venv/bin/python benchmarks/train_throughput.py [--ppo-steps 16384] [--sac-steps 3000] [--env ID]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from tether.policies.envs import make_env

PPO_KW = dict(num_envs=8, rollout_steps=128, epochs=5, minibatch_size=256, hidden=(64, 64))
SAC_KW = dict(hidden=(256, 256), critic_hidden=(256, 256), batch_size=256, learning_starts=1000)


def tether_ppo(env_id: str, steps: int) -> dict[str, float]:
    from tether.policies.rl.ppo import train_ppo

    t0 = time.perf_counter()
    pol = train_ppo(env_id, steps, dict(PPO_KW), seed=0)
    wall = time.perf_counter() - t0
    ex = pol.extra
    return {"env_steps": ex["env_steps"], "wall_s": wall, "updates": ex["gradient_updates"],
            "update_s": ex["update_time_s"]}


def sb3_ppo(env_id: str, steps: int) -> dict[str, float]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    venv = VecNormalize(DummyVecEnv([lambda: make_env(env_id)] * PPO_KW["num_envs"]), gamma=0.99)
    model = PPO("MlpPolicy", venv, n_steps=PPO_KW["rollout_steps"], batch_size=PPO_KW["minibatch_size"],
                n_epochs=PPO_KW["epochs"], policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64])),
                seed=0, device="cpu", verbose=0)
    timer = _wrap_train(model)
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    wall = time.perf_counter() - t0
    n_iter = model.num_timesteps // (PPO_KW["num_envs"] * PPO_KW["rollout_steps"])
    batch = PPO_KW["num_envs"] * PPO_KW["rollout_steps"]
    updates = n_iter * PPO_KW["epochs"] * (batch // PPO_KW["minibatch_size"])
    venv.close()
    return {"env_steps": model.num_timesteps, "wall_s": wall, "updates": updates, "update_s": timer["s"]}


def tether_sac(env_id: str, steps: int) -> dict[str, float]:
    from tether.policies.rl.sac import train_sac

    t0 = time.perf_counter()
    sac = train_sac(env_id, steps, dict(SAC_KW), seed=0)
    wall = time.perf_counter() - t0
    ex = sac.policy.extra
    return {"env_steps": ex["env_steps"], "wall_s": wall, "updates": ex["gradient_updates"],
            "update_s": ex["update_time_s"]}


def sb3_sac(env_id: str, steps: int) -> dict[str, float]:
    from stable_baselines3 import SAC

    env = make_env(env_id)
    model = SAC("MlpPolicy", env, batch_size=SAC_KW["batch_size"], learning_starts=SAC_KW["learning_starts"],
                policy_kwargs=dict(net_arch=[256, 256]), train_freq=1, gradient_steps=1, seed=0, device="cpu",
                verbose=0, buffer_size=steps + 1)
    timer = _wrap_train(model)
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    wall = time.perf_counter() - t0
    env.close()
    return {"env_steps": model.num_timesteps, "wall_s": wall, "updates": model._n_updates, "update_s": timer["s"]}


def _wrap_train(model) -> dict[str, float]:
    timer = {"s": 0.0}
    inner = model.train

    def timed(*a, **k):
        t = time.perf_counter()
        out = inner(*a, **k)
        timer["s"] += time.perf_counter() - t
        return out

    model.train = timed
    return timer


def _rates(r: dict[str, float]) -> tuple[float, float]:
    return r["env_steps"] / r["wall_s"], r["updates"] / max(r["update_s"], 1e-9)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="tether/QuadrotorHover-v0")
    ap.add_argument("--ppo-steps", type=int, default=16384)
    ap.add_argument("--sac-steps", type=int, default=2000)
    ap.add_argument("--only", choices=("ppo", "sac"), default=None)
    ap.add_argument("--repeats", type=int, default=2,
                    help="alternate tether/sb3 this many times and keep each side's best (load drifts on shared hosts)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    results = {}
    pairs = []
    if args.only in (None, "ppo"):
        pairs.append(("PPO", tether_ppo, sb3_ppo, args.ppo_steps))
    if args.only in (None, "sac"):
        pairs.append(("SAC", tether_sac, sb3_sac, args.sac_steps))
    print(f"env {args.env}, torch {torch.__version__}, 1 thread")
    print(f"{'algo':5s} {'impl':7s} {'env steps/s':>12s} {'updates/s':>10s} {'env steps':>10s} {'updates':>8s} {'wall s':>8s}")
    for name, ours, theirs, steps in pairs:
        rows: dict[str, dict[str, float]] = {}
        for rep in range(args.repeats):
            for impl, fn in (("tether", ours), ("sb3", theirs)) if rep % 2 == 0 else (("sb3", theirs), ("tether", ours)):
                r = fn(args.env, steps)
                sps, ups = _rates(r)
                print(f"{name:5s} {impl:7s} {sps:12.1f} {ups:10.1f} {r['env_steps']:10d} {r['updates']:8d} "
                      f"{r['wall_s']:8.1f}  (run {rep + 1})", flush=True)
                best = rows.get(impl)
                rows[impl] = {"env_steps_per_s": max(sps, best["env_steps_per_s"]) if best else sps,
                              "updates_per_s": max(ups, best["updates_per_s"]) if best else ups}
        for impl in ("tether", "sb3"):
            print(f"{name:5s} {impl:7s} best: {rows[impl]['env_steps_per_s']:.1f} env steps/s, "
                  f"{rows[impl]['updates_per_s']:.1f} updates/s")
        ratio_env = rows["tether"]["env_steps_per_s"] / rows["sb3"]["env_steps_per_s"]
        ratio_upd = rows["tether"]["updates_per_s"] / rows["sb3"]["updates_per_s"]
        print(f"{name:5s} ratio tether/sb3: env steps/s {ratio_env:.2f}x, gradient updates/s {ratio_upd:.2f}x")
        results[name] = {**rows, "ratio_env_steps": ratio_env, "ratio_updates": ratio_upd}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
