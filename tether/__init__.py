"""Tether: simulate robots with domain randomisation, train policies, deploy them over ROS 2 behind a safety
layer, and fine-tune them with what the real robot recorded.

Subpackages import downward only: sim, policies, world_models, data and calibration know nothing of ROS;
hardware knows policies and the contract; ros is one transport for hardware; cli wires them together.
"""

__version__ = "0.1.0"

import os as _os

# Offscreen rendering without a display: MuJoCo reads MUJOCO_GL once, at its import, so choose EGL here
# (before any submodule imports mujoco) unless the user picked a backend or has a display.
if "MUJOCO_GL" not in _os.environ and not _os.environ.get("DISPLAY"):
    _os.environ["MUJOCO_GL"] = "egl"
    _os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
