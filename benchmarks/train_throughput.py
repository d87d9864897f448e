"""Training throughput: tether PPO/SAC vs Stable-Baselines3 PPO/SAC on the same tether env and network sizes.

Both sides run in this process, one after the other, on the same env (default tether/QuadrotorHover-v0, MuJoCo),
with the same network sizes, batch sizes, rollout lengths and update counts, 1 torch thread, and comparable
features (SB3 PPO gets VecNormalize for obs + reward normalisation, which tether PPO does inside the policy).
Reported per algorithm:
- collection env steps/s: env steps / time spent collecting (stepping the envs and running the policy; the
  batched core for tether, SB3's DummyVecEnv over the same envs): the issue's target is >= 2x for PPO;
- env steps/s: total env steps / total wall time of training (collection + updates, end to end);
- gradient updates/s: gradient steps / time spent inside the update phase (SB3: ``model.train``).
Ratios are tether / SB3 (> 1 means tether is faster). PPO uses tether's default PPOConfig on both sides.

    .venv/bin/python benchmarks/train_throughput.py [--ppo-steps 16384] [--sac-steps 3000] [--env ID]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from tether.policies.envs import make_env

def _ppo_defaults() -> dict:
    from tether.policies.rl.ppo import PPOConfig

    c = PPOConfig()
    return dict(num_envs=c.num_envs, rollout_steps=c.rollout_steps, epochs=c.epochs, minibatch_size=c.minibatch_size,
                hidden=c.hidden)


PPO_KW = _ppo_defaults()
SAC_KW = dict(hidden=(256, 256), critic_hidden=(256, 256), batch_size=256, learning_starts=1000)


def tether_ppo(env_id: str, steps: int) -> dict[str, float]:
    from tether.policies.rl.ppo import train_ppo

    t0 = time.perf_counter()
    pol = train_ppo(env_id, steps, dict(PPO_KW), seed=0)
    wall = time.perf_counter() - t0
    ex = pol.extra
    return {"env_steps": ex["env_steps"], "wall_s": wall, "updates": ex["gradient_updates"],
            "update_s": ex["update_time_s"], "collect_s": ex["env_time_s"]}


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
    return {"env_steps": model.num_timesteps, "wall_s": wall, "updates": updates, "update_s": timer["s"],
            "collect_s": wall - timer["s"]}


def tether_sac(env_id: str, steps: int) -> dict[str, float]:
    from tether.policies.rl.sac import train_sac

    t0 = time.perf_counter()
    sac = train_sac(env_id, steps, dict(SAC_KW), seed=0)
    wall = time.perf_counter() - t0
    ex = sac.policy.extra
    return {"env_steps": ex["env_steps"], "wall_s": wall, "updates": ex["gradient_updates"],
            "update_s": ex["update_time_s"], "collect_s": ex["env_time_s"]}


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
    return {"env_steps": model.num_timesteps, "wall_s": wall, "updates": model._n_updates, "update_s": timer["s"],
            "collect_s": wall - timer["s"]}


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


def _rates(r: dict[str, float]) -> tuple[float, float, float]:
    return (r["env_steps"] / r["collect_s"], r["env_steps"] / r["wall_s"], r["updates"] / max(r["update_s"], 1e-9))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="tether/QuadrotorHover-v0")
    ap.add_argument("--ppo-steps", type=int, default=16384)
    ap.add_argument("--sac-steps", type=int, default=2000)
    ap.add_argument("--only", choices=("ppo", "sac"), default=None)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved tether/sb3 rounds; medians are reported")
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
    print(f"env {args.env}, torch {torch.__version__}, 1 thread, load {os.getloadavg()[0]:.2f}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'algo':5s} {'impl':7s} {'collect/s':>10s} {'env steps/s':>12s} {'updates/s':>10s} {'env steps':>10s} "
          f"{'updates':>8s} {'wall s':>8s}")
    for name, ours, theirs, steps in pairs:
        runs: dict[str, list[tuple[float, float, float]]] = {"tether": [], "sb3": []}
        for rep in range(args.repeats):  # interleaved A B, B A, ... (load drifts on shared hosts)
            for impl, fn in (("tether", ours), ("sb3", theirs)) if rep % 2 == 0 else (("sb3", theirs), ("tether", ours)):
                r = fn(args.env, steps)
                rates = _rates(r)
                runs[impl].append(rates)
                print(f"{name:5s} {impl:7s} {rates[0]:10.1f} {rates[1]:12.1f} {rates[2]:10.1f} {r['env_steps']:10d} "
                      f"{r['updates']:8d} {r['wall_s']:8.1f}  (run {rep + 1})", flush=True)
        med = {impl: np.median(np.array(v), axis=0) for impl, v in runs.items()}
        ratio = med["tether"] / med["sb3"]
        print(f"{name:5s} ratio tether/sb3 (medians): collection env steps/s {ratio[0]:.2f}x, end-to-end env "
              f"steps/s {ratio[1]:.2f}x, gradient updates/s {ratio[2]:.2f}x")
        results[name] = {"tether": med["tether"].tolist(), "sb3": med["sb3"].tolist(), "ratio": ratio.tolist()}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
