"""RobotInterface: what the control loop needs from any robot (served sim, ROS adapter, in-process sim).

Observations come back as a name -> array mapping in the physical units of the robot's IOContract, so the
loop assembles the policy input by name and a reordered message can never shuffle a policy's inputs. The
stamp is the time the newest state arrived, on ``time.monotonic()`` (not the ROS clock: a watchdog needs a
clock that never jumps), so the guard can judge staleness against its own clock.

Commands: the policy speaks the contract's action fields; the robot may receive something else (an arm in
``ee_delta_pose`` receives joint targets after IK). ``to_command`` is that translation and ``command_contract``
describes what ``send`` takes, so the guard (the last transform before the wire) works in the units the robot
receives, with the robot's own limits (``robot_limits``), and ``executed_action`` maps what was sent back into
the policy's units for the record.

Control: ``engage`` takes control where the protocol needs an explicit step (PX4: offboard + arm),
``control_status`` says whether the robot is following us, ``safe_stop`` starts the robot kind's own safe stop
(PX4: land, retried until acknowledged; arms and legged robots: nothing beyond the guard's hold / damp), and
``state_rejections`` counts state messages dropped as malformed or implausible, per topic and reason.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tether.contract import IOContract
from tether.errors import TetherError
from tether.hardware.limits import RobotLimits


@dataclass(frozen=True)
class RobotState:
    """One state reading: observation fields by name plus the monotonic time it arrived."""

    obs: Mapping[str, np.ndarray]
    stamp_s: float


@dataclass(frozen=True)
class ControlStatus:
    """Whether the robot executes our commands. ``recoverable``: ``engage()`` may bring control back (e.g.
    PX4 dropped out of offboard after a link failsafe); otherwise control is lost for good (disarmed, a pilot
    switched modes, the controller is gone) and the run must stop."""

    in_control: bool
    reason: str = ""
    recoverable: bool = True
    details: Mapping[str, Any] | None = None


IN_CONTROL = ControlStatus(True)


class RobotNotReady(TetherError):
    """No state has arrived yet (e.g. no /joint_states within the connect timeout)."""


class RobotInterface(ABC):
    """A robot that accepts physical commands in the order of its command contract's action fields."""

    contract: IOContract
    #: the robot side's own limits (per robot model, from a file the operator owns); None: contract limits only
    robot_limits: RobotLimits | None = None
    #: what the guard does on stale state unless configured: "hold" (keep the last command) or "damp"
    stale_action: str = "hold"
    #: stale state for longer than this (s) latches a safe stop (None: hold / damp until state returns)
    stale_escalation_s: float | None = None
    #: every command is a bounded step from the robot's measured state (an arm's Cartesian steps through IK from
    #: the commanded joints, first set to the measured ones, within the joint speed limits): the first one cannot
    #: jump, so deploy needs no ramp-in for it (see ``DeployConfig.ramp_in_s``)
    incremental_commands: bool = False

    @abstractmethod
    def connect(self) -> None:
        """Open the connection and wait (bounded) for a first state; raise RobotNotReady if none arrives."""

    @abstractmethod
    def read_state(self) -> tuple[dict[str, np.ndarray], float]:
        """Latest observation fields by name and the monotonic time that state arrived."""

    @abstractmethod
    def send(self, command: np.ndarray, *, damp: bool = False) -> None:
        """Send one command (command contract order, SI units). ``damp`` asks the robot to also go
        passive where it can (kp=0, kd>0); robots without such a mode ignore it, the command is still safe."""

    @abstractmethod
    def disconnect(self) -> None:
        """Release the connection; must be safe to call twice and after a failed connect."""

    # ------------------------------------------------------------------ commands (defaults: identity)
    @property
    def command_contract(self) -> IOContract:
        """What ``send`` takes: by default the policy contract itself."""
        return self.contract

    def to_command(self, action: np.ndarray, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The policy's physical action -> the command the robot receives (before the guard)."""
        return np.asarray(action, dtype=float).reshape(-1)

    def executed_action(self, command: np.ndarray) -> np.ndarray:
        """A sent (guarded) command expressed in the policy's physical action units, for the record."""
        return np.asarray(command, dtype=float).reshape(-1)

    def safe_command(self, obs: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """Where a damp / e-stop goes in non-position modes, from the current state (None: the guard's static
        safe command). A multirotor returns a controlled descent, never zero thrust."""
        return None

    def measured_command(self, obs: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """The robot's current state expressed as a command (for hold/ramp-in), or None if that has no meaning.

        Position modes: the measured joint positions, matched to the command's joint components by name.
        """
        return measured_joint_command(self.command_contract, obs)

    # ------------------------------------------------------------------ control (defaults: always in control)
    def engage(self) -> None:
        """Take (or retake) control where the protocol needs an explicit step; default: nothing to do."""

    def control_status(self) -> ControlStatus:
        return IN_CONTROL

    def safe_stop(self, reason: str) -> None:
        """Start the robot kind's own safe stop (beyond the guard's hold / damp); default: nothing more."""

    def safe_stop_settled(self) -> bool:
        """True once the safe stop no longer needs this controller (PX4: landing acknowledged); default True."""
        return True

    def state_rejections(self) -> dict[str, dict[str, int]]:
        """State messages dropped as malformed or implausible: topic -> reason -> count."""
        return {}

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
