"""Simulation: robots (model, actuators, sensors), tasks (obs, reward, termination, success), declarative domain
randomisation, physics backends (MuJoCo, PyBullet), batched stepping, and the Gymnasium registry of
``tether/<Robot><Task>-v0`` ids (registered on import).
"""

from tether.sim.registry import all_env_ids, make, register_all

register_all()

__all__ = ["all_env_ids", "make", "register_all"]
