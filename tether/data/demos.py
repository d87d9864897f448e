"""Record env rollouts (the scripted expert by default, or any policy) into an episode dataset.

Observations are recorded before each step and the final observation after the last one, so a
time-limited episode keeps its last transition for offline RL. Sim-only privileged observations (what a
critic may see) ride along as ``observation.privileged`` when the env's contract declares them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tether.errors import TetherError

PRIVILEGED_KEY = "observation.privileged"


# episodes a bulk recording (the pipeline's demonstrations, DAgger's rounds) runs side by side: a scripted expert
# labels each step in Python, which a wider batch spreads over more worlds. 64 legged trot demonstrations took
# 33.0-33.5 s 8 at a time and 17.8-21.4 s 32 at a time, writing the same dataset (an episode is its seed's,
# whatever the batch; a deterministic policy acts on each row alone, so DAgger's rounds do not change either)
WIDE_BATCH = 32


def record_episodes(
    env: Any,
    out: str | Path,
    episodes: int,
    *,
    act: Callable[[np.ndarray], np.ndarray] | None = None,
    seed: int = 0,
    max_steps: int | None = None,
    metadata: dict[str, Any] | None = None,
    append: bool = False,
    progress: Callable[[int, int, float, bool], None] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    batch: int = 8,
    label: str = "executed",
    reset: Callable[[], None] | None = None,
) -> Any:
    """Roll out ``episodes`` episodes (episode ``k`` from reset seed ``seed + k``) and write them to ``out``.

    ``env``: a ``tether/`` id (its episodes run ``batch`` at a time on the batched core, ``env_kwargs`` such as
    backend and dr), or an env object (one episode at a time). ``act(obs batch) -> normalised actions``; None
    uses the task's scripted expert. ``max_steps`` cuts an episode short (recorded as a time limit). Episodes
    are written in seed order. Returns the written Dataset.

    ``label``: the action recorded with each observation - ``"executed"`` (what ``act`` or the expert did), or
    ``"expert"``: the scripted expert's action in the state ``act`` led to, while ``act`` drives (DAgger's
    relabelling, Ross et al. 2011: a cloned policy learns to recover from the states its own errors reach, which
    the expert's demonstrations never show it); rewards and success stay those of what was executed. ``reset``
    is called before each batch of episodes starts (a stateful policy's ``reset``: its window, its chunk).

    Measured (benchmarks/RESULTS.md, "Waypoints by imitation with DAgger"): a diffusion policy cloned from the
    quadrotor expert's waypoint flights crashed in every episode; one round of 64 of its own flights labelled by
    the expert took it to 100 % in sim. It did not help the legged trot, whose expert runs on a clock the policy
    does not see (labels for another gait's states contradict them).
    """
    if label not in ("executed", "expert"):
        raise TetherError(f"label {label!r}; expected 'executed' or 'expert'")
    from tether.data.dataset import Dataset, DatasetWriter, _component_names
    from tether.sim.vector import make_vec

    if episodes < 1:
        raise TetherError(f"episodes is {episodes}; expected >= 1")
    if isinstance(env, str):
        n = max(1, min(int(batch), episodes))
        make = lambda k: make_vec(env, k, autoreset=False, **(env_kwargs or {}))  # noqa: E731
    else:
        if act is None and not hasattr(env.unwrapped, "expert_action"):
            raise TetherError(f"env {getattr(env, 'spec', None) and env.spec.id} has no expert_action(); "
                              "pass a policy")
        n = 1
        make = lambda k: make_vec(lambda: env, 1)  # noqa: E731
    venv = make(n)
    contract = venv.contract if venv.contract is not None else env.unwrapped.contract
    feats = {}
    if contract.privileged:
        feats[PRIVILEGED_KEY] = {"dtype": "float32", "shape": [contract.privileged_size],
                                 "names": _component_names(contract.privileged)}
    done_eps = 0
    try:
        with DatasetWriter(out, contract, contract.rate_hz, features=feats, metadata=metadata, append=append) as w:
            while done_eps < episodes:
                k = min(n, episodes - done_eps)
                if k != venv.num_envs:
                    venv.close()
                    venv = make(k)
                if reset is not None:
                    reset()
                for ep in _run_round(venv, act, seed + done_eps, max_steps, bool(feats), label == "expert"):
                    for frame in ep["frames"]:
                        w.add_frame(*frame[:3], done=frame[3], truncated=frame[4],
                                    **({PRIVILEGED_KEY: frame[5]} if feats else {}))
                    w.end_episode(success=ep["success"], final_obs=ep["final_obs"])
                    if progress is not None:
                        progress(done_eps, len(ep["frames"]), ep["return"], ep["success"])
                    done_eps += 1
    finally:
        if isinstance(env, str):
            venv.close()
    return Dataset(out)


def _run_round(venv: Any, act: Callable[[np.ndarray], np.ndarray] | None, seed: int, max_steps: int | None,
               privileged: bool, expert_labels: bool = False) -> list[dict[str, Any]]:
    """One episode per env of ``venv``: its frames (obs, action, reward, terminated, truncated, privileged), the
    action being the expert's in that state where ``expert_labels`` (asked every step, so a stateful expert follows)."""
    n = venv.num_envs
    obs, priv = venv.reset_batch(seed)
    eps = [{"frames": [], "return": 0.0, "success": False, "final_obs": None} for _ in range(n)]
    live = np.ones(n, dtype=bool)
    steps = 0
    while live.any():
        expert = venv.expert_action() if act is None or expert_labels else None
        a = expert if act is None else np.asarray(act(obs), dtype=np.float64).reshape(n, -1)
        res = venv.step_batch(a)
        if expert_labels:
            a = expert
        steps += 1
        cut = max_steps is not None and steps >= max_steps
        for i in np.nonzero(live)[0]:
            ended = bool(res.terminated[i] or res.truncated[i] or cut)
            p = None if not privileged else (priv[i] if priv is not None else np.zeros(venv.privileged_size))
            eps[i]["frames"].append((obs[i], a[i], float(res.reward[i]), bool(res.terminated[i]),
                                     bool(res.truncated[i] or cut), p))
            eps[i]["return"] += float(res.reward[i])
            if ended:
                eps[i]["success"] = bool(res.success[i])
                eps[i]["final_obs"] = res.final_obs[i]
                live[i] = False
        obs, priv = res.obs, res.privileged
    return eps
