"""Known task rewards and terminations for imagined rollouts: the sim task's own objective, on torch tensors.

Why: a planner or model-based trainer that already knows the task's reward should not have to *learn* it. A
learned reward head adds error exactly where planning is most sensitive (near the optimum, where rewards
differ by little), so planners score candidates with the true reward and use the model only for dynamics.
The reward is not rewritten here: ``Task.objective`` is array-agnostic, so the function the env computes its
rewards with runs on the model's (obs, action, next_obs) tensors, split by contract field names. Functions are
looked up by name so a planner checkpoint records which one it uses (JSON, never code).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from tether.contract import IOContract
from tether.errors import TetherError
from tether.sim.tasks import TASKS

RewardFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
DoneFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

# reward name -> (robot, task): every task's objective, under the names planner checkpoints record
TASK_REWARDS: dict[str, tuple[str, str]] = {f"{robot}_{task}": (robot, task) for robot, task in TASKS}
# env id -> reward name, so `--algo mppi` on a tether env picks the task's reward by itself
ENV_REWARDS: dict[str, str] = {f"tether/{r.capitalize()}{t.capitalize()}-v0": f"{r}_{t}" for r, t in TASKS}


def task_reward(name: str, contract: IOContract) -> tuple[RewardFn, DoneFn]:
    """(reward_fn, done_fn) of the task registered under ``name``, for ``contract``'s observation layout.

    Both take (obs, normalised action, next_obs) tensors with any leading dims.
    """
    from tether.sim.tasks.base import const
    from tether.sim.tasks.scoring import task_for

    if name not in TASK_REWARDS:
        raise TetherError(f"unknown task reward {name!r}; expected one of {', '.join(TASK_REWARDS)}")
    robot, task_name = TASK_REWARDS[name]
    if (contract.robot, contract.task) != (robot, task_name):
        raise TetherError(f"task reward {name!r} is for {robot}/{task_name}; the contract is "
                          f"{contract.robot}/{contract.task}")
    task = task_for(contract)
    slices = contract.obs_slices
    lo, hi = contract.action_low, contract.action_high

    def evaluate(obs: torch.Tensor, action: torch.Tensor, nxt: torch.Tensor):
        split = lambda x: {k: x[..., s] for k, s in slices.items()}  # noqa: E731
        a = action.clamp(-1.0, 1.0)
        physical = const(a, lo) + (a + 1.0) * 0.5 * const(a, hi - lo)
        return task.objective(split(obs), physical, split(nxt), task.default_context())

    def reward(obs: torch.Tensor, action: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        return evaluate(obs, action, nxt)[0]

    def done(obs: torch.Tensor, action: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        return evaluate(obs, action, nxt)[1]

    return reward, done
