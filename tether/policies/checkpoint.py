"""Checkpoints: a directory of ``weights.safetensors`` + ``checkpoint.json`` + ``manifest.json``, and the
policy-class registry.

Why this shape: a checkpoint must be safe to open (no pickle, so a file from the internet or a robot's disk can
never run code), self-describing (the IOContract, algorithm config, normalisation stats, the DR terms it was
trained under and the library versions travel with the weights) and tamper-evident.

Layout::

    DIR/weights.safetensors   every tensor (network parameters, normaliser stats, ...), bit-exact
    DIR/checkpoint.json       {"format": 2, "kind", "contract", "config", "dr_terms", "extra", "versions",
                               "weights_sha256", "tensors": {name: {"dtype", "shape"}}}
    DIR/manifest.json         {"format": 2, "files": {relative path: SHA-256}, ["hmac_sha256"]}: every file of
                               the folder (JSON included, a nested base policy's files too), written last

What loading checks, before anything is built (each failure is one ``CheckpointError`` line):

- the folder holds only regular files and folders: a symbolic link (e.g. weights pointing outside the folder),
  FIFO, socket or device anywhere inside is refused, never followed;
- every file listed in ``manifest.json`` exists and has its SHA-256 (``checkpoint.json`` included), and the
  bytes that were hashed are the bytes that are parsed; files not listed are never read;
- every JSON file is read bounded (``tether.validation``: 16 MiB, 64 levels of nesting) and schema-checked:
  field types, the contract's sizes, finite numbers in ``config`` and ``dr_terms``, network shapes within the
  caps below, and ``extra.env_id`` / ``contract.metadata.env_id`` without Gymnasium's ``module:`` form (an env
  id from a file is used only if it is one of Tether's own registered ids: ``recorded_env_id``);
- every floating-point tensor is finite (a NaN weight or normaliser statistic would put NaN actions on a robot);
  the one exception is recorded data replayed as is (``RECORDED_TENSORS``: an action-replay policy's actions).

Config caps (documented limits, far above any Tether network): a ``hidden`` list has at most ``MAX_LAYERS`` (64)
widths of at most ``MAX_LAYER_WIDTH`` (65 536), and the parameters those widths imply (at least
obs_size x h1 + sum h_i x h_(i+1) + sum h_i) must be present in the weights file, so a config asking for a
10**6-wide layer is refused before a single byte is allocated; ``horizon``, ``n_obs_steps``,
``n_action_steps``, ``history``, ``time_dim``, ``members``, ``elites``, ``num_candidates``, ``n`` are at most
``MAX_SHAPE_INT`` (4096); ``obs_size``/``action_size`` at most 2**20; ``norm_clip`` is finite and > 0.

What the manifest protects against, honestly: corruption, truncation, a partial copy and an edit of any one
file (``checkpoint.json`` included) are detected. It does NOT stop someone who can write the folder from
editing a file and recomputing ``manifest.json`` too: the manifest is integrity, not authenticity. For that,
set ``TETHER_CHECKPOINT_KEY_FILE`` to a file holding a secret key (>= 16 bytes) on the machines that train and
deploy: ``save_checkpoint`` then adds an HMAC-SHA256 of the manifest, and ``load_checkpoint`` refuses any
checkpoint without a valid one. A shared secret suits one operator's own machines; public-key signatures
(ed25519, so a robot holds only a verifying key) are future work.

Policy classes register themselves with ``@register_policy("kind")`` and implement
``from_checkpoint(ckpt) -> policy``; ``load_policy(dir)`` dispatches on the stored kind.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import torch

from tether.contract import ContractError, IOContract
from tether.errors import TetherError
from tether.validation import (
    SHA256_HEX, ValidationError, check_finite, check_regular_file, contract_from_data, expect_dict,
    expect_env_id_text, expect_int, expect_list, expect_number, expect_str, loads_json, sha256_file, walk_folder,
)

FORMAT_VERSION = 2
WEIGHTS_FILE = "weights.safetensors"
META_FILE = "checkpoint.json"
MANIFEST_FILE = "manifest.json"
KEY_ENV = "TETHER_CHECKPOINT_KEY_FILE"
MAX_META_BYTES = 16 * 2**20
MAX_WEIGHTS_BYTES = 4 * 2**30
MAX_FILES = 10_000
MAX_LAYERS = 64
MAX_LAYER_WIDTH = 65_536
MAX_SHAPE_INT = 4096
MAX_IO_SIZE = 1 << 20
SHAPE_KEYS = ("horizon", "n_obs_steps", "n_action_steps", "history", "time_dim", "members", "elites",
              "num_candidates", "n", "inference_steps", "num_train_steps")  # the last two: network calls per act
DTYPES = {"float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"}
_KIND = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Tensors that are recorded data replayed as is, not parameters: exempt from the finite check (fault-injection
# tests replay NaN/inf actions on purpose to show the CommandGuard holds; the sim holds the neutral command too).
RECORDED_TENSORS: dict[str, tuple[str, ...]] = {"action_replay": ("actions",)}

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
    files: dict[str, str] = field(default_factory=dict)  # manifest: relative path -> SHA-256, all verified

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
        for name, sub in module.named_modules():  # what a module's own state must satisfy (e.g. variances >= 0)
            check = getattr(sub, "check_loaded", None)
            if callable(check):
                try:
                    check()
                except TetherError as exc:
                    raise CheckpointError(f"checkpoint {self.directory}: tensors {prefix + name}.*: {exc}") from None


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
    return sha256_file(path)


def _jsonable(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{what} is not JSON-serialisable ({exc}); expected plain dicts/lists/numbers") from None


def signing_key() -> bytes | None:
    """The secret key named by ``$TETHER_CHECKPOINT_KEY_FILE`` (None when unset): checkpoints are then signed on
    save and must carry a valid signature on load."""
    path = os.environ.get(KEY_ENV)
    if not path:
        return None
    try:
        key = check_regular_file(path, f"${KEY_ENV}", max_bytes=4096).read_bytes()
    except (ValidationError, OSError) as exc:
        raise CheckpointError(f"checkpoint signing key: {exc}") from None
    if len(key.strip()) < 16:
        raise CheckpointError(f"${KEY_ENV} {path!r} holds {len(key.strip())} bytes; expected a secret of >= 16 bytes")
    return key.strip()


def _manifest_mac(key: bytes, files: Mapping[str, str]) -> str:
    body = json.dumps({"format": FORMAT_VERSION, "files": dict(files)}, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------------------------- save / load
def _write_tmp(path: Path, data: bytes) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return tmp


def save_checkpoint(
    directory: str | Path,
    *,
    kind: str,
    tensors: Mapping[str, torch.Tensor],
    config: Mapping[str, Any],
    contract: IOContract,
    dr_terms: list[Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    key: bytes | None = None,
) -> Path:
    """Write ``directory`` (created if needed; existing checkpoint files are replaced). Returns the path.

    Every file is written to a temporary name first and renamed into place only when all three are complete,
    manifest last: a full disk or a crash leaves the previous checkpoint (or none) readable, never a half one.
    ``key`` (default: ``$TETHER_CHECKPOINT_KEY_FILE``) adds an HMAC signature to the manifest.
    """
    from safetensors.torch import save

    directory = Path(directory)
    if not isinstance(contract, IOContract):
        raise CheckpointError(f"contract is a {type(contract).__name__}; expected an IOContract")
    if not _KIND.fullmatch(kind):
        raise CheckpointError(f"policy kind {kind!r}; expected lower-case letters, digits and '_'")
    key = key if key is not None else signing_key()
    flat: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f"tensor {name!r} is a {type(t).__name__}; expected a torch.Tensor")
        # clone: safetensors refuses tensors that share storage, and we must not alias live parameters
        flat[name] = t.detach().to("cpu").contiguous().clone()
    shapes = {k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape)} for k, v in flat.items()}
    weights_bytes = save(flat, metadata={"kind": kind})
    meta = {
        "format": FORMAT_VERSION,
        "kind": kind,
        "contract": contract.to_dict(),
        "config": _jsonable(dict(config), "config"),
        "dr_terms": _jsonable(dr_terms, "dr_terms") if dr_terms is not None else None,
        "extra": _jsonable(dict(extra or {}), "extra"),
        "versions": library_versions(),
        "weights_sha256": hashlib.sha256(weights_bytes).hexdigest(),
        "tensors": shapes,
    }
    meta_bytes = json.dumps(meta, indent=2, sort_keys=True).encode()
    directory.mkdir(parents=True, exist_ok=True)
    own = {WEIGHTS_FILE, META_FILE, MANIFEST_FILE}
    try:
        others = [f for f in walk_folder(directory, "checkpoint directory", max_entries=MAX_FILES)
                  if f not in own and not f.endswith(".tmp")]
    except ValidationError as exc:
        raise CheckpointError(str(exc)) from None
    files = {f: _sha256(directory / f) for f in others}
    files[WEIGHTS_FILE] = meta["weights_sha256"]
    files[META_FILE] = hashlib.sha256(meta_bytes).hexdigest()
    manifest: dict[str, Any] = {"format": FORMAT_VERSION, "files": dict(sorted(files.items()))}
    if key is not None:
        manifest["hmac_sha256"] = _manifest_mac(key, manifest["files"])
    written: list[tuple[Path, Path]] = []
    try:
        for name, data in ((WEIGHTS_FILE, weights_bytes), (META_FILE, meta_bytes),
                           (MANIFEST_FILE, json.dumps(manifest, indent=2).encode())):
            written.append((_write_tmp(directory / name, data), directory / name))
    except BaseException:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
        (directory / (name + ".tmp")).unlink(missing_ok=True)
        raise
    for tmp, final in written:  # renames need no space: the set is complete once this loop ends
        os.replace(tmp, final)
    return directory


def _fail(msg: str) -> CheckpointError:
    return CheckpointError(" ".join(msg.split()))


def _read_manifest(directory: Path, listed: list[str], key: bytes | None) -> dict[str, str]:
    path = directory / MANIFEST_FILE
    if MANIFEST_FILE not in listed:
        raise _fail(f"checkpoint {directory} has no {MANIFEST_FILE} (written by a Tether before checkpoint format "
                    f"{FORMAT_VERSION}, or stripped); expected {META_FILE}, {WEIGHTS_FILE} and {MANIFEST_FILE}")
    m = loads_json(path.read_bytes(), str(path), max_bytes=MAX_META_BYTES)
    expect_dict(m, str(path), required=("format", "files"), allowed=("format", "files", "hmac_sha256"))
    if m["format"] != FORMAT_VERSION:
        raise _fail(f"{path} has format {m['format']!r}; this Tether reads format {FORMAT_VERSION}")
    files = expect_dict(m["files"], f"{path}: files", max_items=MAX_FILES)
    for rel, digest in files.items():
        parts = rel.split("/")
        if rel.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in rel:
            raise _fail(f"{path} lists {rel!r}; expected a path inside the checkpoint folder")
        expect_str(digest, f"{path}: files[{rel!r}]", pattern=SHA256_HEX, expected="a SHA-256 hex digest")
        if rel not in listed:
            raise _fail(f"checkpoint {directory} is missing {rel}, which {MANIFEST_FILE} lists")
    for need in (META_FILE, WEIGHTS_FILE):
        if need not in files:
            raise _fail(f"{path} does not list {need}; expected every file of the checkpoint")
    if key is not None:
        mac = m.get("hmac_sha256")
        if not isinstance(mac, str) or not hmac.compare_digest(mac, _manifest_mac(key, files)):
            raise _fail(f"checkpoint {directory} is {'not signed' if mac is None else 'signed with another key or was modified'}; "
                        f"${KEY_ENV} is set, so only checkpoints signed with that key are loaded")
    return dict(files)


def _read_verified(directory: Path, rel: str, files: Mapping[str, str], verify: bool, max_bytes: int) -> bytes:
    path = directory / rel
    size = path.stat().st_size
    if size > max_bytes:
        raise _fail(f"{path} is {size} bytes; expected at most {max_bytes}")
    data = path.read_bytes()
    if verify:
        digest = hashlib.sha256(data).hexdigest()
        if digest != files[rel]:
            raise _fail(f"{path} is corrupt or was modified after saving: SHA-256 {digest[:16]}… != "
                        f"{files[rel][:16]}… recorded in {MANIFEST_FILE}")
    return data


def _check_meta(meta: Any, where: str) -> dict[str, Any]:
    expect_dict(meta, where, required=("format", "kind", "contract", "config", "weights_sha256", "tensors"),
                allowed=("format", "kind", "contract", "config", "dr_terms", "extra", "versions", "weights_sha256",
                         "tensors"))
    if meta["format"] != FORMAT_VERSION:
        raise _fail(f"{where} has format {meta['format']!r}; this Tether reads format {FORMAT_VERSION}")
    expect_str(meta["kind"], f"{where}: kind", pattern=_KIND, expected="a policy kind like gaussian_mlp")
    expect_str(meta["weights_sha256"], f"{where}: weights_sha256", pattern=SHA256_HEX, expected="a SHA-256 digest")
    config = expect_dict(meta["config"], f"{where}: config")
    check_finite(config, f"{where}: config")
    if meta.get("dr_terms") is not None:
        terms = expect_list(meta["dr_terms"], f"{where}: dr_terms", max_len=1000)
        for i, t in enumerate(terms):
            expect_dict(t, f"{where}: dr_terms[{i}]", max_items=64)
        check_finite(terms, f"{where}: dr_terms")
    extra = expect_dict(meta.get("extra") or {}, f"{where}: extra")
    if "env_id" in extra and extra["env_id"] is not None:
        expect_env_id_text(extra["env_id"], f"{where}: extra.env_id")
    versions = expect_dict(meta.get("versions") or {}, f"{where}: versions", max_items=100)
    for k, v in versions.items():
        expect_str(v, f"{where}: versions.{k}", max_len=128)
    shapes = expect_dict(meta["tensors"], f"{where}: tensors", max_items=100_000)
    for name, spec in shapes.items():
        expect_str(name, f"{where}: tensor name", max_len=512)
        expect_dict(spec, f"{where}: tensors[{name!r}]", required=("dtype", "shape"), allowed=("dtype", "shape"))
        if spec["dtype"] not in DTYPES:
            raise _fail(f"{where}: tensors[{name!r}].dtype is {spec['dtype']!r}; expected one of {sorted(DTYPES)}")
        for i, n in enumerate(expect_list(spec["shape"], f"{where}: tensors[{name!r}].shape", max_len=16)):
            expect_int(n, f"{where}: tensors[{name!r}].shape[{i}]", 0, 2**40)
    return meta


def _check_config_shapes(config: Mapping[str, Any], where: str, in_size: int, available: int) -> None:
    """Network-shape numbers in ``config`` within the documented caps, and hidden widths the weights can hold."""
    implied = 0
    stack: list[tuple[str, Any, Mapping[str, Any]]] = [(k, v, config) for k, v in config.items()]
    while stack:
        key, value, parent = stack.pop()
        at = f"{where}: config …{key}"
        if key == "hidden" or key.endswith("_hidden"):
            widths = [value] if isinstance(value, int) and not isinstance(value, bool) else value
            widths = [expect_int(w, f"{at}[{i}]", 1, MAX_LAYER_WIDTH)
                      for i, w in enumerate(expect_list(widths, at, max_len=MAX_LAYERS))]
            first_in = in_size
            if isinstance(parent.get("obs_size"), int):
                first_in = max(first_in, int(parent["obs_size"]) + int(parent.get("action_size") or 0))
            if widths:
                implied += first_in * widths[0] + sum(widths) + sum(a * b for a, b in zip(widths, widths[1:]))
            continue
        if key in SHAPE_KEYS and value is not None:
            expect_int(value, at, 0, MAX_SHAPE_INT)
        elif key in ("obs_size", "action_size"):
            expect_int(value, at, 0, MAX_IO_SIZE)
        elif key == "norm_clip":
            expect_number(value, at, 0.0, lo_open=True)
        if isinstance(value, dict):
            stack.extend((k, v, value) for k, v in value.items())
    if implied > available:
        raise _fail(f"{where}: config asks for networks of at least {implied:,} parameters but "
                    f"{WEIGHTS_FILE} holds {available:,} values; expected hidden widths that match the weights "
                    f"(caps: {MAX_LAYERS} layers of <= {MAX_LAYER_WIDTH})")


def load_checkpoint(directory: str | Path, *, verify_hash: bool = True, key: bytes | None = None) -> Checkpoint:
    """Read and validate a checkpoint directory (JSON + safetensors only: opening it never runs code).

    ``verify_hash=False`` skips the SHA-256 comparisons (for tests of what comes after); nothing else.
    ``key`` (default: ``$TETHER_CHECKPOINT_KEY_FILE``) requires a valid manifest signature.
    """
    try:
        return _load_checkpoint(Path(directory), verify_hash, key if key is not None else signing_key())
    except CheckpointError:
        raise
    except ValidationError as exc:
        raise CheckpointError(str(exc)) from None
    except OSError as exc:
        raise CheckpointError(f"checkpoint {directory} cannot be read ({exc.strerror or exc})") from None


def _load_checkpoint(directory: Path, verify_hash: bool, key: bytes | None) -> Checkpoint:
    from safetensors import SafetensorError
    from safetensors.torch import load

    if not directory.is_dir():
        raise _fail(f"checkpoint directory {directory} does not exist; expected a directory with "
                    f"{META_FILE}, {WEIGHTS_FILE} and {MANIFEST_FILE}")
    listed = walk_folder(directory, "checkpoint", max_entries=MAX_FILES)
    for need in (META_FILE, WEIGHTS_FILE):
        if need not in listed:
            raise _fail(f"checkpoint {directory} has no {need}; expected {META_FILE}, {WEIGHTS_FILE} and "
                        f"{MANIFEST_FILE}")
    files = _read_manifest(directory, listed, key)
    if verify_hash:
        for rel in files:
            if rel not in (META_FILE, WEIGHTS_FILE):  # nested files (a base policy): hashed here, read by their own load
                digest = _sha256(directory / rel)
                if digest != files[rel]:
                    raise _fail(f"{directory / rel} is corrupt or was modified after saving: SHA-256 {digest[:16]}… "
                                f"!= {files[rel][:16]}… recorded in {MANIFEST_FILE}")
    meta_path, weights = directory / META_FILE, directory / WEIGHTS_FILE
    meta_bytes = _read_verified(directory, META_FILE, files, verify_hash, MAX_META_BYTES)
    try:
        meta = loads_json(meta_bytes, str(meta_path), max_bytes=MAX_META_BYTES)
    except ValidationError as exc:
        raise _fail(str(exc)) from None
    meta = _check_meta(meta, str(meta_path))
    if verify_hash and meta["weights_sha256"] != files[WEIGHTS_FILE]:
        raise _fail(f"{meta_path} records weights_sha256 {meta['weights_sha256'][:16]}… but {MANIFEST_FILE} "
                    f"{files[WEIGHTS_FILE][:16]}…; the checkpoint was assembled from different saves")
    data = _read_verified(directory, WEIGHTS_FILE, files, verify_hash, MAX_WEIGHTS_BYTES)
    try:
        tensors = load(data)
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise _fail(f"{weights} is not a readable safetensors file ({exc})") from None
    del data
    manifest: dict[str, Any] = meta["tensors"]
    missing = sorted(set(manifest) - set(tensors))
    if missing:
        raise _fail(f"{weights} is missing tensors {missing} listed in {META_FILE}")
    for name, spec in manifest.items():
        t = tensors[name]
        if list(t.shape) != list(spec["shape"]) or str(t.dtype).removeprefix("torch.") != spec["dtype"]:
            raise _fail(
                f"tensor {name!r} is {str(t.dtype)}{list(t.shape)}; {META_FILE} says {spec['dtype']}{spec['shape']}"
            )
    recorded = RECORDED_TENSORS.get(str(meta["kind"]), ())
    for name, t in tensors.items():
        if t.is_floating_point() and name not in recorded and not bool(torch.isfinite(t).all()):
            raise _fail(f"{weights}: tensor {name!r} holds NaN or infinite values; expected finite weights and "
                        "statistics (a NaN here would become NaN actions)")
    try:
        contract = contract_from_data(meta["contract"], f"{meta_path}: contract")
    except (ValidationError, ContractError) as exc:
        raise _fail(f"{meta_path} has a bad contract: {exc}") from None
    available = sum(int(t.numel()) for t in tensors.values())
    _check_config_shapes(meta["config"], str(meta_path), contract.obs_size, available)
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
        files=files,
    )


def recorded_env_id(ckpt: Checkpoint) -> str | None:
    """The env the checkpoint says it was trained on (``extra.env_id``, else ``contract.metadata.env_id``),
    only if it is one of Tether's registered ids: a file never chooses code to import (see
    ``tether.sim.registry.env_id_from_file``). None when it records none."""
    value = ckpt.extra.get("env_id") or ckpt.contract.metadata.get("env_id")
    if value is None:
        return None
    from tether.sim.registry import env_id_from_file

    try:
        return env_id_from_file(value, f"checkpoint {ckpt.directory}")
    except TetherError as exc:
        raise CheckpointError(str(exc)) from None


def checkpoint_files(directory: str | Path) -> dict[str, bytes]:
    """Every file of a verified checkpoint by relative path (to ship it to another machine, e.g. a Ray worker)."""
    ckpt = load_checkpoint(directory)
    return {rel: (ckpt.directory / rel).read_bytes() for rel in (*ckpt.files, MANIFEST_FILE)}


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
    try:
        return cls.from_checkpoint(ckpt)
    except TetherError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
        # a config a kind's own checks did not foresee: still one line naming the checkpoint, never a traceback
        raise CheckpointError(f"checkpoint {ckpt.directory} ({ckpt.kind}) has a malformed config or weights "
                              f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); expected what "
                              f"{ckpt.kind}'s save() writes") from None


__all__ = [
    "Checkpoint",
    "CheckpointError",
    "checkpoint_files",
    "load_checkpoint",
    "load_policy",
    "policy_class",
    "recorded_env_id",
    "register_policy",
    "register_policy_module",
    "registered_policy_kinds",
    "save_checkpoint",
    "signing_key",
]
