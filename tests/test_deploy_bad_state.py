"""Issue 11 item 4 (and issue 13 item 3): bad state never stops the loop, and the bag holds what deploy reports.

Over real DDS on loopback, a second participant injects hostile state between a served robot's good
messages while ``tether deploy`` runs in its own process and records:
- PX4 odometry with a NaN and a zero quaternion, 1e9 m/s velocities, stamps of 2^63 us and of 1 us (going
  backwards), and a byte-swapped CDR payload;
- /joint_states holding only the gripper joints, and one with NaN positions, for an arm.
Every such message is dropped and counted per reason (deploy stats and the bag's /tether/state_rejected), the
loop keeps its rate, the PX4 offboard heartbeat keeps beating, and deploy ends normally (exit 0). The message
count deploy reports equals the number of messages in the bag.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np

from tests._deploy_support import (
    DeployProcess,
    background,
    bad_odometry,
    Probe,
    ServedRobot,
    bag_messages,
    decode,
    env_contract,
    hover_actions,
    hover_contract,
    make_replay_checkpoint,
)

QUAD, ARM = 175, 176


def _check_run(stats: dict, bag, seconds: float, rate: float) -> list:
    msgs = bag_messages(bag)
    assert stats["recorded"] == len(msgs), (stats["recorded"], len(msgs))  # deploy's count is the bag's
    assert stats["stop_reason"] == "duration" and not stats["failure"]
    assert stats["ticks"] + stats["skipped_slots"] >= 0.9 * seconds * rate - 2  # the loop kept its schedule
    guard_t = np.array([m.log_ns for m in msgs if m.topic == "/tether/guard"], dtype=float) / 1e9
    assert np.diff(guard_t).max() < 0.25  # no tick stalled on a bad message
    return msgs


def test_px4_bad_odometry_is_dropped_and_counted(tmp_path):
    c = hover_contract()
    ckpt = make_replay_checkpoint(tmp_path / "hover", c, hover_actions(c))
    srv = ServedRobot("quadrotor", QUAD, "--goal", "0", "0", "1")
    probe = Probe(QUAD)
    probe.listen("/fmu/in/offboard_control_mode", "px4_msgs/msg/OffboardControlMode")
    stop = threading.Event()
    bad = bad_odometry(probe.t)

    try:
        srv.wait_ready()
        bag = tmp_path / "px4.mcap"
        dep = DeployProcess(str(ckpt), "--adapter", "px4", "--loopback", "--domain-id", str(QUAD), "--duration",
                            "4", "--record", str(bag), "--stats-json", str(tmp_path / "s.json"), "--ramp-in", "0.2")
        dep.wait_running()
        th = background(stop, 0.02, bad)
        t_start = time.monotonic()
        rc = dep.wait()
        stop.set()
        th.join(5.0)
        assert rc == 0, "\n".join(dep.lines + dep.err)
    finally:
        stop.set()
        probe.close()
        srv.stop()
    stats = json.loads((tmp_path / "s.json").read_text())
    rej = stats["state_rejected"]["/fmu/out/vehicle_odometry"]
    for reason in ("q_not_finite", "q_not_unit", "base_lin_vel_out_of_bounds", "stamp_future", "stamp_backwards"):
        assert rej.get(reason, 0) > 0 or (reason == "stamp_future" and rej.get("stamp_jump", 0) > 0), (reason, rej)
    assert sum(rej.values()) >= 150  # ~6 kinds x 3+ s at 50 Hz, each dropped
    msgs = _check_run(stats, bag, 4.0, 50.0)
    recorded = [json.loads(m.msg.data) for m in msgs if m.topic == "/tether/state_rejected"]
    assert recorded and recorded[-1] == stats["state_rejected"]
    beats = np.array([t for t, _ in decode(probe, "/fmu/in/offboard_control_mode",
                                           "px4_msgs/msg/OffboardControlMode") if t > t_start + 0.5])
    assert len(beats) > 25 and np.diff(beats).max() < 0.5  # the heartbeat never stopped
    assert "nan_hold" not in {m.msg.data for m in msgs if m.topic == "/tether/guard"}


def test_arm_joint_states_without_the_arm_are_dropped(tmp_path):
    from tether.ros.protocols.ros2_control import joint_state_message
    from tether.sim.robots import panda as P

    contract = env_contract("tether/ArmReach-v0", control_mode="joint_position")
    ckpt = make_replay_checkpoint(tmp_path / "still", contract, np.zeros((10, contract.action_size)))
    srv = ServedRobot("arm", ARM, "--goal", "0.5", "0.0", "0.3")
    probe = Probe(ARM)
    js = probe.t.publisher("/joint_states", "sensor_msgs/msg/JointState", "system_default")
    stop = threading.Event()

    def bad(k: int) -> None:
        if k % 2:
            js.publish(joint_state_message(probe.t.store, P.FINGER_JOINTS, np.zeros(2), np.zeros(2)))
        else:
            q = np.r_[np.full(7, np.nan), 0.0, 0.0]
            js.publish(joint_state_message(probe.t.store, [*P.ARM_JOINTS, *P.FINGER_JOINTS], q, np.zeros(9)))

    try:
        srv.wait_ready()
        bag = tmp_path / "arm.mcap"
        dep = DeployProcess(str(ckpt), "--adapter", "arm-ros2-control", "--loopback", "--domain-id", str(ARM),
                            "--duration", "3", "--record", str(bag), "--stats-json", str(tmp_path / "s.json"))
        dep.wait_running()
        th = background(stop, 0.02, bad)
        rc = dep.wait()
        stop.set()
        th.join(5.0)
        assert rc == 0, "\n".join(dep.lines + dep.err)
    finally:
        stop.set()
        probe.close()
        srv.stop()
    stats = json.loads((tmp_path / "s.json").read_text())
    rej = stats["state_rejected"]["/joint_states"]
    assert rej.get("missing_joints", 0) > 20 and rej.get("joint_pos_not_finite", 0) > 20, rej
    _check_run(stats, bag, 3.0, 20.0)
