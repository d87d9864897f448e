"""The exported-policy format and its torch-free runner: an ONNX file that carries its contract, run with
onnxruntime alone (users import it as ``tether.runtime``).

Why torch-free: the machine next to a robot often has no torch (or not the version training used), and a
controller deployed from an ONNX file must be the one ``tether eval`` measured. ``export_onnx`` (export.py)
writes everything needed into the file's ``metadata_props`` (keys below, values JSON strings) and this module
needs nothing else: numpy, onnxruntime, the contract (``tether.contract``) and the history/chunk helpers the
torch policies use (``tether.policies.history``), none of which imports torch. It lives beside export.py so the
writer and the reader of the format share one definition of it.

The exported graph (format 1):

- input ``obs_history`` (B, H, O) float32: the last H observations in physical units, contract order, oldest
  first; at an episode start the first observation fills every slot (as in training). H = ``history``.
- input ``noise`` (B, N) float32, standard normal, only for sampling policies (diffusion, flow, V-GPS): the
  sampler's initial noise, so the graph is a pure function and a run can be reproduced.
- output ``action_chunk`` (B, C, A) float32 in [-1, 1]: C = 1 for single-action policies, the chunk horizon
  for chunked ones, executed by ``ChunkExecutor`` (receding horizon or temporal ensembling).

Actions are normalised; ``physical = low + (clip(a, -1, 1) + 1) / 2 * (high - low)`` with the contract's action
limits (``ExportedPolicy.act_physical``). The guard on the robot side still clamps and rate-limits them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tether.contract import IOContract
from tether.errors import TetherError
from tether.policies.base import batch_observations
from tether.policies.history import ChunkExecutor, ObservationHistory

FORMAT_VERSION = 1
# metadata_props keys (values are JSON strings)
KEY_FORMAT = "tether.format"
KEY_CONTRACT = "tether.contract"  # IOContract.to_dict(): fields, units, frames, limits, control mode, rate
KEY_POLICY = "tether.policy"  # kind, history, chunk execution, noise
KEY_INPUTS = "tether.inputs"  # human-readable description of each graph input
KEY_OUTPUTS = "tether.outputs"
KEY_ACTION = "tether.action_to_physical"  # formula, low, high, names, units
KEY_OBS_LAYOUT = "tether.obs_layout"  # observation fields with their slices in the vector
KEY_RATE = "tether.rate_hz"
KEY_PARITY = "tether.parity"  # torch vs onnxruntime difference measured at export
KEY_VERSIONS = "tether.versions"
INPUT_OBS, INPUT_NOISE, OUTPUT = "obs_history", "noise", "action_chunk"

NoiseFn = Callable[[tuple[int, int]], np.ndarray]


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The Tether metadata of an exported model, JSON values decoded; a file without it is named."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise TetherError(f"ONNX file {path} does not exist")
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise TetherError(f"{path} is not a loadable ONNX model: {exc}") from exc
    return _parse(sess.get_modelmeta().custom_metadata_map, path)


def _parse(props: Mapping[str, str], path: Path) -> dict[str, Any]:
    if KEY_CONTRACT not in props or KEY_POLICY not in props:
        raise TetherError(f"{path} carries no Tether contract in metadata_props; expected a model exported by "
                          "`tether export` (re-export it with this version)")
    version = int(props.get(KEY_FORMAT, "0"))
    if version != FORMAT_VERSION:
        raise TetherError(f"{path} has Tether ONNX format {version}; this runtime reads format {FORMAT_VERSION}")
    out: dict[str, Any] = {}
    for key, value in props.items():
        if key.startswith("tether."):
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise TetherError(f"{path}: metadata {key} is not JSON ({exc})") from None
    return out


class ExportedPolicy:
    """The Policy protocol over an exported model: ``act(obs)`` → normalised action, keeping the observation
    history and executing chunks exactly as the torch policy does; ``act_physical`` in the contract's units.

    ``noise_fn(shape)`` supplies the sampler noise (default: a seeded numpy generator); pass the noise a torch
    policy drew to reproduce its ``act`` exactly.
    """

    def __init__(self, path: str | Path, *, threads: int = 1, seed: int = 0, noise_fn: NoiseFn | None = None,
                 expected_contract: IOContract | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise TetherError(f"ONNX file {self.path} does not exist")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        self.metadata = _parse(self.session.get_modelmeta().custom_metadata_map, self.path)
        self.contract = IOContract.from_dict(self.metadata[KEY_CONTRACT])
        if expected_contract is not None:
            self.contract.check_compatible(expected_contract, what="given contract")
        spec = self.metadata[KEY_POLICY]
        self.kind = str(spec["kind"])
        self.history_length = int(spec["history"])
        chunk = spec["chunk"]
        self.horizon = int(chunk["horizon"])
        self.noise_size = int(spec["noise"]["size"]) if spec.get("noise") else 0
        self._check_graph()
        self.history = ObservationHistory(self.history_length)
        self.executor = ChunkExecutor(self.horizon, int(chunk["n_action_steps"]), chunk["execution"],
                                      float(chunk["ensemble_decay"]))
        self._rng = np.random.default_rng(seed)
        self._noise_fn = noise_fn

    def _check_graph(self) -> None:
        names = {i.name: i.shape for i in self.session.get_inputs()}
        want = {INPUT_OBS: [self.history_length, self.contract.obs_size]}
        if self.noise_size:
            want[INPUT_NOISE] = [self.noise_size]
        if set(names) != set(want):
            raise TetherError(f"{self.path}: graph inputs {sorted(names)}; the metadata describes {sorted(want)}")
        for name, dims in want.items():
            if list(names[name][1:]) != dims:
                raise TetherError(f"{self.path}: input {name} has shape {names[name]}; metadata expects "
                                  f"(batch, {', '.join(map(str, dims))})")

    # ------------------------------------------------------------------ Policy protocol

    def _noise(self, batch: int) -> np.ndarray:
        shape = (batch, self.noise_size)
        raw = self._noise_fn(shape) if self._noise_fn is not None else self._rng.standard_normal(shape)
        noise = np.asarray(raw, dtype=np.float32)
        if noise.shape != shape:
            raise TetherError(f"noise has shape {noise.shape}; expected {shape}")
        return noise

    def run(self, window: np.ndarray, noise: np.ndarray | None = None) -> np.ndarray:
        """The graph itself, stateless: (B, H, O) window [+ (B, N) noise] → (B, C, A) normalised chunk."""
        feeds = {INPUT_OBS: np.ascontiguousarray(window, dtype=np.float32)}
        if self.noise_size:
            feeds[INPUT_NOISE] = self._noise(len(window)) if noise is None else np.asarray(noise, np.float32)
        return self.session.run([OUTPUT], feeds)[0]

    def act_chunk(self, obs: np.ndarray) -> np.ndarray:
        """The whole chunk sampled for this step (advances the history, bypasses the executor)."""
        arr, single = batch_observations(self.contract, obs)
        chunk = self.run(self.history.push(arr))
        return chunk[0] if single else chunk

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Next action in [-1, 1]: (B, O) → (B, A), a 1-D observation gives a 1-D action."""
        arr, single = batch_observations(self.contract, obs)
        window = self.history.push(arr)
        if self.executor.needs_chunk(arr.shape[0]):
            self.executor.add_chunk(self.run(window))
        a = self.executor.next_action()
        return a[0] if single else a

    def act_physical(self, obs: np.ndarray) -> np.ndarray:
        """Next action in the contract's physical units (what a robot adapter receives, before the guard)."""
        return self.contract.to_physical(self.act(obs))

    def reset(self) -> None:
        """Start a new episode: forget the observation history and any queued chunk."""
        self.history.reset()
        self.executor.reset()

    def describe(self) -> str:
        c = self.contract
        lines = [f"{self.path}: {self.kind} policy for {c.robot}/{c.task}, {c.control_mode} at {c.rate_hz:g} Hz",
                 f"  obs_history (B, {self.history_length}, {c.obs_size}): "
                 + ", ".join(f"{f.name}[{f.size}] {f.units}" for f in c.observations),
                 f"  action_chunk (B, {self.horizon}, {c.action_size}) in [-1, 1] -> "
                 + ", ".join(f"{f.name}[{f.size}] {f.units}" for f in c.actions)]
        if self.noise_size:
            lines.append(f"  noise (B, {self.noise_size}) standard normal")
        return "\n".join(lines)


