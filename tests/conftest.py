"""Shared test setup: deterministic, single-threaded torch so results do not depend on the machine's load,
and DDS traffic that only this run hears."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
# One DDS domain tag per test run (xdist workers and the processes tests start inherit it): served robots and
# deploys of another run on this host (a second CI job) share our domain ids but never hear us, nor we them.
os.environ.setdefault("TETHER_DDS_DOMAIN_TAG", f"tether-tests-{os.getpid()}-{os.urandom(4).hex()}")

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
