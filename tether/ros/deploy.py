"""``tether deploy``: a checkpoint driving a robot over ROS 2, behind the guard, recorded to a rosbag2 MCAP bag.

Order matters, and is the safety argument:
1. load the checkpoint (hash-checked, no pickle) and compare rates;
2. build the adapter *with the policy's contract*: it refuses (ContractError) any field or control mode it
   cannot serve - before any publisher exists, so nothing can be sent;
3. if the robot describes itself on ``/tether/robot_info`` (served sim robots do; real ones do not), compare
   the policy's contract with the robot's contract for that control mode field by field (names, units,
   frames, joint names, action limits, rate) - still before any publisher exists;
4. only then connect (publishers + subscriptions), wait for a complete first state, and run the ControlLoop
   behind a CommandGuard fed by the latched e-stop topic ``/tether/estop``.
SIGINT/SIGTERM or ``--duration`` stop the loop after the current tick; the loop then sends one guard hold.

Recording: every state and command topic of the adapter is recorded raw (the bytes on the wire), plus the
"flat" topics ``tether.data`` converts exactly into a dataset: ``/tether/obs`` (policy observation vector,
physical units), ``/tether/action`` (the command actually sent, physical units, after the guard),
``/tether/episode`` (UInt32), each with a parallel ``<topic>/stamp`` (builtin_interfaces/Time) on the
control clock (observation and episode of tick k at start + k/rate, its command half a period later, counted
in ticks run, so the importer's grid reproduces the recorded (observation, command) pairs one to one however
late the loop ran; see FlatRecorder),
plus ``/tether/policy_action`` (the raw normalised policy output, NaNs included) and ``/tether/guard``
(std_msgs/String: why the guard chose each command). The recorder commits every 0.5 s, so a deploy killed
with SIGKILL still leaves a readable bag.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tether.contract import ContractError, IOContract
from tether.errors import TetherError

#: per adapter: defaults that make it talk to ``tether robot serve`` (and are the common real-robot choices)
ADAPTER_DEFAULTS: dict[str, dict[str, Any]] = {
    "arm-ros2-control": {"controller": "forward_position_controller"},
    "px4": {"auto_engage_after_s": 1.0},
    "unitree": {},
    "joint-level": {},
}
ADAPTER_ROBOT = {"arm-ros2-control": "arm", "px4": "quadrotor", "unitree": "legged", "joint-level": "legged"}
STALE_DEFAULT = {"unitree": "damp"}  # Unitree motors can go passive; everything else holds
FLAT_TOPICS = ("/tether/obs", "/tether/action", "/tether/episode")


@dataclass
class DeployConfig:
    checkpoint: str
    adapter: str
    rate_hz: float | None = None
    duration_s: float | None = None
    record: str | None = None
    domain_id: int | None = None
    loopback: bool = False
    distro: str = "humble"
    params: dict[str, Any] = field(default_factory=dict)
    stale_periods: float = 3.0
    stale_action: str | None = None
    ramp_in_s: float = 0.5
    robot_info_timeout_s: float = 1.5
    connect_timeout_s: float = 10.0
    estop_topic: str = "/tether/estop"
    episode: int = 0
    transport: str = "auto"  # auto (rclpy when importable, else Cyclone DDS) | cyclonedds | rclpy
    node_name: str = "tether_deploy"  # rclpy only


@dataclass
class DeployResult:
    stats: Any  # LoopStats
    robot_info: dict[str, Any] | None
    recorded: int
    bag: str | None
    adapter_rejected: dict[str, int]
    qos_incidents: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = self.stats.as_dict()
        d.update(bag=self.bag, recorded=self.recorded, robot_checked=self.robot_info is not None,
                 adapter_rejected=self.adapter_rejected, qos_incidents=self.qos_incidents)
        return d


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; VALUE is JSON when it parses (numbers, lists, null), else a string."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise TetherError(f"adapter parameter {item!r}; expected KEY=VALUE (VALUE as JSON or a string)")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def check_robot_info(contract: IOContract, info: dict[str, Any], adapter: str) -> None:
    """The policy's contract against the served robot's own contract for the same control mode."""
    want = ADAPTER_ROBOT[adapter]
    if info.get("robot") != want:
        raise ContractError(f"adapter {adapter!r} expects a {want} robot but the robot on the wire says it is "
                            f"{info.get('robot')!r}")
    contracts = info.get("contracts", {})
    if contract.control_mode not in contracts:
        raise ContractError(f"the robot does not serve control mode {contract.control_mode!r}; it serves "
                            f"{sorted(contracts)}")
    robot_contract = IOContract.from_dict(contracts[contract.control_mode])
    contract.check_compatible(robot_contract, check_rate=True, what="served robot")


def wait_robot_info(transport: Any, timeout_s: float) -> dict[str, Any] | None:
    from tether.ros.robot_server import ROBOT_INFO_TOPIC

    got: list[str] = []
    ev = threading.Event()

    def cb(msg: Any) -> None:
        got.append(msg.data)
        ev.set()

    sub = transport.subscribe(ROBOT_INFO_TOPIC, "std_msgs/msg/String", cb, "latched")
    try:
        ev.wait(timeout_s)
    finally:
        sub.close()
    if not got:
        return None
    try:
        return json.loads(got[-1])
    except json.JSONDecodeError:
        raise TetherError(f"{ROBOT_INFO_TOPIC} carries invalid JSON; expected the served robot's description") \
            from None


class FlatRecorder:
    """Writes the flat dataset topics (and the guard's reasons) for each tick into a BagRecorder.

    Every flat topic - ``/tether/episode`` included - gets its ``<topic>/stamp`` from the control clock, never
    from the wall clock at write time: under CPU load the thread can be preempted between taking the start
    time and writing, and one stream starting more than half a period late moved the importer's grid origin
    and paired every observation with the next tick's command (more than a period: dropped frames). Tick k is
    stamped ``start + round(k * 1e9/rate)`` (the importer's grid formula, so no rounding drift at rates whose
    period is not a whole number of ns), counted in ticks actually run: a slot skipped after an overrun
    observed and sent nothing, so it is no frame of the dataset (the loop's stats count skipped slots; the
    bag's log times keep the wall clock)."""

    def __init__(self, bag: Any, contract: IOContract, rate_hz: float, episode: int = 0) -> None:
        self.bag, self.contract = bag, contract
        self.store = bag.store
        self.period_ns = 1e9 / float(rate_hz)  # float on purpose: the same arithmetic as the importer's grid
        self.t0_ns: int | None = None
        self.k = 0
        self.episode = int(episode)
        self.needs_last_action = "last_action" in {f.name for f in contract.observations}
        self.last_action = np.zeros(contract.action_size)
        self.loop: Any = None
        S = self.store.types
        self._layout = S["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
        self._arr, self._time = S["std_msgs/msg/Float64MultiArray"], S["builtin_interfaces/msg/Time"]
        self._u32, self._str = S["std_msgs/msg/UInt32"], S["std_msgs/msg/String"]

    def _vec(self, v: np.ndarray) -> Any:
        return self._arr(layout=self._layout, data=np.asarray(v, dtype=np.float64).reshape(-1))

    def _stamp(self, t: int) -> Any:
        return self._time(sec=t // 10**9, nanosec=t % 10**9)

    def stamp_ns(self, k: int) -> int:
        """Control-clock stamp of observation k (the grid point the importer samples it at)."""
        assert self.t0_ns is not None
        return self.t0_ns + int(round(k * self.period_ns))

    def on_tick(self, obs: dict[str, np.ndarray], action: np.ndarray, command: np.ndarray, stamp: float) -> None:
        if self.t0_ns is None:
            self.t0_ns = time.time_ns()
        t = self.stamp_ns(self.k)
        # the command is sent during step k, after the observation that caused it and before observation k+1
        ta = t + (self.stamp_ns(self.k + 1) - t) // 2
        full = {**obs, "last_action": self.last_action} if self.needs_last_action and "last_action" not in obs \
            else obs
        vec = self.contract.flatten_obs(full)
        w = self.bag.write
        w("/tether/episode", "std_msgs/msg/UInt32", self._u32(data=self.episode))
        w("/tether/episode/stamp", "builtin_interfaces/msg/Time", self._stamp(t))
        w("/tether/obs", "std_msgs/msg/Float64MultiArray", self._vec(vec))
        w("/tether/obs/stamp", "builtin_interfaces/msg/Time", self._stamp(t))
        w("/tether/action", "std_msgs/msg/Float64MultiArray", self._vec(command))
        w("/tether/action/stamp", "builtin_interfaces/msg/Time", self._stamp(ta))
        w("/tether/policy_action", "std_msgs/msg/Float64MultiArray", self._vec(action))
        reason = self.loop.last_output.reason if self.loop is not None and self.loop.last_output else ""
        w("/tether/guard", "std_msgs/msg/String", self._str(data=reason))
        a = np.asarray(action, dtype=float).reshape(-1)
        self.last_action = np.where(np.isfinite(a), np.clip(a, -1.0, 1.0), 0.0)
        self.k += 1


def _extra_record_topics(adapter: Any, cfg: DeployConfig) -> list[tuple[str, str]]:
    """Topics worth having in the bag that the adapter does not subscribe to itself (mode changes, e-stop)."""
    extra = [(cfg.estop_topic, "std_msgs/msg/Bool")]
    odom = getattr(adapter, "t_odom", None)
    if cfg.adapter == "px4" and odom:
        extra.append((odom.replace("vehicle_odometry", "vehicle_status"), "px4_msgs/msg/VehicleStatus"))
    return extra


def _wait_first_state(robot: Any, timeout_s: float) -> None:
    from tether.hardware.interface import RobotNotReady

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            robot.read_state()
            return
        except RobotNotReady:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def open_transport(cfg: DeployConfig) -> Any:
    """The wire: Cyclone DDS (no ROS needed) or rclpy (a sourced ROS 2 install; untested here)."""
    from tether.ros.transport import make_transport, rclpy_available

    kind = cfg.transport
    if kind == "auto":
        kind = "rclpy" if rclpy_available() else "cyclonedds"
    if kind == "rclpy":
        return make_transport("rclpy", node_name=cfg.node_name, distro=cfg.distro, domain_id=cfg.domain_id)
    if kind != "cyclonedds":
        raise TetherError(f"unknown transport {cfg.transport!r}; expected one of auto, cyclonedds, rclpy")
    return make_transport("cyclonedds", domain_id=cfg.domain_id, distro=cfg.distro,
                          config="loopback" if cfg.loopback else None)


def deploy(cfg: DeployConfig, *, log: Any = print, install_signals: bool = True,
           transport: Any = None, stop: threading.Event | None = None) -> DeployResult:
    """Run a checkpoint on a robot; see the module docstring for the order of checks. A ``transport`` given
    by the caller (e.g. the ROS node's) is used and left open; otherwise one is opened and closed here.
    Setting ``stop`` (from any thread) ends the loop after the current tick, like SIGINT."""
    import torch

    import tether.policies.replay  # noqa: F401  (registers the action_replay kind)
    from tether.hardware.adapters import ADAPTERS, make_adapter
    from tether.hardware.estop import EStopListener
    from tether.hardware.guard import CommandGuard, GuardConfig
    from tether.hardware.loop import ControlLoop
    from tether.policies.checkpoint import load_policy
    from tether.ros.recorder import BagRecorder

    torch.set_num_threads(1)
    if cfg.adapter not in ADAPTERS:
        raise TetherError(f"unknown adapter {cfg.adapter!r}; expected one of {', '.join(ADAPTERS)}")
    if cfg.record is not None and Path(cfg.record).exists():
        raise TetherError(f"bag {cfg.record!r} already exists; expected a new path")
    if cfg.record is not None and Path(cfg.record).suffix == ".bag":
        raise TetherError(f"--record {cfg.record!r}: rosbag2 bags are directories and tools read a '.bag' name as "
                          "ROS 1; expected a name like out.mcap")
    policy = load_policy(cfg.checkpoint)
    contract: IOContract = policy.contract
    rate = float(cfg.rate_hz or contract.rate_hz)
    if abs(rate - contract.rate_hz) > 1e-9 * contract.rate_hz:
        raise ContractError(f"--rate {rate:g} Hz but the policy was trained at {contract.rate_hz:g} Hz; "
                            "expected the policy's rate")
    params = {**ADAPTER_DEFAULTS.get(cfg.adapter, {}), **cfg.params}
    params.setdefault("distro", cfg.distro)
    params.setdefault("connect_timeout_s", cfg.connect_timeout_s)
    own_transport = transport is None
    transport = open_transport(cfg) if own_transport else transport
    bag = adapter = estop = None
    info = None
    old_handlers: dict[int, Any] = {}
    try:
        adapter = make_adapter(cfg.adapter, transport, contract=contract, **params)  # ContractError: nothing sent
        if cfg.robot_info_timeout_s > 0:
            info = wait_robot_info(transport, cfg.robot_info_timeout_s)
            if info is not None:
                check_robot_info(contract, info, cfg.adapter)
            else:
                log(f"tether deploy: no /tether/robot_info within {cfg.robot_info_timeout_s:g} s (a real robot?); "
                    f"contract checked against the {cfg.adapter} adapter only")
        stale_action = cfg.stale_action or STALE_DEFAULT.get(cfg.adapter, "hold")
        guard = CommandGuard(contract, config=GuardConfig(stale_periods=cfg.stale_periods, stale_action=stale_action,
                                                          ramp_in_s=cfg.ramp_in_s), dt=1.0 / rate)
        flat = None
        if cfg.record is not None:
            bag = BagRecorder(cfg.record, distro=cfg.distro)
            flat = FlatRecorder(bag, contract, rate, cfg.episode)
        loop = ControlLoop(policy, adapter, rate, guard, on_tick=flat.on_tick if flat else None,
                           manage_connection=False)
        if flat is not None:
            flat.loop = loop
        loop.check_contracts()
        estop = EStopListener(transport, guard, cfg.estop_topic)
        if bag is not None:
            topics = [(t, m) for t, m, _ in adapter._subscriptions() + adapter._publishers()]
            topics += _extra_record_topics(adapter, cfg)
            bag.record(transport, topics)
        adapter.connect()
        _wait_first_state(adapter, cfg.connect_timeout_s)
        if install_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old_handlers[sig] = signal.signal(sig, lambda _s, _f: loop.stop())
        if stop is not None:
            threading.Thread(target=lambda: (stop.wait(), loop.stop()), name="tether-deploy-stop",
                             daemon=True).start()
        where = f"domain {getattr(transport, 'domain_id', '?')}"
        where += f", recording to {cfg.record}" if cfg.record else ""
        log(f"tether deploy: running {contract.robot}/{contract.task} ({contract.control_mode}) at {rate:g} Hz on "
            f"{cfg.adapter}, {where}")
        stats = loop.run(duration_s=cfg.duration_s)
        rejected = dict(getattr(adapter, "rejected", {}))
        log_ = getattr(transport, "qos_incidents", None)
        incidents = [f"{i.topic}: {i.reason}" for i in log_.items()] if log_ is not None else []
        for line in incidents:  # already logged as warnings by the transport; repeated in the summary
            log(f"tether deploy: QoS mismatch {line}")
        return DeployResult(stats, info, bag.written if bag is not None else 0, cfg.record, rejected, incidents)
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        if adapter is not None:
            try:
                adapter.disconnect()
            except Exception:
                pass
        if estop is not None:
            estop.close()
        if bag is not None:
            bag.close()
        if own_transport:
            transport.close()


def run_cli(args: Any) -> int:
    """Handler for ``tether deploy``."""
    from tether.ros.commands import _print

    cfg = DeployConfig(
        checkpoint=args.checkpoint, adapter=args.adapter, rate_hz=args.rate, duration_s=args.duration,
        record=args.record, domain_id=args.domain_id, loopback=args.loopback, distro=args.distro,
        params=parse_params(args.param), stale_periods=args.stale_periods, stale_action=args.stale_action,
        ramp_in_s=args.ramp_in, robot_info_timeout_s=args.robot_info_timeout, connect_timeout_s=args.connect_timeout,
        estop_topic=args.estop_topic, episode=args.episode, transport=args.transport,
    )
    result = deploy(cfg, log=_print)
    s = result.stats
    d = result.as_dict()
    _print(f"tether deploy: stopped ({s.stop_reason}) after {s.ticks} ticks in {s.duration_s:.2f} s: "
           f"rate {d['achieved_rate_hz']:.1f}/{s.rate_hz:g} Hz, latency p50 {d['latency_p50_ms']:.2f} ms "
           f"p99 {d['latency_p99_ms']:.2f} ms, deadline misses {s.misses} ({100 * s.miss_rate:.2f} %), "
           f"guard interventions {json.dumps({k: v for k, v in s.guard.items() if v and k != 'ticks'})}"
           + (f", {result.recorded} messages to {result.bag}" if result.bag else ""))
    if args.stats_json:
        Path(args.stats_json).write_text(json.dumps(d, indent=1, default=float))
    return 0


if __name__ == "__main__":  # pragma: no cover - use `tether deploy`
    sys.exit(1)
