"""The served robot's rules, stepped by hand over real Cyclone DDS (server and client in this process, two
participants): PX4 accepts setpoints only armed + offboard with a live heartbeat and falls back to position
hold when it stops; Unitree drops and counts LowCmds with a bad CRC; ros2_control maps trajectories by joint
name and rejects malformed commands; wire faults drop what they say; bad options are one-line errors."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from tether.errors import TetherError

DOMAIN = 45



@pytest.fixture(scope="module")
def transports():
    from tether.ros.cyclonedds_transport import DdsTransport

    server_t = DdsTransport(domain_id=DOMAIN, config="loopback")
    client_t = DdsTransport(domain_id=DOMAIN, config="loopback")
    yield server_t, client_t
    client_t.close()
    server_t.close()


def _settle(server, cond, timeout=5.0):
    """Step the server until ``cond()`` holds (messages cross DDS asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.step_once()
        if cond():
            return True
        time.sleep(0.005)
    return False


def test_px4_offboard_rules(transports, tmp_path):
    from tether.ros.protocols.px4 import offboard_mode, rates_setpoint, vehicle_command
    from tether.ros.robot_server import RobotServer
    from tether.ros.protocols.px4 import NAV_AUTO_LOITER, NAV_OFFBOARD, NAV_POSCTL

    st, ct = transports
    server = RobotServer("quadrotor", st, params={"goal": [0, 0, 1], "bridge": {"offboard_loss_s": 0.3}})
    try:
        server.open()
        b = server.bridge
        store = ct.store
        pub_mode = ct.publisher("/fmu/in/offboard_control_mode", "px4_msgs/msg/OffboardControlMode", "px4_in")
        pub_rates = ct.publisher("/fmu/in/vehicle_rates_setpoint", "px4_msgs/msg/VehicleRatesSetpoint", "px4_in")
        pub_motor = ct.publisher("/fmu/in/actuator_motors", "px4_msgs/msg/ActuatorMotors", "px4_in")
        pub_cmd = ct.publisher("/fmu/in/vehicle_command", "px4_msgs/msg/VehicleCommand", "px4_in")
        status = []
        ct.subscribe("/fmu/out/vehicle_status", "px4_msgs/msg/VehicleStatus", status.append, "px4_out")
        for p in (pub_mode, pub_rates, pub_motor, pub_cmd):
            assert p.wait_matched(1, 5.0)
        now = lambda: time.time_ns() // 1000  # noqa: E731
        tmax = 4 * b.max_thrust
        # 1. not in offboard: a setpoint is refused, the vehicle keeps holding its position
        z0 = b.sim.base_pose()[0][2]
        pub_rates.publish(rates_setpoint(store, 0.0, np.zeros(3), tmax, now()))
        assert _settle(server, lambda: b.counters.rejected.get("not_offboard", 0) == 1)
        for _ in range(25):
            server.step_once()
        assert abs(b.sim.base_pose()[0][2] - z0) < 0.05 and b.nav_state == NAV_AUTO_LOITER
        # 2. offboard without a heartbeat is refused
        pub_cmd.publish(vehicle_command(store, 176, now(), 1.0, 6.0))
        assert _settle(server, lambda: b.counters.rejected.get("offboard_without_heartbeat", 0) == 1)
        assert b.nav_state == NAV_AUTO_LOITER
        # 3. heartbeat (body rates) + offboard: zero-thrust setpoints are executed, the vehicle drops
        pub_mode.publish(offboard_mode(store, "thrust_body_rates", now()))
        assert _settle(server, lambda: b.heartbeat is not None)
        pub_cmd.publish(vehicle_command(store, 176, now(), 1.0, 6.0))
        assert _settle(server, lambda: b.nav_state == NAV_OFFBOARD)
        # a motor setpoint while the heartbeat announces body rates is refused
        from tether.ros.protocols.px4 import PX4_QUAD_X_MOTOR_MAP, actuator_motors

        pub_motor.publish(actuator_motors(store, np.zeros(4), b.max_thrust, PX4_QUAD_X_MOTOR_MAP, now()))
        assert _settle(server, lambda: b.counters.rejected.get("mode_flag_mismatch", 0) == 1)
        z1 = b.sim.base_pose()[0][2]
        for _ in range(10):
            pub_mode.publish(offboard_mode(store, "thrust_body_rates", now()))
            pub_rates.publish(rates_setpoint(store, 0.0, np.zeros(3), tmax, now()))
            time.sleep(0.01)
            server.step_once()
        assert b.counters.applied >= 5
        assert b.sim.base_pose()[0][2] < z1 - 0.02  # no thrust: it falls
        assert _settle(server, lambda: bool(status) and status[-1].nav_state == NAV_OFFBOARD)
        # 4. the heartbeat stops: after offboard_loss_s the vehicle falls back to position mode and holds
        time.sleep(0.35)
        server.step_once()
        assert b.nav_state == NAV_POSCTL and b.failsafes == 1
        applied = b.counters.applied
        pub_rates.publish(rates_setpoint(store, 0.0, np.zeros(3), tmax, now()))
        assert _settle(server, lambda: b.counters.rejected.get("not_offboard", 0) == 2)
        assert b.counters.applied == applied
        assert _settle(server, lambda: bool(status) and status[-1].nav_state == NAV_POSCTL and status[-1].failsafe)
    finally:
        server.close()


def test_unitree_bad_crc_dropped_and_counted(transports):
    from tether.ros.protocols.unitree import build_lowcmd, motor_indices
    from tether.ros.robot_server import RobotServer

    st, ct = transports
    server = RobotServer("legged", st)
    try:
        server.open()
        b = server.bridge
        idx = motor_indices(b.joints)
        pub = ct.publisher("/lowcmd", "unitree_go/msg/LowCmd", "command")
        assert pub.wait_matched(1, 5.0)
        q_good = np.asarray(b.task.neutral_action()) + 0.05
        good = build_lowcmd(ct.store, q_good, idx, np.full(12, 20.0), np.full(12, 0.5))
        bad = build_lowcmd(ct.store, q_good + 0.3, idx, np.full(12, 20.0), np.full(12, 0.5))
        bad.crc = (int(bad.crc) + 1) & 0xFFFFFFFF
        pub.publish(bad)
        assert _settle(server, lambda: b.counters.rejected.get("bad_crc", 0) == 1)
        assert b.counters.applied == 0
        pub.publish(good)
        assert _settle(server, lambda: b.counters.applied == 1)
        np.testing.assert_allclose(b.target, q_good.astype(np.float32), atol=1e-6)  # float32 on the wire
        damp = build_lowcmd(ct.store, q_good, idx, np.full(12, 20.0), np.full(12, 0.5), damp=True)
        pub.publish(damp)
        assert _settle(server, lambda: b.damped)
        assert b.counters.rejected == {"bad_crc": 1}
    finally:
        server.close()


def test_arm_commands_by_name_and_malformed_rejected(transports):
    from tether.ros import types as T
    from tether.ros.robot_server import RobotServer

    st, ct = transports
    server = RobotServer("arm", st, params={"goal": [0.5, 0.0, 0.3]})
    try:
        server.open()
        b = server.bridge
        fwd = ct.publisher("/forward_position_controller/commands", "std_msgs/msg/Float64MultiArray", "command")
        traj = ct.publisher("/joint_trajectory_controller/joint_trajectory", "trajectory_msgs/msg/JointTrajectory",
                            "command")
        goals = []
        ct.subscribe("/tether/goal", "geometry_msgs/msg/PointStamped", goals.append)
        assert fwd.wait_matched(1, 5.0) and traj.wait_matched(1, 5.0)
        fwd.publish(T.make(ct.store, "std_msgs/msg/Float64MultiArray", data=np.zeros(6)))
        assert _settle(server, lambda: b.counters.rejected.get("wrong_length", 0) == 1)
        names = list(reversed(b.arm_joints))
        target = np.linspace(-0.3, 0.3, 7)
        point = T.make(ct.store, "trajectory_msgs/msg/JointTrajectoryPoint", positions=target[::-1].copy())
        traj.publish(T.make(ct.store, "trajectory_msgs/msg/JointTrajectory", joint_names=names, points=[point]))
        assert _settle(server, lambda: b.counters.applied == 1)
        np.testing.assert_allclose(b.target, target)
        server._publish(b.extra_messages(), faulty=False)
        assert _settle(server, lambda: bool(goals))
        assert (goals[-1].point.x, goals[-1].point.y, goals[-1].point.z) == (0.5, 0.0, 0.3)
        info = json.loads(json.dumps(server.info()))
        assert info["robot"] == "arm" and set(info["contracts"]) == {"joint_position", "ee_delta_pose"}
    finally:
        server.close()


def test_fault_injection_drops_and_delays():
    from tether.ros.loopback import LoopbackTransport
    from tether.ros.robot_server import Faults, RobotServer

    t = LoopbackTransport(domain_id=4501)
    got: list[float] = []
    server = RobotServer("legged", t, faults=Faults(drop=0.2, latency_s=0.03, seed=1))
    try:
        server.open()
        for topic, msgtype in (("/lowstate", "unitree_go/msg/LowState"), ("/odom", "nav_msgs/msg/Odometry")):
            t.subscribe(topic, msgtype, lambda m: got.append(time.monotonic()), "sensor_data")
        t0 = time.monotonic()
        for _ in range(200):
            server.step_once()
        n_pub = server.stats.state_published  # each tick's LowState and odometry
        assert 240 < n_pub < 380 and server.stats.state_dropped == 400 - n_pub  # ~20 % of 400 dropped
        deadline = time.monotonic() + 2.0
        while len(got) < n_pub and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(got) == n_pub
        assert got[0] - t0 >= 0.03  # nothing arrives before the injected latency
    finally:
        server.close()
        t.close()


def test_bad_options_are_one_line_errors(tmp_path):
    from tether.ros.robot_server import Faults, load_params
    from tether.ros.loopback import LoopbackTransport
    from tether.ros.robot_server import RobotServer

    with pytest.raises(TetherError, match="drop probability"):
        Faults(drop=1.5)
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"mass": 2}))
    with pytest.raises(TetherError, match="unknown keys"):
        load_params(bad)
    with pytest.raises(TetherError, match="does not exist"):
        load_params(tmp_path / "missing.json")
    t = LoopbackTransport(domain_id=4502)
    with pytest.raises(TetherError, match="unknown robot"):
        RobotServer("tank", t)
    with pytest.raises(TetherError, match="rate factor"):
        RobotServer("legged", t, rate_factor=0.5)
    t.close()


def test_params_change_the_physics(tmp_path):
    """--params scales a parameter the policy never saw: a heavier arm link really is heavier in the sim."""
    from tether.ros.loopback import LoopbackTransport
    from tether.ros.robot_server import RobotServer, load_params

    p = tmp_path / "params.json"
    p.write_text(json.dumps({"scale": {"body_mass": 1.5}, "seed": 2}))
    t = LoopbackTransport(domain_id=4503)
    base = RobotServer("legged", t)
    heavy = RobotServer("legged", t, params=load_params(p))
    try:
        m0, m1 = base.env.sim.get_param("body_mass"), heavy.env.sim.get_param("body_mass")
        np.testing.assert_allclose(m1, 1.5 * m0)
    finally:
        base.close()
        heavy.close()
        t.close()


@pytest.mark.parametrize("scale", [{"body_mass": 1.9, "motor_time_constant": 3.5}, {"actuator_gain": 0.7},
                                   {"body_mass": 0.6, "motor_time_constant": 0.4}, {}])
def test_a_served_px4_vehicle_starts_holding_its_position_whatever_its_hidden_mass(scale):
    """The served vehicle starts airborne in position hold, as after a take-off, with the hover thrust learned.
    Before, its integrator started from zero and was capped below what a heavy vehicle needs: at mass x1.6 it sank
    to a few cm above the ground before the policy took over (the demo's probes then crashed there)."""
    from tether.ros.loopback import LoopbackTransport
    from tether.ros.protocols.px4 import NAV_AUTO_LOITER
    from tether.ros.robot_server import RobotServer

    t = LoopbackTransport(domain_id=4504)
    server = RobotServer("quadrotor", t, params={"scale": scale, "seed": 3}, backend="pybullet")
    try:
        bridge = server.bridge
        start = bridge.hold_pos.copy()
        for _ in range(100):  # 2 s of the hold at the control rate, no policy
            bridge.actuate(server.substeps)
        pos = np.asarray(bridge.sim.base_pose()[0], dtype=float)
        assert bridge.nav_state == NAV_AUTO_LOITER and bridge.armed
        assert np.all(np.abs(pos - start) < 0.05) and start[2] > 0.5, (scale, start, pos, bridge.settle_s)
        assert bridge.summary()["touchdowns"] == 0
    finally:
        server.close()
        t.close()


def test_px4_waypoint_mission_moves_the_goal_once_each_waypoint_is_reached_under_the_policy(transports):
    """A served waypoint task flies its seed's mission: the next waypoint becomes the goal when the vehicle,
    in offboard, comes within the task's reach radius of this one, and is published at once (not at the next
    ~10 Hz repeat); outside offboard nothing moves; the last waypoint stays the goal."""
    from tether.ros.protocols.px4 import offboard_mode, vehicle_command
    from tether.ros.robot_server import RobotServer

    st, ct = transports
    server = RobotServer("quadrotor", st, params={"env_id": "tether/QuadrotorWaypoint-v0", "seed": 3})
    try:
        server.open()
        b = server.bridge
        mission = np.array(b.task.waypoints[0])
        assert b.mission is not None and np.allclose(b.goal, mission[0])
        goals = []
        ct.subscribe("/tether/goal", "geometry_msgs/msg/PointStamped",
                     lambda m: goals.append((m.point.x, m.point.y, m.point.z)))

        def put_at(p):
            b.sim.reset_state(np.zeros(0), base_pos=np.asarray(p, float), base_quat=np.array([1.0, 0, 0, 0]),
                              base_lin_vel=np.zeros(3), base_ang_vel=np.zeros(3))
            server.step_once()

        # not under the policy: at the first waypoint, the goal stays
        put_at(mission[0])
        assert np.allclose(b.goal, mission[0]) and b.waypoints_reached == 0
        far = mission[0] + np.array([0.0, 0.0, 0.6])
        b.hold_pos[:] = far  # (where its hold controller keeps it until the test moves it)
        put_at(far)
        pub_mode = ct.publisher("/fmu/in/offboard_control_mode", "px4_msgs/msg/OffboardControlMode", "px4_in")
        pub_cmd = ct.publisher("/fmu/in/vehicle_command", "px4_msgs/msg/VehicleCommand", "px4_in")
        assert pub_mode.wait_matched(1, 5.0) and pub_cmd.wait_matched(1, 5.0)
        now = lambda: time.time_ns() // 1000  # noqa: E731
        pub_mode.publish(offboard_mode(ct.store, "thrust_body_rates", now()))
        assert _settle(server, lambda: b.heartbeat is not None)
        pub_cmd.publish(vehicle_command(ct.store, 176, now(), 1.0, 6.0))
        from tether.ros.protocols.px4 import NAV_OFFBOARD

        assert _settle(server, lambda: b.nav_state == NAV_OFFBOARD)
        # 0.2 m off (outside the 0.15 m radius): no move
        put_at(mission[0] + np.array([0.2, 0.0, 0.0]))
        assert b.waypoints_reached == 0
        for k in range(1, len(mission) + 1):
            pub_mode.publish(offboard_mode(ct.store, "thrust_body_rates", now()))
            put_at(mission[k - 1] + np.array([0.0, 0.1, 0.0]))  # inside the radius
            assert b.waypoints_reached == k
            want = mission[min(k, len(mission) - 1)]
            assert np.allclose(b.goal, want)
            if k < len(mission):  # published at once: heard before the server's next step
                deadline = time.monotonic() + 2.0
                while not (goals and np.allclose(goals[-1], want)) and time.monotonic() < deadline:
                    time.sleep(0.005)
                assert goals and np.allclose(goals[-1], want)
        assert b.summary()["waypoints_reached"] == len(mission) == b.summary()["waypoints"]
    finally:
        server.close()
    # a fixed goal in the params turns the mission off
    fixed = RobotServer("quadrotor", st, params={"env_id": "tether/QuadrotorWaypoint-v0", "goal": [0, 0, 1]})
    try:
        assert fixed.bridge.mission is None and np.allclose(fixed.bridge.goal, [0, 0, 1])
    finally:
        fixed.close()


def test_the_served_robot_ticks_at_its_real_stacks_rate():
    """A command waits for the served robot's next tick, so the tick is the real stack's rate where the sim's
    actuation allows: a Unitree's LowState at 500 Hz; ros2_control's controller manager at 100 Hz (the arm task's
    speed limit is per second of physics); PX4 at the control rate; an explicit --state-rate wins, and one the
    physics step cannot make is a one-line error."""
    from tether.ros.loopback import LoopbackTransport
    from tether.ros.robot_server import RobotServer

    t = LoopbackTransport(domain_id=4504)
    made = []
    try:
        for robot, rate, substeps in (("legged", 500.0, 1), ("arm", 100.0, 5), ("quadrotor", 50.0, 10)):
            s = RobotServer(robot, t)
            made.append(s)
            assert (s.state_rate_hz, s.substeps) == (rate, substeps)
            assert s.state_rate_hz == s.info()["state_rate_hz"]
        s = RobotServer("legged", t, state_rate_hz=50.0)
        made.append(s)
        assert (s.state_rate_hz, s.substeps) == (50.0, 10)
        with pytest.raises(TetherError, match="whole divisor"):
            RobotServer("arm", t, state_rate_hz=300.0)  # 500 Hz physics: not a whole number of steps
    finally:
        for s in made:
            s.close()
        t.close()
