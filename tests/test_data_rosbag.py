"""rosbag2 → dataset conversion on synthetic bags written with rosbags' own Writer: known values at known
stamps must come back exactly, mapped by joint name and aligned to the control clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from tether.contract import Field, IOContract
from tether.data.rosbag_import import BagMappingError, align_bag, convert_bags, ros2_control_mapping

TS = get_typestore(Stores.ROS2_JAZZY)
T = TS.types
JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
RATE = 20.0
T0 = 1_700_000_000 * 10**9  # ROS wall-clock stamps
DT = int(1e9 / RATE)


def arm_contract() -> IOContract:
    return IOContract(
        robot="arm", task="reach",
        observations=(
            Field.make("joint_pos", 7, "rad", components=JOINTS),
            Field.make("joint_vel", 7, "rad/s", components=JOINTS),
            Field.make("ee_pos", 3, "m", "base"),
            Field.make("target_pos", 3, "m", "base"),
        ),
        actions=(Field.make("joint_pos_target", 7, "rad", low=-3.0, high=3.0, components=JOINTS),),
        control_mode="joint_position", rate_hz=RATE,
    )


def thrust_contract(*more_obs: Field, rate_hz: float = 50.0) -> IOContract:
    """A quadrotor hover contract over flat topics: pos_error (and ``more_obs``) in, four motor thrusts out."""
    return IOContract(
        robot="quadrotor", task="hover", observations=(Field.make("pos_error", 3, "m", "world"), *more_obs),
        actions=(Field.make("motor_thrust", 4, "N", low=0.0, high=8.0),), control_mode="motor_thrust",
        rate_hz=rate_hz,
    )


def q_of(t_ns: int) -> np.ndarray:
    s = (t_ns - T0) / 1e9
    return np.array([0.1 * j + 0.5 * np.sin(s * (j + 1)) for j in range(7)])


def qd_of(t_ns: int) -> np.ndarray:
    return -q_of(t_ns) * 0.25


def cmd_of(k: int) -> np.ndarray:
    return np.array([np.cos(0.3 * k + j) for j in range(7)])


def _time(ns: int):
    return T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)


def _header(ns: int):
    return T["std_msgs/msg/Header"](stamp=_time(ns), frame_id="")


def _f64array(values: np.ndarray):
    layout = T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
    return T["std_msgs/msg/Float64MultiArray"](layout=layout, data=np.asarray(values, dtype=np.float64))


def _write(w, conn, t_ns: int, msg) -> None:
    w.write(conn, t_ns, TS.serialize_cdr(msg, msg.__msgtype__))


def flat_connections(w: Writer, *names: str) -> list:
    """Connections for the flat topics ``/tether/<name>``: stamps are builtin_interfaces/Time, the episode counter
    UInt32, everything else Float64MultiArray (what ``tether deploy`` records)."""

    def msgtype(name: str) -> str:
        if name.endswith("/stamp"):
            return "builtin_interfaces/msg/Time"
        return "std_msgs/msg/UInt32" if name == "episode" else "std_msgs/msg/Float64MultiArray"

    return [w.add_connection(f"/tether/{n}", msgtype(n), typestore=TS) for n in names]


def write_arm_bag(path: Path, *, storage=StoragePlugin.MCAP, trajectory=False, steps=40, latency_ns=3_000_000,
                  joint_names=JOINTS, controller_order=None, skip_topics=()) -> None:
    """/joint_states at 100 Hz with extra finger joints and an order that changes halfway; commands at 20 Hz
    received `latency_ns` after each control tick."""
    controller_order = controller_order or JOINTS
    with Writer(path, version=9, storage_plugin=storage) as w:
        js = w.add_connection("/joint_states", "sensor_msgs/msg/JointState", typestore=TS)
        if "cmd" in skip_topics:
            cmd = None
        elif trajectory:
            cmd = w.add_connection("/joint_trajectory_controller/joint_trajectory",
                                   "trajectory_msgs/msg/JointTrajectory", typestore=TS)
        else:
            cmd = w.add_connection("/forward_position_controller/commands", "std_msgs/msg/Float64MultiArray",
                                   typestore=TS)
        events = []
        for j in range(steps * 5 + 1):
            t = T0 + j * DT // 5
            names = list(joint_names) + ["panda_finger_joint1"]
            order = list(range(8)) if j < steps * 5 // 2 else [7, 3, 1, 0, 6, 2, 5, 4]
            q = np.append(q_of(t), 0.04)
            qd = np.append(qd_of(t), 0.0)
            msg = T["sensor_msgs/msg/JointState"](
                header=_header(t), name=[names[i] for i in order], position=q[order], velocity=qd[order],
                effort=np.zeros(8),
            )
            events.append((t + 1_000_000, js, msg, "/joint_states"))  # received 1 ms after capture
        for k in range(steps):
            t = T0 + k * DT + latency_ns
            c = cmd_of(k)
            if trajectory:
                perm = [6, 0, 5, 1, 4, 2, 3]
                point = T["trajectory_msgs/msg/JointTrajectoryPoint"](
                    positions=c[perm], velocities=np.zeros(0), accelerations=np.zeros(0), effort=np.zeros(0),
                    time_from_start=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=50_000_000))
                msg = T["trajectory_msgs/msg/JointTrajectory"](
                    header=_header(0), joint_names=[JOINTS[i] for i in perm], points=[point])
            else:
                idx = [JOINTS.index(n) for n in controller_order]
                msg = _f64array(c[idx])
            events.append((t, cmd, msg, "cmd"))
        for t, conn, msg, name in sorted(events, key=lambda e: e[0]):
            if name not in skip_topics:
                _write(w, conn, t, msg)


def fk(fields: dict[str, np.ndarray]) -> np.ndarray:
    q = fields["joint_pos"]
    return np.stack([q[:, 0] + q[:, 1], q[:, 2] * 2.0, q[:, 3] - q[:, 4]], axis=1)


def _expected_obs(contract: IOContract, k: int) -> np.ndarray:
    t = T0 + k * DT
    q = q_of(t)
    ee = np.array([q[0] + q[1], q[2] * 2.0, q[3] - q[4]])
    return np.concatenate([q, qd_of(t), ee, [0.4, 0.0, 0.3]])


@pytest.mark.parametrize("storage,trajectory", [(StoragePlugin.MCAP, False), (StoragePlugin.SQLITE3, True)])
def test_arm_ros2_control_bag_converts_exactly(tmp_path: Path, storage, trajectory) -> None:
    contract = arm_contract()
    bag = tmp_path / "arm_bag"
    controller_order = (JOINTS[3], *JOINTS[:3], *JOINTS[4:])  # controller joints param differs from contract
    write_arm_bag(bag, storage=storage, trajectory=trajectory, controller_order=controller_order)
    cmd_topic = ("/joint_trajectory_controller/joint_trajectory" if trajectory
                 else "/forward_position_controller/commands")
    mapping = ros2_control_mapping(contract, command_topic=cmd_topic,
                                   controller_joints=None if trajectory else controller_order,
                                   constants={"target_pos": [0.4, 0.0, 0.3]}, derived={"ee_pos": fk})
    ds = convert_bags([bag], contract, tmp_path / "ds", mapping)
    assert ds.num_episodes == 1
    # t0 is the first joint state (the first command, 3 ms later, is still before t1): the grid sits on the
    # captures, k = 0..40 up to the last joint state; k=40 is the final obs
    obs, act = ds.observations, ds.actions
    assert len(obs) == 40
    expected_obs = np.stack([_expected_obs(contract, k) for k in range(len(obs))])
    np.testing.assert_array_equal(obs, expected_obs)
    expected_act = contract.to_normalised(np.stack([cmd_of(k) for k in range(len(obs))]))
    np.testing.assert_array_equal(act, expected_act)
    np.testing.assert_array_equal(ds.episodes[0].final_observation, _expected_obs(contract, len(obs)))
    np.testing.assert_allclose(ds.frames["timestamp"], np.arange(len(obs)) / RATE, atol=1e-6)
    tr = ds.to_transitions()
    assert len(tr["obs"]) == len(obs) and tr["timeout"][-1] and not tr["terminal"].any()
    np.testing.assert_array_equal(tr["next_obs"][:-1], obs[1:])


def test_flat_bag_with_parallel_stamps_and_reward(tmp_path: Path) -> None:
    contract = thrust_contract(Field.make("base_lin_vel", 3, "m/s", "world"))
    rng = np.random.default_rng(3)
    n = 30
    obs = rng.normal(size=(n, 6))
    thrust = rng.uniform(0, 8, size=(n, 4))
    reward = rng.normal(size=n)
    dt = 20_000_000
    bag = tmp_path / "flat"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        co, cs, ca, cr = flat_connections(w, "obs", "obs/stamp", "action", "reward")
        for k in range(n):
            stamp = T0 + k * dt
            recv = stamp + 7_000_000  # the bag received obs late; the parallel stamp is the capture time
            _write(w, co, recv, _f64array(obs[k]))
            _write(w, cs, recv, _time(stamp))
            _write(w, ca, stamp + 2_000_000, _f64array(thrust[k]))
            _write(w, cr, stamp + 2_000_000, _f64array([reward[k]]))
    ds = convert_bags(bag, contract, tmp_path / "ds")
    m = len(ds)
    assert m == n - 1  # grid starts at obs 0 (its action follows 2 ms later); last obs is the final observation
    np.testing.assert_array_equal(ds.observations, obs[:m])
    np.testing.assert_array_equal(ds.actions, contract.to_normalised(thrust[:m]))
    np.testing.assert_array_equal(ds.frames["next.reward"], reward[:m].astype(np.float32))
    assert ds.info["tether"]["metadata"]["source"] == "rosbag2"


def test_missing_topics_and_joint_names_give_one_clear_error(tmp_path: Path) -> None:
    contract = arm_contract()
    bag = tmp_path / "nocmd"
    write_arm_bag(bag, skip_topics=("cmd",), steps=5)
    mapping = ros2_control_mapping(contract, constants={"target_pos": [0, 0, 0]}, derived={"ee_pos": fk})
    with pytest.raises(BagMappingError) as err:
        align_bag(bag, contract, mapping)
    msg = str(err.value)
    assert "/forward_position_controller/commands" in msg and "joint_pos_target" in msg and "/joint_states" in msg

    # uncovered contract fields are named too
    with pytest.raises(BagMappingError, match=r"\['ee_pos', 'target_pos'\]"):
        align_bag(bag, contract, ros2_control_mapping(contract))

    renamed = tuple(n.replace("panda_", "fr3_") for n in JOINTS)
    bag2 = tmp_path / "renamed"
    write_arm_bag(bag2, joint_names=renamed, steps=5)
    with pytest.raises(BagMappingError) as err:
        align_bag(bag2, contract, mapping)
    msg = str(err.value)
    assert "panda_joint1" in msg and "fr3_joint1" in msg and "joint_pos" in msg and "joint_vel" in msg

    with pytest.raises(BagMappingError, match=r"bag lacks topics /tether/action .*/tether/obs \(for the whole obs"):
        align_bag(bag2, contract, "flat")


def test_stale_gap_splits_episodes(tmp_path: Path) -> None:
    """A 1 s dropout (robot restarted) must not be bridged by holding stale samples: it splits the episode."""
    contract = thrust_contract()
    dt = 20_000_000
    ticks = [k for k in range(60) if not 20 <= k < 70] + list(range(70, 100))
    bag = tmp_path / "gap"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.SQLITE3) as w:
        co, ca = flat_connections(w, "obs", "action")
        for k in ticks:
            _write(w, co, T0 + k * dt, _f64array([k, 0, 0]))
            _write(w, ca, T0 + k * dt, _f64array([4.0, 4.0, 4.0, 4.0]))
    eps = align_bag(bag, contract, "flat")
    # up to 5 periods of holding is tolerated (dropped messages), beyond that the stretch ends
    assert [len(e.obs) for e in eps] == [24, 29]
    np.testing.assert_array_equal(eps[0].obs[:, 0], np.concatenate([np.arange(20), [19] * 4]))
    assert eps[0].final_obs[0] == 19 and eps[1].obs[0, 0] == 70 and eps[1].final_obs[0] == 99
    np.testing.assert_array_equal(eps[1].action, np.zeros((29, 4)))  # 4 N is mid-range → 0 normalised
    # without the staleness check the gap would be bridged into one long episode of held values
    assert [len(e.obs) for e in align_bag(bag, contract, "flat", max_stale_periods=None)] == [99]


def test_flat_bag_late_stream_jitter_and_rounding_keep_pairs_one_to_one(tmp_path: Path) -> None:
    """What a loaded machine does to a recording: the bag's log times jitter and jump over skipped slots, the
    episode counter (no stamp topic, so stamped by log time) starts 1.5 periods late because its writer was
    preempted, and the control-clock stamps are rounded to whole ns the other way from the importer's grid
    (60 Hz: 16 666 666.67 ns). Every converted frame must still be one recorded (observation, command) pair."""
    rate = 60.0
    contract = thrust_contract(rate_hz=rate)
    rng = np.random.default_rng(7)
    n = 40
    obs = np.column_stack([np.arange(n, dtype=float), rng.normal(size=(n, 2))])
    thrust = rng.uniform(0, 8, size=(n, 4))
    period = 1e9 / rate
    stamp = [T0 + int(np.ceil(k * period)) for k in range(n)]  # up to 1 ns after the importer's grid point
    log = T0 + np.cumsum(rng.uniform(0.3, 1.7, size=n) * period).astype(np.int64)  # jittered wall clock
    log[12:] += int(3 * period)  # an overrun: three slots skipped, no tick recorded for them
    bag = tmp_path / "loaded"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        ce, co, cs, ca, cas = flat_connections(w, "episode", "obs", "obs/stamp", "action", "action/stamp")
        late = T0 + int(1.5 * period)
        for k in range(n):
            t = int(log[k])
            if k >= 2:  # the preempted episode writer's first message lands after tick 1 was logged
                _write(w, ce, t, T["std_msgs/msg/UInt32"](data=0))
            elif k == 1:
                _write(w, ce, max(t, late), T["std_msgs/msg/UInt32"](data=0))
            _write(w, co, t, _f64array(obs[k]))
            _write(w, cs, t, _time(stamp[k]))
            _write(w, ca, t + 1, _f64array(thrust[k]))
            _write(w, cas, t + 1, _time(stamp[k] + int(period) // 2))
    eps = align_bag(bag, contract, "flat")
    assert len(eps) == 1
    ep = eps[0]
    first = int(ep.obs[0, 0])  # the first observation at or after the episode counter's first (late) sample
    assert first == 2
    np.testing.assert_array_equal(ep.obs, obs[first:n - 1])  # every tick after it, none doubled or dropped
    np.testing.assert_allclose(contract.to_physical(ep.action), thrust[first:n - 1], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ep.final_obs, obs[n - 1])
    np.testing.assert_array_equal(ep.stamps_ns - stamp[first], np.round(np.arange(len(ep.obs)) * period))


@pytest.mark.parametrize("mapping,text", [
    ([1], "is a JSON array; expected an object"),
    ({"observations": [1]}, "observations is a JSON array; expected an object"),
    ({"observations": {"joint_pos": "x"}}, "observations.joint_pos is a JSON string; expected an object"),
    ({"observations": {"joint_pos": {"topic": "/joint_states", "start": "x"}}}, "start is 'x'; expected"),
    ({"observations": {"joint_pos": {"topic": "/joint_states", "attr": "__class__.__init__"}}},
     "attr is '__class__.__init__'; expected a message field path"),
    ({"constants": {"target_pos": 5}}, "constants.target_pos is a JSON int; expected an array"),
    ({"topics": {}}, "unknown keys ['topics']"),
    ("[" * 100_000 + "]" * 100_000, "nests deeper than 64 levels"),
])
def test_malformed_mapping_files_are_one_line(tmp_path: Path, capsys, mapping, text) -> None:
    """A --mapping JSON file is data: typed before use, and its attribute paths reach message fields only."""
    import json

    from tether.cli import main

    bag = tmp_path / "bag"
    write_arm_bag(bag, steps=5)
    contract = tmp_path / "contract.json"
    contract.write_text(arm_contract().to_json())
    path = tmp_path / "mapping.json"
    path.write_text(mapping if isinstance(mapping, str) else json.dumps(mapping))
    rc = main(["data", "convert", str(bag), "--contract", str(contract), "--mapping", str(path),
               "--out", str(tmp_path / "out")])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err) == 1 and text in err[0] and "expected" in err[0], err
    assert not (tmp_path / "out").exists()
