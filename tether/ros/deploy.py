"""``tether deploy``: a checkpoint driving a robot over ROS 2, behind the guard, recorded to a rosbag2 MCAP bag.

Order matters, and is the safety argument:
1. load the checkpoint (hash-checked, no pickle) and compare rates;
2. load the robot's limits (the operator's ``--robot-limits`` file, else the adapter's shipped per-model
   defaults): they, not the checkpoint, bound every command; a checkpoint can only narrow them;
3. build the adapter *with the policy's contract*: it refuses (ContractError) any field or control mode it
   cannot serve - before any publisher exists, so nothing can be sent;
4. if the robot describes itself on ``/tether/robot_info`` (served sim robots do; real ones do not), compare
   the policy's contract with the robot's contract for that control mode field by field (names, units,
   frames, joint names, action limits, rate) - still before any publisher exists. That description is data
   anyone on the domain can latch: it can refuse a deploy, never widen a limit;
5. only then connect (publishers + subscriptions), wait for a complete first state, and run the ControlLoop
   behind a CommandGuard (the robot's limits, in the units the robot receives) fed by the latched e-stop
   topic; the loop's supervisor tracks whether the robot follows (re-engaging where the protocol allows) and
   a writer watch stops the run safely if anyone else writes the robot's command topics.
SIGINT/SIGTERM or ``--duration`` stop the loop after the current tick; the loop then sends one guard hold
(after an e-stop: the robot kind's safe command). A run that lost control or met a foreign writer ends with
``DeployResult.failure`` set (the CLI exits 3).

Recording: every state and command topic of the adapter is recorded raw (the bytes on the wire), plus the
flat topics of :mod:`tether.data.topics` that ``tether.data`` converts exactly into a dataset: observation,
action (the command actually sent, in the policy's physical units), episode, each with a parallel
``<topic>/stamp`` on the control clock (observation and episode of tick k at start + k/rate, its command half
a period later, counted in ticks run, so the importer's grid reproduces the recorded (observation, command)
pairs one to one however late the loop ran; see FlatRecorder), plus the raw policy output, the guard's reason
per tick, the state messages dropped per reason (when they change) and the robot's control events. The
recorder commits every 0.5 s, so a deploy killed with SIGKILL still leaves a readable bag; the message count
reported is the bag's own, read after it is closed.
"""

from __future__ import annotations

import inspect
import json
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tether.contract import ContractError, IOContract
from tether.data import topics as flat
from tether.data.topics import stamp_topic
from tether.errors import TetherError

if TYPE_CHECKING:
    from tether.hardware.interface import RobotInterface

RAMP_IN_S = 0.5  # the guard's ramp-in where the adapter's first command could jump (absolute targets)
#: adapter options that are objects, not values a user may set with --param
INTERNAL_OPTIONS = ("transport", "contract", "limits", "goal_publishers", "clock_us", "distro", "connect_timeout_s")


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
    # blend from the measured state over this many seconds; None: RAMP_IN_S, or none for an adapter whose commands
    # are bounded steps from the measured state (``incremental_commands``: an arm's ee_delta_pose), where the
    # blend only slows the start. Why: the push policy served on a heavy, damped arm pushed 17 of 20 with the
    # 0.5 s ramp-in and 19 of 20 without, on the same start states; in-process, where no ramp runs, 28 of 28. The
    # ramp scaled its first 0.5 s of steps toward zero, and its 4-observation window then held states it had not
    # met in training (benchmarks/RESULTS.md, "The guard's ramp-in cost arm push")
    ramp_in_s: float | None = None
    robot_info_timeout_s: float = 1.5
    connect_timeout_s: float = 10.0
    estop_topic: str = flat.ESTOP_TOPIC
    episode: int = 0
    transport: str = "auto"  # auto (rclpy when importable, else Cyclone DDS) | cyclonedds | rclpy
    node_name: str = "tether_deploy"  # rclpy only
    robot_limits: str | None = None  # the operator's limits file; None: the adapter's shipped model defaults
    goal_publishers: list[str] | None = None  # enclaves allowed on the goal topic; None: the first one heard
    estop_publishers: list[str] | None = None  # enclaves allowed on the e-stop topic; None: anyone
    lost_control_s: float = 3.0
    check_writers: bool = True
    enclave: str = "/"  # this participant's ROS enclave (its identity under DDS Security)
    explore: float = 0.0  # > 0: add bounded exploration to the policy's actions (normalised units, for sysid / RL)
    explore_seed: int = 0
    keystore: str | None = None  # SROS2 keystore: run authenticated (needs a security-enabled Cyclone build)

    def __post_init__(self) -> None:
        def positive(name: str, v: Any, *, allow_none: bool = False, zero: bool = False) -> None:
            if v is None and allow_none:
                return
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if not ok or v < 0 or (v == 0 and not zero):
                raise TetherError(f"{name} is {v!r}; expected a finite number {'>= 0' if zero else '> 0'}")

        positive("rate", self.rate_hz, allow_none=True)
        positive("duration", self.duration_s, allow_none=True)
        positive("stale periods", self.stale_periods)
        positive("ramp-in", self.ramp_in_s, zero=True, allow_none=True)
        positive("robot-info timeout", self.robot_info_timeout_s, zero=True)
        positive("connect timeout", self.connect_timeout_s)
        positive("lost-control timeout", self.lost_control_s)
        if self.stale_periods > 1000 or (self.ramp_in_s or 0) > 600 or self.connect_timeout_s > 3600:
            raise TetherError("stale periods > 1000, ramp-in > 600 s or connect timeout > 3600 s; expected values "
                              "that keep the stale check and the ramp meaningful")
        if not isinstance(self.episode, int) or not 0 <= self.episode < 2**32:
            raise TetherError(f"episode {self.episode!r}; expected an integer in 0..2^32-1")
        if not (isinstance(self.explore, (int, float)) and math.isfinite(self.explore) and 0 <= self.explore <= 1):
            raise TetherError(f"explore {self.explore!r}; expected a scale in [0, 1] (normalised action units)")
        if self.stale_action not in (None, "hold", "damp"):
            raise TetherError(f"stale action {self.stale_action!r}; expected hold or damp")
        if self.enclave != "/":
            from tether.ros.security import check_enclave

            check_enclave(self.enclave)


@dataclass
class DeployResult:
    stats: Any  # LoopStats
    robot_info: dict[str, Any] | None
    recorded: int
    bag: str | None
    adapter_rejected: dict[str, int]
    qos_incidents: list[str] = field(default_factory=list)
    state_rejected: dict[str, dict[str, int]] = field(default_factory=dict)
    foreign_writers: str = ""

    @property
    def failure(self) -> str:
        """Why the run did not end as asked ("" if it did): lost control or a foreign writer."""
        if self.foreign_writers:
            also = f"; then lost control: {self.stats.lost_control}" if self.stats.lost_control else ""
            return f"another participant writes the robot's command topics ({self.foreign_writers}){also}"
        if self.stats.lost_control:
            return f"lost control of the robot: {self.stats.lost_control}"
        return ""

    def as_dict(self) -> dict[str, Any]:
        d = self.stats.as_dict()
        d.update(bag=self.bag, recorded=self.recorded, robot_checked=self.robot_info is not None,
                 adapter_rejected=self.adapter_rejected, qos_incidents=self.qos_incidents,
                 state_rejected=self.state_rejected, foreign_writers=self.foreign_writers, failure=self.failure)
        return d


def ramp_in(cfg: DeployConfig, adapter: RobotInterface) -> float:
    """The guard's ramp-in: the operator's, else RAMP_IN_S, or none for an adapter whose commands are bounded
    steps from the measured state (``RobotInterface.incremental_commands``)."""
    if cfg.ramp_in_s is not None:
        return float(cfg.ramp_in_s)
    return 0.0 if adapter.incremental_commands else RAMP_IN_S


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; VALUE is JSON when it parses (numbers, lists, null), else a string."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise TetherError(f"adapter parameter {item!r}; expected KEY=VALUE (VALUE as JSON or a string)")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            out[key.strip()] = value
    return out


def adapter_options(adapter: str) -> list[str]:
    """The options ``--param`` may set for ``adapter`` (its keyword arguments minus internal objects)."""
    from tether.ros.protocols import adapter_class

    return [p for p in inspect.signature(adapter_class(adapter)).parameters if p not in INTERNAL_OPTIONS]


def check_params(adapter: str, params: dict[str, Any]) -> None:
    allowed = adapter_options(adapter)
    bad = sorted(set(params) - set(allowed))
    if bad:
        raise TetherError(f"unknown parameters {bad} for adapter {adapter!r}; expected some of {allowed} "
                          "(vehicle and joint limits, full-scale thrusts and gains bounds belong in the "
                          "--robot-limits file)")
    for key, value in params.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise TetherError(f"adapter parameter {key}={value}; expected a finite number")
        if isinstance(value, list) and any(isinstance(v, float) and not math.isfinite(v) for v in value):
            raise TetherError(f"adapter parameter {key}={value}; expected finite numbers")


def check_robot_info(contract: IOContract, info: dict[str, Any], robot_kind: str) -> None:
    """The policy's contract against the served robot's own contract for the same control mode."""
    if info.get("robot") != robot_kind:
        raise ContractError(f"the adapter drives a {robot_kind} robot but the robot on the wire says it is "
                            f"{info.get('robot')!r}")
    contracts = info.get("contracts", {})
    if not isinstance(contracts, dict) or contract.control_mode not in contracts:
        raise ContractError(f"the robot does not serve control mode {contract.control_mode!r}; it serves "
                            f"{sorted(contracts) if isinstance(contracts, dict) else contracts!r}")
    robot_contract = IOContract.from_dict(contracts[contract.control_mode])
    contract.check_compatible(robot_contract, check_rate=True, what="served robot")


def wait_robot_info(transport: Any, timeout_s: float) -> dict[str, Any] | None:
    from tether.ros.protocols.common import ROBOT_INFO_TOPIC

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
        info = json.loads(got[-1])
    except (json.JSONDecodeError, RecursionError):
        info = None
    if not isinstance(info, dict):
        raise TetherError(f"{ROBOT_INFO_TOPIC} carries invalid JSON; expected the served robot's description")
    return info


class FlatRecorder:
    """Writes the flat dataset topics (and the guard's reasons) for each tick into a BagRecorder.

    Every flat topic - the episode included - gets its ``<topic>/stamp`` from the control clock, never from
    the wall clock at write time: under CPU load the thread can be preempted between taking the start time
    and writing, and one stream starting more than half a period late moved the importer's grid origin and
    paired every observation with the next tick's command (more than a period: dropped frames). Tick k is
    stamped ``start + round(k * 1e9/rate)`` (the importer's grid formula, so no rounding drift at rates whose
    period is not a whole number of ns), counted in ticks actually run: a slot skipped after an overrun
    observed and sent nothing, so it is no frame of the dataset (the loop's stats count skipped slots; the
    bag's log times keep the wall clock). State rejections (per topic and reason) are written as JSON when
    they change, so a bag shows when and why state was dropped."""

    def __init__(self, bag: Any, contract: IOContract, rate_hz: float, episode: int = 0,
                 rejections: Any = None) -> None:
        self.bag, self.contract = bag, contract
        self.store = bag.store
        self.period_ns = 1e9 / float(rate_hz)  # float on purpose: the same arithmetic as the importer's grid
        self.t0_ns: int | None = None
        self.k = 0
        self.episode = int(episode)
        self.last_action = np.zeros(contract.action_size)
        self.loop: Any = None
        self.rejections = rejections  # () -> {topic: {reason: n}}
        self._last_rejections: dict[str, dict[str, int]] = {}
        self._events = 0
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
        vec = self.contract.flatten_obs(self.contract.with_loop_fields(obs, self.last_action, self.k))
        w = self.bag.write
        time_t = "builtin_interfaces/msg/Time"
        w(flat.EPISODE_TOPIC, "std_msgs/msg/UInt32", self._u32(data=self.episode))
        w(stamp_topic(flat.EPISODE_TOPIC), time_t, self._stamp(t))
        w(flat.OBS_TOPIC, "std_msgs/msg/Float64MultiArray", self._vec(vec))
        w(stamp_topic(flat.OBS_TOPIC), time_t, self._stamp(t))
        w(flat.ACTION_TOPIC, "std_msgs/msg/Float64MultiArray", self._vec(command))
        w(stamp_topic(flat.ACTION_TOPIC), time_t, self._stamp(ta))
        w(flat.POLICY_ACTION_TOPIC, "std_msgs/msg/Float64MultiArray", self._vec(action))
        reason = self.loop.last_output.reason if self.loop is not None and self.loop.last_output else ""
        w(flat.GUARD_TOPIC, "std_msgs/msg/String", self._str(data=reason))
        if self.rejections is not None:
            self.record_rejections(self.rejections())
        events = self.loop.supervisor.report.events if self.loop is not None else []
        for text in events[self._events:]:
            w(flat.CONTROL_TOPIC, "std_msgs/msg/String", self._str(data=text))
        self._events = len(events)
        a = np.asarray(action, dtype=float).reshape(-1)
        self.last_action = np.where(np.isfinite(a), np.clip(a, -1.0, 1.0), 0.0)
        self.k += 1

    def record_rejections(self, now: dict[str, dict[str, int]]) -> None:
        """Write the rejection counts when they changed; deploy calls it once more with the final counts it
        reports, so the bag's last word and the summary agree even if a bad message arrived after the last tick."""
        if now != self._last_rejections:
            self._last_rejections = now
            self.bag.write(flat.STATE_REJECTED_TOPIC, "std_msgs/msg/String", self._str(data=json.dumps(now)))


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
    from tether.ros.transports import make_transport, resolve_kind

    kind = resolve_kind(cfg.transport)
    if kind == "rclpy":
        if cfg.keystore is not None:
            raise TetherError("--keystore applies to the Cyclone DDS transport; for rclpy use ROS 2's own "
                              "ROS_SECURITY_KEYSTORE / ROS_SECURITY_ENABLE (expected --transport cyclonedds)")
        return make_transport("rclpy", node_name=cfg.node_name, distro=cfg.distro, domain_id=cfg.domain_id)
    if kind != "cyclonedds":
        raise TetherError(f"transport {cfg.transport!r} cannot drive a robot; expected auto, cyclonedds or rclpy")
    return make_transport("cyclonedds", domain_id=cfg.domain_id, distro=cfg.distro,
                          config="loopback" if cfg.loopback else None, enclave=cfg.enclave, keystore=cfg.keystore)


def _accepts(publishers: Any) -> Any:
    from tether.hardware.plausibility import Implausible

    def accept(info: Any) -> bool:
        try:
            publishers.check(info)
        except Implausible:
            return False
        return True

    return accept


def deploy(cfg: DeployConfig, *, log: Any = print, install_signals: bool = True,
           transport: Any = None, stop: threading.Event | None = None) -> DeployResult:
    """Run a checkpoint on a robot; see the module docstring for the order of checks. A ``transport`` given
    by the caller (e.g. the ROS node's) is used and left open; otherwise one is opened and closed here.
    Setting ``stop`` (from any thread) ends the loop after the current tick, like SIGINT."""
    import torch

    import tether.policies.replay  # noqa: F401  (registers the action_replay kind)
    from tether.hardware.estop import EStopListener
    from tether.hardware.guard import CommandGuard, GuardConfig
    from tether.hardware.limits import RobotLimits
    from tether.hardware.loop import ControlLoop
    from tether.hardware.supervisor import SupervisorConfig
    from tether.policies.checkpoint import load_policy
    from tether.ros.hygiene import WriterWatch
    from tether.ros.protocols import ADAPTERS, default_limits, make_adapter
    from tether.ros.protocols.adapter import PublisherFilter
    from tether.ros.recorder import BagRecorder

    torch.set_num_threads(1)
    if cfg.adapter not in ADAPTERS:
        raise TetherError(f"unknown adapter {cfg.adapter!r}; expected one of {', '.join(ADAPTERS)}")
    if cfg.record is not None and Path(cfg.record).exists():
        raise TetherError(f"bag {cfg.record!r} already exists; expected a new path")
    if cfg.record is not None and Path(cfg.record).suffix == ".bag":
        raise TetherError(f"--record {cfg.record!r}: rosbag2 bags are directories and tools read a '.bag' name as "
                          "ROS 1; expected a name like out.mcap")
    check_params(cfg.adapter, cfg.params)
    limits = RobotLimits.load(cfg.robot_limits) if cfg.robot_limits else default_limits(cfg.adapter)
    policy = load_policy(cfg.checkpoint)
    if cfg.explore > 0:  # excitation for identification: scaled to the contract, clipped to [-1, 1], then guarded
        from tether.policies.exploration import ExplorationPolicy

        policy = ExplorationPolicy(policy, cfg.explore, seed=cfg.explore_seed)
    contract: IOContract = policy.contract
    rate = float(cfg.rate_hz or contract.rate_hz)
    if abs(rate - contract.rate_hz) > 1e-9 * contract.rate_hz:
        raise ContractError(f"--rate {rate:g} Hz but the policy was trained at {contract.rate_hz:g} Hz; "
                            "expected the policy's rate")
    params = {**ADAPTERS[cfg.adapter].deploy_params, **cfg.params, "limits": limits}
    params.setdefault("distro", cfg.distro)
    params.setdefault("connect_timeout_s", cfg.connect_timeout_s)
    if "goal_topic" in adapter_options(cfg.adapter):
        params["goal_publishers"] = PublisherFilter(cfg.goal_publishers)
    own_transport = transport is None
    transport = open_transport(cfg) if own_transport else transport
    bag = adapter = estop = watch = None
    info = None
    foreign: list[str] = []
    old_handlers: dict[int, Any] = {}
    try:
        adapter = make_adapter(cfg.adapter, transport, contract=contract, **params)  # ContractError: nothing sent
        if cfg.robot_info_timeout_s > 0:
            info = wait_robot_info(transport, cfg.robot_info_timeout_s)
            if info is not None:
                check_robot_info(contract, info, adapter.robot_kind)
            else:
                log(f"tether deploy: no /tether/robot_info within {cfg.robot_info_timeout_s:g} s (a real robot?); "
                    f"contract checked against the {cfg.adapter} adapter only")
        stale_action = cfg.stale_action or adapter.stale_action
        guard = CommandGuard.for_robot(
            adapter.command_contract, adapter.robot_limits,
            GuardConfig(stale_periods=cfg.stale_periods, stale_action=stale_action, ramp_in_s=ramp_in(cfg, adapter),
                        safe_command=adapter.measured_command({})),  # a multirotor's is hover, never 0 N
            dt=1.0 / rate)
        flat_rec = None
        if cfg.record is not None:
            bag = BagRecorder(cfg.record, distro=cfg.distro)
            flat_rec = FlatRecorder(bag, contract, rate, cfg.episode, rejections=adapter.state_rejections)
        loop = ControlLoop(policy, adapter, rate, guard, on_tick=flat_rec.on_tick if flat_rec else None,
                           manage_connection=False, supervision=SupervisorConfig(lost_control_s=cfg.lost_control_s))
        if flat_rec is not None:
            flat_rec.loop = loop
        loop.check_contracts()
        estop_filter = PublisherFilter(cfg.estop_publishers, first=False) if cfg.estop_publishers else None
        estop = EStopListener(transport, guard, cfg.estop_topic,
                              accept=_accepts(estop_filter) if estop_filter is not None else None)
        if bag is not None:
            bag.record(transport, [*adapter.recorded_topics(), (cfg.estop_topic, "std_msgs/msg/Bool")])
        adapter.connect()
        _wait_first_state(adapter, cfg.connect_timeout_s)

        def on_foreign(text: str) -> None:  # on the watch thread: latch the e-stop, end once the robot is safe
            foreign.append(text)
            log(f"tether deploy: another writer on a command topic ({text}); stopping safely")
            guard.trigger_estop("foreign writer on a command topic")
            deadline = time.monotonic() + 10.0
            while not adapter.safe_stop_settled() and time.monotonic() < deadline:
                time.sleep(0.05)
            loop.stop()

        if cfg.check_writers:
            watch = WriterWatch(transport, adapter.command_topics(), on_foreign).start()
        if install_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old_handlers[sig] = signal.signal(sig, lambda _s, _f: loop.stop())
        if stop is not None:
            threading.Thread(target=lambda: (stop.wait(), loop.stop()), name="tether-deploy-stop",
                             daemon=True).start()
        where = f"domain {getattr(transport, 'domain_id', '?')}"
        where += f", recording to {cfg.record}" if cfg.record else ""
        log(f"tether deploy: running {contract.robot}/{contract.task} ({contract.control_mode}) at {rate:g} Hz on "
            f"{cfg.adapter} with {limits.model} limits, {where}")
        stats = loop.run(duration_s=cfg.duration_s)
        if watch is not None and watch.supported and not foreign and watch.check(notify=False):
            foreign.append("; ".join(watch.foreign))  # a writer that appeared while the run was ending
        if foreign:
            stats.stop_reason = "foreign_writer"
        rejected = dict(adapter.rejected)
        state_rejected = adapter.state_rejections()
        if flat_rec is not None and flat_rec.t0_ns is not None:
            flat_rec.record_rejections(state_rejected)
        log_ = getattr(transport, "qos_incidents", None)
        incidents = [f"{i.topic}: {i.reason}" for i in log_.items()] if log_ is not None else []
        for line in incidents:  # already logged as warnings by the transport; repeated in the summary
            log(f"tether deploy: QoS mismatch {line}")
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        if watch is not None:
            watch.close()
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
    recorded = bag.written if bag is not None else 0  # read after close: exactly what the bag holds
    return DeployResult(stats, info, recorded, cfg.record, rejected, incidents, state_rejected,
                        "; ".join(foreign))
