"""CommandGuard properties: whatever a policy emits, outputs stay inside limits and move at most the rate limit."""

import numpy as np
import pytest

from tether.contract import Field, IOContract
from tether.errors import TetherError
from tether.hardware.guard import CommandGuard, GuardConfig

JOINTS = tuple(f"j{i}" for i in range(4))


def _contract(mode: str = "joint_position", rate: float = 100.0) -> IOContract:
    if mode == "joint_position":
        obs = (Field.make("joint_pos", 4, "rad", components=JOINTS),)
        act = (Field.make("joint_pos_target", 4, "rad", low=[-2, -1, -0.5, -3], high=[2, 1, 0.5, 3],
                          components=JOINTS),)
    else:
        obs = (Field.make("base_ang_vel", 3, "rad/s"),)
        act = (Field.make("motor_thrust", 4, "N", low=0.0, high=8.0),)
    return IOContract("r", "t", obs, act, mode, rate)


def _adversarial(rng: np.random.Generator, n: int) -> np.ndarray:
    kind = rng.integers(0, 6)
    if kind == 0:
        v = rng.normal(size=n) * 10.0 ** rng.integers(-3, 10)
    elif kind == 1:
        v = rng.choice([np.nan, np.inf, -np.inf, 1e9, -1e9, 0.0], size=n)
    elif kind == 2:
        v = np.full(n, 1e9 * (-1) ** rng.integers(0, 2))
    elif kind == 3:
        v = rng.uniform(-5, 5, size=n)
    elif kind == 4:
        v = np.full(n, np.nan)
    else:
        v = rng.normal(size=n)
        v[rng.integers(0, n)] = np.nan
    return v


@pytest.mark.parametrize("mode", ["joint_position", "motor_thrust"])
def test_outputs_stay_inside_limits_and_rate_under_adversarial_input(mode: str) -> None:
    rng = np.random.default_rng(1)
    c = _contract(mode)
    cfg = GuardConfig(max_delta=[0.05, 0.02, 0.01, 0.1], ramp_in_s=0.2, stale_periods=3)
    g = CommandGuard(c, config=cfg)
    low, high = c.action_low, c.action_high
    measured = rng.uniform(low, high) if mode == "joint_position" else None
    prev = None
    t, dt = 0.0, c.dt
    stale_ticks = 0
    for i in range(5000):
        t += dt
        cmd = _adversarial(rng, 4)
        if i % 7 == 3:  # alternating huge jumps
            cmd = np.where(np.arange(4) % 2 == (i // 7) % 2, 1e9, -1e9)
        stamp = t - dt * (5 if rng.random() < 0.05 else 0)  # occasionally stale
        if rng.random() < 0.01:
            g.trigger_estop("test")
        if rng.random() < 0.02:
            g.reset_estop()
        stale_ticks += (t - stamp) > 3 * dt and not g.estopped  # a latched e-stop takes precedence
        if measured is not None and rng.random() < 0.1:
            measured = rng.uniform(low - 0.5, high + 0.5)  # may be out of limits or NaN
            if rng.random() < 0.2:
                measured[0] = np.nan
        out = g.step(cmd, measured=measured, state_stamp=stamp, now=t)
        assert out.command.shape == (4,)
        assert np.all(np.isfinite(out.command))
        assert np.all(out.command >= g.low) and np.all(out.command <= g.high)
        if prev is not None:
            assert np.all(np.abs(out.command - prev) <= g.max_delta + 1e-12)
        prev = out.command
    k = g.counters
    assert k.ticks == 5000 and k.nan_holds > 100 and k.clamps > 0 and k.rate_limited > 100
    assert k.stale == stale_ticks and k.estopped > 0


def test_nan_holds_last_command_or_measured() -> None:
    c = _contract("motor_thrust")
    g = CommandGuard(c, config=GuardConfig(ramp_in_s=0.0, full_range_s=None))
    out = g.step(np.full(4, 3.0), state_stamp=0.0, now=0.0)
    np.testing.assert_allclose(out.command, 3.0)
    out = g.step(np.array([np.nan, 1, 1, 1]), state_stamp=0.01, now=0.01)
    np.testing.assert_allclose(out.command, 3.0)
    assert out.reason == "nan_hold" and g.counters.nan_holds == 1

    cp = _contract("joint_position")
    gp = CommandGuard(cp, config=GuardConfig(ramp_in_s=0.0, full_range_s=None))
    meas = np.array([0.1, 0.2, 0.3, 0.4])
    gp.step(np.zeros(4), measured=meas, state_stamp=0.0, now=0.0)
    out = gp.step(np.array([np.inf, 0, 0, 0]), measured=meas, state_stamp=0.01, now=0.01)
    np.testing.assert_allclose(out.command, meas)  # position mode holds the measured state


def test_clamps_to_tightened_limits() -> None:
    c = _contract("joint_position")
    g = CommandGuard(c, limits=([-1, -1, -1, -1], [1, 1, 1, 1]), config=GuardConfig(ramp_in_s=0.0, high=0.25,
                                                                                        full_range_s=None))
    np.testing.assert_allclose(g.high, [0.25, 0.25, 0.25, 0.25])
    np.testing.assert_allclose(g.low, [-1, -1, -0.5, -1])  # contract -0.5 is tighter than the given -1
    out = g.step(np.array([9.0, -9.0, -9.0, 0.1]), measured=np.zeros(4), state_stamp=0.0, now=0.0)
    np.testing.assert_allclose(out.command, [0.25, -1, -0.5, 0.1])


def test_default_guard_never_jumps_across_the_range_in_one_tick() -> None:
    c = _contract("joint_position")  # 100 Hz; default full_range_s 0.25 s -> 1/25 of each range per tick
    g = CommandGuard(c)
    np.testing.assert_allclose(g.max_delta, (c.action_high - c.action_low) / 25)
    g.step(c.action_low, measured=c.action_low, state_stamp=0.0, now=0.0)
    out = g.step(c.action_high, measured=c.action_low, state_stamp=2.0, now=2.0)  # after ramp-in
    np.testing.assert_allclose(out.command, c.action_low + (c.action_high - c.action_low) / 25)


def test_rate_limit_walks_to_target() -> None:
    c = _contract("joint_position")
    g = CommandGuard(c, config=GuardConfig(ramp_in_s=0.0, max_rate=1.0))  # 1 rad/s at 100 Hz = 0.01 per tick
    t = 0.0
    outs = []
    for _ in range(60):
        outs.append(g.step(np.full(4, 0.4), measured=np.zeros(4), state_stamp=t, now=t).command)
        t += 0.01
    outs = np.array(outs)
    np.testing.assert_allclose(outs[:40, 0], 0.01 * np.arange(1, 41), atol=1e-12)
    np.testing.assert_allclose(outs[-1], [0.4, 0.4, 0.4, 0.4])


def test_estop_latches_until_reset() -> None:
    c = _contract("joint_position")
    g = CommandGuard(c, config=GuardConfig(ramp_in_s=0.0))
    meas = np.array([0.3, 0.0, 0.0, 0.0])
    t = 0.0
    g.step(np.zeros(4), measured=meas, state_stamp=t, now=t)
    g.on_estop_message(type("Bool", (), {"data": True})())
    for _ in range(20):
        t += 0.01
        g.on_estop_message(type("Bool", (), {"data": False})())  # False on the topic never clears it
        out = g.step(np.full(4, 1.0), measured=meas, state_stamp=t, now=t)
        assert out.reason == "estop" and out.damp
        np.testing.assert_allclose(out.command, meas)
    assert g.estopped
    g.reset()  # a policy restart keeps the latch
    assert g.estopped
    g.reset_estop()
    out = g.step(np.full(4, 0.2), measured=meas, state_stamp=t, now=t)
    assert not g.estopped and out.reason in ("policy", "rate_limit")  # the policy's again (rate-limited from meas)


@pytest.mark.parametrize("action", ["hold", "damp"])
def test_stale_state_holds_or_damps_within_timeout(action: str) -> None:
    c = _contract("motor_thrust", rate=50.0)
    g = CommandGuard(c, config=GuardConfig(ramp_in_s=0.0, stale_periods=2.5, stale_action=action,
                                            safe_command=1.0, max_delta=0.5))
    t, stamp = 0.0, 0.0
    for _ in range(5):
        out = g.step(np.full(4, 6.0), state_stamp=t, now=t)
        stamp = t
        t += c.dt
    last = out.command.copy()
    reasons = []
    outs = []
    for i in range(10):  # the state stream stops: stamp frozen
        out = g.step(np.full(4, 7.0), state_stamp=stamp, now=t)
        reasons.append(out.reason)
        outs.append(out.command)
        t += c.dt
    # ages are 1, 2, 3, ... periods: stale from the third tick on (2.5 periods), never later
    assert reasons[:2] == ["rate_limit", "rate_limit"]  # fresh: the policy's command (6 -> 7 by 0.5 a tick)
    assert all(r == f"stale_{action}" for r in reasons[2:])
    if action == "hold":
        np.testing.assert_allclose(outs[-1], outs[1])  # frozen at the last fresh command
    else:
        np.testing.assert_allclose(outs[-1], 1.0)  # walked down to the safe command at the rate limit
        assert outs[-1][0] < last[0]


def test_ramp_in_starts_from_measured_state() -> None:
    c = _contract("joint_position")
    g = CommandGuard(c, config=GuardConfig(ramp_in_s=0.5))
    meas = np.array([1.0, 0.5, -0.2, 0.0])
    target = np.array([-1.0, -0.5, 0.2, 1.0])
    t = 0.0
    outs = []
    for _ in range(60):
        outs.append(g.step(target, measured=meas, state_stamp=t, now=t).command)
        t += 0.01
    outs = np.array(outs)
    np.testing.assert_allclose(outs[0], meas)
    np.testing.assert_allclose(outs[25], meas + 0.5 * (target - meas), atol=1e-9)
    np.testing.assert_allclose(outs[-1], target)
    assert g.counters.ramped == 50


def test_bad_config_is_a_clear_error() -> None:
    c = _contract("joint_position")
    with pytest.raises(TetherError, match="stale_action"):
        GuardConfig(stale_action="coast")
    with pytest.raises(TetherError, match="max_delta"):
        CommandGuard(c, config=GuardConfig(max_delta=[1, 2, 3]))
    with pytest.raises(TetherError, match="expected 4"):
        CommandGuard(c).step(np.zeros(3), state_stamp=0.0, now=0.0)
