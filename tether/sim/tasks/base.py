"""What every task provides to the batched core: scene, contract, reset, actuation, observation and objective.

A task acts on a batch of N worlds at once: every array has a leading world axis and per-world task state
(goals, commands, counters) lives in arrays too, so one call serves the whole batch without a Python loop
over worlds. A single env is the batch of one.

The objective is defined once per task, as a function of named contract fields:
``objective(prev, action, fields, ctx) -> (reward, terminated, metrics)`` where ``prev`` and ``fields`` are
the observation (and, where available, privileged) fields before and after the step, ``action`` the
physical command and ``ctx`` the task context the fields do not carry (a goal height, say). It uses only
array arithmetic that numpy and torch share (:func:`array_namespace`), so the env's rewards, the world
models' imagined rollouts, the pipeline's scoring of recorded runs and reward labelling of bags all call the
same function. ``success(metrics, terminated)`` is the episode-level rule over the per-step metrics.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tether.contract import IOContract
from tether.errors import TetherError
from tether.sim.backends.base import BatchBackend
from tether.sim.robots.base import RobotSpec, Scene

Fields = Mapping[str, Any]  # name -> (..., size) numpy array or torch tensor


@dataclass(frozen=True)
class PendingCommands:
    """Commands already sent that the action-latency queue has yet to apply, in physical units, newest first.

    Why a scripted expert gets it: with ``L`` steps of latency the state it sees is ``L`` commands behind what
    the robot will do, so a feedback expert on that state overshoots and rings. The simulator knows the queue
    (privileged, like the true mass), and an expert that acts on the state those commands lead to (a Smith
    predictor) is as fast under latency as without it. ``L`` is the latency *every* episode of the DR has (its
    lower bound; see :meth:`tether.sim.core.SimCore.expert_action`), so every world has the same rows.
    """

    actions: np.ndarray  # (N, L, n_action), L >= 1

    def total(self) -> np.ndarray:
        """(N, n_action): the pending commands summed (what delta commands still to come add up to)."""
        return self.actions.sum(axis=1)

    def newest(self) -> np.ndarray:
        """(N, n_action): the last command sent (where absolute commands will stand once the queue drains)."""
        return self.actions[:, 0]


def array_namespace(x: Any):
    """numpy, or torch for a torch tensor (without importing torch here: a tensor means it is imported)."""
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return np
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return torch
    return np


def const(like: Any, value: Any) -> Any:
    """``value`` as an array of ``like``'s kind (numpy, or a torch tensor of its dtype and device)."""
    xp = array_namespace(like)
    if xp is np:
        return np.asarray(value, dtype=np.float64)
    return xp.as_tensor(np.asarray(value), dtype=like.dtype, device=like.device)


def norm(x: Any) -> Any:
    """Euclidean norm over the last axis, for numpy arrays and torch tensors alike."""
    return ((x * x).sum(-1)) ** 0.5


@dataclass
class StepResult:
    reward: np.ndarray  # (N,)
    terminated: np.ndarray  # (N,) bool
    metrics: dict[str, np.ndarray]  # per-step quantities the success rule reads, (N,) each
    info: dict[str, np.ndarray] = field(default_factory=dict)  # other per-step diagnostics, (N,) each


class Task(ABC):
    robot_name: str = ""
    name: str = ""
    control_modes: tuple[str, ...] = ()  # first is the default
    episode_seconds: float = 5.0
    error_metric: str = ""  # the per-step metric that tracks how far the task is from done ...
    error_label: str = ""  # ... and what it measures, for plots and reports

    def __init__(self, robot: RobotSpec, n: int = 1, control_mode: str | None = None) -> None:
        self.robot = robot
        self.n = int(n)
        mode = control_mode or self.control_modes[0]
        if mode not in self.control_modes:
            raise TetherError(
                f"task {self.robot_name}/{self.name} has no control mode {mode!r}; "
                f"expected one of {', '.join(self.control_modes)}"
            )
        self.control_mode = mode
        self.contract = self.build_contract()
        self.steps = np.zeros(self.n, dtype=np.int64)
        # scales on nominal parameters (actuator_gain, body_mass ...) every episode's robot is centred on: what an
        # expert may size itself for (SimCore sets them from its DR's centre; tether.sim.randomization.centre_scale)
        self.model_scale: dict[str, float] = {}

    @property
    def max_steps(self) -> int:
        return int(round(self.episode_seconds * self.robot.control_rate_hz))

    @property
    def dt(self) -> float:
        return 1.0 / self.robot.control_rate_hz

    def scene(self) -> Scene:
        return Scene()

    @abstractmethod
    def build_contract(self) -> IOContract: ...

    # ------------------------------------------------------------------ episode and step, over the batch
    @abstractmethod
    def reset(self, sim: BatchBackend, ids: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        """Place robot, objects and goal for a new episode in worlds ``ids`` (``rngs[k]`` is world ids[k]'s)."""

    @abstractmethod
    def actuate(self, sim: BatchBackend, action: np.ndarray, substeps: int) -> None:
        """Apply one control period of the physical (N, n_action) ``action`` and advance the physics."""

    @abstractmethod
    def observe(self, sim: BatchBackend) -> dict[str, np.ndarray]:
        """Observation fields by name (physical units, (N, size) each), as the contract declares them."""

    def privileged(self, sim: BatchBackend) -> dict[str, np.ndarray]:
        """Critic-only fields (N, size) the contract declares as privileged."""
        return {}

    def context(self) -> dict[str, np.ndarray]:
        """Per-world task quantities the objective needs that the fields do not carry."""
        return {}

    def default_context(self) -> dict[str, Any]:
        """The context for recorded data, where only the task's defaults are known (a hover goal 1 m up)."""
        return {}

    def evaluate(self, sim: BatchBackend, prev: Fields, fields: Fields, action: np.ndarray) -> StepResult:
        """Score the step with the task's objective and advance per-world task state (counters, goals)."""
        self.steps += 1
        reward, terminated, metrics = self.objective(prev, action, fields, self.context())
        return StepResult(np.asarray(reward, dtype=np.float64), np.asarray(terminated, dtype=bool), metrics)

    # ------------------------------------------------------------------ the objective, defined once
    @abstractmethod
    def objective(self, prev: Fields, action: Any, fields: Fields, ctx: Mapping[str, Any] | None = None
                  ) -> tuple[Any, Any, dict[str, Any]]:
        """(reward, terminated, metrics) of a step from named fields; batched, numpy or torch."""

    @abstractmethod
    def success(self, metrics: Mapping[str, np.ndarray], terminated: bool) -> bool:
        """Whether an episode succeeded, from its per-step metrics (each (T,)) and whether it terminated."""

    def objective_inputs(self) -> tuple[str, ...]:
        """Field names the objective reads (privileged ones included); callers check their data has them."""
        return tuple(f.name for f in (*self.contract.observations, *self.contract.privileged))

    # ------------------------------------------------------------------ commands
    def neutral_action(self) -> np.ndarray:
        """Physical action that holds the robot still (used to pre-fill the latency queue)."""
        return np.zeros(self.contract.action_size)

    @classmethod
    def has_expert(cls) -> bool:
        """Whether the task has a scripted expert (it overrides :meth:`expert`): what DAgger rounds need to label."""
        return cls.expert is not Task.expert

    def expert(self, sim: BatchBackend, pending: PendingCommands | None = None) -> np.ndarray | None:
        """A scripted expert's physical actions (N, n_action) for the current states, or None if none.

        ``pending``: the commands the latency queue has yet to apply (None where some episodes of the DR have no
        latency), for an expert that predicts through them."""
        return None


def require(fields: Fields, names: Sequence[str], task: str) -> None:
    """One clear error when data lacks a field an objective needs (e.g. a recording without a privileged one)."""
    missing = [n for n in names if n not in fields]
    if missing:
        raise TetherError(f"task {task} needs fields {missing} to compute its objective; got {sorted(fields)}")
