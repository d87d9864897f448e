"""Start-up time of ``tether --help`` and ``tether CMD --help`` against a bare ``python -c pass``.

Why: the CLI used to import every subcommand's module (torch and the simulators among them) to build its parser,
so asking for help took seconds. Target: every help under 0.5 s. Each round runs the reference and every command
once, interleaved (ref, cmd1, ref, cmd2, ...), so load on a shared machine hits both sides alike; the medians
and the median ratio to the reference are printed.
Run: .venv/bin/python benchmarks/cli_startup.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tether.cli import COMMANDS  # noqa: E402  (the table only: imports no command module)

TARGET_S = 0.5


def _time(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    ref = [sys.executable, "-c", "pass"]
    cases = {"tether --help": []} | {f"tether {c} --help": [c] for c in COMMANDS}
    times: dict[str, list[float]] = {k: [] for k in cases}
    ratios: dict[str, list[float]] = {k: [] for k in cases}
    ref_times: list[float] = []
    _time(ref)  # warm the page cache once
    for _ in range(args.rounds):
        for name, cmd in cases.items():
            r = _time(ref)
            t = _time([sys.executable, "-m", "tether.cli", *cmd, "--help"])
            ref_times.append(r)
            times[name].append(t)
            ratios[name].append(t / r)
    load = os.getloadavg()[0]
    print(f"python -c pass: median {statistics.median(ref_times) * 1e3:.0f} ms; {args.rounds} rounds, load avg "
          f"{load:.2f}")
    print(f"{'command':28s} {'median ms':>10s} {'max ms':>8s} {'ratio':>6s}")
    worst = 0.0
    for name in cases:
        med = statistics.median(times[name])
        worst = max(worst, med)
        print(f"{name:28s} {med * 1e3:10.0f} {max(times[name]) * 1e3:8.0f} {statistics.median(ratios[name]):6.1f}")
    verdict = "met" if worst < TARGET_S else "NOT met"
    print(f"slowest median {worst * 1e3:.0f} ms (target < {TARGET_S * 1e3:.0f} ms): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
