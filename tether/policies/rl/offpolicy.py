"""The one off-policy loop: collect from batched envs into a replay buffer, then learn at a fixed
update-to-data ratio. SAC, RLPD, H2O and MBPO plug their pieces into it.

Why one loop: the algorithms differ in *what* they learn from (online data only, online + offline, real +
simulated weighted by a dynamics gap, real + imagined) and *how* one update goes, not in the loop. Each
supplies ``act`` (the exploration policy), ``learn`` (one gradient update, sampling its own sources with
:func:`tether.policies.buffers.mix`) and optionally ``observe`` (after each collection: normaliser updates,
model fitting and imagined rollouts, actor-freeze bookkeeping). Steps count env transitions: a collection
over N envs is N steps and is followed by ``utd * N`` updates once ``learning_starts`` steps are in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tether.policies.buffers import ReplayBuffer
from tether.sim.core import VecStep


@dataclass
class LoopStats:
    """What the loop did so far, for logging and for the learners' own schedules (``observe`` sees it)."""

    steps: int = 0  # env steps, summed over the vector's envs
    updates: int = 0  # learn() calls
    env_time_s: float = 0.0  # acting, stepping and storing
    update_time_s: float = 0.0  # learning
    episodes: list[dict[str, Any]] = field(default_factory=list)  # every finished episode, in order
    metrics: dict[str, float] = field(default_factory=dict)  # the last update's


def run_offpolicy(
    venv: Any,
    total_steps: int,
    *,
    act: Callable[[np.ndarray], np.ndarray],
    learn: Callable[[], dict[str, float]],
    buffer: ReplayBuffer,
    seed: int = 0,
    learning_starts: int = 0,
    utd: float = 1.0,
    observe: Callable[[np.ndarray, np.ndarray, VecStep, LoopStats], None] | None = None,
    log: Callable[[LoopStats, list[dict[str, Any]]], None] | None = None,
    log_every: int | None = None,
) -> LoopStats:
    """Run ``total_steps`` env steps; ``observe(obs, action, step, stats)`` after each collection,
    ``log(stats, finished_since_last_log)`` every ``log_every`` steps and at the end."""
    rng = np.random.default_rng(seed + 1)
    n = venv.num_envs
    low, high = -1.0, 1.0
    action_size = venv.single_action_space.shape[0]
    obs, _ = venv.reset_batch(seed)
    stats = LoopStats()
    log_every = log_every or max(min(1000, total_steps // 10), n, 1)
    next_log, since_log = log_every, []
    debt = 0.0
    while stats.steps < total_steps:
        t0 = time.perf_counter()
        if stats.steps < learning_starts:
            action = rng.uniform(low, high, size=(n, action_size)).astype(np.float32)
        else:
            action = np.asarray(act(obs), dtype=np.float32)
        res = venv.step_batch(action)
        buffer.add(obs, action, res.reward, res.final_obs, res.terminated)
        if observe is not None:
            observe(obs, action, res, stats)
        obs = res.obs
        stats.steps += n
        finished = res.finished()
        stats.episodes.extend(finished)
        since_log.extend(finished)
        t1 = time.perf_counter()
        if stats.steps >= learning_starts:
            debt += utd * n
            while debt >= 1.0:
                stats.metrics = learn()
                stats.updates += 1
                debt -= 1.0
        t2 = time.perf_counter()
        stats.env_time_s += t1 - t0
        stats.update_time_s += t2 - t1
        if log is not None and (stats.steps >= next_log or stats.steps >= total_steps):
            next_log += log_every
            log(stats, since_log)
            since_log = []
    return stats


def episode_metrics(stats: LoopStats, finished: list[dict[str, Any]]) -> dict[str, float]:
    """The last update's metrics plus rollout and timing figures, for a TrainingRun's log."""
    m = dict(stats.metrics)
    if finished:
        m["rollout/return_mean"] = float(np.mean([e["return"] for e in finished]))
        m["rollout/success_rate"] = float(np.mean([e["success"] for e in finished]))
    m["time/env_steps_per_s"] = stats.steps / max(stats.env_time_s, 1e-9)
    m["time/updates_per_s"] = stats.updates / max(stats.update_time_s, 1e-9)
    return m
