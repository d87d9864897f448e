"""Choosing and building a transport: the one place that knows every implementation and the "auto" rule.

Kept apart from :mod:`tether.ros.transport` (the interface) because every implementation imports the
interface; a factory there would make the interface import its own implementations.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from tether.errors import TetherError
from tether.ros.transport import Transport

TRANSPORT_KINDS = ("auto", "cyclonedds", "rclpy", "loopback")


def rclpy_available() -> bool:
    """True when rclpy can be imported (a sourced ROS 2 environment)."""
    return importlib.util.find_spec("rclpy") is not None


def resolve_kind(kind: str) -> str:
    """``auto`` -> rclpy when importable (a real ROS 2 install), else Cyclone DDS; other kinds checked and kept."""
    if kind not in TRANSPORT_KINDS:
        raise TetherError(f"unknown transport {kind!r}; expected one of {list(TRANSPORT_KINDS)}")
    if kind == "auto":
        return "rclpy" if rclpy_available() else "cyclonedds"
    return kind


def make_transport(kind: str = "auto", **kwargs: Any) -> Transport:
    """Build a transport of ``kind`` (see :func:`resolve_kind`).

    ``kwargs`` go to the chosen class (``domain_id``, ``distro``, ``config`` for Cyclone; ``node_name``,
    ``distro`` for rclpy; ``domain_id``, ``distro`` for loopback).
    """
    kind = resolve_kind(kind)
    if kind == "rclpy":
        if not rclpy_available():
            raise TetherError("transport 'rclpy' needs a sourced ROS 2 install (rclpy not importable); "
                              "expected kind 'auto' or 'cyclonedds' here")
        from tether.ros.rclpy_transport import RclpyTransport

        return RclpyTransport(**kwargs)
    if kind == "loopback":
        from tether.ros.loopback import LoopbackTransport

        return LoopbackTransport(**kwargs)
    from tether.ros.cyclonedds_transport import DdsTransport

    return DdsTransport(**kwargs)
