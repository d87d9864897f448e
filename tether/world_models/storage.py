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


def load_world_model(directory: str | Path, kind: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(metadata, tensors) of the stored model of ``kind`` in ``directory``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    for f in (META, WEIGHTS):
        if not (directory / f).is_file():
            raise TetherError(f"world model {directory} has no {f}; expected {META} and {WEIGHTS}")
    try:
        meta = json.loads((directory / META).read_text())
        tensors = load_file(str(directory / WEIGHTS))
    except (json.JSONDecodeError, OSError, RuntimeError, ValueError, SafetensorError) as exc:
        raise TetherError(f"world model {directory} is unreadable ({exc})") from None
    if meta.get("kind") != kind:
        raise TetherError(f"world model {directory} is a {meta.get('kind')!r}; expected {kind!r}")
    return meta, tensors


def load_weights(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], directory: str | Path) -> None:
    """Load ``tensors`` into ``module``; a mismatch with the config is a one-line error."""
    try:
        module.load_state_dict(dict(tensors))
    except RuntimeError as exc:
        raise TetherError(f"world model {directory} weights do not match its config ({exc})") from None


__all__ = ["META", "WEIGHTS", "detached", "load_weights", "load_world_model", "save_world_model"]
