"""A task's objective applied to recorded data: rewards for transitions, scores for whole episodes.

Why here: a run on a served or real robot, a bag converted to a dataset and a world model's imagined rollout
are scored by the same function the simulator's env uses (``Task.objective``) and the same success rule
(``Task.success``), looked up from the contract the data carries, so "success" means one thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from tether.contract import IOContract
from tether.errors import TetherError
from tether.sim.robots import make_robot
from tether.sim.tasks import TASKS, make_task


@lru_cache(maxsize=32)
def _task(robot: str, task: str, control_mode: str, terrain: str | None) -> Any:
    kwargs = {"terrain": terrain} if terrain else {}
    return make_task(robot, task, make_robot(robot), n=1, control_mode=control_mode, **kwargs)


def task_for(contract: IOContract) -> Any:
    """The task (over one world) whose contract this is: its objective and success rule."""
    if (contract.robot, contract.task) not in TASKS:
        known = ", ".join(f"{r}/{t}" for r, t in TASKS)
        raise TetherError(f"no task {contract.robot}/{contract.task} to score this data with; expected one of {known}")
    return _task(contract.robot, contract.task, contract.control_mode, contract.metadata.get("terrain"))


def transition_outcomes(contract: IOContract, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray, *,
                        goal_z: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The task's reward and termination for recorded transitions (obs, physical action, next obs): (T,), (T,)
    bool. Why termination too: a robot keeps recording after a crash that would have ended a sim episode, and
    a learner must not bootstrap through it. ``goal_z`` (T,): the recorded goal's height at each next
    observation, for tasks that judge a crash by height above ground (a mission's waypoints move it)."""
    task = task_for(contract)
    ctx = task.default_context()
    if goal_z is not None and "goal_z" in ctx:
        ctx["goal_z"] = np.asarray(goal_z, np.float64)
    reward, terminated, _ = task.objective(contract.split_obs(np.asarray(obs, np.float64)),
                                           np.asarray(action, np.float64),
                                           contract.split_obs(np.asarray(next_obs, np.float64)), ctx)
    n = len(obs)
    return (np.broadcast_to(np.asarray(reward, np.float32), (n,)).copy(),
            np.broadcast_to(np.asarray(terminated, bool), (n,)).copy())


def transition_rewards(contract: IOContract, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
    """The task's reward for recorded transitions (obs, physical action, next obs), (T,)."""
    return transition_outcomes(contract, obs, action, next_obs)[0]


@dataclass
class EpisodeScore:
    error: np.ndarray  # the task's tracking error per control step (task units, e.g. m)
    success: bool  # the task's own success rule
    final_error: float  # mean error over the last second
    terminated: bool  # the task ended the episode early (a crash, a fall)


def score_episode(contract: IOContract, obs: np.ndarray, action: np.ndarray | None = None, *,
                  goal: np.ndarray | None = None, goal_moves: np.ndarray | None = None,
                  state: dict[str, np.ndarray] | None = None) -> EpisodeScore:
    """Score one recorded episode (its observations in order, (T, obs), and optionally its physical actions).

    ``goal`` (T, 3): the goal each observation was made against, where the recording has it (a bag's
    ``/tether/goal``): tasks whose objective needs it (a quadrotor's height above ground is goal height minus
    error) use it instead of their default; ``goal_moves`` (T,): how often it had moved by then (a waypoint
    mission's count); ``state``: fields the recording has beyond the observation, (T, k) each (a legged robot's
    base velocity from its odometry, which velocity tracking is scored on)."""
    obs = np.asarray(obs, np.float64)
    if obs.ndim != 2 or len(obs) < 2:
        raise TetherError(f"recorded run has {len(obs)} observations; expected at least two control steps")
    task = task_for(contract)
    f = contract.split_obs(obs)
    for k, v in (state or {}).items():
        v = np.asarray(v, np.float64)
        if len(v) != len(obs):
            raise TetherError(f"recorded {k} has {len(v)} samples for {len(obs)} observations; expected one each")
        f.setdefault(k, v.reshape(len(obs), -1))
    act = np.zeros((len(obs) - 1, contract.action_size)) if action is None else np.asarray(action, np.float64)[:-1]
    ctx = task.default_context()
    if goal is not None and "goal_z" in ctx:
        ctx["goal_z"] = np.asarray(goal, np.float64)[1:, 2]
    _, terminated, metrics = task.objective({k: v[:-1] for k, v in f.items()}, act,
                                            {k: v[1:] for k, v in f.items()}, ctx)
    if goal_moves is not None:
        metrics["goal_moves"] = np.asarray(goal_moves)[1:]
    metrics = {k: np.broadcast_to(np.asarray(v), (len(obs) - 1,)) for k, v in metrics.items()}
    error = np.asarray(metrics[task.error_metric], np.float64)
    tail = error[-max(1, int(round(contract.rate_hz))):]
    ended = bool(np.any(terminated))
    return EpisodeScore(error, task.success(metrics, ended), float(tail.mean()), ended)


def error_label(contract: IOContract) -> str:
    """What :attr:`EpisodeScore.error` measures, with units, for plots and reports."""
    try:
        return task_for(contract).error_label
    except TetherError:
        return "error"
