"""Command-line options and checks that several commands share (train, finetune, eval, wm fit).

Why a module of its own: the commands must read these options the same way (``--set KEY=VALUE`` repeatable,
``--threads`` torch threads, ``--ray ADDRESS``), and one command module must not import another (each
``tether CMD --help`` loads only CMD's module; tests/test_cli.py checks it). Only ``tether.cli_types`` is
imported at module level, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
from typing import Any

from tether.cli_types import key_value, ray_address, threads


def add_set_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", type=key_value, metavar="KEY=VALUE",
                   help="algorithm option override (repeatable)")


def add_progress_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=threads, default=1, help="torch CPU threads (default 1)")


def add_ray_option(p: argparse.ArgumentParser, what: str) -> None:
    """``--ray ADDRESS``: ``what`` says what runs on the cluster (e.g. "run the episodes")."""
    p.add_argument("--ray", metavar="ADDRESS", type=ray_address, default=None,
                   help=f"{what} on the Ray cluster at ADDRESS (HOST:PORT, auto, ray://HOST:PORT); "
                        "default: this machine, no Ray")


def add_training_options(p: argparse.ArgumentParser) -> None:
    """``--set``, ``--no-progress`` and ``--threads``: what every training command takes."""
    add_set_option(p)
    add_progress_option(p)
    add_threads_option(p)


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``--set`` values as {key: value string}; the algorithm's config parses the values."""
    from tether.errors import TetherError

    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise TetherError(f"--set {item!r}; expected KEY=VALUE (e.g. --set num_envs=16)")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def check_env_and_dr(env: str | None, dr: str | None, option: str = "ENV_ID") -> None:
    """Before any work: a tether/ id must be registered, and a .json DR option must hold valid terms."""
    if env is not None and env.startswith("tether/"):
        from tether.sim.registry import parse_env_id

        parse_env_id(env)
    if dr is not None:
        from tether.sim.randomization import check_dr_option

        check_dr_option(dr)


__all__ = ["add_progress_option", "add_ray_option", "add_set_option", "add_threads_option", "add_training_options",
           "check_env_and_dr", "parse_sets"]
