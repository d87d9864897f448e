"""Gymnasium finds Tether's envs the ways a third-party env package offers them, each in a fresh interpreter.

- The ``gymnasium.envs`` entry point of the installed package (pyproject), run as Gymnasium 0.26-0.29's
  ``load_plugin_envs`` runs it on ``import gymnasium``: a zero-argument function called inside
  ``namespace(<entry point name>)``.
- On Gymnasium >= 1.0, which no longer loads that group, the id with its module, ``"tether.sim:tether/..."``,
  after ``import gymnasium`` alone; and ``gymnasium.register_envs(tether.sim)``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _fresh(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=env)


def test_the_installed_entry_point_registers_the_envs_as_gymnasium_plugins_are_loaded() -> None:
    run = _fresh(
        """
        import sys
        from importlib import metadata
        import gymnasium
        from gymnasium.envs.registration import namespace, registry
        for eid in [e for e in registry if e.startswith("tether/")]:
            del registry[eid]  # whatever registered them before: only the plugin path counts here
        plugins = [p for p in metadata.entry_points(group="gymnasium.envs") if p.value.startswith("tether.")]
        assert [p.name for p in plugins] == ["tether"], (
            f"no tether entry point in the installed metadata: {plugins}; expected `pip install -e .` of this tree")
        for plugin in plugins:
            with namespace(plugin.name):  # what gymnasium<=0.29's load_plugin_envs does
                plugin.load()()
        env = gymnasium.make("tether/QuadrotorHover-v0")
        obs, _ = env.reset(seed=0)
        assert obs.shape == env.observation_space.shape
        from tether.sim.registry import all_env_ids
        assert sorted(e for e in registry if e.startswith("tether/")) == sorted(all_env_ids())
        print("ids", len(all_env_ids()))
        """
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert int(run.stdout.split("ids", 1)[1]) >= 7


def test_import_gymnasium_alone_then_make_a_tether_env() -> None:
    run = _fresh(
        """
        import sys
        import gymnasium
        assert "tether" not in sys.modules
        if int(gymnasium.__version__.split(".")[0]) < 1:  # plugins loaded on import: the bare id works
            env = gymnasium.make("tether/QuadrotorHover-v0")
        else:  # Gymnasium 1.x: the module-qualified id imports tether.sim, which registers every id
            env = gymnasium.make("tether.sim:tether/QuadrotorHover-v0")
            assert gymnasium.spec("tether/ArmReach-v0").entry_point == "tether.sim.env:TetherEnv"
        obs, _ = env.reset(seed=0)
        env.step(env.action_space.sample())
        import tether.sim
        gymnasium.register_envs(tether.sim)  # Gymnasium 1.x's idiom for an explicit import
        assert tether.sim.make("tether/ArmReach-v0").unwrapped.contract.robot == "arm"
        print("ok", gymnasium.__version__)
        """
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("ok")
