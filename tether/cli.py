"""The ``tether`` command: one entry point whose subcommands live beside the code they drive.

Each command module exposes ``register(subparsers)``; it adds its parser(s) and sets ``func`` to a handler
taking the parsed args and returning an exit code. Bad input anywhere becomes one line on stderr and exit code 2:
argument types from ``tether.cli_types`` check every number and path while parsing (before any work), and
``TetherArgumentParser`` prints their message as one line. A file system that refuses to write during the work
(disk full, read-only, permission denied, a file where a folder was expected) ends with one line and exit code
1; the writers keep what they had written readable (datasets, bags and checkpoints are written atomically).

Why a static table: building every subcommand's parser meant importing every command module (and through some
of them torch and the simulators), which made ``tether --help`` take seconds. ``COMMANDS`` names each command
with its help line, so ``tether --help`` imports no command module and ``tether CMD ...`` imports only CMD's
(whose module keeps heavy imports inside its handlers). A test checks the table against what the modules
register, so the two cannot drift.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from collections.abc import Sequence

from tether.cli_types import TetherArgumentParser, one_line, print_error
from tether.errors import TetherError

# command -> (module that registers it, help line), in the order --help lists them
COMMANDS: dict[str, tuple[str, str]] = {
    "sim": ("tether.sim.commands", "list robots/tasks/DR presets; roll out an env"),
    "calibrate": ("tether.calibration.commands", "camera intrinsics, hand-eye, system identification, latency"),
    "demos": ("tether.data.commands", "record scripted-expert episodes of an env into a dataset"),
    "data": ("tether.data.commands", "inspect, convert and repair episode datasets"),
    "train": ("tether.policies.commands", "train a policy in simulation (or from a dataset) and save a checkpoint"),
    "eval": ("tether.policies.commands", "evaluate a checkpoint: success rate and return mean ± std"),
    "export": ("tether.policies.commands", "export a checkpoint to ONNX with an enforced parity check"),
    "finetune": ("tether.policies.hybrid.commands",
                 "fine-tune a checkpoint with real data (H2O, RLPD or robot RL) and save a new checkpoint"),
    "wm": ("tether.world_models.commands",
           "world models: fit an ensemble dynamics model to a dataset, evaluate it"),
    "bag": ("tether.ros.bag_commands", "rosbag2 (MCAP) tools: info, recover, record"),
    "topic": ("tether.ros.bag_commands", "ROS 2 graph over Cyclone DDS: list, echo"),
    "robot": ("tether.ros.commands", "served sim robots that speak a real robot's ROS 2 topics"),
    "deploy": ("tether.ros.commands", "run a checkpoint on a robot over ROS 2 (guarded, recorded)"),
    "security": ("tether.ros.security_commands", "DDS Security keystores (SROS2 layout): CA, enclaves, permissions"),
    "pipeline": ("tether.pipeline.commands",
                 "train → deploy to a served robot → record → fine-tune → deploy → report"),
    "robot-rl": ("tether.pipeline.commands",
                 "fine-tune a checkpoint on a running robot, episode by episode over ROS 2"),
}
# Modules that contribute subcommands (kept for callers that build the full parser).
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(module for module, _ in COMMANDS.values()))


def _parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = TetherArgumentParser(prog="tether", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    return parser, sub


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for ``command`` (only its module is imported), or with ``None`` every command's full parser."""
    parser, sub = _parser()
    modules = COMMAND_MODULES if command is None else (COMMANDS[command][0],)
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def _overview_parser() -> argparse.ArgumentParser:
    """Every command with its help line and nothing else: what ``tether --help`` and a typo need."""
    parser, sub = _parser()
    for name, (_, help_line) in COMMANDS.items():
        sub.add_parser(name, help=help_line, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command is None or command not in COMMANDS or argv[0] != command:
        _overview_parser().parse_args(argv)  # prints help or names the unknown command; exits
        return 2  # pragma: no cover (argparse exits above)
    try:
        args = build_parser(command).parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad argument (2, its one line already printed): return the code
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("tether: interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:  # a path that was not what it said
        print_error(os_error_line(exc))
        return 2
    except (TetherError, ValueError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print_error(one_line(msg) if isinstance(msg, BaseException) else str(msg))
        return 2
    except OSError as exc:  # the file system refused during the work: disk full, read-only, no permission
        print_error(os_error_line(exc))
        return 1


def os_error_line(exc: OSError) -> str:
    """One line for an OSError met while working: the errno's text and name, the file, and what to do."""
    name = errno.errorcode.get(exc.errno or 0, "")
    text = exc.strerror or one_line(exc)
    where = f": {exc.filename!s}" if exc.filename else ""
    hint = {errno.ENOSPC: "free some space and run again", errno.EDQUOT: "free some space and run again",
            errno.EROFS: "choose a writable location", errno.EACCES: "check the permissions",
            errno.EPERM: "check the permissions"}.get(exc.errno or 0)
    return f"{text}{f' ({name})' if name else ''}{where}{f'; {hint}' if hint else ''}"


if __name__ == "__main__":
    sys.exit(main())
