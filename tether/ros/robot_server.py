"""A served sim robot: a Tether simulator stepped in real time (or faster) behind the real robot's ROS 2 topics.

Why: a policy should meet a "real robot" long before it meets the real one. The server runs a TetherEnv's
physics backend in real time, publishing state and taking in commands at the real stack's rate where the
simulated actuation allows it (a Unitree's 500 Hz LowState, a ros2_control
controller manager's 100 Hz; otherwise the policy's control rate), and speaks
exactly what the real robot's stack speaks (see
:mod:`tether.ros.protocols`: ros2_control, PX4 uXRCE-DDS, Unitree LowState/LowCmd), so
``tether deploy`` runs against it unchanged, over a real DDS wire, in another process. The simulator can be
given parameters the policy never trained on (``--params``: DR terms and scale overrides) and the wire can be
made worse than a lab network (``--latency``/``--jitter`` per direction, ``--drop``, ``--noise``).

Threading: the simulator is only ever touched by the server's own loop thread. Incoming commands are queued by
the transport's callback with a due time (now + latency + jitter; dropped ones never enter) and applied at the
top of the next tick, which is also how a real robot's controller consumes commands (at its own tick).
Outgoing messages are serialised on the loop thread and handed to a sender thread that publishes each at its
due time, so delayed messages can overtake each other when jitter exceeds the publish period (reordering).

Side topics: ``/tether/robot_info`` (std_msgs/String JSON, latched) describes the served robot: kind,
rates, joints and its IOContract per control mode, which ``tether deploy`` checks the policy's contract
against at connect time; ``/tether/robot_stats`` (std_msgs/String JSON, ~2 Hz) reports what the robot did
with the commands it heard (applied, rejected by reason, dropped by fault injection).

Run it as a separate process: ``tether robot serve --robot arm``.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tether.errors import TetherError
from tether.ros import types as T
from tether.ros.protocols.common import ROBOT_INFO_TOPIC, ROBOT_STATS_TOPIC

ROBOTS = ("arm", "quadrotor", "legged")
BACKENDS = ("mujoco", "pybullet")
#: robot kind -> (env id, control mode the simulator is driven in, modes a policy may use through its adapter)
ROBOT_ENVS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "arm": ("tether/ArmReach-v0", "joint_position", ("joint_position", "ee_delta_pose")),
    # the served quadrotor's physics takes rotor thrusts; its PX4 rate controller is the bridge's
    "quadrotor": ("tether/QuadrotorHover-v0", "motor_thrust", ("thrust_body_rates", "motor_thrust")),
    "legged": ("tether/LeggedStand-v0", "joint_position", ("joint_position",)),
}
PARAM_KEYS = ("dr", "scale", "goal", "command", "seed", "env_id", "bridge")


@dataclass(frozen=True)
class Faults:
    """Wire faults, applied per direction (robot -> controller and controller -> robot)."""

    latency_s: float = 0.0  # fixed one-way delay
    jitter_s: float = 0.0  # extra uniform [0, jitter] delay per message: reorders when > publish period
    drop: float = 0.0  # probability a message is lost
    noise_std: float = 0.0  # std of Gaussian noise on published sensor values (physical units)
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop < 1.0:
            raise TetherError(f"drop probability {self.drop}; expected 0 <= P < 1")
        for name in ("latency_s", "jitter_s", "noise_std"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise TetherError(f"{name} {v}; expected a finite value >= 0")


@dataclass
class ServerStats:
    ticks: int = 0
    state_published: int = 0
    state_dropped: int = 0
    commands_queued: int = 0
    commands_dropped: int = 0
    late_ticks: int = 0
    bridge: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_params(path: str | Path | None, robot: str | None = None) -> dict[str, Any]:
    """``--params`` file (see :mod:`tether.sim.served_params` for the schema, checked before anything starts):
    DR terms, parameter scales, goal / command, seed, env id of the same robot, bridge options."""
    from tether.sim.served_params import load_served_params

    return {} if path is None else load_served_params(path, robot)


def build_env(robot: str, backend: str, params: dict[str, Any]) -> Any:
    """The unwrapped TetherEnv the robot lives in, reset once with the params' DR terms and scales applied."""
    import gymnasium as gym

    import tether.sim  # noqa: F401  (registers the env ids)

    if robot not in ROBOT_ENVS:
        raise TetherError(f"unknown robot {robot!r}; expected one of {', '.join(ROBOTS)}")
    if backend not in BACKENDS:
        raise TetherError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    from tether.sim.served_params import check_served_params

    params = check_served_params(params, "robot params", robot)  # an env id from data is a registered one
    env_id, mode, _ = ROBOT_ENVS[robot]
    env_id = params.get("env_id", env_id)
    env = gym.make(env_id, backend=backend, dr=params.get("dr", "none"), control_mode=mode).unwrapped
    env.reset(seed=int(params.get("seed", 0)))
    for target, factor in dict(params.get("scale", {})).items():
        current = env.sim.get_param(target)
        factor = np.asarray(factor, dtype=float)
        if factor.size not in (1, current.size):
            env.close()
            raise TetherError(f"robot params: scale.{target} has {factor.size} factors; expected 1 or {current.size} "
                              f"(one per element of the {robot}'s {target})")
        env.sim.set_param(target, current * np.broadcast_to(factor.reshape(-1) if factor.size > 1 else factor,
                                                            current.shape))
    return env


def robot_contracts(robot: str, params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The served robot's IOContract for every control mode a policy may use on it (for /tether/robot_info).

    Built from the robot spec and task alone (no physics backend), so it costs milliseconds."""
    from tether.sim.registry import parse_env_id
    from tether.sim.robots import make_robot
    from tether.sim.tasks import make_task

    env_id = params.get("env_id", ROBOT_ENVS[robot][0])
    robot_name, task, kwargs = parse_env_id(env_id)
    spec = make_robot(robot_name)
    return {mode: make_task(robot_name, task, spec, control_mode=mode, **kwargs).contract.to_dict()
            for mode in ROBOT_ENVS[robot][2]}


class _DelayedSender:
    """Publishes (publisher, cdr bytes) at due times on its own thread; a heap so jitter can reorder."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Any, bytes]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._stop = False
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="tether-serve-send", daemon=True)
        self._thread.start()

    def put(self, due: float, pub: Any, data: bytes) -> None:
        with self._cv:
            heapq.heappush(self._heap, (due, next(self._seq), pub, data))
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stop and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = None if not self._heap else max(0.0, self._heap[0][0] - time.monotonic())
                    self._cv.wait(timeout)
                if self._stop:
                    return
                _, _, pub, data = heapq.heappop(self._heap)
            try:
                pub.publish_raw(data)
            except Exception:  # the transport closing under us at shutdown
                self.errors += 1

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(timeout=2.0)


class RobotServer:
    """One served robot on one transport. ``run()`` blocks until ``stop()`` (or ``duration_s``)."""

    def __init__(
        self,
        robot: str,
        transport: Any,
        *,
        backend: str = "mujoco",
        params: dict[str, Any] | None = None,
        faults: Faults | None = None,
        rate_factor: float = 1.0,
        state_rate_hz: float | None = None,
        interface: str | None = None,
    ) -> None:
        from tether.ros.protocols import bridge_class

        self.robot, self.backend = robot, backend
        self.params = dict(params or {})
        self.faults = faults or Faults()
        if not (np.isfinite(rate_factor) and rate_factor >= 1.0):
            raise TetherError(f"rate factor {rate_factor}; expected >= 1 (real time or faster)")
        self.rate_factor = float(rate_factor)
        self.transport = transport
        self.store = transport.store
        self.env = build_env(robot, backend, self.params)
        spec = self.env.robot_spec
        self.control_rate_hz = float(spec.control_rate_hz)
        self.physics_hz = 1.0 / spec.physics_dt
        self.interface, bridge_cls = bridge_class(robot, interface)
        if state_rate_hz is None:  # the real stack's own rate, as near as the physics step allows
            native = bridge_cls.state_rate_hz or self.control_rate_hz
            state_rate_hz = self.physics_hz / max(1, round(self.physics_hz / native))
        state_rate_hz = float(state_rate_hz)
        steps = self.physics_hz / state_rate_hz
        if state_rate_hz <= 0 or abs(steps - round(steps)) > 1e-6 or round(steps) < 1:
            raise TetherError(
                f"state rate {state_rate_hz} Hz; expected a whole divisor of the {self.physics_hz:g} Hz physics rate")
        self.state_rate_hz = state_rate_hz
        self.substeps = int(round(steps))
        self._rng = np.random.default_rng(self.faults.seed)
        bridge_kw = dict(self.params.get("bridge", {}))
        if "goal" in self.params and robot != "legged":
            bridge_kw["goal"] = np.asarray(self.params["goal"], dtype=float)
        if "command" in self.params and robot == "legged":
            bridge_kw["command"] = np.asarray(self.params["command"], dtype=float)
        try:
            self.bridge = bridge_cls(self.env, self.store, noise=self._noise, **bridge_kw)
        except TypeError as exc:
            raise TetherError(f"bad bridge options {sorted(bridge_kw)} for robot {robot!r}: {exc}") from None
        self.stats = ServerStats()
        self._stop = threading.Event()
        self._cmd_lock = threading.Lock()
        self._cmd_heap: list[tuple[float, int, str, Any]] = []
        self._seq = itertools.count()
        self._pubs: dict[str, Any] = {}
        self._subs: list[Any] = []
        self._sender: _DelayedSender | None = None

    # ------------------------------------------------------------------ faults
    def _noise(self, x: np.ndarray) -> np.ndarray:
        if self.faults.noise_std <= 0:
            return x
        return x + self._rng.normal(0.0, self.faults.noise_std, np.shape(x))

    def _delay(self) -> float:
        f = self.faults
        return f.latency_s + (self._rng.uniform(0.0, f.jitter_s) if f.jitter_s > 0 else 0.0)

    def _dropped(self) -> bool:
        return self.faults.drop > 0 and self._rng.random() < self.faults.drop

    def _on_command(self, topic: str) -> Any:
        # each subscription gets its own stream (callbacks run on the transport's thread, never the loop's)
        rng = np.random.default_rng([self.faults.seed, 1 + len(self._subs)])

        def cb(msg: Any) -> None:
            f = self.faults
            if f.drop > 0 and rng.random() < f.drop:
                self.stats.commands_dropped += 1
                return
            delay = f.latency_s + (rng.uniform(0.0, f.jitter_s) if f.jitter_s > 0 else 0.0)
            with self._cmd_lock:
                heapq.heappush(self._cmd_heap, (time.monotonic() + delay, next(self._seq), topic, msg))
                self.stats.commands_queued += 1

        return cb

    # ------------------------------------------------------------------ lifecycle
    def info(self) -> dict[str, Any]:
        return {
            "robot": self.robot,
            "interface": self.interface,
            "backend": self.backend,
            "control_rate_hz": self.control_rate_hz,
            "state_rate_hz": self.state_rate_hz,
            "rate_factor": self.rate_factor,
            "joints": list(self.env.robot_spec.joints),
            "contracts": robot_contracts(self.robot, self.params),
            "faults": asdict(self.faults),
            "params": {k: v for k, v in self.params.items() if k != "dr"},
            "topics_out": [t for t, _, _ in self.bridge.outputs()],
            "topics_in": [t for t, _, _ in self.bridge.inputs()],
            "pid": os.getpid(),
        }

    def open(self) -> None:
        for topic, msgtype, qos in self.bridge.outputs() + self.bridge.extra_outputs():
            self._pubs[topic] = self.transport.publisher(topic, msgtype, qos)
        for topic, msgtype, qos in self.bridge.inputs():
            self._subs.append(self.transport.subscribe(topic, msgtype, self._on_command(topic), qos))
        info = self.transport.publisher(ROBOT_INFO_TOPIC, "std_msgs/msg/String", "latched")
        info.publish(T.make(self.store, "std_msgs/msg/String", data=json.dumps(self.info())))
        self._pubs[ROBOT_INFO_TOPIC] = info
        self._pubs[ROBOT_STATS_TOPIC] = self.transport.publisher(ROBOT_STATS_TOPIC, "std_msgs/msg/String", "default")
        self._sender = _DelayedSender()

    def stop(self) -> None:
        self._stop.set()

    def _drain_commands(self) -> None:
        now = time.monotonic()
        due = []
        with self._cmd_lock:
            while self._cmd_heap and self._cmd_heap[0][0] <= now:
                due.append(heapq.heappop(self._cmd_heap))
        for _, _, topic, msg in due:
            self.bridge.on_message(topic, msg)

    def _publish(self, items: Sequence[tuple[str, Any]], faulty: bool = True) -> None:
        assert self._sender is not None
        now = time.monotonic()
        for topic, msg in items:
            pub = self._pubs[topic]
            if faulty and self._dropped():
                self.stats.state_dropped += 1
                continue
            data = T.serialize(self.store, msg, pub.msgtype)
            delay = self._delay() if faulty else 0.0
            if delay <= 0:
                pub.publish_raw(data)
            else:
                self._sender.put(now + delay, pub, data)
            if faulty:
                self.stats.state_published += 1

    def step_once(self) -> None:
        """One state period: apply due commands, step physics, publish state (used by run and in-process tests)."""
        self._drain_commands()
        self.bridge.actuate(self.substeps)
        self._publish(self.bridge.state_messages())
        if self.bridge.goal_moved():  # a mission's next waypoint: now, not at the ~10 Hz repeat
            self._publish(self.bridge.extra_messages(), faulty=False)
        self.stats.ticks += 1

    def publish_stats(self) -> None:
        self.stats.bridge = self.bridge.summary()
        msg = T.make(self.store, "std_msgs/msg/String", data=json.dumps(self.stats.as_dict()))
        self._pubs[ROBOT_STATS_TOPIC].publish(msg)

    def run(self, duration_s: float | None = None, ready: Any = None) -> ServerStats:
        if self._sender is None:
            self.open()
        period = 1.0 / (self.state_rate_hz * self.rate_factor)
        extra_every = max(1, int(round(self.state_rate_hz / 10.0)))  # goal / cmd_vel at ~10 Hz
        stats_every = max(1, int(round(self.state_rate_hz / 2.0)))
        t0 = time.monotonic()
        next_t = t0
        k = 0
        self._publish(self.bridge.extra_messages(), faulty=False)
        if ready is not None:
            ready()
        while not self._stop.is_set():
            now = time.monotonic()
            if duration_s is not None and now - t0 >= duration_s:
                break
            if now < next_t:
                time.sleep(next_t - now)
            self.step_once()
            k += 1
            if k % extra_every == 0:
                self._publish(self.bridge.extra_messages(), faulty=False)
            if k % stats_every == 0:
                self.publish_stats()
            next_t += period
            behind = time.monotonic() - next_t
            if behind > period:  # a slow tick: skip the slots rather than burst (sim time still advances)
                self.stats.late_ticks += 1
                next_t += int(behind // period) * period
        self.stats.bridge = self.bridge.summary()
        return self.stats

    def close(self) -> None:
        if self._sender is not None:
            self._sender.close()
        for s in self._subs:
            try:
                s.close()
            except Exception:
                pass
        self.env.close()
