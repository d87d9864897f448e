"""Crazyflie 2.x class quadrotor and its onboard body-rate controller.

Physical constants are the published Crazyflie 2.x values as used by gym-pybullet-drones (cf2x): mass
0.027 kg, arm 0.0397 m, kf = 3.16e-10 N/rpm², km = 7.94e-12 N m/rpm², thrust-to-weight 2.25. Rotor drag
coefficients (9.18e-7 and 1.03e-6 N per rad/s of rotor speed per m/s) are evaluated at hover rotor speed,
giving a linear translational drag.

Rotors are numbered M1..M4 clockwise from front-right in the body FLU frame: M1 (+x, -y), M2 (-x, -y),
M3 (-x, +y), M4 (+x, +y); diagonal pairs spin the same way, with the directions of PX4's quad-X airframe
(front-right and back-left counter-clockwise seen from above), so a motor-level policy maps onto a stock
PX4 vehicle by rotor position without mirroring yaw.

The rate controller has the structure and default gains of the Crazyflie firmware's attitude-rate PID
(controller_pid: roll/pitch rate kp 250, ki 500, kd 2.5, i-limit 33.3; yaw rate kp 120, ki 16.7, i-limit
166.7), which act on deg/s errors and output PWM-scale commands. We convert those outputs to torques
through the firmware's power distribution (±cmd/2 per motor for roll/pitch, ±cmd for yaw, 65535 = full
thrust), so the closed-loop behaviour matches the firmware's, and then allocate torques and collective
thrust to the four rotors exactly (pseudo-inverse of the mixer), clipping to [0, max thrust].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tether.sim.randomization import DRTerm
from tether.sim.robots.base import RobotSpec, RotorActuators

ASSETS = Path(__file__).parent / "assets"

MASS = 0.027
ARM = 0.0397
KF = 3.16e-10  # N / rpm^2
KM = 7.94e-12  # N m / rpm^2
THRUST_TO_WEIGHT = 2.25
GRAVITY = 9.81
MAX_THRUST = THRUST_TO_WEIGHT * MASS * GRAVITY / 4.0  # N per rotor
HOVER_THRUST = MASS * GRAVITY / 4.0
HOVER_OMEGA = np.sqrt(HOVER_THRUST / KF) * 2 * np.pi / 60  # rad/s
DRAG = np.array([9.1785e-7, 9.1785e-7, 10.311e-7]) * 4 * HOVER_OMEGA
INERTIA = np.array([1.4e-5, 1.4e-5, 2.17e-5])
MOTOR_TIME_CONSTANT = 0.03  # s
MAX_BODY_RATE = np.array([10.0, 10.0, 5.0])  # rad/s accepted by the rate controller

_A = ARM / np.sqrt(2.0)
ROTOR_POSITIONS = np.array([[_A, -_A, 0.0], [-_A, -_A, 0.0], [-_A, _A, 0.0], [_A, _A, 0.0]])
ROTOR_SPIN = np.array([1.0, -1.0, 1.0, -1.0])  # +1 counter-clockwise seen from above


def mixer_matrix(ratio: float = KM / KF) -> np.ndarray:
    """Map rotor thrusts (4,) to [collective thrust, torque x, torque y, torque z] in body FLU."""
    rows = [np.ones(4), ROTOR_POSITIONS[:, 1], -ROTOR_POSITIONS[:, 0], -ROTOR_SPIN * ratio]
    return np.array(rows)


class RateController:
    """Crazyflie-firmware-style body-rate PID at the physics rate, followed by exact thrust allocation.

    Batched: the controller state has a leading axis of ``n`` vehicles and every call takes (n,) thrusts and
    (n, 3) rates; 1-D inputs (one vehicle) give a (4,) output. This numpy version is the reference: the MuJoCo
    batched core runs the same arithmetic inside ``mj_step`` (``tether/sim/native/ratectl.c``, a physics
    callback reading :meth:`parameters`), and a test holds the two to 1e-12.
    """

    KP = np.array([250.0, 250.0, 120.0])
    KI = np.array([500.0, 500.0, 16.7])
    KD = np.array([2.5, 2.5, 0.0])
    I_LIMIT = np.array([33.3, 33.3, 166.7])

    def __init__(self, max_thrust: float = MAX_THRUST, n: int = 1) -> None:
        self.max_thrust = float(max_thrust)
        self.n = int(n)
        # firmware command units (per deg/s of error) -> N m of body torque, through its power distribution
        pwm_to_n = self.max_thrust / 65535.0
        self.cmd_to_torque = np.array(
            [2.0 * pwm_to_n * _A, 2.0 * pwm_to_n * _A, 4.0 * pwm_to_n * (KM / KF)]
        )
        self.alloc = np.linalg.pinv(mixer_matrix())
        self.integral = np.zeros((self.n, 3))
        self.prev_error = np.zeros((self.n, 3))

    def reset(self, ids: np.ndarray | None = None) -> None:
        """Zero the integrator and derivative memory of vehicles ``ids`` (all if None)."""
        sel = slice(None) if ids is None else ids
        self.integral[sel] = 0.0
        self.prev_error[sel] = 0.0

    def start(self, rates_des: np.ndarray, rates: np.ndarray, integral: np.ndarray | None = None) -> None:
        """Mid-flight start (replaying a recording from a measured state): the integral as estimated (default 0)
        and the previous error equal to the current one, so the first step has no derivative kick."""
        self.integral[:] = 0.0 if integral is None else integral
        self.prev_error[:] = np.degrees(np.reshape(rates_des, (-1, 3)) - np.reshape(rates, (-1, 3)))

    def parameters(self) -> np.ndarray:
        """The constants the C twin reads, in its order: kp, ki, kd, i_limit, cmd_to_torque (3 each),
        the 4x4 allocation matrix (row-major) and the per-rotor thrust ceiling."""
        return np.concatenate([self.KP, self.KI, self.KD, self.I_LIMIT, self.cmd_to_torque,
                               self.alloc.reshape(-1), [self.max_thrust]])

    def __call__(self, collective_thrust, rates_des, rates, dt: float) -> np.ndarray:
        single = np.ndim(rates) == 1
        thrust = np.reshape(np.asarray(collective_thrust, dtype=np.float64), (-1, 1))
        err = np.degrees(np.reshape(rates_des, (-1, 3)) - np.reshape(rates, (-1, 3)))
        self.integral = np.clip(self.integral + err * dt, -self.I_LIMIT, self.I_LIMIT)
        deriv = (err - self.prev_error) / dt
        self.prev_error = err
        cmd = self.KP * err + self.KI * self.integral + self.KD * deriv
        wrench = np.concatenate([thrust, cmd * self.cmd_to_torque], axis=1)
        out = np.clip(wrench @ self.alloc.T, 0.0, self.max_thrust)
        return out[0] if single else out


def dr_presets() -> dict[str, list[DRTerm]]:
    return {
        "none": [],
        "default": [
            DRTerm("body_mass", "uniform", "scale", (0.9, 1.1)),
            DRTerm("actuator_gain", "uniform", "scale", (0.9, 1.1)),
            DRTerm("motor_time_constant", "uniform", "scale", (0.8, 1.25)),
            DRTerm("action_latency", "uniform", "abs", (0, 1)),
            DRTerm("obs_noise", "uniform", "abs", (0.0, 0.005)),
        ],
        # What a policy that must fly vehicles it never saw trains under: heavier and lighter bodies, weaker and
        # stronger, slower and faster motors, up to 3 control steps (60 ms) of latency. Thrust-to-weight stays
        # above 1 at every corner (2.25 x 0.8 x 0.9 / 1.5).
        "wide": [
            DRTerm("body_mass", "uniform", "scale", (0.7, 1.5)),
            DRTerm("actuator_gain", "uniform", "scale", (0.8, 1.2)),
            DRTerm("actuator_strength", "uniform", "scale", (0.9, 1.0)),
            DRTerm("motor_time_constant", "log_uniform", "scale", (0.5, 2.5)),
            DRTerm("action_latency", "uniform", "abs", (0, 3)),
            DRTerm("obs_noise", "uniform", "abs", (0.0, 0.01)),
            DRTerm("obs_bias", "gaussian", "abs", (0.0, 0.005)),
            DRTerm("push", "uniform", "abs", (0.0, 0.05), when="interval", interval_s=2.0),
            DRTerm("gravity", "uniform", "add", (-0.1, 0.1)),
        ],
    }


def crazyflie() -> RobotSpec:
    return RobotSpec(
        name="quadrotor",
        model_path=ASSETS / "crazyflie.urdf",
        floating_base=True,
        joints=(),
        joint_lower=np.zeros(0),
        joint_upper=np.zeros(0),
        default_joint_pos=np.zeros(0),
        base_pos=np.array([0.0, 0.0, 1.0]),
        base_quat=np.array([1.0, 0.0, 0.0, 0.0]),
        actuators=RotorActuators(
            positions=ROTOR_POSITIONS,
            spin=ROTOR_SPIN,
            max_thrust=MAX_THRUST,
            torque_to_thrust=KM / KF,
            time_constant=MOTOR_TIME_CONSTANT,
            linear_drag=DRAG,
        ),
        physics_dt=0.002,
        control_rate_hz=50.0,
        dr_presets=dr_presets(),
    )
