"""A tiny Gaussian policy with a toy contract: checkpoints for the security and disk-full tests in seconds."""

from __future__ import annotations

import numpy as np
import torch

from tether.contract import Field, IOContract
from tether.policies.gaussian import GaussianPolicy


def toy_contract(obs: int = 5, act: int = 2) -> IOContract:
    return IOContract(robot="toy", task="reach",
                      observations=(Field.make("pos", obs - 2, "m", "world"), Field.make("vel", 2, "m/s", "world")),
                      actions=(Field.make("force", act, "N", low=-3.0, high=3.0),),
                      control_mode="joint_torque", rate_hz=50.0)


def tiny_gaussian(seed: int = 0, extra: dict | None = None) -> GaussianPolicy:
    torch.manual_seed(seed)
    pol = GaussianPolicy(toy_contract(), {"net": {"hidden": [16, 16], "act": "tanh", "layer_norm": False}},
                         extra=extra)
    pol.obs_norm.update(np.random.default_rng(seed).normal(1.0, 2.0, size=(64, 5)))
    return pol
