"""Calibration: camera intrinsics, hand-eye, system identification into randomisation ranges, latency estimation.

Modules (imported on use, so ``import tether.calibration`` stays light):
- ``boards``: checkerboard / ChArUco specs, printable images, sub-pixel corner detection.
- ``camera``: intrinsics with bad-view rejection, per-view errors, coverage; ROS camera_info YAML.
- ``handeye`` (+ ``solvers``): eye-in-hand / eye-to-hand with sample checks, AX=XB residual, bootstrap
  uncertainty; transform record and a /tf_static-shaped dict.
- ``latency``: delay from command/response logs -> DR term (action_latency) and contract.assumed_latency_s.
- ``sysid``: fit of DR-target parameters (mass, motor lag, actuator gain/strength, damping, friction, latency)
  by replaying recorded commands in MuJoCo in short windows (CMA-ES + Levenberg-Marquardt, batched) -> DR
  preset centred on the fit with its uncertainty.
- ``recordings``: deploy bags (``tether deploy --record``) and datasets converted from them -> sysid data:
  states by name from the contract, cropped to what the robot executed, the robot's own tick times when the
  bag has them; ``identify_recordings`` is the pipeline's one call.
- ``replay``: the batched replay engine (``mujoco.rollout`` over windows x parameter sets; the quadrotor's
  rate controller vectorised in the loop; warm-up for hidden actuator/controller state).
- ``residuals``: sim-vs-real replay error per state channel, nominal vs identified (figures, table).
- ``synthetic``: MuJoCo-rendered board views with known ground truth (tests, benchmark, set-up checks).
- ``io``: file formats (YAML/JSON, array logs with pluggable loaders, hand-eye samples); ``geometry``: poses.
- ``commands``: ``tether calibrate camera | handeye | sysid | latency`` (sysid ``--report DIR``: residuals).
"""
