"""Issue 11 item 1: an e-stop on a PX4 vehicle is a controlled descent, never a motor cut, under 50 % link loss.

A served PX4 (``--drop 0.5``: half of every message lost, both ways) hovers at 1 m; ``tether deploy`` flies a
hover policy, the latched e-stop is pressed, and the vehicle must come down and touch the ground slower than
1 m/s - ten times in a row (the served vehicle takes off again between runs). The served robot measures every
touchdown (the vertical speed when the body crosses its contact height) and disarms only once its land
detector sees it resting on the ground. On the wire: NAV_LAND is requested until vehicle_status acknowledges
it, and no setpoint after the e-stop asks for less than the descent's thrust floor.
"""

from __future__ import annotations

import threading
import time


from tests._deploy_support import Probe, ServedRobot, decode, hover_actions, hover_contract, make_replay_checkpoint, \
    robot_stats, wait_until

DOMAIN = 171
RUNS = 10


def test_estop_lands_softly_under_half_message_loss(tmp_path):
    from tether.ros import types as T
    from tether.ros.cyclonedds_transport import DdsTransport
    from tether.ros.deploy import DeployConfig, deploy
    from tether.ros.protocols.px4 import VEHICLE_CMD_NAV_TAKEOFF, vehicle_command
    from tether.hardware.safe_stop import THRUST_FLOOR
    from tether.sim.robots import quadrotor as cf

    server = ServedRobot("quadrotor", DOMAIN, "--goal", "0", "0", "1", "--drop", "0.5", "--seed", "5")
    probe = Probe(DOMAIN)
    contract = hover_contract()
    ckpt = make_replay_checkpoint(tmp_path / "hover", contract, hover_actions(contract))
    try:
        for topic, msgtype in (("/fmu/in/vehicle_rates_setpoint", "px4_msgs/msg/VehicleRatesSetpoint"),
                               ("/fmu/in/vehicle_command", "px4_msgs/msg/VehicleCommand")):
            probe.listen(topic, msgtype)
        probe.listen("/tether/robot_stats", "std_msgs/msg/String", "default")
        estop = probe.t.publisher("/tether/estop", "std_msgs/msg/Bool", "latched")
        server.wait_ready()
        assert wait_until(lambda: robot_stats(probe) is not None, 10.0)
        floor = THRUST_FLOOR * cf.MASS * cf.GRAVITY / (4 * cf.MAX_THRUST)  # normalised thrust
        impacts_seen = 0
        results = []
        for run in range(RUNS):
            # airborne at 1 m (the served vehicle starts there; later runs take off again)
            def airborne() -> bool:
                st = robot_stats(probe)["bridge"]
                return st["armed"] and st["altitude"] > 0.9 and st["nav_state"] == 4
            if not airborne():  # a ground station takes off, then leaves the command topic to the deploy
                gcs = DdsTransport(domain_id=DOMAIN, config="loopback")
                takeoff = gcs.publisher("/fmu/in/vehicle_command", "px4_msgs/msg/VehicleCommand", "px4_in")
                t_end = time.monotonic() + 20.0
                while not airborne() and time.monotonic() < t_end:
                    takeoff.publish(vehicle_command(gcs.store, VEHICLE_CMD_NAV_TAKEOFF, time.time_ns() // 1000,
                                                    param7=1.0))
                    time.sleep(0.3)
                gcs.close()
                time.sleep(0.5)
            assert airborne(), robot_stats(probe)
            impacts_seen = len(robot_stats(probe)["bridge"]["impacts"])
            estop.publish(T.make(probe.t.store, "std_msgs/msg/Bool", data=False))  # released before the run
            stop = threading.Event()
            box: dict = {}
            started = threading.Event()

            def log(line: str) -> None:
                if "running" in line:
                    started.set()

            def run_deploy() -> None:
                try:
                    box["r"] = deploy(DeployConfig(str(ckpt), "px4", duration_s=30.0, loopback=True, domain_id=DOMAIN,
                                                   robot_info_timeout_s=0.0, connect_timeout_s=20.0, ramp_in_s=0.3),
                                      log=log, install_signals=False, stop=stop)
                except BaseException as exc:  # reported below
                    box["e"] = exc

            worker = threading.Thread(target=run_deploy, daemon=True)
            worker.start()
            assert started.wait(60.0), box
            time.sleep(1.5)  # flying under the policy (offboard engaged through the lossy link)
            n_cmd = len(probe.raw.get("/fmu/in/vehicle_command", []))
            t_press = time.monotonic()
            estop.publish(T.make(probe.t.store, "std_msgs/msg/Bool", data=True))
            landed = wait_until(lambda: not robot_stats(probe)["bridge"]["armed"], 15.0, 0.1)
            stop.set()
            worker.join(30.0)
            assert "e" not in box, box.get("e")
            st = robot_stats(probe)["bridge"]
            new = st["impacts"][impacts_seen:] if len(st["impacts"]) > impacts_seen else st["impacts"][-1:]
            after = [m for t, m in decode(probe, "/fmu/in/vehicle_rates_setpoint", "px4_msgs/msg/VehicleRatesSetpoint")
                     if t > t_press + 0.3]
            lands = [m for _, m in decode(probe, "/fmu/in/vehicle_command", "px4_msgs/msg/VehicleCommand")[n_cmd:]
                     if m.command == 21]
            results.append((run, landed, new, len(lands), min((-m.thrust_body[2] for m in after), default=1.0)))
            assert landed, f"run {run}: the vehicle did not land and disarm ({st})"
            assert new and max(new) < 1.0, f"run {run}: touchdown at {new} m/s"
            assert lands, f"run {run}: no NAV_LAND requested"
            assert results[-1][4] >= floor - 1e-3, f"run {run}: thrust {results[-1][4]:.3f} below the floor {floor:.3f}"
            assert box["r"].stats.safe_stop, box["r"].stats.as_dict()
        assert max(max(r[2]) for r in results) < 1.0, results
        print("safe stop runs (run, landed, touchdown m/s, NAV_LAND sent, min thrust):", results)
    finally:
        probe.close()
        server.stop()
