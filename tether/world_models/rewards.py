"""Known task rewards and terminations as batched torch functions of (obs, action, next_obs).

Why: a planner or model-based trainer that already knows the task's reward (it is written down in the sim
task, and it is a function of the observation) should not have to *learn* it. A learned reward head adds
error exactly where planning is most sensitive (near the optimum, where rewards differ by little), so the
hover planner scores candidates with the true shaped reward and uses the model only for dynamics. Functions
are looked up by name so a planner checkpoint can record which one it uses (JSON, never code).

Each function mirrors the sim task's ``evaluate`` (tether.sim.tasks); observation slices come from the
contract by field name, never by position.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from tether.contract import IOContract
from tether.errors import TetherError

RewardFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
DoneFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _slice(contract: IOContract, name: str) -> slice:
    try:
        return contract.obs_slices[name]
    except KeyError:
        raise TetherError(f"contract {contract.robot}/{contract.task} has no observation field {name!r}; "
                          f"expected fields {list(contract.obs_slices)}") from None


def quadrotor_hover(contract: IOContract) -> tuple[RewardFn, DoneFn]:
    """tether.sim.tasks.quadrotor: 1 - |e| - 0.05 |ω| - 0.05 |v|, -10 and terminate on a crash.

    A crash is |e| > 2 m, tilt > 1.4 rad or height < 3 cm (the goal is 1 m up, so height = 1 - e_z).
    """
    pe, rm = _slice(contract, "pos_error"), _slice(contract, "base_rotmat")
    lv, av = _slice(contract, "base_lin_vel"), _slice(contract, "base_ang_vel")
    cos_max_tilt = math.cos(1.4)

    def done(obs: torch.Tensor, action: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        e = nxt[..., pe]
        return (e.norm(dim=-1) > 2.0) | (nxt[..., rm][..., 8] < cos_max_tilt) | (1.0 - e[..., 2] < 0.03)

    def reward(obs: torch.Tensor, action: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        r = 1.0 - nxt[..., pe].norm(dim=-1) - 0.05 * nxt[..., av].norm(dim=-1) - 0.05 * nxt[..., lv].norm(dim=-1)
        return r - 10.0 * done(obs, action, nxt).to(r.dtype)

    return reward, done


def arm_reach(contract: IOContract, precision_bonus: float = 0.2) -> tuple[RewardFn, DoneFn]:
    """tether.sim.tasks.arm Reach: -d + bonus·(1 - tanh(d / 5 cm)), d = |ee - target|; never terminates.

    ``precision_bonus`` is the task's ``Reach.precision_bonus`` (tests check this mirror against the env).
    """
    ee, tg = _slice(contract, "ee_pos"), _slice(contract, "target_pos")

    def reward(obs: torch.Tensor, action: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        d = (nxt[..., ee] - nxt[..., tg]).norm(dim=-1)
        return -d + precision_bonus * (1.0 - torch.tanh(d / 0.05))

    def done(obs: torch.Tensor, action: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        return torch.zeros(nxt.shape[:-1], dtype=torch.bool)

    return reward, done


TASK_REWARDS: dict[str, Callable[[IOContract], tuple[RewardFn, DoneFn]]] = {
    "quadrotor_hover": quadrotor_hover,
    "arm_reach": arm_reach,
}
# env id -> reward name, so `--algo mppi` on a tether env picks the task's reward by itself
ENV_REWARDS: dict[str, str] = {
    "tether/QuadrotorHover-v0": "quadrotor_hover",
    "tether/ArmReach-v0": "arm_reach",
}


def task_reward(name: str, contract: IOContract) -> tuple[RewardFn, DoneFn]:
    """(reward_fn, done_fn) registered under ``name`` for ``contract``'s observation layout."""
    try:
        make = TASK_REWARDS[name]
    except KeyError:
        raise TetherError(f"unknown task reward {name!r}; expected one of {', '.join(TASK_REWARDS)}") from None
    return make(contract)
