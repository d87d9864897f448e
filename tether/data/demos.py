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
) -> Any:
    """Roll out ``episodes`` episodes (reset seeds ``seed, seed+1, ...``) and write them to ``out``.

    ``act(obs) -> normalised action``; None uses ``env.unwrapped.expert_action()``. ``max_steps`` cuts an
    episode short (recorded as a time limit). Returns the written Dataset.
    """
    from tether.data.dataset import Dataset, DatasetWriter, _component_names

    if episodes < 1:
        raise TetherError(f"episodes is {episodes}; expected >= 1")
    base = env.unwrapped
    contract = base.contract
    if act is None and not hasattr(base, "expert_action"):
        raise TetherError(f"env {getattr(env, 'spec', None) and env.spec.id} has no expert_action(); pass a policy")
    feats = {}
    if contract.privileged:
        feats[PRIVILEGED_KEY] = {"dtype": "float32", "shape": [contract.privileged_size],
                                 "names": _component_names(contract.privileged)}
    with DatasetWriter(out, contract, contract.rate_hz, features=feats, metadata=metadata, append=append) as w:
        for ep in range(episodes):
            obs, info = env.reset(seed=seed + ep)
            ret, steps, success = 0.0, 0, False
            while True:
                a = base.expert_action() if act is None else np.asarray(act(obs), dtype=np.float64).reshape(-1)
                extra = {}
                if feats:
                    extra[PRIVILEGED_KEY] = info.get("privileged", np.zeros(contract.privileged_size))
                nxt, r, term, trunc, info = env.step(a)
                steps += 1
                ret += float(r)
                cut = max_steps is not None and steps >= max_steps
                w.add_frame(obs, a, float(r), done=bool(term), truncated=bool(trunc or cut), **extra)
                obs = nxt
                if term or trunc or cut:
                    success = bool(info.get("success", info.get("is_success", False)))
                    break
            w.end_episode(success=success, final_obs=obs)
            if progress is not None:
                progress(ep, steps, ret, success)
    return Dataset(out)
