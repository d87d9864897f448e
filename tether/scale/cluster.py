"""Joining a Ray cluster: one connection per process, clear one-line errors, loopback unless told otherwise.

Why Ray: one machine's cores cap how many randomised worlds PPO/SAC can step per second; a Ray cluster is the
usual way to borrow other machines' cores. ``ray.init(address=ADDRESS)`` joins one that someone started with
``ray start --head`` (``"auto"`` on a cluster node, ``"ray://HOST:PORT"`` through Ray Client). ``"local"``
starts a private single-node cluster on 127.0.0.1 only (no port on another interface). ``ray`` is imported
only by functions given an address, so the default single-machine path never imports it or starts a Ray
process.

Every node of the cluster must have the same Tether (and simulator) versions installed as the driver: actors
and tasks import ``tether`` by name. Clusters with token authentication (Ray's default when a token exists)
need ``RAY_AUTH_MODE=token`` and the token (``RAY_AUTH_TOKEN`` or ``~/.ray/auth_token``) on the driver.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
from collections.abc import Iterator
from typing import Any

from tether.errors import TetherError


_ADDRESS_HINT = ("expected the address `ray start --head` printed (HOST:PORT, e.g. 10.0.0.5:6379), "
                 "'auto' on a cluster node, 'ray://HOST:PORT' for Ray Client, or 'local'")

# The address this process connected to through connect() (None: not connected by us).
_connected: str | None = None


# --------------------------------------------------------------------------------------------- connection
def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise TetherError("--ray needs the 'ray' package, which is not installed; expected `pip install "
                          "'ray>=2.60'` (the 'ray' extra of tether)") from None
    return ray


def _preflight(address: str) -> None:
    """Fail in seconds, not after Ray's minute of retries, when nothing listens at HOST:PORT."""
    hostport = address.removeprefix("ray://")
    if address in ("auto", "local") or ":" not in hostport:
        return
    host, _, port = hostport.rpartition(":")
    if not port.isdigit():
        raise TetherError(f"Ray address {address!r} has port {port!r}; {_ADDRESS_HINT}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5.0).close()
    except OSError as exc:
        raise TetherError(f"no Ray cluster answers at {address!r} ({exc.strerror or exc}); {_ADDRESS_HINT}") from None


def connect(address: str) -> Any:
    """Join the Ray cluster at ``address`` (once per process) and return the ``ray`` module.

    Calling it again with the same address is a no-op; a different address while connected is an error, because
    Ray allows one cluster per driver process.
    """
    global _connected
    if not isinstance(address, str) or not address.strip():
        raise TetherError(f"Ray address {address!r}; {_ADDRESS_HINT}")
    address = address.strip()
    ray = _import_ray()
    if ray.is_initialized():
        if _connected is not None and _connected != address:
            raise TetherError(f"already connected to the Ray cluster at {_connected!r}; expected the same address, "
                              f"got {address!r} (one cluster per process)")
        return ray
    _preflight(address)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        extra = {"_node_ip_address": "127.0.0.1", "include_dashboard": False} if address == "local" else {}
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, **extra)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        auth = ("" if os.environ.get("RAY_AUTH_MODE") == "token" else
                " (if the cluster uses token authentication, set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN)")
        raise TetherError(f"cannot connect to the Ray cluster at {address!r} ({first}){auth}; {_ADDRESS_HINT}") from None
    _connected = address
    return ray


def disconnect() -> None:
    """Leave the cluster this process joined through :func:`connect` (the cluster itself keeps running)."""
    global _connected
    if _connected is None:
        return
    import ray

    ray.shutdown()
    _connected = None


def ray_for(address: str | None) -> Any:
    """``ray`` connected to ``address``, or to the cluster this process is already connected to."""
    if address is not None:
        return connect(address)
    ray = _import_ray()
    if not ray.is_initialized():
        raise TetherError(f"not connected to a Ray cluster; pass address= ({_ADDRESS_HINT})")
    return ray


def cluster_cpus(ray: Any) -> int:
    return int(ray.cluster_resources().get("CPU", 0))


def _remote_error(exc: BaseException, what: str) -> TetherError:
    """A one-line TetherError from a failure on the cluster (a TetherError raised remotely keeps its message)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, TetherError):
        return TetherError(str(cause))
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    msg = next((ln for ln in reversed(lines) if re.match(r"^[\w.]+(Error|Exception): ", ln)),
               lines[-1] if lines else type(exc).__name__)
    return TetherError(f"{what} failed on the Ray cluster: {msg}")


def get(ray: Any, refs: list[Any], what: str) -> list[Any]:
    try:
        return ray.get(refs)
    except ray.exceptions.RayError as exc:
        raise _remote_error(exc, what) from None


@contextlib.contextmanager
def connected(address: str) -> Iterator[Any]:
    """``ray`` connected to ``address`` for the block; leaves the cluster afterwards only if the block joined it."""
    ray = _import_ray()
    joined = not ray.is_initialized()
    ray = connect(address)
    try:
        yield ray
    finally:
        if joined:
            disconnect()
