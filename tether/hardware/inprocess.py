"""In-process robots: no transport at all, for loop timing tests, benchmarks and dry runs of the deploy path.

``KinematicJointRobot`` is a joint-position robot whose joints follow their targets with a first-order lag
(integrated exactly on the monotonic clock between reads), so a loop against it exercises the whole path
(by-name assembly, guard, timing) with real dynamics but no simulator start-up cost. ``freeze()`` stops new
state arriving (the stamp stops advancing) to exercise stale-state handling; ``sent`` keeps every command.
``SimEnvRobot`` wraps a Tether gymnasium env (MuJoCo or PyBullet) the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tether.contract import IOContract
from tether.errors import TetherError
from tether.hardware.interface import RobotInterface


class KinematicJointRobot(RobotInterface):
    """Joints track the last position command with time constant ``tau_s``; other obs fields are fixed."""

    def __init__(
        self,
        contract: IOContract,
        *,
        q0: np.ndarray | None = None,
        tau_s: float = 0.05,
        extra_obs: Mapping[str, np.ndarray] | None = None,
        clock: Callable[[], float] = time.monotonic,
        keep_sent: bool = True,
    ) -> None:
        if contract.control_mode != "joint_position":
            raise TetherError(f"KinematicJointRobot needs control mode 'joint_position'; got {contract.control_mode!r}")
        self.contract = contract
        self.n = contract.field("joint_pos").size
        if contract.action_size != self.n:
            raise TetherError(f"action size {contract.action_size}; expected {self.n} joint targets")
        self.q = np.zeros(self.n) if q0 is None else np.asarray(q0, dtype=float).copy()
        self.dq = np.zeros(self.n)
        self.target = self.q.copy()
        self.tau_s = tau_s
        self.extra = {k: np.asarray(v, dtype=float) for k, v in (extra_obs or {}).items()}
        self.clock = clock
        self.keep_sent = keep_sent
        self.sent: list[tuple[np.ndarray, bool]] = []
        self.connected = False
        self.connects = 0
        self._frozen_at: float | None = None
        self._t = clock()
        self._lock = threading.Lock()

    def connect(self) -> None:
        self.connected = True
        self.connects += 1
        self._t = self.clock()

    def disconnect(self) -> None:
        self.connected = False

    def freeze(self, frozen: bool = True) -> None:
        """Simulate a dead state stream: read_state keeps returning the last state and its old stamp."""
        self._frozen_at = self._t if frozen else None

    def _advance(self) -> float:
        now = self.clock()
        if self._frozen_at is not None:
            return self._frozen_at
        dt = max(now - self._t, 0.0)
        a = 1.0 - np.exp(-dt / self.tau_s)
        q_new = self.q + a * (self.target - self.q)
        self.dq = (q_new - self.q) / dt if dt > 0 else self.dq
        self.q, self._t = q_new, now
        return now

    def read_state(self) -> tuple[dict[str, np.ndarray], float]:
        if not self.connected:
            raise TetherError("read_state() before connect(); expected connect() first")
        with self._lock:
            stamp = self._advance()
            obs = dict(self.extra)
            obs["joint_pos"], obs["joint_vel"] = self.q.copy(), self.dq.copy()
        return obs, stamp

    def send(self, command: np.ndarray, *, damp: bool = False) -> None:
        if not self.connected:
            raise TetherError("send() before connect(); expected connect() first")
        cmd = np.asarray(command, dtype=float).reshape(-1)
        if cmd.shape != (self.n,):
            raise TetherError(f"command has {cmd.size} elements; expected {self.n}")
        with self._lock:
            self.target = cmd.copy()
            if self.keep_sent:
                self.sent.append((cmd.copy(), damp))


class SimEnvRobot(RobotInterface):
    """A Tether gymnasium env as a robot: the loop's physical command is mapped back to the env's normalised
    action and stepped; the observation vector is split into fields by the env's own contract.

    It is the in-process stand-in for a served sim robot (no transport): a dry run of a checkpoint through the
    exact deploy path (contract check, guard, loop timing). The env steps when a command arrives, so the loop's
    rate sets the simulated real-time factor. Episodes that end are reset automatically (``episodes`` counts
    them); the env's ``last_action`` field is the env's own, so the loop leaves it alone.
    """

    def __init__(self, env: Any, *, seed: int | None = 0, auto_reset: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.env = env
        self.contract = env.unwrapped.contract
        self.seed = seed
        self.auto_reset = auto_reset
        self.clock = clock
        self.episodes = 0
        self.steps = 0
        self.connected = False
        self._obs: np.ndarray | None = None
        self._stamp = 0.0

    def connect(self) -> None:
        obs, _ = self.env.reset(seed=self.seed)
        self._obs, self._stamp = np.asarray(obs, dtype=float), self.clock()
        self.connected = True

    def disconnect(self) -> None:
        self.connected = False

    def read_state(self) -> tuple[dict[str, np.ndarray], float]:
        if not self.connected or self._obs is None:
            raise TetherError("read_state() before connect(); expected connect() first")
        return {k: v.copy() for k, v in self.contract.split_obs(self._obs).items()}, self._stamp

    def send(self, command: np.ndarray, *, damp: bool = False) -> None:
        if not self.connected:
            raise TetherError("send() before connect(); expected connect() first")
        action = np.clip(self.contract.to_normalised(np.asarray(command, dtype=float)), -1.0, 1.0)
        obs, _, terminated, truncated, _ = self.env.step(action)
        self.steps += 1
        if (terminated or truncated) and self.auto_reset:
            self.episodes += 1
            obs, _ = self.env.reset()
        self._obs, self._stamp = np.asarray(obs, dtype=float), self.clock()
