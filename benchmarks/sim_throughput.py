"""Simulation throughput, each figure measured side by side with its reference in one run.

1. env.step cost against raw mj_step for the same number of substeps, per robot (target overhead <= 1.15x).
2. Batched throughput with 2 worker processes against 1 (target >= 1.7x on 2 cores).
3. DR resample cost per reset (wide preset against none), and MuJoCo vs PyBullet env steps/s per robot.

Usage: python benchmarks/sim_throughput.py [--steps N]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import mujoco
import numpy as np

import tether.sim
from tether.sim.registry import env_id
from tether.sim.robots import ROBOTS
from tether.sim.tasks import task_names
from tether.sim.vector import make_vector_env


def _env_steps_per_s(env, steps: int) -> float:
    env.reset(seed=0)
    neutral = env.unwrapped.contract.to_normalised(env.unwrapped.task.neutral_action()).astype(np.float32)
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(neutral)
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t0)


def _raw_mj_steps_per_s(env, steps: int) -> float:
    sim = env.unwrapped.sim
    m, d = sim.model, sim.data
    n = env.unwrapped.robot_spec.substeps
    t0 = time.perf_counter()
    for _ in range(steps):
        mujoco.mj_step(m, d, nstep=n)
    return steps / (time.perf_counter() - t0)


def direct_mode(robot: str) -> str:
    """The control mode that maps straight onto the actuators (no Python inner loop), for a fair overhead figure."""
    return "motor_thrust" if robot == "quadrotor" else "joint_position"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()
    print(f"# sim_throughput  {time.strftime('%Y-%m-%d')}  {platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, mujoco {mujoco.__version__}")
    print("\n## 1. env.step vs raw mj_step (same substeps, direct actuator mode)")
    print("| robot | env steps/s | raw mj_step steps/s | overhead |")
    print("|---|---|---|---|")
    for robot in ROBOTS:
        task = task_names(robot)[0]
        env = tether.sim.make(env_id(robot, task), control_mode=direct_mode(robot))
        env_rate = _env_steps_per_s(env, args.steps)
        raw_rate = _raw_mj_steps_per_s(env, args.steps)
        print(f"| {robot} | {env_rate:,.0f} | {raw_rate:,.0f} | {raw_rate / env_rate:.2f}x |")
        env.close()

    print("\n## 2. batched stepping, 8 envs: 2 worker processes vs 1")
    print("| robot | 1 worker steps/s | 2 workers steps/s | ratio |")
    print("|---|---|---|---|")
    for robot in ROBOTS:
        eid = env_id(robot, task_names(robot)[0])
        rates = []
        for workers in (1, 2):
            venv = make_vector_env(eid, 8, num_workers=workers, dr="default")
            venv.reset(seed=0)
            actions = np.zeros((8, venv.single_action_space.shape[0]), dtype=np.float32)
            for _ in range(20):
                venv.step(actions)
            n = max(args.steps // 8, 100)
            t0 = time.perf_counter()
            for _ in range(n):
                venv.step(actions)
            rates.append(8 * n / (time.perf_counter() - t0))
            venv.close()
        print(f"| {robot} | {rates[0]:,.0f} | {rates[1]:,.0f} | {rates[1] / rates[0]:.2f}x |")

    print("\n## 3. DR resample cost per reset, and MuJoCo vs PyBullet")
    print("| robot | reset, DR none (ms) | reset, DR wide (ms) | DR cost (ms) | MuJoCo steps/s | PyBullet steps/s | MuJoCo/PyBullet |")
    print("|---|---|---|---|---|---|---|")
    for robot in ROBOTS:
        eid = env_id(robot, task_names(robot)[0])
        reset_ms = []
        for dr in ("none", "wide"):
            env = tether.sim.make(eid, dr=dr)
            env.reset(seed=0)
            t0 = time.perf_counter()
            for i in range(50):
                env.reset(seed=i)
            reset_ms.append((time.perf_counter() - t0) / 50 * 1e3)
            env.close()
        speeds = []
        for backend in ("mujoco", "pybullet"):
            env = tether.sim.make(eid, backend=backend)
            speeds.append(_env_steps_per_s(env, max(args.steps // 3, 300)))
            env.close()
        print(f"| {robot} | {reset_ms[0]:.2f} | {reset_ms[1]:.2f} | {reset_ms[1] - reset_ms[0]:.2f} | "
              f"{speeds[0]:,.0f} | {speeds[1]:,.0f} | {speeds[0] / speeds[1]:.1f}x |")


if __name__ == "__main__":
    main()
