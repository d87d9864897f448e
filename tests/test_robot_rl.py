"""Robot RL's learner (``tether.policies.hybrid.robot_rl``): the windows it trains on are the ones the deployed
actor stacks live, a history parent is copied into its actor, bad episodes are refused, and it learns on a robot
that differs from the simulator. The pipeline stage that runs it over DDS is exercised end to end in
``test_pipeline.py``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tether.errors import TetherError
from tether.policies.gaussian import GaussianPolicy, default_gaussian_config
from tether.policies.hybrid.robot_rl import Episode, RobotRL, episode_transitions, sim_episodes, stack_history
from tether.policies.rl.sac import train_sac
from tests.test_hybrid import SMALL, STEPS, real_return, sim_env, toy_contract

HISTORY = 3


def _history_parent(seed: int = 0) -> GaussianPolicy:
    """A PPO-style actor (clipped Gaussian, state-independent std) that reads the last HISTORY observations."""
    torch.manual_seed(seed)
    contract = toy_contract()
    policy = GaussianPolicy(contract, default_gaussian_config(
        contract.obs_size, contract.action_size, squash="clip", log_std="state_independent", head_scale=1.0,
        history=HISTORY, net={"hidden": [32, 32], "act": "tanh", "layer_norm": False}))
    policy.obs_norm.update(np.random.default_rng(seed).normal(0.3, 0.5, (500, contract.obs_size)))
    return policy


def _random_episodes(n: int, length: int, seed: int) -> list[Episode]:
    rng = np.random.default_rng(seed)
    return [Episode(rng.uniform(-1, 1, (length + 1, 2)), rng.uniform(-1, 1, (length, 2)), rng.normal(size=length))
            for _ in range(n)]


def test_training_windows_are_the_windows_the_deployed_actor_stacks_live() -> None:
    policy = _history_parent()
    seq = np.random.default_rng(1).normal(size=(7, 2)).astype(np.float32)
    policy.reset()
    live = np.stack([policy.window(o[None])[0] for o in seq])
    np.testing.assert_array_equal(stack_history(seq, HISTORY), live)
    # transitions: next_obs is the window one step on; the last transition of a crash is terminal
    ep = Episode(seq, np.zeros((6, 2)), np.arange(6.0), terminal=True)
    tr = episode_transitions([ep], HISTORY)
    np.testing.assert_array_equal(tr["next_obs"][:-1], tr["obs"][1:])
    assert tr["terminal"].tolist() == [0, 0, 0, 0, 0, 1]


def test_a_history_parent_is_copied_into_the_actor_on_its_windows() -> None:
    torch.set_num_threads(1)
    parent = _history_parent()
    rl = RobotRL(parent, _random_episodes(20, 30, seed=2),
                 dict(SMALL, distill_steps=1500, critic_warmup=10), seed=0)
    actor = rl.policy
    assert rl.actor_init == "distilled" and actor.history == HISTORY and actor.config["squash"] == "tanh"
    torch.testing.assert_close(actor.obs_norm.mean, parent.obs_norm.mean)
    seq = np.random.default_rng(3).uniform(-1, 1, (40, 2)).astype(np.float32)
    parent.reset(), actor.reset()
    want = np.stack([parent.act(o) for o in seq])
    got = np.stack([actor.act(o) for o in seq])
    assert np.abs(got - want).mean() < 0.1, np.abs(got - want).mean()


def test_bad_episodes_and_policies_are_refused() -> None:
    with pytest.raises(TetherError, match="expected \\(T\\+1, obs\\)"):
        Episode(np.zeros((5, 2)), np.zeros((5, 2)), np.zeros(5))
    with pytest.raises(TetherError, match="every episode is empty"):
        episode_transitions([Episode(np.zeros((1, 2)), np.zeros((0, 2)), np.zeros(0))], 1)

    class NotGaussian:
        contract = toy_contract()

    with pytest.raises(TetherError, match="expected a policy trained with --algo ppo or sac"):
        RobotRL(NotGaussian(), _random_episodes(1, 5, seed=0))  # type: ignore[arg-type]


DRIFT = 0.06


def _drifting_env():
    """The point mass of ``test_hybrid`` with a steady push of DRIFT m per step along x that the simulator does not
    have (think of a quadrotor heavier than modelled, sagging below its set point)."""
    from tests.test_hybrid import PatchEnv

    class Drifting(PatchEnv):
        def step(self, action):
            _, _, te, tr, info = super().step(action)
            self.s = np.clip(self.s + np.array([DRIFT, 0.0]), -1.5, 1.5)
            return self.s.astype(np.float32), 1.0 - float(np.linalg.norm(self.s)), te, tr, info

    return Drifting(0.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_robot_rl_learns_what_the_simulator_left_out(seed) -> None:
    """A sim-trained actor on a robot with a drift the simulator lacks: two rounds of four robot episodes
    (exploration 0.1, updates between them, the defaults' anchor and sim share) must raise its return on the
    robot. Measured (learner seeds 0 / 1): 16.75 before, 18.76 / 18.66 after round 2; with the strong anchor
    (bc_weight 2.5, actor lr 3e-5) it stays at 16.8."""
    torch.set_num_threads(1)
    sim_policy = train_sac(sim_env, STEPS, dict(SMALL, learning_starts=250), seed=0).policy
    before = real_return(sim_policy, make_env=_drifting_env)
    rl = RobotRL(sim_policy, sim_episodes(sim_env, sim_policy, 40, explore=0.2, seed=0),
                 dict(hidden=(64, 64), critic_hidden=(64, 64), batch_size=128, gamma=0.9), seed=seed)
    assert rl.actor_init == "weights"
    for r in range(ROUNDS):
        rl.add(sim_episodes(_drifting_env, rl.policy, 4, explore=0.1, seed=100 + 10 * r))
        rl.improve()
    after = real_return(rl.policy, make_env=_drifting_env)
    print(f"return on the drifting robot: {before:.2f} -> {after:.2f}")
    assert after > before + GAIN, (before, after)
    assert rl.policy.extra["robot_transitions"] == ROUNDS * 4 * 25 and rl.policy.extra["gradient_updates"] > 0


ROUNDS, GAIN = 2, 1.0


def test_a_memoryless_learner_still_copies_a_history_parent_and_a_mismatched_sac_actor_is_refused() -> None:
    """H2O and RLPD build memoryless learners: a history parent (the pipeline's quadrotor) is copied as it acts
    on a held observation, as before robot RL; taking over a SAC actor whose input differs is refused."""
    from tether.policies.hybrid.common import warm_start_actor
    from tether.policies.rl.sac import SAC, SACConfig

    torch.set_num_threads(1)
    parent = _history_parent()
    states = np.random.default_rng(4).uniform(-1, 1, (300, 2)).astype(np.float32)
    sac = SAC(toy_contract(), SACConfig(hidden=(32, 32), critic_hidden=(32, 32)), seed=0)
    assert warm_start_actor(sac, parent, states, steps=800) == "distilled"
    parent.reset()
    err = np.abs(sac.policy.act(states) - parent.act(states)).mean()  # a fresh window: the held observation
    assert err < 0.1, err
    sac_parent = SAC(toy_contract(), SACConfig(hidden=(32, 32), history=HISTORY), seed=0).policy
    with pytest.raises(TetherError, match="expected the learner built with the policy's history"):
        warm_start_actor(SAC(toy_contract(), SACConfig(hidden=(32, 32)), seed=0), sac_parent, states)
