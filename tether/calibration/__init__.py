"""Calibration: camera intrinsics, hand-eye, system identification into randomisation ranges, latency estimation."""
