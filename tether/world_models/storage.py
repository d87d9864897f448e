"""How a world model is stored: ``weights.safetensors`` plus ``world_model.json`` (kind, sizes, config, extra).

Why one module: the ensemble and the latent model must be written and refused the same way (no pickle, so a
file never runs code; a missing file, an unreadable one or another kind of model is a one-line error naming
the directory), and each model should only say which tensors and which config it has.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from tether.errors import TetherError
from tether.policies.checkpoint import MAX_IO_SIZE, MAX_LAYER_WIDTH, MAX_LAYERS

WEIGHTS = "weights.safetensors"
META = "world_model.json"


def detached(module: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """``module``'s state as contiguous copies (what safetensors writes), keys prefixed with ``prefix``."""
    return {prefix + k: v.detach().contiguous().clone() for k, v in module.state_dict().items()}


def save_world_model(directory: str | Path, kind: str, obs_size: int, action_size: int, config: Any,
                     tensors: Mapping[str, torch.Tensor], extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``tensors`` and the metadata (``config``, a dataclass, as JSON; ``extra`` only when given)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(dict(tensors), str(directory / WEIGHTS))
    meta: dict[str, Any] = {"kind": kind, "obs_size": obs_size, "action_size": action_size,
                            "config": json.loads(json.dumps(asdict(config), default=list))}
    if extra is not None:
        meta["extra"] = dict(extra)
    (directory / META).write_text(json.dumps(meta, indent=2))
    return directory


# the bounds a policy checkpoint's config is held to; MAX_WIDTH bounds any size-like number here (hidden width,
# latent, channels, members, image side)
MAX_WIDTH = MAX_LAYER_WIDTH
SIZE_KEYS = ("members", "elites", "latent", "simnorm_group", "channels", "horizon", "num_q", "batch_size")


def _check_meta(meta: Any, directory: Path, kind: str, config_type: Any, available: int) -> dict[str, Any]:
    """world_model.json checked before a network is sized from it: types, bounds, and hidden widths the weights
    can hold (a 10**7-wide layer would otherwise be allocated before the weights are compared)."""
    import dataclasses

    from tether.validation import check_finite, expect_dict, expect_int, expect_list

    where = str(directory / META)
    meta = expect_dict(meta, where, required=("kind", "obs_size", "action_size", "config"),
                       allowed=("kind", "obs_size", "action_size", "config", "extra"))
    if meta["kind"] != kind:
        raise TetherError(f"world model {directory} is a {meta['kind']!r}; expected {kind!r}")
    obs = expect_int(meta["obs_size"], f"{where}: obs_size", 1, MAX_IO_SIZE)
    act = expect_int(meta["action_size"], f"{where}: action_size", 0, MAX_IO_SIZE)
    allowed = [f.name for f in dataclasses.fields(config_type)] if config_type is not None else None
    cfg = expect_dict(meta["config"], f"{where}: config", allowed=allowed)
    check_finite(cfg, f"{where}: config")
    for key in SIZE_KEYS:
        if key in cfg:
            expect_int(cfg[key], f"{where}: config.{key}", 1 if key != "horizon" else 0, MAX_WIDTH)
    shape = cfg.get("image_shape")
    if shape is not None:
        sides = [expect_int(n, f"{where}: config.image_shape[{i}]", 1, MAX_WIDTH)
                 for i, n in enumerate(expect_list(shape, f"{where}: config.image_shape", max_len=3, min_len=3))]
        if sides[0] * sides[1] * sides[2] > MAX_IO_SIZE:
            raise TetherError(f"{where}: config.image_shape {sides} holds more than {MAX_IO_SIZE} values; expected "
                              "a camera image size")
    widths = [expect_int(w, f"{where}: config.hidden[{i}]", 1, MAX_WIDTH)
              for i, w in enumerate(expect_list(cfg.get("hidden", []), f"{where}: config.hidden", max_len=MAX_LAYERS))]
    if widths:
        first_in = act + (int(cfg["latent"]) if "latent" in cfg else obs)  # a latent model's MLPs read latents
        implied = int(cfg.get("members", 1)) * (first_in * widths[0] + sum(a * b for a, b in zip(widths, widths[1:])))
        if implied > available:
            raise TetherError(f"{where}: config asks for networks of at least {implied:,} parameters but {WEIGHTS} "
                              f"holds {available:,} values; expected hidden widths that match the weights")
    return meta


def load_world_model(directory: str | Path, kind: str,
                     config_type: Any = None) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(metadata, tensors) of the stored model of ``kind`` in ``directory``, read bounded and checked (no link
    followed, JSON of bounded size and depth, config keys of ``config_type`` only, finite weights)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from tether.validation import ValidationError, read_json, walk_folder

    directory = Path(directory)
    try:
        for f in (META, WEIGHTS):
            if not (directory / f).is_file():
                raise TetherError(f"world model {directory} has no {f}; expected {META} and {WEIGHTS}")
        walk_folder(directory, "world model")  # a link anywhere inside is refused, never followed
        meta = read_json(directory / META, "world model metadata")
        try:
            tensors = load_file(str(directory / WEIGHTS))
        except (OSError, RuntimeError, ValueError, SafetensorError) as exc:
            raise TetherError(f"world model {directory} is unreadable ({exc}); expected a safetensors file") from None
        meta = _check_meta(meta, directory, kind, config_type, sum(int(t.numel()) for t in tensors.values()))
    except ValidationError as exc:
        raise TetherError(str(exc)) from None
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise TetherError(f"world model {directory}: tensor {name!r} holds NaN or infinite values; expected "
                              "finite weights")
    return meta, tensors


def load_weights(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], directory: str | Path) -> None:
    """Load ``tensors`` into ``module``; a mismatch with the config is a one-line error."""
    try:
        module.load_state_dict(dict(tensors))
    except RuntimeError as exc:
        raise TetherError(f"world model {directory} weights do not match its config ({exc})") from None


__all__ = ["META", "WEIGHTS", "detached", "load_weights", "load_world_model", "save_world_model"]
