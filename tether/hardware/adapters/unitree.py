"""Unitree legged robot at the low level: unitree_go LowState in, LowCmd (with its CRC) out.

Motors are addressed by index in Unitree's fixed order (legs FR, FL, RR, RL; each hip, thigh, calf: A1, Go1
and Go2 alike); the policy's joints are names (``FR_hip_joint``, ``FR_upper_joint`` ...), so the index of each
is parsed from the name (thigh/upper and calf/lower are synonyms), never assumed from the contract's order. The 12 used motors get mode 0x01 (FOC) with the per-joint
kp/kd given; the 8 unused slots get the SDK's "no target" values (PosStopF / VelStopF, zero gains).
A guard ``damp`` (e-stop or stale state) sends kp = 0, kd = ``damp_kd``: the motors become passive dampers,
Unitree's documented safe state (the firmware has no documented watchdog of its own).

IMU: ``imu_state.quaternion`` is (w, x, y, z) body->world and ``gyroscope`` is body rates (x fwd, y left, z
up, as Tether), giving ``projected_gravity`` and ``base_ang_vel``. The velocity ``command`` comes from a
geometry_msgs/Twist topic (default /cmd_vel) or a fixed value. Topics default to /lowstate and /lowcmd (DDS
``rt/lowstate`` / ``rt/lowcmd``, which is what the firmware and SDK2 use).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tether.contract import IOContract
from tether.errors import TetherError
from tether.hardware import frames
from tether.hardware.adapters._legged import (
    A1_JOINTS,
    LEGGED_ACTIONS,
    LEGGED_MODES,
    LEGGED_OBS,
    LEGS,
    PART_SYNONYMS,
    PARTS,
    joint_part,
    legged_contract,
    per_joint,
    velocity_command,
)
from tether.hardware.adapters._ros import RosRobot, check_serves, joint_components
from tether.hardware.adapters.unitree_crc import lowcmd_crc, lowstate_crc

POS_STOP_F = 2.146e9  # "no position target" (unitree_legged_sdk PosStopF)
VEL_STOP_F = 16000.0  # "no velocity target" (VelStopF)
N_MOTOR_SLOTS = 20
MODE_FOC = 0x01
HEAD = (0xFE, 0xEF)
LEVEL_LOW = 0xFF


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


def lowstate_fields(msg: Any, motor_idx: np.ndarray) -> dict[str, np.ndarray]:
    """LowState -> joint_pos / joint_vel (policy joint order), base_ang_vel, projected_gravity."""
    ms = msg.motor_state
    q_wb = np.asarray(msg.imu_state.quaternion, dtype=float)
    return {
        "joint_pos": np.array([ms[i].q for i in motor_idx], dtype=float),
        "joint_vel": np.array([ms[i].dq for i in motor_idx], dtype=float),
        "joint_tau": np.array([ms[i].tau_est for i in motor_idx], dtype=float),
        "base_ang_vel": np.asarray(msg.imu_state.gyroscope, dtype=float).copy(),
        "projected_gravity": frames.projected_gravity(q_wb),
        "base_quat": q_wb,
    }


def build_lowcmd(store: Any, q_target: np.ndarray, motor_idx: np.ndarray, kp: np.ndarray, kd: np.ndarray,
                 *, damp: bool = False, damp_kd: float = 1.0) -> Any:
    """A complete LowCmd with the crc filled in. ``q_target``/``kp``/``kd`` are in policy joint order."""
    from tether.ros.types import make

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
    msg = make(store, "unitree_go/msg/LowCmd", head=list(HEAD), level_flag=LEVEL_LOW, motor_cmd=cmds)
    msg.crc = lowcmd_crc(msg)
    return msg


def decode_lowcmd(msg: Any, motor_idx: np.ndarray) -> dict[str, np.ndarray]:
    """Served-robot side of :func:`build_lowcmd`: per-joint mode/q/dq/tau/kp/kd in policy joint order.

    A served robot should also check ``lowcmd_crc(msg) == msg.crc`` and ignore the command if not, as the
    firmware does."""
    mc = msg.motor_cmd
    out = {k: np.array([getattr(mc[i], k) for i in motor_idx], dtype=float) for k in ("q", "dq", "tau", "kp", "kd")}
    out["mode"] = np.array([mc[i].mode for i in motor_idx], dtype=int)
    return out


def build_lowstate(store: Any, motor_idx: np.ndarray, q: np.ndarray, dq: np.ndarray, *,
                   tau: np.ndarray | None = None, quat_wxyz: Sequence[float] = (1.0, 0.0, 0.0, 0.0),
                   gyro: Sequence[float] = (0.0, 0.0, 0.0), acc: Sequence[float] = (0.0, 0.0, 9.81),
                   tick: int = 0) -> Any:
    """A LowState as the firmware publishes it (joint arrays in policy order, placed by motor index; crc set)."""
    from tether.ros.types import make

    msg = make(store, "unitree_go/msg/LowState", head=list(HEAD), level_flag=LEVEL_LOW, tick=int(tick) & 0xFFFFFFFF)
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

    def __init__(
        self,
        transport: Any,
        contract: IOContract | None = None,
        *,
        kp: float | Sequence[float] = 20.0,
        kd: float | Sequence[float] = 0.5,
        damp_kd: float = 1.0,
        lowstate_topic: str = "/lowstate",
        lowcmd_topic: str = "/lowcmd",
        command_topic: str | None = "/cmd_vel",
        command: Sequence[float] = (0.0, 0.0, 0.0),
        check_state_crc: bool = False,
        connect_timeout_s: float = 5.0,
        distro: str = "humble",
    ) -> None:
        super().__init__(transport, connect_timeout_s=connect_timeout_s, distro=distro)
        self.contract = contract or legged_contract()
        check_serves(self.contract, LEGGED_OBS, LEGGED_ACTIONS, LEGGED_MODES, "unitree")
        self.joints = joint_components(self.contract, "joint_pos", A1_JOINTS)
        self.action_joints = joint_components(self.contract, "joint_pos_target", self.joints)
        self.obs_idx = motor_indices(self.joints)
        self.act_idx = motor_indices(self.action_joints)
        n = len(self.action_joints)
        self.kp, self.kd = per_joint(kp, n, "kp"), per_joint(kd, n, "kd")
        self.damp_kd = float(damp_kd)
        self.lowstate_topic, self.lowcmd_topic = lowstate_topic, lowcmd_topic
        self.command_topic = command_topic
        self.fixed_command = np.asarray(command, dtype=float)
        self.required_topics = (lowstate_topic,)
        if check_state_crc:
            self.filters[lowstate_topic] = lambda m: int(m.crc) == lowstate_crc(m)

    def _subscriptions(self) -> list[tuple[str, str, str]]:
        subs = [(self.lowstate_topic, "unitree_go/msg/LowState", "sensor_data")]
        if self.command_topic is not None:
            subs.append((self.command_topic, "geometry_msgs/msg/Twist", "default"))
        return subs

    def _publishers(self) -> list[tuple[str, str, str]]:
        return [(self.lowcmd_topic, "unitree_go/msg/LowCmd", "command")]

    def read_state(self) -> tuple[dict[str, np.ndarray], float]:
        msg, stamp = self._need(self.lowstate_topic)
        obs = lowstate_fields(msg, self.obs_idx)
        obs["command"] = velocity_command(self.latest, self.command_topic, self.fixed_command)
        return obs, stamp

    def send(self, command: np.ndarray, *, damp: bool = False) -> None:
        q = np.asarray(command, dtype=float).reshape(-1)
        if q.shape != (len(self.action_joints),):
            raise TetherError(f"command has {q.size} elements; expected {len(self.action_joints)} joint targets")
        msg = build_lowcmd(self.store, q, self.act_idx, self.kp, self.kd, damp=damp, damp_kd=self.damp_kd)
        self._pub(self.lowcmd_topic).publish(msg)
