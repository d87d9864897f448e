"""The robot side's safety pieces without a wire: robot limits (file, validation, narrowing only), the guard built
for a robot, the multirotor descent, state plausibility (stamps included) and the control supervisor."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from tether.contract import Field, IOContract
from tether.errors import TetherError
from tether.hardware.guard import CommandGuard, GuardConfig
from tether.hardware.interface import ControlStatus, RobotInterface
from tether.hardware.limits import RobotLimits, element_names, intersect
from tether.hardware.plausibility import Implausible, StampCheck, bounded, unit_quaternion
from tether.hardware.safe_stop import THRUST_FLOOR, multirotor_descent
from tether.hardware.supervisor import ControlSupervisor, SupervisorConfig


def _contract(lo=-100.0, hi=100.0) -> IOContract:
    return IOContract("toy", "t", (Field.make("joint_pos", 2, "rad", components=("a", "b")),),
                      (Field.make("joint_pos_target", 2, "rad", low=lo, high=hi, components=("a", "b")),),
                      "joint_position", 50.0)


LIMITS = RobotLimits("toy", {"joint_pos_target.a": (-1.0, 1.0), "joint_pos_target.b": (-0.5, 2.0)},
                     {"joint_pos_target.a": 2.0}, {"mass": 1.0}, {"joint_vel": 10.0})


def test_limits_are_the_robots_and_a_contract_only_narrows():
    wide, narrow = _contract(), _contract(-0.2, 0.3)
    assert element_names(wide) == ["joint_pos_target.a", "joint_pos_target.b"]
    lo, hi = intersect(wide, LIMITS)
    assert lo.tolist() == [-1.0, -0.5] and hi.tolist() == [1.0, 2.0]  # +-100 in the checkpoint: the robot's
    lo, hi = intersect(narrow, LIMITS)
    assert lo.tolist() == [-0.2, -0.2] and hi.tolist() == [0.3, 0.3]
    g = CommandGuard.for_robot(wide, LIMITS, GuardConfig(ramp_in_s=0.0), dt=0.02)
    out = g.step(np.array([100.0, -100.0]), measured=np.zeros(2), state_stamp=0.0, now=0.0)
    assert np.all(out.command <= [1.0, 2.0]) and np.all(out.command >= [-1.0, -0.5])
    assert g.max_delta[0] == pytest.approx(2.0 * 0.02)  # the robot's joint speed, per tick
    for _ in range(200):
        out = g.step(np.array([100.0, -100.0]), measured=out.command, state_stamp=0.0, now=0.0)
    assert out.command.tolist() == [1.0, -0.5]
    missing = RobotLimits("toy", {"joint_pos_target.a": (-1.0, 1.0)})
    with pytest.raises(TetherError, match=r"no command limits for \['joint_pos_target.b'\]"):
        CommandGuard.for_robot(wide, missing)
    with pytest.raises(TetherError, match="do not overlap"):
        intersect(_contract(5.0, 6.0), LIMITS)


def test_limits_file_round_trip_and_validation(tmp_path):
    p = tmp_path / "l.json"
    p.write_text(LIMITS.to_json())
    assert RobotLimits.load(p) == LIMITS
    bad = {
        "nan": {"model": "x", "command": {"a": [0, float("nan")]}},
        "order": {"model": "x", "command": {"a": [1, 0]}},
        "extra": {"model": "x", "command": {"a": [0, 1]}, "gains": {}},
        "type": {"model": "x", "command": {"a": "wide"}},
        "rate": {"model": "x", "command": {"a": [0, 1]}, "max_rate": {"a": -1}},
        "empty": {"model": "x", "command": {}},
    }
    for name, data in bad.items():
        p.write_text(json.dumps(data, allow_nan=True))
        with pytest.raises(TetherError, match="robot limits"):
            RobotLimits.load(p)
    p.write_text("[" * 100_000)
    with pytest.raises(TetherError, match="not valid JSON"):
        RobotLimits.load(p)
    link = tmp_path / "link.json"
    os.symlink(p, link)
    with pytest.raises(TetherError, match="not a regular file"):
        RobotLimits.load(link)


def test_descent_is_never_a_thrust_cut():
    hover, full, rates = 0.265, 0.596, np.array([10.0, 10.0, 5.0])
    level = np.eye(3).reshape(9)
    falling = multirotor_descent(level, [0, 0, -3.0], hover_thrust=hover, max_thrust=full, max_rates=rates)
    assert falling[0] > hover  # brakes a fall
    rising = multirotor_descent(level, [0, 0, 2.0], hover_thrust=hover, max_thrust=full, max_rates=rates)
    assert rising[0] == pytest.approx(THRUST_FLOOR * hover)  # sinks, but never below the floor
    sinking = multirotor_descent(level, [0, 0, -0.4], hover_thrust=hover, max_thrust=full, max_rates=rates)
    assert sinking[0] == pytest.approx(hover, rel=1e-6) and np.allclose(sinking[1:], 0)
    roll = 0.3  # tilted right: the rates level it (roll back)
    R = np.array([[1, 0, 0], [0, math.cos(roll), -math.sin(roll)], [0, math.sin(roll), math.cos(roll)]])
    tilted = multirotor_descent(R.reshape(9), [0, 0, -0.4], hover_thrust=hover, max_thrust=full, max_rates=rates)
    assert tilted[1] < 0


def test_plausibility_checks():
    with pytest.raises(Implausible, match="q_not_unit"):
        unit_quaternion("q", np.zeros(4))
    with pytest.raises(Implausible, match="q_not_finite"):
        unit_quaternion("q", [np.nan, 0, 0, 1])
    assert np.allclose(unit_quaternion("q", [1.02, 0, 0, 0]), [1, 0, 0, 0])
    with pytest.raises(Implausible, match="v_out_of_bounds"):
        bounded("v", [1e9, 0, 0], 20.0)
    wall = 1.7e9
    s = StampCheck(tolerance_s=0.5, reanchor_after_s=1.0, wall=lambda: wall)
    with pytest.raises(Implausible) as e:
        s.check(2.0**63 * 1e-6, now=0.0)  # 2^63 us on the first message: no clock says that
    assert e.value.reason == "stamp_future"
    s.check(100.0, now=0.0)
    s.check(100.02, now=0.02)
    for bad, reason in ((2.0**63 * 1e-6, "stamp_jump"), (1e-6, "stamp_backwards"), (float("nan"), "stamp_invalid")):
        with pytest.raises(Implausible) as e:
            s.check(bad, now=0.03)
        assert e.value.reason == reason
    s.check(100.04, now=0.04)  # the live stream is unaffected by the bad stamps
    s.check(0.5, now=2.0)  # a source that rebooted (its clock restarted) after > 1 s of silence is followed
    assert s.reanchors == 1


class _Robot(RobotInterface):
    def __init__(self, statuses):
        self.contract = _contract()
        self.statuses = list(statuses)
        self.engaged = 0
        self.stopped = ""

    def connect(self):
        pass

    def read_state(self):
        return {}, 0.0

    def send(self, command, *, damp=False):
        pass

    def disconnect(self):
        pass

    def engage(self):
        self.engaged += 1

    def control_status(self):
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]

    def safe_stop(self, reason):
        self.stopped = reason


def test_supervisor_reengages_then_gives_up_but_not_while_state_is_stale():
    robot = _Robot([ControlStatus(False, "failsafe", True)])
    guard = CommandGuard(robot.contract, dt=0.02)
    sup = ControlSupervisor(robot, guard, SupervisorConfig(lost_control_s=1.0, reengage_s=0.2, check_hz=100))
    sup.start(0.0)
    t = 0.0
    while t < 5.0:  # stale state (the robot rebooting): nothing is counted
        assert sup.tick(t, state_stamp=0.0 if t < 0.05 else t - 1.0) is None
        t += 0.01
    reason = None
    while reason is None and t < 10.0:
        reason = sup.tick(t, state_stamp=t)
        t += 0.01
    assert reason and "failsafe" in reason and 6.0 <= t <= 6.1
    assert robot.engaged >= 5
    robot2 = _Robot([ControlStatus(True), ControlStatus(False, "the vehicle was disarmed", False)])
    sup2 = ControlSupervisor(robot2, CommandGuard(robot2.contract, dt=0.02), SupervisorConfig(check_hz=100))
    assert sup2.tick(0.0, 0.0) is None and sup2.tick(0.02, 0.02) == "the vehicle was disarmed"
    robot3 = _Robot([ControlStatus(True)])
    g3 = CommandGuard(robot3.contract, dt=0.02)
    sup3 = ControlSupervisor(robot3, g3)
    g3.trigger_estop("button")
    assert sup3.tick(0.0, 0.0) is None and robot3.stopped == "button"
