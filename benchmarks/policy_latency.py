"""Batch-1 CPU inference latency of every registered policy class: torch eager vs onnxruntime, side by side.

For each policy kind in the checkpoint registry the class's ``benchmark_instance(contract)`` classmethod (if it
has one) builds a representative untrained instance; otherwise the Gaussian default is used. Each instance is
timed through its Policy API (``act`` on a (1, obs) array: what a control loop calls) in torch, and through its
exported ONNX model in onnxruntime (1 intra-op thread). Prints p50/p99 in ms and the torch/onnx ratio.

    .venv/bin/python benchmarks/policy_latency.py [--iters 2000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tether.contract import Field, IOContract
from tether.policies.checkpoint import registered_policy_kinds
from tether.policies.export import OnnxPolicy, export_onnx


def bench_contract() -> IOContract:
    """The arm-reach shaped contract (20 obs, 7 actions) used for every class so numbers are comparable."""
    return IOContract(
        robot="bench", task="latency",
        observations=(Field.make("joint_pos", 7, "rad"), Field.make("joint_vel", 7, "rad/s"),
                      Field.make("ee_pos", 3, "m"), Field.make("target_pos", 3, "m")),
        actions=(Field.make("joint_pos_target", 7, "rad", low=-2.9, high=2.9),),
        control_mode="joint_position", rate_hz=20.0,
    )


def instances(contract: IOContract) -> dict[str, object]:
    out: dict[str, object] = {}
    for kind, cls in registered_policy_kinds().items():
        maker = getattr(cls, "benchmark_instances", None)
        if maker is not None:  # a class may contribute several variants (e.g. DDIM-10 vs one-step flow)
            for name, pol in maker(contract).items():
                out[name] = pol
            continue
        maker = getattr(cls, "benchmark_instance", None)
        if maker is not None:
            out[kind] = maker(contract)
        elif kind == "gaussian_mlp":
            torch.manual_seed(0)
            out["gaussian_mlp (256x256)"] = cls(contract, {})
    return out


def time_calls(fn, obs: np.ndarray, iters: int) -> np.ndarray:
    for _ in range(min(50, iters)):
        fn(obs)
    ts = np.empty(iters)
    for i in range(iters):
        t0 = time.perf_counter()
        fn(obs)
        ts[i] = time.perf_counter() - t0
    return ts * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    contract = bench_contract()
    obs = np.random.default_rng(0).normal(size=(1, contract.obs_size)).astype(np.float32)
    rows = []
    print(f"batch-1 CPU latency, torch {torch.__version__}, 1 thread, {args.iters} calls each (ms)")
    print(f"{'policy':40s} {'torch p50':>10s} {'torch p99':>10s} {'onnx p50':>10s} {'onnx p99':>10s} {'torch/onnx':>10s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, pol in instances(contract).items():
            t_torch = time_calls(pol.act, obs, args.iters)
            path = Path(tmp) / f"{len(rows)}.onnx"
            export_onnx(pol, path, parity_samples=64, verbose=False)
            onnx_pol = OnnxPolicy(path, contract)
            t_onnx = time_calls(onnx_pol.act, obs, args.iters)
            row = {"policy": name, "torch_p50_ms": float(np.percentile(t_torch, 50)),
                   "torch_p99_ms": float(np.percentile(t_torch, 99)), "onnx_p50_ms": float(np.percentile(t_onnx, 50)),
                   "onnx_p99_ms": float(np.percentile(t_onnx, 99))}
            row["ratio_p50"] = row["torch_p50_ms"] / row["onnx_p50_ms"]
            rows.append(row)
            print(f"{name:40s} {row['torch_p50_ms']:10.3f} {row['torch_p99_ms']:10.3f} {row['onnx_p50_ms']:10.3f} "
                  f"{row['onnx_p99_ms']:10.3f} {row['ratio_p50']:10.2f}x")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
