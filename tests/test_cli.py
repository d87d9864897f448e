"""The ``tether`` command table: it lists exactly what the command modules register, ``tether --help`` imports
no command module, and ``tether CMD --help`` imports only CMD's module and never torch."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tether.cli import COMMAND_MODULES, COMMANDS, main

REPO = Path(__file__).resolve().parents[1]


def test_static_table_matches_what_the_modules_register() -> None:
    registered: dict[str, tuple[str, str]] = {}
    for module in COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(sub)
        for action in sub._choices_actions:
            registered[action.dest] = (module, action.help)
    assert registered == COMMANDS


def test_help_and_unknown_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS) and COMMANDS["deploy"][1] in out
    with pytest.raises(SystemExit) as exc:
        main(["trian"])
    assert exc.value.code == 2 and "invalid choice: 'trian'" in capsys.readouterr().err


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_imports_only_the_chosen_command_module_and_no_torch(command: str | None) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from tether.cli import COMMAND_MODULES, main
        try:
            main([{command!r}, "--help"] if {command!r} else ["--help"])
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        loaded = sorted(m for m in COMMAND_MODULES if m in sys.modules)
        heavy = sorted(m for m in ("torch", "mujoco", "pybullet", "cyclonedds", "onnxruntime") if m in sys.modules)
        print("LOADED", loaded, "HEAVY", heavy, file=sys.stderr)
        """
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                         env={**os.environ})
    assert run.returncode == 0, run.stderr
    line = run.stderr.strip().splitlines()[-1]
    expected = [] if command is None else [COMMANDS[command][0]]
    assert line == f"LOADED {expected} HEAVY []", line


def test_train_says_when_ppo_rounds_steps_down_to_whole_rollouts(capsys: pytest.CaptureFixture[str]) -> None:
    from tether.policies.commands import _note_effective_steps

    _note_effective_steps("ppo", 5000, {})  # default 16 envs x 64 steps = 1024 per rollout
    assert "--steps 5000 trains 4096 env steps" in capsys.readouterr().out
    _note_effective_steps("ppo", 5000, {"num_envs": "10", "rollout_steps": "50"})  # a multiple: nothing to say
    _note_effective_steps("sac", 5000, {})
    assert capsys.readouterr().out == ""


def test_importing_the_pybullet_backend_prints_nothing() -> None:
    """pybullet's build banner stays out of `tether robot serve` output; the module still works afterwards."""
    code = ("import tether.sim.backends.pybullet_backend as b; c = b.pb.connect(b.pb.DIRECT); "
            "assert c >= 0; b.pb.disconnect(c); print('ready')")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert (run.stdout, run.stderr) == ("ready\n", "")
