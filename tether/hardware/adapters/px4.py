"""PX4 quadrotor over uXRCE-DDS: /fmu/out/vehicle_odometry in, offboard setpoints out.

In: ``px4_msgs/VehicleOdometry`` (NED world, FRD body, q = body->world (w,x,y,z)), converted to Tether's ENU/FLU
in :mod:`tether.hardware.frames`; subscribed best-effort because PX4's writers are best-effort (a reliable
reader would never match). ``pos_error`` = goal - position with the goal from /tether/goal (ENU) or a
parameter.

Out:
- ``/fmu/in/offboard_control_mode`` heartbeat from connect() to disconnect() at ``heartbeat_hz`` (PX4 wants
  >= 2 Hz, for more than a second before the switch to offboard, and drops out of offboard when it stops), on
  its own thread so a slow policy tick cannot starve it;
- mode ``thrust_body_rates``: ``/fmu/in/vehicle_rates_setpoint`` (rates FLU -> FRD, collective thrust in N ->
  normalised body-z thrust -T/T_max, negative because body z points down);
- mode ``motor_thrust``: ``/fmu/in/actuator_motors`` with thrust_i / max_motor_thrust in [0, 1] per motor (the
  rest NaN = disarmed), through ``motor_map`` (Tether rotor index -> PX4 motor index; the default maps the
  sim's rotors to PX4's generic quad-X by position; the sim's spin directions are quad-X's, front-right
  counter-clockwise). thrust_body_rates (PX4's own mixer) needs no motor map and is the safer default;
- arming / offboard through ``/fmu/in/vehicle_command``: COMPONENT_ARM_DISARM (400, param1 1/0) and
  DO_SET_MODE (176, param1 1 = custom mode, param2 6 = PX4 offboard main mode). A guard damp (e-stop or
  stale state) sends NAV_LAND (21) once, handing the vehicle back to PX4's own landing controller.
PX4 timestamps are microseconds; ``clock_us`` defaults to system time like the PX4 ROS 2 examples (the uXRCE
agent's timesync translates them). PX4 normalised thrust is only approximately linear in newtons (THR_MDL_FAC):
calibrate ``max_collective_thrust_n`` on the vehicle.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tether.contract import Field, IOContract
from tether.errors import TetherError
from tether.hardware import frames
from tether.hardware.adapters._ros import RosRobot, check_serves, goal_subscription, goal_value

QUAD_OBS = ("pos_error", "base_rotmat", "base_lin_vel", "base_ang_vel", "last_action")
QUAD_ACTIONS = ("motor_thrust", "collective_thrust", "body_rates")
QUAD_MODES = ("motor_thrust", "thrust_body_rates")

VEHICLE_CMD_NAV_LAND = 21
VEHICLE_CMD_DO_SET_MODE = 176
VEHICLE_CMD_COMPONENT_ARM_DISARM = 400
PX4_CUSTOM_MAIN_MODE_OFFBOARD = 6
VELOCITY_FRAME_NED, VELOCITY_FRAME_FRD, VELOCITY_FRAME_BODY_FRD = 1, 2, 3
N_PX4_MOTORS = 12
# Tether's sim rotors are m1 front-right, m2 rear-right, m3 rear-left, m4 front-left (FLU body); PX4's generic
# quad-X outputs are 0 front-right, 1 rear-left, 2 front-left, 3 rear-right. Mapped by position:
PX4_QUAD_X_MOTOR_MAP = (0, 3, 1, 2)


def quad_contract(
    *,
    robot: str = "quadrotor",
    task: str = "hover",
    mode: str = "thrust_body_rates",
    rate_hz: float = 50.0,
    max_motor_thrust_n: float = 8.0,
    max_collective_thrust_n: float | None = None,
    max_body_rate: float | Sequence[float] = (6.0, 6.0, 3.0),
) -> IOContract:
    """Quadrotor contract in the shared vocabulary with the limits given (thrusts in N, rates in rad/s)."""
    xyz = ("x", "y", "z")
    obs = (
        Field.make("pos_error", 3, "m", "world", components=xyz),
        Field.make("base_rotmat", 9, "1", "world_from_body"),
        Field.make("base_lin_vel", 3, "m/s", "world", components=xyz),
        Field.make("base_ang_vel", 3, "rad/s", "body", components=xyz),
        Field.make("last_action", 4, "1"),
    )
    if mode == "motor_thrust":
        act = (Field.make("motor_thrust", 4, "N", "body", low=0.0, high=max_motor_thrust_n,
                          components=("m1", "m2", "m3", "m4")),)
    elif mode == "thrust_body_rates":
        tmax = max_collective_thrust_n if max_collective_thrust_n is not None else 4 * max_motor_thrust_n
        rates = np.broadcast_to(np.asarray(max_body_rate, dtype=float), (3,))
        act = (Field.make("collective_thrust", 1, "N", "body", low=0.0, high=tmax),
               Field.make("body_rates", 3, "rad/s", "body", low=-rates, high=rates, components=xyz))
    else:
        raise TetherError(f"quadrotor control mode {mode!r}; expected one of {', '.join(QUAD_MODES)}")
    return IOContract(robot, task, obs, act, mode, rate_hz)


def odometry_fields(msg: Any) -> dict[str, np.ndarray]:
    """VehicleOdometry -> position (ENU), quat (w, x, y, z; FLU -> ENU), base_rotmat, base_lin_vel (ENU) and
    base_ang_vel (FLU)."""
    q_ned = np.asarray(msg.q, dtype=float)
    if not np.all(np.isfinite(q_ned)):
        raise TetherError("vehicle_odometry has an invalid attitude (NaN q); expected a valid estimate")
    q = frames.quat_ned_frd_to_enu_flu(q_ned)
    R = frames.quat_to_rotmat(q)
    v = np.asarray(msg.velocity, dtype=float)
    if int(msg.velocity_frame) == VELOCITY_FRAME_BODY_FRD:
        vel = R @ frames.frd_to_flu(v)
    else:  # NED, or FRD world-fixed (NED up to a heading offset the estimator owns)
        vel = frames.ned_to_enu(v)
    return {
        "position": frames.ned_to_enu(np.asarray(msg.position, dtype=float)),
        "quat": q,
        "base_rotmat": R.reshape(9),
        "base_lin_vel": vel,
        "base_ang_vel": frames.frd_to_flu(np.asarray(msg.angular_velocity, dtype=float)),
    }


def odometry_message(store: Any, position_enu: np.ndarray, quat_enu_flu: np.ndarray, vel_enu: np.ndarray,
                     ang_vel_flu: np.ndarray, timestamp_us: int) -> Any:
    """The inverse mapping (ENU/FLU state -> VehicleOdometry as PX4 would publish it), for served robots."""
    from tether.ros.types import make

    return make(
        store, "px4_msgs/msg/VehicleOdometry", timestamp=int(timestamp_us), timestamp_sample=int(timestamp_us),
        pose_frame=1, position=frames.enu_to_ned(position_enu).astype(np.float32),
        q=frames.quat_enu_flu_to_ned_frd(quat_enu_flu).astype(np.float32), velocity_frame=VELOCITY_FRAME_NED,
        velocity=frames.enu_to_ned(vel_enu).astype(np.float32),
        angular_velocity=frames.flu_to_frd(ang_vel_flu).astype(np.float32),
    )


def rates_setpoint(store: Any, collective_thrust_n: float, body_rates_flu: np.ndarray,
                   max_collective_thrust_n: float, timestamp_us: int) -> Any:
    from tether.ros.types import make

    rates = frames.flu_to_frd(np.asarray(body_rates_flu, dtype=float))
    thrust = float(np.clip(collective_thrust_n / max_collective_thrust_n, 0.0, 1.0))
    return make(store, "px4_msgs/msg/VehicleRatesSetpoint", timestamp=int(timestamp_us),
                roll=float(rates[0]), pitch=float(rates[1]), yaw=float(rates[2]),
                thrust_body=np.array([0.0, 0.0, -thrust], dtype=np.float32))


def actuator_motors(store: Any, thrust_n: np.ndarray, max_motor_thrust_n: float, motor_map: Sequence[int],
                    timestamp_us: int) -> Any:
    from tether.ros.types import make

    control = np.full(N_PX4_MOTORS, np.nan, dtype=np.float32)
    control[list(motor_map)] = np.clip(np.asarray(thrust_n, dtype=float) / max_motor_thrust_n, 0.0, 1.0)
    return make(store, "px4_msgs/msg/ActuatorMotors", timestamp=int(timestamp_us),
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
    from tether.ros.types import make

    return make(store, "px4_msgs/msg/OffboardControlMode", timestamp=int(timestamp_us),
                body_rate=mode == "thrust_body_rates", direct_actuator=mode == "motor_thrust")


def vehicle_command(store: Any, command: int, timestamp_us: int, param1: float = 0.0, param2: float = 0.0) -> Any:
    from tether.ros.types import make

    return make(store, "px4_msgs/msg/VehicleCommand", timestamp=int(timestamp_us), command=int(command),
                param1=float(param1), param2=float(param2), target_system=1, target_component=1,
                source_system=1, source_component=1, from_external=True)


def _system_clock_us() -> int:
    return time.time_ns() // 1000


class PX4Quadrotor(RosRobot):
    """A PX4 vehicle in offboard mode as a RobotInterface (see module docstring)."""

    def __init__(
        self,
        transport: Any,
        contract: IOContract | None = None,
        *,
        namespace: str = "",
        goal_topic: str | None = "/tether/goal",
        goal: Sequence[float] | None = None,
        max_motor_thrust_n: float | None = None,
        max_collective_thrust_n: float | None = None,
        hover_thrust_n: float | None = None,
        motor_map: Sequence[int] = PX4_QUAD_X_MOTOR_MAP,
        heartbeat_hz: float = 10.0,
        auto_engage_after_s: float | None = None,
        land_on_damp: bool = True,
        clock_us: Callable[[], int] = _system_clock_us,
        connect_timeout_s: float = 5.0,
        distro: str = "humble",
    ) -> None:
        super().__init__(transport, connect_timeout_s=connect_timeout_s, distro=distro)
        self.contract = contract or quad_contract()
        check_serves(self.contract, QUAD_OBS, QUAD_ACTIONS, QUAD_MODES, "px4")
        self.mode = self.contract.control_mode
        if heartbeat_hz < 2.0:
            raise TetherError(f"offboard heartbeat {heartbeat_hz} Hz; PX4 needs at least 2 Hz")
        high = self.contract.action_high
        self.max_motor_thrust_n = float(max_motor_thrust_n or (high.max() if self.mode == "motor_thrust" else 0.0))
        self.max_collective_thrust_n = float(
            max_collective_thrust_n or (high[0] if self.mode == "thrust_body_rates" else 0.0))
        # Hold and ramp-in start from hover, never from zero thrust (which would drop the vehicle). Default: a
        # Crazyflie 2.x (0.027 kg × 9.81); on a real vehicle pass its hover thrust (PX4: MPC_THR_HOVER × max).
        self.hover_thrust_n = float(hover_thrust_n if hover_thrust_n is not None else 0.027 * 9.81)
        if len(motor_map) != 4 or len(set(motor_map)) != 4 or not all(0 <= m < N_PX4_MOTORS for m in motor_map):
            raise TetherError(f"motor_map {list(motor_map)}; expected 4 distinct PX4 motor indices in 0..11")
        self.motor_map = tuple(int(m) for m in motor_map)
        ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
        self.t_odom = f"{ns}/fmu/out/vehicle_odometry"
        self.t_mode = f"{ns}/fmu/in/offboard_control_mode"
        self.t_rates = f"{ns}/fmu/in/vehicle_rates_setpoint"
        self.t_motors = f"{ns}/fmu/in/actuator_motors"
        self.t_cmd = f"{ns}/fmu/in/vehicle_command"
        self.goal_topic = goal_topic
        self.goal = None if goal is None else np.asarray(goal, dtype=float)
        self.heartbeat_period = 1.0 / heartbeat_hz
        self.auto_engage_after_s = auto_engage_after_s
        self.land_on_damp = land_on_damp
        self.clock_us = clock_us
        self.required_topics = (self.t_odom,)
        self._hb_stop = threading.Event()
        self._hb_thread: threading.Thread | None = None
        self._first_send: float | None = None
        self.engaged = False
        self.landing = False

    def _subscriptions(self) -> list[tuple[str, str, str]]:
        return [(self.t_odom, "px4_msgs/msg/VehicleOdometry", "px4_out"), *goal_subscription(self.goal_topic)]

    def measured_command(self, obs: Any) -> np.ndarray:
        """A multirotor's "current command" for hold and ramp-in is hover: hover thrust, zero body rates."""
        if self.mode == "motor_thrust":
            return np.full(4, self.hover_thrust_n / 4.0)
        return np.array([self.hover_thrust_n, 0.0, 0.0, 0.0])

    def _publishers(self) -> list[tuple[str, str, str]]:
        return [(self.t_mode, "px4_msgs/msg/OffboardControlMode", "px4_in"),
                (self.t_rates, "px4_msgs/msg/VehicleRatesSetpoint", "px4_in"),
                (self.t_motors, "px4_msgs/msg/ActuatorMotors", "px4_in"),
                (self.t_cmd, "px4_msgs/msg/VehicleCommand", "px4_in")]

    # ------------------------------------------------------------------ heartbeat
    def publish_heartbeat(self) -> None:
        self._pub(self.t_mode).publish(offboard_mode(self.store, self.mode, self.clock_us()))

    def _heartbeat_loop(self) -> None:
        next_t = time.monotonic()
        while not self._hb_stop.is_set():
            try:
                self.publish_heartbeat()
            except TetherError:
                return  # disconnected underneath us
            next_t += self.heartbeat_period
            self._hb_stop.wait(max(0.0, next_t - time.monotonic()))

    def _on_connected(self) -> None:
        self._hb_stop.clear()
        self._hb_thread = threading.Thread(target=self._heartbeat_loop, name="px4-heartbeat", daemon=True)
        self._hb_thread.start()

    def _on_disconnect(self) -> None:
        self._hb_stop.set()
        if self._hb_thread is not None and self._hb_thread is not threading.current_thread():
            self._hb_thread.join(timeout=1.0)
        self._hb_thread = None

    # ------------------------------------------------------------------ vehicle commands
    def command(self, command: int, param1: float = 0.0, param2: float = 0.0) -> None:
        self._pub(self.t_cmd).publish(vehicle_command(self.store, command, self.clock_us(), param1, param2))

    def engage(self) -> None:
        """Switch to offboard and arm (call after setpoints have streamed for > 1 s, as PX4 requires)."""
        self.command(VEHICLE_CMD_DO_SET_MODE, 1.0, float(PX4_CUSTOM_MAIN_MODE_OFFBOARD))
        self.command(VEHICLE_CMD_COMPONENT_ARM_DISARM, 1.0)
        self.engaged = True

    def disarm(self) -> None:
        self.command(VEHICLE_CMD_COMPONENT_ARM_DISARM, 0.0)
        self.engaged = False

    def land(self) -> None:
        self.command(VEHICLE_CMD_NAV_LAND)
        self.landing = True

    # ------------------------------------------------------------------ RobotInterface
    def read_state(self) -> tuple[dict[str, np.ndarray], float]:
        msg, stamp = self._need(self.t_odom)
        f = odometry_fields(msg)
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
            msg = rates_setpoint(self.store, cmd[0], cmd[1:4], self.max_collective_thrust_n, now_us)
            self._pub(self.t_rates).publish(msg)
        else:
            self._pub(self.t_motors).publish(
                actuator_motors(self.store, cmd, self.max_motor_thrust_n, self.motor_map, now_us))
        if damp and self.land_on_damp and not self.landing:
            self.land()
        t = time.monotonic()
        self._first_send = self._first_send if self._first_send is not None else t
        if (self.auto_engage_after_s is not None and not self.engaged and not self.landing
                and t - self._first_send >= self.auto_engage_after_s):
            self.engage()
