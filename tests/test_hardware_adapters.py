"""Adapter message mapping through the loopback transport (real CDR both ways, QoS matching applied).

The "robot side" in each test is a second LoopbackTransport on the same domain publishing what the real
robot publishes (built with the same rosbags typestore) and decoding what the adapter sends.
"""

import itertools
import threading
import time

import numpy as np
import pytest

from tether.errors import TetherError
from tether.hardware import frames
from tether.hardware.interface import RobotNotReady
from tether.hardware.loop import ControlLoop
from tether.ros.loopback import LoopbackTransport
from tether.ros.protocols.joint_level import JointLevelLegged
from tether.ros.protocols.legged import A1_JOINTS, legged_contract
from tether.ros.protocols.px4 import PX4Quadrotor, odometry_message, quad_contract, vehicle_limits
from tether.ros.protocols.ros2_control import ArmRos2Control, arm_contract, panda_chain
from tether.ros.protocols.unitree import POS_STOP_F, UnitreeLowLevel, unitree_motor_index
from tether.ros.protocols.unitree_crc import lowcmd_crc, lowstate_crc
from tether.ros.types import make
from tether.sim.robots.panda import ARM_JOINTS as PANDA_JOINTS


def panda_fk(q):
    return panda_chain().position(q)

_domains = itertools.count(9100)


@pytest.fixture
def wire():
    d = next(_domains)
    robot_side, bridge_side = LoopbackTransport(domain_id=d), LoopbackTransport(domain_id=d)
    yield robot_side, bridge_side
    bridge_side.close()
    robot_side.close()


def _inbox(transport, topic, msgtype, qos="default"):
    box = []
    transport.subscribe(topic, msgtype, box.append, qos)
    return box


def _wait(cond, timeout=3.0):
    t_end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > t_end:
            return False
        time.sleep(0.005)
    return True


# ------------------------------------------------------------------------------------------------ arm


def _joint_state(store, names, pos, vel=None):
    return make(store, "sensor_msgs/msg/JointState", name=list(names), position=pos,
                velocity=pos * 0 if vel is None else vel, effort=[])


def test_arm_maps_joint_states_by_name_and_commands_in_controller_order(wire) -> None:
    robot_side, bridge = wire
    store = robot_side.store
    js_pub = robot_side.publisher("/joint_states", "sensor_msgs/msg/JointState", "system_default")
    goal_pub = robot_side.publisher("/tether/goal", "geometry_msgs/msg/PointStamped")
    controller_order = PANDA_JOINTS[::-1]
    cmds = _inbox(robot_side, "/joint_group_position_controller/commands", "std_msgs/msg/Float64MultiArray")
    arm = ArmRos2Control(bridge, controller_joints=controller_order, connect_timeout_s=1.0)
    q = np.linspace(-0.5, 0.5, 7)
    shuffled = [6, 2, 0, 7, 4, 1, 3, 5]  # broadcaster order differs and has an extra finger joint
    names = [*PANDA_JOINTS, "panda_finger_joint1"]
    values = np.r_[q, 0.04]
    js = _joint_state(store, [names[i] for i in shuffled], values[shuffled], vel=10 * values[shuffled])
    js_pub.publish(js)  # before connect: a volatile reader misses it, like on DDS
    with pytest.raises(RobotNotReady, match="/joint_states"):
        ArmRos2Control(bridge, connect_timeout_s=0.05).connect()
    threading.Timer(0.05, js_pub.publish, args=(js,)).start()
    arm.connect()
    with pytest.raises(RobotNotReady, match="goal"):
        arm.read_state()
    goal_pub.publish(make(store, "geometry_msgs/msg/PointStamped",
                          point=store.types["geometry_msgs/msg/Point"](x=0.4, y=0.1, z=0.3)))
    obs, stamp = arm.read_state()
    np.testing.assert_allclose(obs["joint_pos"], q)
    np.testing.assert_allclose(obs["joint_vel"], 10 * q)
    np.testing.assert_allclose(obs["ee_pos"], panda_fk(q))
    np.testing.assert_allclose(obs["target_pos"], [0.4, 0.1, 0.3])
    assert abs(time.monotonic() - stamp) < 5.0
    np.testing.assert_allclose(arm.contract.flatten_obs(obs)[:7], q)
    target = np.arange(7) * 0.1
    arm.send(target)
    assert len(cmds) == 1
    np.testing.assert_allclose(cmds[0].data, target[::-1])  # the controller's joint order, by name
    arm.disconnect()
    arm.disconnect()  # idempotent


def test_deploy_ramps_in_only_where_the_first_command_could_jump(wire) -> None:
    """Cartesian steps through IK start from the measured joints and are speed-limited, so an ee_delta_pose arm
    without a gripper gets no ramp-in by default; absolute joint targets (or a gripper's width) get RAMP_IN_S; an
    operator's --ramp-in is kept either way."""
    from tether.ros.deploy import RAMP_IN_S, DeployConfig, ramp_in

    _, bridge = wire
    ee = ArmRos2Control(bridge, arm_contract(mode="ee_delta_pose", rate_hz=20.0), goal=(0.5, 0.0, 0.4))
    joints = ArmRos2Control(bridge, arm_contract(mode="joint_position"), goal=(0.5, 0.0, 0.4))
    gripper = ArmRos2Control(bridge, arm_contract(mode="ee_delta_pose", rate_hz=20.0, gripper=True),
                             goal=(0.5, 0.0, 0.4))
    assert ee.incremental_commands and not joints.incremental_commands and not gripper.incremental_commands
    auto = DeployConfig(checkpoint="x", adapter="arm-ros2-control")
    told = DeployConfig(checkpoint="x", adapter="arm-ros2-control", ramp_in_s=0.3)
    assert (ramp_in(auto, ee), ramp_in(auto, joints), ramp_in(auto, gripper)) == (0.0, RAMP_IN_S, RAMP_IN_S)
    assert ramp_in(told, ee) == ramp_in(told, joints) == 0.3


def test_arm_missing_joint_is_a_clear_error(wire) -> None:
    robot_side, bridge = wire
    pub = robot_side.publisher("/joint_states", "sensor_msgs/msg/JointState")
    arm = ArmRos2Control(bridge, goal=(0.5, 0.0, 0.4), connect_timeout_s=1.0)
    names = PANDA_JOINTS[:6]
    threading.Timer(0.05, pub.publish, args=(_joint_state(robot_side.store, names, np.zeros(6)),)).start()
    # the incomplete message is dropped (never state); connecting names why no usable state arrived
    with pytest.raises(TetherError, match="lacks joints \\['panda_joint7'\\]"):
        arm.connect()
    assert arm.state_rejections() == {"/joint_states": {"missing_joints": 1}}
    arm.disconnect()


def test_arm_trajectory_interface_and_ee_delta_mode(wire) -> None:
    robot_side, bridge = wire
    store = robot_side.store
    pub = robot_side.publisher("/joint_states", "sensor_msgs/msg/JointState")
    trajs = _inbox(robot_side, "/jtc/joint_trajectory", "trajectory_msgs/msg/JointTrajectory")
    contract = arm_contract(mode="ee_delta_pose", rate_hz=20.0)
    arm = ArmRos2Control(bridge, contract, controller="jtc", command_interface="trajectory",
                         goal=(0.5, 0.0, 0.4), connect_timeout_s=1.0)
    q0 = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
    threading.Timer(0.05, pub.publish, args=(_joint_state(store, PANDA_JOINTS, q0),)).start()
    arm.connect()
    obs, _ = arm.read_state()
    arm.send(arm.to_command(np.array([0.01, 0.0, -0.01]), obs))  # the IK runs before the guard, not in send
    assert len(trajs) == 1
    t = trajs[0]
    assert list(t.joint_names) == list(PANDA_JOINTS) and len(t.points) == 1
    assert t.points[0].time_from_start.nanosec == 50_000_000 and t.header.stamp.sec == 0
    moved = panda_fk(np.asarray(t.points[0].positions)) - obs["ee_pos"]
    np.testing.assert_allclose(moved, [0.01, 0.0, -0.01], atol=2e-3)  # one IK step does the Cartesian move
    arm.disconnect()


def _object_pose(store, pos, frame="panda_link0"):
    from tether.ros.protocols.ros2_control import object_pose_message

    msg = object_pose_message(store, np.asarray(pos, dtype=float), np.array([1.0, 0, 0, 0]))
    msg.header.frame_id = frame
    return msg


def test_arm_push_reads_the_tracked_object_in_the_base_frame(wire) -> None:
    """Push observes the cube: its pose comes from a tracker (PoseStamped in the arm's base frame). A pose in
    another frame or out of range is dropped, a tracker that never published keeps connect() from returning
    (naming its topic), and one that stopped makes the whole state stale (the older stamp)."""
    import gymnasium as gym

    import tether.sim  # noqa: F401  (registers the env ids)

    robot_side, bridge = wire
    store = robot_side.store
    env = gym.make("tether/ArmPush-v0")
    push = env.unwrapped.contract
    env.close()
    js_pub = robot_side.publisher("/joint_states", "sensor_msgs/msg/JointState")
    cube_pub = robot_side.publisher("/mocap/cube/pose", "geometry_msgs/msg/PoseStamped")
    q = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
    with pytest.raises(TetherError, match="object topics for \\['ball'\\]; expected objects among \\['cube'\\]"):
        ArmRos2Control(bridge, push, object_topics={"ball": "/b"})
    for bad in ({"cube": 5}, {"cube": "cube/pose"}, ["/a"]):
        with pytest.raises(TetherError, match="object topics"):
            ArmRos2Control(bridge, push, object_topics=bad)
    with pytest.raises(TetherError, match="object frame"):
        ArmRos2Control(bridge, push, object_frame="")
    arm = ArmRos2Control(bridge, push, goal=(0.6, 0.1, 0.025), object_topics={"cube": "/mocap/cube/pose"},
                         connect_timeout_s=0.3)
    threading.Timer(0.05, js_pub.publish, args=(_joint_state(store, PANDA_JOINTS, q),)).start()
    threading.Timer(0.05, cube_pub.publish, args=(_object_pose(store, [0.5, 0.0, 0.025], "world"),)).start()
    with pytest.raises(RobotNotReady, match="/mocap/cube/pose.*wrong_frame"):
        arm.connect()  # joint states came, but the only cube pose was in the wrong frame
    arm = ArmRos2Control(bridge, push, goal=(0.6, 0.1, 0.025), object_topics={"cube": "/mocap/cube/pose"},
                         connect_timeout_s=1.0)
    threading.Timer(0.05, js_pub.publish, args=(_joint_state(store, PANDA_JOINTS, q),)).start()
    threading.Timer(0.05, cube_pub.publish, args=(_object_pose(store, [0.5, -0.05, 0.025]),)).start()
    arm.connect()
    obs, stamp = arm.read_state()
    np.testing.assert_allclose(obs["cube_pos"], [0.5, -0.05, 0.025])
    np.testing.assert_allclose(obs["goal_pos"], [0.6, 0.1, 0.025])
    assert push.flatten_obs(obs).shape == (push.obs_size,)
    for bad in (_object_pose(store, [0.45, 0.0, 0.025], "camera"), _object_pose(store, [9.0, 0.0, 0.0]),
                _object_pose(store, [np.nan, 0.0, 0.0])):
        cube_pub.publish(bad)
    assert _wait(lambda: sum(arm.state_rejections().get("/mocap/cube/pose", {}).values()) == 3)
    np.testing.assert_allclose(arm.read_state()[0]["cube_pos"], [0.5, -0.05, 0.025])  # none became state
    time.sleep(0.2)
    js_pub.publish(_joint_state(store, PANDA_JOINTS, q))  # fresh joints, but the tracker went quiet
    assert _wait(lambda: arm.latest.get("/joint_states")[1] > stamp + 0.1)
    cube_seen = arm.latest.get("/mocap/cube/pose")[1]
    assert arm.read_state()[1] == cube_seen < stamp + 0.1  # the state is as old as the cube's last pose
    arm.disconnect()


def test_arm_loop_end_to_end_over_loopback(wire) -> None:
    robot_side, bridge = wire
    store = robot_side.store
    js_pub = robot_side.publisher("/joint_states", "sensor_msgs/msg/JointState")
    state = {"q": np.zeros(7)}

    def on_command(msg):  # a crude robot: jumps to the commanded position and reports it
        state["q"] = np.asarray(msg.data, dtype=float)
        js_pub.publish(_joint_state(store, PANDA_JOINTS, state["q"]))

    robot_side.subscribe("/joint_group_position_controller/commands", "std_msgs/msg/Float64MultiArray",
                         on_command, "command")
    contract = arm_contract(rate_hz=100.0)
    arm = ArmRos2Control(bridge, contract, goal=(0.5, 0.0, 0.4), connect_timeout_s=1.0)

    class Fixed:
        def __init__(self):
            self.contract = contract

        def act(self, obs):
            return np.full((1, 7), 0.1)

    goal_q = contract.to_physical(np.full(7, 0.1))

    def on_tick(obs, action, command, stamp):
        if np.allclose(obs["joint_pos"], goal_q, rtol=0, atol=1e-9):  # exact: a ramp tick can end 2e-6 short
            loop.stop()

    threading.Timer(0.05, js_pub.publish, args=(_joint_state(store, PANDA_JOINTS, np.zeros(7)),)).start()
    loop = ControlLoop(Fixed(), arm, on_tick=on_tick)
    stats = loop.run(max_ticks=1000)
    # ramp-in (1 s = 100 ticks) then at most a few rate-limited ticks; stale holds under load only delay it
    assert stats.stop_reason == "stop()" and stats.ticks < 1000
    np.testing.assert_allclose(state["q"], goal_q, atol=1e-9)


# ----------------------------------------------------------------------------------------------- px4


def test_px4_odometry_frames_heartbeat_and_rates(wire) -> None:
    robot_side, bridge = wire
    store = robot_side.store
    odom_pub = robot_side.publisher("/fmu/out/vehicle_odometry", "px4_msgs/msg/VehicleOdometry",
                                    "px4_out")  # best-effort + transient-local like PX4
    hb = _inbox(robot_side, "/fmu/in/offboard_control_mode", "px4_msgs/msg/OffboardControlMode", "px4_in")
    rates = _inbox(robot_side, "/fmu/in/vehicle_rates_setpoint", "px4_msgs/msg/VehicleRatesSetpoint", "px4_in")
    vcmd = _inbox(robot_side, "/fmu/in/vehicle_command", "px4_msgs/msg/VehicleCommand", "px4_in")
    status_pub = robot_side.publisher("/fmu/out/vehicle_status", "px4_msgs/msg/VehicleStatus", "px4_out")
    vehicle = vehicle_limits(max_motor_thrust_n=7.5)  # a 30 N vehicle's limits file
    contract = quad_contract(vehicle, mode="thrust_body_rates")
    quad = PX4Quadrotor(bridge, contract, limits=vehicle, goal=(1.0, 2.0, 3.0), connect_timeout_s=2.0,
                        engage_after_s=0.0, retry_s=0.2)
    pos = np.array([0.5, -1.0, 2.0])
    yaw = 0.3
    q = np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])  # ENU yaw
    vel = np.array([0.2, 0.1, -0.3])
    w = np.array([0.05, -0.1, 0.2])
    odom = odometry_message(store, pos, q, vel, w, timestamp_us=123)
    assert odom.q[0] == pytest.approx(np.cos((np.pi / 2 - yaw) / 2), abs=1e-6)  # NED yaw = 90 deg - ENU yaw
    threading.Timer(0.05, odom_pub.publish, args=(odom,)).start()
    quad.connect()
    obs, _ = quad.read_state()
    np.testing.assert_allclose(obs["pos_error"], np.array([1.0, 2.0, 3.0]) - pos, atol=1e-6)
    np.testing.assert_allclose(obs["base_rotmat"].reshape(3, 3), frames.quat_to_rotmat(q), atol=1e-6)
    np.testing.assert_allclose(obs["base_lin_vel"], vel, atol=1e-6)
    np.testing.assert_allclose(obs["base_ang_vel"], w, atol=1e-6)
    assert _wait(lambda: len(hb) >= 3), "no offboard heartbeat"
    assert all(m.body_rate and not m.direct_actuator and not m.position for m in hb)
    assert abs(int(hb[-1].timestamp) - time.time_ns() // 1000) < 5_000_000  # microseconds
    before = time.time_ns() // 1000
    quad.send(np.array([15.0, 0.5, 0.25, -0.1]))
    r = rates[-1]
    assert (r.roll, r.pitch, r.yaw) == pytest.approx((0.5, -0.25, 0.1))  # FLU -> FRD
    np.testing.assert_allclose(r.thrust_body, [0.0, 0.0, -0.5])  # 15 N of 30 N, body z down
    assert before <= int(r.timestamp) <= time.time_ns() // 1000
    quad.engage()
    assert [(m.command, m.param1, m.param2) for m in vcmd] == [(176, 1.0, 6.0), (400, 1.0, 0.0)]
    assert all(m.target_system == 1 and m.target_component == 1 and m.from_external for m in vcmd)
    status_pub.publish(make(store, "px4_msgs/msg/VehicleStatus", arming_state=2, nav_state=14,
                            nav_state_user_intention=14))
    assert quad.control_status().in_control
    # a safe stop: NAV_LAND at once, then again every retry_s (never once per tick) until vehicle_status acks it
    n_cmd = len(vcmd)
    quad.safe_stop("test")
    quad.send(np.zeros(4), damp=True)
    quad.send(np.zeros(4), damp=True)
    assert [m.command for m in vcmd[n_cmd:]] == [21]
    assert _wait(lambda: sum(m.command == 21 for m in vcmd) >= 3, timeout=2.0)
    status_pub.publish(make(store, "px4_msgs/msg/VehicleStatus", arming_state=2, nav_state=18,
                            nav_state_user_intention=18))
    time.sleep(0.1)
    acked = len(vcmd)
    time.sleep(0.5)
    assert len(vcmd) == acked and all(m.command == 21 for m in vcmd[n_cmd:])
    assert quad.safe_stop_settled()
    n = len(hb)
    quad.disconnect()
    time.sleep(0.25)
    assert len(hb) <= n + 1  # the heartbeat stops with the adapter


def test_px4_motor_thrust_and_body_frame_velocity(wire) -> None:
    robot_side, bridge = wire
    store = robot_side.store
    odom_pub = robot_side.publisher("/uav1/fmu/out/vehicle_odometry", "px4_msgs/msg/VehicleOdometry", "px4_out")
    motors = _inbox(robot_side, "/uav1/fmu/in/actuator_motors", "px4_msgs/msg/ActuatorMotors", "px4_in")
    hb = _inbox(robot_side, "/uav1/fmu/in/offboard_control_mode", "px4_msgs/msg/OffboardControlMode", "px4_in")
    vehicle = vehicle_limits(max_motor_thrust_n=8.0)
    contract = quad_contract(vehicle, mode="motor_thrust")
    quad = PX4Quadrotor(bridge, contract, limits=vehicle, namespace="uav1", goal=(0, 0, 1), motor_map=(2, 0, 3, 1),
                        connect_timeout_s=2.0)
    # body-frame FRD velocity: forward 1 m/s with PX4 identity attitude (nose north) = ENU +y
    odom = make(store, "px4_msgs/msg/VehicleOdometry", q=[1.0, 0, 0, 0], velocity_frame=3,
                velocity=[1.0, 0.0, 0.0], position=[0.0, 0.0, -1.0])
    threading.Timer(0.05, odom_pub.publish, args=(odom,)).start()
    quad.connect()
    obs, _ = quad.read_state()
    np.testing.assert_allclose(obs["base_lin_vel"], [0.0, 1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(obs["pos_error"], [0.0, 0.0, 0.0], atol=1e-6)  # at 1 m up = goal
    quad.send(np.array([2.0, 4.0, 6.0, 8.0]))
    c = np.asarray(motors[-1].control)
    np.testing.assert_allclose(c[[2, 0, 3, 1]], [0.25, 0.5, 0.75, 1.0])
    assert np.all(np.isnan(c[4:]))
    assert _wait(lambda: len(hb) >= 1) and hb[-1].direct_actuator and not hb[-1].body_rate
    quad.disconnect()
    with pytest.raises(TetherError, match="motor_map"):
        PX4Quadrotor(bridge, contract, motor_map=(0, 0, 1, 2))


# -------------------------------------------------------------------------------------------- legged


def test_unitree_motor_order_by_name() -> None:
    assert [unitree_motor_index(j) for j in A1_JOINTS] == list(range(12))
    assert unitree_motor_index("RL_thigh_joint") == 10 and unitree_motor_index("FL_calf_joint") == 5
    with pytest.raises(TetherError, match="cannot map joint 'left_knee'"):
        unitree_motor_index("left_knee")


def _lowstate(store, q, gyro, quat):
    msg = make(store, "unitree_go/msg/LowState")
    for i in range(12):
        msg.motor_state[i].q = float(q[i])
        msg.motor_state[i].dq = float(-q[i])
    msg.imu_state.gyroscope = np.asarray(gyro, dtype=np.float32)
    msg.imu_state.quaternion = np.asarray(quat, dtype=np.float32)
    msg.crc = lowstate_crc(msg)
    return msg


def test_unitree_lowstate_in_lowcmd_out(wire) -> None:
    robot_side, bridge = wire
    store = robot_side.store
    state_pub = robot_side.publisher("/lowstate", "unitree_go/msg/LowState", "sensor_data")
    twist_pub = robot_side.publisher("/cmd_vel", "geometry_msgs/msg/Twist")
    cmds = _inbox(robot_side, "/lowcmd", "unitree_go/msg/LowCmd", "default")
    order = list(A1_JOINTS[3:6]) + list(A1_JOINTS[:3]) + list(A1_JOINTS[6:])  # policy lists FL before FR
    contract = legged_contract(joints=order)
    kp = np.arange(12) + 10.0
    dog = UnitreeLowLevel(bridge, contract, kp=kp, kd=0.7, damp_kd=2.0, check_state_crc=True,
                          connect_timeout_s=2.0)
    q_motor = np.arange(12) * 0.01  # value = 0.01 * Unitree motor index
    roll = 0.2
    quat = [np.cos(roll / 2), np.sin(roll / 2), 0.0, 0.0]
    good = _lowstate(store, q_motor, [0.1, 0.2, 0.3], quat)
    bad = _lowstate(store, q_motor + 1.0, [0.0, 0.0, 0.0], quat)
    bad.crc ^= 1
    twist = _twist(store, 0.5, -0.1, 0.3)
    threading.Timer(0.05, lambda: (state_pub.publish(good), twist_pub.publish(twist))).start()
    dog.connect()  # a velocity policy: waits for the operator's first command as well as the state
    state_pub.publish(bad)  # corrupted: rejected, never becomes state
    assert dog.rejected == {"/lowstate": 1}
    obs, _ = dog.read_state()
    expected_q = np.array([unitree_motor_index(j) * 0.01 for j in order])
    np.testing.assert_allclose(obs["joint_pos"], expected_q, atol=1e-6)
    np.testing.assert_allclose(obs["joint_vel"], -expected_q, atol=1e-6)
    np.testing.assert_allclose(obs["base_ang_vel"], [0.1, 0.2, 0.3], atol=1e-6)
    np.testing.assert_allclose(obs["projected_gravity"], [0.0, -np.sin(roll), -np.cos(roll)], atol=1e-6)
    np.testing.assert_allclose(obs["command"], [0.5, -0.1, 0.3])
    np.testing.assert_allclose(dog.measured_command(obs), expected_q, atol=1e-6)

    target = np.linspace(-0.5, 0.5, 12)
    dog.send(target)
    m = cmds[-1]
    assert m.crc == lowcmd_crc(m) and list(m.head) == [0xFE, 0xEF] and m.level_flag == 0xFF
    for j, name in enumerate(order):
        mc = m.motor_cmd[unitree_motor_index(name)]
        assert mc.mode == 1 and mc.q == pytest.approx(target[j]) and mc.kp == pytest.approx(kp[j])
        assert mc.kd == pytest.approx(0.7)
    assert all(m.motor_cmd[i].mode == 0 and m.motor_cmd[i].q == pytest.approx(POS_STOP_F) for i in range(12, 20))
    dog.send(target, damp=True)
    d = cmds[-1]
    assert d.crc == lowcmd_crc(d)
    assert all(d.motor_cmd[i].kp == 0.0 and d.motor_cmd[i].kd == pytest.approx(2.0) for i in range(12))
    dog.disconnect()


def _twist(store, vx, vy, yaw_rate):
    V3 = store.types["geometry_msgs/msg/Vector3"]
    return make(store, "geometry_msgs/msg/Twist", linear=V3(x=vx, y=vy, z=0.0), angular=V3(x=0.0, y=0.0, z=yaw_rate))


@pytest.mark.parametrize("adapter", ["unitree", "joint_level"])
def test_a_velocity_policy_waits_for_its_first_command_and_a_fixed_one_or_a_stand_policy_does_not(wire, adapter):
    """Before the first Twist a velocity policy would read (0, 0, 0), a command none of its sim episodes began with:
    connect() waits for it and, when none comes, names the topic and who publishes it. A fixed command is used
    until the topic speaks; a stand policy (no commands) reads zeros; a bad fixed command is refused by name."""
    robot_side, bridge = wire
    store = robot_side.store
    twist_pub = robot_side.publisher("/cmd_vel", "geometry_msgs/msg/Twist")
    if adapter == "unitree":
        state_pub = robot_side.publisher("/lowstate", "unitree_go/msg/LowState", "sensor_data")
        make_robot, publish_state = UnitreeLowLevel, lambda: state_pub.publish(
            _lowstate(store, np.zeros(12), [0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]))
    else:
        js_pub = robot_side.publisher("/joint_states", "sensor_msgs/msg/JointState")
        imu_pub = robot_side.publisher("/imu/data", "sensor_msgs/msg/Imu", "sensor_data")
        imu = make(store, "sensor_msgs/msg/Imu", orientation=store.types["geometry_msgs/msg/Quaternion"](
            x=0.0, y=0.0, z=0.0, w=1.0))
        make_robot = JointLevelLegged
        publish_state = lambda: (js_pub.publish(_joint_state(store, A1_JOINTS, np.zeros(12))),  # noqa: E731
                                 imu_pub.publish(imu))

    def connected(contract, **kw):
        robot = make_robot(bridge, contract, connect_timeout_s=0.5, **kw)
        threading.Timer(0.05, publish_state).start()
        robot.connect()
        return robot

    with pytest.raises(RobotNotReady, match=r"/cmd_vel.*operator.*fixed `command`"):
        connected(legged_contract(task="velocity"))
    robot = connected(legged_contract(task="velocity"), command=(0.2, 0.0, -0.1))
    np.testing.assert_allclose(robot.read_state()[0]["command"], [0.2, 0.0, -0.1])
    twist_pub.publish(_twist(store, 0.4, 0.1, 0.2))
    np.testing.assert_allclose(robot.read_state()[0]["command"], [0.4, 0.1, 0.2])
    robot.disconnect()
    stand = connected(legged_contract(task="stand"))
    np.testing.assert_allclose(stand.read_state()[0]["command"], [0.0, 0.0, 0.0])
    stand.disconnect()
    for bad in ((0.2, 0.0), (2.0, 0.0, 0.0), (float("nan"), 0.0, 0.0)):
        with pytest.raises(TetherError, match="fixed velocity command.*expected 3 finite numbers"):
            make_robot(bridge, legged_contract(task="velocity"), command=bad)


def test_joint_level_legged(wire) -> None:
    robot_side, bridge = wire
    store = robot_side.store
    js_pub = robot_side.publisher("/joint_states", "sensor_msgs/msg/JointState")
    imu_pub = robot_side.publisher("/imu/data", "sensor_msgs/msg/Imu", "sensor_data")
    out = _inbox(robot_side, "/legs/commands", "std_msgs/msg/Float64MultiArray")
    ctrl_order = list(reversed(A1_JOINTS))
    leg = JointLevelLegged(bridge, controller="legs", controller_joints=ctrl_order, command_topic=None,
                           command=(0.3, 0.0, 0.0), connect_timeout_s=2.0)
    pitch = 0.1
    V3, Q = store.types["geometry_msgs/msg/Vector3"], store.types["geometry_msgs/msg/Quaternion"]
    imu = make(store, "sensor_msgs/msg/Imu", orientation=Q(x=0.0, y=np.sin(pitch / 2), z=0.0, w=np.cos(pitch / 2)),
               angular_velocity=V3(x=0.0, y=0.5, z=0.0))
    q = np.linspace(0, 1.1, 12)
    def publish_both():
        js_pub.publish(_joint_state(store, A1_JOINTS, q))
        imu_pub.publish(imu)

    threading.Timer(0.05, publish_both).start()
    leg.connect()
    obs, stamp = leg.read_state()
    np.testing.assert_allclose(obs["joint_pos"], q)
    np.testing.assert_allclose(obs["projected_gravity"], [np.sin(pitch), 0.0, -np.cos(pitch)], atol=1e-9)
    np.testing.assert_allclose(obs["base_ang_vel"], [0.0, 0.5, 0.0])
    np.testing.assert_allclose(obs["command"], [0.3, 0.0, 0.0])
    # the loop supplies the last action and the velocity task's gait clock (tick 0: phase 0)
    vec = leg.contract.flatten_obs(leg.contract.with_loop_fields(obs, np.zeros(12), 0))
    assert vec.shape == (47,) and vec[-2:].tolist() == [0.0, 1.0]
    leg.send(q)
    np.testing.assert_allclose(out[-1].data, q[::-1])
    leg.disconnect()


# ------------------------------------------------------------------------------------------ e-stop, factory


def test_latched_estop_topic_reaches_a_late_guard_and_only_reset_clears(wire) -> None:
    from tether.hardware.estop import EStopListener
    from tether.hardware.guard import CommandGuard, GuardConfig

    robot_side, bridge = wire
    store = robot_side.store
    pub = robot_side.publisher("/tether/estop", "std_msgs/msg/Bool", "latched")
    pub.publish(make(store, "std_msgs/msg/Bool", data=True))  # pressed before the bridge started
    contract = legged_contract()
    guard = CommandGuard(contract, config=GuardConfig(ramp_in_s=0.0))
    listener = EStopListener(bridge, guard)
    assert listener.received == 1 and guard.estopped
    pub.publish(make(store, "std_msgs/msg/Bool", data=False))
    assert guard.estopped
    meas = np.zeros(12) - 1.0
    out = guard.step(np.zeros(12), measured=meas, state_stamp=0.0, now=0.0)
    assert out.reason == "estop" and out.damp
    guard.reset_estop()
    assert not guard.estopped
    listener.close()


def test_make_adapter_factory(wire) -> None:
    from tether.contract import ContractError
    from tether.ros.protocols import ADAPTERS, default_contract, make_adapter

    _, bridge = wire
    for name in ADAPTERS:
        robot = make_adapter(name, bridge, default_contract(name))
        assert robot.contract == default_contract(name)
    with pytest.raises(TetherError, match="unknown adapter 'ur5'; expected one of arm-ros2-control"):
        make_adapter("ur5", bridge)
    with pytest.raises(ContractError, match="cannot serve.*control mode 'motor_thrust'"):
        make_adapter("unitree", bridge, quad_contract(mode="motor_thrust"))
    with pytest.raises(TetherError, match="bad parameters for adapter 'px4'"):
        make_adapter("px4", bridge, None, gains=3)


def test_served_robot_helpers_invert_the_adapter_mappings() -> None:
    from tether.ros.protocols.joint_level import imu_fields, imu_message
    from tether.ros.protocols.px4 import (
        actuator_motors,
        decode_actuator_motors,
        decode_rates_setpoint,
        rates_setpoint,
    )
    from tether.ros.protocols.unitree import build_lowcmd, build_lowstate, decode_lowcmd, lowstate_fields
    from tether.ros.protocols.unitree import motor_indices
    from tether.ros.types import deserialize, serialize, typestore

    store = typestore()

    def cdr(msg):
        return deserialize(store, serialize(store, msg), msg.__msgtype__)

    rng = np.random.default_rng(3)
    order = list(reversed(A1_JOINTS))
    idx = motor_indices(order)
    q, dq = rng.uniform(-1, 1, 12), rng.uniform(-1, 1, 12)
    quat = np.array([np.cos(0.2), 0.0, np.sin(0.2), 0.0])
    ls = cdr(build_lowstate(store, idx, q, dq, quat_wxyz=quat, gyro=[0.1, 0.2, 0.3], tick=7))
    assert ls.crc == lowstate_crc(ls)
    f = lowstate_fields(ls, idx)
    np.testing.assert_allclose(f["joint_pos"], q, atol=1e-6)
    np.testing.assert_allclose(f["joint_vel"], dq, atol=1e-6)
    np.testing.assert_allclose(f["projected_gravity"], frames.projected_gravity(quat), atol=1e-6)
    kp, kd = rng.uniform(10, 30, 12), rng.uniform(0.1, 1, 12)
    cmd = decode_lowcmd(cdr(build_lowcmd(store, q, idx, kp, kd)), idx)
    np.testing.assert_allclose(cmd["q"], q, atol=1e-6)
    np.testing.assert_allclose(cmd["kp"], kp, atol=1e-5)
    np.testing.assert_allclose(cmd["kd"], kd, atol=1e-6)
    assert np.all(cmd["mode"] == 1)

    thrust, rates = decode_rates_setpoint(cdr(rates_setpoint(store, 12.0, np.array([0.3, -0.2, 0.1]), 40.0, 5)), 40.0)
    assert thrust == pytest.approx(12.0, rel=1e-6)
    np.testing.assert_allclose(rates, [0.3, -0.2, 0.1], atol=1e-6)
    motors = decode_actuator_motors(cdr(actuator_motors(store, np.array([1.0, 2, 3, 4]), 8.0, (3, 2, 1, 0), 5)),
                                    8.0, (3, 2, 1, 0))
    np.testing.assert_allclose(motors, [1, 2, 3, 4], atol=1e-6)

    imu = imu_fields(cdr(imu_message(store, quat, [0.4, 0.5, 0.6])))
    np.testing.assert_allclose(imu["base_quat"], quat)
    np.testing.assert_allclose(imu["base_ang_vel"], [0.4, 0.5, 0.6])


def test_every_sim_task_contract_is_served_or_refused_by_name(wire) -> None:
    import gymnasium as gym

    import tether.sim  # noqa: F401  (registers the env ids)
    from tether.contract import ContractError
    from tether.ros.protocols import make_adapter

    _, bridge = wire
    served = [
        ("tether/ArmReach-v0", {}, "arm-ros2-control"),
        ("tether/ArmReach-v0", {"control_mode": "joint_position"}, "arm-ros2-control"),
        ("tether/QuadrotorHover-v0", {}, "px4"),
        ("tether/QuadrotorWaypoint-v0", {"control_mode": "motor_thrust"}, "px4"),
        ("tether/LeggedVelocity-v0", {}, "unitree"),
        ("tether/LeggedStand-v0", {}, "joint-level"),
    ]
    for env_id, kwargs, adapter in served:
        env = gym.make(env_id, **kwargs)
        try:
            contract = env.unwrapped.contract
        finally:
            env.close()
        robot = make_adapter(adapter, bridge, contract)
        assert robot.contract is contract
        if adapter == "unitree":
            assert robot.act_idx.tolist() == list(range(12))  # sim joint order is Unitree's motor order
    env = gym.make("tether/ArmPush-v0")
    push = env.unwrapped.contract
    env.close()
    assert make_adapter("arm-ros2-control", bridge, push).object_topics == {"cube_pos": "/tether/objects/cube/pose"}
    with pytest.raises(ContractError, match="px4 adapter cannot serve contract arm/push: control mode"):
        make_adapter("px4", bridge, push)


def test_arm_gripper_and_a1_joint_synonyms(wire) -> None:
    robot_side, bridge = wire
    store = robot_side.store
    pub = robot_side.publisher("/joint_states", "sensor_msgs/msg/JointState")
    grip = _inbox(robot_side, "/hand/commands", "std_msgs/msg/Float64MultiArray")
    arm_cmds = _inbox(robot_side, "/joint_group_position_controller/commands", "std_msgs/msg/Float64MultiArray")
    contract = arm_contract(mode="joint_position", gripper=True)
    arm = ArmRos2Control(bridge, contract, gripper_controller="hand", goal=(0.5, 0, 0.4), connect_timeout_s=1.0)
    threading.Timer(0.05, pub.publish, args=(_joint_state(store, PANDA_JOINTS, np.zeros(7)),)).start()
    arm.connect()
    arm.send(np.r_[np.full(7, 0.1), 0.06])
    np.testing.assert_allclose(arm_cmds[-1].data, np.full(7, 0.1))
    np.testing.assert_allclose(grip[-1].data, [0.03, 0.03])
    arm.disconnect()
    assert unitree_motor_index("FL_upper_joint") == unitree_motor_index("FL_thigh_joint") == 4
    assert unitree_motor_index("RR_lower_joint") == unitree_motor_index("RR_calf_joint") == 8
