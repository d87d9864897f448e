"""MuJoCo backend: the robot's URDF compiled through MjSpec, actuators realised natively.

Native actuators keep ``env.step`` close to raw ``mj_step`` cost: PD joints are ``position``-style actuators
with a force range (torque limit), rotors are site actuators whose first-order lag is MuJoCo's exact filter
dynamics and whose gear carries the yaw reaction torque. Translational rotor drag is free-joint damping,
which MuJoCo integrates implicitly. Randomisation writes straight into MjModel arrays (no recompilation).
"""

from __future__ import annotations

import os

import mujoco
import numpy as np

from tether.errors import TetherError
from tether.sim.backends.base import Backend
from tether.sim.robots.base import PDActuators, RobotSpec, RotorActuators, Scene

GROUND = "ground"


def _mat_to_quat(mat: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.asarray(mat, dtype=np.float64).reshape(9))
    return q


def build_spec(robot: RobotSpec, scene: Scene) -> mujoco.MjSpec:
    """Compile-ready MjSpec: robot URDF + ground/terrain + task objects + actuators."""
    spec = mujoco.MjSpec.from_file(str(robot.model_path))
    spec.option.timestep = robot.physics_dt
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.compiler.degree = False
    root = spec.worldbody.first_body()
    root.pos = robot.base_pos if robot.floating_base else [0.0, 0.0, robot.fixed_base_z]
    if robot.floating_base:
        root.quat = robot.base_quat
        root.add_freejoint(name="base")
    spec.worldbody.add_light(name="sun", pos=[0, 0, 6], dir=[0, 0, -1], type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL)

    tex = spec.add_texture(name="grid", type=mujoco.mjtTexture.mjTEXTURE_2D,
                           builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER, width=256, height=256,
                           rgb1=[0.25, 0.3, 0.35], rgb2=[0.35, 0.4, 0.45])
    mat = spec.add_material(name="grid", texrepeat=[4, 4], texuniform=True)
    roles = list(mat.textures)
    roles[mujoco.mjtTextureRole.mjTEXROLE_RGB] = tex.name
    mat.textures = roles  # the binding returns a copy; assign the whole list
    terrain = scene.terrain
    if terrain.kind == "flat":
        spec.worldbody.add_geom(name=GROUND, type=mujoco.mjtGeom.mjGEOM_PLANE, size=[20, 20, 0.1],
                                material="grid", friction=[1.0, 0.005, 0.0001])
    elif terrain.kind == "heightfield":
        hf = spec.add_hfield(name="terrain", size=[terrain.size, terrain.size, max(terrain.roughness, 1e-4), 0.1],
                             nrow=terrain.resolution, ncol=terrain.resolution)
        hf.userdata = terrain.heights().astype(np.float32).ravel().tolist()
        spec.worldbody.add_geom(name=GROUND, type=mujoco.mjtGeom.mjGEOM_HFIELD, hfieldname="terrain",
                                material="grid", friction=[1.0, 0.005, 0.0001])
    else:
        raise TetherError(f"unknown terrain kind {terrain.kind!r}; expected 'flat' or 'heightfield'")

    for obj in scene.objects:
        if obj.kind == "box":
            body = spec.worldbody.add_body(name=obj.name, pos=list(obj.pos))
            body.add_freejoint(name=f"{obj.name}_free")
            body.add_geom(name=obj.name, type=mujoco.mjtGeom.mjGEOM_BOX, size=list(obj.size), mass=obj.mass,
                          rgba=list(obj.rgba), friction=[obj.friction, 0.005, 0.0001])
        elif obj.kind == "marker":
            body = spec.worldbody.add_body(name=obj.name, pos=list(obj.pos), mocap=True)
            body.add_geom(name=obj.name, type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[obj.size[0], 0, 0],
                          rgba=list(obj.rgba), contype=0, conaffinity=0)
        else:
            raise TetherError(f"unknown scene object kind {obj.kind!r}; expected 'box' or 'marker'")

    act = robot.actuators
    if isinstance(act, PDActuators):
        for j, name in enumerate(robot.joints):
            a = spec.add_actuator(name=f"{name}_pd", target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
            a.gaintype = mujoco.mjtGain.mjGAIN_FIXED
            a.biastype = mujoco.mjtBias.mjBIAS_AFFINE
            a.gainprm[0] = act.kp[j]
            a.biasprm[1] = -act.kp[j]
            a.biasprm[2] = -act.kd[j]
            a.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
            a.forcerange = [-act.torque_limit[j], act.torque_limit[j]]
            a.ctrllimited = mujoco.mjtLimited.mjLIMITED_FALSE
    elif isinstance(act, RotorActuators):
        for i, (p, s) in enumerate(zip(act.positions, act.spin)):
            root.add_site(name=f"rotor{i}", pos=list(p), size=[0.005, 0, 0])
            a = spec.add_actuator(name=f"rotor{i}", target=f"rotor{i}", trntype=mujoco.mjtTrn.mjTRN_SITE)
            a.gear = [0, 0, 1, 0, 0, -float(s) * act.torque_to_thrust]
            a.dyntype = mujoco.mjtDyn.mjDYN_FILTEREXACT
            a.dynprm[0] = act.time_constant
            a.gaintype = mujoco.mjtGain.mjGAIN_FIXED
            a.gainprm[0] = 1.0
            a.biastype = mujoco.mjtBias.mjBIAS_NONE
            a.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
            a.ctrlrange = [0.0, act.max_thrust]
    if robot.mujoco_edit is not None:
        robot.mujoco_edit(spec)
    return spec


class MujocoBackend(Backend):
    name = "mujoco"

    def __init__(self, robot: RobotSpec, scene: Scene) -> None:
        super().__init__(robot, scene)
        self.spec = build_spec(robot, scene)
        self.model = self.spec.compile()
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._jnt_ids = np.array([self._id(mujoco.mjtObj.mjOBJ_JOINT, n) for n in robot.joints], dtype=int)
        self._qpos_adr = m.jnt_qposadr[self._jnt_ids]
        self._dof_adr = m.jnt_dofadr[self._jnt_ids]
        # the robot's root link (child of the world), as PyBullet's base: not merely the first jointed body
        self._root = int(m.body_rootid[m.jnt_bodyid[self._jnt_ids[0]]]) if len(self._jnt_ids) else 1
        if robot.floating_base:
            free = self._id(mujoco.mjtObj.mjOBJ_JOINT, "base")
            self._root = m.jnt_bodyid[free]
            self._free_q = m.jnt_qposadr[free]
            self._free_v = m.jnt_dofadr[free]
            # Rotor drag as free-joint translational damping (world frame, implicit).
            if isinstance(robot.actuators, RotorActuators):
                m.dof_damping[self._free_v : self._free_v + 3] = robot.actuators.linear_drag
        self._object_names = {o.name for o in scene.objects}
        self._robot_bodies = [
            m.body(i).name for i in range(1, m.nbody)
            if m.body(i).name not in self._object_names and m.body_rootid[i] == self._root_root()
        ]
        self._foot_ids = np.array([self._id(mujoco.mjtObj.mjOBJ_BODY, f) for f in robot.feet], dtype=int)
        self._nominal_inertia = m.body_inertia.copy()
        self._nominal_mass = m.body_mass.copy()
        self._pd = isinstance(robot.actuators, PDActuators)
        self._nominal_kp = m.actuator_gainprm[:, 0].copy()
        self._nominal_kd = -m.actuator_biasprm[:, 2].copy()
        self._kinematics_stale = False
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._hfield_unit = m.hfield_data.copy() if m.nhfield else None
        mujoco.mj_forward(m, self.data)

    # ------------------------------------------------------------------ helpers
    def _id(self, kind: mujoco.mjtObj, name: str) -> int:
        i = mujoco.mj_name2id(self.model, kind, name)
        if i < 0:
            raise TetherError(f"robot {self.robot.name}: no {kind.name[6:].lower()} named {name!r} in the model")
        return i

    def _root_root(self) -> int:
        return int(self.model.body_rootid[self._root])

    # ------------------------------------------------------------------ state
    def reset_state(self, joint_pos, joint_vel=None, base_pos=None, base_quat=None,
                    base_lin_vel=None, base_ang_vel=None) -> None:
        m, d = self.model, self.data
        ctrl = d.ctrl.copy()
        mujoco.mj_resetData(m, d)
        d.ctrl[:] = ctrl
        d.qpos[self._qpos_adr] = joint_pos
        d.qvel[self._dof_adr] = 0.0 if joint_vel is None else joint_vel
        if self.robot.floating_base:
            q, v = self._free_q, self._free_v
            d.qpos[q : q + 3] = self.robot.base_pos if base_pos is None else base_pos
            d.qpos[q + 3 : q + 7] = self.robot.base_quat if base_quat is None else base_quat
            d.qvel[v : v + 3] = 0.0 if base_lin_vel is None else base_lin_vel
            d.qvel[v + 3 : v + 6] = 0.0 if base_ang_vel is None else base_ang_vel
        if self._pd:
            d.ctrl[:] = joint_pos
        stateful = m.actuator_actadr >= 0  # motor lag starts settled at the current command
        d.act[m.actuator_actadr[stateful]] = d.ctrl[stateful]
        mujoco.mj_forward(m, d)

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        return self.data.qpos[self._qpos_adr].copy(), self.data.qvel[self._dof_adr].copy()

    def base_pose(self) -> tuple[np.ndarray, np.ndarray]:
        d = self.data
        if self.robot.floating_base:
            q = self._free_q
            return d.qpos[q : q + 3].copy(), d.qpos[q + 3 : q + 7].copy()
        d = self._fresh()
        return d.xpos[self._root].copy(), d.xquat[self._root].copy()

    def base_velocity(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.robot.floating_base:
            return np.zeros(3), np.zeros(3)
        v = self._free_v
        return self.data.qvel[v : v + 3].copy(), self.data.qvel[v + 3 : v + 6].copy()

    def body_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        i = self._id(mujoco.mjtObj.mjOBJ_BODY, name)
        d = self._fresh()
        return d.xpos[i].copy(), d.xquat[i].copy()

    def set_object_pose(self, name: str, pos: np.ndarray, quat: np.ndarray | None = None) -> None:
        m, d = self.model, self.data
        i = self._id(mujoco.mjtObj.mjOBJ_BODY, name)
        quat = np.array([1.0, 0, 0, 0]) if quat is None else quat
        if m.body_mocapid[i] >= 0:
            d.mocap_pos[m.body_mocapid[i]] = pos
            d.mocap_quat[m.body_mocapid[i]] = quat
        else:
            j = m.body_jntadr[i]
            qa, va = m.jnt_qposadr[j], m.jnt_dofadr[j]
            d.qpos[qa : qa + 3] = pos
            d.qpos[qa + 3 : qa + 7] = quat
            d.qvel[va : va + 6] = 0.0
        mujoco.mj_forward(m, d)

    def foot_contact_forces(self) -> np.ndarray:
        m, d = self.model, self.data
        out = np.zeros(len(self._foot_ids))
        if not len(out):
            return out
        f6 = np.zeros(6)
        for c in range(d.ncon):
            con = d.contact[c]
            b1, b2 = m.geom_bodyid[con.geom1], m.geom_bodyid[con.geom2]
            hit = np.nonzero((self._foot_ids == b1) | (self._foot_ids == b2))[0]
            if len(hit):
                mujoco.mj_contactForce(m, d, c, f6)
                out[hit[0]] += abs(f6[0])
        return out

    # ------------------------------------------------------------------ actuation
    def set_command(self, command: np.ndarray) -> None:
        self.data.ctrl[:] = command

    def step(self, substeps: int) -> None:
        mujoco.mj_step(self.model, self.data, nstep=substeps)
        # mj_step leaves body poses at the start of its last substep; refresh them on first read
        self._kinematics_stale = True

    def _fresh(self) -> mujoco.MjData:
        if self._kinematics_stale:
            mujoco.mj_kinematics(self.model, self.data)
            self._kinematics_stale = False
        return self.data

    def set_external_force(self, force_world, torque_world=None) -> None:
        self.data.xfrc_applied[self._root, :3] = force_world
        self.data.xfrc_applied[self._root, 3:] = 0.0 if torque_world is None else torque_world

    @property
    def time(self) -> float:
        return float(self.data.time)

    # ------------------------------------------------------------------ parameters
    def _body_ids(self, names: list[str]) -> np.ndarray:
        return np.array([self._id(mujoco.mjtObj.mjOBJ_BODY, n) for n in names], dtype=int)

    def param_elements(self, target: str) -> list[str]:
        m = self.model
        if target in ("body_mass", "body_com"):
            return [n for n in self._robot_bodies if m.body_mass[self._id(mujoco.mjtObj.mjOBJ_BODY, n)] > 0] + [
                o.name for o in self.scene.objects if o.kind == "box"]
        if target == "friction":
            return [GROUND] + [o.name for o in self.scene.objects if o.kind == "box"] + self._robot_bodies
        if target in ("joint_damping", "joint_armature", "joint_frictionloss"):
            return list(self.robot.joints)
        if target in ("actuator_gain", "actuator_strength"):
            return [m.actuator(i).name for i in range(m.nu)]
        if target == "motor_time_constant":
            return [m.actuator(i).name for i in range(m.nu)] if not self._pd else []
        if target == "gravity":
            return ["z"]
        if target == "terrain_roughness":
            return ["terrain"] if m.nhfield else []
        raise TetherError(f"backend mujoco has no parameter target {target!r}")

    def get_param(self, target: str) -> np.ndarray:
        m = self.model
        names = self.param_elements(target)
        if target == "body_mass":
            return m.body_mass[self._body_ids(names)].copy()
        if target == "body_com":
            return m.body_ipos[self._body_ids(names)].copy()
        if target == "friction":
            return np.array([self._geom_friction_of(n) for n in names])
        if target == "joint_damping":
            return m.dof_damping[self._dof_adr].copy()
        if target == "joint_armature":
            return m.dof_armature[self._dof_adr].copy()
        if target == "joint_frictionloss":
            return m.dof_frictionloss[self._dof_adr].copy()
        if target == "actuator_gain":
            return m.actuator_gainprm[:, 0].copy()
        if target == "actuator_strength":
            return (m.actuator_forcerange[:, 1] if self._pd else m.actuator_ctrlrange[:, 1]).copy()
        if target == "motor_time_constant":
            return m.actuator_dynprm[:, 0].copy()
        if target == "gravity":
            return np.array([m.opt.gravity[2]])
        if target == "terrain_roughness":
            return np.array([m.hfield_size[0, 2]])
        raise TetherError(f"backend mujoco has no parameter target {target!r}")

    def _geom_ids_of(self, name: str) -> np.ndarray:
        m = self.model
        if name == GROUND:
            return np.array([self._id(mujoco.mjtObj.mjOBJ_GEOM, GROUND)])
        b = self._id(mujoco.mjtObj.mjOBJ_BODY, name)
        return np.nonzero(m.geom_bodyid == b)[0]

    def _geom_friction_of(self, name: str) -> float:
        ids = self._geom_ids_of(name)
        return float(self.model.geom_friction[ids[0], 0]) if len(ids) else 1.0

    def set_param(self, target: str, values: np.ndarray) -> None:
        m = self.model
        values = np.asarray(values, dtype=np.float64)
        names = self.param_elements(target)
        if target == "body_mass":
            ids = self._body_ids(names)
            ratio = values / np.maximum(self._nominal_mass[ids], 1e-12)
            m.body_mass[ids] = values
            m.body_inertia[ids] = self._nominal_inertia[ids] * ratio[:, None]
            mujoco.mj_setConst(m, self.data)
        elif target == "body_com":
            m.body_ipos[self._body_ids(names)] = values
            mujoco.mj_setConst(m, self.data)
        elif target == "friction":
            for n, v in zip(names, values):
                m.geom_friction[self._geom_ids_of(n), 0] = v
        elif target == "joint_damping":
            m.dof_damping[self._dof_adr] = values
        elif target == "joint_armature":
            m.dof_armature[self._dof_adr] = values
            mujoco.mj_setConst(m, self.data)
        elif target == "joint_frictionloss":
            m.dof_frictionloss[self._dof_adr] = values
        elif target == "actuator_gain":
            if self._pd:  # damping scales with stiffness, always relative to nominal (no drift across resets)
                m.actuator_biasprm[:, 2] = -self._nominal_kd * values / np.maximum(self._nominal_kp, 1e-12)
                m.actuator_biasprm[:, 1] = -values
            m.actuator_gainprm[:, 0] = values
        elif target == "actuator_strength":
            if self._pd:
                m.actuator_forcerange[:, 0], m.actuator_forcerange[:, 1] = -values, values
            else:
                m.actuator_ctrlrange[:, 1] = values
        elif target == "motor_time_constant":
            m.actuator_dynprm[:, 0] = values
        elif target == "gravity":
            m.opt.gravity[2] = values[0]
        elif target == "terrain_roughness":
            m.hfield_size[0, 2] = max(float(values[0]), 1e-4)
        else:
            raise TetherError(f"backend mujoco has no parameter target {target!r}")

    # ------------------------------------------------------------------ rendering
    def render(self, width: int = 320, height: int = 240, camera: str | None = None) -> np.ndarray:
        key = (width, height)
        if key not in self._renderers:
            self._renderers[key] = mujoco.Renderer(self.model, height=height, width=width)
        r = self._renderers[key]
        if camera is None:
            cam = mujoco.MjvCamera()
            cam.lookat[:] = self.data.xpos[self._root]
            cam.distance = 1.2 if self.robot.name == "quadrotor" else 2.2
            cam.azimuth, cam.elevation = 135.0, -20.0
            r.update_scene(self.data, camera=cam)
        else:
            r.update_scene(self.data, camera=camera)
        return r.render()

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()
