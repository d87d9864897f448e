"""The robot side of deployment: RobotInterface, CommandGuard (the safety layer every command passes, with the
robot's own limits), ControlLoop (fixed rate, deadline statistics, chunk execution) and its supervisor, state
plausibility, the safe stop per robot kind, and in-process robots.

Imports flow downward: this package knows the contract and policies' protocol and nothing of ROS; the ROS
adapters that implement RobotInterface live in ``tether.ros.protocols`` (hardware never imports ros).
"""

from tether.hardware.chunks import ChunkExecutor, ensemble_weights
from tether.hardware.guard import CommandGuard, GuardConfig, GuardCounters, GuardOutput
from tether.hardware.interface import RobotInterface, RobotNotReady, RobotState
from tether.hardware.loop import ControlLoop, LoopStats

__all__ = [
    "ChunkExecutor",
    "CommandGuard",
    "ControlLoop",
    "GuardConfig",
    "GuardCounters",
    "GuardOutput",
    "LoopStats",
    "RobotInterface",
    "RobotNotReady",
    "RobotState",
    "ensemble_weights",
]
