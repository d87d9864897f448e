"""The Gymnasium env of one robot, task, physics backend and domain randomisation: the batched core with N = 1.

Spaces come from the task's IOContract: observations are the flat contract vector (physical units),
actions are normalised to [-1, 1] and mapped to physical units by the contract. Everything a step does
(latency, noise, pushes, the task's objective) is :class:`tether.sim.core.SimCore`'s, so this env and world
``i`` of a batch seeded ``s - i`` follow the same trajectory for the same actions. ``last_action`` (if the
contract has it) is the normalised action the policy emitted on the previous step.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from tether.sim.backends.base import WorldView
from tether.sim.core import SimCore, resolve_dr  # noqa: F401  (resolve_dr: re-exported for callers)
from tether.sim.randomization import DRTerm


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
        self.core = SimCore(robot, task, 1, backend=backend, dr=dr, control_mode=control_mode, threads=1,
                            autoreset=False, **task_kwargs)
        self.robot_spec = self.core.robot_spec
        self.task = self.core.task
        self.contract = self.core.contract
        self.dr_terms = self.core.dr_terms
        self.sim = WorldView(self.core.sim, 0)  # the single-world view of the batch of one
        self.render_mode = render_mode
        self.render_size = render_size
        self.metadata = {**self.metadata, "render_fps": int(self.robot_spec.control_rate_hz)}
        c = self.contract
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(c.action_size,), dtype=np.float32)
        # Shape from the contract; bounds left open because sensor noise and bias (DR) may legitimately
        # push a reading past the nominal range the contract documents.
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(c.obs_size,), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None and not self.core._started:
            seed = int(self.np_random.integers(2**63 - 1))
        obs, priv = self.core.reset(None if seed is None else [seed])
        return obs[0], self._info(priv, success=False)

    def step(self, action):
        a = np.asarray(action, dtype=np.float64).reshape(1, -1)
        out = self.core.step(a)
        extra = {k: v[0] for k, v in out.metrics.items()}
        info = self._info(out.privileged, success=bool(out.success[0]), **extra)
        return out.obs[0], float(out.reward[0]), bool(out.terminated[0]), bool(out.truncated[0]), info

    def _info(self, priv, success: bool, **extra) -> dict:
        info = {"success": success, "latency_steps": int(self.core._ep.latency_steps[0]), **extra}
        if priv is not None:
            info["privileged"] = priv[0]
        return info

    @property
    def last_action(self) -> np.ndarray:
        return self.core.last_action[0]

    def render(self):
        w, h = self.render_size
        return self.core.render(0, w, h)

    def close(self) -> None:
        self.core.close()

    def expert_action(self) -> np.ndarray:
        """The task's scripted expert action for the current state, normalised to [-1, 1]."""
        return self.core.expert_action()[0]
