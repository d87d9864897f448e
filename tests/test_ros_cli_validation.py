"""Every number and path of ``tether deploy``, ``tether robot serve`` and ``tether robot limits`` is checked before
any work starts: one line naming what was wrong and what was expected, exit code 2 (nothing else touched)."""

from __future__ import annotations

import pytest

from tether.cli import main

CK = "/nonexistent/ckpt"


@pytest.mark.parametrize("extra,expect", [
    (["--stale-periods", "inf"], "stale periods is inf"),
    (["--stale-periods", "0"], "stale periods is 0"),
    (["--ramp-in", "nan"], "ramp-in is nan"),
    (["--connect-timeout", "nan"], "connect timeout is nan"),
    (["--robot-info-timeout", "-1"], "robot-info timeout is -1"),
    (["--lost-control", "0"], "lost-control timeout is 0"),
    (["--duration", "-5"], "duration is -5"),
    (["--rate", "nan"], "rate is nan"),
    (["--episode", "-1"], "episode -1"),
    (["--domain-id", "999"], "--domain-id 999"),
    (["--record", "/nonexistent/dir/out.mcap"], "does not exist"),
    (["--stats-json", "/nonexistent/dir/s.json"], "does not exist"),
    (["--robot-limits", "/nonexistent/limits.json"], "not a regular file"),
    (["--goal-publisher", "intruder"], "expected a ROS enclave name"),
    (["--enclave", "no slash"], "expected a ROS enclave path"),
    (["--keystore", "/nonexistent/ks"], "is not a directory"),
    (["--param", "goal=[NaN, 0, 1]"], "expected finite numbers"),
    (["--param", "max_collective_thrust_n=0.05"], "unknown parameters ['max_collective_thrust_n']"),
    (["--param", "limits={}"], "unknown parameters ['limits']"),
])
def test_deploy_options(extra, expect, capsys, tmp_path):
    rc = main(["deploy", CK, "--adapter", "px4", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("tether: error:") and expect in err[0], err


def test_deploy_record_into_an_existing_path(tmp_path, capsys):
    rc = main(["deploy", CK, "--adapter", "px4", "--record", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "already exists" in err[0]


@pytest.mark.parametrize("extra,expect", [
    (["--goal", "nan", "nan", "nan"], "--goal is nan"),
    (["--drop", "1.5"], "--drop is 1.5"),
    (["--latency", "-1"], "--latency is -1"),
    (["--jitter", "inf"], "--jitter is inf"),
    (["--rate-factor", "0.5"], "--rate-factor is 0.5"),
    (["--state-rate", "0"], "--state-rate is 0"),
    (["--duration", "nan"], "--duration is nan"),
    (["--seed", "-1"], "--seed -1"),
    (["--domain-id", "-3"], "--domain-id -3"),
    (["--params", "/nonexistent/p.json"], "not a regular file"),
    (["--stats-out", "/nonexistent/dir/s.json"], "does not exist"),
])
def test_serve_options(extra, expect, capsys):
    rc = main(["robot", "serve", "--robot", "quadrotor", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("tether: error:") and expect in err[0], err


def test_robot_limits_command(tmp_path, capsys):
    out = tmp_path / "a1.json"
    assert main(["robot", "limits", "--adapter", "unitree", "--out", str(out)]) == 0
    from tether.hardware.limits import RobotLimits

    assert RobotLimits.load(out).model == "unitree_a1"
    assert main(["robot", "limits", "--adapter", "unitree", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_serve_params_scale_of_the_wrong_length(tmp_path, capsys):
    """A per-element scale list whose length matches no element count: one line naming both, not numpy's
    broadcast error."""
    import json

    params = tmp_path / "p.json"
    params.write_text(json.dumps({"scale": {"body_mass": [1.0, 2.0]}}))
    rc = main(["robot", "serve", "--robot", "arm", "--params", str(params), "--loopback", "--duration", "0.2",
               "--domain-id", "231"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "scale.body_mass has 2 factors; expected 1 or 11" in err[0], err
