"""One-step flow vs 10-step DDIM diffusion with the same network: batch-1 CPU latency, side by side.

Targets (issue 3): the one-step average-velocity flow policy's p50 ≤ 0.5 ms and ≥ 10× faster than 10-step DDIM.
Both policies use the same denoiser MLP (3×256, Mish), the same 8-step action chunk and 2-frame observation
history, and sample on every ``act`` call (n_action_steps = 1), so the ratio is the sampler's step count and
nothing else. Timed through ``act`` (what a control loop calls) in torch and through the exported ONNX model.

    .venv/bin/python benchmarks/generative_latency.py [--iters 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from policy_latency import bench_contract  # noqa: E402

from tether.policies.diffusion import DiffusionPolicy  # noqa: E402
from tether.policies.export import OnnxPolicy, export_onnx  # noqa: E402
from tether.policies.flow import FlowPolicy  # noqa: E402


def interleaved_p50(fns: dict[str, object], obs: np.ndarray, iters: int, rounds: int = 5) -> dict[str, float]:
    """p50 in ms per callable, timed in interleaved rounds so a shared machine's load hits every policy alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        for _ in range(50):
            fn(obs)  # type: ignore[operator]
    per_round = max(iters // rounds, 1)
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn(obs)  # type: ignore[operator]
                times[name].append(time.perf_counter() - t0)
    return {k: float(np.percentile(v, 50) * 1e3) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=2000)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    c = bench_contract()
    obs = np.random.default_rng(0).normal(size=(1, c.obs_size)).astype(np.float32)
    pols = {**DiffusionPolicy.benchmark_instances(c), **FlowPolicy.benchmark_instances(c)}
    fns: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, pol) in enumerate(pols.items()):
            path = Path(tmp) / f"{i}.onnx"
            export_onnx(pol, path, parity_samples=64, verbose=False)
            fns[f"torch|{name}"] = pol.act
            fns[f"onnx|{name}"] = OnnxPolicy(path, c).act
        p = interleaved_p50(fns, obs, args.iters)
    res = {name: (p[f"torch|{name}"], p[f"onnx|{name}"]) for name in pols}
    print(f"batch-1 CPU p50 latency (ms), torch {torch.__version__}, 1 thread, {args.iters} calls")
    print(f"{'policy':40s} {'torch':>8s} {'onnx':>8s}")
    for name, (t, o) in res.items():
        print(f"{name:40s} {t:8.3f} {o:8.3f}")
    ddim = next(v for k, v in res.items() if k.startswith("diffusion"))
    one = next(v for k, v in res.items() if "one-step" in k)
    print(f"one-step flow vs DDIM-10 speed-up: torch {ddim[0] / one[0]:.1f}x, onnx {ddim[1] / one[1]:.1f}x "
          f"(target >= 10x); one-step p50 torch {one[0]:.3f} ms, onnx {one[1]:.3f} ms (target <= 0.5 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
