"""Safe stop per robot kind: what a robot is commanded when it must stop, whatever the link does.

- Arms (joint position): hold the measured position (the guard's position-mode hold target); nothing else.
- Legged robots: damp (kp = 0, kd > 0 where the protocol carries gains; hold where it does not).
- Multirotors: a controlled descent, never a thrust cut while airborne. The protocol's own landing mode is
  requested and re-requested until the vehicle acknowledges it (PX4: NAV_LAND until vehicle_status shows
  AUTO_LAND, in :mod:`tether.ros.protocols.px4`); until then, and whenever that request is lost, the
  streamed setpoint is :func:`multirotor_descent`: level the attitude, brake horizontal motion and sink at
  ``descent_speed``, closed on the latest measured velocity.

The descent is the same law as the served PX4's position controller and the sim's expert (geometric: desired
acceleration -> thrust along the body z axis, body rates that turn the body z axis onto it).
"""

from __future__ import annotations

import numpy as np

DESCENT_SPEED = 0.4  # m/s: gentle enough that a touchdown at this speed is no impact
THRUST_FLOOR = 0.6  # x hover thrust: the least a descent commands (a free fall is never a "descent")


def multirotor_descent(rotmat: np.ndarray, lin_vel: np.ndarray, *, hover_thrust: float, max_thrust: float,
                       max_rates: np.ndarray, gravity: float = 9.81, descent_speed: float = DESCENT_SPEED,
                       kv: float = 3.0, k_att: float = 8.0) -> np.ndarray:
    """[collective thrust N, body rates FLU rad/s] for a level, braked descent at ``descent_speed``.

    ``rotmat`` is world_from_body (ENU/FLU, row-major 9 or 3x3), ``lin_vel`` the world velocity (m/s).
    """
    R = np.asarray(rotmat, dtype=float).reshape(3, 3)
    v = np.asarray(lin_vel, dtype=float).reshape(3)
    mass = hover_thrust / gravity
    a_des = np.array([-1.5 * v[0], -1.5 * v[1], kv * (-descent_speed - v[2])])
    a_des[:2] = np.clip(a_des[:2], -3.0, 3.0)
    a_des[2] = np.clip(a_des[2], -0.5 * gravity, gravity) + gravity
    z_b = R[:, 2]
    thrust = float(np.clip(mass * float(a_des @ z_b), THRUST_FLOOR * hover_thrust, max_thrust))
    z_des = a_des / max(float(np.linalg.norm(a_des)), 1e-9)
    rates = k_att * (R.T @ np.cross(z_b, z_des))
    rates[2] = 0.0
    return np.concatenate([[thrust], np.clip(rates, -np.asarray(max_rates), np.asarray(max_rates))])
