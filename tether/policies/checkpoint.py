"""Checkpoints: a directory of ``weights.safetensors`` + ``checkpoint.json``, and the policy-class registry.

Why this shape: a checkpoint must be safe to open (no pickle, so a file from the internet or a robot's disk can
never run code), self-describing (the IOContract, algorithm config, normalisation stats, the DR terms it was
trained under and the library versions travel with the weights) and tamper-evident (a SHA-256 of the weights
file and a manifest of every tensor's name, dtype and shape are checked on load, so a truncated copy or a
hand-edited file is refused with a message naming the problem, never half-loaded).

Layout::

    DIR/weights.safetensors   every tensor (network parameters, normaliser stats, ...), bit-exact
    DIR/checkpoint.json       {"format": 1, "kind", "contract", "config", "dr_terms", "extra", "versions",
                               "weights_sha256", "tensors": {name: {"dtype", "shape"}}}

Policy classes register themselves with ``@register_policy("kind")`` and implement
``from_checkpoint(ckpt) -> policy``; ``load_policy(dir)`` dispatches on the stored kind.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import torch

from tether.contract import ContractError, IOContract
from tether.errors import TetherError

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
META_FILE = "checkpoint.json"

T = TypeVar("T")

_POLICY_CLASSES: dict[str, type] = {}

# Policy kinds whose classes live in modules that may not be imported yet when a checkpoint is loaded; importing
# the module runs its @register_policy decorator. Add a line here when you add a policy class.
_KIND_MODULES: dict[str, str] = {
    "gaussian_mlp": "tether.policies.gaussian",
    "diffusion": "tether.policies.diffusion",
    "flow": "tether.policies.flow",
    "vgps": "tether.policies.vgps",
    "action_replay": "tether.policies.replay",
    # kinds defined in packages that build on policies, named here so load_policy finds them from anywhere
    "planner": "tether.world_models.planners",
}


class CheckpointError(TetherError):
    """A checkpoint directory is missing, corrupt, of an unknown kind, or incompatible with what was expected."""


@dataclass(frozen=True)
class Checkpoint:
    """Everything read from a checkpoint directory; tensors are CPU tensors exactly as saved."""

    directory: Path
    kind: str
    tensors: dict[str, torch.Tensor]
    config: dict[str, Any]
    contract: IOContract
    dr_terms: list[Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    weights_sha256: str = ""

    def tensor(self, name: str) -> torch.Tensor:
        """One tensor by name; a missing one is a CheckpointError naming it and what is there."""
        try:
            return self.tensors[name]
        except KeyError:
            raise CheckpointError(
                f"checkpoint {self.directory} ({self.kind}) has no tensor {name!r}; "
                f"it has {sorted(self.tensors)[:20]}{' ...' if len(self.tensors) > 20 else ''}"
            ) from None

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Tensors under ``prefix`` with the prefix stripped (for ``module.load_state_dict``)."""
        return {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}

    def load_module(self, module: torch.nn.Module, prefix: str = "") -> None:
        """Load a module's state strictly, turning missing/unexpected/shape errors into a CheckpointError."""
        sd = self.state_dict(prefix)
        expected = module.state_dict()
        missing = sorted(set(expected) - set(sd))
        unexpected = sorted(set(sd) - set(expected))
        if missing or unexpected:
            raise CheckpointError(
                f"checkpoint {self.directory} ({self.kind}) does not fit the network: "
                f"missing tensors {[prefix + m for m in missing]}, unexpected {[prefix + u for u in unexpected]}"
            )
        for k, v in expected.items():
            if tuple(v.shape) != tuple(sd[k].shape):
                raise CheckpointError(
                    f"checkpoint tensor {prefix + k!r} has shape {tuple(sd[k].shape)}; "
                    f"the network expects {tuple(v.shape)}"
                )
        module.load_state_dict(sd, strict=True)


# --------------------------------------------------------------------------------------------- registry
def register_policy(kind: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: make ``load_policy`` build checkpoints of ``kind`` with ``cls.from_checkpoint``."""

    def deco(cls: type[T]) -> type[T]:
        if not hasattr(cls, "from_checkpoint"):
            raise TypeError(f"policy class {cls.__name__} must define classmethod from_checkpoint(ckpt)")
        existing = _POLICY_CLASSES.get(kind)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"policy kind {kind!r} is already registered by {existing.__qualname__}")
        _POLICY_CLASSES[kind] = cls
        cls.kind = kind  # type: ignore[attr-defined]
        return cls

    return deco


def register_policy_module(kind: str, module: str) -> None:
    """Tell the loader which module defines ``kind`` so ``load_policy`` can import it on demand."""
    _KIND_MODULES[kind] = module


def policy_class(kind: str) -> type:
    if kind not in _POLICY_CLASSES and kind in _KIND_MODULES:
        importlib.import_module(_KIND_MODULES[kind])
    try:
        return _POLICY_CLASSES[kind]
    except KeyError:
        known = sorted(set(_POLICY_CLASSES) | set(_KIND_MODULES))
        raise CheckpointError(f"unknown policy kind {kind!r}; expected one of {', '.join(known)}") from None


def registered_policy_kinds(import_all: bool = True) -> dict[str, type]:
    """Every known policy class by kind (importing lazily declared modules when ``import_all``)."""
    if import_all:
        for kind, mod in list(_KIND_MODULES.items()):
            if kind not in _POLICY_CLASSES:
                try:
                    importlib.import_module(mod)
                except ImportError:
                    continue
    return dict(sorted(_POLICY_CLASSES.items()))


# --------------------------------------------------------------------------------------------- versions / hash
def library_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for dist in ("tether", "torch", "numpy", "mujoco", "safetensors"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _jsonable(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{what} is not JSON-serialisable ({exc}); expected plain dicts/lists/numbers") from None


# --------------------------------------------------------------------------------------------- save / load
def save_checkpoint(
    directory: str | Path,
    *,
    kind: str,
    tensors: Mapping[str, torch.Tensor],
    config: Mapping[str, Any],
    contract: IOContract,
    dr_terms: list[Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``directory`` (created if needed; existing checkpoint files are replaced). Returns the path."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not isinstance(contract, IOContract):
        raise CheckpointError(f"contract is a {type(contract).__name__}; expected an IOContract")
    flat: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f"tensor {name!r} is a {type(t).__name__}; expected a torch.Tensor")
        # clone: safetensors refuses tensors that share storage, and we must not alias live parameters
        flat[name] = t.detach().to("cpu").contiguous().clone()
    manifest = {k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape)} for k, v in flat.items()}
    weights = directory / WEIGHTS_FILE
    tmp = directory / (WEIGHTS_FILE + ".tmp")
    save_file(flat, str(tmp), metadata={"kind": kind})
    tmp.replace(weights)
    meta = {
        "format": FORMAT_VERSION,
        "kind": kind,
        "contract": contract.to_dict(),
        "config": _jsonable(dict(config), "config"),
        "dr_terms": _jsonable(dr_terms, "dr_terms") if dr_terms is not None else None,
        "extra": _jsonable(dict(extra or {}), "extra"),
        "versions": library_versions(),
        "weights_sha256": _sha256(weights),
        "tensors": manifest,
    }
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return directory


def load_checkpoint(directory: str | Path, *, verify_hash: bool = True) -> Checkpoint:
    """Read and validate a checkpoint directory (JSON + safetensors only: opening it never runs code)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist; expected a directory with "
                              f"{META_FILE} and {WEIGHTS_FILE}")
    meta_path, weights = directory / META_FILE, directory / WEIGHTS_FILE
    for p in (meta_path, weights):
        if not p.is_file():
            raise CheckpointError(f"checkpoint {directory} has no {p.name}; expected {META_FILE} and {WEIGHTS_FILE}")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{meta_path} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{meta_path} holds a {type(meta).__name__}; expected a JSON object")
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{meta_path} has format {meta.get('format')!r}; this Tether reads format {FORMAT_VERSION}")
    for key in ("kind", "contract", "config", "weights_sha256", "tensors"):
        if key not in meta:
            raise CheckpointError(f"{meta_path} is missing key {key!r}")
    if verify_hash:
        digest = _sha256(weights)
        if digest != meta["weights_sha256"]:
            raise CheckpointError(
                f"{weights} is corrupt or was modified: SHA-256 {digest[:16]}… != recorded {meta['weights_sha256'][:16]}…"
            )
    try:
        tensors = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{weights} is not a readable safetensors file ({exc})") from None
    manifest: dict[str, Any] = meta["tensors"]
    missing = sorted(set(manifest) - set(tensors))
    if missing:
        raise CheckpointError(f"{weights} is missing tensors {missing} listed in {META_FILE}")
    for name, spec in manifest.items():
        t = tensors[name]
        if list(t.shape) != list(spec["shape"]) or str(t.dtype).removeprefix("torch.") != spec["dtype"]:
            raise CheckpointError(
                f"tensor {name!r} is {str(t.dtype)}{list(t.shape)}; {META_FILE} says {spec['dtype']}{spec['shape']}"
            )
    try:
        contract = IOContract.from_dict(meta["contract"])
    except ContractError as exc:
        raise CheckpointError(f"{meta_path} has a bad contract: {exc}") from None
    return Checkpoint(
        directory=directory,
        kind=str(meta["kind"]),
        tensors=tensors,
        config=dict(meta["config"]),
        contract=contract,
        dr_terms=meta.get("dr_terms"),
        extra=dict(meta.get("extra") or {}),
        versions=dict(meta.get("versions") or {}),
        weights_sha256=str(meta["weights_sha256"]),
    )


def load_policy(
    directory: str | Path,
    expected_contract: IOContract | None = None,
    *,
    expected_kind: str | None = None,
    check_rate: bool = True,
) -> Any:
    """Load a checkpoint and build its policy; refuse it if its contract does not match ``expected_contract``."""
    ckpt = load_checkpoint(directory)
    if expected_kind is not None and ckpt.kind != expected_kind:
        raise CheckpointError(f"checkpoint {ckpt.directory} holds a {ckpt.kind!r} policy; expected {expected_kind!r}")
    if expected_contract is not None:
        try:
            ckpt.contract.check_compatible(expected_contract, check_rate=check_rate, what="env")
        except ContractError as exc:
            raise CheckpointError(f"checkpoint {ckpt.directory}: {exc}") from None
    cls = policy_class(ckpt.kind)
    return cls.from_checkpoint(ckpt)


__all__ = [
    "Checkpoint",
    "CheckpointError",
    "load_checkpoint",
    "load_policy",
    "policy_class",
    "register_policy",
    "register_policy_module",
    "registered_policy_kinds",
    "save_checkpoint",
]
