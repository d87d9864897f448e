"""Ray backend: env copies in remote actors (rollout collection) and episodes fanned out to remote tasks (evaluation).

Why Ray, and why like this:
- One machine's cores cap how many randomised env copies PPO/SAC can step per second. A Ray cluster is the
  usual way to borrow other machines' cores; ``ray.init(address=ADDRESS)`` joins one that someone started with
  ``ray start --head`` (or ``address="auto"`` on a cluster node, ``"ray://HOST:PORT"`` through Ray Client).
- Same semantics as the in-process pieces, so trainers and tests need no second code path:
  :class:`RayVectorEnv` *is* a :class:`~tether.sim.vector.BatchedVectorEnv` whose slices live in Ray actors instead
  of local worker processes (same dispatch, same same-step autoreset, same ``seed + i`` seeding), and
  :class:`RayEnvPool` *is* an :class:`~tether.policies.rl.envpool.EnvPool` whose envs live in actors, drawing the
  reset seeds on the driver in the same order as the local pool — so for the same seed and actions both give
  bit-identical observations and rewards, and a PPO/SAC run gives the same policy either way.
- Checkpoints cross the wire as the bytes of their safetensors + JSON files (validated on the driver, re-validated
  by ``load_policy`` in each worker), never as pickled policy objects; env factories and numpy arrays travel the
  way Ray ships any function or array.
- ``ray`` is imported only inside functions that are given an address (or that need a live connection), so the
  default single-machine path never imports it or starts a Ray process.

Every node of the cluster must have the same Tether (and simulator) versions installed as the driver: actors and
tasks import ``tether`` by name. Clusters with token authentication (Ray's default when a token exists) need
``RAY_AUTH_MODE=token`` and the token (``RAY_AUTH_TOKEN`` or ``~/.ray/auth_token``) on the driver, as any Ray client. One env actor or evaluation task reserves one CPU, as one local worker process
uses one core.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from tether.errors import TetherError
from tether.policies.envs import episode_success
from tether.policies.rl.envpool import EnvPool, StepResult
from tether.sim.vector import BatchedVectorEnv, _Slice

EnvFn = Callable[[], gym.Env]

_ADDRESS_HINT = ("expected the address `ray start --head` printed (HOST:PORT, e.g. 10.0.0.5:6379), "
                 "'auto' on a cluster node, 'ray://HOST:PORT' for Ray Client, or 'local'")

# The address this process connected to through connect() (None: not connected by us).
_connected: str | None = None


# --------------------------------------------------------------------------------------------- connection
def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise TetherError("--ray needs the 'ray' package, which is not installed; expected `pip install "
                          "'ray>=2.60'` (the 'ray' extra of tether)") from None
    return ray


def _preflight(address: str) -> None:
    """Fail in seconds, not after Ray's minute of retries, when nothing listens at HOST:PORT."""
    hostport = address.removeprefix("ray://")
    if address in ("auto", "local") or ":" not in hostport:
        return
    host, _, port = hostport.rpartition(":")
    if not port.isdigit():
        raise TetherError(f"Ray address {address!r} has port {port!r}; {_ADDRESS_HINT}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5.0).close()
    except OSError as exc:
        raise TetherError(f"no Ray cluster answers at {address!r} ({exc.strerror or exc}); {_ADDRESS_HINT}") from None


def connect(address: str) -> Any:
    """Join the Ray cluster at ``address`` (once per process) and return the ``ray`` module.

    Calling it again with the same address is a no-op; a different address while connected is an error, because
    Ray allows one cluster per driver process.
    """
    global _connected
    if not isinstance(address, str) or not address.strip():
        raise TetherError(f"Ray address {address!r}; {_ADDRESS_HINT}")
    address = address.strip()
    ray = _import_ray()
    if ray.is_initialized():
        if _connected is not None and _connected != address:
            raise TetherError(f"already connected to the Ray cluster at {_connected!r}; expected the same address, "
                              f"got {address!r} (one cluster per process)")
        return ray
    _preflight(address)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        auth = ("" if os.environ.get("RAY_AUTH_MODE") == "token" else
                " (if the cluster uses token authentication, set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN)")
        raise TetherError(f"cannot connect to the Ray cluster at {address!r} ({first}){auth}; {_ADDRESS_HINT}") from None
    _connected = address
    return ray


def disconnect() -> None:
    """Leave the cluster this process joined through :func:`connect` (the cluster itself keeps running)."""
    global _connected
    if _connected is None:
        return
    import ray

    ray.shutdown()
    _connected = None


def _ray_for(address: str | None) -> Any:
    """``ray`` connected to ``address``, or to the cluster this process is already connected to."""
    if address is not None:
        return connect(address)
    ray = _import_ray()
    if not ray.is_initialized():
        raise TetherError(f"not connected to a Ray cluster; pass address= ({_ADDRESS_HINT})")
    return ray


def cluster_cpus(ray: Any) -> int:
    return int(ray.cluster_resources().get("CPU", 0))


def _remote_error(exc: BaseException, what: str) -> TetherError:
    """A one-line TetherError from a failure on the cluster (a TetherError raised remotely keeps its message)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, TetherError):
        return TetherError(str(cause))
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    msg = next((ln for ln in reversed(lines) if re.match(r"^[\w.]+(Error|Exception): ", ln)),
               lines[-1] if lines else type(exc).__name__)
    return TetherError(f"{what} failed on the Ray cluster: {msg}")


def _get(ray: Any, refs: list[Any], what: str) -> list[Any]:
    try:
        return ray.get(refs)
    except ray.exceptions.RayError as exc:
        raise _remote_error(exc, what) from None


# --------------------------------------------------------------------------------------------- env actors
class _RemoteSlice(_Slice):
    """A slice of env copies living in a Ray actor: the local slice plus the un-reset step EnvPool needs."""

    def step_raw(self, actions: np.ndarray) -> list[tuple[np.ndarray, float, bool, bool, dict]]:
        out = []
        for env, a in zip(self.envs, actions):
            o, r, te, tr, info = env.step(a)
            out.append((np.asarray(o, dtype=np.float32), float(r), bool(te), bool(tr), info))
        return out

    def reset_each(self, local: Sequence[int], seeds: Sequence[int | None]) -> list[tuple[np.ndarray, dict]]:
        out = []
        for i, s in zip(local, seeds):
            o, info = self.envs[i].reset(seed=s)
            out.append((np.asarray(o, dtype=np.float32), info))
        return out

    def where(self) -> dict[str, Any]:
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
                "pid": os.getpid(), "num_envs": len(self.envs)}


@functools.cache
def _actor_class() -> Any:
    return _import_ray().remote(num_cpus=1)(_RemoteSlice)


def _spawn_actors(ray: Any, env_fns: Sequence[EnvFn], num_workers: int | None) -> tuple[list[Any], list[np.ndarray]]:
    """One actor per slice of envs, spread over the cluster's nodes; waits until every actor has built its envs."""
    if len(env_fns) < 1:
        raise TetherError("no env factories given; expected at least one")
    cpus = cluster_cpus(ray)
    n = min(len(env_fns), num_workers if num_workers is not None else max(cpus, 1))
    if n < 1:
        raise TetherError(f"num_workers={num_workers}; expected >= 1")
    if n > cpus:
        raise TetherError(f"num_workers={n} but the Ray cluster has {cpus} CPUs; expected at most {cpus} "
                          "(each env actor reserves one CPU)")
    slices = np.array_split(np.arange(len(env_fns)), n)
    cls = _actor_class()
    actors = [cls.options(scheduling_strategy="SPREAD").remote([env_fns[i] for i in idx]) for idx in slices]
    try:
        _get(ray, [a.where.remote() for a in actors], "building the envs")
    except TetherError:
        for a in actors:
            ray.kill(a)
        raise
    return actors, slices


def _close_actors(ray: Any, actors: list[Any]) -> None:
    if not actors:
        return
    with contextlib.suppress(Exception):
        ray.get([a.close.remote() for a in actors], timeout=30)
    for a in actors:
        with contextlib.suppress(Exception):
            ray.kill(a)


class RayVectorEnv(BatchedVectorEnv):
    """:class:`BatchedVectorEnv` with its worker slices in Ray actors (possibly on other machines).

    Same interface and semantics: same-step autoreset with ``info["final_obs"]``, env i seeded ``seed + i``,
    ``call``/``get_attr`` on the unwrapped envs. ``num_workers`` defaults to one actor per cluster CPU (at most
    one per env). Connects to ``address`` if given, else uses the cluster this process is connected to.
    """

    def __init__(self, env_fns: Sequence[EnvFn], num_workers: int | None = None, *, address: str | None = None) -> None:
        self._ray = _ray_for(address)
        self._actors: list[Any] = []
        self.num_envs = len(env_fns)
        probe = env_fns[0]()
        self.single_observation_space = probe.observation_space
        self.single_action_space = probe.action_space
        self.contract = getattr(probe.unwrapped, "contract", None)
        probe.close()
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self._local = None
        self._conns, self._procs = [], []
        self._actors, self._slices = _spawn_actors(self._ray, env_fns, num_workers)
        self.num_workers = len(self._actors)

    def _broadcast(self, cmd: str, payloads: list[tuple]) -> list[Any]:
        return _get(self._ray, [getattr(a, cmd).remote(*p) for a, p in zip(self._actors, payloads)], f"env {cmd}")

    def workers(self) -> list[dict[str, Any]]:
        """Where each actor runs: node id, host, pid and how many envs it steps."""
        return _get(self._ray, [a.where.remote() for a in self._actors], "locating env actors")

    def close_extras(self, **kwargs: Any) -> None:
        _close_actors(self._ray, self._actors)
        self._actors = []


def make_ray_vector_env(env_id: str, num_envs: int, num_workers: int | None = None, *, address: str | None = None,
                        **env_kwargs: Any) -> RayVectorEnv:
    """The Ray twin of :func:`tether.sim.vector.make_vector_env`."""
    from tether.sim.vector import _EnvFactory

    return RayVectorEnv([_EnvFactory(env_id, env_kwargs) for _ in range(num_envs)], num_workers, address=address)


class RayEnvPool(EnvPool):
    """:class:`EnvPool` with its envs in Ray actors; what PPO/SAC use under ``tether train --ray``.

    Each step is one round trip to every actor; when episodes end, the reset seeds are drawn on the driver in
    env order (exactly as the local pool draws them) and sent in a second round trip, so the two pools produce
    identical data for the same seed and actions. ``envs`` is not available (the envs live remotely).
    """

    def __init__(self, env_fns: Sequence[EnvFn], seed: int = 0, privileged_size: int = 0, *,
                 num_workers: int | None = None, address: str | None = None) -> None:
        self._ray = _ray_for(address)
        self._actors: list[Any] = []
        self.n = len(env_fns)
        self.privileged_size = int(privileged_size)
        self._ss = np.random.SeedSequence(seed)
        self._ep_return = np.zeros(self.n)
        self._ep_len = np.zeros(self.n, dtype=np.int64)
        self._actors, self._slices = _spawn_actors(self._ray, env_fns, num_workers)
        self._owner = [(w, j) for w, idx in enumerate(self._slices) for j in range(len(idx))]

    def workers(self) -> list[dict[str, Any]]:
        return _get(self._ray, [a.where.remote() for a in self._actors], "locating env actors")

    def _reset_envs(self, indices: Sequence[int], seeds: Sequence[int]) -> list[tuple[np.ndarray, dict]]:
        """Reset envs ``indices`` with ``seeds``; results in the order of ``indices``."""
        by_actor: dict[int, tuple[list[int], list[int], list[int]]] = {}
        for pos, (i, s) in enumerate(zip(indices, seeds)):
            w, j = self._owner[i]
            entry = by_actor.setdefault(w, ([], [], []))
            entry[0].append(pos), entry[1].append(j), entry[2].append(s)
        actors = list(by_actor)
        replies = _get(self._ray, [self._actors[w].reset_each.remote(by_actor[w][1], by_actor[w][2]) for w in actors],
                       "env reset")
        out: list[Any] = [None] * len(indices)
        for w, reply in zip(actors, replies):
            for pos, item in zip(by_actor[w][0], reply):
                out[pos] = item
        return out

    def reset(self) -> tuple[np.ndarray, np.ndarray | None]:
        seeds = [self._next_seed() for _ in range(self.n)]
        results = self._reset_envs(range(self.n), seeds)
        self._ep_return[:] = 0
        self._ep_len[:] = 0
        obs = np.stack([o for o, _ in results])
        priv = np.stack([self._priv(info) for _, info in results]) if self.privileged_size else None
        return obs, priv

    def step(self, actions: np.ndarray) -> StepResult:
        actions = np.asarray(actions)
        replies = _get(self._ray, [a.step_raw.remote(actions[idx]) for a, idx in zip(self._actors, self._slices)],
                       "env step")
        flat = [item for reply in replies for item in reply]
        n = self.n
        next_obs: list[Any] = [None] * n
        final_obs: list[Any] = [None] * n
        next_priv: list[Any] = [None] * n
        final_priv: list[Any] = [None] * n
        rew = np.zeros(n, dtype=np.float32)
        term = np.zeros(n, dtype=bool)
        trunc = np.zeros(n, dtype=bool)
        finished, ended, seeds = [], [], []
        for i, (o, r, te, tr, info) in enumerate(flat):
            rew[i], term[i], trunc[i] = r, te, tr
            final_obs[i] = o
            next_obs[i] = o
            if self.privileged_size:
                final_priv[i] = next_priv[i] = self._priv(info)
            self._ep_return[i] += float(r)
            self._ep_len[i] += 1
            if te or tr:
                finished.append({"return": float(self._ep_return[i]), "length": int(self._ep_len[i]),
                                 "success": episode_success(info)})
                self._ep_return[i] = 0.0
                self._ep_len[i] = 0
                ended.append(i)
                seeds.append(self._next_seed())
        if ended:
            for i, (o, info) in zip(ended, self._reset_envs(ended, seeds)):
                next_obs[i] = o
                if self.privileged_size:
                    next_priv[i] = self._priv(info)
        return StepResult(
            next_obs=np.stack(next_obs), reward=rew, terminated=term, truncated=trunc, final_obs=np.stack(final_obs),
            next_priv=np.stack(next_priv) if self.privileged_size else None,
            final_priv=np.stack(final_priv) if self.privileged_size else None,
            finished=finished,
        )

    def close(self) -> None:
        _close_actors(self._ray, self._actors)
        self._actors = []


@contextlib.contextmanager
def use_ray(address: str, num_workers: int | None = None) -> Iterator[None]:
    """Within the block, PPO/SAC collect rollouts with :class:`RayEnvPool` on the cluster at ``address``.

    Why a context rather than a trainer argument: the trainers build their pool through
    ``tether.policies.rl.envpool.make_env_pool``; installing the remote pool there keeps every trainer (and the
    hybrid fine-tuners built on them) scale-out capable without a Ray parameter threaded through each signature.
    """
    from tether.policies.rl import envpool

    with connected(address):
        previous = envpool.REMOTE_POOL
        envpool.REMOTE_POOL = functools.partial(RayEnvPool, num_workers=num_workers)
        try:
            yield
        finally:
            envpool.REMOTE_POOL = previous


@contextlib.contextmanager
def connected(address: str) -> Iterator[Any]:
    """``ray`` connected to ``address`` for the block; leaves the cluster afterwards only if the block joined it."""
    ray = _import_ray()
    joined = not ray.is_initialized()
    ray = connect(address)
    try:
        yield ray
    finally:
        if joined:
            disconnect()


# --------------------------------------------------------------------------------------------- evaluation
def checkpoint_bytes(checkpoint_dir: str | Path) -> dict[str, bytes]:
    """The files ``load_checkpoint`` reads (JSON + safetensors), validated here first so errors name the driver's path."""
    from tether.policies.checkpoint import META_FILE, WEIGHTS_FILE, load_checkpoint

    load_checkpoint(checkpoint_dir)
    d = Path(checkpoint_dir)
    return {name: (d / name).read_bytes() for name in (META_FILE, WEIGHTS_FILE)}


def _eval_chunk(files: dict[str, bytes], env_id: str, start: int, count: int, seed: int, backend: str | None,
                dr: str | None, env_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """Episodes ``start .. start+count-1`` (reset seeds ``seed+start ...``), run in a Ray worker."""
    import torch

    from tether.policies.checkpoint import load_policy
    from tether.policies.evaluation import evaluate_policy

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="tether-ckpt-") as tmp:
        for name, data in files.items():
            (Path(tmp) / Path(name).name).write_bytes(data)
        policy = load_policy(tmp)
    r = evaluate_policy(policy, env_id, episodes=count, seed=seed + start, backend=backend, dr=dr,
                        env_kwargs=env_kwargs)
    import ray

    return {"returns": [float(x) for x in r.returns], "lengths": [int(x) for x in r.lengths],
            "successes": None if r.successes is None else [bool(x) for x in r.successes],
            "where": {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
                      "pid": os.getpid(), "episodes": [start, start + count]}}


@functools.cache
def _eval_task() -> Any:
    return _import_ray().remote(num_cpus=1)(_eval_chunk)


def evaluate(
    checkpoint_dir: str | Path,
    env_id: str | None = None,
    episodes: int = 10,
    address: str | None = None,
    *,
    seed: int = 0,
    backend: str | None = None,
    dr: str | None = None,
    num_workers: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> Any:
    """Evaluate a checkpoint on the cluster; returns the same :class:`EvalResult` local evaluation would.

    Episodes are split into contiguous blocks, one per worker (default: one per cluster CPU); block ``[a, b)``
    runs with reset seeds ``seed+a .. seed+b-1``, so every episode sees the seed it would see locally and the
    per-episode returns match ``evaluate_policy`` exactly for policies whose ``act`` is deterministic and
    stateless across episodes. ``extra["workers"]`` says where each block ran.
    """
    from tether.policies.checkpoint import load_checkpoint
    from tether.policies.evaluation import EvalResult

    if episodes < 1:
        raise TetherError(f"episodes={episodes}; expected >= 1")
    if env_id is None:
        ckpt = load_checkpoint(checkpoint_dir)
        env_id = ckpt.extra.get("env_id") or ckpt.contract.metadata.get("env_id")
        if not env_id:
            raise TetherError(f"checkpoint {checkpoint_dir} does not record its env; pass env_id")
    files = checkpoint_bytes(checkpoint_dir)
    ray = _ray_for(address)
    k = min(episodes, num_workers if num_workers is not None else max(cluster_cpus(ray), 1))
    if k < 1:
        raise TetherError(f"num_workers={num_workers}; expected >= 1")
    blocks = [b for b in np.array_split(np.arange(episodes), k) if len(b)]
    ref = ray.put(files)
    task = _eval_task()
    futures = [task.options(scheduling_strategy="SPREAD").remote(ref, env_id, int(b[0]), len(b), int(seed), backend,
                                                                 dr, env_kwargs) for b in blocks]
    parts = _get(ray, futures, f"evaluating {checkpoint_dir} on {env_id}")
    successes = None if any(p["successes"] is None for p in parts) else np.asarray(
        [s for p in parts for s in p["successes"]])
    return EvalResult(np.asarray([x for p in parts for x in p["returns"]]),
                      np.asarray([x for p in parts for x in p["lengths"]]), successes,
                      extra={"workers": [p["where"] for p in parts], "env_id": env_id})


__all__ = ["RayEnvPool", "RayVectorEnv", "checkpoint_bytes", "cluster_cpus", "connect", "connected", "disconnect", "evaluate",
           "make_ray_vector_env", "use_ray"]
