"""Robot adapters: ros2_control arm, PX4 quadrotor, Unitree and joint-level legged, and an in-process robot.

``make_adapter(name, transport, contract=None, **params)`` is the one entry the deploy CLI and the ROS node
use; adapters import lazily so ``import tether.hardware`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from tether.errors import TetherError

#: adapter name -> (module, class, default-contract function)
ADAPTERS: dict[str, tuple[str, str, str]] = {
    "arm-ros2-control": ("tether.hardware.adapters.arm_ros2_control", "ArmRos2Control", "arm_contract"),
    "px4": ("tether.hardware.adapters.px4", "PX4Quadrotor", "quad_contract"),
    "unitree": ("tether.hardware.adapters.unitree", "UnitreeLowLevel", "legged_contract"),
    "joint-level": ("tether.hardware.adapters.joint_level", "JointLevelLegged", "legged_contract"),
}


def _entry(name: str) -> tuple[Any, Any]:
    if name not in ADAPTERS:
        raise TetherError(f"unknown adapter {name!r}; expected one of {', '.join(ADAPTERS)}")
    module, cls, contract_fn = ADAPTERS[name]
    mod = importlib.import_module(module)
    return getattr(mod, cls), getattr(mod, contract_fn)


def make_adapter(name: str, transport: Any, contract: Any = None, **params: Any) -> Any:
    """Build adapter ``name`` over ``transport``. Pass the policy's contract so the adapter serves exactly it
    (it raises ContractError listing any field or mode it cannot provide); ``params`` are the adapter's
    keyword options (topics, gains, goal, limits...)."""
    cls, _ = _entry(name)
    try:
        return cls(transport, contract, **params)
    except TypeError as exc:
        raise TetherError(f"bad parameters for adapter {name!r}: {exc}") from None


def default_contract(name: str, **limits: Any) -> Any:
    """The adapter's contract in the shared vocabulary, with the limits given (see each *_contract function)."""
    _, fn = _entry(name)
    return fn(**limits)
