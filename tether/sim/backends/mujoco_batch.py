"""The batched MuJoCo core: N worlds stepped by ``mujoco.batch`` on a thread pool, with no Python per world.

Why this shape: on a CPU, training speed is simulation speed, and what costs is not the physics but the
Python around it. ``mujoco.batch.Batch`` keeps every world's state in one array, steps the worlds on worker
threads with the GIL released, and (persistent, stage ``mjSTAGE_VEL``) leaves positions, velocities and
position/velocity sensors current after each call at no extra cost, so tasks read observations for the
whole batch as array slices. Each world runs on its own copy of the model, so domain randomisation is per
world; the parameter table is the single-world backend's (:data:`tether.sim.backends.mujoco_backend.PARAMS`).
Results are bit-identical to stepping each world alone, at any thread count.

The quadrotor's onboard rate controller runs inside ``mj_step`` as a compiled physics callback
(:mod:`tether.sim.native`); where it cannot be built, the numpy reference controller runs between substeps.
"""

from __future__ import annotations

import copy
import os

import mujoco
import numpy as np
from mujoco.batch import Batch

from tether.sim.backends.base import BatchBackend
from tether.sim.backends.mujoco_backend import MujocoLayout, build_spec, get_param, render, set_param
from tether.sim.robots.base import RobotSpec, RotorActuators, Scene

_VEL = mujoco.mjtStage.mjSTAGE_VEL.value
_NONE = mujoco.mjtStage.mjSTAGE_NONE.value
# MjData's integration state (mjSTATE_INTEGRATION), the fields a snapshot keeps
_STATE = ("time", "qpos", "qvel", "act", "history", "qacc_warmstart", "ctrl", "qfrc_applied", "xfrc_applied",
          "eq_active", "mocap_pos", "mocap_quat", "userdata", "plugin_state", "plastic")


class MujocoBatch(BatchBackend):
    name = "mujoco"

    def __init__(self, robot: RobotSpec, scene: Scene, n: int, threads: int | None = None) -> None:
        super().__init__(robot, scene, n)
        self.spec = build_spec(robot, scene)
        model = self.spec.compile()
        self.layout = MujocoLayout(model, robot, scene)
        self.models = [copy.copy(model) for _ in range(self.n)]
        self._scratch = mujoco.MjData(model)
        threads = min(self.n, os.cpu_count() or 1) if threads is None else int(threads)
        self.batch = b = Batch(model, self.n, nthread=max(1, threads), persistent=True)
        b.set_models(self.models)
        self.qpos, self.qvel, self.ctrl = b.bind("qpos"), b.bind("qvel"), b.bind("ctrl")
        self.act = b.bind("act") if model.na else None
        self.xfrc = b.bind("xfrc_applied")
        self.mocap_pos = b.bind("mocap_pos") if model.nmocap else None
        self.mocap_quat = b.bind("mocap_quat") if model.nmocap else None
        self.userdata = b.bind("userdata") if model.nuserdata else None
        self.xpos, self.xquat = b.bind("xpos"), b.bind("xquat")
        self.sensordata = b.bind("sensordata") if model.nsensordata else None
        self._state = {k: v for k, v in ((k, b.bind(k)) for k in _STATE) if v.size}  # what a snapshot keeps
        self._rates = scene.onboard == "rate_controller"
        self._native = False
        self._setpoint = None
        if self._rates:
            from tether.sim import native
            from tether.sim.robots.quadrotor import RateController

            assert isinstance(robot.actuators, RotorActuators)
            self._native = native.install_rate_controller()
            self._rc = RateController(robot.actuators.max_thrust, n=self.n)
            self._setpoint = np.zeros((self.n, 4))
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._render_data: mujoco.MjData | None = None
        b.reset(stage=_NONE)
        if self._rates:
            self._init_rate_state(np.arange(self.n))
        b.forward(stage=_VEL)

    # ------------------------------------------------------------------ state
    def _init_rate_state(self, ids: np.ndarray) -> None:
        """Rotors settled at the allocation of the thrust setpoint; controller memory cleared."""
        thrust = np.clip(self._setpoint[ids, :1] * self._rc.alloc[:, 0], 0.0, self._rc.max_thrust)
        self.ctrl[ids] = thrust
        if self.userdata is not None:
            self.userdata[ids, 0:4] = self._setpoint[ids]
            self.userdata[ids, 4:10] = 0.0
            self.userdata[ids, 10] = np.nan  # "never updated": the first physics step runs the PID
        self._rc.reset(ids)

    def reset_state(self, ids, joint_pos, joint_vel=None, base_pos=None, base_quat=None,
                    base_lin_vel=None, base_ang_vel=None) -> None:
        ids = np.asarray(ids, dtype=int)
        if not len(ids):
            return
        L, b = self.layout, self.batch
        ctrl = self.ctrl[ids].copy()
        mocap = None if self.mocap_pos is None else (self.mocap_pos[ids].copy(), self.mocap_quat[ids].copy())
        b.reset(ids, stage=_NONE)
        self.ctrl[ids] = ctrl
        if mocap is not None:
            self.mocap_pos[ids], self.mocap_quat[ids] = mocap
        self.qpos[np.ix_(ids, L.qpos_adr)] = joint_pos
        self.qvel[np.ix_(ids, L.dof_adr)] = 0.0 if joint_vel is None else joint_vel
        if self.robot.floating_base:
            q, v = L.free_q, L.free_v
            self.qpos[ids, q : q + 3] = self.robot.base_pos if base_pos is None else base_pos
            self.qpos[ids, q + 3 : q + 7] = self.robot.base_quat if base_quat is None else base_quat
            self.qvel[ids, v : v + 3] = 0.0 if base_lin_vel is None else base_lin_vel
            self.qvel[ids, v + 3 : v + 6] = 0.0 if base_ang_vel is None else base_ang_vel
        if L.pd:
            self.ctrl[np.ix_(ids, np.arange(len(self.robot.joints)))] = joint_pos
        if self._rates:
            self._init_rate_state(ids)
        if self.act is not None:  # motor lag starts settled at the current command
            m = L.model
            stateful = np.nonzero(m.actuator_actadr >= 0)[0]
            self.act[np.ix_(ids, m.actuator_actadr[stateful])] = self.ctrl[np.ix_(ids, stateful)]
        b.forward(ids, stage=_VEL)

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        L = self.layout
        return self.qpos[:, L.qpos_adr], self.qvel[:, L.dof_adr]

    def base_pose(self) -> tuple[np.ndarray, np.ndarray]:
        L = self.layout
        if self.robot.floating_base:
            q = L.free_q
            return self.qpos[:, q : q + 3].copy(), self.qpos[:, q + 3 : q + 7].copy()
        return self.xpos[:, L.root].copy(), self.xquat[:, L.root].copy()

    def base_velocity(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.robot.floating_base:
            return np.zeros((self.n, 3)), np.zeros((self.n, 3))
        v = self.layout.free_v
        return self.qvel[:, v : v + 3].copy(), self.qvel[:, v + 3 : v + 6].copy()

    def body_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        i = self.layout.id(mujoco.mjtObj.mjOBJ_BODY, name)
        return self.xpos[:, i].copy(), self.xquat[:, i].copy()

    def set_object_pose(self, name, ids, pos, quat=None) -> None:
        ids = np.asarray(ids, dtype=int)
        m, L = self.layout.model, self.layout
        i = L.id(mujoco.mjtObj.mjOBJ_BODY, name)
        quat = np.array([1.0, 0.0, 0.0, 0.0]) if quat is None else quat
        if m.body_mocapid[i] >= 0:
            self.mocap_pos[ids, m.body_mocapid[i]] = pos
            self.mocap_quat[ids, m.body_mocapid[i]] = quat
        else:
            j = m.body_jntadr[i]
            qa, va = m.jnt_qposadr[j], m.jnt_dofadr[j]
            self.qpos[ids, qa : qa + 3] = pos
            self.qpos[ids, qa + 3 : qa + 7] = quat
            self.qvel[ids, va : va + 6] = 0.0
        self.batch.forward(ids, stage=_VEL)

    def foot_contact_forces(self) -> np.ndarray:
        if self.sensordata is None:
            return np.zeros((self.n, 0))
        return self.sensordata[:, self.layout.foot_sensor_adr]

    # ------------------------------------------------------------------ actuation
    def set_command(self, command: np.ndarray) -> None:
        if self._rates:
            self._setpoint[:] = command
            if self._native:
                self.userdata[:, 0:4] = command
        else:
            self.ctrl[:] = command

    def step(self, substeps: int) -> None:
        if not self._rates or self._native:
            self.batch.step(nstep=substeps, stage=_VEL)
            return
        dt, v = self.robot.physics_dt, self.layout.free_v
        for _ in range(substeps):  # numpy reference controller between substeps (no C compiler here)
            self.ctrl[:] = self._rc(self._setpoint[:, 0], self._setpoint[:, 1:4], self.qvel[:, v + 3 : v + 6], dt)
            self.batch.step(nstep=1, stage=_VEL)

    def set_external_force(self, ids, force_world) -> None:
        self.xfrc[np.asarray(ids, dtype=int), self.layout.root, :3] = force_world

    @property
    def time(self) -> np.ndarray:
        return self.batch.bind("time").copy()

    def snapshot(self) -> dict:
        state = {k: v.copy() for k, v in self._state.items()}
        if self._rates and not self._native:  # the numpy rate controller's integrators live here, not in MjData
            state["_rc"], state["_setpoint"] = copy.deepcopy(self._rc), self._setpoint.copy()
        return state

    def restore(self, state: dict) -> None:
        for k, view in self._state.items():
            view[...] = state[k]
        if "_rc" in state:
            self._rc, self._setpoint = state["_rc"], state["_setpoint"]
        self.batch.forward(stage=_VEL)  # positions, velocities and their sensors current, as after a step

    # ------------------------------------------------------------------ per-world parameters
    def param_elements(self, target: str) -> list[str]:
        return self.layout.elements(target)

    def get_param(self, target: str, world: int) -> np.ndarray:
        return get_param(self.layout, self.models[world], target)

    def set_param(self, target: str, values: np.ndarray, world: int) -> None:
        set_param(self.layout, self.models[world], self._scratch, target, values)

    def commit_params(self) -> None:
        self.batch.set_models(self.models)

    # ------------------------------------------------------------------ rendering
    def render(self, world: int = 0, width: int = 320, height: int = 240, camera: str | None = None) -> np.ndarray:
        model = self.models[world]
        if self._render_data is None:
            self._render_data = mujoco.MjData(model)
        d = self.batch.get_data(world, self._render_data)
        mujoco.mj_forward(model, d)
        return render(self._renderers, model, d, self.layout, width, height, camera)

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()
