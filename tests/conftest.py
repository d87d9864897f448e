"""Shared test setup: deterministic, single-threaded torch so results do not depend on the machine's load,
and DDS traffic that only this run hears."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
# One DDS domain tag per test run (xdist workers and the processes tests start inherit it): served robots and
# deploys of another run on this host (a second CI job) share our domain ids but never hear us, nor we them.
os.environ.setdefault("TETHER_DDS_DOMAIN_TAG", f"tether-tests-{os.getpid()}-{os.urandom(4).hex()}")
# ... and one lock file per run, through which a timing measurement can have the machine to itself (tests/_machine.py)
os.environ.setdefault("TETHER_TEST_MACHINE_LOCK", os.path.join(
    os.environ.get("TMPDIR", "/tmp"), f"tether-tests-{os.getpid()}-{os.urandom(4).hex()}.lock"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a hard dependency; this only keeps collection readable
    pass


@pytest.fixture(autouse=True)
def _shared_machine():
    """Every test shares the machine with the other worker's, unless one asks for it alone (quiet_machine)."""
    from tests._machine import shared_machine

    with shared_machine():
        yield


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# The order the two workers take test files in (``make test`` runs ``--dist loadfile --no-loadscope-reorder``;
# files not named follow in collection order). First the module whose served-robot recordings need the machine to
# itself: each waits for the other worker's running test to end, which at the start is a short one, where later it
# could be a five-minute pipeline. Then the longest files first, so that the workers run out of work together
# rather than one idling while the other finishes a long file taken last (xdist's default order is by number of
# tests). Measured with ``--durations`` on 2026-12-06: pipeline 440 s, dagger 150 s, world_models_mbrl 133 s,
# offline_rl 100 s, robot_rl_cli 93 s, arm_push_served 76 s, deploy_safe_stop 71 s, hybrid 69 s, history_policy
# 64 s, generative_policies 60 s; everything else under a minute a file.
SCHEDULE = ("test_calibration_sysid_deploy.py", "test_pipeline.py", "test_dagger.py", "test_world_models_mbrl.py",
            "test_offline_rl.py", "test_robot_rl_cli.py", "test_arm_push_served.py", "test_deploy_safe_stop.py",
            "test_hybrid.py", "test_history_policy.py", "test_generative_policies.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SCHEDULE)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SCHEDULE)))  # stable: a file's own order is kept
