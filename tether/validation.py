"""Bounded, typed reading of files that come from outside: JSON, folders of files, and the values inside them.

Why one home: a checkpoint, a dataset's meta files, a DR preset file and a served robot's params file all come
from disks and people we do not control. Each is read here with the same limits (file size, nesting depth,
entry counts), the same refusal of symlinks and non-regular files, and the same schema helpers, so a
200 000-deep nesting or a ``NaN`` becomes one ``TetherError`` line naming the file, the field and what was
expected, never a ``RecursionError``, a huge allocation or a silently used NaN.

Only the standard library is imported here: the CLI, ``data``, ``policies``, ``sim`` and ``ros`` all use it.

Limits (documented caps; callers may pass tighter ones):

- ``MAX_JSON_BYTES`` 16 MiB per JSON file (a checkpoint's ``checkpoint.json`` is a few hundred KiB at most);
- ``MAX_JSON_DEPTH`` 64 levels of nesting (Tether's own files nest fewer than 10);
- ``MAX_FOLDER_ENTRIES`` 200 000 files and folders walked in a checkpoint or dataset folder, ``MAX_FOLDER_DEPTH``
  32 levels below its root.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import re
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tether.errors import TetherError

MAX_JSON_BYTES = 16 * 2**20
MAX_JSON_DEPTH = 64
MAX_FOLDER_ENTRIES = 200_000
MAX_FOLDER_DEPTH = 32
MAX_STRING = 4096  # characters in a name-like string field (ids, units, kinds)
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class ValidationError(TetherError):
    """A file or value from outside is malformed, too large, or not what the schema expects."""


# --------------------------------------------------------------------------------------------- files and folders
def check_regular_file(path: str | Path, what: str, *, max_bytes: int | None = None,
                       follow_link: bool = False) -> Path:
    """``path`` is a regular file (no FIFO or device, which could block or never end) of at most ``max_bytes``.

    A symbolic link is refused unless ``follow_link`` (a path the user typed may be a link; a path inside a
    checkpoint or dataset folder may not): then its target must be a regular file."""
    p = Path(path)
    try:
        st = os.stat(p) if follow_link else os.lstat(p)
    except FileNotFoundError:
        raise ValidationError(f"{what} {str(p)!r} does not exist; expected a file") from None
    except OSError as exc:
        raise ValidationError(f"{what} {str(p)!r} cannot be read ({exc.strerror}); expected a readable file") from None
    if stat.S_ISLNK(st.st_mode):
        raise ValidationError(f"{what} {str(p)!r} is a symbolic link; expected a regular file (links are never "
                              "followed)")
    if not stat.S_ISREG(st.st_mode):
        raise ValidationError(f"{what} {str(p)!r} is not a regular file; expected a file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise ValidationError(f"{what} {str(p)!r} is {st.st_size} bytes; expected at most {max_bytes}")
    return p


def walk_folder(root: str | Path, what: str, *, max_entries: int = MAX_FOLDER_ENTRIES,
                max_depth: int = MAX_FOLDER_DEPTH) -> list[str]:
    """Every regular file under ``root`` as a sorted list of '/'-separated relative paths.

    A symbolic link or anything that is not a regular file or a directory (FIFO, socket, device) anywhere
    inside is refused, so nothing is ever read from outside the folder; so are more than ``max_entries``
    entries or folders nested deeper than ``max_depth``. ``root`` itself may be a link the user typed.
    """
    top = Path(root)
    if not top.is_dir():
        raise ValidationError(f"{what} {str(top)!r} does not exist or is not a directory; expected a directory")
    files: list[str] = []
    count = 0
    stack: list[tuple[Path, tuple[str, ...]]] = [(top, ())]
    while stack:
        folder, rel = stack.pop()
        if len(rel) > max_depth:
            raise ValidationError(f"{what} {str(top)!r} nests folders deeper than {max_depth} levels")
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise ValidationError(f"{what} {str(folder)!r} cannot be listed ({exc.strerror})") from None
        for entry in entries:
            count += 1
            if count > max_entries:
                raise ValidationError(f"{what} {str(top)!r} holds more than {max_entries} entries")
            name = "/".join((*rel, entry.name))
            if entry.is_symlink():
                raise ValidationError(f"{what} {str(top)!r} contains a symbolic link {name!r}; expected only "
                                      "regular files (links are never followed out of the folder)")
            if entry.is_dir(follow_symlinks=False):
                stack.append((Path(entry.path), (*rel, entry.name)))
            elif entry.is_file(follow_symlinks=False):
                files.append(name)
            else:
                raise ValidationError(f"{what} {str(top)!r} contains {name!r}, which is not a regular file "
                                      "(a FIFO, socket or device); expected only regular files")
    return sorted(files)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------- JSON
def loads_json(data: str | bytes, what: str, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH,
               finite: bool = False) -> Any:
    """Parse JSON text with bounded size and nesting; ``finite`` also refuses NaN/Infinity anywhere."""
    size = len(data.encode() if isinstance(data, str) else data)
    if size > max_bytes:
        raise ValidationError(f"{what} is {size} bytes of JSON; expected at most {max_bytes}")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError(f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start}); expected JSON") \
                from None
    try:
        value = json.loads(data)
    except RecursionError:
        raise ValidationError(f"{what} nests deeper than {max_depth} levels; expected a shallow JSON document") \
            from None
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{what} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                              "expected a JSON document") from None
    except ValueError as exc:  # e.g. an integer literal with more digits than Python converts
        raise ValidationError(f"{what} is not usable JSON ({exc})") from None
    depth = json_depth(value, max_depth)
    if depth > max_depth:
        raise ValidationError(f"{what} nests deeper than {max_depth} levels; expected a shallow JSON document")
    if finite:
        check_finite(value, what)
    return value


def read_json(path: str | Path, what: str, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH,
              finite: bool = False, follow_link: bool = False) -> Any:
    """A JSON file that must be a regular file (no symlink unless ``follow_link``) of at most ``max_bytes``,
    nested at most ``max_depth``."""
    p = check_regular_file(path, what, max_bytes=max_bytes, follow_link=follow_link)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ValidationError(f"{what} {str(p)!r} cannot be read ({exc.strerror})") from None
    return loads_json(data, f"{what} {str(p)!r}", max_bytes=max_bytes, max_depth=max_depth, finite=finite)


def json_depth(value: Any, stop: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), counted without recursion; stops past ``stop``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = list(v.values())
        if isinstance(v, list):
            d += 1
            deepest = max(deepest, d)
            if deepest > stop:
                return deepest
            stack.extend((x, d) for x in v if isinstance(x, (dict, list)))
    return deepest


def _walk(value: Any) -> Iterable[tuple[tuple[Any, ...], Any]]:
    """(path, leaf) for every scalar of a parsed JSON value, without recursion."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), value)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, dict):
            stack.extend(((*path, k), x) for k, x in v.items())
        elif isinstance(v, (list, tuple)):
            stack.extend(((*path, i), x) for i, x in enumerate(v))
        else:
            yield path, v


def field_path(path: Iterable[Any]) -> str:
    """('config', 'net', 'hidden', 0) -> 'config.net.hidden[0]'."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def check_finite(value: Any, what: str) -> None:
    """Every number inside ``value`` is finite (no NaN, no ±inf)."""
    for path, leaf in _walk(value):
        if isinstance(leaf, float) and not math.isfinite(leaf):
            raise ValidationError(f"{what}: {field_path(path)} is {leaf}; expected a finite number")


# --------------------------------------------------------------------------------------------- schema helpers
def _tname(v: Any) -> str:
    return "null" if v is None else {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(v), type(v).__name__)


def expect_dict(value: Any, where: str, *, required: Iterable[str] = (), allowed: Iterable[str] | None = None,
                max_items: int = 10_000) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(f"{where} is a JSON {_tname(value)}; expected an object")
    if len(value) > max_items:
        raise ValidationError(f"{where} has {len(value)} keys; expected at most {max_items}")
    missing = [k for k in required if k not in value]
    if missing:
        raise ValidationError(f"{where} is missing {', '.join(repr(k) for k in missing)}; expected an object with "
                              f"{', '.join(repr(k) for k in required)}")
    if allowed is not None:
        allowed = set(allowed) | set(required)
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ValidationError(f"{where} has unknown keys {unknown}; expected some of {sorted(allowed)}")
    return value


def expect_list(value: Any, where: str, *, max_len: int = 100_000, min_len: int = 0) -> list[Any]:
    if not isinstance(value, list):
        raise ValidationError(f"{where} is a JSON {_tname(value)}; expected an array")
    if not min_len <= len(value) <= max_len:
        raise ValidationError(f"{where} has {len(value)} entries; expected {min_len}..{max_len}")
    return value


def expect_str(value: Any, where: str, *, max_len: int = MAX_STRING, pattern: re.Pattern[str] | None = None,
               expected: str = "") -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{where} is a JSON {_tname(value)}; expected a string{expected and ' ' + expected}")
    if len(value) > max_len:
        raise ValidationError(f"{where} is {len(value)} characters long; expected at most {max_len}")
    if pattern is not None and not pattern.fullmatch(value):
        raise ValidationError(f"{where} is {value!r}; expected {expected or 'a string matching ' + pattern.pattern}")
    return value


def expect_int(value: Any, where: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValidationError(f"{where} is {value!r}; expected a whole number")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValidationError(f"{where} is {value}; expected a whole number in {_range(lo, hi)}")
    return value


def expect_number(value: Any, where: str, lo: float | None = None, hi: float | None = None, *,
                  lo_open: bool = False) -> float:
    """A finite JSON number (int or float, not a boolean) in [lo, hi] (or (lo, hi] with ``lo_open``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or type(value).__name__ == "bool_":
        raise ValidationError(f"{where} is {value!r}; expected a number")
    x = float(value)
    if not math.isfinite(x):
        raise ValidationError(f"{where} is {value}; expected a finite number")
    if (lo is not None and (x <= lo if lo_open else x < lo)) or (hi is not None and x > hi):
        raise ValidationError(f"{where} is {value}; expected a number in {_range(lo, hi, lo_open)}")
    return x


def expect_numbers(value: Any, where: str, *, size: int | None = None, lo: float | None = None,
                   hi: float | None = None, max_len: int = 100_000) -> list[float]:
    """A JSON array of finite numbers (of exactly ``size`` when given)."""
    items = expect_list(value, where, max_len=max_len)
    if size is not None and len(items) != size:
        raise ValidationError(f"{where} has {len(items)} numbers; expected {size}")
    return [expect_number(x, f"{where}[{i}]", lo, hi) for i, x in enumerate(items)]


def expect_one_of(value: Any, where: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    if value not in choices:
        raise ValidationError(f"{where} is {value!r}; expected one of {', '.join(choices)}")
    return value


def optional(check: Callable[..., Any], value: Any, *args: Any, **kwargs: Any) -> Any:
    """``check(value, ...)`` unless ``value`` is None."""
    return None if value is None else check(value, *args, **kwargs)


# --------------------------------------------------------------------------------------------- env ids and contracts
ENV_ID_SYNTAX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)?")
MAX_FIELDS = 1024  # fields per group of a contract
MAX_FIELD_SIZE = 65_536  # elements of one field
MAX_VECTOR = 1 << 20  # elements of a whole observation or action vector


def expect_env_id_text(value: Any, where: str) -> str:
    """The *syntax* of an env id read from a file: a short string with no ``module:`` prefix (Gymnasium would
    import ``module``). Whether it names a Tether env is checked where it is used
    (``tether.sim.registry.env_id_from_file``)."""
    text = expect_str(value, where, max_len=128)
    if ":" in text or not ENV_ID_SYNTAX.fullmatch(text):
        raise ValidationError(f"{where} is {text!r}; expected a registered env id such as tether/ArmReach-v0 "
                              "(a 'module:id' form would import code and is never taken from a file)")
    return text


def _check_field(d: Any, where: str) -> int:
    expect_dict(d, where, required=("name", "size", "units"),
                allowed=("name", "size", "units", "frame", "low", "high", "components"))
    expect_str(d["name"], f"{where}.name", max_len=256)
    size = expect_int(d["size"], f"{where}.size", 1, MAX_FIELD_SIZE)
    expect_str(d["units"], f"{where}.units", max_len=256)
    if "frame" in d:
        expect_str(d["frame"], f"{where}.frame", max_len=256)
    for key in ("low", "high"):
        if d.get(key) is not None:
            items = expect_list(d[key], f"{where}.{key}", max_len=size)
            for i, x in enumerate(items):  # ±inf is a legitimate "unbounded" observation limit; NaN never is
                if isinstance(x, bool) or not isinstance(x, numbers.Real) or x != x:
                    raise ValidationError(f"{where}.{key}[{i}] is {x!r}; expected a number (not NaN)")
    for i, c in enumerate(expect_list(d.get("components", []), f"{where}.components", max_len=size)):
        expect_str(c, f"{where}.components[{i}]", max_len=256)
    return size


def contract_from_data(d: Any, where: str) -> Any:
    """An IOContract from JSON data read from a file, every field's type and size bounded first (a field of
    10**12 elements would otherwise size a network), then built by ``IOContract.from_dict``."""
    from tether.contract import ContractError, IOContract

    d = expect_dict(d, where, required=("robot", "task", "observations", "actions", "control_mode", "rate_hz"))
    for key in ("robot", "task", "control_mode"):
        expect_str(d[key], f"{where}.{key}", max_len=256)
    expect_number(d["rate_hz"], f"{where}.rate_hz", 0.0, 1e6, lo_open=True)
    if "assumed_latency_s" in d:
        expect_number(d["assumed_latency_s"], f"{where}.assumed_latency_s", 0.0, 3600.0)
    for group in ("observations", "actions", "privileged"):
        fields = expect_list(d.get(group, []), f"{where}.{group}", max_len=MAX_FIELDS)
        total = sum(_check_field(f, f"{where}.{group}[{i}]") for i, f in enumerate(fields))
        if total > MAX_VECTOR:
            raise ValidationError(f"{where}.{group} add up to {total} elements; expected at most {MAX_VECTOR}")
    meta = expect_dict(d.get("metadata", {}), f"{where}.metadata")
    if "env_id" in meta:
        expect_env_id_text(meta["env_id"], f"{where}.metadata.env_id")
    try:
        return IOContract.from_dict(d)
    except ContractError as exc:
        raise ValidationError(f"{where}: {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValidationError(f"{where} is malformed ({one_line_text(exc)})") from None


def one_line_text(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _range(lo: float | None, hi: float | None, lo_open: bool = False) -> str:
    left = "(" if lo_open else "["
    return f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"


__all__ = [
    "MAX_FIELDS", "MAX_FIELD_SIZE", "MAX_FOLDER_DEPTH", "MAX_FOLDER_ENTRIES", "MAX_JSON_BYTES", "MAX_JSON_DEPTH",
    "MAX_VECTOR", "SHA256_HEX", "ValidationError", "check_finite", "check_regular_file", "contract_from_data",
    "expect_dict", "expect_env_id_text", "expect_int", "expect_list", "expect_number",
    "expect_numbers", "expect_one_of", "expect_str", "field_path", "json_depth", "loads_json", "optional",
    "read_json", "sha256_file", "walk_folder",
]
