"""Issue 11 items 2 and 3: the limits that bound what reaches a robot are the robot's, in its own units.

Over real DDS on loopback, with ``tether deploy`` in its own process and every command decoded off the wire:
- a checkpoint claiming +-100 rad/s body rates (no /tether/robot_info, as on every real robot; or a spoofed
  one agreeing with the checkpoint) never gets more than the vehicle's own limits onto the wire;
- ``--param max_collective_thrust_n=...`` (a rescale after the guard) is refused before anything is sent;
- the operator's ``--robot-limits`` file narrows what reaches the vehicle, in newtons and rad/s;
- an arm in ``ee_delta_pose`` under spoofed /joint_states: the joint targets after IK move no joint faster than
  its speed limit and never leave the joint range (the guard bounds the joint targets, not the policy's step).
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from tests._deploy_support import (
    DeployProcess,
    background,
    fake_px4,
    joint_state_spoofer,
    Probe,
    ServedRobot,
    decode,
    env_contract,
    hover_actions,
    hover_contract,
    make_replay_checkpoint,
    run_deploy_cli,
)

QUAD, SPOOF, ARM = 172, 174, 173
RATES = "/fmu/in/vehicle_rates_setpoint"


@pytest.fixture(scope="module")
def quad():
    srv = ServedRobot("quadrotor", QUAD, "--goal", "0", "0", "1")
    probe = Probe(QUAD)
    probe.listen(RATES, "px4_msgs/msg/VehicleRatesSetpoint")
    yield srv, probe
    probe.close()
    srv.stop()


def _rates_after(probe: Probe, t0: float) -> np.ndarray:
    msgs = [m for t, m in decode(probe, RATES, "px4_msgs/msg/VehicleRatesSetpoint") if t >= t0]
    return np.array([[m.roll, m.pitch, m.yaw, -m.thrust_body[2]] for m in msgs]).reshape(-1, 4)


def test_wide_checkpoint_without_robot_info_stays_in_the_vehicles_limits(quad, tmp_path):
    from tether.sim.robots import quadrotor as cf

    srv, probe = quad
    wide = hover_contract(body_rates=(-100.0, 100.0))
    ckpt = make_replay_checkpoint(tmp_path / "wide", wide, hover_actions(wide, rates=(1.0, -1.0, 1.0)))
    srv.wait_ready()
    t0 = time.monotonic()
    r = run_deploy_cli([str(ckpt), "--adapter", "px4", "--loopback", "--domain-id", str(QUAD), "--duration", "2.5",
                        "--robot-info-timeout", "0", "--ramp-in", "0.2", "--stats-json", str(tmp_path / "s.json")])
    assert r.returncode == 0, r.stdout + r.stderr
    got = _rates_after(probe, t0)
    assert len(got) > 50
    rates = np.abs(got[:, :3])
    assert rates.max(axis=0).tolist() <= list(cf.MAX_BODY_RATE + 1e-5), rates.max(axis=0)
    assert np.allclose(rates[-10:].max(axis=0), cf.MAX_BODY_RATE, atol=1e-4)  # the policy pushed to the limit
    assert not json.loads((tmp_path / "s.json").read_text())["robot_checked"]


def test_a_rescale_after_the_guard_is_refused(quad, tmp_path):
    srv, probe = quad
    c = hover_contract()
    ckpt = make_replay_checkpoint(tmp_path / "hover", c, hover_actions(c))
    srv.wait_ready()
    t0 = time.monotonic()
    r = run_deploy_cli([str(ckpt), "--adapter", "px4", "--loopback", "--domain-id", str(QUAD), "--duration", "1",
                        "--param", "max_collective_thrust_n=0.05"])
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1, r.stderr
    assert "max_collective_thrust_n" in err[0] and "--robot-limits" in err[0]
    time.sleep(0.3)
    assert len(_rates_after(probe, t0)) == 0


def test_the_operators_limits_file_narrows_what_reaches_the_vehicle(quad, tmp_path):
    from tether.cli import main

    srv, probe = quad
    limits = tmp_path / "vehicle.json"
    assert main(["robot", "limits", "--adapter", "px4", "--out", str(limits)]) == 0
    data = json.loads(limits.read_text())
    full = data["params"]["max_collective_thrust_n"]
    data["command"]["collective_thrust"] = [0.0, 0.45]
    for axis in "xyz":
        data["command"][f"body_rates.{axis}"] = [-2.0, 2.0]
    limits.write_text(json.dumps(data))
    c = hover_contract()
    acts = hover_actions(c, rates=(1.0, 1.0, -1.0))
    acts[:, 0] = 1.0  # full thrust asked for
    ckpt = make_replay_checkpoint(tmp_path / "greedy", c, acts)
    srv.wait_ready()
    t0 = time.monotonic()
    r = run_deploy_cli([str(ckpt), "--adapter", "px4", "--loopback", "--domain-id", str(QUAD), "--duration", "2",
                        "--robot-limits", str(limits), "--ramp-in", "0.1"])
    assert r.returncode == 0, r.stdout + r.stderr
    got = _rates_after(probe, t0)
    assert len(got) > 40
    assert np.abs(got[:, :3]).max() <= 2.0 + 1e-5
    assert got[:, 3].max() <= 0.45 / full + 1e-6  # normalised by the same file's full scale: 0.45 N at most
    assert got[-5:, 3].min() > 0.45 / full - 1e-3
    data["command"]["collective_thrust"] = [0.0, 2 * full]  # a file that contradicts itself is refused
    limits.write_text(json.dumps(data))
    r = run_deploy_cli([str(ckpt), "--adapter", "px4", "--loopback", "--domain-id", str(QUAD), "--duration", "1",
                        "--robot-limits", str(limits)])
    assert r.returncode == 2 and "exceeds the full scale" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_spoofed_robot_info_cannot_widen_the_limits(tmp_path):
    """A fake PX4 (odometry + status from a test participant) and a latched robot_info that agrees with a
    +-100 rad/s checkpoint: the contract check passes, the wire still carries the vehicle's limits only."""
    from tether.sim.robots import quadrotor as cf

    wide = hover_contract(body_rates=(-100.0, 100.0))
    ckpt = make_replay_checkpoint(tmp_path / "wide", wide, hover_actions(wide, rates=(-1.0, 1.0, -1.0)))
    probe = Probe(SPOOF)
    probe.listen(RATES, "px4_msgs/msg/VehicleRatesSetpoint")
    stop = threading.Event()
    th = background(stop, 0.02, fake_px4(probe.t, wide))
    try:
        t0 = time.monotonic()
        r = run_deploy_cli([str(ckpt), "--adapter", "px4", "--loopback", "--domain-id", str(SPOOF), "--duration",
                            "2", "--ramp-in", "0.2", "--stats-json", str(tmp_path / "s.json")])
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads((tmp_path / "s.json").read_text())["robot_checked"]  # the spoof was believed ...
        got = _rates_after(probe, t0)
        assert len(got) > 40
        assert (np.abs(got[:, :3]).max(axis=0) <= cf.MAX_BODY_RATE + 1e-5).all()  # ... and widened nothing
    finally:
        stop.set()
        th.join(5.0)
        probe.close()


def test_arm_joint_targets_after_ik_stay_within_joint_speed_under_spoofed_joint_states(tmp_path):
    from tether.sim.robots import panda as P

    contract = env_contract("tether/ArmReach-v0")  # ee_delta_pose
    assert contract.control_mode == "ee_delta_pose"
    acts = np.array([[1, 1, -1], [-1, -1, 1], [1, -1, 1], [-1, 1, -1]] * 10, dtype=float)
    ckpt = make_replay_checkpoint(tmp_path / "jerky", contract, acts)
    srv = ServedRobot("arm", ARM, "--goal", "0.5", "0.0", "0.3")
    probe = Probe(ARM)
    topic = "/forward_position_controller/commands"
    probe.listen(topic, "std_msgs/msg/Float64MultiArray")
    stop = threading.Event()
    spoof = joint_state_spoofer(probe.t)
    try:
        srv.wait_ready()
        background(stop, 0.01, spoof)  # a second /joint_states writer at 100 Hz
        dep = DeployProcess(str(ckpt), "--adapter", "arm-ros2-control", "--loopback", "--domain-id", str(ARM),
                            "--duration", "3", "--ramp-in", "0.2")
        assert dep.wait() == 0, "\n".join(dep.lines + dep.err)
    finally:
        stop.set()
        probe.close()
        srv.stop()
    q = np.array([np.asarray(m.data) for _, m in decode(probe, topic, "std_msgs/msg/Float64MultiArray")])
    assert len(q) > 30
    step = np.abs(np.diff(q, axis=0)).max(axis=0)
    assert (step <= P.VELOCITY_LIMIT / contract.rate_hz + 1e-9).all(), (step, P.VELOCITY_LIMIT / contract.rate_hz)
    assert (q >= P.Q_LOW - 1e-9).all() and (q <= P.Q_HIGH + 1e-9).all()
