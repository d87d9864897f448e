"""The batched simulation core: N randomised worlds of one robot and task, stepped together in this process.

A step is a fixed sequence of array operations over the whole batch: clip the normalised actions, limit how
fast each command moves as the deploy guard does (``full_range_s``), delay them by each world's sampled
latency, map them to physical units through the contract, let the task actuate (the backend steps every world
at once), read the observation and privileged fields, score the step with
the task's objective, add each world's sensor noise and bias, and, for the worlds whose episode ended, keep
the final observation, decide success by the task's rule over the episode's metrics and reset them in the
same step (``autoreset``). No Python runs per world except resets and per-world random draws.

Seeding rule (the one every executor and the single env share): world ``i`` of a batch reset with seed ``s``
draws from ``numpy.random.default_rng(s + i)`` for its whole life, autoresets included, so the single env
seeded ``s + i`` replays world ``i`` exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tether.contract import FULL_RANGE_S, GAIT_CLOCK, LAST_ACTION, IOContract, full_range_step
from tether.errors import TetherError
from tether.sim.backends import make_batch
from tether.sim.randomization import (
    MODEL_TARGETS, DRTerm, Randomizer, centre_scale, max_latency_steps, min_latency_steps, terms_from_file,
)
from tether.sim.robots import make_robot
from tether.sim.tasks import make_task
from tether.sim.tasks.base import PendingCommands

PUSH_DURATION_S = 0.1


def resolve_dr(dr: str | Sequence[DRTerm] | None, presets: Mapping[str, list[DRTerm]], robot: str) -> list[DRTerm]:
    """A preset name, a path to a JSON list of terms, or the terms themselves."""
    if dr is None:
        return []
    if isinstance(dr, str):
        if dr in presets:
            return list(presets[dr])
        if dr.endswith(".json"):
            from pathlib import Path

            return terms_from_file(Path(dr))  # bounded, typed, finite; names the file and the field
        raise TetherError(
            f"unknown DR preset {dr!r} for robot {robot}; expected one of {', '.join(presets)} or a .json file"
        )
    return [t if isinstance(t, DRTerm) else DRTerm.from_dict(t) for t in dr]


@dataclass
class VecStep:
    """One batched step. Rows of ``final_*`` equal the returned ones where no episode ended."""

    obs: np.ndarray  # (N, obs) float32: the observation to act on next (first of a new episode where done)
    reward: np.ndarray  # (N,) float32
    terminated: np.ndarray  # (N,) bool
    truncated: np.ndarray  # (N,) bool
    final_obs: np.ndarray  # (N, obs) float32: the observation the step produced (bootstrap from it)
    privileged: np.ndarray | None  # (N, P) float32, matching obs
    final_privileged: np.ndarray | None  # (N, P) float32, matching final_obs
    success: np.ndarray  # (N,) bool: the task's success rule, where an episode ended
    episode_return: np.ndarray  # (N,) where an episode ended
    episode_length: np.ndarray  # (N,) int, where an episode ended
    metrics: dict[str, np.ndarray]  # the task's per-step metrics, (N,) each

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated

    def finished(self) -> list[dict[str, Any]]:
        """{"return", "length", "success"} of each episode that ended this step."""
        return [{"return": float(self.episode_return[i]), "length": int(self.episode_length[i]),
                 "success": bool(self.success[i])} for i in np.nonzero(self.done)[0]]


class SimCore:
    """N worlds of ``robot``/``task`` on ``backend`` under DR ``dr``, stepped as one batch in-process.

    ``full_range_s``: the command sent each step moves at most its range times ``1 / (rate * full_range_s)``
    from the last one sent, the deploy guard's default rate limit (``contract.FULL_RANGE_S``), so a policy
    learns on the commands a robot receives (None: commands jump freely; end-effector deltas are never
    shaped, the guard limits the joint targets they become). The ``last_action`` observation is the policy's
    own action, as the deploy loop feeds it back."""

    def __init__(self, robot: str, task: str, n: int = 1, backend: str = "mujoco",
                 dr: str | Sequence[DRTerm] | None = "none", control_mode: str | None = None,
                 threads: int | None = None, autoreset: bool = True, full_range_s: float | None = FULL_RANGE_S,
                 **task_kwargs: Any) -> None:
        if int(n) < 1:
            raise TetherError(f"a batch needs at least 1 world; got {n}")
        if full_range_s is not None and not (isinstance(full_range_s, (int, float)) and np.isfinite(full_range_s)
                                             and full_range_s > 0):
            raise TetherError(f"full_range_s {full_range_s!r}; expected a number of seconds > 0, or None")
        self.n = int(n)
        self.robot_spec = make_robot(robot)
        self.task = make_task(robot, task, self.robot_spec, n=self.n, control_mode=control_mode, **task_kwargs)
        self.contract: IOContract = self.task.contract
        self.dr_terms = resolve_dr(dr, self.robot_spec.dr_presets, robot)
        self.sim = make_batch(backend, self.robot_spec, self.task.scene(), self.n, threads=threads)
        self.backend = backend
        self.autoreset = autoreset
        c = self.contract
        self._substeps = self.robot_spec.substeps
        self._rate = self.robot_spec.control_rate_hz
        self._dr = Randomizer(self.dr_terms, self.sim, c.obs_size)
        self._ep = self._dr.episode
        self._neutral = np.clip(c.to_normalised(self.task.neutral_action()), -1.0, 1.0)
        self._max_latency = max_latency_steps(self.dr_terms)
        self._min_latency = min_latency_steps(self.dr_terms)
        self.task.model_scale = {t: centre_scale(self.dr_terms, t) for t in MODEL_TARGETS}
        self._history = np.tile(self._neutral, (self.n, self._max_latency + 1, 1))
        # the command last sent (normalised) and how far one step may move it (span 2 in normalised units)
        self.sent = np.tile(self._neutral, (self.n, 1))
        # an end-effector delta is not what the robot receives: the guard limits the joint targets after IK
        # (the task's IK already bounds their speed), so only command-space actions are shaped here
        shaped = full_range_s is not None and c.control_mode != "ee_delta_pose"
        self._max_step = float(full_range_step(2.0, self._rate, full_range_s)) if shaped else np.inf
        self.last_action = np.tile(self._neutral, (self.n, 1))
        self._has_last_action = LAST_ACTION in c.obs_slices
        self._has_clock = GAIT_CLOCK in c.obs_slices
        self._has_priv = bool(c.privileged)
        self._rngs: list[np.random.Generator] = [np.random.default_rng() for _ in range(self.n)]
        self._prev: dict[str, np.ndarray] = {}
        self._priv: np.ndarray | None = None
        self._ep_return = np.zeros(self.n)
        self._metrics: dict[str, np.ndarray] = {}
        self._push_until = np.full(self.n, -1, dtype=np.int64)
        self._push_periods = [max(1, int(round(t.interval_s * self._rate))) if t.interval_s else self.task.max_steps
                              for t in self._ep.push_terms]
        self._started = False

    # ------------------------------------------------------------------ reset
    def reset(self, seeds: Sequence[int | None] | int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Start a new episode in every world; ``seeds``: one per world, or an int ``s`` (world i: ``s + i``)."""
        if isinstance(seeds, (int, np.integer)):
            seeds = [int(seeds) + i for i in range(self.n)]
        if seeds is not None:
            if len(seeds) != self.n:
                raise TetherError(f"reset got {len(seeds)} seeds for {self.n} worlds")
            # a world given no seed keeps drawing from its generator
            self._rngs = [self._rngs[i] if s is None else np.random.default_rng(s) for i, s in enumerate(seeds)]
        ids = np.arange(self.n)
        obs, priv = self._reset(ids)
        self._started = True
        return obs, priv

    def _reset(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        rngs = [self._rngs[i] for i in ids]
        self._dr.on_reset(ids, rngs)
        self.task.reset(self.sim, ids, rngs)
        self.sim.set_external_force(ids, np.zeros((len(ids), 3)))
        self._push_until[ids] = -1
        self._history[ids] = self._neutral
        self.sent[ids] = self._neutral
        self.last_action[ids] = self._neutral
        self._ep_return[ids] = 0.0
        fields = self._observe()
        if not self._prev:
            self._prev = {k: v.copy() for k, v in fields.items()}
        else:
            for k, v in fields.items():
                self._prev[k][ids] = v[ids]
        return self._flatten(fields, ids)

    # ------------------------------------------------------------------ step
    def step(self, actions: np.ndarray) -> VecStep:
        if not self._started:
            raise TetherError("step() before reset(); call reset() first")
        c = self.contract
        a = np.asarray(actions, dtype=np.float64)
        if a.shape != (self.n, c.action_size):
            raise TetherError(f"actions have shape {a.shape}; expected ({self.n}, {c.action_size})")
        if not np.isfinite(a).all():  # a NaN command holds still (the neutral action), as the guard would
            a = np.where(np.isnan(a), self._neutral, a)
        a = np.minimum(np.maximum(a, -1.0), 1.0)
        self.sent = a if self._max_step == np.inf else np.clip(a, self.sent - self._max_step,
                                                              self.sent + self._max_step)
        if self._max_latency:
            self._history[:, 1:] = self._history[:, :-1]
            self._history[:, 0] = self.sent
            applied = self._history[np.arange(self.n), self._ep.latency_steps]
        else:
            applied = self.sent
        steps = self.task.steps
        if self._ep.push_terms:
            self._pushes(steps)
        self._dr.on_step(steps, self._rngs, self._rate)
        physical = c.to_physical(applied)
        self.task.actuate(self.sim, physical, self._substeps)
        self.last_action = a
        fields = self._observe()
        res = self.task.evaluate(self.sim, self._prev, fields, physical)
        self._prev = fields
        obs, priv = self._flatten(fields, None)
        steps = self.task.steps
        term = res.terminated
        trunc = (steps >= self.task.max_steps) & ~term
        done = term | trunc
        self._ep_return += res.reward
        self._record(res.metrics, steps)
        success = np.zeros(self.n, dtype=bool)
        ep_return = self._ep_return.copy()
        ep_len = steps.copy()
        final_obs, final_priv = obs, priv
        if done.any():
            ids = np.nonzero(done)[0]
            for i in ids:
                series = {k: v[i, : steps[i]] for k, v in self._metrics.items()}
                success[i] = self.task.success(series, bool(term[i]))
            if self.autoreset:
                final_obs = obs.copy()
                final_priv = None if priv is None else priv.copy()
                new_obs, new_priv = self._reset(ids)
                obs[ids] = new_obs[ids]
                if priv is not None:
                    priv[ids] = new_priv[ids]
        return VecStep(obs, res.reward.astype(np.float32), term, trunc, final_obs, priv, final_priv, success,
                       ep_return, ep_len, res.metrics)

    # ------------------------------------------------------------------ helpers
    def _observe(self) -> dict[str, np.ndarray]:
        fields = self.task.observe(self.sim)
        if self._has_last_action:
            fields[LAST_ACTION] = self.last_action.copy()
        if self._has_priv:
            fields.update(self.task.privileged(self.sim))
        return fields

    def _flatten(self, fields: Mapping[str, np.ndarray], ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Observation (+ noise, bias) and privileged vectors for every world; noise is drawn for ``ids`` only
        (None: all), from each world's own generator."""
        c, ep = self.contract, self._ep
        if self._has_clock:  # the ticks each world's episode has run, as the control loop counts them
            fields = {**fields, GAIT_CLOCK: c.gait_clock(self.task.steps)}
        obs = c.flatten_obs(fields)
        noisy = np.nonzero(ep.obs_noise_std > 0)[0] if ids is None else ids[ep.obs_noise_std[ids] > 0]
        for w in noisy:
            obs[w] += self._rngs[w].normal(0.0, ep.obs_noise_std[w], c.obs_size)
        obs = (obs + ep.obs_bias).astype(np.float32)
        priv = c.flatten_privileged(fields).astype(np.float32) if self._has_priv else None
        return obs, priv

    def _record(self, metrics: Mapping[str, np.ndarray], steps: np.ndarray) -> None:
        """Keep each world's per-step metrics for the episode's success rule."""
        if not self._metrics:
            self._metrics = {k: np.zeros((self.n, self.task.max_steps + 1), dtype=np.asarray(v).dtype)
                             for k, v in metrics.items()}
        col = np.minimum(steps - 1, self.task.max_steps)
        rows = np.arange(self.n)
        for k, v in metrics.items():
            self._metrics[k][rows, col] = v

    def _pushes(self, steps: np.ndarray) -> None:
        """Horizontal shoves of the base (DR ``push``): each term every its interval, lasting PUSH_DURATION_S."""
        ending = np.nonzero(steps == self._push_until)[0]
        if len(ending):
            self.sim.set_external_force(ending, np.zeros((len(ending), 3)))
        for term, period in zip(self._ep.push_terms, self._push_periods):
            due = np.nonzero((steps > 0) & (steps % period == 0))[0]
            if not len(due):
                continue
            force = np.empty((len(due), 3))
            for k, w in enumerate(due):
                rng = self._rngs[w]
                magnitude = float(term.sample(rng, 1)[0])
                angle = rng.uniform(0, 2 * np.pi)
                force[k] = magnitude * np.array([np.cos(angle), np.sin(angle), 0.0])
            self.sim.set_external_force(due, force)
            self._push_until[due] = steps[due] + max(1, int(round(PUSH_DURATION_S * self._rate)))

    # ------------------------------------------------------------------ extras
    def expert_action(self) -> np.ndarray:
        """The task's scripted expert actions (N, n_action) for the current states, normalised to [-1, 1].

        The expert is shown the commands still queued, but only as many as every episode of this DR queues (its
        latency's lower bound), not the latency each world drew: a label that depends on a draw the policy cannot
        see is one a student cannot learn. Push demonstrations by an expert shown each world's own queue, under
        the wide DR's 0-2 steps, cloned into a policy that pushed 40 % of 40 nominal episodes; the expert shown none,
        92 %. Under a fixed latency (an identified robot's) the labels are learnable, and predicting through the
        queue is what makes the expert fast there (benchmarks/RESULTS.md, "Push with an expert that predicts
        through the latency queue")."""
        floor = self._min_latency
        pending = None if not floor else PendingCommands(self.contract.to_physical(self._history[:, :floor]))
        phys = self.task.expert(self.sim, pending)
        if phys is None:
            raise TetherError(f"task {self.task.robot_name}/{self.task.name} has no scripted expert")
        return np.clip(self.contract.to_normalised(phys), -1.0, 1.0).astype(np.float32)

    def render(self, world: int = 0, width: int = 320, height: int = 240) -> np.ndarray:
        return self.sim.render(world, width, height)

    def close(self) -> None:
        self.sim.close()
