"""The Ray executor of the vector API: the batch split into slices, each a SimCore in a Ray actor.

Same semantics as the in-process and process executors (``tether.sim.vector``): same per-world seeding,
same same-step autoreset, so for the same seed and actions a batch gives bit-identical observations and
rewards wherever its worlds run, and a PPO/SAC run collected on the cluster trains the same policy as a
local one. One actor reserves one CPU.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from tether.errors import TetherError
from tether.scale import cluster
from tether.scale.cluster import cluster_cpus, get, ray_for
from tether.sim.core import SimCore, VecStep


class _Slice:
    """What runs in one actor: a SimCore over a contiguous slice of the batch, one MuJoCo thread."""

    def __init__(self, core_kwargs: dict[str, Any], n: int) -> None:
        self.core = SimCore(n=n, threads=1, **core_kwargs)

    def reset(self, seeds: Sequence[int | None]) -> tuple[np.ndarray, np.ndarray | None]:
        return self.core.reset(seeds)

    def step(self, actions: np.ndarray) -> VecStep:
        return self.core.step(actions)

    def call(self, name: str, args: tuple) -> Any:
        return getattr(self.core, name)(*args)

    def where(self) -> dict[str, Any]:
        import os
        import socket

        return {"pid": os.getpid(), "host": socket.gethostname(), "num_envs": self.core.n}

    def close(self) -> None:
        self.core.close()


@functools.cache
def _actor_class() -> Any:
    import ray

    return ray.remote(num_cpus=1)(_Slice)


class RayExecutor:
    """``num_envs`` worlds in ``workers`` Ray actors (default: one per cluster CPU, at most one per world)."""

    def __init__(self, core_kwargs: dict[str, Any], num_envs: int, address: str | None = None,
                 workers: int | None = None) -> None:
        from tether.sim.vector import concat_steps

        self._concat = concat_steps
        # join the cluster if this process is not connected yet, and leave it again on close
        self._joined = address is not None and cluster._connected is None
        self.ray = ray = ray_for(address)
        k = workers if workers is not None else max(cluster_cpus(ray), 1)
        if int(k) < 1:
            raise TetherError(f"workers={workers}; expected >= 1")
        self.slices = [s for s in np.array_split(np.arange(num_envs), min(int(k), num_envs)) if len(s)]
        cls = _actor_class()
        self.actors = [cls.options(scheduling_strategy="SPREAD").remote(core_kwargs, len(s)) for s in self.slices]
        get(ray, [a.reset.remote([None] * len(s)) for a, s in zip(self.actors, self.slices)], "starting env actors")

    def reset(self, seeds: Sequence[int | None]) -> tuple[np.ndarray, np.ndarray | None]:
        parts = get(self.ray, [a.reset.remote([seeds[i] for i in s]) for a, s in zip(self.actors, self.slices)],
                    "resetting envs")
        priv = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
        return np.concatenate([p[0] for p in parts]), priv

    def step(self, actions: np.ndarray) -> VecStep:
        return self._concat(get(self.ray, [a.step.remote(actions[s]) for a, s in zip(self.actors, self.slices)],
                                "stepping envs"))

    def call(self, name: str, *args: Any) -> Any:
        parts = get(self.ray, [a.call.remote(name, args) for a in self.actors], f"calling {name}")
        return np.concatenate(parts) if isinstance(parts[0], np.ndarray) else parts

    def workers(self) -> list[dict[str, Any]]:
        """Where each slice runs (pid, host, number of worlds)."""
        return get(self.ray, [a.where.remote() for a in self.actors], "locating env actors")

    def close(self) -> None:
        for a in self.actors:
            try:
                self.ray.kill(a)
            except Exception:  # noqa: BLE001 - an actor already gone is closed
                pass
        self.actors = []
        if self._joined:
            cluster.disconnect()
            self._joined = False
