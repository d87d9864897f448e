"""V-GPS: re-ranking K samples of a frozen policy with a learned Q improves it; the wrapper is a full Policy."""

from __future__ import annotations

import numpy as np
import pytest

from _offline_toys import mixed_dataset, normalised_score, pointmass_contract, rollout_returns
from tether.errors import TetherError
from tether.policies.checkpoint import load_policy
from tether.policies.diffusion import DiffusionPolicy
from tether.policies.export import export_onnx
from tether.policies.flow import FlowPolicy
from tether.policies.gaussian import GaussianPolicy
from tether.policies.offline.common import Critic, OfflineData
from tether.policies.offline.iql import IQLConfig, train_iql
from tether.policies.vgps import VGPSPolicy


def _critic(obs: np.ndarray, hidden: tuple[int, ...] = (16, 16)) -> Critic:
    c = Critic(2, 2, list(hidden))
    c.obs_norm.update(obs)
    return c


def test_vgps_with_learned_q_beats_the_base_policys_single_sample() -> None:
    c = pointmass_contract()
    d = mixed_dataset(episodes=200, expert_frac=0.2, seed=0)
    data = OfflineData.from_transitions(d)
    # one IQL run gives the learned Q; with beta=0 its actor is plain BC of the mixed data (the frozen policy)
    iql = train_iql(c, data, IQLConfig(steps=2000, hidden=(128, 128), beta=0.0), seed=0)
    diffusion = DiffusionPolicy(c, {"horizon": 1, "n_obs_steps": 1, "n_action_steps": 1, "hidden": [128, 128]})
    diffusion.fit(d["obs"], d["action"], d["episode"], steps=1500, lr=3e-3, seed=0)
    for name, base in (("gaussian", iql.policy), ("diffusion", diffusion)):
        seeds = iter(range(10**6))
        single = normalised_score(rollout_returns(lambda s: base.sample_actions(s, 1, seed=next(seeds))[:, 0]))
        steered = VGPSPolicy(base, iql.critic, num_candidates=16, seed=0)
        s16 = normalised_score(rollout_returns(steered.act))
        assert s16 > single + 0.15, (name, s16, single)


def test_vgps_picks_the_argmax_q_candidate() -> None:
    class Fixed:
        contract = pointmass_contract()

        def sample_actions(self, obs, k, seed=None):
            return np.tile(np.linspace(-1, 1, k, dtype=np.float32)[None, :, None], (len(obs), 1, 2))

        def reset(self) -> None:
            pass

    obs = np.zeros((3, 2), np.float32)
    critic = _critic(np.random.default_rng(0).normal(size=(50, 2)))
    v = VGPSPolicy(Fixed(), critic, num_candidates=9)
    cands, q = v.candidates(obs)
    assert cands.shape == (3, 9, 2) and q.shape == (3, 9)
    np.testing.assert_array_equal(v.act(obs), cands[np.arange(3), q.argmax(1)])
    with pytest.raises(TetherError, match="cannot be sampled"):
        VGPSPolicy(object(), critic)
    with pytest.raises(TetherError, match="do not match"):
        VGPSPolicy(Fixed(), Critic(3, 2, [8]))


def _base(which: str, obs: np.ndarray, act: np.ndarray) -> object:
    c = pointmass_contract()
    if which == "gaussian":
        gauss = GaussianPolicy(c, {"net": {"hidden": [16, 16], "act": "relu", "layer_norm": False}})
        gauss.obs_norm.update(obs)
        return gauss
    if which == "diffusion":
        p: object = DiffusionPolicy(c, {"horizon": 3, "n_obs_steps": 2, "n_action_steps": 1, "hidden": [16, 16],
                                        "inference_steps": 4})
    else:
        p = FlowPolicy(c, {"horizon": 1, "n_obs_steps": 1, "n_action_steps": 1, "hidden": [16, 16],
                           "variant": "mean"})
    p.fit(obs, act, steps=5, batch_size=16)  # type: ignore[attr-defined]
    return p


@pytest.mark.parametrize("which", ["gaussian", "diffusion", "flow-mean"])
def test_vgps_checkpoint_round_trip_and_onnx_parity(tmp_path, which: str) -> None:
    d = mixed_dataset(episodes=8, seed=1)
    base = _base(which, d["obs"], d["action"])
    v = VGPSPolicy(base, _critic(d["obs"]), num_candidates=8, seed=4)
    v.save(tmp_path / "vgps")
    w = load_policy(tmp_path / "vgps", pointmass_contract())
    assert isinstance(w, VGPSPolicy) and type(w.base) is type(base) and w.num_candidates == 8
    for k, t in v.critic.state_dict().items():
        assert np.array_equal(t.numpy(), w.critic.state_dict()[k].numpy()), k
    v.reset(), w.reset()
    v.reseed(3), w.reseed(3)
    if hasattr(base, "reseed"):
        v.base.reseed(3), w.base.reseed(3)
    obs = d["obs"][:6]
    for _ in range(3):
        assert np.array_equal(v.act(obs), w.act(obs))
    report = export_onnx(v, tmp_path / "vgps.onnx", verbose=False)
    assert report.max_abs_diff <= 1e-4
