"""Latency estimation against delays injected into a MuJoCo-simulated actuator."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tether.calibration.io import write_json
from tether.calibration.latency import contract_with_latency, estimate_latency, latency_dr_terms, merge_dr_terms
from tether.calibration.synthetic import delayed_actuator_log
from tether.cli import main
from tether.contract import Field, IOContract
from tether.errors import TetherError
from tether.sim.randomization import terms_from_json

CONTROL_HZ = 50


def _record(delay_s: float, seed: int = 0):
    """A MuJoCo cart whose velocity actuator acts ``delay_s`` late (500 Hz delay line, 50 Hz control)."""
    return delayed_actuator_log(delay_s, seconds=24.0, control_hz=CONTROL_HZ, seed=seed)


@pytest.mark.parametrize("delay_s", [0.0, 0.047, 0.12])
def test_injected_delay_recovered_within_one_control_period(delay_s):
    t, u, y = _record(delay_s, seed=int(delay_s * 1000))
    result = estimate_latency(t, u, y)
    period = 1.0 / CONTROL_HZ
    assert result.control_period_s == pytest.approx(period)
    assert abs(result.delay_s - delay_s) < period, (result.delay_s, delay_s)
    # the plant lag is separated from the delay: tau ~ m / kv = 2 / 40 s
    assert 0.03 < result.time_constant_s[0] < 0.08, result.time_constant_s
    assert result.fit_rmse < 0.5 * result.no_delay_rmse or delay_s == 0.0
    lo, hi = result.step_range()
    assert lo <= delay_s / period + 1 and hi >= delay_s / period - 1


def test_sensing_delay_from_receipt_stamps():
    t, u, y = _record(0.06, seed=3)
    received = t + 0.015 + np.random.default_rng(0).uniform(0, 0.004, len(t))
    result = estimate_latency(t, u, y, t_received=received)
    assert result.sensing_delay_s == pytest.approx(0.017, abs=0.002)
    assert abs(result.total_delay_s - 0.077) < 0.02


def test_dr_preset_and_contract_carry_the_estimate(tmp_path):
    t, u, y = _record(0.08, seed=4)
    result = estimate_latency(t, u, y)
    preset = merge_dr_terms([{"target": "body_mass", "range": [0.9, 1.1]},
                             {"target": "action_latency", "operation": "abs", "range": [0, 9]}],
                            latency_dr_terms(result), {"latency": result.report()})
    terms = terms_from_json(json.dumps(preset))
    assert [t.target for t in terms] == ["body_mass", "action_latency"]
    lat = terms[1]
    assert lat.range[0] <= 4 <= lat.range[1] and lat.range[1] - lat.range[0] <= 2
    contract = IOContract("slider", "track", (Field.make("v", 1, "m/s"),), (Field.make("cmd", 1, "m/s", low=-2, high=2),),
                          "joint_torque", CONTROL_HZ)
    updated = contract_with_latency(contract, result)
    assert updated.assumed_latency_s == pytest.approx(result.total_delay_s)
    assert abs(updated.assumed_latency_s - 0.08) < 1.0 / CONTROL_HZ


def test_bad_logs_are_one_line_errors():
    with pytest.raises(TetherError, match="latency log is empty"):
        estimate_latency([], [], [])
    t = np.arange(100) * 0.02
    with pytest.raises(TetherError, match="99 commands but 100 command timestamps"):
        estimate_latency(t, np.zeros(99), np.zeros(100))
    with pytest.raises(TetherError, match="commands never change"):
        estimate_latency(t, np.ones(100), np.zeros(100))
    with pytest.raises(TetherError, match="command has 2 channels but response has 1"):
        estimate_latency(t, np.zeros((100, 2)), np.zeros(100))


def test_cli_latency_updates_preset_and_contract(tmp_path, capsys):
    t, u, y = _record(0.06, seed=5)
    np.savez(tmp_path / "log.npz", t=t, command=u, response=y)
    contract = IOContract("slider", "track", (Field.make("v", 1, "m/s"),), (Field.make("cmd", 1, "m/s", low=-2, high=2),),
                          "joint_torque", CONTROL_HZ)
    (tmp_path / "contract.json").write_text(contract.to_json())
    rc = main(["calibrate", "latency", str(tmp_path / "log.npz"), "--dr-preset", str(tmp_path / "dr.json"),
               "--contract", str(tmp_path / "contract.json"), "--out", str(tmp_path / "lat.json")])
    assert rc == 0, capsys.readouterr().err
    assert "delay" in capsys.readouterr().out
    terms = terms_from_json((tmp_path / "dr.json").read_text())
    assert terms[0].target == "action_latency"
    c = IOContract.from_json((tmp_path / "contract.json").read_text())
    assert abs(c.assumed_latency_s - 0.06) < 1.0 / CONTROL_HZ

    write_json(tmp_path / "empty.json", {"t": [], "command": [], "response": []})
    rc = main(["calibrate", "latency", str(tmp_path / "empty.json")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "latency log is empty" in err
    rc = main(["calibrate", "latency", str(tmp_path / "nope.npz")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
