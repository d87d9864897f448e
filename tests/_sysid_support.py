"""Helpers for the system-identification tests: scripted policies that act from the contract's observation
(the sim tasks' own experts, fed through a state view of the observation), a recorded deploy against a served
robot with a bounded exploration signal, and sim-generated closed-loop recordings with hidden parameters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tests._deploy_support import ServedRobot


class _QuadObsState:
    """The two Backend reads the quadrotor expert makes (base pose and velocity), answered from a flat
    observation: position = goal - pos_error, attitude from the rotation matrix."""

    def __init__(self, contract: Any, obs: np.ndarray, goal: np.ndarray) -> None:
        import mujoco

        f = contract.split_obs(obs)
        self.pos = goal - f["pos_error"]
        self.quat = np.empty(4)
        mujoco.mju_mat2Quat(self.quat, np.asarray(f["base_rotmat"], dtype=float))
        self.lin, self.ang = f["base_lin_vel"], f["base_ang_vel"]

    def base_pose(self) -> tuple[np.ndarray, np.ndarray]:
        return self.pos, self.quat

    def base_velocity(self) -> tuple[np.ndarray, np.ndarray]:
        return self.lin, self.ang


class QuadrotorExpertPolicy:
    """``tether.sim.tasks.quadrotor.Hover.expert`` as a Policy on the flat observation (nominal mass: on a
    heavier vehicle it sags below the set point, as a memoryless policy does)."""

    def __init__(self, contract: Any) -> None:
        from tether.sim.robots import make_robot
        from tether.sim.tasks.quadrotor import Hover

        self.contract = contract
        self.task = Hover(make_robot("quadrotor"), contract.control_mode)

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.atleast_2d(np.asarray(obs, dtype=float))
        out = [self.contract.to_normalised(self.task.expert(_QuadObsState(self.contract, o, self.task.goal)))
               for o in obs]
        return np.clip(np.array(out), -1.0, 1.0)

    def reset(self) -> None:
        self.task._expert_rc.reset()

    def save(self, directory: Any) -> None:  # pragma: no cover - never saved
        raise NotImplementedError


def record_served_deploy(tmp: Path, *, robot: str, adapter: str, domain: int, policy: Any, params: dict,
                         backend: str = "pybullet", latency_ms: float = 0.0, seconds: float = 6.0,
                         goal: tuple[float, ...] | None = None, monkeypatch: Any) -> Path:
    """Serve ``robot`` with hidden ``params`` in its own process and run ``tether.ros.deploy.deploy`` here with
    ``policy`` (a Policy object: deploy loads checkpoints by path, so the loader is pointed at the object for
    this call), recording a bag; returns the bag path."""
    import tether.policies.checkpoint as ckpt_mod
    from tether.ros.deploy import DeployConfig, deploy

    pfile = tmp / "hidden.json"
    pfile.write_text(json.dumps(params))
    extra = ["--backend", backend, "--params", str(pfile), "--latency", str(latency_ms)]
    if goal is not None:
        extra += ["--goal", *(str(g) for g in goal)]
    server = ServedRobot(robot, domain, *extra)
    bag = tmp / "run.mcap"
    try:
        server.wait_ready()
        monkeypatch.setattr(ckpt_mod, "load_policy", lambda *_a, **_k: policy)
        cfg = DeployConfig(checkpoint=str(tmp), adapter=adapter, duration_s=seconds, record=str(bag),
                           domain_id=domain, loopback=True, transport="cyclonedds")
        deploy(cfg, log=lambda *_: None, install_signals=False)
    finally:
        server.stop()
    return bag
