"""System identification: recover hidden parameters of a MuJoCo quadrotor from its trajectories."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tether.calibration.sysid import identify, load_trajectories, record, trajectories_from_arrays
from tether.cli import main
from tether.errors import TetherError
from tether.sim.randomization import terms_from_json
from tether.sim.robots.quadrotor import HOVER_THRUST

HIDDEN = {"body_mass": 1.15, "motor_time_constant": 1.4}
HIDDEN_LATENCY_STEPS = 2
NOISE = {"base_pos": 1e-3, "base_quat": 1e-3, "base_lin_vel": 1e-2, "base_ang_vel": 2e-2}


def _commands(rng: np.random.Generator, episodes: int = 4, steps: int = 30) -> list[np.ndarray]:
    """Rotor thrusts around (heavier-than-nominal) hover, switching every 2 control steps: rich enough to
    separate motor lag from delay, short enough that the open-loop vehicle stays airborne."""
    return [HOVER_THRUST * 1.12 * (1 + np.repeat(rng.uniform(-0.2, 0.2, (steps // 2, 4)), 2, axis=0))
            for _ in range(episodes)]


@pytest.fixture(scope="module")
def hidden_robot_log():
    rng = np.random.default_rng(0)
    cmds = _commands(rng)
    init = [{"base_pos": np.array([0.0, 0.0, 2.0])} for _ in cmds]
    return record("quadrotor", cmds, scales=HIDDEN, latency_steps=HIDDEN_LATENCY_STEPS, init=init, noise=NOISE, rng=rng)


@pytest.fixture(scope="module")
def fit(hidden_robot_log):
    return identify("quadrotor", trajectories_from_arrays(hidden_robot_log), budget=150, seed=0)


def test_hidden_parameters_recovered_within_10_percent(fit):
    for name, truth in HIDDEN.items():
        assert abs(fit.scale[name] / truth - 1) < 0.10, (name, fit.scale[name], truth)
    true_latency = HIDDEN_LATENCY_STEPS * fit.control_period
    assert abs(fit.latency_s - true_latency) < 0.1 * true_latency, fit.latency_s
    assert fit.latency_steps == HIDDEN_LATENCY_STEPS


def test_residual_lowered_and_uncertainty_reported(fit):
    assert fit.residual_after < 0.1 * fit.residual_before, (fit.residual_before, fit.residual_after)
    assert all(0 < s < 0.1 for s in fit.rel_std.values()), fit.rel_std
    assert 0 < fit.latency_std_s < fit.control_period
    assert fit.correlation.shape == (2, 2) and np.allclose(np.diag(fit.correlation), 1.0)
    # the nominal model really is wrong: its residual is far above the measurement noise level
    assert fit.residual_per_key_before["base_pos"] > 5 * fit.residual_per_key_after["base_pos"]


def test_dr_preset_is_centred_on_the_fit(fit, tmp_path):
    preset = fit.dr_preset()
    path = tmp_path / "sysid_dr.json"
    path.write_text(json.dumps(preset))
    terms = {t.target: t for t in terms_from_json(path.read_text())}
    assert set(terms) == {"body_mass", "motor_time_constant", "action_latency"}
    for name in HIDDEN:
        lo, hi = terms[name].range
        assert terms[name].operation == "scale" and lo < fit.scale[name] < hi
        assert (lo + hi) / 2 == pytest.approx(fit.scale[name], rel=1e-9)
        assert hi - lo < 0.5 * fit.scale[name]
    lo, hi = terms["action_latency"].range
    assert lo <= HIDDEN_LATENCY_STEPS <= hi and terms["action_latency"].operation == "abs"


def test_cli_sysid_and_bad_logs(hidden_robot_log, tmp_path, capsys):
    np.savez(tmp_path / "log.npz", **hidden_robot_log)
    data = load_trajectories(tmp_path / "log.npz")
    assert len(data.commands) == 4 and data.keys == ["base_pos", "base_quat", "base_lin_vel", "base_ang_vel"]
    rc = main(["calibrate", "sysid", str(tmp_path / "log.npz"), "--robot", "quadrotor", "--params", "body_mass",
               "--budget", "24", "--out", str(tmp_path / "sysid.json"), "--dr-preset", str(tmp_path / "dr.json")])
    assert rc == 0, capsys.readouterr().err
    assert "residual" in capsys.readouterr().out
    report = json.loads((tmp_path / "sysid.json").read_text())
    assert report["residual_after"] < report["residual_before"]
    assert [t.target for t in terms_from_json((tmp_path / "dr.json").read_text())] == ["body_mass"]

    bad = dict(hidden_robot_log)
    bad["command"] = bad["command"][..., :3]
    np.savez(tmp_path / "bad.npz", **bad)
    rc = main(["calibrate", "sysid", str(tmp_path / "bad.npz"), "--robot", "quadrotor"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "log commands have 3 channels; robot quadrotor has 4" in err

    with pytest.raises(TetherError, match="trajectory log is empty"):
        trajectories_from_arrays({"command": np.zeros((0, 4)), "base_pos": np.zeros((1, 3))})
    with pytest.raises(TetherError, match="one more state than commands"):
        trajectories_from_arrays({"command": np.zeros((10, 4)), "base_pos": np.zeros((10, 3))})
    with pytest.raises(TetherError, match="no measured state"):
        trajectories_from_arrays({"command": np.zeros((10, 4))})
    short = trajectories_from_arrays({**{k: v[:1] for k, v in hidden_robot_log.items() if k != "control_period"},
                                      "control_period": np.array(0.01)})
    with pytest.raises(TetherError, match="does not match robot quadrotor's 0.02 s"):
        identify("quadrotor", short)
    with pytest.raises(TetherError, match="unknown sysid parameter 'mass'"):
        identify("quadrotor", data, params=["mass"])
    with pytest.raises(TetherError, match="unknown robot 'boat'"):
        identify("boat", data)


def test_tick_band_follows_the_robot_loops_jitter():
    """Event timing counts a command arriving near a robot tick partly, over a band as wide as the robot loop's
    own jitter: a steady loop keeps the floor, a loaded one (ticks off by 1 ms rms) widens it, a missed slot is not
    jitter, and the band never reaches a quarter period (the assignment would stop meaning anything)."""
    from tether.calibration.replay import TICK_BAND_S, tick_band

    period = 0.02
    rng = np.random.default_rng(0)
    steady = np.arange(400) * period + rng.normal(0.0, 1e-5, 400)
    assert tick_band([steady], period) == TICK_BAND_S
    loaded = np.arange(400) * period + rng.normal(0.0, 0.001, 400)
    assert 0.0032 < tick_band([loaded], period) < 0.0037  # sqrt(6) x the intervals' 1.41 ms
    skipped = np.sort(np.r_[np.delete(steady, np.arange(10, 400, 40))])  # ten slots skipped by a slow loop
    assert tick_band([skipped], period) == TICK_BAND_S
    assert tick_band([np.arange(400) * period + rng.normal(0.0, 0.02, 400)], period) == period / 4
    assert tick_band([np.zeros(1)], period) == TICK_BAND_S


def test_loop_latency_range_leaves_out_stalls():
    """The latency range the DR trains on is the loop's jitter, not a stall: a loaded run once recorded 31
    commands 6 s after their state, and the range went from 4..5 steps to 4..270 (a robot nothing can fly)."""
    from tether.calibration.sysid import STALL_STEPS, loop_latency

    period = 0.02
    rng = np.random.default_rng(0)
    normal = 0.09 + rng.uniform(0.0, 0.02, 1300)  # 4..5 whole steps beyond the next tick
    mean, steps, stalls = loop_latency(normal, period)
    assert steps == (4, 5) and stalls == 0 and abs(mean - normal.mean()) < 1e-12
    stalled = np.r_[normal, np.full(31, 6.0), np.nan, np.nan]
    mean, steps, stalls = loop_latency(stalled, period)
    assert steps == (4, 5) and stalls == 31 and mean < 0.12
    # jitter within the stall margin is latency, and stays in the range
    late = np.r_[normal, np.full(100, 0.09 + STALL_STEPS * period)]
    assert loop_latency(late, period)[1][1] >= 4 + STALL_STEPS - 1
    assert loop_latency(np.array([np.nan]), period) == (None, None, 0)
