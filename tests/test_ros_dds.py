"""Cyclone DDS transport on real loopback DDS: cross-process exchange, ROS 2 wire names, QoS reports, drops.

The publisher runs in a separate Python process; this process receives the raw CDR and checks it against
rosbags' own ``deserialize_cdr`` and against a fresh rosbags serialisation of the same message (byte-identical
wire), and checks DDS builtin discovery for the ROS 2 topic/type names and USER_DATA.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from tether.errors import TetherError
from tether.ros import types as T
from tether.ros.qos import PRESETS
from tether.ros.cyclonedds_transport import DdsTransport, domain_id_from_env, idl_struct, loopback_config

DOMAIN = 11  # this module's ROS_DOMAIN_ID (range 10-29 belongs to tether.ros tests)

N = 15

# (topic, type, qos preset) exchanged across processes; messages are a deterministic function of the index.
# Depth is raised on both ends so a loaded CI machine cannot overwrite samples in keep-last histories.
TOPICS = [
    ("/joint_states", "sensor_msgs/msg/JointState", "default"),
    ("/forward_position_controller/commands", "std_msgs/msg/Float64MultiArray", "command"),
    ("/fmu/in/trajectory_setpoint", "px4_msgs/msg/TrajectorySetpoint", "px4_in"),
    ("/lowcmd", "unitree_go/msg/LowCmd", "default"),
]
DEPTH = 100

BUILD = textwrap.dedent(
    """
    def build(store, msgtype, i):
        from tether.ros import types as T
        if msgtype == "sensor_msgs/msg/JointState":
            return T.make(store, msgtype, header=T.header(store, "base", 1_000_000_000 + i),
                          name=[f"panda_joint{k}" for k in range(1, 8)], position=[0.1 * i + k for k in range(7)],
                          velocity=[float(i)] * 7)
        if msgtype == "std_msgs/msg/Float64MultiArray":
            return T.make(store, msgtype, data=[i, -i, 0.5 * i])
        if msgtype == "px4_msgs/msg/TrajectorySetpoint":
            nan = float("nan")
            return T.make(store, msgtype, timestamp=1000 * i, position=[0.0, 1.0, -float(i)],
                          velocity=[nan, nan, nan], yaw=0.25)
        if msgtype == "unitree_go/msg/LowCmd":
            return T.make(store, msgtype, head=[0xFE, 0xEF], level_flag=0xFF,
                          motor_cmd=[{"mode": 1, "q": 0.01 * i + k, "kp": 20.0, "kd": 0.5} for k in range(20)],
                          crc=12345 + i)
        raise KeyError(msgtype)
    """
)
exec(BUILD)  # defines build() here too, from the very same source the child process runs

CHILD = (
    BUILD
    + textwrap.dedent(
        f"""
    import time
    from tether.ros.cyclonedds_transport import DdsTransport
    from tether.ros.qos import PRESETS
    t = DdsTransport(domain_id={DOMAIN}, config="loopback")
    pubs = [(t.publisher(topic, mt, PRESETS[qos].with_(depth={DEPTH})), mt) for topic, mt, qos in {TOPICS!r}]
    for p, _ in pubs:
        assert p.wait_matched(1, timeout=60.0), "no subscriber for " + p.topic
    for i in range({N}):
        for p, mt in pubs:
            p.publish(build(t.store, mt, i))
        time.sleep(0.01)
    # stay alive until the parent has everything (it closes our stdin)
    import sys
    sys.stdin.read()
    t.close()
    """
    )
)


def _strip_pad(raw: bytes) -> bytes:
    return raw[: len(raw) - (raw[3] & 0x3)] if raw[3] & 0x3 else raw


@pytest.fixture(scope="module")
def transport():
    t = DdsTransport(domain_id=DOMAIN, config="loopback")
    yield t
    t.close()


def test_cross_process_exchange_is_ros2_wire(transport: DdsTransport) -> None:
    store = transport.store
    got: dict[str, list[bytes]] = {topic: [] for topic, _, _ in TOPICS}
    done = threading.Event()

    def cb_for(topic: str):
        def cb(raw: bytes) -> None:
            got[topic].append(raw)
            if all(len(v) >= N for v in got.values()):
                done.set()

        return cb

    subs = [
        transport.subscribe(topic, mt, cb_for(topic), PRESETS[qos].with_(depth=DEPTH), raw=True)
        for topic, mt, qos in TOPICS
    ]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    try:
        assert done.wait(90.0), {k: len(v) for k, v in got.items()}
        pubs = transport.discovered("publications", timeout=0.5)
        parts = transport.discovered_participants(timeout=0.2)
    finally:
        child.stdin.close()
        child.wait(timeout=20)
    assert child.returncode == 0

    for topic, mt, _ in TOPICS:
        frames = got[topic]
        assert len(frames) == N, topic
        for i, raw in enumerate(frames):  # reliable + in order on loopback
            assert raw[:2] == b"\x00\x01" and len(raw) % 4 == 0  # XCDR1 little endian, padded like Cyclone's C writer
            expected = T.serialize(store, build(store, mt, i), mt)
            assert _strip_pad(raw) == expected  # byte-identical to rosbags (== ROS 2 RMW) serialisation
            msg = store.deserialize_cdr(raw, mt)  # rosbags' own decoder, not ours
            if mt == "unitree_go/msg/LowCmd":
                assert msg.crc == 12345 + i and msg.motor_cmd[3].q == pytest.approx(0.01 * i + 3, rel=1e-6)
            if mt == "px4_msgs/msg/TrajectorySetpoint":
                assert msg.position[2] == -i and np.isnan(msg.velocity).all()
    for s in subs:
        assert s.dropped == 0 and s.errors == 0

    # discovery: the remote writers carry ROS 2 topic and type names and the RIHS01 typehash USER_DATA
    remote = {ep.topic_name: ep for ep in pubs}
    for topic, mt, _ in TOPICS:
        ep = remote["rt" + topic]
        assert ep.type_name == T.dds_typename(mt)
        assert ep.user_data == f"typehash={T.rihs01(store, mt)};".encode()
    assert remote["rt/fmu/in/trajectory_setpoint"].reliability == "best_effort"
    assert remote["rt/lowcmd"].reliability == "reliable"
    assert sum(ud == b"enclave=/;" for ud in parts.values()) >= 2  # us and the child


def test_qos_mismatch_is_reported_not_silent(transport: DdsTransport, caplog) -> None:
    other = DdsTransport(domain_id=DOMAIN, config="loopback")
    try:
        got: list = []
        sub = transport.subscribe("/camera/imu", "sensor_msgs/msg/Imu", got.append, qos="default")
        pub = other.publisher("/camera/imu", "sensor_msgs/msg/Imu", qos="sensor_data")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (transport.qos_incidents.items("/camera/imu") and other.qos_incidents.items("/camera/imu")):
            time.sleep(0.02)
        rd = transport.qos_incidents.items("/camera/imu")
        wr = other.qos_incidents.items("/camera/imu")
        assert rd and rd[0].side == "reader" and rd[0].policy == "RELIABILITY" and "sensor_data" in rd[0].reason
        assert wr and wr[0].side == "writer" and wr[0].policy == "RELIABILITY"
        assert any("QoS mismatch on /camera/imu" in r.getMessage() for r in caplog.records)
        assert pub.matched() == 0 and sub.matched() == 0
        pub.publish(T.make(other.store, "sensor_msgs/msg/Imu"))
        time.sleep(0.2)
        assert got == []  # incompatible: nothing delivered (as on a real wire)
    finally:
        other.close()


def test_malformed_sample_dropped_and_counted(transport: DdsTransport) -> None:
    other = DdsTransport(domain_id=DOMAIN, config="loopback")
    try:
        got: list = []
        sub = transport.subscribe("/chatter", "std_msgs/msg/String", got.append)

        def boom(_msg) -> None:
            raise RuntimeError("user bug")

        sub_bad_cb = transport.subscribe("/chatter2", "std_msgs/msg/String", boom)
        pub = other.publisher("/chatter", "std_msgs/msg/String")
        pub2 = other.publisher("/chatter2", "std_msgs/msg/String")
        assert pub.wait_matched(1, 10) and pub2.wait_matched(1, 10)
        good = T.serialize(other.store, T.make(other.store, "std_msgs/msg/String", data="ok"))
        pub.publish_raw(good.replace(b"ok", b"\xff\xfe"))  # valid CDR framing, invalid UTF-8: Cyclone passes it
        pub.publish_raw(good)
        pub2.publish_raw(good)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (len(got) < 1 or sub_bad_cb.errors < 1):
            time.sleep(0.02)
        assert [m.data for m in got] == ["ok"]
        assert sub.dropped == 1 and "utf-8" in sub.last_error
        assert sub_bad_cb.errors == 1 and sub_bad_cb.received == 0
        with pytest.raises(TetherError, match="malformed"):
            pub.publish_raw(good[:6])  # Cyclone itself refuses structurally broken CDR on write
    finally:
        other.close()


def test_latched_late_joiner(transport: DdsTransport) -> None:
    other = DdsTransport(domain_id=DOMAIN, config="loopback")
    try:
        pub = other.publisher("/e_stop", "std_msgs/msg/Bool", qos="latched")
        pub.publish(T.make(other.store, "std_msgs/msg/Bool", data=True))
        latched: list = []
        volatile: list = []
        s1 = transport.subscribe("/e_stop", "std_msgs/msg/Bool", latched.append, qos="latched")
        transport.subscribe("/e_stop", "std_msgs/msg/Bool", volatile.append, qos="default")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not latched:
            time.sleep(0.02)
        assert [m.data for m in latched] == [True]
        assert s1.matched() == 1
        time.sleep(0.2)
        assert volatile == []
    finally:
        other.close()


def test_config_and_domain_errors(transport: DdsTransport, monkeypatch) -> None:
    monkeypatch.setenv("ROS_DOMAIN_ID", "27")
    assert domain_id_from_env(None) == 27
    monkeypatch.setenv("ROS_DOMAIN_ID", "abc")
    with pytest.raises(TetherError, match="ROS_DOMAIN_ID='abc'"):
        domain_id_from_env(None)
    with pytest.raises(TetherError, match="0..232"):
        domain_id_from_env(500)
    assert "AllowMulticast>false" in loopback_config() and "127.0.0.1" in loopback_config()
    with pytest.raises(TetherError, match="already configured differently"):
        DdsTransport(domain_id=DOMAIN, config=loopback_config(max_participants=8))


def test_idl_struct_for_every_bundled_type_has_ros_typename() -> None:
    store = T.typestore("jazzy")
    for mt in T.registered(store):
        cls = idl_struct(store, mt)
        assert cls.__idl_typename__ == T.dds_typename(mt)


def test_cli_topic_list_sees_ros_names(transport: DdsTransport, capsys) -> None:
    import argparse

    from tether.ros.bag_commands import register

    transport.publisher("/cli/odom", "nav_msgs/msg/Odometry", "sensor_data")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["topic", "list", "--domain-id", str(DOMAIN), "--loopback", "--wait", "0.5"])
    assert args.func(args) == 0
    assert "/cli/odom [nav_msgs/msg/Odometry]" in capsys.readouterr().out.splitlines()



TAGGED_CHILD = textwrap.dedent(
    f"""
    import sys, time
    from tether.ros import types as T
    from tether.ros.cyclonedds_transport import DdsTransport
    t = DdsTransport(domain_id={DOMAIN}, config="loopback")
    pub = t.publisher("/tagged", "std_msgs/msg/String")
    for _ in range(150):
        pub.publish(T.make(t.store, "std_msgs/msg/String", data=sys.argv[1]))
        time.sleep(0.02)
    t.close()
    """
)


def test_domain_tag_separates_runs_on_one_domain(transport: DdsTransport) -> None:
    """Two test runs on one host share domain ids: a participant hears only those with its own domain tag."""
    got: list = []
    sub = transport.subscribe("/tagged", "std_msgs/msg/String", lambda m: got.append(m.data))
    other_env = {**os.environ, "TETHER_DDS_DOMAIN_TAG": "another-run"}
    children = [subprocess.Popen([sys.executable, "-c", TAGGED_CHILD, "other run"], env=other_env),
                subprocess.Popen([sys.executable, "-c", TAGGED_CHILD, "this run"])]
    try:
        for c in children:
            assert c.wait(60) == 0
    finally:
        for c in children:
            c.kill()
    assert "this run" in got and set(got) == {"this run"}
    assert sub.matched() == 0  # both writers gone


@pytest.mark.parametrize("tag", ["has space", "x" * 65, "<Tag>"])
def test_bad_domain_tag_is_refused(monkeypatch, tag: str) -> None:
    monkeypatch.setenv("TETHER_DDS_DOMAIN_TAG", tag)
    with pytest.raises(TetherError, match="TETHER_DDS_DOMAIN_TAG"):
        loopback_config()
