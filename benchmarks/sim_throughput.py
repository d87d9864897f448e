"""Simulation throughput of the batched core, each figure measured side by side with its reference in one run.

1. Every env id in its default control mode, batched (32 envs, the in-process executor PPO/SAC use), against
   the physics ceiling: ``mujoco.rollout`` on the env's own model (the quadrotor's includes its onboard rate
   controller, as the env does), one control period per call, 32 states, 2 threads. Target >= 0.8x.
2. The same batch on 1 MuJoCo thread vs 2 (how much the second core buys).
3. DR resample cost per reset (wide preset against none) and MuJoCo vs PyBullet, single env.

Rounds are interleaved (A, B, A, B, ...) so machine drift hits both sides; medians are reported.

Usage: python benchmarks/sim_throughput.py [--rounds 5] [--steps 200] [--ids tether/QuadrotorHover-v0 ...]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import time

import mujoco
import numpy as np
from mujoco import rollout

import tether.sim
from tether.sim.registry import all_env_ids, env_id
from tether.sim.robots import ROBOTS
from tether.sim.tasks import task_names
from tether.sim.vector import make_vec

N = 32


def _timed(fn, reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def batched_vs_ceiling(eid: str, rounds: int, steps: int) -> tuple[float, float, float]:
    """(env steps/s batched, ceiling steps/s, ratio) as medians over interleaved rounds."""
    venv = make_vec(eid, N, dr="default", threads=2)
    venv.reset_batch(0)
    core = venv.executor.core
    actions = np.tile(venv.neutral_action, (N, 1))
    # the ceiling: rollout over the env's own (randomised) per-world models, from the batch's current states
    sim = core.sim
    models = [copy.copy(m) for m in sim.models]
    datas = [mujoco.MjData(models[0]) for _ in range(2)]
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state = np.zeros((N, mujoco.mj_stateSize(models[0], spec)))
    scratch = mujoco.MjData(models[0])
    for i in range(N):
        sim.batch.get_data(i, scratch)
        mujoco.mj_getState(models[0], scratch, state[i], spec)
    sub = core.robot_spec.substeps
    ctrl = np.tile(sim.ctrl[:, None, :], (1, sub, 1))
    out = np.zeros((N, sub, state.shape[1]))
    pool = rollout.Rollout(nthread=2)
    step_env = lambda: venv.step_batch(actions)  # noqa: E731

    def step_ceiling() -> None:
        """One control period of pure physics; the state advances, as the env's does (a legged robot settling
        into contact costs more per step than the reset pose it starts from)."""
        pool.rollout(models, datas, state, ctrl, nstep=sub, skip_checks=True, state=out)
        state[:] = out[:, -1]

    step_env(), step_ceiling()
    env_t, ceil_t = [], []
    for _ in range(rounds):
        env_t.append(_timed(step_env, steps))
        ceil_t.append(_timed(step_ceiling, steps))
    pool.close()
    venv.close()
    env_rate, ceil_rate = N / np.median(env_t), N / np.median(ceil_t)
    return env_rate, ceil_rate, float(np.median(np.array(ceil_t) / np.array(env_t)))


def threads_1_vs_2(eid: str, rounds: int, steps: int) -> tuple[float, float]:
    rates = {1: [], 2: []}
    envs = {t: make_vec(eid, N, dr="default", threads=t) for t in (1, 2)}
    for v in envs.values():
        v.reset_batch(0)
    a = np.tile(envs[1].neutral_action, (N, 1))
    for _ in range(rounds):
        for t, v in envs.items():
            rates[t].append(N / _timed(lambda: v.step_batch(a), steps))
    for v in envs.values():
        v.close()
    return float(np.median(rates[1])), float(np.median(rates[2]))


def single_env_rate(env, steps: int) -> float:
    env.reset(seed=0)
    neutral = env.unwrapped.core._neutral.astype(np.float32)
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(neutral)
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200, help="batched steps per round")
    parser.add_argument("--ids", nargs="*", default=sorted(all_env_ids()))
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"# sim_throughput  {time.strftime('%Y-%m-%d %H:%M')}  {platform.machine()}, {os.cpu_count()} cores, "
          f"load {load:.2f}, python {platform.python_version()}, mujoco {mujoco.__version__}")
    print(f"\n## 1. Batched core ({N} envs, default control mode, DR default, 2 threads) vs mujoco.rollout ceiling")
    print("| env id | batched env steps/s | ceiling steps/s | ratio (target >= 0.8) |")
    print("|---|---|---|---|")
    for eid in args.ids:
        env_rate, ceil_rate, ratio = batched_vs_ceiling(eid, args.rounds, args.steps)
        print(f"| {eid} | {env_rate:,.0f} | {ceil_rate:,.0f} | {ratio:.2f}x |", flush=True)

    print(f"\n## 2. Batched core, 1 MuJoCo thread vs 2 ({N} envs)")
    print("| robot | 1 thread steps/s | 2 threads steps/s | ratio |")
    print("|---|---|---|---|")
    for robot in ROBOTS:
        eid = env_id(robot, task_names(robot)[0])
        one, two = threads_1_vs_2(eid, args.rounds, args.steps)
        print(f"| {robot} | {one:,.0f} | {two:,.0f} | {two / one:.2f}x |", flush=True)

    print("\n## 3. DR resample cost per reset, and MuJoCo vs PyBullet (single env)")
    print("| robot | reset, DR none (ms) | reset, DR wide (ms) | DR cost (ms) | MuJoCo steps/s | PyBullet steps/s | "
          "MuJoCo/PyBullet |")
    print("|---|---|---|---|---|---|---|")
    for robot in ROBOTS:
        eid = env_id(robot, task_names(robot)[0])
        reset_ms = []
        for dr in ("none", "wide"):
            env = tether.sim.make(eid, dr=dr)
            env.reset(seed=0)
            reset_ms.append(_timed(lambda: env.reset(seed=1), 50) * 1e3)
            env.close()
        speeds = []
        for backend in ("mujoco", "pybullet"):
            env = tether.sim.make(eid, backend=backend)
            speeds.append(single_env_rate(env, 600))
            env.close()
        print(f"| {robot} | {reset_ms[0]:.2f} | {reset_ms[1]:.2f} | {reset_ms[1] - reset_ms[0]:.2f} | "
              f"{speeds[0]:,.0f} | {speeds[1]:,.0f} | {speeds[0] / speeds[1]:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
