"""End to end over real Cyclone DDS on loopback: a served robot process per robot kind and `tether deploy`.

For each robot: the deploy runs at rate, every message on the wire (both directions) decodes with a rosbags
typestore built independently of Tether's codec helpers and carries the ROS 2 DDS topic/type names and type
hash, every command is inside the robot's limits, the MCAP bag reads back without Tether's typestore, and its
flat topics convert into a dataset that reproduces the recorded (observation, command) pairs exactly.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import numpy as np
import pytest

from tests._deploy_support import (
    PY,
    REPO,
    Probe,
    ServedRobot,
    independent_typestore,
    make_gaussian_checkpoint,
)

DOMAINS = {"arm": 31, "quadrotor": 32, "legged": 33, "legged-ros2-control": 34}
CASES = {  # case -> (env id of the policy, deploy adapter, served robot arguments)
    "arm": ("tether/ArmReach-v0", "arm-ros2-control", ("--robot", "arm", "--goal", "0.5", "0.1", "0.3")),
    "quadrotor": ("tether/QuadrotorHover-v0", "px4", ("--robot", "quadrotor", "--goal", "0", "0", "1")),
    "legged": ("tether/LeggedStand-v0", "unitree", ("--robot", "legged")),
    "legged-ros2-control": ("tether/LeggedStand-v0", "joint-level",
                            ("--robot", "legged", "--interface", "ros2-control", "--backend", "pybullet")),
}
# (ROS topic, ROS type) each side must put on the wire
WIRE = {
    "arm": {"robot": [("/joint_states", "sensor_msgs/msg/JointState"),
                      ("/tether/goal", "geometry_msgs/msg/PointStamped")],
            "deploy": [("/forward_position_controller/commands", "std_msgs/msg/Float64MultiArray")]},
    "quadrotor": {"robot": [("/fmu/out/vehicle_odometry", "px4_msgs/msg/VehicleOdometry"),
                            ("/fmu/out/vehicle_status", "px4_msgs/msg/VehicleStatus"),
                            ("/tether/goal", "geometry_msgs/msg/PointStamped")],
                  "deploy": [("/fmu/in/offboard_control_mode", "px4_msgs/msg/OffboardControlMode"),
                             ("/fmu/in/vehicle_rates_setpoint", "px4_msgs/msg/VehicleRatesSetpoint"),
                             ("/fmu/in/vehicle_command", "px4_msgs/msg/VehicleCommand")]},
    "legged": {"robot": [("/lowstate", "unitree_go/msg/LowState"), ("/odom", "nav_msgs/msg/Odometry")],
               "deploy": [("/lowcmd", "unitree_go/msg/LowCmd")]},
    "legged-ros2-control": {"robot": [("/joint_states", "sensor_msgs/msg/JointState"),
                                      ("/imu/data", "sensor_msgs/msg/Imu")],
                            "deploy": [("/joint_group_position_controller/commands",
                                        "std_msgs/msg/Float64MultiArray")]},
}
SECONDS = 3.0


class _Servers(dict):
    """Served robots started on first use: under ``pytest -n 2`` the module's cases are split across workers,
    and starting every robot in every worker put two robots on each DDS domain (and spent CPU on idle ones)."""

    def __missing__(self, case: str) -> ServedRobot:
        args = CASES[case][2]
        proc = self[case] = ServedRobot(args[1], DOMAINS[case], *args[2:])
        return proc


@pytest.fixture(scope="module")
def servers():
    procs = _Servers()
    yield procs
    for p in procs.values():
        p.stop()


def _dds_type(msgtype: str) -> str:
    pkg, kind, name = msgtype.split("/")
    return f"{pkg}::{kind}::dds_::{name}_"


def _check_commands(robot: str, contract, store, raw: dict[str, list[tuple[float, bytes]]]) -> int:
    """Decode every captured command independently and check it against the robot's limits; returns count."""
    n = 0
    if robot == "arm":
        from tether.sim.robots.panda import Q_HIGH as PANDA_Q_HIGH, Q_LOW as PANDA_Q_LOW

        for _, data in raw["/forward_position_controller/commands"]:
            q = np.asarray(store.deserialize_cdr(data, "std_msgs/msg/Float64MultiArray").data)
            assert q.shape == (7,) and np.all(np.isfinite(q))
            assert np.all(q >= np.asarray(PANDA_Q_LOW) - 1e-9) and np.all(q <= np.asarray(PANDA_Q_HIGH) + 1e-9)
            n += 1
    elif robot == "quadrotor":
        hi = contract.action_high[1:4]
        for _, data in raw["/fmu/in/vehicle_rates_setpoint"]:
            m = store.deserialize_cdr(data, "px4_msgs/msg/VehicleRatesSetpoint")
            rates = np.array([m.roll, m.pitch, m.yaw])
            assert np.all(np.isfinite(rates)) and np.all(np.abs(rates) <= hi + 1e-5)  # FRD: signs flip only
            assert -1.0 - 1e-6 <= m.thrust_body[2] <= 1e-6 and m.thrust_body[0] == 0 and m.thrust_body[1] == 0
            n += 1
    elif robot == "legged-ros2-control":
        f = contract.field("joint_pos_target")
        for _, data in raw["/joint_group_position_controller/commands"]:
            q = np.asarray(store.deserialize_cdr(data, "std_msgs/msg/Float64MultiArray").data)
            assert q.shape == (12,) and np.all(np.isfinite(q))
            assert np.all(q >= np.asarray(f.low) - 1e-9) and np.all(q <= np.asarray(f.high) + 1e-9)
            n += 1
    else:
        from tether.ros.protocols.unitree import motor_indices
        from tether.ros.protocols.unitree_crc import lowcmd_crc

        f = contract.field("joint_pos_target")
        idx = motor_indices(f.components)
        for _, data in raw["/lowcmd"]:
            m = store.deserialize_cdr(data, "unitree_go/msg/LowCmd")
            assert int(m.crc) == lowcmd_crc(m)
            q = np.array([m.motor_cmd[i].q for i in idx])
            if all(m.motor_cmd[i].kp == 0 for i in idx):  # passive damping (stale state): no position target
                assert all(m.motor_cmd[i].kd > 0 for i in idx)
            else:
                assert np.all(q >= np.asarray(f.low) - 1e-5) and np.all(q <= np.asarray(f.high) + 1e-5)
            n += 1
    return n


@pytest.mark.parametrize("robot", list(CASES))
def test_deploy_end_to_end(robot, servers, tmp_path, capsys):
    from rosbags.highlevel import AnyReader

    from tether.cli import main
    from tether.data.rosbag_import import align_bag

    server = servers[robot]  # boots in its own process while the checkpoint is made
    env_id, adapter, _ = CASES[robot]
    domain = DOMAINS[robot]
    ckpt = make_gaussian_checkpoint(tmp_path / "ckpt", env_id, seed=3)
    from tether.policies.checkpoint import load_checkpoint

    contract = load_checkpoint(ckpt).contract
    probe = Probe(domain)
    try:
        for topic, msgtype in WIRE[robot]["robot"] + WIRE[robot]["deploy"]:
            probe.listen(topic, msgtype)
        probe.watch_discovery()
        server.wait_ready()
        bag, stats_file = tmp_path / "run", tmp_path / "stats.json"  # --record run.mcap makes run/run_0.mcap
        args = [str(ckpt), "--adapter", adapter, "--loopback", "--domain-id", str(domain), "--record",
                str(tmp_path / "run.mcap"),
                "--stats-json", str(stats_file)]
        if robot == "arm":  # as a separate process, stopped with Ctrl-C (SIGINT)
            proc = subprocess.Popen([PY, "-m", "tether.cli", "deploy", *args], cwd=REPO, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            assert proc.stdout is not None
            lines = []
            for line in proc.stdout:
                lines.append(line)
                if "tether deploy: running" in line:
                    break
            time.sleep(SECONDS)
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
            out = "".join(lines) + out
            assert proc.returncode == 0, out
        else:
            rc = main(["deploy", *args, "--duration", str(SECONDS)])
            out = capsys.readouterr().out
            assert rc == 0, out
        assert "tether deploy: stopped" in out and "latency p50" in out and "deadline misses" in out
        stats = json.loads(stats_file.read_text())
        assert stats["robot_checked"] is True  # the served robot's contract was compared at connect
        assert stats["qos_incidents"] == []  # every endpoint pair the two sides share matched
        assert stats["stop_reason"] == ("stop()" if robot == "arm" else "duration")
        # the loop accounts for every period of its schedule (ticks + slots skipped after an overrun), so it
        # never drifts off rate silently; how many ticks a loaded machine manages is not asserted here
        slots = stats["duration_s"] * contract.rate_hz
        assert stats["ticks"] + stats["skipped_slots"] >= 0.9 * slots - 2
        assert stats["ticks"] >= 0.2 * slots

        # wire: DDS names, type hash, independent decoding, limits
        store = independent_typestore()
        pubs = probe.endpoints
        for topic, msgtype in WIRE[robot]["robot"] + WIRE[robot]["deploy"]:
            ep = pubs.get("rt" + topic)
            assert ep is not None, f"{topic} not discovered; saw {sorted(pubs)}"
            assert ep.type_name == _dds_type(msgtype)
            assert f"typehash={store.hash_rihs01(msgtype)};".encode() in ep.user_data
            assert probe.count(topic) > 0, f"nothing heard on {topic}"
            for _, data in probe.raw[topic]:
                assert data[:2] == b"\x00\x01"  # CDR little endian, plain (XCDR1) encapsulation
                store.deserialize_cdr(data, msgtype)
        assert _check_commands(robot, contract, store, probe.raw) > 0.5 * stats["ticks"]
        if robot == "quadrotor":  # the vehicle was armed and switched to offboard through vehicle_command
            cmds = [store.deserialize_cdr(d, "px4_msgs/msg/VehicleCommand") for _, d in
                    probe.raw["/fmu/in/vehicle_command"]]
            assert {(c.command, round(c.param2)) for c in cmds} >= {(176, 6), (400, 0)}
            statuses = [store.deserialize_cdr(d, "px4_msgs/msg/VehicleStatus")
                        for _, d in probe.raw["/fmu/out/vehicle_status"]]
            seen = {(s.nav_state, s.arming_state) for s in statuses}
            assert (14, 2) in seen, (seen, server.lines[-3:])  # offboard was reached
    finally:
        probe.close()

    # the bag: readable by plain rosbags from the definitions stored in it, and convertible exactly
    with AnyReader([bag]) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        for topic, msgtype in WIRE[robot]["robot"] + WIRE[robot]["deploy"][-1:]:
            assert topics.get(topic) == msgtype
        obs_rec, act_rec = [], []
        for conn, _, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == "/tether/obs":
                obs_rec.append(np.asarray(msg.data))
            elif conn.topic == "/tether/action":
                act_rec.append(np.asarray(msg.data))
    assert len(obs_rec) == stats["ticks"] and len(act_rec) == stats["ticks"]
    act_rec_arr = np.array(act_rec)
    assert np.all(act_rec_arr >= contract.action_low - 1e-9) and np.all(act_rec_arr <= contract.action_high + 1e-9)
    episodes = align_bag(bag, contract, "flat")
    assert len(episodes) == 1
    ep = episodes[0]
    n = len(ep.obs)
    assert n == stats["ticks"] - 1  # every tick is a frame (the last one's observation is the final obs)
    np.testing.assert_allclose(ep.obs, np.array(obs_rec[:n]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(contract.to_physical(ep.action), act_rec_arr[:n], rtol=0, atol=1e-9)


class _PreemptedBag:
    """A BagRecorder seen through a thread that loses the CPU: chosen writes start only after a pause (what a
    loaded machine does between the recorder taking a time and the write), on the real recorder."""

    def __init__(self, bag, pauses: dict[tuple[int, str], float], recorder_ref: list) -> None:
        self.bag, self.store, self.pauses, self.ref = bag, bag.store, pauses, recorder_ref

    def write(self, topic: str, *args, **kwargs) -> None:
        pause = self.pauses.get((self.ref[0].k, topic))
        if pause:
            time.sleep(pause)
        self.bag.write(topic, *args, **kwargs)


def test_flat_recorder_pairs_survive_preemption_and_skipped_slots(tmp_path):
    """FlatRecorder into a real MCAP bag at 60 Hz (a period that is no whole number of ns) while writes are
    delayed by more than a period and the loop skips slots between ticks: the importer must give back every
    recorded (observation, command) pair, in order, one frame per tick. The observation holds what the loop
    supplies as the policy saw it: the last action, and the gait clock counted in ticks run (a skipped slot
    advances neither the loop's tick count nor the clock)."""
    from tether.contract import GAIT_PERIOD_KEY, Field, IOContract, gait_clock_field
    from tether.data.rosbag_import import align_bag
    from tether.ros.deploy import FlatRecorder
    from tether.ros.recorder import BagRecorder

    rate = 60.0
    contract = IOContract(
        robot="legged", task="velocity",
        observations=(Field.make("joint_pos", 2, "rad"), Field.make("last_action", 2, ""), gait_clock_field()),
        actions=(Field.make("joint_pos_target", 2, "rad", low=-1.0, high=1.0),), control_mode="joint_position",
        rate_hz=rate, metadata={GAIT_PERIOD_KEY: 0.1},
    )
    period = 1.0 / rate
    ref: list = []
    pauses = {(0, "/tether/episode"): 2.5 * period, (0, "/tether/obs"): 1.2 * period,
              (5, "/tether/action/stamp"): 1.5 * period}
    bag = BagRecorder(tmp_path / "flat.mcap")
    flat = FlatRecorder(_PreemptedBag(bag, pauses, ref), contract, rate)
    ref.append(flat)
    rng = np.random.default_rng(11)
    n = 24
    q = rng.normal(size=(n, 2))
    actions = rng.uniform(-1, 1, size=(n, 2))
    commands = contract.to_physical(actions)
    try:
        for k in range(n):
            flat.on_tick({"joint_pos": q[k]}, actions[k], commands[k], 0.0)
            if k in (3, 9):  # an overrun: the loop skips slots before the next tick
                time.sleep(3.2 * period)
    finally:
        bag.close()
    phase = 2 * np.pi * np.arange(n) / 6.0  # a turn every 0.1 s at 60 Hz: 6 ticks
    expected_obs = np.column_stack([q, np.vstack([np.zeros(2), actions[:-1]]),  # last_action = previous action
                                    np.sin(phase), np.cos(phase)])
    (ep,) = align_bag(bag.path, contract, "flat")
    np.testing.assert_array_equal(ep.obs, expected_obs[:n - 1])
    np.testing.assert_allclose(contract.to_physical(ep.action), commands[:n - 1], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ep.final_obs, expected_obs[n - 1])
