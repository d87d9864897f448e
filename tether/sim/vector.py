"""THE vector API: N envs per call, one seeding rule, executors chosen by a parameter.

``make_vec(env, num_envs, executor=...)`` returns a :class:`VecEnv`, a Gymnasium ``VectorEnv`` (autoreset in
the same step, as Stable-Baselines3 does it) whose ``step_batch`` gives trainers the whole step at once
(:class:`~tether.sim.core.VecStep`: final observations for bootstrapping, privileged critic observations,
the task's success at episode end, episode returns and lengths). Every trainer, evaluator and collector in
Tether steps envs through it.

Executors (where the worlds live):

- ``"inprocess"`` (default): one :class:`~tether.sim.core.SimCore`; MuJoCo steps the batch on its own thread
  pool with the GIL released, so on 2 cores this is the fast path.
- ``"processes"``: the batch split into contiguous slices, one SimCore per worker process; for engines that
  step in Python (PyBullet) or tasks whose Python dominates.
- ``"ray"``: the same slices in Ray actors (``address=`` a cluster); registered by :mod:`tether.scale`.

Plain Gymnasium envs (a factory instead of a ``tether/`` id) run through :class:`GymLoop` behind the same
interface. Seeding: world ``i`` of a batch reset with seed ``s`` uses ``default_rng(s + i)`` whatever the
executor, so results do not depend on how the batch is split.

Each registered ``tether/`` id has :func:`vector_entry_point` as its Gymnasium ``vector_entry_point``, so
``gymnasium.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")`` returns the batched core.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from tether.errors import TetherError
from tether.sim.core import SimCore, VecStep

EnvFn = Callable[[], gym.Env]

# executor name -> "module:Class"; a class takes (core_kwargs, num_envs, **options) and provides reset(seeds),
# step(actions) -> VecStep, call(name) -> per-world results, close(). Ray registers itself here by name.
EXECUTORS: dict[str, str] = {
    "inprocess": "tether.sim.vector:InProcess",
    "processes": "tether.sim.vector:Processes",
    "ray": "tether.scale.ray_executor:RayExecutor",
}


def concat_steps(parts: Sequence[VecStep]) -> VecStep:
    """One VecStep from the slices' VecSteps, in slice order."""
    if len(parts) == 1:
        return parts[0]

    def cat(name: str):
        vals = [getattr(p, name) for p in parts]
        return None if vals[0] is None else np.concatenate(vals)

    metrics = {k: np.concatenate([p.metrics[k] for p in parts]) for k in parts[0].metrics}
    return VecStep(cat("obs"), cat("reward"), cat("terminated"), cat("truncated"), cat("final_obs"), cat("privileged"),
                   cat("final_privileged"), cat("success"), cat("episode_return"), cat("episode_length"), metrics)


# ---------------------------------------------------------------------- executors
class InProcess:
    """All worlds in one SimCore in this process."""

    def __init__(self, core_kwargs: dict[str, Any], num_envs: int, threads: int | None = None) -> None:
        self.core = SimCore(n=num_envs, threads=threads, **core_kwargs)

    def reset(self, seeds: Sequence[int | None]) -> tuple[np.ndarray, np.ndarray | None]:
        return self.core.reset(seeds)

    def step(self, actions: np.ndarray) -> VecStep:
        return self.core.step(actions)

    def call(self, name: str, *args: Any) -> Any:
        return getattr(self.core, name)(*args)

    def close(self) -> None:
        self.core.close()


def _serve(conn, core_kwargs: dict[str, Any], n: int) -> None:
    """A worker process: one SimCore slice answering (command, payload) messages until "close"."""
    core = SimCore(n=n, threads=1, **core_kwargs)
    try:
        while True:
            cmd, payload = conn.recv()
            if cmd == "close":
                conn.send(None)
                return
            try:
                if cmd == "reset":
                    result = core.reset(payload)
                elif cmd == "step":
                    result = core.step(payload)
                else:
                    result = getattr(core, payload[0])(*payload[1])
            except Exception as exc:  # noqa: BLE001 - sent back and raised in the parent with its message
                result = exc
            conn.send(result)
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        core.close()


class Processes:
    """The batch split into contiguous slices, one SimCore per worker process."""

    def __init__(self, core_kwargs: dict[str, Any], num_envs: int, workers: int = 2,
                 context: str = "forkserver") -> None:
        workers = max(1, min(int(workers), num_envs))
        self.slices = np.array_split(np.arange(num_envs), workers)
        ctx = mp.get_context(context)
        self._conns, self._procs = [], []
        for idx in self.slices:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child, core_kwargs, len(idx)), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)

    def _gather(self, cmd: str, payloads: Sequence[Any]) -> list[Any]:
        for conn, payload in zip(self._conns, payloads):
            conn.send((cmd, payload))
        results = [conn.recv() for conn in self._conns]
        for r in results:
            if isinstance(r, Exception):
                raise r
        return results

    def reset(self, seeds: Sequence[int | None]) -> tuple[np.ndarray, np.ndarray | None]:
        parts = self._gather("reset", [[seeds[i] for i in idx] for idx in self.slices])
        priv = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
        return np.concatenate([p[0] for p in parts]), priv

    def step(self, actions: np.ndarray) -> VecStep:
        return concat_steps(self._gather("step", [actions[idx] for idx in self.slices]))

    def call(self, name: str, *args: Any) -> Any:
        parts = self._gather("call", [(name, args)] * len(self.slices))
        return np.concatenate(parts) if isinstance(parts[0], np.ndarray) else parts

    def close(self) -> None:
        for conn in self._conns:
            try:
                conn.send(("close", None))
                conn.recv()
            except (BrokenPipeError, EOFError, OSError):
                pass
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()


class GymLoop:
    """Plain Gymnasium envs (no batched core) behind the executor interface: a loop, same-step autoreset."""

    def __init__(self, env_fns: Sequence[EnvFn]) -> None:
        self.envs = [fn() for fn in env_fns]
        self.n = len(self.envs)
        self._ret = np.zeros(self.n)
        self._len = np.zeros(self.n, dtype=np.int64)
        self._priv_size = int(getattr(getattr(self.envs[0].unwrapped, "contract", None), "privileged_size", 0) or 0)
        self.reports_success = False  # whether any episode end carried a success flag

    def _priv(self, info: dict) -> np.ndarray:
        p = info.get("privileged")
        return np.zeros(self._priv_size, np.float32) if p is None else np.asarray(p, np.float32).reshape(-1)

    def reset(self, seeds: Sequence[int | None]) -> tuple[np.ndarray, np.ndarray | None]:
        out = [env.reset(seed=s) for env, s in zip(self.envs, seeds)]
        self._ret[:], self._len[:] = 0.0, 0
        obs = np.stack([np.asarray(o, np.float32) for o, _ in out])
        return obs, (np.stack([self._priv(i) for _, i in out]) if self._priv_size else None)

    def step(self, actions: np.ndarray) -> VecStep:
        n = self.n
        obs, final = [None] * n, [None] * n
        priv, fpriv = [None] * n, [None] * n
        rew, term, trunc = np.zeros(n, np.float32), np.zeros(n, bool), np.zeros(n, bool)
        success = np.zeros(n, bool)
        ep_ret, ep_len = np.zeros(n), np.zeros(n, np.int64)
        for i, env in enumerate(self.envs):
            o, r, te, tr, info = env.step(actions[i])
            o = np.asarray(o, np.float32)
            rew[i], term[i], trunc[i] = r, te, tr
            final[i], fpriv[i] = o, self._priv(info)
            self._ret[i] += float(r)
            self._len[i] += 1
            if te or tr:
                flag = info.get("is_success", info.get("success"))
                self.reports_success |= flag is not None
                success[i] = bool(np.asarray(flag).item()) if flag is not None else False
                ep_ret[i], ep_len[i] = self._ret[i], self._len[i]
                self._ret[i], self._len[i] = 0.0, 0
                o, info = env.reset()
                o = np.asarray(o, np.float32)
            obs[i], priv[i] = o, self._priv(info)
        p = self._priv_size
        return VecStep(np.stack(obs), rew, term, trunc, np.stack(final), np.stack(priv) if p else None,
                       np.stack(fpriv) if p else None, success, ep_ret, ep_len, {})

    def call(self, name: str, *args: Any) -> Any:
        if name == "expert_action":
            return np.stack([env.unwrapped.expert_action() for env in self.envs])
        raise TetherError(f"plain Gymnasium envs have no {name!r}")

    def close(self) -> None:
        for env in self.envs:
            env.close()


# ---------------------------------------------------------------------- the vector env
class VecEnv(VectorEnv):
    """N envs behind one executor; see the module docstring."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": ["rgb_array"]}

    def __init__(self, executor: Any, num_envs: int, single_observation_space: gym.spaces.Box,
                 single_action_space: gym.spaces.Box, contract: Any = None, neutral_action: np.ndarray | None = None,
                 dr_terms: list | None = None, render_size: tuple[int, int] = (320, 240)) -> None:
        self.executor = executor
        self.num_envs = int(num_envs)
        self.single_observation_space = single_observation_space
        self.single_action_space = single_action_space
        self.observation_space = gym.vector.utils.batch_space(single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(single_action_space, self.num_envs)
        self.contract = contract
        self.privileged_size = int(getattr(contract, "privileged_size", 0) or 0)
        self.neutral_action = neutral_action  # normalised action that holds the robot still, or None
        self.dr_terms = dr_terms
        self.render_size = render_size
        self._seeded = False

    # ------------------------------------------------------------------ batched API (what trainers use)
    def reset_batch(self, seed: int | Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs if self._seeded else \
                [int(s) for s in np.random.SeedSequence().generate_state(self.num_envs)]
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = [int(s) for s in seed]
            if len(seeds) != self.num_envs:
                raise TetherError(f"reset got {len(seeds)} seeds for {self.num_envs} envs")
        self._seeded = True
        return self.executor.reset(seeds)

    def step_batch(self, actions: np.ndarray) -> VecStep:
        return self.executor.step(np.asarray(actions))

    def expert_action(self) -> np.ndarray:
        return np.asarray(self.executor.call("expert_action"), dtype=np.float32)

    @property
    def reports_success(self) -> bool:
        """Whether episode ends carry the task's success (always for tether envs)."""
        return bool(getattr(self.executor, "reports_success", True))

    # ------------------------------------------------------------------ Gymnasium VectorEnv
    def reset(self, *, seed: int | Sequence[int] | None = None, options: dict | None = None):
        obs, priv = self.reset_batch(seed)
        return obs, ({} if priv is None else {"privileged": priv})

    def step(self, actions):
        s = self.step_batch(actions)
        done = s.done
        info: dict[str, Any] = {
            "final_obs": s.final_obs, "_final_obs": done,
            "success": s.success, "_success": done,
            "episode": {"r": s.episode_return, "l": s.episode_length, "success": s.success},
            "_episode": done,
        }
        if s.privileged is not None:
            info["privileged"], info["_privileged"] = s.privileged, np.ones(self.num_envs, bool)
            info["final_privileged"], info["_final_privileged"] = s.final_privileged, done
        return s.obs, s.reward, s.terminated, s.truncated, info

    def render(self, world: int = 0):
        w, h = self.render_size
        return self.executor.call("render", world, w, h)

    def close_extras(self, **kwargs: Any) -> None:
        self.executor.close()


def make_vec(env: str | EnvFn, num_envs: int, *, backend: str | None = None, dr: Any = None,
             control_mode: str | None = None, executor: str = "inprocess", autoreset: bool = True,
             **options: Any) -> VecEnv:
    """``num_envs`` copies of ``env`` (a ``tether/`` id, or a factory of a plain Gymnasium env).

    ``executor``: ``"inprocess"`` | ``"processes"`` | ``"ray"``; ``options`` go to it (``threads``,
    ``workers``, ``address``) and, for tether ids, the rest to the task (e.g. ``terrain``).
    """
    if int(num_envs) < 1:
        raise TetherError(f"num_envs is {num_envs}; expected at least 1")
    if callable(env) and not isinstance(env, str):
        if executor != "inprocess":
            raise TetherError(f"executor {executor!r} needs a tether env id; a factory runs in-process")
        loop = GymLoop([env] * int(num_envs))
        probe = loop.envs[0]
        contract = getattr(probe.unwrapped, "contract", None)
        return VecEnv(loop, num_envs, probe.observation_space, probe.action_space, contract=contract)
    from tether.sim.registry import parse_env_id

    robot, task, variant_kwargs = parse_env_id(env)
    exec_keys = {"threads", "workers", "address", "context"}
    exec_options = {k: v for k, v in options.items() if k in exec_keys}
    task_kwargs = {k: v for k, v in options.items() if k not in exec_keys}
    core_kwargs = {"robot": robot, "task": task, "backend": backend or "mujoco",
                   "dr": "none" if dr is None else dr, "control_mode": control_mode, "autoreset": autoreset,
                   **variant_kwargs, **task_kwargs}
    if executor not in EXECUTORS:
        raise TetherError(f"unknown executor {executor!r}; expected one of {', '.join(EXECUTORS)}")
    module, attr = EXECUTORS[executor].split(":")
    runner = getattr(importlib.import_module(module), attr)(core_kwargs, int(num_envs), **exec_options)
    info = _describe(core_kwargs, runner)
    return VecEnv(runner, num_envs, **info)


def _describe(core_kwargs: dict[str, Any], runner: Any) -> dict[str, Any]:
    """Spaces, contract, neutral action and DR terms of the envs an executor runs (read from a tiny core)."""
    core = runner.core if isinstance(runner, InProcess) else SimCore(n=1, threads=1, **core_kwargs)
    try:
        c = core.contract
        return {
            "single_observation_space": gym.spaces.Box(-np.inf, np.inf, shape=(c.obs_size,), dtype=np.float32),
            "single_action_space": gym.spaces.Box(-1.0, 1.0, shape=(c.action_size,), dtype=np.float32),
            "contract": c,
            "neutral_action": np.clip(c.to_normalised(core.task.neutral_action()), -1, 1).astype(np.float32),
            "dr_terms": list(core.dr_terms),
        }
    finally:
        if core is not getattr(runner, "core", None):
            core.close()


def vector_entry_point(num_envs: int = 1, **kwargs: Any) -> VecEnv:
    """Gymnasium's ``vector_entry_point`` for every ``tether/`` id (the spec's kwargs name robot and task)."""
    from tether.sim.registry import env_id

    robot, task = kwargs.pop("robot"), kwargs.pop("task")
    kwargs.pop("max_episode_steps", None)
    terrain = kwargs.get("terrain")
    variant = "Rough" if terrain == "rough" else ""
    return make_vec(env_id(robot, task, variant), num_envs, **kwargs)
