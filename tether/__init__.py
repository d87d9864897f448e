"""Tether: simulate robots with domain randomisation, train policies, deploy them over ROS 2 behind a safety
layer, and fine-tune them with what the real robot recorded.

Subpackages import downward only: sim, policies, world_models, data and calibration know nothing of ROS;
hardware knows policies and the contract; ros is one transport for hardware; cli wires them together.
"""

__version__ = "0.1.0"
