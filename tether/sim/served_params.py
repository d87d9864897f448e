"""The hidden parameters of a served sim robot (``tether robot serve --params FILE``, ``tether pipeline
--real-params FILE``): the one schema both read, checked before any simulator starts.

Why here: the values are simulation parameters (DR terms, scale factors on backend targets, an env id of a
robot), so ``sim`` owns their meaning; ``ros.robot_server`` (which serves them) and ``pipeline`` (which writes
and passes them) call ``load_served_params`` / ``check_served_params``. Data never becomes code: ``env_id`` must
be one of Tether's registered ids (of the same robot when the robot is known), never Gymnasium's ``module:id``.

Schema (every key optional)::

    dr       DR terms (a list of term objects, as tether.sim.randomization) or a preset name
    scale    {backend target: factor or [per-element factors]}: finite, > 0 for mass/gain/strength/time constant
             (>= 0 otherwise), at most MAX_SCALE
    goal     [x, y, z] (arm target / quadrotor set point), finite, |x| <= MAX_GOAL m
    command  [vx, vy, yaw rate] for a legged robot, finite, |x| <= MAX_COMMAND
    seed     whole number in 0..2**32-1
    env_id   a registered tether/ id of the robot
    bridge   {option: JSON scalar or list}: keyword options of the robot's bridge (names checked by the bridge)

A bare JSON list is read as ``{"dr": [...]}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tether.errors import TetherError
from tether.validation import (
    ValidationError, check_finite, expect_dict, expect_int, expect_list, expect_number, expect_numbers, expect_one_of,
    expect_str,
    read_json,
)

PARAM_KEYS = ("dr", "scale", "goal", "command", "seed", "env_id", "bridge")
POSITIVE_TARGETS = ("body_mass", "actuator_gain", "actuator_strength", "motor_time_constant")
MAX_SCALE = 1000.0
MAX_GOAL = 100.0
MAX_COMMAND = 100.0
MAX_PARAMS_BYTES = 1 << 20


def check_served_params(data: Any, source: str, robot: str | None = None) -> dict[str, Any]:
    """``data`` (parsed JSON) checked against the schema above; returns it as a dict (a list becomes {"dr": ...}).
    Errors are one ``TetherError`` line naming ``source``, the field and what was expected."""
    from tether.sim.randomization import BACKEND_TARGETS, terms_from_data
    from tether.sim.registry import all_env_ids, env_id_from_file

    if isinstance(data, list):
        data = {"dr": data}
    data = expect_dict(data, source, allowed=PARAM_KEYS)
    check_finite(data, source)
    if "dr" in data:
        if isinstance(data["dr"], str):  # a preset's name, never a path: a data file does not name files to read
            from tether.sim.robots import make_robot

            presets = make_robot(robot).dr_presets if robot is not None else {"none": [], "default": [], "wide": []}
            expect_one_of(expect_str(data["dr"], f"{source}: dr", max_len=64), f"{source}: dr", presets)
        else:
            terms_from_data(data["dr"], f"{source}: dr")
    scale = expect_dict(data.get("scale", {}), f"{source}: scale", allowed=BACKEND_TARGETS)
    for target, factor in scale.items():
        lo_open = target in POSITIVE_TARGETS
        where = f"{source}: scale.{target}"
        factors = factor if isinstance(factor, list) else [factor]
        for i, f in enumerate(expect_list(factors, where, min_len=1, max_len=10_000)):
            try:
                expect_number(f, where if not isinstance(factor, list) else f"{where}[{i}]", 0.0, MAX_SCALE,
                              lo_open=lo_open)
            except ValidationError as exc:
                raise ValidationError(f"{exc} ({'> 0' if lo_open else '>= 0'}: a scale factor on the nominal value)") \
                    from None
    if "goal" in data:
        expect_numbers(data["goal"], f"{source}: goal", size=3, lo=-MAX_GOAL, hi=MAX_GOAL)
    if "command" in data:
        expect_numbers(data["command"], f"{source}: command", size=3, lo=-MAX_COMMAND, hi=MAX_COMMAND)
    if "seed" in data:
        expect_int(data["seed"], f"{source}: seed", 0, 2**32 - 1)
    if "env_id" in data:
        eid = env_id_from_file(data["env_id"], source)
        if robot is not None and all_env_ids()[eid][0] != robot:
            raise TetherError(f"{source}: env_id {eid!r} is not an env of the {robot}; expected one of "
                              f"{sorted(k for k, v in all_env_ids().items() if v[0] == robot)}")
    bridge = expect_dict(data.get("bridge", {}), f"{source}: bridge", max_items=64)
    for key, value in bridge.items():
        expect_str(key, f"{source}: bridge key", max_len=64)
        if isinstance(value, dict):
            raise ValidationError(f"{source}: bridge.{key} is an object; expected a JSON scalar or list")
        if isinstance(value, list):
            expect_list(value, f"{source}: bridge.{key}", max_len=10_000)
    return dict(data)


def load_served_params(path: str | Path, robot: str | None = None, what: str = "params file") -> dict[str, Any]:
    """A served robot's params file, read bounded (1 MiB, 64 levels, a regular file or a link to one) and
    checked by ``check_served_params``."""
    source = f"{what} {str(path)!r}"
    return check_served_params(read_json(path, what, max_bytes=MAX_PARAMS_BYTES, follow_link=True), source, robot)


__all__ = ["PARAM_KEYS", "check_served_params", "load_served_params"]
