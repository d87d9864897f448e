"""Batched stepping of N randomised env copies across worker processes.

Why processes: a Tether env step is part MuJoCo (which releases the GIL) and part Python (task logic,
observation assembly, the quadrotor's onboard controller), and the Python part dominates for small
robots, so threads cannot use the second core; one process per *core*, each stepping a slice of the envs
in a loop, amortises the pipe round trip over the slice (measured in benchmarks/sim_throughput.py).
With ``num_workers=0`` everything runs in-process, which is what tests and debuggers want.

Autoreset is same-step (as in Stable-Baselines3): when an env ends, the returned observation is already
the first of the next episode and the last one is in ``info["final_obs"][i]`` (mask ``info["_final_obs"]``).
Env i is seeded with ``seed + i`` so its randomisation stream is reproducible and distinct.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

EnvFn = Callable[[], gym.Env]


class _Slice:
    """A contiguous group of envs stepped sequentially (in a worker or in-process)."""

    def __init__(self, fns: Sequence[EnvFn]) -> None:
        self.envs = [fn() for fn in fns]

    def reset(self, seeds: Sequence[int | None]):
        out = [env.reset(seed=s) for env, s in zip(self.envs, seeds)]
        return np.stack([o for o, _ in out]), [i for _, i in out]

    def step(self, actions: np.ndarray):
        obs, rew, term, trunc, infos = [], [], [], [], []
        for env, a in zip(self.envs, actions):
            o, r, te, tr, info = env.step(a)
            if te or tr:
                info = dict(info, final_obs=o, final_info=dict(info))
                o, _ = env.reset()
            obs.append(o), rew.append(r), term.append(te), trunc.append(tr), infos.append(info)
        return np.stack(obs), np.array(rew), np.array(term), np.array(trunc), infos

    def call(self, name: str, args: tuple, kwargs: dict) -> list[Any]:
        return [getattr(env.unwrapped, name)(*args, **kwargs) for env in self.envs]

    def get(self, name: str) -> list[Any]:
        return [getattr(env.unwrapped, name) for env in self.envs]

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _worker(conn, fns) -> None:
    group = _Slice(fns)
    try:
        while True:
            cmd, payload = conn.recv()
            if cmd == "close":
                group.close()
                conn.send(None)
                return
            conn.send(getattr(group, cmd)(*payload))
    except (EOFError, KeyboardInterrupt):
        group.close()


class BatchedVectorEnv(VectorEnv):
    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, env_fns: Sequence[EnvFn], num_workers: int = 2, context: str = "forkserver") -> None:
        self.num_envs = len(env_fns)
        probe = env_fns[0]()
        self.single_observation_space = probe.observation_space
        self.single_action_space = probe.action_space
        self.contract = getattr(probe.unwrapped, "contract", None)
        probe.close()
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.num_workers = min(num_workers, self.num_envs)
        if self.num_workers <= 0:
            self._slices = [np.arange(self.num_envs)]
            self._local = _Slice(env_fns)
            self._conns = []
            return
        self._local = None
        self._slices = np.array_split(np.arange(self.num_envs), self.num_workers)
        ctx = mp.get_context(context)
        self._conns, self._procs = [], []
        for idx in self._slices:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, [env_fns[i] for i in idx]), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)

    # ------------------------------------------------------------------ dispatch
    def _broadcast(self, cmd: str, payloads: list[tuple]) -> list[Any]:
        if self._local is not None:
            return [getattr(self._local, cmd)(*payloads[0])]
        for conn, payload in zip(self._conns, payloads):
            conn.send((cmd, payload))
        return [conn.recv() for conn in self._conns]

    @staticmethod
    def _merge_infos(infos: list[dict]) -> dict:
        merged: dict[str, Any] = {}
        n = len(infos)
        for i, info in enumerate(infos):
            for k, v in info.items():
                if k not in merged:
                    merged[k] = np.empty(n, dtype=object) if k in ("final_obs", "final_info") or not np.isscalar(v) else np.zeros(n, dtype=np.asarray(v).dtype)
                    merged[f"_{k}"] = np.zeros(n, dtype=bool)
                merged[k][i] = v
                merged[f"_{k}"][i] = True
        return merged

    def reset(self, *, seed: int | Sequence[int] | None = None, options: dict | None = None):
        if seed is None:
            seeds = [None] * self.num_envs
        elif isinstance(seed, int):
            seeds = [seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
        results = self._broadcast("reset", [([seeds[i] for i in idx],) for idx in self._slices])
        obs = np.concatenate([r[0] for r in results])
        infos = [i for r in results for i in r[1]]
        return obs, self._merge_infos(infos)

    def step(self, actions):
        actions = np.asarray(actions)
        results = self._broadcast("step", [(actions[idx],) for idx in self._slices])
        obs = np.concatenate([r[0] for r in results])
        rew = np.concatenate([r[1] for r in results])
        term = np.concatenate([r[2] for r in results])
        trunc = np.concatenate([r[3] for r in results])
        infos = [i for r in results for i in r[4]]
        return obs, rew, term, trunc, self._merge_infos(infos)

    def call(self, name: str, *args, **kwargs) -> tuple:
        results = self._broadcast("call", [(name, args, kwargs)] * len(self._slices))
        return tuple(x for r in results for x in r)

    def get_attr(self, name: str) -> tuple:
        results = self._broadcast("get", [(name,)] * len(self._slices))
        return tuple(x for r in results for x in r)

    def close_extras(self, **kwargs) -> None:
        if self._local is not None:
            self._local.close()
            return
        for conn in self._conns:
            try:
                conn.send(("close", ()))
                conn.recv()
            except (BrokenPipeError, EOFError):
                pass
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()


def make_vector_env(env_id: str, num_envs: int, num_workers: int = 2, **env_kwargs) -> BatchedVectorEnv:
    """N copies of a registered tether env, each with its own DR stream (seeded at reset)."""
    return BatchedVectorEnv([_EnvFactory(env_id, env_kwargs) for _ in range(num_envs)], num_workers=num_workers)


class _EnvFactory:
    """Picklable env constructor for worker processes."""

    def __init__(self, env_id: str, kwargs: dict) -> None:
        self.env_id, self.kwargs = env_id, kwargs

    def __call__(self) -> gym.Env:
        import tether.sim

        return tether.sim.make(self.env_id, **self.kwargs)
