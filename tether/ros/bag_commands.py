"""``tether bag`` and ``tether topic``: rosbag2 and graph tools that work without a ROS install.

Why: on a robot laptop without ROS, or in CI, the person debugging a deployment still needs ``ros2 bag
info``/``ros2 topic echo`` equivalents that speak the same wire (Cyclone DDS, ROS names) and read the same bags.
Heavy imports stay inside handlers so ``tether --help`` is fast.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from tether.cli_types import (
    domain_id, existing_bag, finite_float, msg_type, output_dir, positive_int, ros_topic, topic_spec,
)
from tether.errors import TetherError

DISTROS = ("humble", "jazzy")
# the QoS preset names of tether.ros.qos.PRESETS (a test keeps the two equal; listed here so --help stays light)
QOS_PRESETS = ("default", "sensor_data", "latched", "command", "system_default", "px4_out", "px4_in")
MAX_SECONDS = 1e7  # durations/timeouts: finite, at most ~116 days


def new_bag(text: str) -> Path:
    """``bag record OUT``: a new bag path (NAME or NAME.mcap makes the directory NAME) in a writable folder."""
    p = output_dir(text[:-5] if text.endswith(".mcap") else text)
    if p.exists():
        raise argparse.ArgumentTypeError(f"{str(p)!r} already exists; expected a new bag path")
    return Path(text)


seconds = finite_float(0.0, MAX_SECONDS, lo_open=True, what="seconds")


def register(subparsers: Any) -> None:
    bag = subparsers.add_parser("bag", help="rosbag2 (MCAP) tools: info, recover, record")
    bsub = bag.add_subparsers(dest="bag_command", metavar="ACTION", required=True)

    p = bsub.add_parser("info", help="topics, types and message counts of a bag")
    p.add_argument("bag", type=existing_bag)
    p.add_argument("--distro", default="humble", choices=DISTROS)
    p.set_defaults(func=_bag_info)

    p = bsub.add_parser("recover", help="make a bag from a crashed recorder readable (rebuilds metadata.yaml)")
    p.add_argument("bag", type=existing_bag)
    p.add_argument("--distro", default="humble", choices=DISTROS)
    p.set_defaults(func=_bag_recover)

    p = bsub.add_parser("record", help="record topics from the DDS graph into a new bag")
    p.add_argument("out", type=new_bag,
                   help="bag name: NAME or NAME.mcap makes the directory NAME holding NAME_0.mcap")
    p.add_argument("--topic", action="append", type=topic_spec, required=True, help="/topic:pkg/msg/Type")
    p.add_argument("--qos", default="sensor_data", choices=QOS_PRESETS,
                   help="QoS preset for the recording subscriptions")
    p.add_argument("--duration", type=seconds, default=None, help="seconds (default: until Ctrl-C)")
    p.add_argument("--domain-id", type=domain_id, default=None)
    p.add_argument("--distro", default="humble", choices=DISTROS,
                   help="target ROS 2 distro: its metadata.yaml version (humble 5, jazzy 9)")
    p.add_argument("--loopback", action="store_true", help="restrict discovery to 127.0.0.1")
    p.set_defaults(func=_bag_record)

    topic = subparsers.add_parser("topic", help="ROS 2 graph over Cyclone DDS: list, echo")
    tsub = topic.add_subparsers(dest="topic_command", metavar="ACTION", required=True)
    p = tsub.add_parser("list", help="ROS topics seen through DDS discovery, with types")
    p.add_argument("--domain-id", type=domain_id, default=None)
    p.add_argument("--loopback", action="store_true")
    p.add_argument("--wait", type=finite_float(0.0, 3600.0, what="seconds"), default=1.0,
                   help="seconds to let discovery settle")
    p.set_defaults(func=_topic_list)
    p = tsub.add_parser("echo", help="print messages of a topic")
    p.add_argument("topic", type=ros_topic)
    p.add_argument("msgtype", type=msg_type)
    p.add_argument("--qos", default="sensor_data", choices=QOS_PRESETS)
    p.add_argument("--count", type=positive_int, default=None)
    p.add_argument("--timeout", type=seconds, default=None, help="seconds (default: until --count or Ctrl-C)")
    p.add_argument("--domain-id", type=domain_id, default=None)
    p.add_argument("--distro", default="humble", choices=DISTROS)
    p.add_argument("--loopback", action="store_true")
    p.set_defaults(func=_topic_echo)


def _bag_info(args: argparse.Namespace) -> int:
    from collections import Counter

    from tether.ros.recorder import read_bag

    counts: Counter[tuple[str, str]] = Counter()
    first = last = None
    for m in read_bag(args.bag, args.distro):
        counts[(m.topic, m.msgtype)] += 1
        first = m.log_ns if first is None else first
        last = m.log_ns
    span = 0.0 if first is None else (last - first) * 1e-9
    print(f"bag: {args.bag}\nmessages: {sum(counts.values())}\nduration: {span:.3f} s")
    for (topic, msgtype), n in sorted(counts.items()):
        print(f"  {topic}  {msgtype}  {n}")
    return 0


def _bag_recover(args: argparse.Namespace) -> int:
    from tether.ros.recorder import recover

    for topic, n in sorted(recover(args.bag, args.distro).items()):
        print(f"  {topic}  {n}")
    return 0


def _bag_record(args: argparse.Namespace) -> int:
    from tether.ros.cyclonedds_transport import DdsTransport
    from tether.ros.recorder import BagRecorder

    transport = DdsTransport(args.domain_id, args.distro, "loopback" if args.loopback else None)
    try:
        rec = BagRecorder(args.out, args.distro)
        try:
            rec.record(transport, [(t, m, args.qos) for t, m in args.topic])
            t_end = None if args.duration is None else time.monotonic() + args.duration
            while (t_end is None or time.monotonic() < t_end) and rec.error is None:
                time.sleep(0.1)
        except KeyboardInterrupt:
            pass
        finally:
            rec.close()  # a full disk raises here (one line from the CLI); what was committed stays readable
    finally:
        transport.close()
    print(f"recorded {rec.written} messages into {rec.path} (rosbag2 metadata v{rec.version} for {args.distro})")
    return 0


def _topic_list(args: argparse.Namespace) -> int:
    from tether.ros.cyclonedds_transport import DdsTransport
    from tether.ros.types import msgtype_from_dds, ros_topic

    t = DdsTransport(args.domain_id, config="loopback" if args.loopback else None)
    try:
        time.sleep(args.wait)
        seen = set()
        for kind in ("publications", "subscriptions"):
            for ep in t.discovered(kind, timeout=0.2):
                if ep.topic_name.startswith("rt/"):
                    try:
                        seen.add((ros_topic(ep.topic_name), msgtype_from_dds(ep.type_name)))
                    except TetherError:
                        seen.add((ros_topic(ep.topic_name), ep.type_name))
    finally:
        t.close()
    for topic, msgtype in sorted(seen):
        print(f"{topic} [{msgtype}]")
    return 0


def _topic_echo(args: argparse.Namespace) -> int:
    import threading

    from tether.ros.cyclonedds_transport import DdsTransport

    done = threading.Event()
    n = [0]

    def cb(msg: Any) -> None:
        print(msg, flush=True)
        n[0] += 1
        if args.count is not None and n[0] >= args.count:
            done.set()

    t = DdsTransport(args.domain_id, args.distro, "loopback" if args.loopback else None)
    try:
        t.subscribe(args.topic, args.msgtype, cb, args.qos)
        done.wait(args.timeout)
    except KeyboardInterrupt:
        pass
    finally:
        t.close()
    return 0
