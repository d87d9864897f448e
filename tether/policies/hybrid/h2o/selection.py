"""The final choice when fine-tuning: an actor snapshot the critic prefers on held-out real states, or the start."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from tether.policies.hybrid.h2o.learner import H2O


def select_actor(agent: H2O, held: dict[str, np.ndarray], snapshots: list[tuple[int, dict[str, torch.Tensor]]],
                 margin: float, max_shift: float = 0.0) -> dict[str, Any]:
    """Keep the snapshot the final critic values most on held-out real states, or go back to the start actor.

    Why: the test episodes must never choose the policy, and the simulated return says nothing about the robot.
    The held-out real states were seen by neither the critic, the classifiers nor the actor; a snapshot replaces
    the start only if its value there beats the start's by ``margin`` (a share of |Q|), so an update that
    the critic cannot support on real states is undone.
    """
    obs = torch.from_numpy(np.ascontiguousarray(held["obs"]))
    start = agent.value_of(agent.reference, obs)
    final_state = copy.deepcopy(agent.sac.policy.state_dict())
    best_step, best_val, best_state = -1, start, None
    scores = []
    with torch.no_grad():
        ref_a = agent.reference.deterministic(obs)
    for step, state in snapshots + [(-2, final_state)]:
        agent.sac.policy.load_state_dict(state)
        val = agent.value_of(agent.sac.policy, obs)
        with torch.no_grad():
            shift = float((agent.sac.policy.deterministic(obs) - ref_a).pow(2).sum(-1).mean().sqrt())
        scores.append([step, val, shift])
        if val > best_val and val > start + margin * abs(start) and (max_shift <= 0 or shift <= max_shift):
            best_step, best_val, best_state = step, val, state
    if best_state is None:
        agent.sac.policy.load_state_dict(agent.reference.state_dict())
        chosen = "start"
    else:
        agent.sac.policy.load_state_dict(best_state)
        chosen = "final" if best_step == -2 else f"step {best_step}"
    agent.snapshots = snapshots  # type: ignore[attr-defined]
    return {"chosen": chosen, "start_value": start, "best_value": best_val, "held_out": int(len(obs)),
            "scores": scores}


__all__ = ["select_actor"]
