"""Bounded exploration on the robot: the wrapper's signal is seeded, band-limited, scaled to the contract's
normalised range, and neither it nor the guard after it ever lets a command leave the limits."""

from __future__ import annotations

import numpy as np
import pytest

from tests._deploy_support import env_contract
from tether.errors import TetherError
from tether.policies.exploration import ExplorationPolicy, with_exploration


class _Const:
    """A policy that returns fixed (possibly out-of-range or NaN) normalised actions."""

    def __init__(self, contract, value):
        self.contract = contract
        self.value = np.asarray(value, dtype=float)
        self.resets = 0

    def act(self, obs):
        return np.repeat(self.value[None], np.asarray(obs).shape[0], axis=0)

    def reset(self):
        self.resets += 1


@pytest.fixture(scope="module")
def quad():
    return env_contract("tether/QuadrotorHover-v0")


@pytest.mark.parametrize("kind", ["noise", "chirp"])
def test_never_leaves_the_limits_even_through_the_guard(quad, kind):
    from tether.hardware.guard import CommandGuard

    obs = np.zeros((1, quad.obs_size))
    guard = CommandGuard(quad)
    for value in ([0.95, -0.97, 0.99, -1.0], [5.0, -7.0, 1e9, -1e9], [0.0, 0.0, 0.0, 0.0]):
        pol = ExplorationPolicy(_Const(quad, value), 1.0, kind=kind, seed=1)
        acts = np.array([pol.act(obs)[0] for _ in range(500)])
        assert np.all(acts >= -1.0) and np.all(acts <= 1.0)
        if value[0] == 0.0:
            assert np.ptp(acts, axis=0).min() > 1.0  # it really excites every channel
        phys = quad.to_physical(acts)
        for k, a in enumerate(phys):
            out = guard.step(a, measured=phys[max(k - 1, 0)], state_stamp=0.01 * k, now=0.01 * k)
            assert np.all(out.command >= quad.action_low) and np.all(out.command <= quad.action_high)


def test_nan_stays_nan_so_the_guard_holds(quad):
    pol = ExplorationPolicy(_Const(quad, [np.nan, 0.0, 0.0, 0.0]), 0.3, seed=0)
    a = pol.act(np.zeros((1, quad.obs_size)))[0]
    assert np.isnan(a[0]) and np.all(np.isfinite(a[1:]))


def test_seeded_band_limited_and_scaled(quad):
    def signal(seed, kind="noise"):
        pol = ExplorationPolicy(_Const(quad, np.zeros(4)), 0.2, kind=kind, seed=seed, band_hz=3.0)
        return np.array([pol.signal(1)[0] for _ in range(6000)])

    a, b, c = signal(0), signal(0), signal(1)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.allclose(a.std(axis=0), 0.2, rtol=0.15)  # unit-variance shape times the scale
    assert np.abs(a).max() <= 2.5 * 0.2 + 1e-12
    f = np.fft.rfftfreq(len(a), 1 / quad.rate_hz)
    p = np.abs(np.fft.rfft(a[:, 0] - a[:, 0].mean())) ** 2
    assert p[(f > 0.2) & (f < 3.0)].mean() > 30 * p[f > 12.0].mean()  # power below the cut-off, little above
    ch = signal(0, "chirp")
    assert np.abs(ch).max() == pytest.approx(0.2, rel=1e-3)


def test_channels_reset_and_passthrough(quad):
    inner = _Const(quad, np.zeros(4))
    pol = ExplorationPolicy(inner, 0.5, channels=[1, 2], seed=0)
    acts = np.array([pol.act(np.zeros((2, quad.obs_size))) for _ in range(50)])  # (T, B, 4)
    assert np.all(acts[..., [0, 3]] == 0.0) and np.ptp(acts[..., 1]) > 0
    assert not np.allclose(acts[:, 0], acts[:, 1])  # each batch row has its own stream
    pol.reset()
    assert inner.resets == 1
    assert pol.describe() == {"kind": "noise", "scale": 0.5, "seed": 0, "band_hz": 5.0, "channels": [1, 2]}
    assert with_exploration(inner, 0) is inner and with_exploration(inner, None) is inner
    assert isinstance(with_exploration(inner, 0.1), ExplorationPolicy)
    with pytest.raises(TetherError, match="not a checkpoint"):
        pol.save("/tmp/nowhere")


def test_chunked_policies_get_a_sample_per_step(quad):
    class _Chunked(_Const):
        horizon = 4

        def act_chunk(self, obs):
            return np.full((np.asarray(obs).shape[0], 4, 4), 0.99)

    pol = ExplorationPolicy(_Chunked(quad, np.zeros(4)), 0.5, seed=0)
    chunk = pol.act_chunk(np.zeros((1, quad.obs_size)))
    assert chunk.shape == (1, 4, 4) and chunk.max() <= 1.0 and np.ptp(chunk[0, :, 0]) > 0
    with pytest.raises(TetherError, match="not a chunked policy"):
        ExplorationPolicy(_Const(quad, np.zeros(4)), 0.1).act_chunk(np.zeros((1, quad.obs_size)))


@pytest.mark.parametrize("kw, match", [
    ({"scale": -0.1}, "scale"), ({"scale": 2.0}, "scale"), ({"scale": float("nan")}, "scale"),
    ({"kind": "pink"}, "kind"), ({"band_hz": 25.0}, "band"), ({"band_hz": 0.0}, "band"),
    ({"chirp_hz": (5.0, 1.0)}, "chirp"), ({"period_s": 0.0}, "period"), ({"channels": [4]}, "channel"),
])
def test_bad_settings_are_refused(quad, kw, match):
    args = {"scale": 0.1, **kw}
    scale = args.pop("scale")
    with pytest.raises(TetherError, match=match):
        ExplorationPolicy(_Const(quad, np.zeros(4)), scale, **args)
