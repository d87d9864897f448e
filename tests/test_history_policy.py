"""An actor that reads a history adapts to a robot unlike the nominal one; a memoryless actor cannot.

The toy: a 1-D point mass whose actuator gain is drawn per episode from ±[0.5, 1.5] (sign included: a motor
wired backwards is the extreme case of "another robot"). From one observation (position error, last action)
no policy can tell which way its action will push; from a window of them it can. Same PPO budget for both.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from tether.contract import Field, IOContract
from tether.policies.checkpoint import load_policy
from tether.policies.evaluation import evaluate_policy
from tether.policies.rl.ppo import train_ppo

HORIZON = 30


class HiddenGainEnv(gym.Env):
    def __init__(self) -> None:
        self.contract = IOContract(
            robot="pointmass", task="hold", observations=(Field.make("pos_error", 1, "m", "world"),
                                                          Field.make("last_action", 1, "1", "")),
            actions=(Field.make("velocity", 1, "m/s", "world", low=-1.0, high=1.0),),
            control_mode="joint_torque", rate_hz=10.0)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.gain = self.np_random.choice([-1.0, 1.0]) * self.np_random.uniform(0.5, 1.5)
        self.x, self.a, self.t = self.np_random.uniform(-1.0, 1.0), 0.0, 0
        return self._obs(), {}

    def _obs(self):
        return np.array([-self.x, self.a], np.float32)

    def step(self, action):
        self.a = float(np.clip(np.asarray(action).reshape(-1)[0], -1, 1))
        self.x = float(np.clip(self.x + 0.2 * self.gain * self.a, -3, 3))
        self.t += 1
        done = self.t >= HORIZON
        return self._obs(), -abs(self.x), False, done, {"success": bool(done and abs(self.x) < 0.15)}


def _train(history: int, seed: int):
    torch.set_num_threads(1)
    cfg = {"history": history, "num_envs": 16, "rollout_steps": 60, "epochs": 8, "minibatch_size": 240,
           "lr": 3e-3, "hidden": (32, 32), "critic_hidden": (32, 32), "init_neutral_action": False}
    return train_ppo(HiddenGainEnv, 120_000, cfg, seed=seed)


@pytest.mark.parametrize("seed", [0, 1])
def test_history_policy_beats_memoryless_under_a_hidden_gain(seed, tmp_path):
    memoryless = evaluate_policy(_train(1, seed), HiddenGainEnv(), episodes=40, seed=7)
    with_history = _train(4, seed)
    adapted = evaluate_policy(with_history, HiddenGainEnv(), episodes=40, seed=7)
    print(f"seed {seed}: memoryless {memoryless.success_rate:.2f} / {memoryless.return_mean:.2f}, "
          f"history {adapted.success_rate:.2f} / {adapted.return_mean:.2f}")
    # measured (60k steps): memoryless 0.25 / 0.10 success, history 0.93 / 0.62; a sign it cannot see caps
    # the memoryless policy near half the episodes at best
    assert adapted.success_rate >= 0.7 and memoryless.success_rate <= 0.4
    assert adapted.return_mean > memoryless.return_mean + 4.0
    # the window travels with the checkpoint: the reloaded policy acts the same, episode by episode
    with_history.save(tmp_path / "ck")
    again = evaluate_policy(load_policy(tmp_path / "ck"), HiddenGainEnv(), episodes=40, seed=7)
    np.testing.assert_allclose(again.returns, adapted.returns, rtol=1e-6)


def test_policy_window_matches_the_trainer_window():
    """act() keeps its own window exactly as the trainer builds it: first observation repeated, then sliding."""
    from tether.policies.gaussian import GaussianPolicy
    from tether.policies.history import ObservationHistory

    env = HiddenGainEnv()
    pol = GaussianPolicy(env.contract, {"squash": "clip", "log_std": "state_independent", "history": 3,
                                        "net": {"hidden": [8], "act": "tanh", "layer_norm": False}})
    trainer = ObservationHistory(3)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(2, 2)).astype(np.float32)
    for _ in range(4):
        x = trainer.push(obs).reshape(2, -1)
        np.testing.assert_array_equal(pol.window(obs), x)
        obs = rng.normal(size=(2, 2)).astype(np.float32)
    trainer.reset(np.array([1]))  # row 1 starts a new episode (autoreset); row 0 goes on
    x = trainer.push(obs).reshape(2, -1)
    assert x[1, :2].tolist() == x[1, 2:4].tolist() == x[1, 4:].tolist() == obs[1].tolist()  # first obs, 3 times
    assert x[0, 4:].tolist() == obs[0].tolist() and x[0, :2].tolist() != obs[0].tolist()
    pol.reset()
    w = pol.window(obs[:1])
    assert w.shape == (1, 6) and np.all(w[0, :2] == obs[0]) and np.all(w[0, 4:] == obs[0])
