"""The Gymnasium env that composes a robot, a task, a physics backend and domain randomisation.

Spaces come from the task's IOContract: observations are the flat contract vector (physical units),
actions are normalised to [-1, 1] and mapped to physical units by the contract before the task applies
them. Action latency, observation noise/bias and pushes from the DR terms are applied here, around the
task, so every task and backend gets them the same way. ``last_action`` (if the contract has it) is the
normalised action the policy emitted on the previous step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from tether.errors import TetherError
from tether.sim.backends import make_backend
from tether.sim.randomization import DRTerm, EpisodeDR, Randomizer, terms_from_json
from tether.sim.robots import make_robot
from tether.sim.tasks import make_task

PUSH_DURATION_S = 0.1


def resolve_dr(dr: str | Sequence[DRTerm] | None, presets: dict[str, list[DRTerm]], robot: str) -> list[DRTerm]:
    """A preset name, a path to a JSON list of terms, or the terms themselves."""
    if dr is None:
        return []
    if isinstance(dr, str):
        if dr in presets:
            return list(presets[dr])
        if dr.endswith(".json"):
            from pathlib import Path

            path = Path(dr)
            if not path.exists():
                raise TetherError(f"DR file {dr} does not exist")
            return terms_from_json(path.read_text())
        raise TetherError(
            f"unknown DR preset {dr!r} for robot {robot}; expected one of {', '.join(presets)} or a .json file"
        )
    return [t if isinstance(t, DRTerm) else DRTerm.from_dict(t) for t in dr]


class TetherEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        robot: str,
        task: str,
        backend: str = "mujoco",
        dr: str | Sequence[DRTerm] | None = "none",
        control_mode: str | None = None,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (320, 240),
        **task_kwargs,
    ) -> None:
        self.robot_spec = make_robot(robot)
        self.task = make_task(robot, task, self.robot_spec, control_mode=control_mode, **task_kwargs)
        self.contract = self.task.contract
        self.dr_terms = resolve_dr(dr, self.robot_spec.dr_presets, robot)
        self.sim = make_backend(backend, self.robot_spec, self.task.scene())
        self.render_mode = render_mode
        self.render_size = render_size
        self.metadata = {**self.metadata, "render_fps": int(self.robot_spec.control_rate_hz)}
        c = self.contract
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(c.action_size,), dtype=np.float32)
        # Shape from the contract; bounds left open because sensor noise and bias (DR) may legitimately
        # push a reading past the nominal range the contract documents.
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(c.obs_size,), dtype=np.float32)
        self._substeps = self.robot_spec.substeps
        self._dr = Randomizer(self.dr_terms, self.sim, c.obs_size)
        self._episode = EpisodeDR()
        self._queue: deque[np.ndarray] = deque()
        self._neutral = c.to_normalised(self.task.neutral_action())
        self.last_action = self._neutral.copy()
        self._t = 0
        self._push_until = -1
        self._has_last_action = "last_action" in c.obs_slices

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        self._episode = self._dr.on_reset(rng)
        self.task.reset(self.sim, rng)
        self.sim.set_external_force(np.zeros(3))
        self._queue = deque([self._neutral.copy() for _ in range(self._episode.latency_steps)])
        self.last_action = self._neutral.copy()
        self._t = 0
        self._push_until = -1
        return self._observe(), self._info(success=False)

    def step(self, action):
        a = np.minimum(np.maximum(np.asarray(action, dtype=np.float64).reshape(-1), -1.0), 1.0)
        if a.shape[0] != self.contract.action_size:
            raise TetherError(f"action has {a.shape[0]} elements; expected {self.contract.action_size}")
        if self._episode.latency_steps:
            self._queue.append(a)
            applied = self._queue.popleft()
        else:
            applied = a
        self._maybe_push()
        self._dr.on_step(self.np_random, self._t, self.robot_spec.control_rate_hz)
        physical = self.contract.to_physical(applied)
        self.task.actuate(self.sim, physical, self._substeps)
        self.last_action = a
        self._t += 1
        fields = self.task.observe(self.sim)
        result = self.task.evaluate(self.sim, fields, physical)
        obs = self._flatten(fields)
        truncated = self._t >= self.task.max_steps and not result.terminated
        info = self._info(success=result.success, **result.info)
        return obs, float(result.reward), bool(result.terminated), bool(truncated), info

    def render(self):
        w, h = self.render_size
        return self.sim.render(w, h)

    def close(self) -> None:
        self.sim.close()

    # ------------------------------------------------------------------ helpers
    def _flatten(self, fields: dict[str, np.ndarray]) -> np.ndarray:
        if self._has_last_action:
            fields["last_action"] = self.last_action
        obs = self.contract.flatten_obs(fields)
        ep = self._episode
        if ep.obs_noise_std > 0:
            obs = obs + self.np_random.normal(0.0, ep.obs_noise_std, obs.shape)
        if ep.obs_bias is not None:
            obs = obs + ep.obs_bias
        return obs.astype(np.float32)

    def _observe(self) -> np.ndarray:
        return self._flatten(self.task.observe(self.sim))

    def _maybe_push(self) -> None:
        if not self._episode.push_terms:
            return
        rate = self.robot_spec.control_rate_hz
        if self._t == self._push_until:
            self.sim.set_external_force(np.zeros(3))
        for term in self._episode.push_terms:
            period = max(1, int(round(term.interval_s * rate))) if term.interval_s else self.task.max_steps
            if self._t > 0 and self._t % period == 0:
                magnitude = float(term.sample(self.np_random, 1)[0])
                angle = self.np_random.uniform(0, 2 * np.pi)
                self.sim.set_external_force(magnitude * np.array([np.cos(angle), np.sin(angle), 0.0]))
                self._push_until = self._t + max(1, int(round(PUSH_DURATION_S * rate)))

    def _info(self, success: bool, **extra) -> dict:
        info = {"success": success, "latency_steps": self._episode.latency_steps, **extra}
        if self.contract.privileged:
            info["privileged"] = self.contract.flatten_privileged(self.task.privileged(self.sim)).astype(np.float32)
        return info

    def expert_action(self) -> np.ndarray:
        """The task's scripted expert action for the current state, normalised to [-1, 1]."""
        phys = self.task.expert(self.sim)
        if phys is None:
            raise TetherError(f"task {self.task.robot_name}/{self.task.name} has no scripted expert")
        return np.clip(self.contract.to_normalised(phys), -1.0, 1.0).astype(np.float32)
