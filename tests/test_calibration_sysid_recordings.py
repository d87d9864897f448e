"""System identification from recordings of the arm and the legged robot (closed loop, sim-generated with hidden
parameters, read as a dataset and as a flat rosbag2 bag), the batched replay against the one-at-a-time one, and
the CLI's bad-input rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests._sysid_support import sim_recording
from tether.cli import main


def _expert(env, obs):
    return env.expert_action()


@pytest.fixture(scope="module")
def arm_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("arm") / "ds"
    return sim_recording(out, "tether/ArmReach-v0", _expert, scales={"actuator_gain": 0.7, "joint_damping": 2.0},
                         latency_steps=1, episodes=2, steps=60, explore=0.1, control_mode="joint_position")


@pytest.fixture(scope="module")
def legged_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("legged") / "ds"
    return sim_recording(out, "tether/LeggedStand-v0", _expert, scales={"actuator_gain": 0.7}, latency_steps=1,
                         episodes=2, steps=100, explore=0.1)


def test_arm_gain_damping_latency_from_dataset(arm_dataset):
    from tether.calibration.recordings import load_trajectories
    from tether.calibration.sysid import identify

    robot, data = load_trajectories(arm_dataset)
    assert robot == "arm" and data.command_mode == "joint_position" and data.keys == ["joint_pos", "joint_vel"]
    fit = identify(robot, data, budget=150, seed=0)
    assert abs(fit.scale["actuator_gain"] / 0.7 - 1) < 0.05, fit.summary()
    assert abs(fit.scale["joint_damping"] / 2.0 - 1) < 0.10, fit.summary()
    assert fit.latency_steps == 1 and abs(fit.latency_s - 0.05) < 0.005
    assert fit.residual_after < 0.1 * fit.residual_before
    assert all(fit.identified.values())


def test_legged_gain_and_latency_from_a_flat_bag(legged_dataset, tmp_path):
    """The dataset written back as the flat bag ``tether deploy --record`` writes, read with its contract."""
    from tether.calibration.recordings import load_trajectories
    from tether.calibration.sysid import identify
    from tether.data.dataset import Dataset
    from tether.data.rosbag_export import write_flat_bag

    bag = write_flat_bag(legged_dataset, tmp_path / "stand_bag")
    contract = Dataset(legged_dataset).contract
    robot, data = load_trajectories(bag, contract=contract)
    assert robot == "legged" and data.command_mode == "actuator" and data.mode_known
    assert set(data.keys) == {"projected_gravity", "base_ang_vel", "joint_pos", "joint_vel"}
    # legged: the base height and velocity are not observed; the replay stands the robot on its feet.
    # Standing never saturates the motors, so their strength stays unidentified (and is reported so).
    fit = identify(robot, data, params=["actuator_gain", "actuator_strength", "action_latency"], budget=150, seed=0)
    assert abs(fit.scale["actuator_gain"] / 0.7 - 1) < 0.05, fit.summary()
    assert fit.latency_steps == 1
    assert fit.identified == {"actuator_gain": True, "actuator_strength": False}
    lo, hi = next(t.range for t in fit.dr_terms() if t.target == "actuator_strength")
    assert hi / lo > 3  # what the data could not rule out stays wide in the preset
    assert fit.residual_after < 0.25 * fit.residual_before


def test_batched_replay_matches_one_at_a_time():
    """The batched engine (many windows x parameter sets per mujoco.rollout call) against the plain
    Backend-interface replay, on the same open-loop log: same states to float precision."""
    from tether.calibration.replay import Replayer
    from tether.calibration.sysid import ParamSpec, Simulator, make_windows, record, trajectories_from_arrays
    from tether.sim.robots.quadrotor import HOVER_THRUST

    rng = np.random.default_rng(3)
    cmds = [HOVER_THRUST * (1.1 + rng.uniform(-0.2, 0.2, (20, 4))) for _ in range(3)]
    arrays = record("quadrotor", cmds, init=[{"base_pos": np.array([0, 0, 2.0])}] * 3)
    data = trajectories_from_arrays(arrays)
    params = [ParamSpec("body_mass"), ParamSpec("motor_time_constant")]
    rp = Replayer("quadrotor", params, "actuator")
    win, _ = make_windows(rp, data, window_steps=None, history=4)
    X = np.array([[0.1, -0.2], [-0.3, 0.4]])
    delays = np.array([13.5, 27.0])  # physics steps
    batched = rp.run(win, X, delays, data.keys)
    sim = Simulator("quadrotor", params)
    for k in range(2):
        sim.set_scales(X[k])
        for e, c in enumerate(cmds):
            ref = sim.rollout(c, {key: v[0] for key, v in data.states[e].items()}, data.keys, delays[k])
            for key in data.keys:
                np.testing.assert_allclose(batched[key][k, e], ref[key], atol=1e-9, rtol=1e-7)


def test_batched_rate_controller_equals_the_vehicles():
    from tether.sim.robots.quadrotor import RateController

    rng = np.random.default_rng(0)
    ref = [RateController() for _ in range(3)]
    batch = RateController(n=3)
    for _ in range(50):
        thrust, want, have = rng.uniform(0.1, 0.5, 3), rng.normal(0, 3, (3, 3)), rng.normal(0, 3, (3, 3))
        out = batch(thrust, want, have, 0.002)
        for i, rc in enumerate(ref):
            np.testing.assert_allclose(out[i], rc(thrust[i], want[i], have[i], 0.002), rtol=1e-12, atol=1e-15)


def test_residual_report_on_the_arm(arm_dataset, tmp_path):
    from tether.calibration.recordings import load_trajectories
    from tether.calibration.residuals import residual_report
    from tether.calibration.sysid import identify

    robot, data = load_trajectories(arm_dataset)
    fit = identify(robot, data, budget=60, seed=0)
    rep = residual_report(data, fit)
    assert rep.channels[:2] == ["joint_pos.panda_joint1", "joint_pos.panda_joint2"] and len(rep.channels) == 14
    assert np.all(rep.rms_after < rep.rms_before)
    assert rep.profile_before.shape == (14, 11) and rep.t[-1] == pytest.approx(0.5)
    figs = rep.figures()
    assert len(figs) == 2 and len(figs[0].axes) == 2  # one panel per state key
    files = rep.write(tmp_path / "rep")
    assert [f.name for f in files] == ["residual_time.png", "residual_channels.png", "residuals.md", "residuals.json"]
    assert (tmp_path / "rep" / "residual_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------- bad input: one line, exit 2
def _run(capsys, *args):
    rc = main(["calibrate", "sysid", *map(str, args)])
    err = capsys.readouterr().err
    return rc, err


def test_bad_inputs_exit_2_with_one_line(arm_dataset, legged_dataset, tmp_path, capsys):
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    from tether.data.dataset import Dataset

    cases = []
    cases.append(((tmp_path / "missing.mcap",), "does not exist"))
    empty = tmp_path / "empty_bag"
    with Writer(empty, version=9):
        pass
    contract = tmp_path / "arm_contract.json"
    contract.write_text(Dataset(arm_dataset).contract.to_json())
    cases.append(((empty, "--contract", contract), "has no /tether/action topic"))
    store = get_typestore(Stores.ROS2_JAZZY)
    obs_only = tmp_path / "obs_only"
    with Writer(obs_only, version=9) as w:
        conn = w.add_connection("/tether/obs", "std_msgs/msg/Float64MultiArray", typestore=store)
        msg = store.types["std_msgs/msg/Float64MultiArray"](
            layout=store.types["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0), data=np.zeros(20))
        w.write(conn, 1, store.serialize_cdr(msg, "std_msgs/msg/Float64MultiArray"))
    cases.append(((obs_only, "--contract", contract), "has no /tether/action topic"))
    cases.append(((empty,), "carries no IOContract; pass --contract"))
    cases.append(((arm_dataset, "--robot", "legged"), "the recording is of a arm"))
    cases.append(((arm_dataset, legged_dataset), "was recorded with another contract"))
    nocontract = tmp_path / "nocontract"
    import shutil

    shutil.copytree(arm_dataset, nocontract)
    info = json.loads((nocontract / "meta" / "info.json").read_text())
    info.pop("tether")
    (nocontract / "meta" / "info.json").write_text(json.dumps(info))
    cases.append(((nocontract,), "has no tether contract"))
    cases.append(((tmp_path,), "is neither a rosbag2 bag"))
    cases.append(((arm_dataset, "--window", "0"), "--window 0.0; expected a positive number"))
    cases.append(((arm_dataset, "--window", "0.05"), "replay window 0.05 s; expected at least 2 control periods"))
    cases.append(((arm_dataset, "--budget", "0"), "--budget 0"))
    cases.append(((arm_dataset, "--max-windows", "0"), "--max-windows 0"))
    cases.append(((arm_dataset, "--max-latency", "99"), "--max-latency 99"))
    cases.append(((arm_dataset, "--dr-width", "nan"), "--dr-width nan"))
    cases.append(((arm_dataset, "--goal", "0", "nan", "1"), "--goal"))
    cases.append(((arm_dataset, "--out", tmp_path), "is a directory; expected a file path"))
    cases.append(((arm_dataset, "--report", contract), "is a file; expected a directory"))
    cases.append(((arm_dataset, "--params", "mass"), "unknown sysid parameter 'mass'"))
    cases.append(((arm_dataset, "--params", "joint_damping:nojoint"), "unknown elements ['nojoint']"))
    cases.append(((legged_dataset, "--params", "joint_damping"), "nominal value is 0 for every element"))
    cases.append(((arm_dataset, "--window", "100"), "no replay window fits the data"))
    for args, want in cases:
        rc, err = _run(capsys, *args, "--budget", "2") if "--budget" not in map(str, args) else _run(capsys, *args)
        assert rc == 2 and want in err and err.count("\n") == 1, (args, err)
        assert not (tmp_path / "sysid.json").exists()


def test_ee_delta_recording_is_refused(tmp_path, capsys):
    ds = sim_recording(tmp_path / "ee", "tether/ArmReach-v0", _expert, scales={}, episodes=1, steps=12)
    rc, err = _run(capsys, ds)
    assert rc == 2 and "control mode 'ee_delta_pose' is not one" in err


def test_a_quadrotor_on_the_ground_is_not_replayed():
    """A crashed vehicle rests on the ground for the rest of a served episode, where contact, not the commands,
    decides its motion: those transitions leave the fit (a state never read, NaN, does not count as low)."""
    from tests._deploy_support import env_contract
    from tether.calibration.recordings import GROUND_CLEARANCE, RecordedEpisode, Recording, to_trajectories

    c = env_contract("tether/QuadrotorHover-v0")
    T = 10
    z = np.array([1.0, np.nan, 0.8, 0.5, 0.2, 0.06, 0.04, 0.013, 0.013, 0.013, 0.013])
    obs = np.zeros((T + 1, c.obs_size))
    obs[:, c.obs_slices["base_rotmat"]] = np.eye(3).ravel()
    obs[:, c.obs_slices["pos_error"]] = np.column_stack([np.zeros(T + 1), np.zeros(T + 1), 1.0 - z])
    ep = RecordedEpisode(obs, np.zeros((T, c.action_size)), np.ones(T, bool))
    data = to_trajectories(Recording(c, [ep], "test", goal=np.array([0.0, 0.0, 1.0])))
    low = z < GROUND_CLEARANCE
    np.testing.assert_array_equal(data.executed[0], ~(low[:-1] | low[1:]))
    assert data.executed[0].tolist() == [True] * 5 + [False] * 5
    assert any("under 0.05 m" in n for n in data.notes), data.notes


def test_a_legged_robot_fallen_over_is_not_replayed_and_its_odometry_is_a_state():
    """The replay stands a legged robot on its feet: transitions where it lies tipped over (a zero-shot walk
    that ended on its back) leave the fit, and the recorded odometry's body-frame velocity is a replayed state
    (the start state's velocity; a Unitree LowState has none)."""
    from tests._deploy_support import env_contract
    from tether.calibration.recordings import RecordedEpisode, Recording, to_trajectories
    from tether.sim.tasks.legged import MAX_TILT

    c = env_contract("tether/LeggedVelocity-v0")
    T = 8
    tilt = np.array([0.0, 0.1, 0.3, MAX_TILT - 0.05, MAX_TILT + 0.05, 2.0, 3.1, 0.2, 0.0])  # rad from upright
    obs = np.zeros((T + 1, c.obs_size))
    obs[:, c.obs_slices["projected_gravity"]] = np.column_stack([np.sin(tilt), np.zeros(T + 1), -np.cos(tilt)])
    vel = np.tile([0.4, 0.0, 0.0], (T + 1, 1))
    ep = RecordedEpisode(obs, np.zeros((T, c.action_size)), np.ones(T, bool), base_lin_vel_body=vel)
    data = to_trajectories(Recording(c, [ep], "test"))
    assert data.executed[0].tolist() == [True, True, True, False, False, False, False, True]
    assert any("fallen over" in n for n in data.notes), data.notes
    np.testing.assert_array_equal(data.states[0]["base_lin_vel_body"], vel)


def test_the_replay_starts_a_legged_robot_at_its_measured_body_velocity():
    """A window's start state takes the odometry's body-frame velocity into the world frame of the attitude the
    replay builds from gravity, and reads it back unchanged."""
    from tether.calibration.replay import Replayer

    rp = Replayer("legged", [], "actuator", threads=1)
    g = np.array([np.sin(0.2), 0.0, -np.cos(0.2)])  # pitched 0.2 rad
    v = np.array([0.5, -0.2, 0.05])
    s = rp.start_state({"projected_gravity": g, "base_lin_vel_body": v})
    got = rp.read(s[None], ["base_lin_vel_body", "projected_gravity", "base_lin_vel"])
    np.testing.assert_allclose(got["base_lin_vel_body"][0], v, atol=1e-9)
    np.testing.assert_allclose(got["projected_gravity"][0], g, atol=1e-9)
    assert abs(got["base_lin_vel"][0][2] - v[2]) > 0.05  # pitched: the world frame is not the body's


def test_an_arm_touching_the_object_it_pushes_is_not_replayed():
    """The replay simulates the arm alone: transitions with the hand within reach of the cube, or the cube
    moving (something pushed it), leave the fit, as the arm's motion there is partly the cube's doing."""
    from tests._deploy_support import env_contract
    from tether.calibration.recordings import RecordedEpisode, Recording, arm_joint_contract, to_trajectories
    from tether.sim.tasks.arm import CONTACT_RANGE

    c = arm_joint_contract(env_contract("tether/ArmPush-v0"))
    T = 8
    obs = np.zeros((T + 1, c.obs_size))
    cube = np.tile([0.5, 0.0, 0.025], (T + 1, 1))
    cube[7:, 0] += 0.01  # pushed between observations 6 and 7
    ee = np.tile([0.5, 0.3, 0.1], (T + 1, 1))
    ee[3] = cube[3] + [0.0, CONTACT_RANGE - 0.01, 0.0]  # a brush within reach at observation 3
    obs[:, c.obs_slices["cube_pos"]] = cube
    obs[:, c.obs_slices["ee_pos"]] = ee
    ep = RecordedEpisode(obs, np.zeros((T, c.action_size)), np.ones(T, bool))
    data = to_trajectories(Recording(c, [ep], "test"))
    assert data.executed[0].tolist() == [True, True, False, False, True, True, False, True]
    assert any("within 0.1 m of an object" in n for n in data.notes), data.notes


@pytest.mark.parametrize("skew_ticks", [-1, 0, 1])
def test_a_mission_replays_as_one_flight_when_goal_and_observation_clocks_drift_a_tick(skew_ticks):
    """Observation stamps (the control grid) and goal receive times drift apart on a loaded machine; each
    observation is rebased onto the first goal through the goal it was made against, continuous either way."""
    from tests._deploy_support import env_contract
    from tether.calibration.recordings import _on_first_goal

    c = env_contract("tether/QuadrotorWaypoint-v0")
    period = 20_000_000
    t_obs = np.arange(60) * period
    pos = np.column_stack([np.linspace(0, 1.2, 60), np.linspace(0, -0.6, 60), np.full(60, 1.0)])
    wps = np.array([[0.4, -0.2, 1.0], [1.3, -0.7, 1.2], [0.2, 0.5, 0.8]])
    made_on = np.searchsorted([20, 40], np.arange(60), side="right")  # obs 20 on: the second waypoint
    obs = np.zeros((60, c.obs_size))
    obs[:, c.obs_slices["pos_error"]] = wps[made_on] - pos
    # the goal track, heard every tick just after the observation's stamp, its moves ``skew_ticks`` off
    k = np.arange(60)
    tr = (k * period + 1, wps[np.searchsorted([20, 40], k - skew_ticks, side="right")])
    out = _on_first_goal(c, obs, t_obs, tr)
    rebuilt = wps[0] - out[:, c.obs_slices["pos_error"]]
    np.testing.assert_allclose(rebuilt, pos, atol=1e-12)
