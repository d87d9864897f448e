"""Unitree legged robot at the low level: unitree_go LowState in, LowCmd (with its CRC) out.

Wire: ``/lowstate`` and ``/lowcmd`` (DDS ``rt/lowstate`` / ``rt/lowcmd``, what the firmware and SDK2 use).
Motors are addressed by index in Unitree's fixed order (legs FR, FL, RR, RL; each hip, thigh, calf: A1, Go1
and Go2 alike); the policy's joints are names (``FR_hip_joint``, ``FR_upper_joint`` ...), so the index of
each is parsed from the name (thigh/upper and calf/lower are synonyms), never assumed from the contract's
order. The used motors get mode 0x01 (FOC) with the per-joint kp/kd given (bounded by the limits file); the
unused slots get the SDK's "no target" values (PosStopF / VelStopF, zero gains). A guard ``damp`` (e-stop or
stale state) sends kp = 0, kd = ``damp_kd``: the motors become passive dampers, Unitree's documented safe
state (the firmware has no documented watchdog of its own).

IMU: ``imu_state.quaternion`` is (w, x, y, z) body->world and ``gyroscope`` is body rates (x fwd, y left, z
up, as Tether), giving ``projected_gravity`` and ``base_ang_vel``. A LowState with a non-unit quaternion,
non-finite or out-of-range values (or a bad CRC, with ``check_state_crc``) is dropped and counted. The
``tick`` counter is not checked for monotonicity: the firmware restarts it at every boot and it carries no
absolute time. The velocity ``command`` comes from a geometry_msgs/Twist topic (default /cmd_vel) or a fixed
value (used until the topic speaks); a velocity policy given no fixed value waits for the first Twist before its
first tick (:func:`~tether.ros.protocols.legged.awaited_command`). The state estimator's nav_msgs/Odometry
(default /odom; optional, never waited for) is recorded with the rest: it is where a recording finds the base
velocity that velocity tracking is scored on, which LowState lacks.

The served-robot side (:class:`UnitreeBridge`) drops (and counts) a LowCmd whose CRC does not match, as the
firmware does, and one with the wrong head / level flag; passive damping (kp = 0 on every used motor) becomes
"hold where you are" in the simulator, whose PD gains are fixed by the model. It publishes the simulator's base
state as odometry (a state estimator's, exact), and, on the velocity task, the command the task drew for the
episode (its seed) on /cmd_vel, as an operator's joystick would, unless a fixed ``command`` was given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tether.contract import IOContract
from tether.data.topics import ODOM_TOPIC, ODOM_TYPE
from tether.errors import TetherError
from tether.hardware import frames
from tether.hardware.limits import RobotLimits
from tether.hardware.plausibility import Implausible, bounded, unit_quaternion
from tether.ros import types as T
from tether.ros.protocols.adapter import RosRobot, Sub, joint_components
from tether.ros.protocols.bridge import Bridge
from tether.ros.protocols.common import CMD_VEL_TOPIC, twist_message
from tether.ros.protocols.legged import (
    A1_JOINTS,
    LEGGED_ACTIONS,
    LEGGED_MODES,
    LEGGED_OBS,
    awaited_command,
    default_limits,
    fixed_command,
    legged_contract,
    odometry_message,
    odometry_subscription,
    per_joint,
    velocity_command,
    velocity_subscription,
)
from tether.ros.protocols.unitree_crc import lowcmd_crc, lowstate_crc
from tether.sim.robots import a1

LOWSTATE_TOPIC, LOWCMD_TOPIC = "/lowstate", "/lowcmd"
POS_STOP_F = 2.146e9  # "no position target" (unitree_legged_sdk PosStopF)
VEL_STOP_F = 16000.0  # "no velocity target" (VelStopF)
N_MOTOR_SLOTS = 20
MODE_FOC = 0x01
HEAD = (0xFE, 0xEF)
LEVEL_LOW = 0xFF
LEGS = ("FR", "FL", "RR", "RL")  # Unitree motor order: leg-major, then hip, thigh, calf
PARTS = ("hip", "thigh", "calf")
# Names URDFs use for the same three joints (unitree_ros: thigh/calf; Tether's sim A1: upper/lower).
PART_SYNONYMS = {"hip": "hip", "thigh": "thigh", "upper": "thigh", "calf": "calf", "lower": "calf"}


def joint_part(name: str) -> str | None:
    """'FR_upper_joint' -> 'thigh' (canonical part), None if the name has no known part token."""
    found = [PART_SYNONYMS[t.lower()] for t in name.replace("-", "_").split("_") if t.lower() in PART_SYNONYMS]
    return found[0] if len(found) == 1 else None


def unitree_motor_index(joint: str) -> int:
    """'FR_hip_joint' -> 0, 'FL_thigh_joint' (or 'FL_upper_joint') -> 4, 'RL_calf_joint' ('RL_lower_joint') -> 11."""
    legs = [t.upper() for t in joint.replace("-", "_").split("_") if t.upper() in LEGS]
    part = joint_part(joint)
    if len(legs) != 1 or part is None:
        raise TetherError(
            f"cannot map joint {joint!r} to a Unitree motor; expected a name with one of {list(LEGS)} "
            f"and one of {sorted(PART_SYNONYMS)}, e.g. 'FR_hip_joint'"
        )
    return 3 * LEGS.index(legs[0]) + PARTS.index(part)


def motor_indices(joints: Sequence[str]) -> np.ndarray:
    idx = np.array([unitree_motor_index(j) for j in joints], dtype=int)
    if len(set(idx.tolist())) != len(idx):
        raise TetherError(f"joints {list(joints)} map to repeated Unitree motors {idx.tolist()}")
    return idx


def lowstate_fields(msg: Any, motor_idx: np.ndarray, limits: RobotLimits | None = None) -> dict[str, np.ndarray]:
    """LowState -> joint_pos / joint_vel (policy joint order), base_ang_vel, projected_gravity; raises
    Implausible (the message is dropped) for a non-unit quaternion, non-finite or out-of-range values."""
    bound = (lambda k: limits.state_bound(k)) if limits is not None else (lambda k: np.inf)
    ms = msg.motor_state
    q_wb = unit_quaternion("quaternion", np.asarray(msg.imu_state.quaternion, dtype=float))
    return {
        "joint_pos": bounded("joint_pos", np.array([ms[i].q for i in motor_idx], dtype=float), bound("joint_pos")),
        "joint_vel": bounded("joint_vel", np.array([ms[i].dq for i in motor_idx], dtype=float), bound("joint_vel")),
        "joint_tau": np.array([ms[i].tau_est for i in motor_idx], dtype=float),
        "base_ang_vel": bounded("base_ang_vel", np.asarray(msg.imu_state.gyroscope, dtype=float).copy(),
                                bound("base_ang_vel")),
        "projected_gravity": frames.projected_gravity(q_wb),
        "base_quat": q_wb,
    }


def build_lowcmd(store: Any, q_target: np.ndarray, motor_idx: np.ndarray, kp: np.ndarray, kd: np.ndarray,
                 *, damp: bool = False, damp_kd: float = 1.0) -> Any:
    """A complete LowCmd with the crc filled in. ``q_target``/``kp``/``kd`` are in policy joint order."""
    motor = store.types["unitree_go/msg/MotorCmd"]
    zeros3 = np.zeros(3, dtype=np.uint32)
    cmds = [motor(mode=0, q=POS_STOP_F, dq=VEL_STOP_F, tau=0.0, kp=0.0, kd=0.0, reserve=zeros3.copy())
            for _ in range(N_MOTOR_SLOTS)]
    for j, i in enumerate(motor_idx):
        if damp:
            cmds[i] = motor(mode=MODE_FOC, q=POS_STOP_F, dq=0.0, tau=0.0, kp=0.0, kd=float(damp_kd),
                            reserve=zeros3.copy())
        else:
            cmds[i] = motor(mode=MODE_FOC, q=float(q_target[j]), dq=0.0, tau=0.0, kp=float(kp[j]),
                            kd=float(kd[j]), reserve=zeros3.copy())
    msg = T.make(store, "unitree_go/msg/LowCmd", head=list(HEAD), level_flag=LEVEL_LOW, motor_cmd=cmds)
    msg.crc = lowcmd_crc(msg)
    return msg


def decode_lowcmd(msg: Any, motor_idx: np.ndarray) -> dict[str, np.ndarray]:
    """Served-robot side of :func:`build_lowcmd`: per-joint mode/q/dq/tau/kp/kd in policy joint order."""
    mc = msg.motor_cmd
    out = {k: np.array([getattr(mc[i], k) for i in motor_idx], dtype=float) for k in ("q", "dq", "tau", "kp", "kd")}
    out["mode"] = np.array([mc[i].mode for i in motor_idx], dtype=int)
    return out


def build_lowstate(store: Any, motor_idx: np.ndarray, q: np.ndarray, dq: np.ndarray, *,
                   tau: np.ndarray | None = None, quat_wxyz: Sequence[float] = (1.0, 0.0, 0.0, 0.0),
                   gyro: Sequence[float] = (0.0, 0.0, 0.0), acc: Sequence[float] = (0.0, 0.0, 9.81),
                   tick: int = 0) -> Any:
    """A LowState as the firmware publishes it (joint arrays in policy order, placed by motor index; crc set)."""
    msg = T.make(store, "unitree_go/msg/LowState", head=list(HEAD), level_flag=LEVEL_LOW,
                 tick=int(tick) & 0xFFFFFFFF)
    tau = np.zeros(len(motor_idx)) if tau is None else tau
    for j, i in enumerate(motor_idx):
        m = msg.motor_state[i]
        m.mode, m.q, m.dq, m.tau_est = MODE_FOC, float(q[j]), float(dq[j]), float(tau[j])
    imu = msg.imu_state
    imu.quaternion = np.asarray(quat_wxyz, dtype=np.float32)
    imu.gyroscope = np.asarray(gyro, dtype=np.float32)
    imu.accelerometer = np.asarray(acc, dtype=np.float32)
    msg.crc = lowstate_crc(msg)
    return msg


class UnitreeLowLevel(RosRobot):
    """A Unitree quadruped in low-level mode as a RobotInterface (see module docstring).

    Low-level control needs the robot's sport-mode service switched off first (Unitree app or SDK); this
    adapter does not do that for you.
    """

    robot_kind = "legged"
    serves_obs, serves_actions, serves_modes = tuple(LEGGED_OBS), tuple(LEGGED_ACTIONS), tuple(LEGGED_MODES)
    adapter_name = "unitree"
    stale_action = "damp"  # Unitree motors can go passive
    recorded_state = (("base_lin_vel", 3),)  # from the odometry topic, when the robot publishes one

    def __init__(
        self,
        transport: Any,
        contract: IOContract | None = None,
        *,
        limits: RobotLimits | None = None,
        kp: float | Sequence[float] = a1.KP,
        kd: float | Sequence[float] = a1.KD,
        damp_kd: float = 1.0,
        lowstate_topic: str = LOWSTATE_TOPIC,
        lowcmd_topic: str = LOWCMD_TOPIC,
        command_topic: str | None = CMD_VEL_TOPIC,
        command: Sequence[float] | None = None,
        odometry_topic: str | None = ODOM_TOPIC,
        check_state_crc: bool = False,
        connect_timeout_s: float = 5.0,
        distro: str = "humble",
    ) -> None:
        limits = limits or default_limits()
        super().__init__(transport, limits=limits, connect_timeout_s=connect_timeout_s, distro=distro)
        self.contract = contract or legged_contract(limits)
        self.check_contract(self.contract)
        self.joints = joint_components(self.contract, "joint_pos", A1_JOINTS)
        self.action_joints = joint_components(self.contract, "joint_pos_target", self.joints)
        self.obs_idx = motor_indices(self.joints)
        self.act_idx = motor_indices(self.action_joints)
        n = len(self.action_joints)
        self.kp = per_joint(kp, n, "kp", limits.param("max_kp"))
        self.kd = per_joint(kd, n, "kd", limits.param("max_kd"))
        self.damp_kd = float(per_joint(damp_kd, 1, "damp_kd", limits.param("max_kd"))[0])
        self.lowstate_topic, self.lowcmd_topic = lowstate_topic, lowcmd_topic
        self.command_topic = command_topic
        self.odometry_topic = odometry_topic
        self.fixed_command = fixed_command(command)
        self.awaited_from = awaited_command(self.contract, command_topic, self.fixed_command)
        self.required_topics = (lowstate_topic,) + tuple(self.awaited_from)
        self.control_topic = lowcmd_topic
        self.check_state_crc = check_state_crc

    def _decode_lowstate(self, msg: Any) -> dict[str, np.ndarray]:
        if self.check_state_crc and int(msg.crc) != lowstate_crc(msg):
            raise Implausible("bad_crc")
        return lowstate_fields(msg, self.obs_idx, self.robot_limits)

    def _subscriptions(self) -> list[Sub]:
        subs = [Sub(self.lowstate_topic, "unitree_go/msg/LowState", "sensor_data", self._decode_lowstate)]
        return subs + velocity_subscription(self.command_topic) + odometry_subscription(self.odometry_topic)

    def _publishers(self) -> list[tuple[str, str, Any]]:
        return [(self.lowcmd_topic, "unitree_go/msg/LowCmd", "command")]

    def read_state(self) -> tuple[dict[str, np.ndarray], float]:
        fields, stamp = self._need(self.lowstate_topic)
        obs = dict(fields)
        obs["command"] = velocity_command(self.latest, self.command_topic, self.fixed_command)
        return obs, stamp

    def send(self, command: np.ndarray, *, damp: bool = False) -> None:
        q = np.asarray(command, dtype=float).reshape(-1)
        if q.shape != (len(self.action_joints),):
            raise TetherError(f"command has {q.size} elements; expected {len(self.action_joints)} joint targets")
        msg = build_lowcmd(self.store, q, self.act_idx, self.kp, self.kd, damp=damp, damp_kd=self.damp_kd)
        self._pub(self.lowcmd_topic).publish(msg)


# ------------------------------------------------------------------------------------------- served robot


class UnitreeBridge(Bridge):
    kind = "legged"
    # LowState/LowCmd run at the motor loop's 500 Hz (unitree_legged_sdk's 2 ms loop; unitree_ros2's /lowstate).
    # At the policy's 50 Hz instead, 10 ms of network each way became 2 control steps of delay, not 1: the
    # velocity student's zero-shot tracking on a served A1 at mass x1.2 went 1 of 12 -> 4 of 12 at 500 Hz
    # (benchmarks/RESULTS.md, "Legged velocity tracking with the served A1 ticking at a Unitree's 500 Hz")
    state_rate_hz = 500.0

    def __init__(self, env: Any, store: Any, *, lowstate_topic: str = LOWSTATE_TOPIC,
                 lowcmd_topic: str = LOWCMD_TOPIC, command: np.ndarray | None = None, **kw: Any) -> None:
        super().__init__(env, store, **kw)
        self.joints = tuple(self.spec.joints)
        self.motor_idx = motor_indices(self.joints)
        self.lowstate_topic, self.lowcmd_topic = lowstate_topic, lowcmd_topic
        if command is None and self.task.name == "velocity":
            command = self.task.command[0]  # the episode's draw (the env was reset with the served robot's seed)
        self.velocity_command = None if command is None else np.asarray(command, dtype=float).copy()
        if self.velocity_command is not None:
            self.task.command[:] = self.velocity_command
        q, _ = self.sim.joint_state()
        self.target = np.asarray(q, dtype=float).copy()
        self.damped = False
        self.tick = 0
        self._lowstate: Any = None

    def outputs(self) -> list[tuple[str, str, Any]]:
        return [(self.lowstate_topic, "unitree_go/msg/LowState", "sensor_data"), (ODOM_TOPIC, ODOM_TYPE, "sensor_data")]

    def extra_outputs(self) -> list[tuple[str, str, Any]]:
        return [] if self.velocity_command is None else [(CMD_VEL_TOPIC, "geometry_msgs/msg/Twist", "default")]

    def inputs(self) -> list[tuple[str, str, Any]]:
        return [(self.lowcmd_topic, "unitree_go/msg/LowCmd", "sensor_data")]

    def goal_message(self) -> Any | None:
        return None

    def extra_messages(self) -> list[tuple[str, Any]]:
        if self.velocity_command is None:
            return []
        return [(CMD_VEL_TOPIC, twist_message(self.store, self.velocity_command))]

    def on_message(self, topic: str, msg: Any) -> None:
        self.counters.got(topic)
        if int(msg.crc) != lowcmd_crc(msg):
            self.counters.reject("bad_crc")
            return
        if tuple(int(h) for h in msg.head) != HEAD or int(msg.level_flag) != LEVEL_LOW:
            self.counters.reject("bad_head")
            return
        d = decode_lowcmd(msg, self.motor_idx)
        if np.any(d["mode"] != MODE_FOC):
            self.counters.reject("motor_off")
            return
        damp = bool(np.all(d["kp"] == 0.0))
        if not damp and not np.all(np.isfinite(d["q"])):
            self.counters.reject("not_finite")
            return
        with self.lock:
            if damp:
                if not self.damped:
                    q, _ = self.sim.joint_state()
                    self.target = np.asarray(q, dtype=float).copy()
                self.damped = True
            else:
                self.damped = False
                self.target = d["q"].copy()
            self.counters.applied += 1

    def actuate(self, substeps: int) -> None:
        with self.lock:
            target = self.target.copy()
        self.task.actuate(self.env.core.sim, np.atleast_2d(target), substeps)

    def imu(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(quaternion w,x,y,z; gyro body; accelerometer body: specific force, +g up at rest)."""
        _, quat = self.sim.base_pose()
        _, ang = self.sim.base_velocity()
        quat = np.asarray(quat, dtype=float)
        acc = frames.quat_to_rotmat(quat).T @ np.array([0.0, 0.0, 9.81])
        return quat, self.noise(np.asarray(ang, dtype=float)), acc

    def state_messages(self) -> list[tuple[str, Any]]:
        q, qd = self.sim.joint_state()
        q, qd = self.noise(np.asarray(q, dtype=float)), self.noise(np.asarray(qd, dtype=float))
        quat, gyro, acc = self.imu()
        self.tick += 1
        if self._lowstate is None:  # built once; later ticks update it in place (5x cheaper than rebuilding)
            self._lowstate = build_lowstate(self.store, self.motor_idx, q, qd, quat_wxyz=quat, gyro=gyro, acc=acc,
                                            tick=self.tick)
            return [(self.lowstate_topic, self._lowstate), (ODOM_TOPIC, self.odometry(quat))]
        msg = self._lowstate
        ms = msg.motor_state
        for j, i in enumerate(self.motor_idx):
            ms[i].q, ms[i].dq = float(q[j]), float(qd[j])
        imu = msg.imu_state
        imu.quaternion = np.asarray(quat, dtype=np.float32)
        imu.gyroscope = np.asarray(gyro, dtype=np.float32)
        imu.accelerometer = np.asarray(acc, dtype=np.float32)
        msg.tick = self.tick & 0xFFFFFFFF
        msg.crc = lowstate_crc(msg)
        return [(self.lowstate_topic, msg), (ODOM_TOPIC, self.odometry(quat))]

    def odometry(self, quat: np.ndarray) -> Any:
        """The base state as an exact state estimator would report it (noise as the other sensors'); the
        simulator's linear velocity is in the world frame, odometry's twist in the body frame."""
        pos, _ = self.sim.base_pose()
        lin, ang = self.sim.base_velocity()
        lin_body = frames.quat_to_rotmat(quat).T @ np.asarray(lin, float)
        return odometry_message(self.store, np.asarray(pos, float), quat, self.noise(lin_body),
                                self.noise(np.asarray(ang, float)))

    def summary(self) -> dict[str, Any]:
        d = super().summary()
        d["damped"] = self.damped
        return d
