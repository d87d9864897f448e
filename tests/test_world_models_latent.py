"""TD-MPC2-style latent world model: learns reward and latent dynamics on hover states, trains from rendered
low-resolution images, plans through the Planner, and round-trips through safetensors + JSON."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tether.errors import TetherError
from tether.policies.envs import make_env
from tether.world_models.collect import collect_transitions
from tether.world_models.latent import LatentConfig, LatentWorldModel
from tether.world_models.planners import Planner, PlannerConfig

ENV = "tether/QuadrotorHover-v0"


def test_latent_model_learns_hover_reward_and_dynamics() -> None:
    torch.set_num_threads(1)
    data = collect_transitions(ENV, 2000, noise=(0.2, 0.8), seed=0)
    train = {k: v[:1600] for k, v in data.items()}
    test = {k: v[1600:] for k, v in data.items()}
    model = LatentWorldModel(22, 4, LatentConfig(latent=32, hidden=(64, 64), horizon=3, batch_size=64, lr=1e-3))
    model.fit(train, updates=300)
    after = model.evaluate(test)
    print(after)
    # held-out, along 3-step open-loop latent rollouts: reward well below predicting the mean reward, and the
    # predicted latents far closer to the encoded real ones than random latents are to each other
    assert after["reward_mse"] < 0.7 * after["reward_mse_baseline"], after
    assert after["consistency"] < 0.5 * after["latent_spread"], after
    # the latent has not collapsed to a constant: different states map to different latents
    with torch.no_grad():
        z = model.encode(test["obs"][:200])
    assert float(z.std(0).mean()) > 1e-2


def test_latent_model_from_rendered_images_plans_and_round_trips(tmp_path) -> None:
    """Brief: 32x32 frames from a fixed camera in the MuJoCo renderer train the conv encoder end to end."""
    from tether.world_models.vision import collect_image_transitions

    torch.set_num_threads(1)
    data = collect_image_transitions(ENV, 120, size=32, seed=0, noise=(0.3, 0.8))
    assert data["obs"].shape == (120, 3, 32, 32) and data["obs"].dtype == np.uint8
    assert data["obs"].std() > 5  # a real image, not a blank frame
    cfg = LatentConfig(encoder="conv", image_shape=(3, 32, 32), latent=16, hidden=(64, 64), channels=8, horizon=3,
                       batch_size=16, lr=1e-3)
    model = LatentWorldModel(3 * 32 * 32, 4, cfg)
    conv0 = model.nets.encoder[0][0][0].weight.detach().clone()
    first = model.fit(data, updates=1)
    last = model.fit(data, updates=60)
    print("first", first, "last", last)
    assert all(np.isfinite(v) for v in last.values())
    # gradients reach the pixels' encoder, and the multi-step latent consistency and value losses fall
    assert not torch.equal(conv0, model.nets.encoder[0][0][0].weight)
    assert last["latent/consistency"] < 0.5 * first["latent/consistency"]
    assert last["latent/value"] < first["latent/value"]
    # plan in latent space through the Policy-shaped planner
    contract = make_env(ENV).unwrapped.contract
    planner = Planner(model, _image_contract(contract), PlannerConfig(horizon=5, samples=16, iterations=1))
    a = planner.act(data["obs"][:2].reshape(2, -1))
    assert a.shape == (2, 4) and np.all(np.abs(a) <= 1)
    model.save(tmp_path / "latent")
    loaded = LatentWorldModel.load(tmp_path / "latent")
    with torch.no_grad():
        np.testing.assert_array_equal(model.encode(data["obs"][:4]).numpy(), loaded.encode(data["obs"][:4]).numpy())


def _image_contract(contract):
    from tether.contract import Field, IOContract

    return IOContract(robot=contract.robot, task=contract.task,
                      observations=(Field.make("image", 3 * 32 * 32, "1", "camera", 0.0, 255.0),),
                      actions=contract.actions, control_mode=contract.control_mode, rate_hz=contract.rate_hz)


def test_latent_bad_input() -> None:
    with pytest.raises(TetherError, match="conv encoder needs image_shape"):
        LatentWorldModel(3072, 4, LatentConfig(encoder="conv"))
    with pytest.raises(TetherError, match="unknown latent encoder 'rnn'"):
        LatentWorldModel(22, 4, LatentConfig(encoder="rnn"))
    with pytest.raises(TetherError, match="multiple of simnorm_group"):
        LatentWorldModel(22, 4, LatentConfig(latent=30))
    m = LatentWorldModel(22, 4, LatentConfig(latent=16, hidden=(16,), horizon=3))
    rng = np.random.default_rng(0)
    shuffled = {"obs": rng.normal(size=(50, 22)), "action": rng.normal(size=(50, 4)), "reward": np.zeros(50),
                "next_obs": rng.normal(size=(50, 22)), "done": np.zeros(50)}
    with pytest.raises(TetherError, match="no run of 3 consecutive transitions"):
        m.fit(shuffled, updates=1)
    with pytest.raises(TetherError, match="missing 'reward'"):
        m.fit({k: v for k, v in shuffled.items() if k != "reward"}, updates=1)
