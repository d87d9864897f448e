"""Round-trip latency of Tether's ROS 2 transports, side by side with native cyclonedds-python.

Measures a 500 Hz ping-pong of a 12-joint sensor_msgs/JointState between this process and an echo process
over Cyclone DDS on loopback (QoS preset "default": reliable, keep-last 10):
  * tether: DdsTransport on both ends (rosbags CDR, raw ddspy write/take, dispatch thread, decode on receive);
  * native (reference): cyclonedds-python IdlStruct DataWriter/DataReader with its own (de)serialiser and a
    WaitSet, the code a user would otherwise write;
  * loopback: Tether's in-process LoopbackTransport (codec cost only, no network).
Also the per-message codec cost (rosbags vs the cyclonedds IdlStruct serialiser). Prints p50/p99 RTT and
ratios; ``--write-results`` appends a section to benchmarks/RESULTS.md.

Usage: .venv/bin/python benchmarks/ros_transport_latency.py [--seconds 5] [--rate 500] [--write-results]
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

DOMAIN = 29  # from tether.ros's 10-29 test range, so a benchmark never crosses a test run
JOINTS = [f"joint_{i}" for i in range(12)]

ECHO = """
import sys, time
mode = sys.argv[1]
if mode == "tether":
    from tether.ros.cyclonedds_transport import DdsTransport
    t = DdsTransport(domain_id=%d, config="loopback")
    pub = t.publisher("/pong", "sensor_msgs/msg/JointState", "default")
    t.subscribe("/ping", "sensor_msgs/msg/JointState", pub.publish_raw, "default", raw=True)
else:
    from cyclonedds.domain import Domain, DomainParticipant
    from cyclonedds.topic import Topic
    from cyclonedds.pub import DataWriter
    from cyclonedds.sub import DataReader
    from cyclonedds.core import ReadCondition, SampleState, ViewState, InstanceState, WaitSet
    from cyclonedds.util import duration
    from tether.ros import types as T
    from tether.ros.cyclonedds_transport import idl_struct, loopback_config
    from tether.ros.qos import PRESETS
    dom = Domain(%d, loopback_config())
    dp = DomainParticipant(%d)
    JS = idl_struct(T.typestore("humble"), "sensor_msgs/msg/JointState")
    q = PRESETS["default"].to_cyclone()
    w = DataWriter(dp, Topic(dp, "rt/pong", JS), qos=q)
    r = DataReader(dp, Topic(dp, "rt/ping", JS), qos=q)
    ws = WaitSet(dp); ws.attach(ReadCondition(r, SampleState.Any | ViewState.Any | InstanceState.Any))
    def loop():
        while True:
            ws.wait(duration(milliseconds=100))
            for s in r.take(16):
                w.write(s)
    import threading; threading.Thread(target=loop, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
""" % (DOMAIN, DOMAIN, DOMAIN)


def _stats(rtt_ns: list[int], sent: int) -> dict[str, float]:
    a = np.asarray(rtt_ns, dtype=np.float64) / 1e3
    return {
        "n": len(a),
        "lost": sent - len(a),
        "p50_us": float(np.percentile(a, 50)) if len(a) else float("nan"),
        "p99_us": float(np.percentile(a, 99)) if len(a) else float("nan"),
    }


def _pace(rate: float, seconds: float, send) -> int:
    period = 1.0 / rate
    n = int(rate * seconds)
    t0 = time.perf_counter()
    for i in range(n):
        target = t0 + i * period
        while (now := time.perf_counter()) < target:
            time.sleep(min(0.0005, target - now))
        send(i)
    time.sleep(0.2)
    return n


def run_tether(rate: float, seconds: float) -> dict[str, float]:
    from tether.ros import types as T
    from tether.ros.cyclonedds_transport import DdsTransport

    echo = subprocess.Popen([sys.executable, "-c", ECHO, "tether"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert echo.stdout.readline().strip() == b"ready"
    t = DdsTransport(domain_id=DOMAIN, config="loopback")
    store = t.store
    sent: dict[int, int] = {}
    rtt: list[int] = []

    warm = threading.Event()

    def on_pong(msg) -> None:
        i = int(msg.position[0])
        if i < 0:
            warm.set()
        if i in sent:
            rtt.append(time.perf_counter_ns() - sent[i])

    sub = t.subscribe("/pong", "sensor_msgs/msg/JointState", on_pong, "default")
    pub = t.publisher("/ping", "sensor_msgs/msg/JointState", "default")
    assert pub.wait_matched(1, 30) and sub.wait_matched(1, 30)
    while not warm.wait(0.02):  # discovery is asymmetric: wait until a reply actually comes back
        pub.publish(T.make(store, "sensor_msgs/msg/JointState", name=JOINTS, position=np.full(12, -1.0)))

    def send(i: int) -> None:
        msg = T.make(store, "sensor_msgs/msg/JointState", name=JOINTS, position=np.full(12, float(i)))
        sent[i] = time.perf_counter_ns()
        pub.publish(msg)

    n = _pace(rate, seconds, send)
    echo.stdin.close()
    echo.wait(10)
    t.close()
    return _stats(rtt, n)


def run_native(rate: float, seconds: float) -> dict[str, float]:
    from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState, WaitSet
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.pub import DataWriter
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic
    from cyclonedds.util import duration

    from tether.ros import types as T
    from tether.ros.cyclonedds_transport import _ensure_domain, idl_struct, loopback_config
    from tether.ros.qos import PRESETS

    echo = subprocess.Popen([sys.executable, "-c", ECHO, "native"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert echo.stdout.readline().strip() == b"ready"
    _ensure_domain(DOMAIN, loopback_config())
    dp = DomainParticipant(DOMAIN)
    store = T.typestore("humble")
    JS = idl_struct(store, "sensor_msgs/msg/JointState")
    Header = idl_struct(store, "std_msgs/msg/Header")
    Time = idl_struct(store, "builtin_interfaces/msg/Time")
    q = PRESETS["default"].to_cyclone()
    w = DataWriter(dp, Topic(dp, "rt/ping", JS), qos=q)
    r = DataReader(dp, Topic(dp, "rt/pong", JS), qos=q)
    ws = WaitSet(dp)
    ws.attach(ReadCondition(r, SampleState.Any | ViewState.Any | InstanceState.Any))
    sent: dict[int, int] = {}
    rtt: list[int] = []
    stop = threading.Event()
    warm = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            ws.wait(duration(milliseconds=100))
            for s in r.take(16):
                i = int(s.position[0])
                if i < 0:
                    warm.set()
                elif i in sent:
                    rtt.append(time.perf_counter_ns() - sent[i])

    th = threading.Thread(target=loop, daemon=True)
    th.start()
    deadline = time.monotonic() + 30
    while not (w.get_matched_subscriptions() and r.get_matched_publications()) and time.monotonic() < deadline:
        time.sleep(0.01)

    def send(i: int) -> None:
        ns = time.time_ns()
        msg = JS(header=Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id=""), name=JOINTS,
                 position=[float(i)] * 12, velocity=[], effort=[])
        sent[i] = time.perf_counter_ns()
        w.write(msg)

    while not warm.wait(0.02):
        send(-1)
    sent.clear()
    n = _pace(rate, seconds, send)
    stop.set()
    th.join(1)
    echo.stdin.close()
    echo.wait(10)
    return _stats(rtt, n)


def run_loopback(rate: float, seconds: float) -> dict[str, float]:
    from tether.ros import types as T
    from tether.ros.loopback import LoopbackTransport

    a, b = LoopbackTransport(domain_id=4242), LoopbackTransport(domain_id=4242)
    pong = b.publisher("/pong", "sensor_msgs/msg/JointState", "default")
    b.subscribe("/ping", "sensor_msgs/msg/JointState", pong.publish, "default")
    sent: dict[int, int] = {}
    rtt: list[int] = []
    a.subscribe("/pong", "sensor_msgs/msg/JointState",
                lambda m: rtt.append(time.perf_counter_ns() - sent[int(m.position[0])]), "default")
    ping = a.publisher("/ping", "sensor_msgs/msg/JointState", "default")

    def send(i: int) -> None:
        msg = T.make(a.store, "sensor_msgs/msg/JointState", name=JOINTS, position=np.full(12, float(i)))
        sent[i] = time.perf_counter_ns()
        ping.publish(msg)

    n = _pace(rate, seconds, send)
    a.close()
    b.close()
    return _stats(rtt, n)


def codec(reps: int = 5000) -> dict[str, float]:
    from tether.ros import types as T
    from tether.ros.cyclonedds_transport import idl_struct

    store = T.typestore("humble")
    m = T.make(store, "sensor_msgs/msg/JointState", name=JOINTS, position=np.arange(12.0))
    JS = idl_struct(store, "sensor_msgs/msg/JointState")
    Header = idl_struct(store, "std_msgs/msg/Header")
    Time = idl_struct(store, "builtin_interfaces/msg/Time")
    im = JS(header=Header(stamp=Time(sec=1, nanosec=2), frame_id=""), name=JOINTS, position=list(np.arange(12.0)),
            velocity=[], effort=[])
    raw = T.serialize(store, m)
    out = {}
    for name, fn in [
        ("rosbags_ser_us", lambda: store.serialize_cdr(m, "sensor_msgs/msg/JointState")),
        ("rosbags_de_us", lambda: store.deserialize_cdr(raw, "sensor_msgs/msg/JointState")),
        ("idl_ser_us", lambda: im.serialize()),
        ("idl_de_us", lambda: JS.deserialize(raw)),
    ]:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        out[name] = (time.perf_counter() - t0) / reps * 1e6
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--write-results", action="store_true")
    args = ap.parse_args()

    res = {
        "tether DdsTransport (2 processes)": run_tether(args.rate, args.seconds),
        "native cyclonedds-python (2 processes, reference)": run_native(args.rate, args.seconds),
        "tether LoopbackTransport (in-process)": run_loopback(args.rate, args.seconds),
    }
    cod = codec()
    lines = [
        f"Ping-pong of a 12-joint JointState at {args.rate:.0f} Hz for {args.seconds:.0f} s, RTT "
        "(send -> echo -> decoded reply):",
        "",
        "| path | samples | lost | RTT p50 (us) | RTT p99 (us) |",
        "|---|---|---|---|---|",
    ]
    for k, v in res.items():
        lines.append(f"| {k} | {v['n']} | {v['lost']} | {v['p50_us']:.0f} | {v['p99_us']:.0f} |")
    t, nref = res["tether DdsTransport (2 processes)"], res["native cyclonedds-python (2 processes, reference)"]
    lines += [
        "",
        f"Ratio native/tether RTT: p50 {nref['p50_us'] / t['p50_us']:.2f}x, p99 {nref['p99_us'] / t['p99_us']:.2f}x "
        "(> 1: Tether faster).",
        f"Codec per message: rosbags serialise {cod['rosbags_ser_us']:.1f} us / deserialise {cod['rosbags_de_us']:.1f} us;"
        f" cyclonedds IdlStruct serialise {cod['idl_ser_us']:.1f} us / deserialise {cod['idl_de_us']:.1f} us.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write_results:
        head = (
            f"\n## ROS 2 transport latency (tether.ros)\n\nDate {time.strftime('%Y-%m-%d')}; machine: "
            f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), no GPU, shared with other jobs "
            f"(load avg {os.getloadavg()[0]:.1f}); Python {platform.python_version()}.\n"
            f"Command: `.venv/bin/python benchmarks/ros_transport_latency.py --seconds {args.seconds:g} "
            f"--rate {args.rate:g} --write-results`.\n\n"
        )
        path = Path(__file__).with_name("RESULTS.md")
        with open(path, "a", encoding="utf-8") as f:
            f.write(head + text + "\n")


if __name__ == "__main__":
    main()
