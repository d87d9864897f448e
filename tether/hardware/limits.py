"""Robot-side limits: what a robot model may be commanded, owned by the operator, never widened by a policy.

Why a separate source: a checkpoint's contract (and a ``/tether/robot_info`` anyone on the domain can latch)
are data the policy side controls. The guard's limits therefore come from the robot side - the adapter's
configuration for the robot model, a JSON file the operator owns (``tether robot limits --adapter X`` writes
the shipped default for editing) - and are intersected with the contract's: a checkpoint can only narrow.

Everything is in the units the robot *receives* (joint targets after IK, thrust in N before the protocol's
normalisation), keyed by command element name ``<field>.<component>`` (or ``<field>`` for 1-element fields
without component names), so the file does not depend on the order of any contract:

- ``command``: element -> [low, high];
- ``max_rate``: element -> largest change per second (joint speed limits, thrust slew);
- ``params``: the model's physical constants the protocol needs (mass, full-scale thrust used to normalise
  commands, ...): one home, so no encoder can rescale a command behind the guard's back;
- ``state``: observation field -> largest plausible absolute value (a state beyond it is dropped, not used).
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tether.contract import IOContract
from tether.errors import TetherError

MAX_FILE_BYTES = 1 << 20
MAX_ENTRIES = 4096
KEYS = ("model", "command", "max_rate", "params", "state")


def element_names(contract: IOContract) -> list[str]:
    """``<field>.<component>`` (or ``<field>[i]`` / ``<field>``) for each action element, in contract order."""
    names: list[str] = []
    for f in contract.actions:
        if f.components:
            names += [f"{f.name}.{c}" for c in f.components]
        elif f.size == 1:
            names.append(f.name)
        else:
            names += [f"{f.name}[{i}]" for i in range(f.size)]
    return names


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TetherError(f"robot limits: {what} is {value!r}; expected a finite number")
    return float(value)


def _mapping(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise TetherError(f"robot limits: {key!r} holds a {type(value).__name__}; expected an object")
    if len(value) > MAX_ENTRIES:
        raise TetherError(f"robot limits: {key!r} has {len(value)} entries; expected at most {MAX_ENTRIES}")
    for name in value:
        if not isinstance(name, str) or not 0 < len(name) <= 200:
            raise TetherError(f"robot limits: {key!r} has a bad name {name!r}; expected a short string")
    return value


@dataclass(frozen=True)
class RobotLimits:
    """One robot model's limits (see the module docstring)."""

    model: str
    command: Mapping[str, tuple[float, float]]
    max_rate: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, float] = field(default_factory=dict)
    state: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not 0 < len(self.model) <= 100:
            raise TetherError(f"robot limits: model {self.model!r}; expected a non-empty name")
        for name, (lo, hi) in self.command.items():
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise TetherError(f"robot limits: command {name!r} is [{lo}, {hi}]; expected finite low < high")
        for what, values in (("max_rate", self.max_rate), ("state", self.state)):
            for name, v in values.items():
                if not (math.isfinite(v) and v > 0):
                    raise TetherError(f"robot limits: {what} {name!r} is {v}; expected a finite value > 0")
        for name, v in self.params.items():
            if not math.isfinite(v):
                raise TetherError(f"robot limits: params {name!r} is {v}; expected a finite number")

    # ------------------------------------------------------------------ lookups
    def param(self, name: str) -> float:
        if name not in self.params:
            raise TetherError(f"robot limits for {self.model!r} lack params {name!r}; expected it in the file")
        return float(self.params[name])

    def bounds(self, contract: IOContract) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) per action element of ``contract``; an element the robot file does not cover is an error
        (an unlimited command is never assumed safe)."""
        names = element_names(contract)
        missing = [n for n in names if n not in self.command]
        if missing:
            raise TetherError(f"robot limits for {self.model!r} have no command limits for {missing}; "
                              f"expected entries for every command element {names}")
        low = np.array([self.command[n][0] for n in names], dtype=float)
        high = np.array([self.command[n][1] for n in names], dtype=float)
        return low, high

    def rates(self, contract: IOContract) -> np.ndarray:
        """Largest change per second per action element (inf where the file sets none)."""
        return np.array([self.max_rate.get(n, np.inf) for n in element_names(contract)], dtype=float)

    def state_bound(self, field_name: str) -> float:
        return float(self.state.get(field_name, np.inf))

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "command": {k: [lo, hi] for k, (lo, hi) in self.command.items()},
                "max_rate": dict(self.max_rate), "params": dict(self.params), "state": dict(self.state)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: Any) -> RobotLimits:
        if not isinstance(data, Mapping):
            raise TetherError(f"robot limits hold a {type(data).__name__}; expected a JSON object")
        bad = sorted(set(data) - set(KEYS))
        if bad:
            raise TetherError(f"robot limits have unknown keys {bad}; expected some of {list(KEYS)}")
        command = {}
        for name, pair in _mapping(data, "command").items():
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise TetherError(f"robot limits: command {name!r} is {pair!r}; expected [low, high]")
            command[name] = (_number(pair[0], f"command {name!r} low"), _number(pair[1], f"command {name!r} high"))
        if not command:
            raise TetherError("robot limits have no 'command' entries; expected limits for every command element")
        return cls(
            model=data.get("model", ""),
            command=command,
            max_rate={k: _number(v, f"max_rate {k!r}") for k, v in _mapping(data, "max_rate").items()},
            params={k: _number(v, f"params {k!r}") for k, v in _mapping(data, "params").items()},
            state={k: _number(v, f"state {k!r}") for k, v in _mapping(data, "state").items()},
        )

    @classmethod
    def load(cls, path: str | Path) -> RobotLimits:
        """Read an operator's limits file: a regular file (no symlink), at most 1 MiB of JSON."""
        p = Path(path)
        try:
            st = os.lstat(p)
        except OSError:
            raise TetherError(f"robot limits file {str(p)!r} does not exist; expected a JSON file") from None
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
            raise TetherError(f"robot limits file {str(p)!r} is not a regular file; expected a plain JSON file")
        if st.st_size > MAX_FILE_BYTES:
            raise TetherError(f"robot limits file {str(p)!r} has {st.st_size} bytes; expected at most "
                              f"{MAX_FILE_BYTES}")
        try:
            data = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise TetherError(f"robot limits file {str(p)!r} is not valid JSON: {exc}") from None
        return cls.from_dict(data)


def intersect(contract: IOContract, limits: RobotLimits) -> tuple[np.ndarray, np.ndarray]:
    """The guard's bounds: the robot's limits narrowed by the contract's (never widened)."""
    low, high = limits.bounds(contract)
    low, high = np.maximum(low, contract.action_low), np.minimum(high, contract.action_high)
    bad = np.flatnonzero(~(low <= high))
    if bad.size:
        names = [element_names(contract)[i] for i in bad]
        raise TetherError(f"the contract's limits and the robot's do not overlap for {names}; expected a policy "
                          f"trained inside the robot's range")
    return low, high
