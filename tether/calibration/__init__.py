"""Calibration: camera intrinsics, hand-eye, system identification into randomisation ranges, latency estimation.

Modules (imported on use, so ``import tether.calibration`` stays light):
- ``boards``: checkerboard / ChArUco specs, printable images, sub-pixel corner detection.
- ``camera``: intrinsics with bad-view rejection, per-view errors, coverage; ROS camera_info YAML.
- ``handeye`` (+ ``solvers``): eye-in-hand / eye-to-hand with sample checks, AX=XB residual, bootstrap
  uncertainty; transform record and a /tf_static-shaped dict.
- ``latency``: delay from command/response logs -> DR term (action_latency) and contract.assumed_latency_s.
- ``sysid``: MuJoCo replay fit of DR-target parameters (CMA-ES + least squares) -> DR preset.
- ``synthetic``: MuJoCo-rendered board views with known ground truth (tests, benchmark, set-up checks).
- ``io``: file formats (YAML/JSON, array logs with pluggable loaders, hand-eye samples); ``geometry``: poses.
- ``commands``: ``tether calibrate camera | handeye | sysid | latency``.
"""
