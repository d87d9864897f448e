"""A deploy bag read back as what the robot did: from when it followed the policy, against which goal, with the
task's reward and termination.

Why here (``data``, below policies, calibration and the pipeline): the pipeline scores and fine-tunes on these
runs, identification replays them against the goal each observation was made against, and ``tether finetune
--algo robot-rl`` learns from them on a real robot; one reading serves all three. Bags are read with
``rosbags`` and the standard typestore (only standard message types are read here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tether.contract import IOContract
from tether.errors import TetherError


@dataclass
class Episode:
    """One robot (or simulated) episode as a learner sees it: ``obs[t + 1]`` followed ``action[t]``."""

    obs: np.ndarray  # (T + 1, obs) physical units, the contract's order
    action: np.ndarray  # (T, A) normalised, as executed (after the guard)
    reward: np.ndarray  # (T,)
    terminal: bool = False  # ended in a terminal state (a crash): no bootstrap from obs[-1]

    def __post_init__(self) -> None:
        self.obs = np.asarray(self.obs, np.float32)
        self.action = np.asarray(self.action, np.float32)
        self.reward = np.asarray(self.reward, np.float32).reshape(-1)
        t = len(self.action)
        if self.obs.ndim != 2 or self.action.ndim != 2 or len(self.obs) != t + 1 or len(self.reward) != t:
            raise TetherError(f"episode has obs {self.obs.shape}, actions {self.action.shape}, rewards "
                              f"{self.reward.shape}; expected (T+1, obs), (T, A), (T,)")

    def __len__(self) -> int:
        return len(self.action)


@dataclass
class ControlledRun:
    """A recorded episode from when the robot first followed the policy (see :func:`controlled_run`)."""

    obs: np.ndarray  # (T, obs)
    goal: np.ndarray | None = None  # (T, 3) the goal current at each observation (/tether/goal); None: none heard
    goal_moves: np.ndarray | None = None  # (T,) goal moves heard since the recording began (a mission's waypoints)
    state: dict[str, np.ndarray] | None = None  # fields beyond the observation at each one (T, k), e.g. odometry's


def odometry_state(contract: IOContract, t_obs: np.ndarray, msgs: list[tuple[int, Any]]) -> dict[str, np.ndarray]:
    """The base's body-frame velocity at each observation from recorded nav_msgs/Odometry (the newest heard by
    the observation's log time, else the first), for a contract that does not observe it; {} without odometry.
    Why: a legged robot's LowState has no base velocity, and velocity tracking is scored on it."""
    if not msgs or "base_lin_vel" in contract.obs_slices:
        return {}
    t = np.array([ts for ts, _ in msgs], dtype=np.int64)
    v = np.array([[m.twist.twist.linear.x, m.twist.twist.linear.y, m.twist.twist.linear.z] for _, m in msgs])
    return {"base_lin_vel": v[np.clip(np.searchsorted(t, t_obs, side="right") - 1, 0, None)]}


def goal_track(msgs: list[tuple[int, Any]]) -> tuple[np.ndarray, np.ndarray] | None:
    """The recorded goal over time from ``(receive time ns, PointStamped)`` pairs: (times, (K, 3) points), None
    when the bag has none."""
    if not msgs:
        return None
    return (np.array([t for t, _ in msgs], dtype=np.int64),
            np.array([[m.point.x, m.point.y, m.point.z] for _, m in msgs], dtype=float))


def goal_moves(points: np.ndarray) -> np.ndarray:
    """(K,) how often a recorded goal track's (K, 3) points had moved by each message (a mission's waypoints)."""
    return np.concatenate([[0], np.cumsum(np.any(np.diff(points, axis=0) != 0, axis=1))])


def goals_made_against(contract: IOContract, obs: np.ndarray, t_obs: np.ndarray,
                       goals: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Which goal of a recorded goal track (``goal_track``) each observation was made against: (T,) the index
    of that goal among the track's distinct goals in order (= the goal moves heard by then), and those (G, 3)
    goals.

    The goal current at the observation's stamp, or, next to a move, the one before or after it if that keeps
    the vehicle's position (goal - ``pos_error``) continuous. Why: observation stamps are on the control grid and
    goal times are the bag's receive times; on a loaded machine they drift a tick apart, and an observation at a
    move was paired with the other waypoint (a 0.9 m jump in a CI run). Without ``pos_error`` in the contract,
    by time alone."""
    t, pts = goals
    moves = goal_moves(pts)
    start = np.searchsorted(moves, np.arange(moves[-1] + 1))  # each distinct goal's first message
    seg_t, seg = t[start], pts[start]
    at = np.clip(np.searchsorted(seg_t, t_obs, side="right") - 1, 0, None)
    if "pos_error" not in contract.obs_slices:
        return at, seg
    err = np.asarray(obs, dtype=float)[:, contract.obs_slices["pos_error"]]
    held = np.empty(len(err), dtype=np.int64)
    j, prev = 0, None
    for k in range(len(err)):
        cands = np.arange(max(j, at[k] - 1), min(max(j, at[k] + 1), len(seg) - 1) + 1)
        j = int(at[k]) if prev is None else int(cands[np.argmin(np.linalg.norm(seg[cands] - err[k] - prev, axis=1))])
        held[k], prev = j, seg[j] - err[k]
    return held, seg


def _messages(bag: Path, topics: set[str]) -> dict[str, list[tuple[int, Any]]]:
    """(log time ns, message) per topic, in log order."""
    from tether.bag_names import resolve_bag
    from tether.data.rosbag_import import default_typestore, read_topics

    msgs, _ = read_topics([resolve_bag(bag)], topics, default_typestore())
    return msgs


def control_since(bag: Path) -> int:
    """When (bag time, ns) the robot first followed the policy: the deploy records on the control topic that a
    PX4 vehicle ignored setpoints until offboard engaged; 0 when it followed from the start."""
    from tether.data.topics import CONTROL_TOPIC

    return _control_since(_messages(bag, {CONTROL_TOPIC})[CONTROL_TOPIC])


def _control_since(control: list[tuple[int, Any]]) -> int:
    """:func:`control_since` from the control topic's (log time ns, String) messages."""
    if control and control[0][1].data.startswith("not in control"):
        back = [t for t, m in control[1:] if m.data.startswith("control back")]
        return back[0] if back else 0
    return 0


def controlled_run(bag: Path, contract: IOContract) -> ControlledRun:
    """The recorded observations from when the robot first followed the policy: a PX4 vehicle ignores setpoints
    until offboard engages (its own hold controller flies it until then), which the deploy records on the
    control topic; what happens before that is not the policy's doing. Later losses of control stay in. With
    them, the goal each observation was made against and how often it had moved: the crash height and a
    mission's waypoints are scored on those (a mission may move the goal at the handover, before the first
    observation kept here)."""
    from tether.data.topics import CONTROL_TOPIC, GOAL_TOPIC, OBS_TOPIC, ODOM_TOPIC

    msgs = _messages(bag, {OBS_TOPIC, GOAL_TOPIC, CONTROL_TOPIC, ODOM_TOPIC})
    since = _control_since(msgs[CONTROL_TOPIC])
    obs_arr = np.array([np.asarray(m.data) for _, m in msgs[OBS_TOPIC]])
    t_obs = np.array([t for t, _ in msgs[OBS_TOPIC]], dtype=np.int64)
    first = int(np.searchsorted(t_obs, since)) if since else 0
    if len(obs_arr) - first < 2:
        first = 0
    state = odometry_state(contract, t_obs[first:], msgs[ODOM_TOPIC]) or None
    track = goal_track(msgs[GOAL_TOPIC])
    if track is None:
        return ControlledRun(obs_arr[first:], state=state)
    held, goals = goals_made_against(contract, obs_arr[first:], t_obs[first:], track)
    return ControlledRun(obs_arr[first:], goals[held], held, state)


def robot_episodes(bag: Path, contract: IOContract) -> list[Episode]:
    """The bag's episodes on the control grid, from when the robot first followed the policy (a PX4 vehicle
    flies itself until offboard engages) and was first clear of the task's terminal state (a vehicle handed over
    on the ground has not crashed, as the task's own scoring says), with the task's reward and termination
    (judged against the goal each observation was made against, where the bag recorded one); an episode ends at
    its first terminal transition after that (a crash), as a sim episode would."""
    from tether.data.rosbag_import import align_bag
    from tether.data.topics import CONTROL_TOPIC, GOAL_TOPIC
    from tether.sim.tasks.scoring import transition_outcomes

    side = _messages(bag, {CONTROL_TOPIC, GOAL_TOPIC})
    since = _control_since(side[CONTROL_TOPIC])
    track = goal_track(side[GOAL_TOPIC])
    period_ns = int(round(1e9 / contract.rate_hz))
    out = []
    for ep in align_bag(bag, contract, "flat"):
        keep = ep.stamps_ns >= since
        if keep.sum() < 2:
            continue
        obs = np.concatenate([ep.obs[keep], ep.final_obs[None]])
        act = ep.action[keep]
        goal_z = None
        if track is not None:  # the goal each observation was made against (a mission moves it)
            stamps = np.concatenate([ep.stamps_ns[keep], ep.stamps_ns[-1:] + period_ns])
            held, goals = goals_made_against(contract, obs, stamps, track)
            goal_z = goals[held][1:, 2]
        reward, terminated = transition_outcomes(contract, obs[:-1], contract.to_physical(act), obs[1:],
                                                 goal_z=goal_z)
        clear = np.flatnonzero(~terminated)
        if clear.size == 0:
            continue  # never clear of the terminal state (a vehicle that never left the ground)
        s = int(clear[0])  # a vehicle handed over on the ground starts "crashed": the episode starts once it is not
        hit = np.flatnonzero(terminated[s:])
        t = s + (int(hit[0]) + 1 if hit.size else len(act) - s)
        out.append(Episode(obs[s: t + 1], act[s:t], reward[s:t], terminal=bool(hit.size)))
    return out


def read_robot_episodes(bags: Sequence[Path], contract: IOContract,
                        skipped: Callable[[Path, str], None] | None = None) -> list[Episode]:
    """:func:`robot_episodes` of every bag in order; a bag that cannot be read (a robot restarted mid-episode, a
    recording torn by a kill) goes to ``skipped(bag, why)`` and is left out: one bad bag costs its episode, not
    the data of all the others."""
    out: list[Episode] = []
    for bag in bags:
        try:
            out += robot_episodes(bag, contract)
        except TetherError as exc:
            if skipped is None:
                raise
            skipped(Path(bag), str(exc))
    return out


def bags_under(path: str | Path) -> list[Path]:
    """The bags ``path`` names: itself when it is a bag, else the bags directly inside the folder, in name order
    (one per deploy: ``tether deploy --record bags/rl-3``). Symbolic links are refused, not followed."""
    from tether.bag_names import is_bag, resolve_bag

    p = Path(path)
    if p.is_symlink():
        raise TetherError(f"robot data {str(p)!r} is a symbolic link; expected the bag or folder itself")
    if is_bag(resolve_bag(p)):
        return [resolve_bag(p)]
    if not p.is_dir():
        raise TetherError(f"robot data {str(p)!r} is neither a rosbag2 bag nor a folder of bags")
    bags = sorted(c for c in p.iterdir() if not c.is_symlink() and is_bag(c))
    if not bags:
        raise TetherError(f"robot data {str(p)!r} holds no rosbag2 bag; expected the bags of tether deploy --record "
                          f"(a folder with metadata.yaml each, or .mcap files)")
    return bags


__all__ = ["ControlledRun", "Episode", "bags_under", "control_since", "controlled_run", "goal_moves", "goal_track",
           "goals_made_against", "read_robot_episodes", "robot_episodes"]
