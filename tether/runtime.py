"""Run an exported Tether policy with onnxruntime alone: no torch, the contract read from the ``.onnx`` file.

This is the deployment-side entry point; the format and the runner are defined next to the exporter in
``tether.policies.exported`` (importing it loads numpy, onnxruntime and Tether's contract, never torch)::

    from tether.runtime import ExportedPolicy

    policy = ExportedPolicy("policy.onnx")       # contract, history, chunking and noise size from the file
    policy.reset()                               # at every episode start
    command = policy.act_physical(observation)   # contract units; still pass it through the robot's guard

``python -m tether.runtime MODEL.onnx`` prints what a file says it is.
"""

from __future__ import annotations

import sys

from tether.errors import TetherError
from tether.policies.exported import (
    FORMAT_VERSION,
    INPUT_NOISE,
    INPUT_OBS,
    KEY_ACTION,
    KEY_CONTRACT,
    KEY_FORMAT,
    KEY_INPUTS,
    KEY_OBS_LAYOUT,
    KEY_OUTPUTS,
    KEY_PARITY,
    KEY_POLICY,
    KEY_RATE,
    KEY_VERSIONS,
    OUTPUT,
    ExportedPolicy,
    read_metadata,
)

__all__ = [
    "FORMAT_VERSION", "INPUT_NOISE", "INPUT_OBS", "KEY_ACTION", "KEY_CONTRACT", "KEY_FORMAT", "KEY_INPUTS",
    "KEY_OBS_LAYOUT", "KEY_OUTPUTS", "KEY_PARITY", "KEY_POLICY", "KEY_RATE", "KEY_VERSIONS", "OUTPUT",
    "ExportedPolicy", "main", "read_metadata",
]


def main(argv: list[str] | None = None) -> int:
    """``python -m tether.runtime MODEL.onnx``: print what the file says it is."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tether.runtime MODEL.onnx", file=sys.stderr)
        return 2
    try:
        print(ExportedPolicy(args[0]).describe())
    except TetherError as exc:
        print(f"tether.runtime: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
