"""The robot side of deployment: RobotInterface, CommandGuard (the safety layer every command passes),
ControlLoop (fixed rate, deadline statistics, chunk execution) and robot adapters (``tether.hardware.adapters``).

Imports flow downward: this package knows the contract and policies' protocol; ROS is reached only through
the injected ``tether.ros.transport.Transport`` inside the adapters.
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
