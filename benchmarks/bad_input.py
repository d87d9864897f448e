"""The bad-input table (tests/_bad_cli_cases.py) run against the real ``tether`` command, one subprocess per case.

Why a script beside the test: the test runs the table in-process and asserts every case ends in one line; this
script measures what a checkout does with it, including a checkout from before the validation (``--tree DIR``),
so the issue's figures (tracebacks, silently accepted, hangs) are counted the same way before and after.

Each case is classified as
  one-line   exit 2, exactly one stderr line, no traceback, no refused output created
  traceback  a Python traceback on stderr
  accepted   exit 0, or still running (doing work) at the time limit, or output created for a refused option
  hang       still running at the time limit although the case cannot do any work (topic/duration/timeouts)
  unclear    any other ending (non-zero exit with several lines, or a line that does not name the option)

Run: .venv/bin/python benchmarks/bad_input.py [--tree DIR] [--timeout 20] [--jobs 2]
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from _bad_cli_cases import Case, build  # noqa: E402

HANG_PRONE = ("topic ", "bag record")


def classify(case: Case, rc: int | None, err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if "Traceback (most recent call last)" in err:
        return "traceback"
    if rc is None:
        return "hang" if case.name.startswith(HANG_PRONE) else "accepted"
    if any(p.exists() for p in case.absent):
        return "accepted"
    if rc == 0:
        return "accepted"
    if rc == 2 and len(lines) == 1 and case.names in lines[0]:
        return "one-line"
    return "unclear"


def run_case(case: Case, tree: Path, timeout: float, cwd: Path) -> tuple[Case, str, float, str]:
    env = {**os.environ, "PYTHONPATH": str(tree), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "tether.cli", *case.argv], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=timeout)
        rc: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        _, err = proc.communicate()
        rc = None
    dt = time.perf_counter() - t0
    kind = classify(case, rc, err)
    for p in case.absent:  # leave the next case a clean slate
        if p.exists() and str(p).startswith(tempfile.gettempdir()):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
    last = (err.strip().splitlines() or [""])[-1][:160]
    return case, kind, dt, last


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", type=Path, default=REPO, help="checkout whose tether to run (default: this one)")
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default=None, help="run the cases whose name contains this")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tether-bad-input-") as tmp:
        cases = build(Path(tmp) / "fx")
        if args.only:
            cases = [c for c in cases if args.only in c.name]
        work = Path(tmp) / "cwd"
        work.mkdir()
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(lambda c: run_case(c, args.tree.resolve(), args.timeout, work), cases))
        wall = time.perf_counter() - t0
    counts = collections.Counter(kind for _, kind, _, _ in results)
    for case, kind, dt, last in results:
        print(f"{kind:9s} {dt:5.1f}s  {case.name:32s} {last}")
    print(f"\ntree {args.tree}: {len(results)} cases in {wall:.0f} s (load average {os.getloadavg()[0]:.1f}): "
          + ", ".join(f"{k} {counts.get(k, 0)}" for k in ("one-line", "traceback", "accepted", "hang", "unclear")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
