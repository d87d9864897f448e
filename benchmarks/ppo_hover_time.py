"""Time to a working hover policy: `tether train tether/QuadrotorHover-v0 --algo ppo` with its defaults, per seed.

Issue 12's target: 100 % eval success within 20 s of wall time on 2 cores, for 5 of 5 seeds. Each seed runs the
CLI as a user would (its own process, default steps, DR, network and evaluation), and reports:
- wall: the whole command, start-up and saving included;
- first 100 %: training time (metrics.csv ``time_s``) of the first periodic evaluation with every episode a
  success, or "never";
- final: an independent `tether eval` of the saved checkpoint (20 episodes, other seeds than training's).

    .venv/bin/python benchmarks/ppo_hover_time.py [--seeds 0 1 2 3 4] [--out /tmp/ppo-hover]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ENV = "tether/QuadrotorHover-v0"
TARGET_S = 20.0


def _tether(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("tether")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, check=True)


def first_full_success(metrics: Path) -> float | None:
    """Training seconds at the first periodic evaluation whose success rate is 1.0."""
    with metrics.open() as f:
        for row in csv.DictReader(f):
            rate = row.get("eval/success_rate") or ""
            if rate and float(rate) >= 1.0:
                return float(row["time_s"])
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--out", type=Path, default=Path("/tmp/ppo-hover-time"))
    args = ap.parse_args()
    print(f"# ppo hover time  {time.strftime('%Y-%m-%d %H:%M')}  {platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}")
    print("| seed | wall (s) | first 100 % eval (training s) | final eval success (20 episodes) | within target |")
    print("|---|---|---|---|---|")
    ok = 0
    for seed in args.seeds:
        out = args.out / f"s{seed}"
        t0 = time.perf_counter()
        _tether("train", ENV, "--algo", "ppo", "--seed", str(seed), "--no-progress", "--out", str(out))
        wall = time.perf_counter() - t0
        first = first_full_success(out / "metrics.csv")
        ev = _tether("eval", str(out / "checkpoint"), ENV, "--episodes", "20", "--seed", str(1000 + seed)).stdout
        m = re.search(r"success(?: rate)?\s*[:=]?\s*([0-9.]+)\s*%", ev)
        final = float(m.group(1)) / 100 if m else float("nan")
        good = final >= 1.0 and wall <= TARGET_S
        ok += good
        print(f"| {seed} | {wall:.1f} | {'never' if first is None else f'{first:.1f}'} | {final:.0%} | "
              f"{'yes' if good else 'no'} |", flush=True)
    print(f"{ok}/{len(args.seeds)} seeds reach 100 % final eval success within {TARGET_S:g} s wall "
          f"(load at the end {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
