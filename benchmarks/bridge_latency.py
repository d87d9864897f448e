"""State -> command latency of a 500 Hz deployment loop over DDS against a served robot, vs the same loop in-process.

Setup (identical on both sides except the wire):
  * robot: ``tether robot serve --robot legged --state-rate 500`` (Unitree LowState/LowCmd with CRC, MuJoCo A1,
    one 2 ms physics step per state message);
  * controller: UnitreeLowLevel adapter + CommandGuard + ControlLoop at 500 Hz running a small GaussianPolicy
    (2 x 64 MLP) trained on nothing (only its cost matters);
  * dds: the robot in its own process, Cyclone DDS on loopback (DdsTransport both ends);
  * inproc (reference): the same RobotServer in this process over LoopbackTransport, stepped in lockstep
    just before each state read (CDR encode/decode still happen; no network, no second process, no thread:
    a server thread in the same process would fight the loop for the GIL and measure that instead).
Latency = time the command is handed to the wire - the DDS source timestamp of the LowState it was computed
from (so it includes the state's transport, the wait for the next tick, the policy, the guard and the
command build). Also the ControlLoop's own latency (state arrival -> command sent) and deadline misses.
Targets: p99 <= 2 ms, misses <= 0.1 %.

Usage: .venv/bin/python benchmarks/bridge_latency.py [--seconds 60] [--rate 500] [--write-results]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

DOMAIN = 58  # from tether.ros.commands' 30-59 test range, at its top so tests never collide
REPO = Path(__file__).resolve().parents[1]


def _policy():
    import gymnasium as gym
    import torch

    import tether.sim  # noqa: F401
    from tether.policies.gaussian import GaussianPolicy, default_gaussian_config

    torch.manual_seed(0)
    env = gym.make("tether/LeggedStand-v0", backend="mujoco")
    c = env.unwrapped.contract
    env.close()
    cfg = default_gaussian_config(c.obs_size, c.action_size,
                                  net={"hidden": [64, 64], "act": "relu", "layer_norm": False})
    return GaussianPolicy(c, cfg)


class _Timed:
    """Wraps the Unitree adapter: remembers which LowState (by tick) each command was computed from."""

    def __init__(self, adapter, src_ns: dict[int, int], before_read=None) -> None:
        self.a = adapter
        self.before_read = before_read
        self.contract = adapter.contract
        self.src_ns = src_ns
        self.last_tick = [-1]
        self.used_tick = -1
        self.lat_ns: list[int] = []

    def connect(self):
        if self.before_read is None:
            self.a.connect()
            return
        done = []  # lockstep robot: keep it publishing while connect() waits for a first state

        def pump():
            while not done:
                self.before_read()
                time.sleep(0.01)

        th = threading.Thread(target=pump, daemon=True)
        th.start()
        try:
            self.a.connect()
        finally:
            done.append(True)
            th.join()

    def disconnect(self):
        self.a.disconnect()

    def read_state(self):
        if self.before_read is not None:
            self.before_read()
        self.used_tick = self.last_tick[0]  # the adapter keeps decoded fields; the newest tick is the one in use
        return self.a.read_state()

    def measured_command(self, obs):
        return self.a.measured_command(obs)

    def send(self, command, *, damp=False):
        self.a.send(command, damp=damp)
        t = time.time_ns()
        src = self.src_ns.get(self.used_tick)
        if src is not None:
            self.lat_ns.append(t - src)


def run_loop(transport, seconds: float, rate: float, before_read=None) -> dict:
    from tether.ros.protocols.unitree import UnitreeLowLevel
    from tether.hardware.guard import CommandGuard, GuardConfig
    from tether.hardware.loop import ControlLoop

    policy = _policy()
    src_ns: dict[int, int] = {}

    last_tick = [-1]

    def on_state(msg, info) -> None:
        src_ns[int(msg.tick)] = info.source_ns
        last_tick[0] = int(msg.tick)

    transport.subscribe("/lowstate", "unitree_go/msg/LowState", on_state, "sensor_data", info=True)
    adapter = UnitreeLowLevel(transport, policy.contract, connect_timeout_s=20.0)
    robot = _Timed(adapter, src_ns, before_read)
    robot.last_tick = last_tick
    guard = CommandGuard(policy.contract, config=GuardConfig(stale_periods=10), dt=1.0 / rate)
    loop = ControlLoop(policy, robot, rate, guard, check_rate=False, manage_connection=False)
    robot.connect()
    time.sleep(0.5)
    try:
        stats = loop.run(duration_s=seconds)
    finally:
        robot.disconnect()
    lat = np.asarray(robot.lat_ns, dtype=float) / 1e6
    return {
        "ticks": stats.ticks,
        "miss_rate": stats.miss_rate,
        "e2e_p50_ms": float(np.percentile(lat, 50)),
        "e2e_p99_ms": float(np.percentile(lat, 99)),
        "loop_p50_ms": float(np.percentile(stats.latency_s, 50) * 1e3),
        "loop_p99_ms": float(np.percentile(stats.latency_s, 99) * 1e3),
        "stale": stats.guard.get("stale", 0),
    }


def bench_dds(seconds: float, rate: float) -> dict:
    from tether.ros.cyclonedds_transport import DdsTransport

    srv = subprocess.Popen([sys.executable, "-m", "tether.cli", "robot", "serve", "--robot", "legged", "--loopback",
                            "--domain-id", str(DOMAIN), "--state-rate", str(rate)], cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert srv.stdout is not None
        for line in srv.stdout:
            if "ready" in line:
                break
        t = DdsTransport(domain_id=DOMAIN, config="loopback")
        try:
            return run_loop(t, seconds, rate)
        finally:
            t.close()
    finally:
        srv.terminate()
        srv.wait(15)


def bench_inproc(seconds: float, rate: float) -> dict:
    from tether.ros.loopback import LoopbackTransport
    from tether.ros.robot_server import RobotServer

    t = LoopbackTransport(domain_id=DOMAIN + 1000)
    server = RobotServer("legged", t, state_rate_hz=rate)
    server.open()
    server.step_once()  # a first state for connect()
    try:
        return run_loop(t, seconds, rate, before_read=server.step_once)
    finally:
        server.close()
        t.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--write-results", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    load0 = os.getloadavg()[0]
    res = {"dds": bench_dds(args.seconds, args.rate), "inproc": bench_inproc(args.seconds, args.rate)}
    load1 = os.getloadavg()[0]
    head = f"{'':8s} {'ticks':>7s} {'e2e p50':>9s} {'e2e p99':>9s} {'loop p50':>9s} {'loop p99':>9s} {'misses':>8s}"
    print(head)
    for k, r in res.items():
        print(f"{k:8s} {r['ticks']:7d} {r['e2e_p50_ms']:8.3f}ms {r['e2e_p99_ms']:8.3f}ms {r['loop_p50_ms']:8.3f}ms "
              f"{r['loop_p99_ms']:8.3f}ms {100 * r['miss_rate']:7.2f}%")
    ratio50 = res["dds"]["e2e_p50_ms"] / res["inproc"]["e2e_p50_ms"]
    ratio99 = res["dds"]["e2e_p99_ms"] / res["inproc"]["e2e_p99_ms"]
    print(f"ratio dds/inproc: e2e p50 {ratio50:.2f}x, p99 {ratio99:.2f}x; load average {load0:.1f} -> {load1:.1f} "
          f"on {os.cpu_count()} cores")
    ok = res["dds"]["e2e_p99_ms"] <= 2.0 and res["dds"]["miss_rate"] <= 0.001
    print(f"targets (p99 <= 2 ms, misses <= 0.1 %): {'met' if ok else 'NOT met'}")
    if args.write_results:
        d, i = res["dds"], res["inproc"]
        text = (
            f"\n## Deploy bridge: 500 Hz state->command latency over DDS vs in-process (tether.ros robot serve)\n\n"
            f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, load average "
            f"{load0:.1f} -> {load1:.1f} during the run; `benchmarks/bridge_latency.py --seconds {args.seconds:g} "
            f"--rate {args.rate:g}`. Legged served robot (Unitree LowState/LowCmd, 500 Hz state), Unitree adapter + "
            f"guard + ControlLoop + 2x64 MLP.\n\n"
            f"| wire | ticks | e2e p50 | e2e p99 | loop p50 | loop p99 | misses |\n|---|---|---|---|---|---|---|\n"
            f"| DDS loopback, 2 processes | {d['ticks']} | {d['e2e_p50_ms']:.3f} ms | {d['e2e_p99_ms']:.3f} ms | "
            f"{d['loop_p50_ms']:.3f} ms | {d['loop_p99_ms']:.3f} ms | {100 * d['miss_rate']:.2f} % |\n"
            f"| in-process loopback (reference) | {i['ticks']} | {i['e2e_p50_ms']:.3f} ms | {i['e2e_p99_ms']:.3f} ms | "
            f"{i['loop_p50_ms']:.3f} ms | {i['loop_p99_ms']:.3f} ms | {100 * i['miss_rate']:.2f} % |\n\n"
            f"Ratio DDS / in-process: e2e p50 {ratio50:.2f}x, p99 {ratio99:.2f}x. Targets p99 <= 2 ms and misses <= "
            f"0.1 %: {'met' if ok else 'not met'} on this run.\n"
        )
        with open(REPO / "benchmarks" / "RESULTS.md", "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
