"""Shared helpers for the served-robot / deploy tests: small real checkpoints, a served robot in its own
process, and a probe participant that captures raw wire bytes for independent decoding."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def make_gaussian_checkpoint(path: Path, env_id: str, *, control_mode: str | None = None, seed: int = 0) -> Path:
    """A real (untrained, small) GaussianPolicy checkpoint with the env's contract."""
    import gymnasium as gym
    import torch

    import tether.sim  # noqa: F401
    from tether.policies.gaussian import GaussianPolicy, default_gaussian_config

    kw = {} if control_mode is None else {"control_mode": control_mode}
    env = gym.make(env_id, backend="mujoco", **kw)
    c = env.unwrapped.contract
    env.close()
    torch.manual_seed(seed)
    cfg = default_gaussian_config(c.obs_size, c.action_size, net={"hidden": [32, 32], "act": "relu",
                                                                  "layer_norm": False}, head_scale=0.5)
    GaussianPolicy(c, cfg).save(path)
    return path


def make_replay_checkpoint(path: Path, contract: Any, actions: np.ndarray) -> Path:
    from tether.policies.replay import ActionReplayPolicy

    ActionReplayPolicy(contract, actions).save(path)
    return path


def env_contract(env_id: str, control_mode: str | None = None) -> Any:
    import gymnasium as gym

    import tether.sim  # noqa: F401

    kw = {} if control_mode is None else {"control_mode": control_mode}
    env = gym.make(env_id, backend="mujoco", **kw)
    c = env.unwrapped.contract
    env.close()
    return c


def arm_hold_gaussian(path: Path, env_id: str = "tether/ArmReach-v0") -> Path:
    """A PPO-style actor (clipped Gaussian) for an arm task in ee_delta_pose whose mean is a zero TCP step: the
    end effector holds where it is."""
    import torch

    from tether.policies.gaussian import GaussianPolicy, default_gaussian_config

    c = env_contract(env_id)
    policy = GaussianPolicy(c, default_gaussian_config(c.obs_size, c.action_size, squash="clip",
                                                       log_std="state_independent",
                                                       net={"hidden": [16], "act": "tanh", "layer_norm": False}))
    with torch.no_grad():
        policy.net[-1].weight.zero_()
        policy.net[-1].bias.zero_()
    policy.extra["env_id"] = env_id
    policy.save(path)
    return path


class CliProcess:
    """``python -m tether.cli ARGS`` in its own process, its output lines read on threads; the first line holding
    ``marker`` sets ``marked`` (and ``t_marked``). ``pythonpath`` runs another checkout's tether (benchmarks/
    safety.py: before vs after); ``stderr_apart`` keeps stderr in ``err`` instead of merging it into ``lines``."""

    def __init__(self, args: list[str], marker: str, *, stderr_apart: bool = False,
                 pythonpath: str | None = None) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        if pythonpath is not None:
            env["PYTHONPATH"] = pythonpath
        self.proc = subprocess.Popen([PY, "-m", "tether.cli", *args], cwd=pythonpath or REPO, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE if stderr_apart else subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self.err: list[str] = []
        self.marked = threading.Event()
        self.t_marked: float | None = None
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.lines, marker), daemon=True)]
        if stderr_apart:
            self._readers.append(threading.Thread(target=self._read, args=(self.proc.stderr, self.err, None),
                                                  daemon=True))
        for th in self._readers:
            th.start()

    def _read(self, stream: Any, into: list[str], marker: str | None) -> None:
        for line in stream:
            into.append(line.rstrip())
            if marker is not None and marker in line and not self.marked.is_set():
                self.t_marked = time.monotonic()
                self.marked.set()

    def _wait_marked(self, timeout: float, failure: str) -> None:
        if not self.marked.wait(timeout):
            self.kill()
            raise AssertionError(f"{failure}:\n" + "\n".join(self.lines[-30:] + self.err[-20:]))

    def _join_readers(self, timeout: float) -> None:
        for th in self._readers:
            th.join(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class ServedRobot(CliProcess):
    """``tether robot serve`` in its own process; ``wait_ready`` blocks on its ready line."""

    def __init__(self, robot: str, domain: int, *extra: str) -> None:
        super().__init__(["robot", "serve", "--robot", robot, "--loopback", "--domain-id", str(domain), *extra],
                         "ready")

    def wait_ready(self, timeout: float = 120.0) -> None:
        self._wait_marked(timeout, "served robot never became ready")

    def stats(self) -> dict[str, Any] | None:
        for line in reversed(self.lines):
            if "tether robot serve: stats " in line:
                return json.loads(line.split("stats ", 1)[1])
        return None

    def stop(self, timeout: float = 15.0) -> dict[str, Any] | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._join_readers(2.0)
        return self.stats()


def recorded_deploy(robot: str, domain: int, params: Path, ckpt: Path, adapter: str, bag: Path,
                    seconds: float = 3.0) -> None:
    """``tether deploy --record`` of ``ckpt`` for ``seconds`` against a served ``robot`` started with ``params``
    (its own process), asserting the deploy ended cleanly."""
    srv = ServedRobot(robot, domain, "--params", str(params))
    try:
        srv.wait_ready()
        run = subprocess.run([PY, "-m", "tether.cli", "deploy", str(ckpt), "--adapter", adapter, "--loopback",
                              "--domain-id", str(domain), "--duration", f"{seconds:g}", "--record", str(bag)],
                             cwd=REPO, capture_output=True, text=True, timeout=180)
    finally:
        srv.stop()
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]


class Probe:
    """A separate DDS participant in the test process that records raw CDR per topic with arrival times."""

    def __init__(self, domain: int) -> None:
        from tether.ros.cyclonedds_transport import DdsTransport

        self.t = DdsTransport(domain_id=domain, config="loopback")
        self.raw: dict[str, list[tuple[float, bytes]]] = {}
        self._lock = threading.Lock()
        self.endpoints: dict[str, Any] = {}  # DDS topic name -> latest DiscoveredEndpoint seen while watching
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def watch_discovery(self, period: float = 0.3) -> None:
        """Poll DDS discovery on a thread so writers that exist only during a run are seen too.

        Each topic keeps its latest sample, not its first: once in CI the first sample kept for the served
        robot's vehicle_status writer had empty USER_DATA, although that writer is created with its type hash
        like every other (cause not found; 8 runs here never showed it). A writer that never sends its type
        hash still fails the check: its latest sample lacks it too."""

        def run() -> None:
            while not self._watch_stop.is_set():
                for ep in self.t.discovered("publications", timeout=0.05):
                    self.endpoints[ep.topic_name] = ep
                self._watch_stop.wait(period)

        self._watcher = threading.Thread(target=run, daemon=True)
        self._watcher.start()

    def listen(self, topic: str, msgtype: str, qos: str = "sensor_data") -> None:
        def cb(data: bytes, _topic: str = topic) -> None:
            with self._lock:
                self.raw.setdefault(_topic, []).append((time.monotonic(), bytes(data)))

        self.t.subscribe(topic, msgtype, cb, qos, raw=True)

    def count(self, topic: str) -> int:
        with self._lock:
            return len(self.raw.get(topic, []))

    def close(self) -> None:
        self._watch_stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5.0)
        self.t.close()


def independent_typestore() -> Any:
    """A rosbags typestore built here from rosbags' stock humble store and the bundled .msg text, without
    going through tether.ros.types (so a bug in Tether's codec helpers cannot hide)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    types: dict[str, Any] = {}
    root = REPO / "tether" / "ros" / "msg"
    for path in sorted(root.glob("*/msg/*.msg")):
        pkg = path.parent.parent.name
        if pkg.startswith("_"):
            continue
        types.update(get_types_from_msg(path.read_text(), f"{pkg}/msg/{path.stem}"))
    store.register(types)
    return store


def run_deploy_cli(args: list[str], timeout: float = 90.0) -> subprocess.CompletedProcess:
    cmd = [PY, "-m", "tether.cli", "deploy", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def bag_messages(bag: Path, topics: list[str] | None = None) -> list[Any]:
    from tether.ros.recorder import read_bag

    return list(read_bag(bag, topics=topics))


def hover_contract(**changes: Any) -> Any:
    """The sim quadrotor hover contract, optionally with action fields' limits changed (``body_rates=±x``)."""
    import dataclasses

    c = env_contract("tether/QuadrotorHover-v0")
    acts = []
    for f in c.actions:
        if f.name in changes:
            lo, hi = changes[f.name]
            f = dataclasses.replace(f, low=tuple(np.broadcast_to(lo, f.size).astype(float)),
                                    high=tuple(np.broadcast_to(hi, f.size).astype(float)))
        acts.append(f)
    return dataclasses.replace(c, actions=tuple(acts))


def hover_actions(contract: Any, rates: tuple[float, float, float] = (0.0, 0.0, 0.0), n: int = 50) -> np.ndarray:
    """Normalised replay actions: hover thrust of the sim vehicle, the given normalised body rates."""
    from tether.sim.robots import quadrotor as cf

    phys = np.array([cf.MASS * cf.GRAVITY, 0.0, 0.0, 0.0])
    a = contract.to_normalised(phys)
    a[1:4] = rates
    return np.repeat(a[None], n, axis=0)


class DeployProcess(CliProcess):
    """``tether deploy`` in its own process; ``wait_running`` blocks on its "running" line."""

    def __init__(self, *args: str, pythonpath: str | None = None) -> None:
        super().__init__(["deploy", *args], "tether deploy: running", stderr_apart=True, pythonpath=pythonpath)

    @property
    def t_running(self) -> float | None:
        return self.t_marked

    def wait_running(self, timeout: float = 90.0) -> None:
        self._wait_marked(timeout, "deploy never ran")

    def wait(self, timeout: float = 60.0) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("deploy did not end:\n" + "\n".join(self.lines[-20:] + self.err[-20:])) from None
        self._join_readers(5.0)
        return rc


def deploy_loopback(ckpt: Path, adapter: str, domain: int, duration: float, *extra: str,
                    pythonpath: str | None = None) -> DeployProcess:
    """``tether deploy CKPT --adapter ADAPTER --loopback --domain-id DOMAIN --duration DURATION EXTRA...``."""
    return DeployProcess(str(ckpt), "--adapter", adapter, "--loopback", "--domain-id", str(domain), "--duration",
                         f"{duration:g}", *extra, pythonpath=pythonpath)


def deploy_until_running(ckpt: Path, adapter: str, domain: int, duration: float, *extra: str,
                         pythonpath: str | None = None) -> DeployProcess:
    """:func:`deploy_loopback`, returned once its control loop runs."""
    dep = deploy_loopback(ckpt, adapter, domain, duration, *extra, pythonpath=pythonpath)
    dep.wait_running()
    return dep


def hover_checkpoint(path: Path) -> Path:
    """A replay checkpoint at ``path`` that holds the sim quadrotor's hover thrust, body rates zero."""
    c = hover_contract()
    return make_replay_checkpoint(path, c, hover_actions(c))


ARM_COMMANDS = "/forward_position_controller/commands"


def arm_under_spoofed_joint_states(tmp: Path, domain: int, *extra: str,
                                   pythonpath: str | None = None) -> tuple[np.ndarray, Any, DeployProcess, int]:
    """Deploy jerky end-effector steps on the served arm while a second /joint_states writer makes the arm "jump"
    anywhere in its range at 100 Hz; returns (the joint targets sent, in order; contract; deploy; exit code)."""
    contract = env_contract("tether/ArmReach-v0")  # ee_delta_pose: joint targets come from IK on the read state
    acts = np.array([[1, 1, -1], [-1, -1, 1], [1, -1, 1], [-1, 1, -1]] * 10, dtype=float)
    ckpt = make_replay_checkpoint(tmp / "jerky", contract, acts)
    srv = ServedRobot("arm", domain, "--goal", "0.5", "0.0", "0.3")
    probe = Probe(domain)
    probe.listen(ARM_COMMANDS, "std_msgs/msg/Float64MultiArray")
    stop = threading.Event()
    spoof = joint_state_spoofer(probe.t)
    try:
        srv.wait_ready()
        background(stop, 0.01, spoof)
        dep = deploy_loopback(ckpt, "arm-ros2-control", domain, 3, *extra, pythonpath=pythonpath)
        rc = dep.wait(90)
    finally:
        stop.set()
        probe.close()
        srv.stop()
    q = np.array([np.asarray(m.data) for _, m in decode(probe, ARM_COMMANDS, "std_msgs/msg/Float64MultiArray")])
    return q, contract, dep, rc


def decode(probe: Probe, topic: str, msgtype: str) -> list[tuple[float, Any]]:
    """Every captured sample on ``topic`` decoded with the probe's typestore: (arrival, message)."""
    from tether.ros import types as T

    with probe._lock:
        raw = list(probe.raw.get(topic, []))
    return [(t, T.deserialize(probe.t.store, d, msgtype)) for t, d in raw]


def robot_stats(probe: Probe) -> dict[str, Any] | None:
    got = decode(probe, "/tether/robot_stats", "std_msgs/msg/String")
    return json.loads(got[-1][1].data) if got else None


def wait_until(cond: Any, timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


def background(stop: threading.Event, period: float, body: Any) -> threading.Thread:
    """``body(k)`` every ``period`` s on a daemon thread until ``stop`` is set (k counts calls)."""

    def run() -> None:
        k = 0
        while not stop.is_set():
            body(k)
            k += 1
            time.sleep(period)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def fake_px4(transport: Any, wide_contract: Any) -> Any:
    """A fake PX4 (level hover odometry, armed offboard status, goal) plus a latched robot_info agreeing with
    ``wide_contract``; returns ``body(k)`` for :func:`background`."""
    from tether.ros import types as T
    from tether.ros.protocols.px4 import odometry_message

    t = transport
    t.publisher("/tether/robot_info", "std_msgs/msg/String", "latched").publish(T.make(
        t.store, "std_msgs/msg/String", data=json.dumps({"robot": "quadrotor",
                                                         "contracts": {"thrust_body_rates": wide_contract.to_dict()}})))
    odom = t.publisher("/fmu/out/vehicle_odometry", "px4_msgs/msg/VehicleOdometry", "px4_out")
    status = t.publisher("/fmu/out/vehicle_status", "px4_msgs/msg/VehicleStatus", "px4_out")
    goal = t.publisher("/tether/goal", "geometry_msgs/msg/PointStamped")
    point = t.store.types["geometry_msgs/msg/Point"]

    def body(_k: int) -> None:
        odom.publish(odometry_message(t.store, np.array([0, 0, 1.0]), np.array([1.0, 0, 0, 0]), np.zeros(3),
                                      np.zeros(3), time.time_ns() // 1000))
        status.publish(T.make(t.store, "px4_msgs/msg/VehicleStatus", arming_state=2, nav_state=14,
                              nav_state_user_intention=14))
        goal.publish(T.make(t.store, "geometry_msgs/msg/PointStamped", point=point(x=0.0, y=0.0, z=1.0)))

    return body


def joint_state_spoofer(transport: Any, seed: int = 4) -> Any:
    """A second /joint_states writer whose arm "jumps" anywhere in its range; ``body(k)`` for background()."""
    from tether.ros.protocols.ros2_control import joint_state_message
    from tether.sim.robots import panda as P

    pub = transport.publisher("/joint_states", "sensor_msgs/msg/JointState", "system_default")
    rng = np.random.default_rng(seed)
    names = [*P.ARM_JOINTS, *P.FINGER_JOINTS]

    def body(_k: int) -> None:
        q = np.r_[rng.uniform(P.Q_LOW, P.Q_HIGH), 0.0, 0.0]
        pub.publish(joint_state_message(transport.store, names, q, np.zeros(9)))

    return body


def bad_odometry(transport: Any) -> Any:
    """Hostile VehicleOdometry in turn: NaN q, zero q, 1e9 m/s, stamp 2^63 us, stamp 1 us, byte-swapped CDR."""
    from tether.ros import types as T
    from tether.ros.protocols.px4 import odometry_message

    pub = transport.publisher("/fmu/out/vehicle_odometry", "px4_msgs/msg/VehicleOdometry", "px4_out")

    def body(k: int) -> None:
        m = odometry_message(transport.store, np.array([0, 0, 1.0]), np.array([1.0, 0, 0, 0]), np.zeros(3),
                             np.zeros(3), time.time_ns() // 1000)
        kind = k % 6
        if kind == 0:
            m.q = np.array([np.nan, 0, 0, 1], dtype=np.float32)
        elif kind == 1:
            m.q = np.zeros(4, dtype=np.float32)
        elif kind == 2:
            m.velocity = np.array([1e9, 0, 0], dtype=np.float32)
        elif kind == 3:
            m.timestamp = 2**63
        elif kind == 4:
            m.timestamp = 1
        if kind == 5:  # the same message with its bytes read as big-endian CDR
            data = bytearray(T.serialize(transport.store, m, "px4_msgs/msg/VehicleOdometry"))
            data[1] = 0x00
            pub.publish_raw(bytes(data))
        else:
            pub.publish(m)

    return body
