"""Bags that ``tether deploy --record`` writes, read by the field's own tools: Foxglove's ``mcap`` +
``mcap-ros2-support`` decode every message from the schemas in the file, and rosbags reads the bag through the
metadata.yaml of the target distro (v5 for Humble with its QoS string, v9 for Jazzy). The bag is named the way
``ros2 bag record -o real -s mcap`` names it: directory ``real`` holding ``real_0.mcap``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from ruamel.yaml import YAML

from tests._deploy_support import ServedRobot, make_gaussian_checkpoint, run_deploy_cli

DOMAINS = {"humble": 53, "jazzy": 54}
HUMBLE_QOS_KEYS = {"history", "depth", "reliability", "durability", "deadline", "lifespan", "liveliness",
                   "liveliness_lease_duration", "avoid_ros_namespace_conventions"}


def _mcap_messages(path: Path) -> tuple[Counter, dict[str, list], int]:
    """Every message decoded by mcap-ros2-support (no Tether, no rosbags); returns per-topic counts, the decoded
    /tether/obs payloads and the message count the MCAP summary states."""
    counts: Counter = Counter()
    obs: dict[str, list] = {"/tether/obs": [], "/tether/action": []}
    with open(path, "rb") as fh:
        reader = make_reader(fh, decoder_factories=[DecoderFactory()])
        for schema, channel, _message, decoded in reader.iter_decoded_messages():
            assert schema.encoding == "ros2msg" and channel.message_encoding == "cdr"
            assert decoded is not None
            counts[channel.topic] += 1
            if channel.topic in obs:
                obs[channel.topic].append(np.asarray(decoded.data))
        summary = reader.get_summary()
    assert summary is not None and summary.statistics is not None
    return counts, obs, summary.statistics.message_count


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_deploy_bag_reads_with_foxglove_mcap_and_rosbags(tmp_path: Path, distro: str) -> None:
    from rosbags.highlevel import AnyReader

    domain = DOMAINS[distro]
    server = ServedRobot("quadrotor", domain, "--goal", "0", "0", "1", "--distro", distro)
    try:
        ckpt = make_gaussian_checkpoint(tmp_path / "ckpt", "tether/QuadrotorHover-v0", seed=1)
        server.wait_ready()
        run = run_deploy_cli([str(ckpt), "--adapter", "px4", "--loopback", "--domain-id", str(domain),
                              "--distro", distro, "--record", str(tmp_path / "real.mcap"), "--duration", "2"])
    finally:
        server.stop()
    assert run.returncode == 0, run.stdout + run.stderr
    bag = tmp_path / "real"
    assert sorted(p.name for p in bag.iterdir()) == ["metadata.yaml", "real_0.mcap"]
    assert not (tmp_path / "real.mcap").exists()

    meta = YAML(typ="safe").load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["relative_file_paths"] == ["real_0.mcap"]
    topics = {t["topic_metadata"]["name"]: t for t in meta["topics_with_message_count"]}
    for t in topics.values():
        qos = t["topic_metadata"]["offered_qos_profiles"]
        if distro == "humble":  # what rosbag2 0.15's metadata_io decodes: a string of YAML with integer enums
            assert meta["version"] == 5 and isinstance(qos, str)
            profiles = YAML(typ="safe").load(qos)
            assert profiles and all(set(p) == HUMBLE_QOS_KEYS and isinstance(p["reliability"], int) for p in profiles)
        else:
            assert meta["version"] == 9 and isinstance(qos, list) and isinstance(qos[0]["reliability"], str)
            assert t["topic_metadata"]["type_description_hash"].startswith("RIHS01_")

    # Foxglove's reader: every message decodes from the ros2msg schemas stored in the file
    counts, mcap_flat, summary_count = _mcap_messages(bag / "real_0.mcap")
    assert sum(counts.values()) == summary_count == meta["message_count"] > 100
    assert {"/fmu/out/vehicle_odometry", "/fmu/in/vehicle_rates_setpoint", "/tether/obs",
            "/tether/action"} <= set(counts)
    assert {k: t["message_count"] for k, t in topics.items() if t["message_count"]} == dict(counts)

    # rosbags through the distro's metadata.yaml, with the types from the bag itself; the two decoders agree
    flat: dict[str, list] = {"/tether/obs": [], "/tether/action": []}
    n = 0
    with AnyReader([bag]) as reader:
        assert reader.message_count == meta["message_count"]
        for conn, _ts, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            n += 1
            if conn.topic in flat:
                flat[conn.topic].append(np.asarray(msg.data))
    assert n == meta["message_count"]
    for topic in flat:
        np.testing.assert_array_equal(np.array(flat[topic]), np.array(mcap_flat[topic]))
