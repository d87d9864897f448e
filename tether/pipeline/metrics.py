"""Task metrics computed from recorded observation vectors, so a served (or real) robot's run is scored the
same way as a sim episode without access to the simulator's state.

Each metric reads contract fields by name: tracking error over time and success by the task's own rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tether.contract import IOContract
from tether.errors import TetherError


@dataclass
class EpisodeScore:
    error: np.ndarray  # tracking error per control step (task units, e.g. m)
    success: bool
    final_error: float  # mean error over the last second


def _hover(contract: IOContract, obs: np.ndarray) -> EpisodeScore:
    from tether.sim.tasks.quadrotor import Hover

    f = contract.split_obs(obs)
    err = np.linalg.norm(f["pos_error"], axis=-1)
    tail = err[-max(1, int(contract.rate_hz)) :]
    crashed = bool(np.any(err > Hover.max_error))
    return EpisodeScore(err, bool(not crashed and tail.mean() < Hover.success_radius), float(tail.mean()))


def _reach(contract: IOContract, obs: np.ndarray) -> EpisodeScore:
    from tether.sim.tasks.arm import Reach

    f = contract.split_obs(obs)
    err = np.linalg.norm(f["target_pos"] - f["ee_pos"], axis=-1)
    tail = err[-max(1, int(contract.rate_hz // 2)) :]
    return EpisodeScore(err, bool(err[-1] < Reach.success_radius), float(tail.mean()))  # the task's rule: last step


def _stand(contract: IOContract, obs: np.ndarray) -> EpisodeScore:
    f = contract.split_obs(obs)
    tilt = np.arccos(np.clip(-f["projected_gravity"][..., 2], -1.0, 1.0))
    tail = tilt[-max(1, int(contract.rate_hz)) :]
    return EpisodeScore(tilt, bool(np.all(tilt < 0.5)), float(tail.mean()))


METRICS: dict[tuple[str, str], tuple[str, Callable[[IOContract, np.ndarray], EpisodeScore]]] = {
    ("quadrotor", "hover"): ("position error (m)", _hover),
    ("arm", "reach"): ("end-effector error (m)", _reach),
    ("legged", "stand"): ("base tilt (rad)", _stand),
}


def score(contract: IOContract, obs: np.ndarray) -> EpisodeScore:
    key = (contract.robot, contract.task)
    if key not in METRICS:
        raise TetherError(f"no recorded-run metric for {contract.robot}/{contract.task}; expected one of "
                          f"{', '.join(f'{r}/{t}' for r, t in METRICS)}")
    if len(obs) == 0:
        raise TetherError("recorded run has no observations; expected at least one control step")
    return METRICS[key][1](contract, np.asarray(obs, dtype=np.float64))


def error_label(contract: IOContract) -> str:
    return METRICS.get((contract.robot, contract.task), ("error", None))[0]
