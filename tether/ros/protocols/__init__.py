"""Wire protocols, one module each: topics, QoS, message encode/decode, the robot adapter (the controller's
side) and the served-robot bridge (the robot's side), so the two ends of a protocol cannot drift apart.

- ``ros2_control``: arms (/joint_states, forward / trajectory controllers)
- ``px4``: PX4 over uXRCE-DDS (odometry, status, offboard setpoints, vehicle commands)
- ``unitree``: Unitree LowState / LowCmd with its CRC (``unitree_crc``)
- ``joint_level``: legged robots under ros2_control (/joint_states, /imu/data, forward controller)

Shared: ``adapter`` (checked subscriptions, the RobotInterface base), ``bridge`` (the served-robot base),
``common`` (Tether's side topics), ``legged`` (the legged model and contract). Modules import lazily here so
``import tether.ros.protocols`` stays light.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from tether.errors import TetherError


@dataclass(frozen=True)
class AdapterEntry:
    module: str
    cls: str
    contract: str  # default-contract function of the module
    #: options that make it talk to ``tether robot serve`` (and are the common real-robot choices)
    deploy_params: dict[str, Any] = field(default_factory=dict)


_P = "tether.ros.protocols."
ADAPTERS: dict[str, AdapterEntry] = {
    "arm-ros2-control": AdapterEntry(_P + "ros2_control", "ArmRos2Control", "arm_contract",
                                     {"controller": "forward_position_controller"}),
    "px4": AdapterEntry(_P + "px4", "PX4Quadrotor", "quad_contract"),
    "unitree": AdapterEntry(_P + "unitree", "UnitreeLowLevel", "legged_contract"),
    "joint-level": AdapterEntry(_P + "joint_level", "JointLevelLegged", "legged_contract"),
}
#: served robot kind -> interface name -> (module, bridge class); the first interface is the default
INTERFACES: dict[str, dict[str, tuple[str, str]]] = {
    "arm": {"ros2-control": (_P + "ros2_control", "ArmBridge")},
    "quadrotor": {"px4": (_P + "px4", "PX4Bridge")},
    "legged": {"unitree": (_P + "unitree", "UnitreeBridge"), "ros2-control": (_P + "joint_level", "JointLevelBridge")},
}


def _entry(name: str) -> tuple[AdapterEntry, Any]:
    if name not in ADAPTERS:
        raise TetherError(f"unknown adapter {name!r}; expected one of {', '.join(ADAPTERS)}")
    e = ADAPTERS[name]
    return e, importlib.import_module(e.module)


def adapter_class(name: str) -> type:
    e, mod = _entry(name)
    return getattr(mod, e.cls)


def make_adapter(name: str, transport: Any, contract: Any = None, **params: Any) -> Any:
    """Build adapter ``name`` over ``transport``. Pass the policy's contract so the adapter serves exactly it
    (it raises ContractError listing any field or mode it cannot provide); ``params`` are the adapter's
    keyword options (topics, gains, goal, ``limits``...)."""
    e, mod = _entry(name)
    try:
        return getattr(mod, e.cls)(transport, contract, **params)
    except TypeError as exc:
        raise TetherError(f"bad parameters for adapter {name!r}: {exc}") from None


def default_limits(name: str) -> Any:
    """The shipped limits of the robot model adapter ``name`` drives (what ``tether robot limits`` writes)."""
    _, mod = _entry(name)
    return mod.default_limits()


def default_contract(name: str, limits: Any = None, **kwargs: Any) -> Any:
    """The adapter's contract: the sim's field builders within the robot's limits (default: the shipped ones)."""
    e, mod = _entry(name)
    return getattr(mod, e.contract)(limits, **kwargs)


def robot_kind(name: str) -> str:
    return adapter_class(name).robot_kind


def bridge_class(robot: str, interface: str | None = None) -> tuple[str, type]:
    """(interface name, bridge class) serving ``robot`` over ``interface`` (default: the robot's first)."""
    if robot not in INTERFACES:
        raise TetherError(f"unknown robot {robot!r}; expected one of {', '.join(INTERFACES)}")
    choices = INTERFACES[robot]
    interface = interface or next(iter(choices))
    if interface not in choices:
        raise TetherError(f"robot {robot!r} has no interface {interface!r}; expected one of {', '.join(choices)}")
    module, cls = choices[interface]
    return interface, getattr(importlib.import_module(module), cls)
