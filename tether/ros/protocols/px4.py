"""PX4 over uXRCE-DDS: /fmu/out/vehicle_odometry and vehicle_status in, offboard setpoints and commands out.

Wire (PX4's names, QoS and frames):
- in: ``px4_msgs/VehicleOdometry`` (NED world, FRD body, q = body->world (w,x,y,z)), converted to Tether's
  ENU/FLU in :mod:`tether.hardware.frames`, and ``VehicleStatus`` (arming and navigation state); PX4's writers
  are best-effort (+ transient-local), so both are read best-effort (a reliable reader would never match);
- out: ``/fmu/in/offboard_control_mode`` heartbeat from connect() to disconnect() at ``heartbeat_hz`` (PX4
  wants >= 2 Hz, for more than a second before the switch to offboard, and drops out of offboard when it
  stops) on its own thread, so a slow policy tick cannot starve it; mode ``thrust_body_rates``:
  ``/fmu/in/vehicle_rates_setpoint`` (rates FLU -> FRD, collective thrust in N -> normalised body-z thrust
  -T/T_full, negative because body z points down); mode ``motor_thrust``: ``/fmu/in/actuator_motors`` with
  thrust_i / T_motor in [0, 1] (the rest NaN = disarmed) through ``motor_map`` (Tether rotor index -> PX4
  motor index; the default maps the sim's rotors to PX4's generic quad-X by position); arming and modes
  through ``/fmu/in/vehicle_command``: COMPONENT_ARM_DISARM (400), DO_SET_MODE (176, param1 1 = custom,
  param2 6 = offboard), NAV_LAND (21).

The vehicle (:func:`default_limits`): the sim's Crazyflie - mass, gravity, per-rotor full-scale thrust and
body-rate limits from :mod:`tether.sim.robots.quadrotor`; another vehicle is another limits file. The
full-scale thrusts that normalise commands are *parameters of that file*, never adapter options, so nothing
after the guard can rescale a command (the guard's thrust limit never exceeds the full scale).

Control (on the heartbeat thread): ``engage()`` asks for offboard + arm once the heartbeat has run
``engage_after_s`` and repeats the request every ``retry_s`` until vehicle_status confirms it;
``safe_stop()`` sends NAV_LAND and repeats it every ``retry_s`` until vehicle_status shows AUTO_LAND (or the
vehicle disarmed on the ground); meanwhile the guard streams :func:`tether.hardware.safe_stop.
multirotor_descent` (``safe_command``), never a thrust cut. ``control_status()`` reads vehicle_status:
offboard + armed is control; a link failsafe (the user intention still offboard) is recoverable by
engaging again; a disarm or a mode someone else chose after we had control is not.

PX4 timestamps are microseconds; ``clock_us`` defaults to system time like the PX4 ROS 2 examples (the uXRCE
agent's timesync translates them). PX4 normalised thrust is only approximately linear in newtons
(THR_MDL_FAC): calibrate the file's full-scale thrust on the vehicle.

The served-robot side (:class:`PX4Bridge`) starts airborne in position hold, settled there as after a take-off
(its hover thrust learned, whatever the hidden mass), and applies PX4's rules: setpoints only armed + offboard
with a live heartbeat whose flags match; offboard refused without a heartbeat; heartbeat loss -> position hold (a
failsafe, user intention kept); NAV_LAND descends at ``land_speed`` and disarms once its land detector sees
the vehicle at rest on the ground; the speed of every touchdown is measured (``impact_speed``). A served
waypoint task (``env_id`` tether/QuadrotorWaypoint-v0, no fixed goal) plays the ground station's part too: it
publishes the seed's waypoints on ``/tether/goal`` one by one, each once the vehicle, in offboard, is within the
task's reach radius of the last.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tether.contract import IOContract
from tether.data.topics import GOAL_TOPIC, PX4_COMMAND, PX4_COMMAND_TYPE, PX4_CONTROL_MODE, PX4_CONTROL_MODE_TYPE
from tether.data.topics import PX4_MOTORS, PX4_MOTORS_TYPE, PX4_ODOMETRY, PX4_ODOMETRY_TYPE, PX4_RATES, PX4_RATES_TYPE
from tether.data.topics import PX4_STATUS, PX4_STATUS_TYPE
from tether.errors import TetherError
from tether.hardware import frames
from tether.hardware.interface import ControlStatus
from tether.hardware.limits import RobotLimits
from tether.hardware.plausibility import StampCheck, bounded, unit_quaternion
from tether.hardware.safe_stop import multirotor_descent
from tether.ros import types as T
from tether.ros.protocols.adapter import (
    PublisherFilter,
    RosRobot,
    Sub,
    fixed_goal,
    goal_subscription,
    goal_value,
    with_action_limits,
)
from tether.ros.protocols.bridge import Bridge
from tether.ros.qos import QoS
from tether.sim.robots import quadrotor as cf
from tether.sim.tasks.quadrotor import (
    geometric_controller, quadrotor_action_fields, quadrotor_observation_fields,
)

QUAD_OBS = ("pos_error", "base_rotmat", "base_lin_vel", "base_ang_vel", "last_action")
QUAD_ACTIONS = ("motor_thrust", "collective_thrust", "body_rates")
QUAD_MODES = ("motor_thrust", "thrust_body_rates")

VEHICLE_CMD_NAV_LAND = 21
VEHICLE_CMD_NAV_TAKEOFF = 22
VEHICLE_CMD_DO_SET_MODE = 176
VEHICLE_CMD_COMPONENT_ARM_DISARM = 400
PX4_CUSTOM_MAIN_MODE_OFFBOARD = 6
PX4_CUSTOM_MAIN_MODE_POSCTL = 3
FORCE_DISARM_MAGIC = 21196.0
# the position loop's integrator (1/s^2 per m s, and the m s it is held within at least): what lets the served
# vehicle, heavier than nominal, hold its altitude under the geometric law
# (``tether.sim.tasks.quadrotor.geometric_controller``); the bridge widens the limit to what its thrust can add
POSITION_KI, POSITION_I_LIMIT = 4.0, 1.0
# how long the served vehicle may take to settle into its position hold before it is served (s of sim time), and
# what counts as settled: within SETTLED_M of the hold point at under SETTLED_MPS, for SETTLED_S
SETTLE_MAX_S, SETTLED_M, SETTLED_MPS, SETTLED_S = 15.0, 0.02, 0.05, 0.5
ARMING_STATE_DISARMED, ARMING_STATE_ARMED = 1, 2
NAV_POSCTL, NAV_AUTO_LOITER, NAV_OFFBOARD, NAV_AUTO_TAKEOFF, NAV_AUTO_LAND = 2, 4, 14, 17, 18
VELOCITY_FRAME_NED, VELOCITY_FRAME_FRD, VELOCITY_FRAME_BODY_FRD = 1, 2, 3
N_PX4_MOTORS = 12
# Tether's sim rotors are m1 front-right, m2 rear-right, m3 rear-left, m4 front-left (FLU body); PX4's generic
# quad-X outputs are 0 front-right, 1 rear-left, 2 front-left, 3 rear-right. Mapped by position:
PX4_QUAD_X_MOTOR_MAP = (0, 3, 1, 2)

# QoS: PX4's uXRCE-DDS writers are best-effort transient-local (read them best-effort volatile: "px4_out");
# its readers are best-effort volatile ("px4_in"); vehicle commands are queued (uORB queue 8, reader depth 2x)
PX4_OUT_WRITER = QoS("best_effort", "transient_local", "keep_last", 1)
PX4_CMD_READER = QoS("best_effort", "volatile", "keep_last", 16)


@dataclass(frozen=True)
class Topics:
    """PX4's topic names under an optional namespace (multi-vehicle setups use /uavN/fmu/...)."""

    odometry: str
    status: str
    control_mode: str
    rates: str
    motors: str
    command: str

    @classmethod
    def under(cls, namespace: str = "") -> Topics:
        ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
        return cls(*(ns + t for t in (PX4_ODOMETRY, PX4_STATUS, PX4_CONTROL_MODE, PX4_RATES, PX4_MOTORS, PX4_COMMAND)))


# ---------------------------------------------------------------------------------------------- vehicle


def vehicle_limits(*, model: str = "crazyflie2", mass_kg: float = cf.MASS, gravity: float = cf.GRAVITY,
                   max_motor_thrust_n: float = cf.MAX_THRUST,
                   max_body_rate: float | Sequence[float] = tuple(cf.MAX_BODY_RATE),
                   max_speed: float = 20.0, max_rate_speed: float = 60.0, goal_range: float = 10.0) -> RobotLimits:
    """A quad-X vehicle's limits file contents (defaults: the sim's Crazyflie 2.x)."""
    rates = np.broadcast_to(np.asarray(max_body_rate, dtype=float), (3,))
    full = 4.0 * max_motor_thrust_n
    command = {"collective_thrust": (0.0, full)}
    command.update({f"body_rates.{a}": (-float(r), float(r)) for a, r in zip("xyz", rates)})
    command.update({f"motor_thrust.m{i}": (0.0, max_motor_thrust_n) for i in range(1, 5)})
    params = {"mass_kg": mass_kg, "gravity": gravity, "max_motor_thrust_n": max_motor_thrust_n,
              "max_collective_thrust_n": full}
    state = {"position": 1e4, "base_lin_vel": max_speed, "base_ang_vel": max_rate_speed, "goal": goal_range}
    return RobotLimits(model, command, {}, params, state)


def default_limits() -> RobotLimits:
    return vehicle_limits()


def quad_contract(limits: RobotLimits | None = None, *, task: str = "hover", mode: str = "thrust_body_rates",
                  rate_hz: float = 50.0) -> IOContract:
    """The sim's quadrotor contract (its field builders) with the vehicle's limits."""
    if mode not in QUAD_MODES:
        raise TetherError(f"quadrotor control mode {mode!r}; expected one of {', '.join(QUAD_MODES)}")
    limits = limits or default_limits()
    c = IOContract("quadrotor", task, quadrotor_observation_fields(),
                   quadrotor_action_fields(mode, limits.param("max_motor_thrust_n")), mode, rate_hz)
    return with_action_limits(c, limits)


def hover_thrust_n(limits: RobotLimits) -> float:
    return limits.param("mass_kg") * limits.param("gravity")


# ---------------------------------------------------------------------------------------- encode/decode


def odometry_fields(msg: Any, limits: RobotLimits | None = None) -> dict[str, np.ndarray]:
    """VehicleOdometry -> position (ENU), quat (w, x, y, z; FLU -> ENU), base_rotmat, base_lin_vel (ENU) and
    base_ang_vel (FLU). Raises Implausible (the message is dropped) for a non-unit attitude, non-finite or
    out-of-range values."""
    bound = (lambda k: limits.state_bound(k)) if limits is not None else (lambda k: np.inf)
    q_ned = unit_quaternion("q", np.asarray(msg.q, dtype=float))
    q = frames.quat_ned_frd_to_enu_flu(q_ned)
    R = frames.quat_to_rotmat(q)
    v = bounded("base_lin_vel", np.asarray(msg.velocity, dtype=float), bound("base_lin_vel"))
    if int(msg.velocity_frame) == VELOCITY_FRAME_BODY_FRD:
        vel = R @ frames.frd_to_flu(v)
    else:  # NED, or FRD world-fixed (NED up to a heading offset the estimator owns)
        vel = frames.ned_to_enu(v)
    return {
        "position": frames.ned_to_enu(bounded("position", np.asarray(msg.position, dtype=float), bound("position"))),
        "quat": q,
        "base_rotmat": R.reshape(9),
        "base_lin_vel": vel,
        "base_ang_vel": frames.frd_to_flu(bounded("base_ang_vel", np.asarray(msg.angular_velocity, dtype=float),
                                                  bound("base_ang_vel"))),
    }


def odometry_message(store: Any, position_enu: np.ndarray, quat_enu_flu: np.ndarray, vel_enu: np.ndarray,
                     ang_vel_flu: np.ndarray, timestamp_us: int) -> Any:
    """The inverse mapping (ENU/FLU state -> VehicleOdometry as PX4 would publish it), for served robots."""
    return T.make(
        store, PX4_ODOMETRY_TYPE, timestamp=int(timestamp_us), timestamp_sample=int(timestamp_us),
        pose_frame=1, position=frames.enu_to_ned(position_enu).astype(np.float32),
        q=frames.quat_enu_flu_to_ned_frd(quat_enu_flu).astype(np.float32), velocity_frame=VELOCITY_FRAME_NED,
        velocity=frames.enu_to_ned(vel_enu).astype(np.float32),
        angular_velocity=frames.flu_to_frd(ang_vel_flu).astype(np.float32),
    )


def rates_setpoint(store: Any, collective_thrust_n: float, body_rates_flu: np.ndarray,
                   max_collective_thrust_n: float, timestamp_us: int) -> Any:
    rates = frames.flu_to_frd(np.asarray(body_rates_flu, dtype=float))
    thrust = float(np.clip(collective_thrust_n / max_collective_thrust_n, 0.0, 1.0))
    return T.make(store, PX4_RATES_TYPE, timestamp=int(timestamp_us),
                  roll=float(rates[0]), pitch=float(rates[1]), yaw=float(rates[2]),
                  thrust_body=np.array([0.0, 0.0, -thrust], dtype=np.float32))


def actuator_motors(store: Any, thrust_n: np.ndarray, max_motor_thrust_n: float, motor_map: Sequence[int],
                    timestamp_us: int) -> Any:
    control = np.full(N_PX4_MOTORS, np.nan, dtype=np.float32)
    control[list(motor_map)] = np.clip(np.asarray(thrust_n, dtype=float) / max_motor_thrust_n, 0.0, 1.0)
    return T.make(store, PX4_MOTORS_TYPE, timestamp=int(timestamp_us),
                  timestamp_sample=int(timestamp_us), control=control)


def decode_rates_setpoint(msg: Any, max_collective_thrust_n: float) -> tuple[float, np.ndarray]:
    """Served-robot side of :func:`rates_setpoint`: (collective thrust N, body rates FLU rad/s)."""
    rates = frames.frd_to_flu(np.array([msg.roll, msg.pitch, msg.yaw], dtype=float))
    return float(-np.asarray(msg.thrust_body, dtype=float)[2] * max_collective_thrust_n), rates


def decode_actuator_motors(msg: Any, max_motor_thrust_n: float, motor_map: Sequence[int] = (0, 1, 2, 3)) -> np.ndarray:
    """Served-robot side of :func:`actuator_motors`: per-rotor thrust (N) in Tether rotor order; NaN -> 0 (stopped)."""
    c = np.asarray(msg.control, dtype=float)[list(motor_map)]
    return np.where(np.isfinite(c), c, 0.0) * max_motor_thrust_n


def offboard_mode(store: Any, mode: str, timestamp_us: int) -> Any:
    return T.make(store, PX4_CONTROL_MODE_TYPE, timestamp=int(timestamp_us),
                  body_rate=mode == "thrust_body_rates", direct_actuator=mode == "motor_thrust")


def vehicle_command(store: Any, command: int, timestamp_us: int, param1: float = 0.0, param2: float = 0.0,
                    param7: float = 0.0) -> Any:
    return T.make(store, PX4_COMMAND_TYPE, timestamp=int(timestamp_us), command=int(command),
                  param1=float(param1), param2=float(param2), param7=float(param7), target_system=1,
                  target_component=1, source_system=1, source_component=1, from_external=True)


@dataclass(frozen=True)
class VehicleState:
    """What control needs from VehicleStatus."""

    armed: bool
    nav_state: int
    user_intention: int
    failsafe: bool


def vehicle_state(msg: Any) -> VehicleState:
    return VehicleState(int(msg.arming_state) == ARMING_STATE_ARMED, int(msg.nav_state),
                        int(msg.nav_state_user_intention), bool(msg.failsafe))


def _system_clock_us() -> int:
    return time.time_ns() // 1000


# ---------------------------------------------------------------------------------------------- adapter


class PX4Quadrotor(RosRobot):
    """A PX4 vehicle in offboard mode as a RobotInterface (see module docstring)."""

    robot_kind = "quadrotor"
    serves_obs, serves_actions, serves_modes = tuple(QUAD_OBS), tuple(QUAD_ACTIONS), tuple(QUAD_MODES)
    adapter_name = "px4"
    stale_action = "damp"  # stale state: a descent on the last state, never a held rate command
    stale_escalation_s = 1.0  # no state for a second: land (latched)

    def __init__(
        self,
        transport: Any,
        contract: IOContract | None = None,
        *,
        limits: RobotLimits | None = None,
        namespace: str = "",
        goal_topic: str | None = GOAL_TOPIC,
        goal: Sequence[float] | None = None,
        goal_publishers: PublisherFilter | None = None,
        motor_map: Sequence[int] = PX4_QUAD_X_MOTOR_MAP,
        heartbeat_hz: float = 10.0,
        engage_after_s: float = 1.0,
        retry_s: float = 0.25,
        engage_timeout_s: float = 5.0,
        clock_us: Callable[[], int] = _system_clock_us,
        connect_timeout_s: float = 5.0,
        distro: str = "humble",
    ) -> None:
        limits = limits or default_limits()
        super().__init__(transport, limits=limits, connect_timeout_s=connect_timeout_s, distro=distro)
        self.contract = contract or quad_contract(limits)
        self.check_contract(self.contract)
        self.mode = self.contract.control_mode
        for name, v, lo in (("heartbeat_hz", heartbeat_hz, 2.0), ("retry_s", 1.0 / max(retry_s, 1e-9), 0.2)):
            if not (np.isfinite(v) and v >= lo):
                raise TetherError(f"{name} {v}; PX4 needs a heartbeat of at least 2 Hz and retries within 5 s")
        for name, v in (("engage_after_s", engage_after_s), ("engage_timeout_s", engage_timeout_s)):
            if not (np.isfinite(v) and v >= 0):
                raise TetherError(f"{name} {v}; expected a finite number of seconds >= 0")
        self.max_motor_thrust_n = limits.param("max_motor_thrust_n")
        self.max_collective_thrust_n = limits.param("max_collective_thrust_n")
        self.hover_thrust_n = hover_thrust_n(limits)
        low, high = limits.bounds(self.contract)
        full = self.max_motor_thrust_n if self.mode == "motor_thrust" else self.max_collective_thrust_n
        thrust_hi = high[:4] if self.mode == "motor_thrust" else high[:1]
        if np.any(thrust_hi > full + 1e-12) or not 0 < self.hover_thrust_n < (4 * self.max_motor_thrust_n):
            raise TetherError(f"limits {limits.model!r}: thrust limit {thrust_hi.tolist()} N exceeds the full scale "
                              f"{full} N, or hover {self.hover_thrust_n:.3g} N is not below full thrust; expected a "
                              "consistent vehicle file")
        self._rate_limit = high[1:4] if self.mode == "thrust_body_rates" else np.asarray(cf.MAX_BODY_RATE)
        if len(motor_map) != 4 or len(set(motor_map)) != 4 or not all(0 <= m < N_PX4_MOTORS for m in motor_map):
            raise TetherError(f"motor_map {list(motor_map)}; expected 4 distinct PX4 motor indices in 0..11")
        self.motor_map = tuple(int(m) for m in motor_map)
        self.topics = Topics.under(namespace)
        self.t_odom = self.topics.odometry
        self.goal_topic = goal_topic
        self.goal = fixed_goal(goal, limits.state_bound("goal"))
        self.goal_publishers = goal_publishers or PublisherFilter()
        self.heartbeat_period = 1.0 / heartbeat_hz
        self.engage_after_s, self.retry_s, self.engage_timeout_s = engage_after_s, retry_s, engage_timeout_s
        self.clock_us = clock_us
        self.required_topics = (self.topics.odometry,)
        self._odom_stamps = StampCheck()
        self._lock = threading.Lock()
        self._hb_stop = threading.Event()
        self._hb_thread: threading.Thread | None = None
        self._hb_started: float | None = None
        self._engage_wanted = False
        self._engage_since: float | None = None
        self._last_engage: float | None = None
        self._landing = False
        self._last_land: float | None = None
        self.land_requests = 0
        self.engage_requests = 0
        self.had_control = False

    # ------------------------------------------------------------------ wire
    def _decode_odometry(self, msg: Any) -> dict[str, np.ndarray]:
        fields = odometry_fields(msg, self.robot_limits)
        self._odom_stamps.check(int(msg.timestamp) * 1e-6, time.monotonic())
        return fields

    def _subscriptions(self) -> list[Sub]:
        t = self.topics
        return [Sub(t.odometry, PX4_ODOMETRY_TYPE, "px4_out", self._decode_odometry),
                Sub(t.status, PX4_STATUS_TYPE, "px4_out", vehicle_state),
                *goal_subscription(self.goal_topic, self.robot_limits.state_bound("goal"), self.goal_publishers)]

    def _publishers(self) -> list[tuple[str, str, Any]]:
        t = self.topics
        return [(t.control_mode, PX4_CONTROL_MODE_TYPE, "px4_in"),
                (t.rates, PX4_RATES_TYPE, "px4_in"),
                (t.motors, PX4_MOTORS_TYPE, "px4_in"),
                (t.command, PX4_COMMAND_TYPE, "px4_in")]

    # ------------------------------------------------------------------ heartbeat + command retries
    def publish_heartbeat(self) -> None:
        self._pub(self.topics.control_mode).publish(offboard_mode(self.store, self.mode, self.clock_us()))

    def _heartbeat_loop(self) -> None:
        next_t = time.monotonic()
        while not self._hb_stop.is_set():
            try:
                self.publish_heartbeat()
                self._retry_commands(time.monotonic())
            except TetherError:
                return  # disconnected underneath us
            next_t += self.heartbeat_period
            self._hb_stop.wait(max(0.0, next_t - time.monotonic()))

    def _on_connected(self) -> None:
        self._hb_stop.clear()
        self._hb_started = time.monotonic()
        self._hb_thread = threading.Thread(target=self._heartbeat_loop, name="px4-heartbeat", daemon=True)
        self._hb_thread.start()

    def _on_disconnect(self) -> None:
        self._hb_stop.set()
        if self._hb_thread is not None and self._hb_thread is not threading.current_thread():
            self._hb_thread.join(timeout=1.0)
        self._hb_thread = None

    def command(self, command: int, param1: float = 0.0, param2: float = 0.0) -> None:
        self._pub(self.topics.command).publish(vehicle_command(self.store, command, self.clock_us(), param1, param2))

    def _status(self) -> VehicleState | None:
        got = self.latest.get(self.topics.status)
        return None if got is None else got[0]

    def _retry_commands(self, now: float) -> None:
        """Land until acknowledged; otherwise (re)engage until acknowledged - both at most every retry_s."""
        st = self._status()
        with self._lock:
            if self._landing:
                acked = st is not None and (st.nav_state == NAV_AUTO_LAND or not st.armed)
                if not acked and (self._last_land is None or now - self._last_land >= self.retry_s):
                    self._last_land = now
                    self.land_requests += 1
                    self.command(VEHICLE_CMD_NAV_LAND)
                return
            if not self._engage_wanted or self._hb_started is None or now - self._hb_started < self.engage_after_s:
                return
            if st is not None and st.armed and st.nav_state == NAV_OFFBOARD:
                self.had_control = True
                return
            if self._last_engage is None or now - self._last_engage >= self.retry_s:
                self._last_engage = now
                self.engage_requests += 1
                self.command(VEHICLE_CMD_DO_SET_MODE, 1.0, float(PX4_CUSTOM_MAIN_MODE_OFFBOARD))
                self.command(VEHICLE_CMD_COMPONENT_ARM_DISARM, 1.0)

    def engage(self) -> None:
        """Ask for offboard + arm (repeated until vehicle_status confirms; PX4 needs > engage_after_s of
        heartbeat first). Never while a safe stop is running."""
        with self._lock:
            if self._landing:
                return
            if not self._engage_wanted or self._engage_since is None:
                self._engage_since = time.monotonic()
            self._engage_wanted = True
        if self.connected:
            self._retry_commands(time.monotonic())

    def safe_stop(self, reason: str) -> None:
        """Land: NAV_LAND now and again every retry_s until vehicle_status shows AUTO_LAND (or disarmed)."""
        with self._lock:
            self._landing = True
            self._engage_wanted = False
        if self.connected:
            self._retry_commands(time.monotonic())

    @property
    def landing(self) -> bool:
        return self._landing

    def safe_stop_settled(self) -> bool:
        """The landing was acknowledged (PX4 lands on its own from here) or the vehicle is disarmed."""
        st = self._status()
        return self._landing and st is not None and (st.nav_state == NAV_AUTO_LAND or not st.armed)

    def control_status(self) -> ControlStatus:
        st = self._status()
        now = time.monotonic()
        details = None if st is None else dataclasses.asdict(st)
        if self._landing:
            return ControlStatus(False, "landing (safe stop)", False, details)
        if st is not None and st.armed and st.nav_state == NAV_OFFBOARD:
            self.had_control = True
            self._engage_since = None
            return ControlStatus(True, "", True, details)
        waited = 0.0 if self._engage_since is None else now - self._engage_since
        if st is None:
            return ControlStatus(False, f"no {self.topics.status} from the vehicle", waited < self.engage_timeout_s)
        if self.had_control and not st.armed:
            return ControlStatus(False, "the vehicle was disarmed", False, details)
        if self.had_control and st.user_intention != NAV_OFFBOARD:
            return ControlStatus(False, f"the vehicle was switched to nav_state {st.nav_state} by someone else",
                                 False, details)
        if not self._engage_wanted:
            return ControlStatus(False, "not engaged", True, details)
        if waited > self.engage_timeout_s + self.engage_after_s:
            return ControlStatus(False, f"PX4 did not accept offboard + arm within {waited:.1f} s (nav_state "
                                 f"{st.nav_state}, armed {st.armed})", False, details)
        return ControlStatus(False, f"engaging (nav_state {st.nav_state}, armed {st.armed})", True, details)

    # ------------------------------------------------------------------ RobotInterface
    def measured_command(self, obs: Any) -> np.ndarray:
        """A multirotor's "current command" for hold and ramp-in is hover: hover thrust, zero body rates."""
        if self.mode == "motor_thrust":
            return np.full(4, self.hover_thrust_n / 4.0)
        return np.array([self.hover_thrust_n, 0.0, 0.0, 0.0])

    def safe_command(self, obs: Mapping[str, np.ndarray]) -> np.ndarray | None:
        if "base_rotmat" not in obs or "base_lin_vel" not in obs:
            return None
        cmd = multirotor_descent(obs["base_rotmat"], obs["base_lin_vel"], hover_thrust=self.hover_thrust_n,
                                 max_thrust=self.max_collective_thrust_n, max_rates=self._rate_limit,
                                 gravity=self.robot_limits.param("gravity"))
        if self.mode == "motor_thrust":  # no attitude loop at motor level: equal thrust, PX4 lands it
            return np.full(4, cmd[0] / 4.0)
        return cmd

    def read_state(self) -> tuple[dict[str, np.ndarray], float]:
        f, stamp = self._need(self.topics.odometry)
        goal = goal_value(self.latest, self.goal_topic, self.goal, "quadrotor goal")
        obs = {k: f[k] for k in ("base_rotmat", "base_lin_vel", "base_ang_vel")}
        obs["pos_error"] = goal - f["position"]
        obs["position"], obs["quat"] = f["position"], f["quat"]
        return obs, stamp

    def send(self, command: np.ndarray, *, damp: bool = False) -> None:
        cmd = np.asarray(command, dtype=float).reshape(-1)
        if cmd.shape != (self.contract.action_size,):
            raise TetherError(f"command has {cmd.size} elements; expected {self.contract.action_size}")
        now_us = self.clock_us()
        if self.mode == "thrust_body_rates":
            self._pub(self.topics.rates).publish(
                rates_setpoint(self.store, cmd[0], cmd[1:4], self.max_collective_thrust_n, now_us))
        else:
            self._pub(self.topics.motors).publish(
                actuator_motors(self.store, cmd, self.max_motor_thrust_n, self.motor_map, now_us))


# ------------------------------------------------------------------------------------------- served robot


class PositionIntegrator:
    """The position loop's integral term, as the acceleration it adds to the geometric law (``accel_offset``).
    ``freeze_beyond`` (m, every axis): integrate only within that distance of the set point (PX4 freezes its
    integrators while landed); None integrates everywhere (the served bridge freezes it on the ground instead, and
    keeps it over a take-off: it holds the hover thrust that the bridge's settling learned). ``limit``: the m s it is
    held within."""

    def __init__(self, freeze_beyond: float | None = None, limit: float = POSITION_I_LIMIT) -> None:
        self.freeze_beyond = freeze_beyond
        self.limit = float(limit)
        self.integral = np.zeros(3)

    def update(self, err: np.ndarray, dt: float) -> np.ndarray:
        """Integrate position errors ``err`` ((3,), or (N, 3) for one vehicle seen N times: their mean) over ``dt``
        seconds; returns the acceleration offset (3,)."""
        err = np.asarray(err, dtype=float).reshape(-1, 3)
        if self.freeze_beyond is not None:
            err = err * np.all(np.abs(err) < self.freeze_beyond, axis=1, keepdims=True)
        self.integral = np.clip(self.integral + err.mean(axis=0) * dt, -self.limit, self.limit)
        return POSITION_KI * self.integral

    def reset(self) -> None:
        self.integral = np.zeros(3)


class PX4Bridge(Bridge):
    """A PX4 vehicle (see the module docstring for its rules)."""

    kind = "quadrotor"
    goal_frame = "map"

    def __init__(self, env: Any, store: Any, *, offboard_loss_s: float = 1.0, namespace: str = "",
                 land_speed: float = 0.5, **kw: Any) -> None:
        super().__init__(env, store, **kw)
        self.topics = Topics.under(namespace)
        self.offboard_loss_s = float(offboard_loss_s)
        self.land_speed = float(land_speed)
        for name, v in (("offboard_loss_s", self.offboard_loss_s), ("land_speed", self.land_speed)):
            if not (np.isfinite(v) and v > 0):
                raise TetherError(f"PX4 bridge option {name} {v}; expected a finite number > 0")
        self.max_thrust = float(self.spec.actuators.max_thrust)  # what the firmware is configured for
        try:  # what the motors really deliver at full command (hidden params may have changed it)
            self.motor_max = float(np.mean(self.sim.get_param("actuator_strength")))
        except Exception:
            self.motor_max = self.max_thrust
        self.rate_controller = cf.RateController(self.max_thrust)
        # a served waypoint task flies its own mission (this seed's waypoints) unless a fixed goal was given
        waypoints = getattr(self.task, "waypoints", None)
        self.mission = None if self.goal is not None or waypoints is None else np.array(waypoints[0], dtype=float)
        self.waypoints_reached = 0
        if self.goal is None:
            self.goal = np.asarray(self.task.goal[0], dtype=float).copy()
        else:
            self.task.goal[:] = self.goal
        pos, _ = self.sim.base_pose()
        self.hold_pos = np.asarray(pos, dtype=float).copy()
        self.armed = True  # starts airborne in position hold, as after a take-off
        self.nav_state = NAV_AUTO_LOITER
        self.user_intention = NAV_AUTO_LOITER
        self.last_heartbeat: float | None = None
        self.heartbeat: Any = None
        self.setpoint: tuple[str, np.ndarray] | None = None
        self.failsafes = 0
        # wide enough to size any hover thrust the firmware's full scale allows (a heavy or weak vehicle needs more
        # than the nominal limit), as PX4's hover-thrust estimate does
        self._integrator = PositionIntegrator(limit=max(
            POSITION_I_LIMIT, (4 * self.max_thrust / cf.MASS - cf.GRAVITY) / POSITION_KI))
        # touchdown: the body's rest height on flat ground plus 1 cm; speeds measured when crossing it downward
        self.touch_z = 0.0124 + 0.01
        self.settle_s = self._settle()
        self.impacts: list[float] = []
        self._rest_s = 0.0
        self._prev_z = float(self.sim.base_pose()[0][2])
        self._tick_us: int | None = None  # when the last tick latched its setpoint (its states' stamp)

    def _settle(self) -> float:
        """Fly the position hold at the start pose until the vehicle holds it (see SETTLED_*), at most
        SETTLE_MAX_S of sim time; returns the sim seconds it took. Why: the served vehicle "starts airborne in
        position hold, as after a take-off", and after a take-off PX4 has already learned the vehicle's hover
        thrust. Without this, a vehicle heavier than nominal sank for its first seconds (its integrator starting
        from zero) and was handed to the policy a few cm above the ground (2026-12-07: the demo's mass x1.6)."""
        dt = self.spec.physics_dt
        hold = self.hold_pos.copy()
        settled = elapsed = 0.0
        while elapsed < SETTLE_MAX_S and settled < SETTLED_S:
            self._command_rates(*self._position_controller(hold, dt, freeze_landed=False), dt)
            self.sim.step(1)
            elapsed += dt
            pos, _ = self.sim.base_pose()
            lin, _ = self.sim.base_velocity()
            still = np.all(np.abs(hold - pos) < SETTLED_M) and np.linalg.norm(lin) < SETTLED_MPS
            settled = settled + dt if still else 0.0
        return elapsed

    def _now_us(self) -> int:
        return time.time_ns() // 1000

    def outputs(self) -> list[tuple[str, str, Any]]:
        return [(self.topics.odometry, PX4_ODOMETRY_TYPE, PX4_OUT_WRITER),
                (self.topics.status, PX4_STATUS_TYPE, PX4_OUT_WRITER)]

    def inputs(self) -> list[tuple[str, str, Any]]:
        t = self.topics
        return [(t.control_mode, PX4_CONTROL_MODE_TYPE, "px4_in"),
                (t.rates, PX4_RATES_TYPE, "px4_in"),
                (t.motors, PX4_MOTORS_TYPE, "px4_in"),
                (t.command, PX4_COMMAND_TYPE, PX4_CMD_READER)]

    # ------------------------------------------------------------------ rules
    def heartbeat_alive(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self.last_heartbeat is not None and now - self.last_heartbeat <= self.offboard_loss_s

    def on_message(self, topic: str, msg: Any) -> None:
        self.counters.got(topic)
        now = time.monotonic()
        t = self.topics
        with self.lock:
            if topic == t.control_mode:
                self.last_heartbeat, self.heartbeat = now, msg
            elif topic == t.command:
                self._vehicle_command(msg, now)
            elif topic in (t.rates, t.motors):
                self._setpoint(topic, msg, now)

    def _airborne(self) -> bool:
        return float(self.sim.base_pose()[0][2]) > self.touch_z + 0.05

    def _vehicle_command(self, msg: Any, now: float) -> None:
        cmd = int(msg.command)
        if cmd == VEHICLE_CMD_COMPONENT_ARM_DISARM:
            if msg.param1 >= 0.5:
                self.armed = True
            else:
                if self._airborne() and msg.param2 != FORCE_DISARM_MAGIC:
                    self.counters.reject("disarm_in_air")
                    return
                self.armed = False
        elif cmd == VEHICLE_CMD_DO_SET_MODE:
            if int(round(msg.param2)) == PX4_CUSTOM_MAIN_MODE_OFFBOARD:
                if not self.heartbeat_alive(now):
                    self.counters.reject("offboard_without_heartbeat")
                    return
                self.nav_state = self.user_intention = NAV_OFFBOARD
                self.setpoint = None
            else:
                self._hold_here(NAV_POSCTL)
        elif cmd == VEHICLE_CMD_NAV_LAND:
            self._hold_here(NAV_AUTO_LAND)
        elif cmd == VEHICLE_CMD_NAV_TAKEOFF:
            if self._airborne():
                self.counters.reject("takeoff_in_air")
                return
            pos, _ = self.sim.base_pose()
            altitude = float(msg.param7) if np.isfinite(msg.param7) and 0.3 <= msg.param7 <= 5.0 else 1.0
            self.armed = True
            self.hold_pos = np.array([pos[0], pos[1], altitude])
            self.nav_state = self.user_intention = NAV_AUTO_TAKEOFF
            self.setpoint = None  # the integrator (the hover thrust learned in flight) is kept, as PX4 keeps it
        else:
            self.counters.reject("unsupported_command")

    def _setpoint(self, topic: str, msg: Any, now: float) -> None:
        if not (self.armed and self.nav_state == NAV_OFFBOARD and self.heartbeat_alive(now)):
            self.counters.reject("not_offboard")
            return
        hb = self.heartbeat
        if topic == self.topics.rates:
            if not bool(hb.body_rate):
                self.counters.reject("mode_flag_mismatch")
                return
            thrust, rates = decode_rates_setpoint(msg, 4 * self.motor_max)
            value = np.concatenate([[thrust], rates])
        else:
            if not bool(hb.direct_actuator):
                self.counters.reject("mode_flag_mismatch")
                return
            value = decode_actuator_motors(msg, self.motor_max, PX4_QUAD_X_MOTOR_MAP)
        if not np.all(np.isfinite(value)):
            self.counters.reject("not_finite")
            return
        self.setpoint = (topic, value)
        self.counters.applied += 1

    def _hold_here(self, nav_state: int, *, failsafe: bool = False) -> None:
        pos, _ = self.sim.base_pose()
        self.hold_pos = np.asarray(pos, dtype=float).copy()  # the integrator (hover-thrust offset) is kept
        self.nav_state = nav_state
        if not failsafe:  # a failsafe keeps what the user asked for (PX4's nav_state_user_intention)
            self.user_intention = nav_state
        self.setpoint = None

    # ------------------------------------------------------------------ physics
    def _position_controller(self, target: np.ndarray, dt: float, *,
                             freeze_landed: bool = True) -> tuple[float, np.ndarray]:
        """PX4's position/attitude loops, reduced to the sim task's geometric law plus PX4's position integrator,
        so a vehicle heavier than nominal (hidden params) still holds its altitude. ``freeze_landed``: integrate
        only when airborne, as PX4 does (the settling take-off integrates throughout, to learn the hover thrust)."""
        pos, quat = self.sim.base_pose()
        lin, _ = self.sim.base_velocity()
        err = target - pos
        fields = {"base_rotmat": frames.quat_to_rotmat(quat), "pos_error": err, "base_lin_vel": lin}
        # PX4 freezes its integrators while landed: on the ground they would only wind up before a take-off
        offset = self._integrator.update(err, dt if self._airborne() or not freeze_landed else 0.0)
        out = geometric_controller(fields, 4 * self.max_thrust, accel_offset=offset)[0]
        return float(out[0]), out[1:]

    def _command_rates(self, thrust: float, rates: np.ndarray, dt: float) -> None:
        """The firmware's rate controller: collective thrust and body rates -> the rotors' command for this step."""
        _, ang = self.sim.base_velocity()
        self.sim.set_command(self.rate_controller(thrust, rates, ang, dt))

    def _touchdown(self, dt: float) -> None:
        """Measure touchdowns (speed when crossing the contact height downward) and PX4's land detector (at
        rest on the ground for 0.3 s in AUTO_LAND -> disarm)."""
        z = float(self.sim.base_pose()[0][2])
        vz = float(self.sim.base_velocity()[0][2])
        if self._prev_z > self.touch_z >= z:
            self.impacts.append(max(0.0, -vz))
        self._prev_z = z
        resting = z <= self.touch_z and abs(vz) < 0.05
        self._rest_s = self._rest_s + dt if resting else 0.0
        if self.nav_state == NAV_AUTO_LAND and self.armed and self._rest_s >= 0.3:
            self.armed = False

    def actuate(self, substeps: int) -> None:
        dt = self.spec.physics_dt
        with self.lock:
            self._tick_us = self._now_us()
            if self.nav_state == NAV_OFFBOARD and not self.heartbeat_alive():
                self.failsafes += 1
                self._hold_here(NAV_POSCTL, failsafe=True)  # offboard lost: position mode where it is
            if self.nav_state == NAV_AUTO_LAND:
                self.hold_pos[2] = max(0.0, self.hold_pos[2] - self.land_speed * dt * substeps)
            if self.nav_state == NAV_AUTO_TAKEOFF and abs(self.sim.base_pose()[0][2] - self.hold_pos[2]) < 0.05:
                self.nav_state = self.user_intention = NAV_AUTO_LOITER
            mode, setpoint, hold = self.nav_state, self.setpoint, self.hold_pos.copy()
        for _ in range(substeps):
            with self.lock:
                armed = self.armed
            if not armed:
                self.sim.set_command(np.zeros(4))
            elif mode == NAV_OFFBOARD and setpoint is not None and setpoint[0] == self.topics.motors:
                self.sim.set_command(np.clip(setpoint[1], 0.0, self.motor_max))
            else:
                if mode == NAV_OFFBOARD and setpoint is not None:
                    thrust, rates = float(setpoint[1][0]), setpoint[1][1:4]
                else:
                    thrust, rates = self._position_controller(hold, dt)
                self._command_rates(thrust, rates, dt)
            self.sim.step(1)
            with self.lock:
                self._touchdown(dt)
        with self.lock:
            self._advance_mission()

    def _advance_mission(self) -> None:
        """The waypoint mission, as a ground station flies one: once the vehicle, under the policy (offboard), is
        within the task's reach radius of the goal, the next waypoint becomes the goal (the task's own rule,
        ``Waypoint.evaluate``); the last one stays the goal once reached."""
        if self.mission is None or self.nav_state != NAV_OFFBOARD or self.waypoints_reached >= len(self.mission):
            return
        if np.linalg.norm(self.goal - np.asarray(self.sim.base_pose()[0], dtype=float)) < self.task.reach_radius:
            self.waypoints_reached += 1
            if self.waypoints_reached < len(self.mission):
                self.set_goal(self.mission[self.waypoints_reached])

    def state_messages(self) -> list[tuple[str, Any]]:
        pos, quat = self.sim.base_pose()
        lin, ang = self.sim.base_velocity()
        # stamped with the tick that made them (when it latched its setpoint), as PX4 stamps a sample, not with
        # the moment they go out: physics takes 1-15 ms, more on a loaded machine, and a stamp taken after it
        # would place a setpoint that arrived meanwhile before the tick that did not use it
        now = self._now_us() if self._tick_us is None else self._tick_us
        odom = odometry_message(self.store, self.noise(np.asarray(pos, dtype=float)), np.asarray(quat, dtype=float),
                                self.noise(np.asarray(lin, dtype=float)), self.noise(np.asarray(ang, dtype=float)),
                                now)
        with self.lock:
            status = T.make(self.store, PX4_STATUS_TYPE, timestamp=now,
                            arming_state=ARMING_STATE_ARMED if self.armed else ARMING_STATE_DISARMED,
                            nav_state=self.nav_state, nav_state_user_intention=self.user_intention,
                            failsafe=self.failsafes > 0)
        return [(self.topics.odometry, odom), (self.topics.status, status)]

    def summary(self) -> dict[str, Any]:
        d = super().summary()
        d.update(armed=self.armed, nav_state=self.nav_state, failsafes=self.failsafes,
                 impact_speed=max(self.impacts, default=0.0), touchdowns=len(self.impacts),
                 impacts=[round(v, 4) for v in self.impacts[-50:]],
                 altitude=float(self.sim.base_pose()[0][2]))
        if self.mission is not None:
            d.update(waypoints_reached=self.waypoints_reached, waypoints=len(self.mission))
        return d
