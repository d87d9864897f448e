"""Issue 11 item 6: command-topic hygiene and isolation.

Over real DDS on loopback, against a served PX4 with ``tether deploy`` in its own process:
- an intruder writing 40 rad/s setpoints and a force-disarm on the vehicle's command topics is noticed within
  a second; deploy latches its e-stop, has the vehicle land, and exits 3 naming the topic and the intruder;
- /tether/goal from any other participant than the first one heard (or than the configured enclaves) never
  becomes the policy's goal, and a goal of x = 1000 never does either;
- the latched e-stop accepts only the configured enclaves when some are configured;
- ``--loopback`` participants (served robot and deploy) have no UDP socket that listens beyond loopback.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time

import numpy as np
import pytest

from tests._deploy_support import (
    DeployProcess,
    ServedRobot,
    bag_messages,
    hover_actions,
    hover_contract,
    make_replay_checkpoint,
)

DOMAIN = 179


@pytest.fixture(scope="module")
def quad():
    srv = ServedRobot("quadrotor", DOMAIN, "--goal", "0", "0", "1")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    c = hover_contract()
    return make_replay_checkpoint(tmp_path_factory.mktemp("ckpt") / "hover", c, hover_actions(c))


def _udp_listeners(pid: int) -> list[str]:
    out = subprocess.run(["ss", "-uapnH"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines() if f"pid={pid}," in line]


def test_intruder_on_command_topics_stops_the_deploy_safely(quad, ckpt, tmp_path):
    from tether.ros.cyclonedds_transport import DdsTransport
    from tether.ros.protocols.px4 import FORCE_DISARM_MAGIC, rates_setpoint, vehicle_command

    quad.wait_ready()
    dep = DeployProcess(str(ckpt), "--adapter", "px4", "--loopback", "--domain-id", str(DOMAIN), "--duration", "60",
                        "--stats-json", str(tmp_path / "s.json"))
    dep.wait_running()
    # isolation: every UDP socket of both --loopback processes listens on loopback only
    for pid in (dep.proc.pid, quad.proc.pid):
        socks = _udp_listeners(pid)
        assert socks and all(s.startswith("127.0.0.1:") or re.match(r"^(0\.0\.0\.0|\*)%lo:", s) for s in socks), socks
    time.sleep(1.5)
    intruder = DdsTransport(domain_id=DOMAIN, config="loopback", enclave="/intruder")
    try:
        rates = intruder.publisher("/fmu/in/vehicle_rates_setpoint", "px4_msgs/msg/VehicleRatesSetpoint", "px4_in")
        cmd = intruder.publisher("/fmu/in/vehicle_command", "px4_msgs/msg/VehicleCommand", "px4_in")
        t_in = time.monotonic()
        for k in range(150):
            rates.publish(rates_setpoint(intruder.store, 0.5, np.full(3, 40.0), 0.6, time.time_ns() // 1000))
            if k == 10:
                cmd.publish(vehicle_command(intruder.store, 400, time.time_ns() // 1000, 0.0, FORCE_DISARM_MAGIC))
            time.sleep(0.01)
            if dep.proc.poll() is not None:
                break
        rc = dep.wait(40)
        took = time.monotonic() - t_in
    finally:
        intruder.close()
        dep.kill()
    assert rc == 3, "\n".join(dep.lines + dep.err)
    assert len(dep.err) == 1 and "another participant writes the robot's command topics" in dep.err[0], dep.err
    assert "/fmu/in/vehicle_rates_setpoint" in dep.err[0] or "/fmu/in/vehicle_command" in dep.err[0]
    assert "'/intruder'" in dep.err[0]
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["stop_reason"] == "foreign_writer" and stats["safe_stop"]
    assert took < 15.0


def test_goal_from_other_participants_never_becomes_the_goal(quad, ckpt, tmp_path):
    from tether.ros import types as T
    from tether.ros.cyclonedds_transport import DdsTransport

    quad.wait_ready()
    intruder = DdsTransport(domain_id=DOMAIN, config="loopback", enclave="/intruder")
    goal = intruder.publisher("/tether/goal", "geometry_msgs/msg/PointStamped")
    P = intruder.store.types["geometry_msgs/msg/Point"]
    stop = threading.Event()

    def spoof() -> None:
        k = 0
        while not stop.is_set():
            x = 1000.0 if k % 2 else 0.8
            goal.publish(T.make(intruder.store, "geometry_msgs/msg/PointStamped", point=P(x=x, y=0.0, z=1.0)))
            k += 1
            time.sleep(0.01)

    results = {}
    try:
        for case, extra in (("first_heard", []), ("configured", ["--goal-publisher", "/"])):
            bag = tmp_path / f"{case}.mcap"
            if case == "configured":  # the intruder is already writing when this deploy starts
                th = threading.Thread(target=spoof, daemon=True)
                th.start()
            dep = DeployProcess(str(ckpt), "--adapter", "px4", "--loopback", "--domain-id", str(DOMAIN),
                                "--duration", "2.5", "--record", str(bag), "--stats-json",
                                str(tmp_path / f"{case}.json"), *extra)
            dep.wait_running()
            if case == "first_heard":
                th = threading.Thread(target=spoof, daemon=True)
                th.start()
            rc = dep.wait(60)
            stop.set()
            th.join(5.0)
            stop.clear()
            assert rc == 0, "\n".join(dep.lines + dep.err)
            stats = json.loads((tmp_path / f"{case}.json").read_text())
            msgs = bag_messages(bag, ["/tether/obs", "/fmu/out/vehicle_odometry"])
            odo = [(m.log_ns, float(m.msg.position[1])) for m in msgs if m.topic == "/fmu/out/vehicle_odometry"]
            goal_x = []  # pos_error.x + the vehicle's x (ENU x = NED y) at that time: the goal the policy saw
            for m in msgs:
                if m.topic == "/tether/obs":
                    before = [x for t, x in odo if t <= m.log_ns]
                    if before:
                        goal_x.append(m.msg.data[0] + before[-1])
            results[case] = (stats["state_rejected"].get("/tether/goal", {}), np.abs(goal_x).max())
    finally:
        stop.set()
        intruder.close()
    for case, (rejected, max_err_x) in results.items():
        assert rejected.get("foreign_publisher", 0) > 50, (case, rejected)
        assert max_err_x < 0.2, (case, max_err_x)  # the goal stayed the robot's (0, 0, 1), never 0.8 or 1000


def test_estop_accepts_only_configured_enclaves():
    from tether.hardware.estop import EStopListener
    from tether.hardware.guard import CommandGuard, GuardConfig
    from tether.ros import types as T
    from tether.ros.deploy import _accepts
    from tether.ros.loopback import LoopbackTransport
    from tether.ros.protocols.adapter import PublisherFilter
    from tether.ros.protocols.legged import legged_contract

    d = 17901
    deploy_t = LoopbackTransport(domain_id=d)
    intruder, operator = LoopbackTransport(domain_id=d, enclave="/intruder"), LoopbackTransport(domain_id=d,
                                                                                                 enclave="/operator")
    guard = CommandGuard(legged_contract(), config=GuardConfig())
    listener = EStopListener(deploy_t, guard, accept=_accepts(PublisherFilter(["/operator"], first=False)))
    try:
        intruder.publisher("/tether/estop", "std_msgs/msg/Bool", "latched").publish(
            T.make(intruder.store, "std_msgs/msg/Bool", data=True))
        assert not guard.estopped and listener.refused == 1
        operator.publisher("/tether/estop", "std_msgs/msg/Bool", "latched").publish(
            T.make(operator.store, "std_msgs/msg/Bool", data=True))
        assert guard.estopped and listener.received == 1
        open_guard = CommandGuard(legged_contract(), config=GuardConfig())
        anyone = EStopListener(deploy_t, open_guard)  # the default: a stop from anyone is honoured (latched)
        assert open_guard.estopped and anyone.received == 2
        anyone.close()
    finally:
        listener.close()
        for t in (deploy_t, intruder, operator):
            t.close()
