"""Domain randomisation as data.

A term is (target, distribution, operation, range, when): e.g. ``DRTerm("body_mass", "uniform", "scale",
(0.8, 1.2), "reset")`` multiplies every body's nominal mass by an independent U(0.8, 1.2) draw at each
reset. Terms serialise to JSON so the exact randomisation a policy was trained under is stored in its
checkpoint and can be replayed. Physical targets are written into the backend; the rest (latency, noise,
pushes) are applied by the env around the policy.

Ranges: for "uniform" (low, high); for "log_uniform" (low, high) with low > 0; for "gaussian" (mean, std).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tether.errors import TetherError

# Targets the physics backend holds (see Backend.get_param / set_param).
BACKEND_TARGETS = {
    "body_mass": "mass of each robot link and free object (kg); inertia scales with it",
    "body_com": "centre-of-mass offset of each body (m, per axis)",
    "friction": "sliding friction of the ground and objects (a robot link's is kept but the ground's or box's governs)",
    "joint_damping": "viscous joint damping (N m s/rad)",
    "joint_armature": "reflected rotor inertia on each joint (kg m^2; MuJoCo only)",
    "joint_frictionloss": "dry joint friction (N m)",
    "actuator_gain": "PD stiffness (damping scales with it) or rotor thrust gain",
    "actuator_strength": "joint torque limit (N m) or rotor max thrust (N)",
    "motor_time_constant": "rotor first-order lag (s)",
    "gravity": "gravity along world z (m/s^2)",
    "terrain_roughness": "heightfield bump height (m)",
}
# Targets the env applies around the policy.
ENV_TARGETS = {
    "action_latency": "whole control steps between a policy action and its effect, sampled per episode",
    "obs_noise": "std of white Gaussian noise added to every observation element (physical units)",
    "obs_bias": "constant offset per observation element, sampled per episode",
    "push": "magnitude (N) of a horizontal push on the base lasting 0.1 s",
}
TARGETS = {**BACKEND_TARGETS, **ENV_TARGETS}
DISTRIBUTIONS = ("uniform", "log_uniform", "gaussian")
OPERATIONS = ("scale", "add", "abs")
WHEN = ("startup", "reset", "interval")
MAX_DR_VALUE = 1e6  # |range| of any term: larger draws only overflow the physics (inf masses, NaN states)
MAX_DR_SCALE = 1000.0  # a scale factor on a nominal value (the served robot's params allow the same)
MAX_LATENCY_STEPS = 1000  # action_latency in control steps


def _one_of(kind: str, value: str, valid: Iterable[str]) -> None:
    valid = list(valid)
    if value not in valid:
        raise TetherError(f"unknown DR {kind} {value!r}; expected one of {', '.join(valid)}")


@dataclass(frozen=True)
class DRTerm:
    target: str
    distribution: str = "uniform"
    operation: str = "scale"
    range: tuple[float, float] = (1.0, 1.0)
    when: str = "reset"
    select: tuple[str, ...] = ()  # element names to randomise; empty means all
    interval_s: float | None = None  # for when="interval"
    per_element: bool = True  # independent draw per element, or one draw shared by all

    def __post_init__(self) -> None:
        object.__setattr__(self, "range", tuple(float(x) for x in self.range))
        object.__setattr__(self, "select", tuple(self.select))
        _one_of("target", self.target, TARGETS)
        _one_of("distribution", self.distribution, DISTRIBUTIONS)
        _one_of("operation", self.operation, OPERATIONS)
        _one_of("mode (when)", self.when, WHEN)
        if len(self.range) != 2:
            raise TetherError(f"DR term {self.target}: range {self.range} must have 2 numbers")
        lo, hi = self.range
        if not all(np.isfinite(self.range)):
            raise TetherError(f"DR term {self.target}: range {self.range} must be finite")
        if self.distribution == "gaussian":
            if hi < 0:
                raise TetherError(f"DR term {self.target}: gaussian std {hi} must be >= 0")
        elif lo > hi:
            raise TetherError(f"DR term {self.target}: empty range ({lo}, {hi}); expected low <= high")
        if self.distribution == "log_uniform" and lo <= 0:
            raise TetherError(f"DR term {self.target}: log_uniform range {self.range} needs low > 0")
        if self.operation == "scale" and self.distribution != "gaussian" and lo < 0:
            raise TetherError(f"DR term {self.target}: negative scale {lo}; expected a scale >= 0")
        if self.when == "interval" and not (self.interval_s and self.interval_s > 0):
            raise TetherError(f"DR term {self.target}: when='interval' needs interval_s > 0")
        if self.target == "action_latency" and (self.operation != "abs" or lo < 0):
            raise TetherError("DR term action_latency: expected operation 'abs' with a range of steps >= 0")
        if self.target == "action_latency" and hi > MAX_LATENCY_STEPS:
            raise TetherError(f"DR term action_latency: range {self.range}; expected at most {MAX_LATENCY_STEPS} "
                              "control steps (each world keeps a queue of that many actions)")
        if max(abs(lo), abs(hi)) > MAX_DR_VALUE or (self.operation == "scale" and hi > MAX_DR_SCALE):
            raise TetherError(f"DR term {self.target}: range {self.range}; expected values within "
                              f"+-{MAX_DR_VALUE:g} (scale factors <= {MAX_DR_SCALE:g})")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        size = n if self.per_element else 1
        lo, hi = self.range
        if self.distribution == "uniform":
            x = rng.uniform(lo, hi, size)
        elif self.distribution == "log_uniform":
            x = np.exp(rng.uniform(np.log(lo), np.log(hi), size))
        else:
            x = rng.normal(lo, hi, size)
        return np.broadcast_to(x, (n,)).copy()

    def centre(self) -> float:
        """The draw the distribution is centred on: a uniform's midpoint, a log-uniform's geometric midpoint, a
        gaussian's mean."""
        lo, hi = self.range
        if self.distribution == "uniform":
            return 0.5 * (lo + hi)
        return float(np.sqrt(lo * hi)) if self.distribution == "log_uniform" else lo

    def apply(self, nominal: np.ndarray, draw: np.ndarray) -> np.ndarray:
        draw = draw.reshape(draw.shape + (1,) * (nominal.ndim - draw.ndim))
        if self.operation == "scale":
            return nominal * draw
        if self.operation == "add":
            return nominal + draw
        return np.broadcast_to(draw, nominal.shape).copy()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["range"], d["select"] = list(self.range), list(self.select)
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "DR term") -> DRTerm:
        """A term from JSON data, every field's type checked (data from files is never trusted)."""
        from tether.validation import (
            expect_dict, expect_numbers, expect_list, expect_number, expect_str, optional,
        )

        d = expect_dict(d, where, required=("target",), allowed=cls.__dataclass_fields__)
        for key in ("target", "distribution", "operation", "when"):
            if key in d:
                expect_str(d[key], f"{where}.{key}", max_len=64)
        def as_list(v: Any) -> Any:  # in-memory terms may hold tuples; JSON has only lists
            return list(v) if isinstance(v, tuple) else v

        rng = expect_numbers(as_list(d.get("range", [1.0, 1.0])), f"{where}.range", size=2)
        select = [expect_str(x, f"{where}.select[{i}]", max_len=256)
                  for i, x in enumerate(expect_list(as_list(d.get("select", [])), f"{where}.select", max_len=10_000))]
        interval = optional(expect_number, d.get("interval_s"), f"{where}.interval_s", 0.0, 1e6)
        per_element = d.get("per_element", True)
        if not isinstance(per_element, (bool, np.bool_)):
            raise TetherError(f"{where}.per_element is {per_element!r}; expected true or false")
        try:
            return cls(**{**d, "range": tuple(rng), "select": tuple(select), "interval_s": interval,
                          "per_element": bool(per_element)})
        except TetherError as exc:  # the term's own checks: say which file and term
            raise TetherError(f"{where}: {exc}") from None


MAX_TERMS = 1000  # DR terms in one file or checkpoint


def terms_to_json(terms: Sequence[DRTerm]) -> str:
    return json.dumps([t.to_dict() for t in terms], indent=2)


def terms_from_data(raw: Any, what: str = "DR terms") -> list[DRTerm]:
    """Terms from parsed JSON: a list of term objects, or a preset ``{"terms": [...], "name", "provenance"}``."""
    if isinstance(raw, dict) and "terms" in raw:
        raw = raw["terms"]
    if not isinstance(raw, list):
        raise TetherError(f"{what} is a JSON {type(raw).__name__}; expected a list of term objects "
                          "(or {'terms': [...]})")
    if len(raw) > MAX_TERMS:
        raise TetherError(f"{what} has {len(raw)} terms; expected at most {MAX_TERMS}")
    return [DRTerm.from_dict(t, f"{what}: term {i}") for i, t in enumerate(raw)]


def terms_from_json(text: str, what: str = "DR terms") -> list[DRTerm]:
    from tether.validation import loads_json

    return terms_from_data(loads_json(text, what, finite=True), what)


def terms_from_file(path: str | Path, what: str = "DR file") -> list[DRTerm]:
    """A JSON file of terms (a path the user chose: a link to a regular file is fine), read with bounded size
    and nesting; NaN/inf anywhere are refused."""
    from tether.validation import read_json

    return terms_from_data(read_json(path, what, finite=True, follow_link=True), f"{what} {str(path)!r}")


def check_dr_option(dr: str | None, option: str = "--dr") -> None:
    """For the CLI, before any work: a ``.json`` DR option must hold valid terms (preset names are checked per
    robot when the env is made). The error names the option."""
    if isinstance(dr, str) and dr.lower().endswith(".json"):
        try:
            terms_from_file(dr, what=f"{option} file")
        except TetherError as exc:
            raise TetherError(str(exc)) from None


@dataclass
class EpisodeDR:
    """What the env applies around the policy, per world of a batch of ``n`` (redrawn at each world's reset)."""

    n: int
    obs_size: int
    latency_steps: np.ndarray = field(init=False)  # (n,) whole control steps
    obs_noise_std: np.ndarray = field(init=False)  # (n,)
    obs_bias: np.ndarray = field(init=False)  # (n, obs_size)
    push_terms: list[DRTerm] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.latency_steps = np.zeros(self.n, dtype=np.int64)
        self.obs_noise_std = np.zeros(self.n)
        self.obs_bias = np.zeros((self.n, self.obs_size))


def max_latency_steps(terms: Sequence[DRTerm]) -> int:
    """The longest action delay any term can draw (sizes the batched latency queue)."""
    return max((int(round(t.range[1])) for t in terms if t.target == "action_latency"), default=0)


def min_latency_steps(terms: Sequence[DRTerm]) -> int:
    """The action delay every episode has whatever the draw (the lowest bound of any latency term; 0 if none)."""
    return max(0, min((int(round(t.range[0])) for t in terms if t.target == "action_latency"), default=0))


MODEL_TARGETS = ("actuator_gain", "body_mass")  # what SimCore tells a task's expert of the DR's centre


def centre_scale(terms: Sequence[DRTerm], target: str) -> float:
    """The scale on ``target``'s nominal value that the DR is centred on: the product of the midpoints of its
    whole-robot ``scale`` terms (geometric for log-uniform, the mean for a gaussian); 1 where it has none.

    Why: it is what every episode of the DR shares, the model an expert may be told without labelling by a draw the
    policy cannot see (as :func:`min_latency_steps` is for latency). Under an identified DR it is the fit."""
    return float(np.prod([t.centre() for t in terms if t.target == target and t.operation == "scale" and not t.select]))


class Randomizer:
    """Applies a list of DR terms to the worlds of a batch, each world from its own generator.

    Physical terms are written per world into the backend (``startup`` once per world, then ``reset`` and
    ``interval`` terms redrawn from that world's startup values at each of its resets, and ``interval``
    terms again every ``interval_s`` within an episode); the env-side terms (latency, noise, bias, pushes)
    are drawn into :class:`EpisodeDR`.
    """

    def __init__(self, terms: Sequence[DRTerm], backend, obs_size: int) -> None:
        self.terms = list(terms)
        self.backend = backend
        n = backend.n
        self._index: dict[int, np.ndarray] = {}
        nominal: dict[str, np.ndarray] = {}
        for i, t in enumerate(self.terms):
            if t.target not in BACKEND_TARGETS:
                continue
            names = backend.param_elements(t.target)
            if not names:
                raise TetherError(
                    f"DR target {t.target!r} has nothing to act on for robot {backend.robot.name} "
                    f"on backend {backend.name}"
                )
            if t.select:
                missing = [s for s in t.select if s not in names]
                if missing:
                    raise TetherError(f"DR term {t.target}: unknown elements {missing}; valid: {names}")
                self._index[i] = np.array([names.index(s) for s in t.select])
            else:
                self._index[i] = np.arange(len(names))
            if t.target not in nominal:
                nominal[t.target] = backend.get_param(t.target, 0).copy()
        # per world: the values reset-time terms perturb (the startup draw once it happened), and the current ones
        self._nominal = {k: np.tile(v, (n,) + (1,) * v.ndim) for k, v in nominal.items()}
        self._current = {k: v.copy() for k, v in self._nominal.items()}
        self._interval = [i for i, t in enumerate(self.terms) if t.target in BACKEND_TARGETS and t.when == "interval"]
        self._periods = {i: self.terms[i].interval_s for i in self._interval}
        self._started = np.zeros(n, dtype=bool)
        self.episode = EpisodeDR(n, obs_size, push_terms=[t for t in self.terms if t.target == "push"])

    def _apply_backend(self, w: int, rng: np.random.Generator, when: tuple[str, ...],
                       only: set[int] | None = None) -> None:
        """Redraw world ``w``'s terms active ``when`` (or just the terms ``only``), each from the nominal values,
        keeping whatever the other terms drew for this episode."""
        values = {k: v[w].copy() for k, v in (self._current if only else self._nominal).items()}
        touched: set[str] = set()
        for i, t in enumerate(self.terms):
            if t.target in BACKEND_TARGETS and t.when in when and (only is None or i in only):
                idx = self._index[i]
                values[t.target][idx] = t.apply(self._nominal[t.target][w][idx], t.sample(rng, len(idx)))
                touched.add(t.target)
        for target in touched if only else values:
            self.backend.set_param(target, values[target], w)
            self._current[target][w] = values[target]

    def on_step(self, steps: np.ndarray, rngs: Sequence[np.random.Generator], rate_hz: float) -> None:
        """Redraw physical ``interval`` terms every ``interval_s`` of simulated time within each world's episode."""
        if not self._interval:
            return
        changed = False
        for w in np.nonzero(steps > 0)[0]:
            due = {i for i in self._interval if steps[w] % max(1, int(round(self._periods[i] * rate_hz))) == 0}
            if due:
                self._apply_backend(int(w), rngs[w], ("interval",), only=due)
                changed = True
        if changed:
            self.backend.commit_params()

    def on_reset(self, ids: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        """Draw worlds ``ids``' parameters for a new episode (``rngs[k]`` is world ids[k]'s generator)."""
        ep = self.episode
        for w, rng in zip(ids, rngs):
            w = int(w)
            if not self._started[w]:
                self._apply_backend(w, rng, ("startup",))
                # startup values become the nominal that reset-time terms perturb
                for k in self._nominal:
                    self._nominal[k][w] = self._current[k][w]
                self._started[w] = True
            self._apply_backend(w, rng, ("reset", "interval"))
            ep.latency_steps[w], ep.obs_noise_std[w], ep.obs_bias[w] = 0, 0.0, 0.0
            for t in self.terms:
                if t.target == "action_latency":
                    lo, hi = t.range
                    ep.latency_steps[w] = int(rng.integers(int(round(lo)), int(round(hi)) + 1))
                elif t.target == "obs_noise":
                    ep.obs_noise_std[w] = float(t.sample(rng, 1)[0])
                elif t.target == "obs_bias":
                    ep.obs_bias[w] = t.apply(np.zeros(ep.obs_size), t.sample(rng, ep.obs_size))
        if self._nominal:
            self.backend.commit_params()
