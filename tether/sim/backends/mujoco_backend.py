"""MuJoCo backend: the robot's URDF compiled through MjSpec, actuators realised natively.

Native actuators keep stepping close to raw ``mj_step`` cost: PD joints are ``position``-style actuators
with a force range (torque limit), rotors are site actuators whose first-order lag is MuJoCo's exact filter
dynamics and whose gear carries the yaw reaction torque. Translational rotor drag is free-joint damping,
which MuJoCo integrates implicitly. Randomisation writes straight into MjModel arrays (no recompilation)
through one table, :data:`PARAMS` (DR target -> elements, getter, setter), which the single-world
:class:`MujocoBackend` and the batched :class:`tether.sim.backends.mujoco_batch.MujocoBatch` both use.

A scene with ``onboard="rate_controller"`` gets the quadrotor's body-rate PID inside the physics: its
constants as the numeric field ``tether_ratectl`` and its state in ``userdata`` (see
``tether/sim/native/ratectl.c``). Only the batched core installs the callback that reads them; the
single-world backend steps such a model like any other (its caller runs the controller).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mujoco
import numpy as np

from tether.errors import TetherError
from tether.sim.backends.base import Backend
from tether.sim.robots.base import PDActuators, RobotSpec, RotorActuators, Scene

GROUND = "ground"
# Contact friction is the higher-priority geom's (MuJoCo takes the larger of two equal-priority geoms'): a box's own
# friction governs its contacts, the ground's every robot-ground contact (robot links have priority 0), as
# PyBullet's backend realises them (pybullet_backend._set_friction).
GROUND_PRIORITY = 1
OBJECT_PRIORITY = 2
FOOT_SITE = "{}_touch"  # touch-sensor site around each foot (the batched core reads feet forces from them)


def _mat_to_quat(mat: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.asarray(mat, dtype=np.float64).reshape(9))
    return q


def build_spec(robot: RobotSpec, scene: Scene) -> mujoco.MjSpec:
    """Compile-ready MjSpec: robot URDF + ground/terrain + task objects + actuators (+ onboard controller)."""
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
                                material="grid", friction=[1.0, 0.005, 0.0001], priority=GROUND_PRIORITY)
    elif terrain.kind == "heightfield":
        hf = spec.add_hfield(name="terrain", size=[terrain.size, terrain.size, max(terrain.roughness, 1e-4), 0.1],
                             nrow=terrain.resolution, ncol=terrain.resolution)
        hf.userdata = terrain.heights().astype(np.float32).ravel().tolist()
        spec.worldbody.add_geom(name=GROUND, type=mujoco.mjtGeom.mjGEOM_HFIELD, hfieldname="terrain",
                                material="grid", friction=[1.0, 0.005, 0.0001], priority=GROUND_PRIORITY)
    else:
        raise TetherError(f"unknown terrain kind {terrain.kind!r}; expected 'flat' or 'heightfield'")

    for obj in scene.objects:
        if obj.kind == "box":
            body = spec.worldbody.add_body(name=obj.name, pos=list(obj.pos))
            body.add_freejoint(name=f"{obj.name}_free")
            body.add_geom(name=obj.name, type=mujoco.mjtGeom.mjGEOM_BOX, size=list(obj.size), mass=obj.mass,
                          rgba=list(obj.rgba), friction=[obj.friction, 0.005, 0.0001], priority=OBJECT_PRIORITY)
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
    _add_foot_sensors(spec, robot)
    if scene.onboard == "rate_controller":
        _add_rate_controller(spec, robot)
    elif scene.onboard is not None:
        raise TetherError(f"unknown onboard controller {scene.onboard!r}; expected 'rate_controller' or none")
    if robot.mujoco_edit is not None:
        robot.mujoco_edit(spec)
    return spec


def _add_foot_sensors(spec: mujoco.MjSpec, robot: RobotSpec) -> None:
    """A touch sensor per foot: a site slightly larger than the foot's collision sphere, so every contact
    of that foot lies inside it and the sensor sums their normal forces (what a foot pressure sensor reads)."""
    for foot in robot.feet:
        body = spec.body(foot)
        if body is None:
            raise TetherError(f"robot {robot.name}: no foot body {foot!r} in {robot.model_path.name}")
        geoms = list(body.geoms)
        radius = max((float(g.size[0]) for g in geoms if g.type == mujoco.mjtGeom.mjGEOM_SPHERE), default=0.02)
        pos = list(geoms[0].pos) if geoms else [0.0, 0.0, 0.0]
        body.add_site(name=FOOT_SITE.format(foot), pos=pos, size=[radius * 1.5, 0, 0], group=5)
        spec.add_sensor(name=FOOT_SITE.format(foot), type=mujoco.mjtSensor.mjSENS_TOUCH,
                        objtype=mujoco.mjtObj.mjOBJ_SITE, objname=FOOT_SITE.format(foot))


def _add_rate_controller(spec: mujoco.MjSpec, robot: RobotSpec) -> None:
    from tether.sim.native import NUMERIC_NAME, USERDATA_SIZE
    from tether.sim.robots.quadrotor import RateController

    if not isinstance(robot.actuators, RotorActuators) or not robot.floating_base:
        raise TetherError(f"robot {robot.name}: the onboard rate controller needs rotors on a floating base")
    params = RateController(robot.actuators.max_thrust).parameters()
    # the last value is the dof address of the base's angular velocity, patched after compilation
    spec.add_numeric(name=NUMERIC_NAME, data=[*params.tolist(), 3.0])
    spec.nuserdata = USERDATA_SIZE


class MujocoLayout:
    """Where a compiled model keeps the robot's parts, and the nominal values DR scales from.

    Computed once per compiled model; models copied from it (the batched core's per-world models) share it.
    """

    def __init__(self, model: mujoco.MjModel, robot: RobotSpec, scene: Scene) -> None:
        m = self.model = model
        self.robot, self.scene = robot, scene
        self.jnt_ids = np.array([self.id(mujoco.mjtObj.mjOBJ_JOINT, n) for n in robot.joints], dtype=int)
        self.qpos_adr = m.jnt_qposadr[self.jnt_ids]
        self.dof_adr = m.jnt_dofadr[self.jnt_ids]
        # the robot's root link (child of the world), as PyBullet's base: not merely the first jointed body
        self.root = int(m.body_rootid[m.jnt_bodyid[self.jnt_ids[0]]]) if len(self.jnt_ids) else 1
        self.free_q = self.free_v = -1
        if robot.floating_base:
            free = self.id(mujoco.mjtObj.mjOBJ_JOINT, "base")
            self.root = int(m.jnt_bodyid[free])
            self.free_q, self.free_v = int(m.jnt_qposadr[free]), int(m.jnt_dofadr[free])
            if isinstance(robot.actuators, RotorActuators):  # rotor drag as free-joint translational damping
                m.dof_damping[self.free_v : self.free_v + 3] = robot.actuators.linear_drag
        if scene.onboard == "rate_controller":
            m.numeric_data[m.numeric_adr[0] + m.numeric_size[0] - 1] = self.free_v + 3
        self.object_names = {o.name for o in scene.objects}
        root_root = int(m.body_rootid[self.root])
        self.robot_bodies = [m.body(i).name for i in range(1, m.nbody)
                             if m.body(i).name not in self.object_names and m.body_rootid[i] == root_root]
        self.foot_sensor_adr = np.array(
            [m.sensor_adr[self.id(mujoco.mjtObj.mjOBJ_SENSOR, FOOT_SITE.format(f))] for f in robot.feet], dtype=int)
        self.pd = isinstance(robot.actuators, PDActuators)
        self.nominal_mass = m.body_mass.copy()
        self.nominal_inertia = m.body_inertia.copy()
        self.nominal_kp = m.actuator_gainprm[:, 0].copy()
        self.nominal_kd = -m.actuator_biasprm[:, 2].copy()
        self._elements: dict[str, list[str]] = {}

    def id(self, kind: mujoco.mjtObj, name: str) -> int:
        i = mujoco.mj_name2id(self.model, kind, name)
        if i < 0:
            raise TetherError(f"robot {self.robot.name}: no {kind.name[6:].lower()} named {name!r} in the model")
        return i

    def body_ids(self, names: list[str]) -> np.ndarray:
        return np.array([self.id(mujoco.mjtObj.mjOBJ_BODY, n) for n in names], dtype=int)

    def geom_ids_of(self, name: str) -> np.ndarray:
        if name == GROUND:
            return np.array([self.id(mujoco.mjtObj.mjOBJ_GEOM, GROUND)])
        return np.nonzero(self.model.geom_bodyid == self.id(mujoco.mjtObj.mjOBJ_BODY, name))[0]

    def elements(self, target: str) -> list[str]:
        """Names of the elements ``target`` acts on, in value order (cached: the layout never changes)."""
        if target not in self._elements:
            if target not in PARAMS:
                raise TetherError(f"backend mujoco has no parameter target {target!r}")
            self._elements[target] = PARAMS[target].elements(self)
        return self._elements[target]


# ---------------------------------------------------------------------- the DR parameter table
@dataclass(frozen=True)
class Param:
    """One DR target: which elements it has, how to read them from a model and how to write them.

    ``setconst``: writing it changes constants mj_setConst derives (inertias, armature, heightfield bounds).
    """

    elements: Callable[[MujocoLayout], list[str]]
    get: Callable[[MujocoLayout, mujoco.MjModel], np.ndarray]
    set: Callable[[MujocoLayout, mujoco.MjModel, np.ndarray], None]
    setconst: bool = False


def _mass_elements(L: MujocoLayout) -> list[str]:
    m = L.model
    return [n for n in L.robot_bodies if m.body_mass[L.id(mujoco.mjtObj.mjOBJ_BODY, n)] > 0] + [
        o.name for o in L.scene.objects if o.kind == "box"]


def _set_mass(L: MujocoLayout, m: mujoco.MjModel, v: np.ndarray) -> None:
    ids = L.body_ids(L.elements("body_mass"))
    m.body_mass[ids] = v
    m.body_inertia[ids] = L.nominal_inertia[ids] * (v / np.maximum(L.nominal_mass[ids], 1e-12))[:, None]


def _set_friction(L: MujocoLayout, m: mujoco.MjModel, v: np.ndarray) -> None:
    for name, value in zip(L.elements("friction"), v):
        m.geom_friction[L.geom_ids_of(name), 0] = value


def _get_friction(L: MujocoLayout, m: mujoco.MjModel) -> np.ndarray:
    out = []
    for name in L.elements("friction"):
        ids = L.geom_ids_of(name)
        out.append(float(m.geom_friction[ids[0], 0]) if len(ids) else 1.0)
    return np.array(out)


def _set_gain(L: MujocoLayout, m: mujoco.MjModel, v: np.ndarray) -> None:
    if L.pd:  # damping scales with stiffness, always relative to nominal (no drift across resets)
        m.actuator_biasprm[:, 2] = -L.nominal_kd * v / np.maximum(L.nominal_kp, 1e-12)
        m.actuator_biasprm[:, 1] = -v
    m.actuator_gainprm[:, 0] = v


def _set_strength(L: MujocoLayout, m: mujoco.MjModel, v: np.ndarray) -> None:
    if L.pd:
        m.actuator_forcerange[:, 0], m.actuator_forcerange[:, 1] = -v, v
    else:
        m.actuator_ctrlrange[:, 1] = v


def _actuators(L: MujocoLayout) -> list[str]:
    return [L.model.actuator(i).name for i in range(L.model.nu)]


def _dof_field(name: str, setconst: bool = False) -> Param:
    def get(L: MujocoLayout, m: mujoco.MjModel) -> np.ndarray:
        return getattr(m, name)[L.dof_adr].copy()

    def set_(L: MujocoLayout, m: mujoco.MjModel, v: np.ndarray) -> None:
        getattr(m, name)[L.dof_adr] = v

    return Param(lambda L: list(L.robot.joints), get, set_, setconst)


PARAMS: dict[str, Param] = {
    "body_mass": Param(_mass_elements, lambda L, m: m.body_mass[L.body_ids(L.elements("body_mass"))].copy(),
                       _set_mass, setconst=True),
    "body_com": Param(_mass_elements, lambda L, m: m.body_ipos[L.body_ids(L.elements("body_com"))].copy(),
                      lambda L, m, v: m.body_ipos.__setitem__(L.body_ids(L.elements("body_com")), v),
                      setconst=True),
    "friction": Param(lambda L: [GROUND] + [o.name for o in L.scene.objects if o.kind == "box"] + L.robot_bodies,
                      _get_friction, _set_friction),
    "joint_damping": _dof_field("dof_damping"),
    "joint_armature": _dof_field("dof_armature", setconst=True),
    "joint_frictionloss": _dof_field("dof_frictionloss"),
    "actuator_gain": Param(_actuators, lambda L, m: m.actuator_gainprm[:, 0].copy(), _set_gain),
    "actuator_strength": Param(
        _actuators, lambda L, m: (m.actuator_forcerange[:, 1] if L.pd else m.actuator_ctrlrange[:, 1]).copy(),
        _set_strength),
    "motor_time_constant": Param(lambda L: [] if L.pd else _actuators(L),
                                 lambda L, m: m.actuator_dynprm[:, 0].copy(),
                                 lambda L, m, v: m.actuator_dynprm.__setitem__((slice(None), 0), v)),
    "gravity": Param(lambda L: ["z"], lambda L, m: np.array([m.opt.gravity[2]]),
                     lambda L, m, v: m.opt.gravity.__setitem__(2, float(v[0]))),
    "terrain_roughness": Param(lambda L: ["terrain"] if L.model.nhfield else [],
                               lambda L, m: np.array([m.hfield_size[0, 2]]),
                               lambda L, m, v: m.hfield_size.__setitem__((0, 2), max(float(v[0]), 1e-4)),
                               setconst=True),
}


def get_param(L: MujocoLayout, model: mujoco.MjModel, target: str) -> np.ndarray:
    L.elements(target)  # names the target if unknown
    return PARAMS[target].get(L, model)


def set_param(L: MujocoLayout, model: mujoco.MjModel, data: mujoco.MjData, target: str, values: np.ndarray) -> None:
    L.elements(target)
    PARAMS[target].set(L, model, np.asarray(values, dtype=np.float64))
    if PARAMS[target].setconst:
        mujoco.mj_setConst(model, data)


# ---------------------------------------------------------------------- one world
class MujocoBackend(Backend):
    """One MuJoCo world: the single-robot view used by served robots and system identification."""

    name = "mujoco"

    def __init__(self, robot: RobotSpec, scene: Scene) -> None:
        super().__init__(robot, scene)
        self.spec = build_spec(robot, scene)
        self.model = self.spec.compile()
        self.data = mujoco.MjData(self.model)
        self.layout = MujocoLayout(self.model, robot, scene)
        self._kinematics_stale = False
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        mujoco.mj_forward(self.model, self.data)

    # ------------------------------------------------------------------ state
    def reset_state(self, joint_pos, joint_vel=None, base_pos=None, base_quat=None,
                    base_lin_vel=None, base_ang_vel=None) -> None:
        m, d, L = self.model, self.data, self.layout
        ctrl = d.ctrl.copy()
        mujoco.mj_resetData(m, d)
        d.ctrl[:] = ctrl
        d.qpos[L.qpos_adr] = joint_pos
        d.qvel[L.dof_adr] = 0.0 if joint_vel is None else joint_vel
        if self.robot.floating_base:
            q, v = L.free_q, L.free_v
            d.qpos[q : q + 3] = self.robot.base_pos if base_pos is None else base_pos
            d.qpos[q + 3 : q + 7] = self.robot.base_quat if base_quat is None else base_quat
            d.qvel[v : v + 3] = 0.0 if base_lin_vel is None else base_lin_vel
            d.qvel[v + 3 : v + 6] = 0.0 if base_ang_vel is None else base_ang_vel
        if L.pd:
            d.ctrl[:] = joint_pos
        stateful = m.actuator_actadr >= 0  # motor lag starts settled at the current command
        d.act[m.actuator_actadr[stateful]] = d.ctrl[stateful]
        mujoco.mj_forward(m, d)

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        L = self.layout
        return self.data.qpos[L.qpos_adr].copy(), self.data.qvel[L.dof_adr].copy()

    def base_pose(self) -> tuple[np.ndarray, np.ndarray]:
        L = self.layout
        if self.robot.floating_base:
            q = L.free_q
            return self.data.qpos[q : q + 3].copy(), self.data.qpos[q + 3 : q + 7].copy()
        d = self._fresh()
        return d.xpos[L.root].copy(), d.xquat[L.root].copy()

    def base_velocity(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.robot.floating_base:
            return np.zeros(3), np.zeros(3)
        v = self.layout.free_v
        return self.data.qvel[v : v + 3].copy(), self.data.qvel[v + 3 : v + 6].copy()

    def body_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        i = self.layout.id(mujoco.mjtObj.mjOBJ_BODY, name)
        d = self._fresh()
        return d.xpos[i].copy(), d.xquat[i].copy()

    def set_object_pose(self, name: str, pos: np.ndarray, quat: np.ndarray | None = None) -> None:
        m, d = self.model, self.data
        i = self.layout.id(mujoco.mjtObj.mjOBJ_BODY, name)
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
        feet = self.layout.body_ids(list(self.robot.feet))
        out = np.zeros(len(feet))
        if not len(out):
            return out
        f6 = np.zeros(6)
        for c in range(d.ncon):
            con = d.contact[c]
            b1, b2 = m.geom_bodyid[con.geom1], m.geom_bodyid[con.geom2]
            hit = np.nonzero((feet == b1) | (feet == b2))[0]
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
        root = self.layout.root
        self.data.xfrc_applied[root, :3] = force_world
        self.data.xfrc_applied[root, 3:] = 0.0 if torque_world is None else torque_world

    @property
    def time(self) -> float:
        return float(self.data.time)

    def snapshot(self) -> np.ndarray:
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        state = np.empty(mujoco.mj_stateSize(self.model, spec))
        mujoco.mj_getState(self.model, self.data, state, spec)
        return state

    def restore(self, state: np.ndarray) -> None:
        mujoco.mj_setState(self.model, self.data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
        mujoco.mj_forward(self.model, self.data)
        self._kinematics_stale = False

    # ------------------------------------------------------------------ parameters
    def param_elements(self, target: str) -> list[str]:
        return self.layout.elements(target)

    def get_param(self, target: str) -> np.ndarray:
        return get_param(self.layout, self.model, target)

    def set_param(self, target: str, values: np.ndarray) -> None:
        set_param(self.layout, self.model, self.data, target, values)

    # ------------------------------------------------------------------ rendering
    def render(self, width: int = 320, height: int = 240, camera: str | None = None) -> np.ndarray:
        return render(self._renderers, self.model, self.data, self.layout, width, height, camera)

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()


def render(renderers: dict, model: mujoco.MjModel, data: mujoco.MjData, L: MujocoLayout,
           width: int, height: int, camera: str | None) -> np.ndarray:
    """Offscreen RGB of one world, following the robot's root (renderers cached by size in ``renderers``)."""
    key = (width, height)
    if key not in renderers:
        renderers[key] = mujoco.Renderer(model, height=height, width=width)
    r = renderers[key]
    if camera is None:
        cam = mujoco.MjvCamera()
        cam.lookat[:] = data.xpos[L.root]
        cam.distance = 1.2 if L.robot.name == "quadrotor" else 2.2
        cam.azimuth, cam.elevation = 135.0, -20.0
        r.update_scene(data, camera=cam)
    else:
        r.update_scene(data, camera=camera)
    return r.render()
