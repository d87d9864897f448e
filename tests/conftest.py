"""Shared test setup: deterministic, single-threaded torch so results do not depend on the machine's load."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a hard dependency; this only keeps collection readable
    pass


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
