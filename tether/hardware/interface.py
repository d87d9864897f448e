"""RobotInterface: what the control loop needs from any robot (served sim, ROS adapter, in-process sim).

Observations come back as a name -> array mapping in the physical units of the robot's IOContract, so the
loop assembles the policy input by name and a reordered message can never shuffle a policy's inputs. The
stamp is the time the newest state arrived, on ``time.monotonic()`` (not the ROS clock: a watchdog needs a
clock that never jumps), so the guard can judge staleness against its own clock.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from tether.contract import IOContract
from tether.errors import TetherError


@dataclass(frozen=True)
class RobotState:
    """One state reading: observation fields by name plus the monotonic time it arrived."""

    obs: Mapping[str, np.ndarray]
    stamp_s: float


class RobotNotReady(TetherError):
    """No state has arrived yet (e.g. no /joint_states within the connect timeout)."""


class RobotInterface(ABC):
    """A robot that accepts physical commands in the order of its contract's action fields."""

    contract: IOContract

    @abstractmethod
    def connect(self) -> None:
        """Open the connection and wait (bounded) for a first state; raise RobotNotReady if none arrives."""

    @abstractmethod
    def read_state(self) -> tuple[dict[str, np.ndarray], float]:
        """Latest observation fields by name and the monotonic time that state arrived."""

    @abstractmethod
    def send(self, command: np.ndarray, *, damp: bool = False) -> None:
        """Send one physical command (contract action order, SI units). ``damp`` asks the robot to also go
        passive where it can (kp=0, kd>0); robots without such a mode ignore it, the command is still safe."""

    @abstractmethod
    def disconnect(self) -> None:
        """Release the connection; must be safe to call twice and after a failed connect."""

    # ------------------------------------------------------------------ helpers with sane defaults
    def measured_command(self, obs: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """The robot's current state expressed as a command (for hold/ramp-in), or None if that has no meaning.

        Position modes: the measured joint positions, matched to the action's joint components by name.
        """
        return measured_joint_command(self.contract, obs)

    def __enter__(self) -> RobotInterface:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()


def measured_joint_command(contract: IOContract, obs: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """For joint_position contracts: obs['joint_pos'] reordered to the action's components by joint name."""
    if contract.control_mode != "joint_position" or "joint_pos" not in obs:
        return None
    try:
        obs_field = contract.field("joint_pos")
    except KeyError:
        return None
    pos = np.asarray(obs["joint_pos"], dtype=float).reshape(-1)
    out = []
    for f in contract.actions:
        if f.name != "joint_pos_target":
            return None  # a mixed action (e.g. joints + gripper) has no full measured equivalent
        if f.components and obs_field.components:
            idx = {n: i for i, n in enumerate(obs_field.components)}
            missing = [n for n in f.components if n not in idx]
            if missing:
                return None
            out.append(pos[[idx[n] for n in f.components]])
        elif f.size == pos.size:
            out.append(pos)
        else:
            return None
    return np.concatenate(out) if out else None
