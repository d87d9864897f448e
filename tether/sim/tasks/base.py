"""What every task provides to the env: its scene, contract, reset, actuation, observation and reward.

A task owns the meaning of the action (through its control mode) and of the observation (through its
IOContract), so the same task runs on any backend. Observations are assembled as a name → array dict and
flattened by the contract, the same path a ROS adapter uses on a real robot.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from tether.contract import IOContract
from tether.errors import TetherError
from tether.sim.backends.base import Backend
from tether.sim.robots.base import RobotSpec, Scene


@dataclass
class StepResult:
    reward: float
    terminated: bool
    success: bool
    info: dict


class Task(ABC):
    robot_name: str = ""
    name: str = ""
    control_modes: tuple[str, ...] = ()  # first is the default
    episode_seconds: float = 5.0

    def __init__(self, robot: RobotSpec, control_mode: str | None = None) -> None:
        self.robot = robot
        mode = control_mode or self.control_modes[0]
        if mode not in self.control_modes:
            raise TetherError(
                f"task {self.robot_name}/{self.name} has no control mode {mode!r}; "
                f"expected one of {', '.join(self.control_modes)}"
            )
        self.control_mode = mode
        self.contract = self.build_contract()

    @property
    def max_steps(self) -> int:
        return int(round(self.episode_seconds * self.robot.control_rate_hz))

    def scene(self) -> Scene:
        return Scene()

    @abstractmethod
    def build_contract(self) -> IOContract: ...

    @abstractmethod
    def reset(self, sim: Backend, rng: np.random.Generator) -> None:
        """Place robot, objects and goal for a new episode."""

    @abstractmethod
    def actuate(self, sim: Backend, action: np.ndarray, substeps: int) -> None:
        """Apply one control period of the physical ``action`` and advance the physics ``substeps``."""

    @abstractmethod
    def observe(self, sim: Backend) -> dict[str, np.ndarray]:
        """Observation fields by name (physical units), as the contract declares them."""

    @abstractmethod
    def evaluate(self, sim: Backend, obs: dict[str, np.ndarray], action: np.ndarray) -> StepResult: ...

    def neutral_action(self) -> np.ndarray:
        """Physical action that holds the robot still (used to pre-fill the latency queue)."""
        return np.zeros(self.contract.action_size)

    def reward_from_obs(self, obs: dict[str, np.ndarray]) -> float:
        """The task reward computed from observation fields alone (for data recorded on a real robot, where no
        simulator state exists). Tasks whose reward needs hidden state do not provide it."""
        raise TetherError(f"task {self.robot_name}/{self.name} cannot compute its reward from observations alone")

    def privileged(self, sim: Backend) -> dict[str, np.ndarray]:
        return {}

    def expert(self, sim: Backend) -> np.ndarray | None:
        """A scripted expert's physical action for the current state, or None if the task has none."""
        return None
