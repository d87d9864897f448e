"""BagRecorder: rosbag2 MCAP bags readable by rosbags' AnyReader, surviving SIGKILL, and recover()."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from rosbags.highlevel import AnyReader
from ruamel.yaml import YAML

from tether.errors import TetherError
from tether.ros.qos import QoS
from tether.ros import types as T
from tether.ros.recorder import BagRecorder, read_bag, recover

DOMAIN = 12  # this module's ROS_DOMAIN_ID (range 10-29 belongs to tether.ros tests)


def _read_all(bag: Path) -> dict[str, list]:
    """Independent read with rosbags' AnyReader and its own typestore lookup (msgdefs embedded in the bag)."""
    out: dict[str, list] = {}
    with AnyReader([bag]) as reader:
        for conn, _ts, raw in reader.messages():
            out.setdefault(conn.topic, []).append(reader.deserialize(raw, conn.msgtype))
    return out


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_clean_bag_has_rosbag2_layout(tmp_path: Path, distro: str) -> None:
    bag = tmp_path / "clean"
    with BagRecorder(tmp_path / "clean.mcap", distro=distro, flush_period=0.05) as rec:  # named as ros2 bag -o
        store = rec.store
        rec.add_topic("/fmu/out/vehicle_odometry", "px4_msgs/msg/VehicleOdometry", "px4_out")
        for i in range(30):
            rec.write("/joint_states", "sensor_msgs/msg/JointState", T.make(store, "sensor_msgs/msg/JointState", position=[i]))
            rec.write(
                "/fmu/out/vehicle_odometry",
                "px4_msgs/msg/VehicleOdometry",
                T.make(store, "px4_msgs/msg/VehicleOdometry", timestamp=i),
                stamp_ns=1_000 + i,  # earlier than the JointState log times: raised, counted
            )
    assert sorted(p.name for p in bag.iterdir()) == ["clean_0.mcap", "metadata.yaml"]
    meta = YAML(typ="safe").load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "mcap" and meta["message_count"] == 60
    assert meta["relative_file_paths"] == ["clean_0.mcap"] and meta["files"][0]["path"] == "clean_0.mcap"
    topics = {t["topic_metadata"]["name"]: t for t in meta["topics_with_message_count"]}
    odo = topics["/fmu/out/vehicle_odometry"]["topic_metadata"]
    if distro == "humble":  # rosbag2 0.15 (Humble) writes v5 and reads offered_qos_profiles as one YAML string
        assert meta["version"] == 5 and "type_description_hash" not in odo
        qos = YAML(typ="safe").load(odo["offered_qos_profiles"])
        assert qos[0]["reliability"] == 2  # RMW_QOS_POLICY_RELIABILITY_BEST_EFFORT, as Humble encodes it
    else:  # Jazzy: v9, QoS as a YAML list with names, type hashes
        assert meta["version"] == 9 and meta["ros_distro"] == "jazzy"
        assert odo["type_description_hash"] == T.rihs01(store, "px4_msgs/msg/VehicleOdometry")
        assert odo["offered_qos_profiles"][0]["reliability"] == "best_effort"
    data = (bag / "clean_0.mcap").read_bytes()
    assert data.startswith(b"\x89MCAP0\r\n") and data.endswith(b"\x89MCAP0\r\n")
    assert b"ros2msg" in data and b"offered_qos_profiles" in data  # schema encoding + channel metadata
    got = _read_all(bag)  # decodes px4 purely from the definitions embedded in the bag
    assert [m.position[0] for m in got["/joint_states"]] == list(range(30))
    assert [m.timestamp for m in got["/fmu/out/vehicle_odometry"]] == list(range(30))
    assert rec.reordered == 30
    with pytest.raises(TetherError, match="already exists"):
        BagRecorder(bag)
    with pytest.raises(TetherError, match="closed"):
        rec.write("/joint_states", "sensor_msgs/msg/JointState", T.make(store, "sensor_msgs/msg/JointState"))


CHILD = textwrap.dedent(
    f"""
    import sys, time
    from tether.ros import types as T
    from tether.ros.cyclonedds_transport import DdsTransport
    from tether.ros.qos import QoS
    from tether.ros.recorder import BagRecorder
    t = DdsTransport(domain_id={DOMAIN}, config="loopback")
    rec = BagRecorder(sys.argv[1], flush_period=0.1)
    rec.record(t, [("/counter", "std_msgs/msg/Int64", QoS(depth=1000))])
    store = rec.store
    i = 0
    while True:  # record-from-callback style writes alongside the DDS subscription, until SIGKILL
        rec.write("/loop/cmd", "std_msgs/msg/Float64MultiArray", T.make(store, "std_msgs/msg/Float64MultiArray", data=[i]))
        i += 1
        time.sleep(0.005)
    """
)


def _committed(bag: Path, topic: str) -> int:
    try:
        meta = YAML(typ="safe").load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    except (OSError, TypeError, KeyError):
        return 0
    return sum(t["message_count"] for t in meta["topics_with_message_count"] if t["topic_metadata"]["name"] == topic)


def test_sigkilled_recorder_leaves_readable_bag(tmp_path: Path) -> None:
    from tether.ros.cyclonedds_transport import DdsTransport

    bag = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(bag)])
    t = DdsTransport(domain_id=DOMAIN, config="loopback")
    try:
        # a burst of 150 on reliable keep-last: depth must hold it (as with real ROS 2)
        pub = t.publisher("/counter", "std_msgs/msg/Int64", QoS(depth=1000))
        assert pub.wait_matched(1, timeout=30.0)
        deadline = time.monotonic() + 30
        while _committed(bag, "/loop/cmd") < 1 and time.monotonic() < deadline:
            time.sleep(0.02)  # a first data chunk is on disk before the counter burst: >= 2 chunks
        n = 0
        for _ in range(100):
            pub.publish(T.make(t.store, "std_msgs/msg/Int64", data=n))
            n += 1
        deadline = time.monotonic() + 30
        while _committed(bag, "/counter") < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        committed_before_kill = _committed(bag, "/counter")
        assert committed_before_kill == 100
        for _ in range(50):  # in flight when the process dies: may or may not make it
            pub.publish(T.make(t.store, "std_msgs/msg/Int64", data=n))
            n += 1
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
        t.close()
    assert child.returncode == -signal.SIGKILL

    # directly readable, no recovery step: provisional footer + atomically rewritten metadata.yaml
    got = _read_all(bag)
    counter = [m.data for m in got["/counter"]]
    assert counter == list(range(len(counter))) and 100 <= len(counter) <= n
    cmds = [int(m.data[0]) for m in got["/loop/cmd"]]
    assert len(cmds) > 0 and cmds == list(range(len(cmds)))
    assert [m.msg.data for m in read_bag(bag, topics=["/counter"])] == counter

    # a torn tail (killed inside the commit's write): recover() keeps every complete chunk
    torn = tmp_path / "torn"
    shutil.copytree(bag, torn)
    mcap = next(torn.glob("*.mcap"))
    raw = mcap.read_bytes()
    chunks = _chunk_offsets(raw)
    assert len(chunks) >= 2  # several commits happened
    mcap.write_bytes(raw[: chunks[-1] + 40])  # cut through the last chunk record
    torn2 = tmp_path / "torn2"
    shutil.copytree(torn, torn2)  # metadata.yaml still there, file torn: read_bag recovers on its own
    c3 = [m.msg.data for m in read_bag(torn2, topics=["/counter"])]
    assert c3 == counter[: len(c3)]
    (torn / "metadata.yaml").unlink()
    counts = recover(torn)
    got2 = _read_all(torn)
    c2 = [m.data for m in got2.get("/counter", [])]
    k2 = [int(m.data[0]) for m in got2["/loop/cmd"]]
    assert c2 == counter[: len(c2)] and k2 == cmds[: len(k2)]  # prefixes: nothing invented, order kept
    assert counts["/counter"] == len(c2) and counts["/loop/cmd"] == len(k2)
    assert len(c2) + len(k2) < len(counter) + len(cmds)  # the torn chunk is gone
    assert recover(torn) == counts  # idempotent


def _chunk_offsets(raw: bytes) -> list[int]:
    import struct

    (hlen,) = struct.unpack_from("<Q", raw, 9)
    pos, out = 8 + 9 + hlen, []
    while pos + 9 <= len(raw) and raw[pos] not in (0x0F, 0x02):
        if raw[pos] == 0x06:
            out.append(pos)
        pos += 9 + struct.unpack_from("<Q", raw, pos + 1)[0]
    return out


def test_recover_rejects_non_bags(tmp_path: Path) -> None:
    with pytest.raises(TetherError, match="does not exist"):
        recover(tmp_path / "nope")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "b.mcap").write_bytes(b"not an mcap at all")
    with pytest.raises(TetherError, match="not an MCAP file"):
        recover(tmp_path / "b")


def test_cli_bag_info_and_recover(tmp_path: Path, capsys) -> None:
    from tether.ros.bag_commands import register
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    bag = tmp_path / "cli"
    with BagRecorder(bag) as rec:
        for i in range(5):
            rec.write("/lowstate", "unitree_go/msg/LowState", T.make(rec.store, "unitree_go/msg/LowState", tick=i))
    args = parser.parse_args(["bag", "info", str(bag)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "messages: 5" in out and "/lowstate  unitree_go/msg/LowState  5" in out
    (bag / "metadata.yaml").unlink()
    args = parser.parse_args(["bag", "recover", str(bag)])
    assert args.func(args) == 0 and "/lowstate  5" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["bag", "record", str(tmp_path / "x"), "--topic", "no_type"])


def test_recover_never_rewrites_a_linked_mcap_outside_the_bag(tmp_path: Path, capsys) -> None:
    """A bag folder whose .mcap is a symbolic link: refused, one line, exit 2; the file it points to is untouched
    (recovery truncates and rewrites the file in place, so following the link would edit a file elsewhere)."""
    from tether.cli import main

    src = tmp_path / "src"
    with BagRecorder(src) as rec:
        for i in range(5):
            rec.write("/lowstate", "unitree_go/msg/LowState", T.make(rec.store, "unitree_go/msg/LowState", tick=i))
    victim = tmp_path / "elsewhere.mcap"
    victim.write_bytes(next(src.glob("*.mcap")).read_bytes()[:-100])  # a torn tail: recovery would rewrite it
    before = victim.read_bytes()
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "bag_0.mcap").symlink_to(victim)
    for action in ("recover", "info"):
        rc = main(["bag", action, str(bag)])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and "symbolic link" in err[0] and "expected" in err[0], err
        assert victim.read_bytes() == before and not (bag / "metadata.yaml").exists()
    (bag / "bag_0.mcap").unlink()
    good = next(src.glob("*.mcap"))
    (bag / good.name).symlink_to(good)  # a complete bag elsewhere, under the name metadata.yaml lists
    (bag / "metadata.yaml").write_bytes((src / "metadata.yaml").read_bytes())
    rc = main(["bag", "info", str(bag)])  # metadata.yaml opens: the reader itself must not follow the link
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "symbolic link" in err[0], err
