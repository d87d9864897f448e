"""Gymnasium ids ``tether/<Robot><Task>-v0`` for every robot × task, registered on ``import tether.sim``."""

from __future__ import annotations

import gymnasium as gym

from tether.errors import TetherError
from tether.sim.tasks import TASKS

# Extra ids for task variants: id suffix -> (robot, task, kwargs)
VARIANTS: dict[str, tuple[str, str, dict]] = {
    "tether/LeggedVelocityRough-v0": ("legged", "velocity", {"terrain": "rough"}),
}


def env_id(robot: str, task: str, variant: str = "") -> str:
    return f"tether/{robot.capitalize()}{task.capitalize()}{variant}-v0"


def all_env_ids() -> dict[str, tuple[str, str, dict]]:
    ids = {env_id(r, t): (r, t, {}) for (r, t) in TASKS}
    ids.update({k: v for k, v in VARIANTS.items()})
    return ids


def register_all() -> None:
    """Register every id; also the ``gymnasium.envs`` entry point (pyproject). Gymnasium 0.26-0.29 call it with
    no arguments from inside ``import gymnasium`` (``load_plugin_envs``), before ``gymnasium.register`` exists,
    so it registers through ``gymnasium.envs.registration``. Gymnasium >= 1.0 no longer loads that group: there
    ``import tether.sim`` (or the id ``"tether.sim:tether/ArmReach-v0"``) registers."""
    from gymnasium.envs.registration import register, registry

    for eid, (robot, task, kwargs) in all_env_ids().items():
        if eid not in registry:
            register(id=eid, entry_point="tether.sim.env:TetherEnv",
                     vector_entry_point="tether.sim.vector:vector_entry_point",
                     kwargs={"robot": robot, "task": task, **kwargs}, disable_env_checker=True)


def parse_env_id(eid: str) -> tuple[str, str, dict]:
    ids = all_env_ids()
    if not isinstance(eid, str) or eid not in ids:
        raise TetherError(f"unknown env id {eid!r}; expected one of {', '.join(sorted(ids))}")
    return ids[eid]


def env_id_from_file(value: object, source: str) -> str:
    """An env id read from a file (checkpoint ``extra.env_id``, contract metadata, dataset metadata, a served
    robot's params): it must be one of Tether's own registered ids, checked before anything is made.

    Why: Gymnasium's ``make("module:Env-v0")`` imports ``module``, and any other registered id runs that entry
    point; a file must never choose code to run. A plain Gymnasium id (``Pendulum-v1``) is accepted only when
    the user types it on the command line; from a file it is refused with a message saying so.
    """
    ids = all_env_ids()
    if isinstance(value, str) and value in ids:
        return value
    shown = repr(value)[:80]
    if isinstance(value, str) and ":" in value:
        why = "a 'module:id' form would import code and is never taken from a file"
    else:
        why = "only Tether's own env ids are taken from a file; type any other env id on the command line"
    raise TetherError(f"env id {shown} recorded in {source} is not a Tether env id ({why}); expected one of "
                      f"{', '.join(sorted(ids))}")


def make(eid: str, **kwargs) -> gym.Env:
    """``gymnasium.make`` with a one-line error for unknown ids (only Tether's own: no ``module:`` import)."""
    parse_env_id(eid)
    register_all()
    return gym.make(eid, **kwargs)
