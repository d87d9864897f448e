"""One machine shared by the test workers, and the few measurements that need it to themselves.

Every test holds a shared lock on one file for the run (``conftest.pytest_runtest_protocol``, which also covers
the setup of the module fixtures the test is the first to use); :func:`quiet_machine` turns this test's lock
exclusive, so the other worker finishes the test it is in and starts no other until the block ends. Why: system
identification on a served-robot recording is a timing measurement (the motor lag is read from when each command
reached the robot's loop), and a second worker loading both cores biased it past the 10 % the claim allows (a
heavy vehicle's lag fitted x0.84 in a clean CI-style run). Only the recording is exclusive (about 15 s a case);
everything else runs two at a time as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from typing import IO

LOCK_ENV = "TETHER_TEST_MACHINE_LOCK"
_held: IO[str] | None = None  # this process's handle while a test runs


def lock_path() -> str:
    return os.environ[LOCK_ENV]


@contextlib.contextmanager
def shared_machine() -> Iterator[None]:
    """Held around every test: waits while another worker has the machine to itself."""
    global _held
    with open(lock_path(), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_SH)
        _held = fh
        try:
            yield
        finally:
            _held = None
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def quiet_machine() -> Iterator[None]:
    """The machine to this test alone for the block (the other worker's running test is waited for)."""
    if _held is None:  # outside the fixture (a helper run by hand): nothing to coordinate with
        yield
        return
    fh = _held
    fcntl.flock(fh, fcntl.LOCK_EX)  # converts this test's shared lock: waits for the other worker's test to end
    try:
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_SH)
