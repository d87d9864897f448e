"""Argument types for every ``tether`` command: numbers, paths and names checked while argparse parses.

Why at parse time: a bad ``--steps -5`` or an ``--out`` inside a read-only folder must be refused before any
simulator starts, any folder is created or any torch import is paid for. Each type here raises
``argparse.ArgumentTypeError`` with what was wrong and what was expected; ``TetherArgumentParser`` prints that as
the single line ``tether CMD: error: argument --x: ...`` and exits with code 2.

Only the standard library is imported (``tether --help`` stays fast); nothing here creates files or folders
(the writability probe makes and removes one empty temporary file in the existing folder it checks).

Usage::

    p.add_argument("--steps", type=positive_int)
    p.add_argument("--gain", type=finite_float(0.0, 10.0))
    p.add_argument("--out", type=output_dir)

Caps worth knowing: ``seed`` is 0..2**32-1 (what numpy's generators accept), ``threads`` 1..1024,
``domain_id`` 0..232 (DDS's UDP port mapping), ``widths`` at most 64 layers of 1..65 536.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

ArgType = Callable[[str], Any]

MAX_SEED = 2**32 - 1
MAX_THREADS = 1024
MAX_DOMAIN_ID = 232
MAX_LAYERS = 64
MAX_WIDTH = 65_536
MAX_TEXT = 4096


class TetherArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (no usage block) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        one_line = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {one_line} (see {self.prog} --help)\n")


def _fail(text: str, expected: str) -> NoReturn:
    raise argparse.ArgumentTypeError(f"{_show(text)} {expected}")


def _show(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _named(fn: ArgType, name: str) -> ArgType:
    fn.__name__ = name  # argparse names the type in its fallback message
    return fn


# --------------------------------------------------------------------------------------------- numbers
def int_range(lo: int | None = None, hi: int | None = None, what: str = "a whole number") -> ArgType:
    """A whole number in [lo, hi] (either bound optional)."""
    span = (f">= {lo}" if hi is None else f"in {lo}..{hi}") if lo is not None else (
        f"<= {hi}" if hi is not None else "")

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            _fail(text, f"is not a whole number; expected {what} {span}".rstrip())
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            _fail(text, f"is out of range; expected {what} {span}")
        return value

    return _named(parse, "int")


def finite_float(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                 hi_open: bool = False, what: str = "a finite number") -> ArgType:
    """A finite number (no nan/inf) in [lo, hi]; ``lo_open``/``hi_open`` exclude the bound."""
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi:g}")
    span = " and ".join(parts)

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            _fail(text, f"is not a number; expected {what} {span}".rstrip())
        if not math.isfinite(value):
            _fail(text, f"is not finite; expected {what} {span}".rstrip())
        if lo is not None and (value <= lo if lo_open else value < lo):
            _fail(text, f"is out of range; expected {what} {span}")
        if hi is not None and (value >= hi if hi_open else value > hi):
            _fail(text, f"is out of range; expected {what} {span}")
        return value

    return _named(parse, "float")


positive_int = int_range(1)
nonneg_int = int_range(0)
seed = int_range(0, MAX_SEED, "a seed")
threads = int_range(1, MAX_THREADS, "a thread count")
domain_id = int_range(0, MAX_DOMAIN_ID, "a DDS domain id")
positive_float = finite_float(0.0, lo_open=True)
nonneg_float = finite_float(0.0)
probability = finite_float(0.0, 1.0, what="a probability")


def widths(text: str) -> tuple[int, ...]:
    """Comma-separated hidden-layer widths, e.g. ``200,200,200``."""
    try:
        out = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        _fail(text, "is not a list of widths; expected comma-separated whole numbers like 200,200,200")
    if not 1 <= len(out) <= MAX_LAYERS or not all(1 <= w <= MAX_WIDTH for w in out):
        _fail(text, f"is out of range; expected 1..{MAX_LAYERS} widths, each in 1..{MAX_WIDTH}")
    return out


# --------------------------------------------------------------------------------------------- paths
def _path(text: str) -> Path:
    if not text or "\x00" in text or len(text) > MAX_TEXT:
        _fail(text, "is not a usable path")
    return Path(text).expanduser()


def existing_file(text: str) -> Path:
    """A file that exists and can be read."""
    p = _path(text)
    if p.is_dir():
        _fail(text, "is a directory; expected a file")
    if not p.is_file():
        _fail(text, "does not exist or is not a regular file; expected an existing file")
    if not os.access(p, os.R_OK):
        _fail(text, "cannot be read (permission denied); expected a readable file")
    return p


def existing_dir(text: str) -> Path:
    """A directory that exists and can be listed."""
    p = _path(text)
    if p.is_file():
        _fail(text, "is a file; expected a directory")
    if not p.is_dir():
        _fail(text, "does not exist; expected an existing directory")
    if not os.access(p, os.R_OK | os.X_OK):
        _fail(text, "cannot be read (permission denied); expected a readable directory")
    return p


def existing_path(text: str) -> Path:
    """A file or directory that exists (e.g. a rosbag2 directory or its .mcap file)."""
    p = _path(text)
    if not p.exists():
        _fail(text, "does not exist; expected an existing file or directory")
    if not os.access(p, os.R_OK):
        _fail(text, "cannot be read (permission denied)")
    return p


def existing_bag(text: str) -> Path:
    """A rosbag2 bag by the name given to ``--record`` (``out.mcap`` finds the directory ``out``), or its file."""
    from tether.bag_names import resolve_bag

    p = resolve_bag(_path(text))
    if not p.exists():
        _fail(text, "does not exist; expected a rosbag2 bag (the name given to --record, its directory or its file)")
    if not os.access(p, os.R_OK):
        _fail(text, "cannot be read (permission denied)")
    return p


def _nearest_existing(p: Path, text: str) -> Path:
    """The closest ancestor of ``p`` that exists; a file on the way is an error (it cannot hold a folder)."""
    anc = p.absolute().parent
    while not anc.exists():
        if anc.parent == anc:
            break
        anc = anc.parent
    if not anc.is_dir():
        _fail(text, f"cannot be created: {str(anc)!r} is a file, not a directory; expected a path in a directory")
    return anc


def _probe_writable(folder: Path, text: str) -> None:
    """Create and remove one empty temporary file: the only reliable test (root ignores mode bits, a read-only
    mount does not, and os.access cannot tell)."""
    import tempfile

    try:
        fd, name = tempfile.mkstemp(prefix=".tether-probe-", dir=folder)
    except OSError as exc:
        _fail(text, f"cannot be written: {str(folder)!r} is not writable ({exc.strerror}); expected a writable "
                    "location")
    os.close(fd)
    try:
        os.unlink(name)
    except OSError:
        pass


def output_dir(text: str) -> Path:
    """A directory to write into: an existing directory, or a new one whose closest existing ancestor is a
    writable directory (missing parents are created later, like ``mkdir -p``). Nothing is created here."""
    p = _path(text)
    if p.exists():
        if not p.is_dir():
            _fail(text, "is a file; expected a directory (or a path where one can be created)")
        _probe_writable(p, text)
    else:
        _probe_writable(_nearest_existing(p, text), text)
    return p


def output_file(suffix: str | tuple[str, ...] | None = None) -> ArgType:
    """A file to write: its folder must exist and be writable (no folders are created); an existing path must
    be a regular file (it is replaced); ``suffix`` restricts the extension (e.g. ``.onnx``)."""
    suffixes = (suffix,) if isinstance(suffix, str) else suffix

    def parse(text: str) -> Path:
        p = _path(text)
        if suffixes and p.suffix.lower() not in suffixes:
            _fail(text, f"has the wrong extension; expected a {' or '.join(suffixes)} file")
        if p.is_dir() or text.endswith(("/", os.sep)):
            _fail(text, "is a directory; expected a file name")
        if p.exists() and not p.is_file():
            _fail(text, "exists and is not a regular file; expected a file name")
        parent = p.absolute().parent
        if not parent.exists():
            _fail(text, f"cannot be written: its folder {str(parent)!r} does not exist; expected an existing folder")
        if not parent.is_dir():
            _fail(text, f"cannot be written: {str(parent)!r} is a file, not a directory; expected a path in a folder")
        _probe_writable(parent, text)
        return p

    return _named(parse, "file")


# --------------------------------------------------------------------------------------------- names
def one_of(*choices: str, what: str = "value") -> ArgType:
    """One of ``choices``, refused as ``unknown WHAT 'x'; expected one of a, b`` (argparse's ``choices=`` says
    "invalid choice"; this keeps Tether's wording for names the library also checks, such as backends)."""

    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"unknown {what} {_show(text)}; expected one of {', '.join(choices)}")
        return text

    return _named(parse, what)


backend = one_of("mujoco", "pybullet", what="backend")


_ENV_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)?")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,127}")
_TOPIC = re.compile(r"/?[A-Za-z_~][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*")
_MSGTYPE = re.compile(r"[A-Za-z][A-Za-z0-9_]*/(msg|srv|action)/[A-Za-z][A-Za-z0-9_]*")
_HOST_PORT = re.compile(r"(ray://)?[A-Za-z0-9_.\-\[\]:]+:[0-9]{1,5}")


def env_id(text: str) -> str:
    """An env id as typed by the user: ``tether/<Robot><Task>-v0`` or a plain Gymnasium id such as
    ``Pendulum-v1``. Gymnasium's ``module:id`` form (which imports ``module``) is refused everywhere."""
    if ":" in text:
        _fail(text, "names a module to import (module:id); expected a registered env id such as "
                    "tether/QuadrotorHover-v0 or Pendulum-v1")
    if len(text) > 128 or not _ENV_ID.fullmatch(text):
        _fail(text, "is not an env id; expected e.g. tether/QuadrotorHover-v0 or Pendulum-v1")
    return text


def name(text: str) -> str:
    """A short identifier-like name (algorithm, preset, task, mapping)."""
    if not _NAME.fullmatch(text):
        _fail(text, "is not a name; expected letters, digits, '_', '-' or '.' (at most 128)")
    return text


def dr_spec(text: str) -> str:
    """A DR preset name (none, default, wide, ...) or an existing ``.json`` file of terms (its content is checked
    by the command before work starts, with ``tether.sim.randomization.terms_from_file``)."""
    if text.lower().endswith(".json"):
        p = existing_file(text)
        from tether.validation import MAX_JSON_BYTES  # stdlib-only module

        if p.stat().st_size > MAX_JSON_BYTES:
            _fail(text, f"is larger than {MAX_JSON_BYTES} bytes; expected a small JSON file of DR terms")
        return str(p)
    if not _NAME.fullmatch(text):
        _fail(text, "is neither a DR preset name nor a .json file; expected e.g. none, default, wide or terms.json")
    return text


def key_value(text: str) -> str:
    """``KEY=VALUE`` (an algorithm option override)."""
    key, sep, value = text.partition("=")
    if not sep or not _KEY.fullmatch(key.strip()) or len(value) > MAX_TEXT:
        _fail(text, "is not KEY=VALUE; expected e.g. num_envs=16")
    return text


def ros_topic(text: str) -> str:
    """A ROS 2 topic name such as ``/joint_states``."""
    if len(text) > 256 or not _TOPIC.fullmatch(text):
        _fail(text, "is not a ROS topic name; expected e.g. /joint_states")
    return text


def msg_type(text: str) -> str:
    """A ROS 2 message type such as ``sensor_msgs/msg/JointState``."""
    if len(text) > 256 or not _MSGTYPE.fullmatch(text):
        _fail(text, "is not a message type; expected pkg/msg/Type, e.g. sensor_msgs/msg/JointState")
    return text


def topic_spec(text: str) -> tuple[str, str]:
    """``/topic:pkg/msg/Type``."""
    topic, sep, mtype = text.partition(":")
    if not sep:
        _fail(text, "is not a topic spec; expected /topic:pkg/msg/Type")
    return ros_topic(topic), msg_type(mtype)


def ray_address(text: str) -> str:
    """``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``."""
    if text != "auto":
        if not _HOST_PORT.fullmatch(text) or not 0 < int(text.rsplit(":", 1)[1]) < 65536:
            _fail(text, "is not a Ray address; expected auto, HOST:PORT or ray://HOST:PORT")
    return text


def one_line(exc: BaseException) -> str:
    """An exception as one line for the CLI: its message, whitespace collapsed."""
    return " ".join(str(exc).split()) or type(exc).__name__


def print_error(message: str, prog: str = "tether") -> None:
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)


__all__ = [
    "MAX_DOMAIN_ID", "MAX_LAYERS", "MAX_SEED", "MAX_THREADS", "MAX_WIDTH", "TetherArgumentParser", "backend",
    "domain_id",
    "dr_spec", "env_id", "existing_dir", "existing_file", "existing_path", "finite_float", "int_range", "key_value",
    "msg_type", "name", "nonneg_float", "one_of", "nonneg_int", "one_line", "output_dir", "output_file", "positive_float",
    "positive_int", "print_error", "probability", "ray_address", "ros_topic", "seed", "threads", "topic_spec",
    "widths",
]
