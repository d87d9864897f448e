"""IOContract: the single description of what a policy reads and writes.

A sim env, a served sim robot and a ROS adapter each declare one; a checkpoint and a dataset carry the one
they were made with. When a policy meets a robot the two contracts are compared field by field (names,
order, units, frames, limits, control mode, rate) and any difference is an error at connect time, never a
silent reorder.

Conventions fixed here so that every module agrees:
- Observations are a flat float vector: the concatenation of the observation fields in declared order,
  in physical (SI) units. Normalisation of observations is the policy's job (it stores its own stats).
- Actions a policy emits are *normalised* to [-1, 1] per element; each action field declares its physical
  ``low``/``high`` and ``to_physical`` maps linearly between the two. Safety limits on the robot side act on
  the physical command, so a wrong normalisation can never widen a limit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from tether.errors import TetherError

CONTROL_MODES = (
    "joint_position",  # absolute joint position targets tracked by a PD loop with torque limits
    "joint_torque",  # direct joint torques
    "ee_delta_pose",  # end-effector delta position (+ optional delta rotation, gripper) via differential IK
    "motor_thrust",  # per-rotor thrust in newtons
    "thrust_body_rates",  # collective thrust (N) + body rates (rad/s) through an onboard rate controller
)

CONTRACT_VERSION = 1

# The fastest a command may sweep its whole range [low, high], in seconds: the deploy guard's default rate limit
# (``hardware.guard.GuardConfig.full_range_s``), which the simulator applies too (``sim.core.SimCore``), so a
# policy trains on the commands a robot will receive. Why both: a quadrotor waypoint policy trained without it
# flew 95 % of episodes in sim at 40 ms of loop delay and 35 % once the guard's limit shaped its commands.
FULL_RANGE_S = 0.25


def full_range_step(span: np.ndarray | float, rate_hz: float, full_range_s: float) -> np.ndarray:
    """Largest change per control tick of a command whose range is ``span`` wide under the full-range rule."""
    return np.asarray(span, dtype=np.float64) / (float(rate_hz) * float(full_range_s))


class ContractError(TetherError):
    """A contract is malformed or two contracts do not match; the message names every difference."""


# Observation fields no sensor measures: whatever runs the policy (the simulator, the control loop, a recorder of
# its ticks) supplies them, from the policy's own last action and from how many ticks the episode has run.
LAST_ACTION = "last_action"
GAIT_CLOCK = "gait_clock"
GAIT_PERIOD_KEY = "gait_period_s"  # the contract's metadata entry: the clock's period in seconds


def gait_clock_field() -> Field:
    """A gait's phase as (sin, cos), a full turn every ``metadata[GAIT_PERIOD_KEY]`` seconds from the episode's
    first tick (Siekmann et al. 2021's and Walk These Ways' clock inputs). Why: a student cloned from a clocked
    gait (the legged trot) learns labels that follow the gait's clock, not only the robot's state, and DAgger
    labels the states the student reaches against that clock; without the clock observed, three rounds took a
    trot student at mass x1.2 from 13 to 0 of 32 episodes tracked, with it from 13 to 22 (benchmarks/RESULTS.md,
    "A gait clock")."""
    return Field.make(GAIT_CLOCK, 2, "1", "", -1.0, 1.0, ("sin", "cos"))


@dataclass(frozen=True)
class Field:
    """One named block of an observation or action vector.

    ``components`` names each element (joint names, "x"/"y"/"z", rotor ids) so a ROS adapter can assemble
    the block by name rather than by position in a message.
    """

    name: str
    size: int
    units: str
    frame: str = ""
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None
    components: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name:
            raise ContractError("field name is empty; expected a non-empty identifier")
        if self.size < 1:
            raise ContractError(f"field {self.name!r} has size {self.size}; expected >= 1")
        for label, values in (("low", self.low), ("high", self.high), ("components", self.components)):
            if values is not None and len(values) not in (0, self.size):
                raise ContractError(
                    f"field {self.name!r} has {len(values)} {label} entries; expected {self.size}"
                )
        if self.low is not None and self.high is not None:
            bad = [i for i, (lo, hi) in enumerate(zip(self.low, self.high)) if not lo < hi]
            if bad:
                raise ContractError(f"field {self.name!r} has low >= high at elements {bad}")

    @classmethod
    def make(
        cls,
        name: str,
        size: int,
        units: str,
        frame: str = "",
        low: float | Sequence[float] | None = None,
        high: float | Sequence[float] | None = None,
        components: Sequence[str] = (),
    ) -> Field:
        """Build a field, broadcasting scalar limits to every element."""

        def _vec(v: float | Sequence[float] | None) -> tuple[float, ...] | None:
            if v is None:
                return None
            arr = np.broadcast_to(np.asarray(v, dtype=float), (size,))
            return tuple(float(x) for x in arr)

        return cls(name, size, units, frame, _vec(low), _vec(high), tuple(components))


def _field_from_dict(d: Mapping[str, Any]) -> Field:
    return Field(
        name=d["name"],
        size=int(d["size"]),
        units=d["units"],
        frame=d.get("frame", ""),
        low=None if d.get("low") is None else tuple(float(x) for x in d["low"]),
        high=None if d.get("high") is None else tuple(float(x) for x in d["high"]),
        components=tuple(d.get("components", ())),
    )


@dataclass(frozen=True)
class IOContract:
    """Ordered observation and action fields plus how and how fast the actions are applied."""

    robot: str
    task: str
    observations: tuple[Field, ...]
    actions: tuple[Field, ...]
    control_mode: str
    rate_hz: float
    assumed_latency_s: float = 0.0
    privileged: tuple[Field, ...] = ()  # critic-only observations, available in sim, never on a robot
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.control_mode not in CONTROL_MODES:
            raise ContractError(
                f"unknown control mode {self.control_mode!r}; expected one of {', '.join(CONTROL_MODES)}"
            )
        if not self.rate_hz > 0:
            raise ContractError(f"rate_hz is {self.rate_hz}; expected a positive control rate")
        for group_name, group in (("observation", self.observations), ("action", self.actions)):
            names = [f.name for f in group]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ContractError(f"duplicate {group_name} field names {dupes}")
        for f in self.actions:
            if f.low is None or f.high is None:
                raise ContractError(f"action field {f.name!r} has no limits; every action needs low and high")
        if GAIT_CLOCK in {f.name for f in self.observations}:
            period = self.metadata.get(GAIT_PERIOD_KEY)
            if isinstance(period, bool) or not isinstance(period, (int, float)) or not (
                    np.isfinite(period) and period * self.rate_hz >= 2.0):
                raise ContractError(f"observation {GAIT_CLOCK!r} needs metadata {GAIT_PERIOD_KEY!r}, the clock's "
                                    f"period in seconds, at least two ticks ({2.0 / self.rate_hz:g} s); got {period!r}")

    # ----------------------------------------------------------------- sizes and slices
    @cached_property
    def obs_size(self) -> int:
        return sum(f.size for f in self.observations)

    @cached_property
    def action_size(self) -> int:
        return sum(f.size for f in self.actions)

    @cached_property
    def privileged_size(self) -> int:
        return sum(f.size for f in self.privileged)

    @property
    def dt(self) -> float:
        return 1.0 / self.rate_hz

    @staticmethod
    def _slices(fields: Sequence[Field]) -> dict[str, slice]:
        out, start = {}, 0
        for f in fields:
            out[f.name] = slice(start, start + f.size)
            start += f.size
        return out

    @cached_property
    def obs_slices(self) -> dict[str, slice]:
        return self._slices(self.observations)

    @cached_property
    def action_slices(self) -> dict[str, slice]:
        return self._slices(self.actions)

    def field(self, name: str) -> Field:
        for f in (*self.observations, *self.actions, *self.privileged):
            if f.name == name:
                return f
        known = [f.name for f in (*self.observations, *self.actions, *self.privileged)]
        raise KeyError(f"no field {name!r} in contract {self.robot}/{self.task}; fields are {known}")

    # ----------------------------------------------------------------- limits
    @staticmethod
    def _bounds(fields: Sequence[Field], attr: str, default: float) -> np.ndarray:
        parts = []
        for f in fields:
            v = getattr(f, attr)
            parts.append(np.full(f.size, default) if v is None else np.asarray(v, dtype=float))
        return np.concatenate(parts) if parts else np.zeros(0)

    @cached_property
    def action_low(self) -> np.ndarray:
        return self._bounds(self.actions, "low", -np.inf)

    @cached_property
    def action_high(self) -> np.ndarray:
        return self._bounds(self.actions, "high", np.inf)

    @cached_property
    def obs_low(self) -> np.ndarray:
        return self._bounds(self.observations, "low", -np.inf)

    @cached_property
    def obs_high(self) -> np.ndarray:
        return self._bounds(self.observations, "high", np.inf)

    # ----------------------------------------------------------------- assembling vectors by name
    def _assemble(self, fields: Sequence[Field], values: Mapping[str, Any]) -> np.ndarray:
        # Fast path for the control loop and env.step: every field present as a 1-D array of the right size.
        # ... and its batched form: every field (N, size) for one N (the batched simulation core).
        try:
            parts = [values[f.name] for f in fields]
            shapes = [getattr(p, "shape", None) for p in parts]
            if all(sh == (f.size,) for sh, f in zip(shapes, fields)):
                return np.concatenate(parts).astype(np.float64, copy=False)
            if shapes and shapes[0] is not None and len(shapes[0]) == 2 and all(
                    sh is not None and len(sh) == 2 and sh[0] == shapes[0][0] and sh[1] == f.size
                    for sh, f in zip(shapes, fields)):
                return np.concatenate(parts, axis=1).astype(np.float64, copy=False)
        except (KeyError, ValueError, TypeError):
            pass
        missing = [f.name for f in fields if f.name not in values]
        if missing:
            raise ContractError(
                f"missing fields {missing} for {self.robot}/{self.task}; got {sorted(values)}"
            )
        parts = []
        for f in fields:
            arr = np.asarray(values[f.name], dtype=np.float64)
            if arr.shape[-1:] != (f.size,) and not (f.size == 1 and arr.ndim == 0):
                raise ContractError(f"field {f.name!r} has shape {arr.shape}; expected (..., {f.size})")
            parts.append(arr.reshape(*arr.shape[:-1], f.size) if arr.ndim else arr.reshape(1))
        return np.concatenate(parts, axis=-1)

    def gait_clock(self, ticks: np.ndarray | int) -> np.ndarray:
        """The ``gait_clock`` observation after ``ticks`` control ticks of the episode (0 at its first), (..., 2)."""
        turn = self.rate_hz * float(self.metadata[GAIT_PERIOD_KEY])  # ticks a turn
        phase = 2.0 * np.pi * np.asarray(ticks, dtype=np.float64) / turn
        return np.stack([np.sin(phase), np.cos(phase)], axis=-1)

    def with_loop_fields(self, values: Mapping[str, Any], last_action: np.ndarray, tick: int) -> Mapping[str, Any]:
        """``values`` (a robot's state by field name) with the fields that whoever runs the policy supplies, where
        the contract has them and ``values`` does not: the last action the policy emitted and the gait clock at
        the episode's ``tick``-th tick. The control loop and its recorder both call this, so a bag holds the
        vector the policy saw."""
        names = self.obs_slices
        extra = {}
        if LAST_ACTION in names and LAST_ACTION not in values:
            extra[LAST_ACTION] = last_action
        if GAIT_CLOCK in names and GAIT_CLOCK not in values:
            extra[GAIT_CLOCK] = self.gait_clock(tick)
        return {**values, **extra} if extra else values

    def flatten_obs(self, values: Mapping[str, Any]) -> np.ndarray:
        """Assemble the observation vector from a name → array mapping (batched on leading dims)."""
        return self._assemble(self.observations, values)

    def flatten_privileged(self, values: Mapping[str, Any]) -> np.ndarray:
        return self._assemble(self.privileged, values)

    def split_obs(self, vector: np.ndarray) -> dict[str, np.ndarray]:
        vector = np.asarray(vector)
        if vector.shape[-1] != self.obs_size:
            raise ContractError(f"observation has {vector.shape[-1]} elements; expected {self.obs_size}")
        return {n: vector[..., s] for n, s in self.obs_slices.items()}

    def split_action(self, vector: np.ndarray) -> dict[str, np.ndarray]:
        vector = np.asarray(vector)
        if vector.shape[-1] != self.action_size:
            raise ContractError(f"action has {vector.shape[-1]} elements; expected {self.action_size}")
        return {n: vector[..., s] for n, s in self.action_slices.items()}

    # ----------------------------------------------------------------- action scaling
    def to_physical(self, normalised: np.ndarray) -> np.ndarray:
        """Map a policy action in [-1, 1] to physical units (clipping to [-1, 1] first)."""
        a = np.minimum(np.maximum(np.asarray(normalised, dtype=np.float64), -1.0), 1.0)
        lo, hi = self.action_low, self.action_high
        return lo + (a + 1.0) * 0.5 * (hi - lo)

    def to_normalised(self, physical: np.ndarray) -> np.ndarray:
        lo, hi = self.action_low, self.action_high
        return 2.0 * (np.asarray(physical, dtype=np.float64) - lo) / (hi - lo) - 1.0

    # ----------------------------------------------------------------- compatibility
    def differences(self, other: IOContract, *, check_rate: bool = True) -> list[str]:
        """Every way ``other`` differs from this contract in what a policy depends on."""
        diffs: list[str] = []
        if self.robot != other.robot:
            diffs.append(f"robot {self.robot!r} != {other.robot!r}")
        if self.control_mode != other.control_mode:
            diffs.append(f"control mode {self.control_mode!r} != {other.control_mode!r}")
        if check_rate and abs(self.rate_hz - other.rate_hz) > 1e-9 * max(self.rate_hz, 1.0):
            diffs.append(f"rate {self.rate_hz} Hz != {other.rate_hz} Hz")
        for label, mine, theirs in (
            ("observation", self.observations, other.observations),
            ("action", self.actions, other.actions),
        ):
            names_a, names_b = [f.name for f in mine], [f.name for f in theirs]
            if names_a != names_b:
                diffs.append(f"{label} fields {names_a} != {names_b}")
                continue
            for fa, fb in zip(mine, theirs):
                for attr in ("size", "units", "frame", "components"):
                    va, vb = getattr(fa, attr), getattr(fb, attr)
                    if va != vb and not (attr == "components" and (not va or not vb)):
                        diffs.append(f"{label} {fa.name}.{attr} {va!r} != {vb!r}")
                if label == "action":
                    for attr in ("low", "high"):
                        va, vb = np.asarray(getattr(fa, attr)), np.asarray(getattr(fb, attr))
                        if not np.allclose(va, vb, rtol=1e-9, atol=1e-12):
                            diffs.append(f"action {fa.name}.{attr} {va.tolist()} != {vb.tolist()}")
        return diffs

    def check_compatible(self, other: IOContract, *, check_rate: bool = True, what: str = "robot") -> None:
        """Raise ContractError naming every difference between this (the policy's) and ``other``."""
        diffs = self.differences(other, check_rate=check_rate)
        if diffs:
            raise ContractError(f"policy contract does not match the {what}'s: " + "; ".join(diffs))

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["metadata"] = dict(self.metadata)
        d["version"] = CONTRACT_VERSION
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> IOContract:
        try:
            version = d.get("version", CONTRACT_VERSION)
            if version != CONTRACT_VERSION:
                raise ContractError(f"contract version {version}; this Tether reads version {CONTRACT_VERSION}")
            return cls(
                robot=d["robot"],
                task=d["task"],
                observations=tuple(_field_from_dict(f) for f in d["observations"]),
                actions=tuple(_field_from_dict(f) for f in d["actions"]),
                control_mode=d["control_mode"],
                rate_hz=float(d["rate_hz"]),
                assumed_latency_s=float(d.get("assumed_latency_s", 0.0)),
                privileged=tuple(_field_from_dict(f) for f in d.get("privileged", ())),
                metadata=dict(d.get("metadata", {})),
            )
        except KeyError as exc:
            raise ContractError(f"contract is missing key {exc.args[0]!r}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> IOContract:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ContractError(f"contract is not valid JSON: {exc}") from None
