"""System identification from what ``tether deploy --record`` writes, against a served robot that hides its
parameters: a PyBullet quadrotor behind PX4's topics over real Cyclone DDS, heavier/laggier (and lighter/faster)
than the MuJoCo model it is identified in, flown by the hover expert with a bounded exploration signal.

Each case records ~12 s (the first ~1 s before offboard engages, which the crop must drop), then fits mass, motor
lag and latency from the bag: both hidden scales within 10 %. 12 s, not 8: on a loaded machine the controller
misses a state in five and both loops jitter by milliseconds, and 8 s left 6 windows to fit. The same bag also goes
through the CLI (with the residual report) and through ``tether data convert`` into a dataset that sysid reads
directly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests._deploy_support import env_contract
from tests._sysid_support import (
    SERVED_HOVER_CASES, QuadrotorExpertPolicy, record_served_deploy, served_hover_explorer,
)

# Each xdist worker records on its own domains (two served robots or two deployers on one domain hear each
# other): cheap insurance should this module's tests ever be split across workers.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
DOMAINS = {"heavy": 61 + 2 * _WORKER, "light": 62 + 2 * _WORKER}
# residual after / before above which a bag is one the replay cannot explain (``_judgeable``), per case. Measured
# on 2026-12-06 with the recordings as ``SERVED_HOVER_CASES`` sets them up (the expert's integrator holding 1 m):
# - heavy: 7 of 10 bags at 0.03-0.11 with the lag within 3.4 %; 0.21-0.38 with it 4-21 % low (the last two of those
#   recorded while the deploy loop ran 55-64 ms behind, against 32-40 ms). Before the integrator the nominal expert
#   flew this vehicle at 0.2-0.4 m: 18 bags at 0.12-0.33, the lag low on every one fitted (-0.8 to -10.6 %), down to
#   4 windows of flight (a touchdown), and a line at 0.185 that still let -7.7 % through.
# - light: 7 of 9 bags at 0.031-0.081 with the lag within 3.2 %; two at 0.14 and 0.23 (+6.5 %, +18.3 %). At
#   exploration 0.2 (before): 0.017-0.059 within 3 % and 0.105-0.36 with the lag 6-57 % low (one in CI at 0.127
#   fitting x0.623 for x0.7).
POOR_FIT = {"heavy": 0.15, "light": 0.10}
# the most times a case is recorded again (``_judgeable``): 3 of 10 heavy bags were above their line, so five
# recordings leave under 1 % of runs without a bag to judge the fit on
RERECORDS = 4
# a flight long enough to fit: replay windows, and the most of its steps the crop may drop (the ~1 s before offboard
# engages, plus the odd tick the loops' phase made unreadable)
MIN_WINDOWS, MAX_CROPPED = 6, 0.3


@pytest.fixture(scope="module")
def contract_file(tmp_path_factory):
    c = env_contract("tether/QuadrotorHover-v0")
    path = tmp_path_factory.mktemp("contract") / "contract.json"
    path.write_text(c.to_json())
    return path


class _Bags(dict):
    """Bags recorded on first use (one served robot at a time), every case not yet recorded at once: each
    recording waits for the other worker's running test to end (``quiet_machine``), and this module runs first
    (``conftest.SCHEDULE``) so that the first wait is behind a short test; a second case asked for later could wait
    behind a five-minute one."""

    def __init__(self, factory):
        super().__init__()
        self.factory = factory

    def record(self, case):
        scales, latency, _ = SERVED_HOVER_CASES[case]
        policy = served_hover_explorer(case, env_contract("tether/QuadrotorHover-v0"))
        with pytest.MonkeyPatch.context() as mp:
            self[case] = record_served_deploy(self.factory.mktemp(case), robot="quadrotor", adapter="px4",
                                              domain=DOMAINS[case], policy=policy, params={"scale": scales},
                                              latency_ms=latency, seconds=12.0, goal=(0.0, 0.0, 1.0), monkeypatch=mp)

    def __missing__(self, case):
        for c in [case, *(c for c in SERVED_HOVER_CASES if c != case and c not in self)]:
            self.record(c)
        return self[case]


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    return _Bags(tmp_path_factory)


def _judgeable(case: str, data, fit) -> bool:
    """A bag the claims are about, else the case is recorded again: the replay explains it (the residual ratio
    under the case's line) and the vehicle flew through most of it.

    Why a bag can fail either: it was recorded while the machine could not keep up (in CI a second test worker
    runs beside the served robot and the deploy loop). The fit says so through its residual, which is what a user
    sees (a light bag fitted x0.885 for a lag of x0.7 with a ratio of 0.31; a clean-clone run saw two poor heavy
    bags in a row, ratio 0.19 and lag x1.90 for x1.5). And a loop that misses many states can leave too little
    flight: before the expert had its integrator it flew the heavy vehicle at 0.2-0.4 m, and a bag whose loop never
    read 164 of its 553 states (the guard damped 24 commands) touched down and left 4 windows (2026-12-06). And a
    loaded loop can trip PX4's offboard failsafe: in a clean clone (2026-12-07, nothing else running) a light vehicle
    left offboard for 2 ticks mid-flight and for good 2.2 s before the end (then on the ground). The crop dropped
    those steps, as it should, but the claims below are about a flight flown in offboard to its end."""
    flew = data.n_steps - data.n_executed < MAX_CROPPED * data.n_steps and fit.windows >= MIN_WINDOWS
    flew = flew and all(e[-1] for e in data.executed)  # still in offboard at its last tick
    return flew and fit.residual_after <= POOR_FIT[case] * fit.residual_before


@pytest.mark.parametrize("case", list(SERVED_HOVER_CASES))
def test_sysid_on_deploy_bag_recovers_hidden_mass_and_motor_lag(case, bags, contract_file):
    from tether.calibration.recordings import load_trajectories
    from tether.calibration.sysid import identify

    hidden, latency_ms, _ = SERVED_HOVER_CASES[case]
    tried = []
    for attempt in range(1 + RERECORDS):
        if attempt:
            del bags[case]
        robot, data = load_trajectories(bags[case], contract=contract_file)
        fit = identify(robot, data, budget=200, seed=0)
        if _judgeable(case, data, fit):
            break
        tried.append(f"ratio {fit.residual_after / fit.residual_before:.3f}, {fit.windows} windows, "
                     f"in offboard at the end: {all(e[-1] for e in data.executed)}")
    else:  # say so, rather than fail on the scales of a flight the replay cannot explain
        pytest.fail(f"{case}: none of {len(tried)} recordings flew long enough, in offboard to the end, with a "
                    f"residual ratio under {POOR_FIT[case]} ({'; '.join(tried)}): was the machine busy?")
    assert robot == "quadrotor" and data.command_mode == "thrust_body_rates"
    # replayed on the vehicle's own tick times; the steps before offboard engaged (auto-engage after 1 s) are
    # cropped, and only those (plus the odd tick the loops' phase made unreadable)
    assert data.timing is not None and any("vehicle's own clock" in n for n in data.notes)
    dropped = data.n_steps - data.n_executed
    assert 25 < dropped < MAX_CROPPED * data.n_steps, (dropped, data.n_steps)
    assert all(not e[0] and e[-1] for e in data.executed)
    assert any("offboard" in n for n in data.notes)

    for name, truth in hidden.items():
        assert abs(fit.scale[name] / truth - 1) < 0.10, (name, fit.scale[name], truth, fit.summary())
        assert fit.identified[name]
    # the loop's latency (a state -> its command in force): two wire delays plus the phase between the robot's
    # tick and the deploy loop's (< one period each way)
    assert 2 * latency_ms - 2 < 1e3 * fit.loop_latency_s < 2 * latency_ms + 2e3 * fit.control_period, fit.summary()
    assert fit.residual_after < 0.3 * fit.residual_before  # timing on a loaded machine leaves some error
    assert fit.windows >= MIN_WINDOWS and fit.simulations > fit.evaluations
    # the DR preset is centred on the fit and its range covers the truth
    terms = {t["target"]: t for t in fit.dr_preset()["terms"]}
    for name, truth in hidden.items():
        lo, hi = terms[name]["range"]
        assert lo < truth < hi and (lo + hi) / 2 == pytest.approx(fit.scale[name]), fit.summary()


def test_cli_on_the_bag_writes_preset_and_residual_report(bags, contract_file, tmp_path, capsys):
    from matplotlib.image import imread

    from tether.cli import main

    bag = bags["heavy"]
    out, preset, rep = tmp_path / "sysid.json", tmp_path / "dr.json", tmp_path / "report"
    rc = main(["calibrate", "sysid", str(bag), "--contract", str(contract_file), "--budget", "80",
               "--out", str(out), "--dr-preset", str(preset), "--report", str(rep)])
    text = capsys.readouterr()
    assert rc == 0, text.err
    report = json.loads(out.read_text())
    assert report["robot"] == "quadrotor" and report["window_s"] == 0.5
    assert report["residual_after"] < 0.35 * report["residual_before"]
    assert {t["target"] for t in json.loads(preset.read_text())["terms"]} == {
        "body_mass", "motor_time_constant", "action_latency"}
    # residual report: a figure per view, a table row per state channel, every channel improved
    for png in ("residual_time.png", "residual_channels.png"):
        img = imread(rep / png)
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 400
    rows = json.loads((rep / "residuals.json").read_text())["rows"]
    assert [r["channel"] for r in rows][:3] == ["base_pos.x", "base_pos.y", "base_pos.z"] and len(rows) == 13
    assert all(r["rms_after"] < r["rms_before"] for r in rows), rows
    z = next(r for r in rows if r["channel"] == "base_pos.z")
    assert z["rms_before"] > 10 * z["rms_after"]  # the nominal (lighter) model climbs away within 0.5 s
    md = (rep / "residuals.md").read_text()
    assert md.count("\n| base_") == 13 and "| channel | unit | nominal | identified | ratio |" in md
    assert "| base_pos.z | m |" in text.out


def _setpoints_as(path, keep):
    """``recordings._read_side_topics`` that reads the bag at ``path`` with its PX4 setpoints replaced by
    ``keep(setpoints, number of commands)``; other bags as they are."""
    from tether.bag_names import resolve_bag
    from tether.calibration import recordings
    from tether.data.rosbag_import import FLAT_ACTION_TOPIC

    real, path = recordings._read_side_topics, resolve_bag(path)

    def read(where, want):
        side = real(where, want)
        sp = next((t for t in side if t.endswith("_setpoint")), None)
        if Path(where) == path and sp and FLAT_ACTION_TOPIC in side:
            side[sp] = keep(side[sp], len(side[FLAT_ACTION_TOPIC]))
        return side

    return read


def test_a_bag_whose_last_setpoint_was_not_recorded_keeps_the_robots_tick_times(bags, contract_file, tmp_path,
                                                                               monkeypatch):
    """The recorder can stop before the last setpoint comes back from the wire. Such a bag is still replayed on
    the vehicle's own clock, without that command; a setpoint lost mid-way (which would pair every later command
    with the wrong send time) falls back to the control grid. And where some recordings of a run have the tick
    times and others do not, identification sets the others aside and goes on (it used to refuse the whole run:
    1 of 7 bags in two of seven served-quadrotor runs on 2026-12-06)."""
    import shutil

    from tether.bag_names import resolve_bag
    from tether.calibration import recordings
    from tether.calibration.recordings import load_recording, load_trajectories
    from tether.calibration.sysid import identify

    bag = bags["heavy"]
    monkeypatch.setattr(recordings, "_read_side_topics", _setpoints_as(bag, lambda s, n: s[:n - 1]))
    rec = load_recording(bag, contract=contract_file)
    assert rec.episodes[0].command_times is not None
    assert any("the last 1 command(s) not in the bag" in n for n in rec.notes), rec.notes

    def lost_mid_way(s, n):
        return (s[:n // 2] + s[n // 2 + 1:])[:n - 1]

    other = tmp_path / "other"
    shutil.copytree(resolve_bag(bag), other)
    monkeypatch.setattr(recordings, "_read_side_topics", _setpoints_as(other, lost_mid_way))
    rec = load_recording(other, contract=contract_file)
    assert rec.episodes[0].command_times is None
    assert any("tick times not used" in n and "lost before the end" in n for n in rec.notes), rec.notes
    robot, data = load_trajectories([bag, other], contract=contract_file)
    assert [t is None for t in data.timing] == [False, True]
    fit = identify(robot, data, budget=40, seed=0)
    assert any("1 of 2 episodes without the robot's own tick times set aside" in n for n in fit.notes), fit.notes
    assert fit.residual_after < fit.residual_before


def test_sysid_reads_the_dataset_converted_from_the_bag(bags, contract_file, tmp_path, capsys):
    """``tether data convert`` keeps the commands sent before offboard (it cannot know); sysid cuts the windows
    the fit cannot explain and still finds the mass."""
    from tether.calibration.recordings import load_trajectories
    from tether.calibration.sysid import identify
    from tether.cli import main

    ds = tmp_path / "ds"
    assert main(["data", "convert", str(bags["heavy"]), "--contract", str(contract_file), "--out", str(ds)]) == 0
    capsys.readouterr()
    robot, data = load_trajectories(ds, goal=(0.0, 0.0, 1.0))
    # nothing in a dataset says what the robot executed: every step is taken as executed, except those with the
    # vehicle on the ground (the states say that: a PX4 vehicle is often handed over before it has lifted off)
    import numpy as np

    low = [s["base_pos"][:, 2] < 0.05 for s in data.states]
    flying = sum(int(np.sum(~(z[:-1] | z[1:]))) for z in low)
    assert data.n_executed == flying and not data.mode_known
    fit = identify(robot, data, budget=150, seed=0)
    assert abs(fit.scale["body_mass"] / 1.3 - 1) < 0.10, fit.summary()
    assert any("cut from the data" in n for n in fit.notes), fit.notes
    assert fit.residual_after < 0.4 * fit.residual_before  # on the controller's grid: the loops' phase shows


def test_a_waypoint_mission_bag_replays_as_one_flight_and_scores_by_its_goal_moves(tmp_path):
    """The served waypoint task moves the goal as each waypoint is reached. Read back from the deploy bag,
    positions (goal - error, each error against the goal current when it was made) run on without the metre-long
    jumps a single goal would give them, and the recorded flight's score counts one waypoint per goal move seen
    on /tether/goal."""
    import numpy as np

    from tether.calibration.recordings import load_recording, to_trajectories
    from tether.data.topics import GOAL_TOPIC
    from tether.data.robot_runs import controlled_run
    from tether.ros.recorder import read_bag
    from tether.sim.tasks.quadrotor import waypoints_reached
    from tether.sim.tasks.scoring import task_for

    contract = env_contract("tether/QuadrotorWaypoint-v0")
    with pytest.MonkeyPatch.context() as mp:
        bag = record_served_deploy(tmp_path, robot="quadrotor", adapter="px4", domain=65 + _WORKER,
                                   policy=QuadrotorExpertPolicy(contract), latency_ms=10.0, seconds=9.0,
                                   params={"env_id": "tether/QuadrotorWaypoint-v0", "seed": 5}, monkeypatch=mp)
    goals = np.array([[m.msg.point.x, m.msg.point.y, m.msg.point.z] for m in read_bag(bag, topics=[GOAL_TOPIC])])
    moves = int(np.sum(np.any(np.diff(goals, axis=0) != 0, axis=1)))
    assert moves >= 2, goals  # the expert reached at least two waypoints in the time
    rec = load_recording(bag, contract=contract)
    assert any(f"moved {moves} times" in n for n in rec.notes), rec.notes
    data = to_trajectories(rec)
    for states in data.states:
        step = np.linalg.norm(np.diff(states["base_pos"], axis=0), axis=1)
        assert np.nanmax(step) < 0.1, np.nanmax(step)  # 5 m/s for a 20 ms tick; a waypoint is ~1 m
    task = task_for(contract)
    run = controlled_run(bag, contract)
    obs = contract.split_obs(run.obs)
    _, _, metrics = task.objective({k: v[:-1] for k, v in obs.items()}, None, {k: v[1:] for k, v in obs.items()})
    # the error's jumps tell the goal moves within the kept run; the goal topic counts them all
    assert int(np.sum(metrics["goal_moved"])) == run.goal_moves[-1] - run.goal_moves[0]
    assert run.goal_moves[-1] == moves and np.allclose(run.goal[-1], goals[-1])
    assert waypoints_reached({**metrics, "goal_moves": run.goal_moves[1:]}, task.reach_radius) in (moves, moves + 1)
