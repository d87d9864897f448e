"""Offline RL on a self-generated mixed-quality dataset (2-D point-mass reach, tests/_offline_toys.py).

The dataset is 20% noisy-expert episodes and 80% uniformly random ones, so imitating all of it (BC) is
measurably worse than learning which actions are good. Scores are normalised: 0 = random actions,
1 = the scripted expert.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _offline_toys import mixed_dataset, normalised_score, pointmass_contract, rollout_returns
from tether.errors import TetherError
from tether.policies.checkpoint import load_policy
from tether.policies.flow import FlowGenerator
from tether.policies.offline.common import Critic, OfflineData, QGuidedConfig, train_q_guided
from tether.policies.offline.dql import DQLConfig, _action as dql_action, dql_actor, train_dql
from tether.policies.offline.iql import IQLConfig, expectile_loss, train_iql
from tether.policies.offline.ofql import OFQLConfig, _action as ofql_action, ofql_actor, train_ofql


@pytest.fixture(scope="module")
def data() -> OfflineData:
    return OfflineData.from_transitions(mixed_dataset(episodes=200, expert_frac=0.2, seed=0))


def test_offline_data_validates_its_input() -> None:
    d = mixed_dataset(episodes=4)
    with pytest.raises(TetherError, match="lack 'rewards'"):
        OfflineData.from_transitions({k: v for k, v in d.items() if k != "reward"})
    bad = dict(d, action=d["action"] * 3)
    with pytest.raises(TetherError, match=r"normalised actions in \[-1, 1\]"):
        OfflineData.from_transitions(bad)
    with pytest.raises(TetherError, match="disagree"):
        OfflineData.from_transitions(dict(d, reward=d["reward"][:-1]))


def test_expectile_loss_is_asymmetric() -> None:
    diff = torch.tensor([1.0, -1.0])
    assert float(expectile_loss(diff[:1], 0.9)) == pytest.approx(0.9)
    assert float(expectile_loss(diff[1:], 0.9)) == pytest.approx(0.1)


def test_ofql_actor_gradient_passes_one_network_call_dql_passes_the_chain(data: OfflineData) -> None:
    """OFQL's Q-term action is one call of the generator; Diffusion-QL backpropagates through all T steps."""
    c = pointmass_contract()
    calls: list[int] = []
    for actor, fn, expected in ((ofql_actor(c, OFQLConfig(hidden=(16,))), ofql_action, 1),
                                (dql_actor(c, DQLConfig(hidden=(16,), num_train_steps=5)), dql_action, 5)):
        hook = actor.model.denoiser.register_forward_hook(lambda *_: calls.append(1))
        calls.clear()
        a = fn(actor.model, actor.model.condition(torch.from_numpy(data.obs[:8])), torch.Generator().manual_seed(0))
        assert a.shape == (8, 2) and a.requires_grad
        a.sum().backward()
        assert len(calls) == expected
        assert all(p.grad is not None for p in actor.model.denoiser.parameters())
        hook.remove()


def test_q_guided_trainer_refuses_chunked_actors(data: OfflineData) -> None:
    from tether.policies.flow import FlowPolicy

    actor = FlowPolicy(pointmass_contract(), {"horizon": 4, "variant": "mean", "hidden": [8]})
    with pytest.raises(TetherError, match="act per step"):
        train_q_guided(actor, data, QGuidedConfig(steps=1), bc_loss=lambda *a: None, policy_action=lambda *a: None)


def test_iql_beats_behaviour_cloning_on_mixed_quality_data(data: OfflineData, tmp_path) -> None:
    c = pointmass_contract()
    cfg = dict(steps=2000, hidden=(128, 128), batch_size=256)
    iql = train_iql(c, data, IQLConfig(**cfg, beta=3.0), seed=0)
    # β = 0 makes every advantage weight 1: plain behaviour cloning, same network and budget
    bc = train_iql(c, data, IQLConfig(**cfg, beta=0.0), seed=0)
    s_iql = normalised_score(rollout_returns(iql.policy.act))
    s_bc = normalised_score(rollout_returns(bc.policy.act))
    assert s_iql > 0.8, s_iql
    assert s_iql > s_bc + 0.2, (s_iql, s_bc)
    # the critic ranks the expert's action above a random one at dataset states
    from _offline_toys import expert

    obs = data.obs[:256]
    rand = np.random.default_rng(1).uniform(-1, 1, obs.shape).astype(np.float32)
    assert np.mean(iql.critic.q_values(obs, expert(obs)) > iql.critic.q_values(obs, rand)) > 0.9
    # the policy and the critic round-trip through checkpoints
    iql.policy.save(tmp_path / "pi")
    assert np.array_equal(load_policy(tmp_path / "pi", c).act(obs), iql.policy.act(obs))
    iql.critic.save(tmp_path / "q", c)
    assert np.array_equal(Critic.load(tmp_path / "q").q_values(obs, rand), iql.critic.q_values(obs, rand))


@pytest.mark.slow
def test_ofql_matches_diffusion_ql_on_mixed_quality_data(data: OfflineData) -> None:
    c = pointmass_contract()
    # eta 2.5: Diffusion-QL's setting for noisy (medium-replay-like) data; both get the same knobs and budget
    common = dict(steps=2000, hidden=(128, 128), critic_hidden=(128, 128), num_candidates=1, ema_start=500, eta=2.5)
    dql_policy, _, _ = train_dql(c, data, DQLConfig(**common), seed=0)
    ofql_policy, ofql_actor_, _ = train_ofql(c, data, OFQLConfig(**common), seed=0)
    s_dql = normalised_score(rollout_returns(dql_policy.act))
    s_ofql = normalised_score(rollout_returns(ofql_policy.act))
    assert s_dql > 0.6, s_dql  # the reference itself learned the task (BC of this data scores ~0.2)
    assert s_ofql >= 0.95 * s_dql, (s_ofql, s_dql)
    assert isinstance(ofql_actor_.model, FlowGenerator) and ofql_actor_.model.steps == 1  # deployed in one step
