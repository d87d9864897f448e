"""What a deployment records, as identification data: a rosbag2 bag from ``tether deploy --record`` or a
LeRobot dataset converted from one (``tether data convert``), turned into ``sysid.Trajectories``.

Commands: the flat ``/tether/action`` topic is the command after the guard, in the physical units the robot
received (quadrotor: collective thrust + body-rate setpoints for the onboard rate controller, or rotor
thrusts; arm: joint targets for ros2_control; legged: joint targets for the motors' PD). States come by name
from the contract's observation fields (``/tether/obs``, or the dataset's ``observation.state``):

- ``joint_pos`` / ``joint_vel``: matched to the robot model's joints by component name, never by position;
- ``base_ang_vel`` (body frame), ``base_lin_vel`` (world frame only), ``projected_gravity``;
- a legged robot's base velocity from its state estimator's odometry (``/odom``, body frame), which a Unitree
  LowState lacks: it starts each replay window at the measured velocity (else the stance feet's estimate) and is
  compared like any state;
- ``base_rotmat`` -> attitude quaternion; ``pos_error`` -> position = goal - error, the goal read from the
  bag's ``/tether/goal`` as it stood when each observation was made, so a waypoint mission replays as one
  flight (a dataset does not keep it: ``goal`` argument, else 1 m above the origin; only ground contact
  depends on it);
- other fields (targets, commands, the last action) are not states of the robot and are ignored.

Cropping to what the robot executed. In a bag: a PX4 vehicle executes setpoints only while armed in offboard
mode (``vehicle_status``, received before the command was sent; before that it flies its own hold controller
and rejects them: ~15 % of a demo recording), and a command the guard sent as a damp (e-stop, stale state)
makes a legged robot passive instead of tracking it (``/tether/guard``). A dataset keeps neither topic; there
the fit's outlier screening sets aside windows the commands do not explain (see ``sysid``). Steps the replay
cannot start from are set aside too: a quadrotor on the ground, an arm touching what it pushes, and a legged
robot fallen over (the replay stands a robot on its feet: one that had tipped onto its back after a zero-shot
walk was replayed falling at 4 m/s, and the fit read a nominal-friction ground as x2.2-2.7 friction).

Timing. The flat topics sit on the controller's grid; the robot's loop is not locked to it, so a command
arriving near the robot's tick boundary is applied a tick early or late whenever either loop runs a little
late, and on a loaded machine that happens often enough to bias a fit (motor lag 10-20 % low on such
recordings). A PX4 bag also holds the vehicle's odometry (one message per tick of its loop, stamped by the
vehicle) and every setpoint with its send time: ``_px4_event_timing`` matches each observation to its odometry
message and replays on the vehicle's own ticks (``replay.tick_schedule``); only timestamps are read from the PX4
messages. Other robots (ros2_control, Unitree) are replayed on the controller's grid.

The bag carries no contract: pass the deployed checkpoint (``--contract``); a dataset carries its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tether.bag_names import is_bag
from tether.contract import IOContract
from tether.data.topics import GOAL_TOPIC, GOAL_TYPE, GUARD_TOPIC, ODOM_TOPIC, ODOM_TYPE, PX4_MOTORS, PX4_MOTORS_TYPE
from tether.data.topics import PX4_ODOMETRY, PX4_ODOMETRY_TYPE, PX4_RATES, PX4_RATES_TYPE, PX4_STATUS, PX4_STATUS_TYPE
from tether.data.robot_runs import goal_moves, goal_track, goals_made_against, odometry_state
from tether.errors import TetherError
from tether.sim.tasks.arm import CONTACT_RANGE, OBJECT_FIELDS
from tether.sim.tasks.legged import MAX_TILT, tipped_over

MATCH_SPAN = 25  # odometry messages searched either side of the newest received when matching an observation
SETPOINT = {"thrust_body_rates": (PX4_RATES, PX4_RATES_TYPE), "motor_thrust": (PX4_MOTORS, PX4_MOTORS_TYPE)}
NOT_TRACKED_REASONS = ("estop", "stale_damp")  # commands sent as "go passive": not tracked by the robot
DEFAULT_GOAL = np.array([0.0, 0.0, 1.0])
# a quadrotor this low is on the ground or leaving it: contact and ground effect, which the fit does not model
# (a zero-shot policy that crashed leaves most of its recording there, and a fit on it found a 1.6x heavier
# vehicle 0.87x as heavy); it rests at ~1.3 cm and the tasks fly at 0.6 m and up
GROUND_CLEARANCE = 0.05  # m
ROBOT_KINDS = ("quadrotor", "arm", "legged")


@dataclass
class RecordedEpisode:
    obs: np.ndarray  # (T + 1, obs_size) physical; row T is the observation after the last command
    command: np.ndarray  # (T, action_size) physical, as the robot received it; (M, action_size) with event timing
    executed: np.ndarray  # (T,) bool: transition k (obs k -> obs k + 1) ran on the recorded commands
    stamps_ns: np.ndarray | None = None  # (T,) grid times of the observations (bags only)
    # event timing: obs k is the robot's state after its tick at state_times[k] (s, the command clock) and
    # command i was sent at command_times[i]; see ``_px4_event_timing``
    state_times: np.ndarray | None = None  # (T + 1,)
    command_times: np.ndarray | None = None  # (M,)
    command_sources: np.ndarray | None = None  # (M,) tick time of the state each command was computed from
    base_lin_vel_body: np.ndarray | None = None  # (T + 1, 3) a legged robot's odometry at each observation


@dataclass
class Recording:
    contract: IOContract
    episodes: list[RecordedEpisode]
    source: str
    goal: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    mode_known: bool = True  # the recording says which commands the robot executed (a bag; not a dataset)

    @property
    def robot(self) -> str:
        return self.contract.robot


# ---------------------------------------------------------------------- loading
def is_dataset(path: Path) -> bool:
    return path.is_dir() and (path / "meta" / "info.json").is_file()


def contract_differences(a: IOContract, b: IOContract) -> list[str]:
    """How two contracts differ, robot, mode and sizes first (``IOContract.differences`` compares field
    arrays, which needs equal sizes)."""
    first = [f"{what} {x!r} != {y!r}" for what, x, y in (
        ("robot", a.robot, b.robot), ("control mode", a.control_mode, b.control_mode),
        ("observation size", a.obs_size, b.obs_size), ("action size", a.action_size, b.action_size)) if x != y]
    return first or a.differences(b)


def resolve_contract(contract: IOContract | str | Path | None) -> IOContract | None:
    if contract is None or isinstance(contract, IOContract):
        return contract
    from tether.data.commands import load_contract

    return load_contract(contract)


def load_recording(path: str | Path, *, contract: IOContract | str | Path | None = None,
                   goal: Sequence[float] | None = None) -> Recording:
    """A bag directory / .mcap / .db3 file, or a dataset directory; see the module docstring."""
    from tether.bag_names import resolve_bag

    p = resolve_bag(path)
    if not p.exists():
        raise TetherError(f"recording {str(p)!r} does not exist; expected a rosbag2 bag from tether deploy "
                          f"--record or a dataset directory")
    if p.is_symlink():
        raise TetherError(f"recording {str(p)!r} is a symbolic link; expected the bag or dataset itself")
    c = resolve_contract(contract)
    if goal is not None:
        goal = np.asarray(goal, dtype=float)
        if goal.shape != (3,) or not np.all(np.isfinite(goal)):
            raise TetherError(f"goal {goal.tolist()}; expected three finite numbers x y z (m)")
    if is_dataset(p):
        rec = _load_dataset(p, c)
    elif is_bag(p):
        if c is None:
            raise TetherError(f"bag {str(p)!r} carries no IOContract; pass --contract with the checkpoint that was "
                              f"deployed (or its contract JSON)")
        rec = _load_bag(p, c)
    else:
        raise TetherError(f"recording {str(p)!r} is neither a rosbag2 bag (a directory with metadata.yaml, or a "
                          f".mcap/.db3 file) nor a dataset (a directory with meta/info.json)")
    if goal is not None:
        rec.goal = goal
    if rec.contract.robot not in ROBOT_KINDS:
        raise TetherError(f"recording {str(p)!r} is of a {rec.contract.robot!r} robot; sysid knows "
                          f"{', '.join(ROBOT_KINDS)}")
    if not rec.episodes or not any(len(e.command) for e in rec.episodes):
        raise TetherError(f"recording {str(p)!r} has no frames; expected at least one recorded control step")
    return rec


def _read_side_topics(path: Path, want: dict[str, str]) -> dict[str, list[tuple[int, Any]]]:
    """Messages (log time ns, message) of the topics in ``want`` (topic -> type) that the bag has; types
    come from the definitions stored in the bag."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    out: dict[str, list[tuple[int, Any]]] = {}
    try:
        with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
            conns = [c for c in reader.connections if want.get(c.topic) == c.msgtype]
            for c in conns:
                out.setdefault(c.topic, [])
            for conn, t, raw in reader.messages(connections=conns):
                out[conn.topic].append((int(t), reader.deserialize(raw, conn.msgtype)))
    except TetherError:
        raise
    except Exception as exc:  # rosbags raises its own types for unreadable bags
        raise TetherError(f"cannot read bag {str(path)!r}: {exc}") from None
    return out


def _bag_topics(path: Path) -> dict[str, str]:
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    try:
        with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
            return {c.topic: c.msgtype for c in reader.connections}
    except Exception as exc:
        raise TetherError(f"cannot read bag {str(path)!r}: {exc}") from None


def _load_bag(path: Path, contract: IOContract) -> Recording:
    from tether.data.rosbag_import import FLAT_ACTION_TOPIC, align_bag

    topics = _bag_topics(path)
    if FLAT_ACTION_TOPIC not in topics:
        raise TetherError(f"bag {str(path)!r} has no {FLAT_ACTION_TOPIC} topic (the commands the robot received); "
                          f"expected a recording from tether deploy --record; it has {sorted(topics) or 'no topics'}")
    episodes = align_bag(path, contract, "flat")
    status_topic = next((t for t, ty in topics.items() if t.endswith(PX4_STATUS) and ty == PX4_STATUS_TYPE), None)
    want = {GUARD_TOPIC: "std_msgs/msg/String", FLAT_ACTION_TOPIC + "/stamp": "builtin_interfaces/msg/Time",
            GOAL_TOPIC: GOAL_TYPE, ODOM_TOPIC: ODOM_TYPE}
    if status_topic:
        want[status_topic] = PX4_STATUS_TYPE
    side = _read_side_topics(path, want)
    notes: list[str] = []
    # the guard's reason per command: the i-th /tether/guard message belongs to the i-th command
    guard_t = guard_r = None
    stamps = side.get(FLAT_ACTION_TOPIC + "/stamp", [])
    reasons = side.get(GUARD_TOPIC, [])
    if reasons and len(stamps) == len(reasons):
        guard_t = np.array([m.sec * 10**9 + m.nanosec for _, m in stamps], dtype=np.int64)
        order = np.argsort(guard_t, kind="stable")
        guard_t = guard_t[order]
        guard_r = np.array([m.data for _, m in reasons], dtype=object)[order]
    elif reasons:
        notes.append(f"{GUARD_TOPIC} has {len(reasons)} messages for {len(stamps)} commands; guard reasons not used")
    offboard = None
    if status_topic:
        msgs = side.get(status_topic, [])
        if msgs:
            M = type(msgs[0][1])
            nav_off = getattr(M, "NAVIGATION_STATE_OFFBOARD", 14)
            armed = getattr(M, "ARMING_STATE_ARMED", 2)
            offboard = (np.array([t for t, _ in msgs], dtype=np.int64),
                        np.array([m.nav_state == nav_off and m.arming_state == armed for _, m in msgs]))
    period = int(round(1e9 / contract.rate_hz))
    goals = goal_track(side.get(GOAL_TOPIC, []))
    out, n_total, n_off, n_damp = [], 0, 0, 0
    for ep in episodes:
        T = len(ep.action)
        t_cmd = ep.stamps_ns + period // 2  # when each command was sent (FlatRecorder: half a period in)
        ok = np.ones(T, bool)
        if offboard is not None:
            ts, on = offboard
            i = np.searchsorted(ts, t_cmd, side="right") - 1
            is_on = np.where(i >= 0, on[np.clip(i, 0, None)], False)
            n_off += int(np.sum(~is_on))
            ok &= is_on
        if guard_t is not None:
            j = np.clip(np.searchsorted(guard_t, ep.stamps_ns + period - 1, side="right") - 1, 0, None)
            damp = np.isin(guard_r[j], NOT_TRACKED_REASONS)
            n_damp += int(np.sum(damp & ok))
            ok &= ~damp
        n_total += T
        t_obs = np.append(ep.stamps_ns, ep.stamps_ns[-1] + period)
        obs = _on_first_goal(contract, np.concatenate([ep.obs, ep.final_obs[None]]), t_obs, goals)
        # odometry by the grid stamps (the loop reads its newest state at each tick; both clocks are wall time)
        odom = odometry_state(contract, t_obs, side.get(ODOM_TOPIC, [])).get("base_lin_vel")
        out.append(RecordedEpisode(obs, contract.to_physical(ep.action), ok, ep.stamps_ns, base_lin_vel_body=odom))
    if contract.robot == "arm" and contract.control_mode == "ee_delta_pose":
        contract, out = _arm_joint_commands(path, topics, contract, out, notes)
    if offboard is not None:
        notes.append(f"{n_off} of {n_total} commands sent before the vehicle was armed in offboard mode "
                     f"({status_topic}): rejected by the robot, not replayed")
    elif status_topic:
        notes.append(f"{status_topic} is in the bag but empty; every command taken as executed")
    if n_damp:
        notes.append(f"{n_damp} commands sent as a guard damp (e-stop / stale state): not tracked, not replayed")
    if status_topic and contract.robot == "quadrotor" and len(out) == 1:
        ev = _px4_event_timing(path, topics, contract, status_topic, goals)
        if isinstance(ev, str):
            notes.append(f"robot tick times not used ({ev}); commands taken on the control grid")
        else:
            out, ev_notes = [ev[0]], ev[1]
            notes = [n for n in notes if "offboard" not in n] + ev_notes
    goal = None
    if goals is not None:
        goal = goals[1][0]
        moves = int(goal_moves(goals[1])[-1])
        if moves:
            notes.append(f"{GOAL_TOPIC} moved {moves} times during the recording (a mission); each observation's "
                         "error is taken against the goal current when it was made")
    return Recording(contract, out, f"bag {path}", goal, notes)  # (joint contract for an ee_delta_pose arm)


def _on_first_goal(contract: IOContract, obs: np.ndarray, t_obs: np.ndarray,
                   goals: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """Observations whose ``pos_error`` is rewritten against the recording's first goal. Why: the replay takes
    position = goal - error with one goal, and a mission moves the goal, so without this every waypoint would
    look like a jump of the vehicle (each observation is taken against the goal it was made against,
    ``goals_made_against``)."""
    if goals is None or "pos_error" not in contract.obs_slices:
        return obs
    held, seg = goals_made_against(contract, obs, t_obs, goals)
    out = np.array(obs, dtype=float, copy=True)
    out[:, contract.obs_slices["pos_error"]] += seg[0] - seg[held]
    return out


def arm_joint_contract(contract: IOContract) -> IOContract:
    """The contract of what an ``ee_delta_pose`` arm actually receives: joint position targets (the IK runs on
    the deploying side, so the wire carries joints)."""
    import dataclasses

    from tether.contract import Field
    from tether.sim.robots import panda as P

    field = Field.make("joint_pos_target", 7, "rad", "joint", P.Q_LOW, P.Q_HIGH, P.ARM_JOINTS)
    return dataclasses.replace(contract, actions=(field,), control_mode="joint_position")


def _arm_joint_commands(path: Path, topics: dict[str, str], contract: IOContract, episodes: list,
                        notes: list[str]) -> tuple[IOContract, list]:
    """For an arm driven by end-effector steps, the joint targets it received: the ros2_control command topic
    (one Float64MultiArray of the 7 arm joints per tick), each step taking the last command sent within its
    control period."""
    cmd_topic = next((t for t, ty in topics.items() if ty == "std_msgs/msg/Float64MultiArray"
                      and t.endswith("/commands") and not t.startswith("/tether/")), None)
    if cmd_topic is None:
        raise TetherError(f"bag {str(path)!r}: an ee_delta_pose arm recording needs the joint commands the arm "
                          f"received (a ros2_control .../commands topic); it has {sorted(topics)}")
    msgs = _read_side_topics(path, {cmd_topic: "std_msgs/msg/Float64MultiArray"}).get(cmd_topic, [])
    msgs = [(t, np.asarray(m.data, dtype=float)) for t, m in msgs if len(m.data) >= 7]
    if not msgs:
        raise TetherError(f"bag {str(path)!r}: {cmd_topic} holds no 7-joint commands; expected the arm's targets")
    times = np.array([t for t, _ in msgs], dtype=np.int64)
    values = np.stack([v[:7] for _, v in msgs])
    period = int(round(1e9 / contract.rate_hz))
    joint = arm_joint_contract(contract)
    out = []
    for ep in episodes:
        j = np.searchsorted(times, ep.stamps_ns + period, side="right") - 1
        have = j >= 0
        cmd = values[np.clip(j, 0, None)]
        out.append(RecordedEpisode(ep.obs, cmd, ep.executed & have, ep.stamps_ns))
    notes.append(f"ee_delta_pose: joint targets as sent on {cmd_topic} ({len(msgs)} commands)")
    return joint, out


def _px4_event_timing(path: Path, topics: dict[str, str], contract: IOContract, status_topic: str,
                      goals: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[RecordedEpisode, list[str]] | str:
    """The recording on the vehicle's own clock: which odometry message (one per tick of the vehicle's loop)
    each observation was, when that tick ran, and when each setpoint was sent. Why: the controller's and the
    vehicle's loops are not locked; a setpoint arriving near the vehicle's tick boundary is applied a tick
    early or late whenever either loop is a little late (a loaded machine, a busy flight computer), and a replay
    on the controller's grid mistakes those for dynamics (motor lag fitted 10-20 % off on such recordings).
    Only timestamps are read from the PX4 messages: the states come from the contract's observation, matched to
    their odometry message by the body-rate magnitude (frame-independent). Returns a reason string when the
    bag does not allow it (then the control grid is used)."""
    from tether.data.rosbag_import import FLAT_ACTION_TOPIC, FLAT_OBS_TOPIC

    odo_topic = next((t for t, ty in topics.items() if t.endswith(PX4_ODOMETRY) and ty == PX4_ODOMETRY_TYPE), None)
    sp_topic, sp_type = SETPOINT.get(contract.control_mode, (None, None))
    if odo_topic is None or sp_topic is None:
        return "no vehicle_odometry or setpoint topic"
    sp_topic = status_topic[: -len(PX4_STATUS)] + sp_topic
    if topics.get(sp_topic) != sp_type:
        return f"no {sp_topic}"
    side = _read_side_topics(path, {odo_topic: PX4_ODOMETRY_TYPE, sp_topic: sp_type, status_topic: PX4_STATUS_TYPE,
                                    FLAT_OBS_TOPIC: "std_msgs/msg/Float64MultiArray",
                                    FLAT_OBS_TOPIC + "/stamp": "builtin_interfaces/msg/Time",
                                    FLAT_ACTION_TOPIC: "std_msgs/msg/Float64MultiArray"})
    odo, sps, sts = side.get(odo_topic, []), side.get(sp_topic, []), side.get(status_topic, [])
    obs_m, obs_t, act_m = (side.get(FLAT_OBS_TOPIC, []), side.get(FLAT_OBS_TOPIC + "/stamp", []),
                           side.get(FLAT_ACTION_TOPIC, []))
    if len(odo) < 10 or not sps or len(obs_m) != len(obs_t) or not act_m:
        return "too few messages"
    if len(sps) < len(act_m) - 2 or len(sps) > len(act_m) + 2:
        return f"{len(sps)} setpoints for {len(act_m)} commands"
    lost = max(len(act_m) - len(sps), 0)
    if lost:  # the recording stopped before the last setpoints came back from the wire: their send times are unknown
        obs_m, obs_t, act_m = obs_m[:len(sps)], obs_t[:len(sps)], act_m[:len(sps)]
        # each command is recorded within a millisecond of its setpoint's send time; one lost mid-way shifts the
        # pairs after it by a period
        skew = np.array([t for t, _ in act_m], dtype=np.int64) - np.array([int(m.timestamp) for _, m in sps]) * 1000
        if abs(skew[-1] - np.median(skew)) > 0.5e9 / contract.rate_hz:
            return f"{len(sps)} setpoints for {len(act_m) + lost} commands, one lost before the end"
    if "base_ang_vel" not in {f.name for f in contract.observations}:
        return "the contract does not observe body rates"
    recv = np.array([t for t, _ in odo], dtype=np.int64)
    stamp = np.array([int(m.timestamp) for _, m in odo], dtype=np.int64) * 1000
    if np.any(np.diff(stamp) <= 0):
        return "odometry timestamps not increasing"
    offset = int(np.median(recv - stamp))  # vehicle clock -> command clock (plus the downlink, folded in latency)
    tick = stamp + offset
    wnorm = np.array([np.linalg.norm(np.asarray(m.angular_velocity, dtype=float)) for _, m in odo])
    obs = np.array([np.asarray(m.data, dtype=float) for _, m in obs_m])
    t_obs = np.array([m.sec * 10**9 + m.nanosec for _, m in obs_t], dtype=np.int64)
    obs = _on_first_goal(contract, obs, t_obs, goals)
    sl = contract.obs_slices["base_ang_vel"]
    onorm = np.linalg.norm(obs[:, sl], axis=1)
    # which odometry message each observation is: near the newest the bag had received by then (the bag's
    # receive times can lag the controller's under load), the one with the same body-rate magnitude, the
    # closest to one tick after the previous match when several do
    jj = np.full(len(obs), -1)
    last = -1
    for k in range(len(obs)):
        j0 = int(np.searchsorted(recv, t_obs[k], side="right")) - 1
        cand = np.arange(max(j0 - MATCH_SPAN, 0), min(j0 + MATCH_SPAN + 1, len(odo)))
        cand = cand[np.abs(wnorm[cand] - onorm[k]) <= 1e-5 * max(1.0, onorm[k])]
        cand = cand[cand >= last]
        if len(cand):
            jj[k] = last = int(cand[np.argmin(np.abs(cand - (last + 1)))]) if last >= 0 else int(cand[0])
    seen = jj[jj >= 0]
    if len(seen) < 10 or np.any(np.diff(seen) < 0):
        return "observations do not match the odometry in order"
    g0, g1 = int(seen.min()), int(seen.max())
    G = g1 - g0 + 1  # every tick of the vehicle's loop from the first observed state to the last
    states = np.full((G, obs.shape[1]), np.nan)
    states[jj[jj >= 0] - g0] = obs[jj >= 0]  # a tick read twice keeps one copy; a tick never read stays NaN
    # executed: offboard (armed) when the tick before began, by the vehicle's own status (same clock)
    M = type(sts[0][1]) if sts else None
    s_t = np.array([int(m.timestamp) for _, m in sts], dtype=np.int64) * 1000 + offset
    s_on = np.array([m.nav_state == getattr(M, "NAVIGATION_STATE_OFFBOARD", 14)
                     and m.arming_state == getattr(M, "ARMING_STATE_ARMED", 2) for _, m in sts], bool)
    i = np.searchsorted(s_t, tick[g0:g1], side="right") - 1
    executed = np.where(i >= 0, s_on[np.clip(i, 0, None)], False)
    t0 = tick[g0]
    send = np.array([int(m.timestamp) for _, m in sps[: len(act_m)]], dtype=np.int64) * 1000
    cmds = np.array([np.asarray(m.data, dtype=float) for _, m in act_m])
    if len(cmds) != len(obs):
        return f"{len(cmds)} commands for {len(obs)} observations"
    src = np.where(jj >= 0, (tick[np.clip(jj, 0, None)] - t0) / 1e9, np.nan)  # command k came from obs k
    ep = RecordedEpisode(states, cmds, executed, None, (tick[g0:g1 + 1] - t0) / 1e9, (send - t0) / 1e9, src)
    unread = int(np.sum(~np.isfinite(states[:, 0])))
    notes = [f"timing from the vehicle's own clock ({odo_topic}): {G} ticks of its loop, {unread} of whose "
             f"states the controller never read (not compared, the replay runs through them)",
             f"{int(np.sum(~executed))} of {G - 1} steps before the vehicle was armed in offboard mode "
             f"({status_topic}): it rejected the setpoints; not replayed"]
    if lost:
        notes.append(f"the last {lost} command(s) not in the bag as setpoints (the recording stopped first): "
                     "not replayed")
    return ep, notes


def _load_dataset(path: Path, contract: IOContract | None) -> Recording:
    from tether.data.dataset import Dataset

    ds = Dataset(path)
    c = ds.contract
    if c is None:
        c = contract
        if c is None:
            raise TetherError(f"dataset {str(path)!r} has no tether contract in meta/info.json; pass --contract")
    elif contract is not None:
        diffs = contract_differences(c, contract)
        if diffs:
            raise TetherError(f"dataset {str(path)!r} was recorded with another contract than --contract: "
                              + "; ".join(diffs[:3]))
    space = (ds.info.get("tether") or {}).get("action_space", "normalised")
    if space != "normalised":
        raise TetherError(f"dataset {str(path)!r} stores actions as {space!r}; expected 'normalised'")
    if ds.num_episodes == 0:
        raise TetherError(f"dataset {str(path)!r} has no episodes; expected converted robot recordings")
    out = []
    dropped = 0
    for i, info in enumerate(ds.episodes):
        cols = ds.episode(i)
        obs = np.asarray(cols["observation.state"], dtype=float)
        act = c.to_physical(np.asarray(cols["action"], dtype=float))
        if info.final_observation is not None and info.final_observation.shape == (c.obs_size,):
            obs = np.concatenate([obs, info.final_observation[None]])
        else:  # no observation after the last action: that action's effect is unknown
            act = act[:-1]
            dropped += 1
        if len(act) == 0:
            continue
        out.append(RecordedEpisode(obs, act, np.ones(len(act), bool)))
    notes = ["dataset: no robot mode information (offboard, damp) survives conversion; windows the commands do not "
             "explain are set aside by the fit"]
    if dropped:
        notes.append(f"{dropped} episodes without a final observation lost their last command")
    src = (ds.metadata or {}).get("source")
    return Recording(c, out, f"dataset {path}" + (f" (from {src})" if src else ""), None, notes, mode_known=False)


# ---------------------------------------------------------------------- states by name
def _by_joint_name(field: Any, values: np.ndarray, joints: Sequence[str], what: str) -> np.ndarray:
    comps = tuple(field.components or ())
    if not comps:
        raise TetherError(f"{what} field {field.name!r} has no joint names; sysid matches joints by name")
    unknown = [n for n in comps if n not in joints]
    if unknown:
        raise TetherError(f"{what} field {field.name!r} names joints {unknown} the robot model lacks ({list(joints)})")
    idx = [comps.index(j) for j in joints if j in comps]
    return values[..., idx]


def _rotmat_to_quat(R: np.ndarray) -> np.ndarray:
    import mujoco

    out = np.full((len(R), 4), np.nan)
    for i, r in enumerate(R):
        if not np.all(np.isfinite(r)):
            continue  # a state never read (event timing)
        mujoco.mju_mat2Quat(out[i], np.asarray(r, dtype=float).reshape(9))
        if out[i, 0] < 0:
            out[i] *= -1
    return out


def command_mode(contract: IOContract) -> str:
    """How the robot executes the recorded command (``replay.COMMAND_MODES``)."""
    robot, mode = contract.robot, contract.control_mode
    modes = {("quadrotor", "thrust_body_rates"): "thrust_body_rates", ("quadrotor", "motor_thrust"): "actuator",
             ("arm", "joint_position"): "joint_position", ("legged", "joint_position"): "actuator"}
    if (robot, mode) in modes:
        return modes[(robot, mode)]
    raise TetherError(f"sysid replays joint-level or rotor-level commands; a {robot} recording in control mode "
                      f"{mode!r} is not one (an arm's ee_delta_pose goes through IK the robot does not record)")


def to_trajectories(rec: Recording) -> Any:
    """``sysid.Trajectories`` (closed loop, with the executed mask) from a recording."""
    from tether.calibration.sysid import Trajectories
    from tether.sim.robots import make_robot

    c = rec.contract
    spec = make_robot(c.robot)
    mode = command_mode(c)
    names = {f.name for f in c.observations}
    notes = list(rec.notes)
    goal = rec.goal
    if "pos_error" in names and goal is None:
        goal = DEFAULT_GOAL
        notes.append(f"goal unknown (not in a dataset): positions taken relative to {goal.tolist()}")
    cmds, states, executed, timing = [], [], [], []
    grounded = in_contact = lying = 0
    for ep in rec.episodes:
        timing.append(None if ep.state_times is None else (ep.state_times, ep.command_times, ep.command_sources))
        f = c.split_obs(ep.obs)
        s: dict[str, np.ndarray] = {}
        for fld in c.observations:
            v = np.asarray(f[fld.name], dtype=float)
            if fld.name in ("joint_pos", "joint_vel"):
                s[fld.name] = _by_joint_name(fld, v, spec.joints, "observation")
            elif fld.name == "base_ang_vel" and spec.floating_base:
                s["base_ang_vel"] = v
            elif fld.name == "base_lin_vel" and spec.floating_base and fld.frame == "world":
                s["base_lin_vel"] = v
            elif fld.name == "projected_gravity" and spec.floating_base:
                s["projected_gravity"] = v
            elif fld.name == "base_rotmat":
                s["base_quat"] = _rotmat_to_quat(v.reshape(-1, 3, 3))
            elif fld.name == "pos_error":
                s["base_pos"] = goal[None] - v
        if ep.base_lin_vel_body is not None and spec.floating_base and "base_lin_vel" not in s:
            s["base_lin_vel_body"] = np.asarray(ep.base_lin_vel_body, dtype=float)
        if "base_quat" in s:
            s.pop("projected_gravity", None)
        if not s:
            raise TetherError(f"contract {c.robot}/{c.task} observes no robot state sysid can replay from "
                              f"(fields {sorted(names)})")
        order = ("base_pos", "base_quat", "projected_gravity", "base_lin_vel", "base_lin_vel_body", "base_ang_vel",
                 "joint_pos", "joint_vel")
        states.append({k: s[k] for k in order if k in s})
        a = c.split_action(ep.command)
        if mode == "actuator" and c.robot == "legged" or mode == "joint_position":
            fld = c.field("joint_pos_target")
            cmds.append(_by_joint_name(fld, np.asarray(a[fld.name], dtype=float), spec.joints, "action"))
        else:
            cmds.append(np.asarray(ep.command, dtype=float))
        ran = np.asarray(ep.executed, bool)
        if c.robot == "quadrotor" and "base_pos" in s:  # a vehicle on the ground is not flying on the commands
            low = s["base_pos"][:, 2] < GROUND_CLEARANCE  # (a state the controller never read, NaN, is not)
            flying = ~(low[:-1] | low[1:])
            grounded += int(np.sum(ran & ~flying))
            ran = ran & flying
        if c.robot == "legged" and "projected_gravity" in f:  # fallen over: the replay would stand it on its feet
            up = ~np.asarray(tipped_over(np.asarray(f["projected_gravity"], dtype=float)))
            lying += int(np.sum(ran & ~(up[:-1] & up[1:])))
            ran = ran & up[:-1] & up[1:]
        touching = _touching_objects(c, f)
        if touching is not None:
            in_contact += int(np.sum(ran & touching))
            ran = ran & ~touching
        executed.append(ran)
    if grounded:
        notes.append(f"{grounded} steps with the vehicle under {GROUND_CLEARANCE} m (on the ground, or taking off "
                     "from it): contact, not flight; not replayed")
    if lying:
        notes.append(f"{lying} steps with the robot fallen over (tilted beyond {MAX_TILT:g} rad): lying, not "
                     "standing on its feet as the replay starts it; not replayed")
    if in_contact:
        notes.append(f"{in_contact} steps with the hand within {CONTACT_RANGE} m of an object, or the object moving: "
                     "contact the replay (the robot alone) does not model; not replayed")
    return Trajectories(cmds, states, 1.0 / c.rate_hz, command_mode=mode, executed=executed, closed_loop=True,
                        notes=notes, mode_known=rec.mode_known,
                        timing=timing if any(t is not None for t in timing) else None)


def _touching_objects(contract: IOContract, fields: dict[str, np.ndarray]) -> np.ndarray | None:
    """(T - 1,) bool for a task that observes objects (arm push): transitions where the end effector was within
    ``CONTACT_RANGE`` of one at either end, or the object moved (1 mm or more: something pushed it). The
    replay simulates the robot alone, so its forces on an object it pushes would be read as the robot's own
    dynamics (a push recording's fit put the arm's damping x2.4 and its latency at 100 ms, where the truth was
    x1 and 20 ms). None when the contract observes no object."""
    objects = [name for name in OBJECT_FIELDS if name in fields]
    if not objects or "ee_pos" not in fields:
        return None
    ee = np.asarray(fields["ee_pos"], dtype=float)
    touching = np.zeros(len(ee) - 1, dtype=bool)
    for name in objects:
        pos = np.asarray(fields[name], dtype=float)
        near = np.linalg.norm(ee - pos, axis=1) < CONTACT_RANGE
        moved = np.linalg.norm(np.diff(pos, axis=0), axis=1) >= 1e-3
        touching |= near[:-1] | near[1:] | moved
    return touching


def load_trajectories(paths: str | Path | Sequence[str | Path], *, contract: IOContract | str | Path | None = None,
                      goal: Sequence[float] | None = None) -> tuple[str, Any]:
    """(robot kind, Trajectories) from one or more recordings of the same robot and contract."""
    from tether.calibration.sysid import Trajectories

    plist = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not plist:
        raise TetherError("no recordings given; expected at least one bag or dataset")
    recs = [load_recording(p, contract=contract, goal=goal) for p in plist]
    first = recs[0].contract
    for r in recs[1:]:
        diffs = contract_differences(first, r.contract)
        if diffs:
            raise TetherError(f"{r.source} was recorded with another contract than {recs[0].source}: {diffs[0]}")
    trajs = [to_trajectories(r) for r in recs]
    merged = Trajectories(
        [c for t in trajs for c in t.commands], [s for t in trajs for s in t.states], trajs[0].control_period,
        command_mode=trajs[0].command_mode, executed=[e for t in trajs for e in t.executed], closed_loop=True,
        notes=[f"{r.source}: {n}" for r, t in zip(recs, trajs) for n in t.notes],
        mode_known=all(t.mode_known for t in trajs),
        timing=None if all(t.timing is None for t in trajs) else
        [x for t in trajs for x in (t.timing or [None] * len(t.commands))])
    return first.robot, merged


def identify_recordings(paths: str | Path | Sequence[str | Path], *, contract: IOContract | str | Path | None = None,
                        goal: Sequence[float] | None = None, **identify_kw: Any) -> tuple[Any, Any]:
    """(Trajectories, SysIdResult): the pipeline's one call from deploy bags / datasets to a fit; keyword
    arguments go to ``sysid.identify`` (params, budget, window_s, ...). ``residuals.residual_report(data,
    result)`` then gives the sim-vs-real figures and ``result.dr_preset()`` the DR preset."""
    from tether.calibration.sysid import identify

    robot, data = load_trajectories(paths, contract=contract, goal=goal)
    return data, identify(robot, data, **identify_kw)
