"""The ``tether`` command: one entry point whose subcommands live beside the code they drive.

Each command module exposes ``register(subparsers)``; it adds its parser(s) and sets ``func`` to a handler
taking the parsed args and returning an exit code. Handlers import heavy dependencies lazily so that
``tether --help`` stays fast. Bad input anywhere becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tether.errors import TetherError

# Modules that contribute subcommands, in the order they appear in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "tether.sim.commands",
    "tether.calibration.commands",
    "tether.data.commands",
    "tether.policies.commands",
    "tether.policies.hybrid.commands",
    "tether.world_models.commands",
    "tether.ros.bag_commands",
    "tether.ros.commands",
    "tether.pipeline.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tether", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("tether: interrupted", file=sys.stderr)
        return 130
    except (TetherError, ValueError, KeyError, FileNotFoundError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"tether: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
