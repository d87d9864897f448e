"""ControlLoop timing in-process: sleep + short spin (Tether's scheduler) vs plain sleep, side by side.

Why: the loop waits for each absolute deadline with time.sleep up to ``spin_s`` before it and a busy spin for
the rest, because a bare sleep overshoots by the kernel's timer slack plus scheduling delay. This measures
tick-start jitter and deadline misses for both at the same rate against the same in-process robot (no
transport), so the number is the scheduler's own floor; DDS adds its latency on top
(benchmarks/bridge_latency.py). Prints the ratio plain / spin for jitter p99.

Usage: .venv/bin/python benchmarks/control_loop_timing.py [--rate 500] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from tether.contract import Field, IOContract
from tether.hardware.inprocess import KinematicJointRobot
from tether.hardware.guard import CommandGuard, GuardConfig
from tether.hardware.loop import ControlLoop


class _Hold:
    def __init__(self, contract: IOContract) -> None:
        self.contract = contract

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.zeros((1, self.contract.action_size))


def _merge(parts: list[dict]) -> dict:
    """Pool rounds: sums for counts, tick-weighted means for the percentiles (close enough for a table)."""
    ticks = sum(p["ticks"] for p in parts)
    out = {"ticks": ticks, "miss_rate": sum(p["misses"] for p in parts) / max(ticks, 1)}
    for k in ("jitter_p50_ms", "jitter_p99_ms", "latency_p99_ms"):
        out[k] = sum(p[k] * p["ticks"] for p in parts) / max(ticks, 1)
    out["jitter_max_ms"] = max(p["jitter_max_ms"] for p in parts)
    return out


def _run(rate: float, seconds: float, spin_s: float) -> dict:
    j = tuple(f"j{i}" for i in range(12))
    c = IOContract("bench", "hold", (Field.make("joint_pos", 12, "rad", components=j),
                                     Field.make("joint_vel", 12, "rad/s", components=j)),
                   (Field.make("joint_pos_target", 12, "rad", low=-1, high=1, components=j),), "joint_position", rate)
    robot = KinematicJointRobot(c, keep_sent=False)
    loop = ControlLoop(_Hold(c), robot, guard=CommandGuard(c, config=GuardConfig(max_rate=2.0)), spin_s=spin_s)
    return loop.run(duration_s=seconds).as_dict()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--seconds", type=float, default=10.0, help="total per scheduler")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    # Interleave short rounds so a change in machine load hits both schedulers alike.
    rounds = {"spin": [], "plain": []}
    for _ in range(args.rounds):
        rounds["spin"].append(_run(args.rate, args.seconds / args.rounds, spin_s=3e-4))
        rounds["plain"].append(_run(args.rate, args.seconds / args.rounds, spin_s=0.0))
    spin, plain = (_merge(rounds[k]) for k in ("spin", "plain"))
    load = os.getloadavg()[0]
    print(f"# control loop timing, {args.rate:g} Hz, {args.seconds:g} s per scheduler in {args.rounds} interleaved "
          f"rounds, {platform.node()} ({os.cpu_count()} cores, load avg {load:.1f}) {time.strftime('%Y-%m-%d')}")
    print(f"{'scheduler':<14}{'ticks':>7}{'miss %':>8}{'jit p50 ms':>11}{'jit p99 ms':>11}{'jit max ms':>11}"
          f"{'lat p99 ms':>11}")
    for name, d in (("sleep+spin", spin), ("sleep only", plain)):
        print(f"{name:<14}{d['ticks']:>7}{100 * d['miss_rate']:>8.2f}{d['jitter_p50_ms']:>11.3f}"
              f"{d['jitter_p99_ms']:>11.3f}{d['jitter_max_ms']:>11.3f}{d['latency_p99_ms']:>11.3f}")
    print(f"jitter p99 ratio plain/spin: {plain['jitter_p99_ms'] / max(spin['jitter_p99_ms'], 1e-9):.1f}x")


if __name__ == "__main__":
    main()
