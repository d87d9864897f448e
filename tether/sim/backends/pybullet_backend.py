"""PyBullet backend: the same URDF, the same actuator models, realised per physics substep.

PyBullet has no native equivalent of MuJoCo's PD actuator with force range or of filter dynamics, so both
are realised here per physics substep: PD torques are computed from the measured joint state and clipped to
the torque limit, joint damping and dry friction are added (PyBullet's own joint damping and default link
damping are switched off so they do not count twice). On a fixed-base robot the velocity terms (PD damping
and joint damping) are integrated implicitly, as MuJoCo's ``implicitfast`` integrator does: explicit damping
at the 2 ms physics step made a lighter (mass x0.6) or stiffer (gain x1.4) Panda chatter at 4 rad/s while
holding still, where MuJoCo stays at rest (see :meth:`PybulletBackend._implicit_pd`). A floating-base robot
keeps explicit damping (its mass matrix would carry the base's six DOFs; the A1 settles at every gain and mass
tried: gain x4, and gain x3 with mass x0.4). Rotor thrust follows the same exact first-order lag as MuJoCo's
``filterexact``, and forces are applied in the world frame (PyBullet's LINK_FRAME torques are unreliable
for the base). PyBullet's base pose is its centre-of-mass frame; this backend converts to and from the URDF
link frame so poses mean the same as on MuJoCo.

Not available here and refused by name if a DR term asks for them: joint armature and centre-of-mass
offsets (PyBullet cannot change either after loading).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def _import_pybullet_quietly():  # type: ignore[no-untyped-def]
    """pybullet's C module prints its build date on import (to stderr in current wheels, stdout in older ones);
    keep it off fds 1 and 2 (``robot serve`` output is read by people and processes). C stdio is flushed before
    the fds are restored, so nothing leaks out later; a failing import still raises as usual."""
    import ctypes
    import os
    import sys

    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no standard fds to protect
        import pybullet

        return pybullet
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        import pybullet

        ctypes.CDLL(None).fflush(None)
    finally:
        for fd, copy in ((1, saved[0]), (2, saved[1])):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)
    return pybullet


pb = _import_pybullet_quietly()
import pybullet_data  # noqa: E402
from pybullet_utils import bullet_client  # noqa: E402

from tether.errors import TetherError  # noqa: E402
from tether.sim.backends.base import Backend  # noqa: E402
from tether.sim.robots.base import PDActuators, RobotSpec, RotorActuators, Scene  # noqa: E402

GROUND = "ground"
_UNSUPPORTED = ("joint_armature", "body_com")


def _xyzw(q_wxyz: np.ndarray) -> list[float]:
    return [float(q_wxyz[1]), float(q_wxyz[2]), float(q_wxyz[3]), float(q_wxyz[0])]


def _wxyz(q_xyzw) -> np.ndarray:
    return np.array([q_xyzw[3], q_xyzw[0], q_xyzw[1], q_xyzw[2]])


class PybulletBackend(Backend):
    name = "pybullet"
    _KEPT = ("_command", "_thrust", "_time", "_push_force", "_push_torque")  # dynamic state outside Bullet

    def __init__(self, robot: RobotSpec, scene: Scene) -> None:
        super().__init__(robot, scene)
        self.p = p = bullet_client.BulletClient(connection_mode=pb.DIRECT)
        p.setAdditionalSearchPath(pybullet_data.getDataPath())
        p.setPhysicsEngineParameter(fixedTimeStep=robot.physics_dt, numSubSteps=0)
        self._gravity = -9.81
        p.setGravity(0, 0, self._gravity)
        self._time = 0.0
        self._terrain_roughness = scene.terrain.roughness
        self._ground = self._make_ground()
        flags = pb.URDF_USE_INERTIA_FROM_FILE
        base_pos = robot.base_pos if robot.floating_base else np.array([0.0, 0.0, robot.fixed_base_z])
        self.body = p.loadURDF(str(robot.model_path), basePosition=base_pos.tolist(),
                               baseOrientation=_xyzw(robot.base_quat), useFixedBase=not robot.floating_base,
                               flags=flags)
        self._links: dict[str, int] = {p.getBodyInfo(self.body)[0].decode(): -1}
        joint_index: dict[str, int] = {}
        self._urdf_damping, self._urdf_friction = {}, {}
        for j in range(p.getNumJoints(self.body)):
            info = p.getJointInfo(self.body, j)
            joint_index[info[1].decode()] = j
            self._links[info[12].decode()] = j
            self._urdf_damping[j], self._urdf_friction[j] = info[6], info[7]
        missing = [n for n in robot.joints if n not in joint_index]
        if missing:
            raise TetherError(f"robot {robot.name}: joints {missing} not in {robot.model_path.name}")
        self._jidx = [joint_index[n] for n in robot.joints]
        for link in self._links.values():  # friction 1 is neutral under the product rule (see _set_friction)
            p.changeDynamics(self.body, link, linearDamping=0.0, angularDamping=0.0, jointDamping=0.0,
                             lateralFriction=1.0)
        self._link_friction = dict.fromkeys(self._links, 1.0)  # each link's friction as set (see _set_friction)
        if self._jidx:
            p.setJointMotorControlArray(self.body, self._jidx, pb.VELOCITY_CONTROL, forces=[0.0] * len(self._jidx))
        dyn = p.getDynamicsInfo(self.body, -1)
        self._inertial_pos, self._inertial_orn = dyn[3], dyn[4]
        self._objects: dict[str, int] = {}
        self._object_friction: dict[str, float] = {}  # each box's friction against the ground (see _set_friction)
        for obj in scene.objects:
            self._objects[obj.name] = self._make_object(obj)

        # every movable joint, in PyBullet's DOF order (mass matrix rows), and where the driven joints sit in it
        self._dofs = [j for j in range(p.getNumJoints(self.body)) if p.getJointInfo(self.body, j)[2] != pb.JOINT_FIXED]
        self._driven = np.array([self._dofs.index(j) for j in self._jidx], dtype=int)
        self._damping = np.array([self._urdf_damping[j] for j in self._jidx])
        self._frictionloss = np.array([self._urdf_friction[j] for j in self._jidx])
        act = robot.actuators
        self._pd = isinstance(act, PDActuators)
        if self._pd:
            self._kp, self._kd = act.kp.astype(float).copy(), act.kd.astype(float).copy()
            self._nominal_kp, self._nominal_kd = self._kp.copy(), self._kd.copy()
            self._torque_limit = act.torque_limit.astype(float).copy()
            self._command = robot.default_joint_pos.astype(float).copy()
        elif isinstance(act, RotorActuators):
            k = len(act.spin)
            self._gain = np.ones(k)
            self._max_thrust = np.full(k, act.max_thrust)
            self._tau = np.full(k, act.time_constant)
            self._thrust = np.zeros(k)
            self._command = np.zeros(k)
        else:  # pragma: no cover - RobotSpec only allows the two kinds
            raise TetherError(f"unsupported actuator model {type(act).__name__}")
        self._push_force = np.zeros(3)
        self._push_torque = np.zeros(3)
        self._mass_links = [l for l in self._links.values() if p.getDynamicsInfo(self.body, l)[0] > 0]
        self._nominal_mass = {l: p.getDynamicsInfo(self.body, l)[0] for l in self._links.values()}
        self._nominal_inertia = {l: np.array(p.getDynamicsInfo(self.body, l)[2]) for l in self._links.values()}
        for name, b in self._objects.items():
            info = p.getDynamicsInfo(b, -1)
            self._nominal_mass[name] = info[0]
            self._nominal_inertia[name] = np.array(info[2])
        self.reset_state(robot.default_joint_pos)

    # ------------------------------------------------------------------ world building
    def _make_ground(self) -> int:
        p, terrain = self.p, self.scene.terrain
        if terrain.kind == "flat":
            ground = p.loadURDF("plane.urdf")
        elif terrain.kind == "heightfield":
            heights = terrain.heights()
            n = terrain.resolution
            spacing = 2 * terrain.size / (n - 1)
            rough = max(self._terrain_roughness, 1e-4)
            shape = p.createCollisionShape(
                pb.GEOM_HEIGHTFIELD, meshScale=[spacing, spacing, rough],
                heightfieldData=heights.ravel().tolist(), numHeightfieldRows=n, numHeightfieldColumns=n)
            # PyBullet centres a heightfield on its height range; MuJoCo's starts at z = 0.
            ground = p.createMultiBody(0, shape, basePosition=[0, 0, rough * (heights.max() + heights.min()) / 2])
        else:
            raise TetherError(f"unknown terrain kind {terrain.kind!r}; expected 'flat' or 'heightfield'")
        p.changeDynamics(ground, -1, lateralFriction=1.0)
        return ground

    def _apply_object_friction(self, body: int, name: str) -> None:
        """Give a box the PyBullet friction whose product with the ground's is the box's own friction."""
        ground = max(self.p.getDynamicsInfo(self._ground, -1)[1], 1e-6)
        self.p.changeDynamics(body, -1, lateralFriction=self._object_friction[name] / ground)

    def _make_object(self, obj) -> int:
        p = self.p
        if obj.kind == "box":
            col = p.createCollisionShape(pb.GEOM_BOX, halfExtents=list(obj.size))
            vis = p.createVisualShape(pb.GEOM_BOX, halfExtents=list(obj.size), rgbaColor=list(obj.rgba))
            b = p.createMultiBody(obj.mass, col, vis, basePosition=list(obj.pos))
            p.changeDynamics(b, -1, linearDamping=0.0, angularDamping=0.0)
            self._object_friction[obj.name] = float(obj.friction)
            self._apply_object_friction(b, obj.name)
            return b
        if obj.kind == "marker":
            vis = p.createVisualShape(pb.GEOM_SPHERE, radius=obj.size[0], rgbaColor=list(obj.rgba))
            return p.createMultiBody(0, -1, vis, basePosition=list(obj.pos))
        raise TetherError(f"unknown scene object kind {obj.kind!r}; expected 'box' or 'marker'")

    # ------------------------------------------------------------------ frames
    def _com_from_link(self, pos, quat_wxyz):
        return self.p.multiplyTransforms(list(pos), _xyzw(quat_wxyz), self._inertial_pos, self._inertial_orn)

    def _link_from_com(self, pos, orn_xyzw):
        inv_p, inv_q = self.p.invertTransform(self._inertial_pos, self._inertial_orn)
        return self.p.multiplyTransforms(pos, orn_xyzw, inv_p, inv_q)

    # ------------------------------------------------------------------ state
    def reset_state(self, joint_pos, joint_vel=None, base_pos=None, base_quat=None,
                    base_lin_vel=None, base_ang_vel=None) -> None:
        p, r = self.p, self.robot
        jv = np.zeros(len(self._jidx)) if joint_vel is None else joint_vel
        for j, q, v in zip(self._jidx, joint_pos, jv):
            p.resetJointState(self.body, j, float(q), float(v))
        if r.floating_base:
            pos = r.base_pos if base_pos is None else base_pos
            quat = r.base_quat if base_quat is None else base_quat
            cp, cq = self._com_from_link(pos, quat)
            p.resetBasePositionAndOrientation(self.body, cp, cq)
            R = np.array(p.getMatrixFromQuaternion(cq)).reshape(3, 3)
            ang_body = np.zeros(3) if base_ang_vel is None else np.asarray(base_ang_vel)
            lin = np.zeros(3) if base_lin_vel is None else np.asarray(base_lin_vel)
            p.resetBaseVelocity(self.body, lin.tolist(), (R @ ang_body).tolist())
        if self._pd:
            self._command = np.asarray(joint_pos, dtype=float).copy()
        else:
            self._thrust = np.clip(self._command, 0.0, self._max_thrust)
        # contacts of the old pose would otherwise be reported until the next step
        self.p.performCollisionDetection()

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._jidx:
            return np.zeros(0), np.zeros(0)
        states = self.p.getJointStates(self.body, self._jidx)
        return np.array([s[0] for s in states]), np.array([s[1] for s in states])

    def _base_com(self):
        return self.p.getBasePositionAndOrientation(self.body)

    def base_pose(self) -> tuple[np.ndarray, np.ndarray]:
        pos, orn = self._link_from_com(*self._base_com())
        return np.array(pos), _wxyz(orn)

    def base_velocity(self) -> tuple[np.ndarray, np.ndarray]:
        lin, ang = self.p.getBaseVelocity(self.body)
        _, orn = self._base_com()
        R = np.array(self.p.getMatrixFromQuaternion(orn)).reshape(3, 3)
        return np.array(lin), R.T @ np.array(ang)

    def body_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name in self._objects:
            pos, orn = self.p.getBasePositionAndOrientation(self._objects[name])
            return np.array(pos), _wxyz(orn)
        if name not in self._links:
            raise TetherError(f"robot {self.robot.name}: no body named {name!r}; links are {sorted(self._links)}")
        link = self._links[name]
        if link == -1:
            return self.base_pose()
        st = self.p.getLinkState(self.body, link, computeForwardKinematics=True)
        return np.array(st[4]), _wxyz(st[5])

    def set_object_pose(self, name: str, pos, quat=None) -> None:
        if name not in self._objects:
            raise TetherError(f"no scene object {name!r}; objects are {sorted(self._objects)}")
        b = self._objects[name]
        quat = np.array([1.0, 0, 0, 0]) if quat is None else quat
        self.p.resetBasePositionAndOrientation(b, list(map(float, pos)), _xyzw(quat))
        self.p.resetBaseVelocity(b, [0, 0, 0], [0, 0, 0])

    def foot_contact_forces(self) -> np.ndarray:
        out = np.zeros(len(self.robot.feet))
        for i, foot in enumerate(self.robot.feet):
            for c in self.p.getContactPoints(bodyA=self.body, linkIndexA=self._links[foot]):
                out[i] += c[9]
        return out

    # ------------------------------------------------------------------ actuation
    def set_command(self, command) -> None:
        self._command = np.asarray(command, dtype=float).copy()

    def step(self, substeps: int) -> None:
        p, dt = self.p, self.robot.physics_dt
        for _ in range(substeps):
            if self._pd:
                tau = self._explicit_pd() if self.robot.floating_base else self._implicit_pd(dt)
                p.setJointMotorControlArray(self.body, self._jidx, pb.TORQUE_CONTROL, forces=tau.tolist())
            else:
                self._apply_rotors()
            com_pos, _ = self._base_com()
            if self._push_force.any() or self._push_torque.any():
                p.applyExternalForce(self.body, -1, self._push_force.tolist(), com_pos, pb.WORLD_FRAME)
                p.applyExternalTorque(self.body, -1, self._push_torque.tolist(), pb.WORLD_FRAME)
            p.stepSimulation()
            if not self._pd:
                target = np.clip(self._command, 0.0, self._max_thrust)
                self._thrust += (target - self._thrust) * (1.0 - np.exp(-dt / self._tau))
            self._time += dt

    def _explicit_pd(self) -> np.ndarray:
        """PD (clipped to the torque limit), joint damping and dry friction from the measured joint state."""
        q, qd = self.joint_state()
        tau = np.clip(self._kp * (self._command - q) - self._kd * qd, -self._torque_limit, self._torque_limit)
        return tau - self._damping * qd - self._frictionloss * np.tanh(qd / 1e-2)

    def _implicit_pd(self, dt: float) -> np.ndarray:
        """The joint torques whose damping acts on the velocity at the end of the step, not the start.

        With M the mass matrix, c the Coriolis and gravity terms and D the damping of each joint (PD damping
        where the torque limit does not clip it, plus joint damping), the end-of-step acceleration solves
        (M + dt D) qdd = tau_explicit - c, and the torque applied is tau_explicit - dt D qdd: PyBullet's own
        step then reaches qd + dt qdd, the velocity implicit damping gives (contacts aside). This is how
        MuJoCo's ``implicitfast`` treats the same actuators, so both backends stay at rest where the
        continuous-time PD would, however light the links or stiff the gains."""
        p = self.p
        states = p.getJointStates(self.body, self._dofs)
        q_all = [s[0] for s in states]
        qd_all = np.array([s[1] for s in states])
        i = self._driven
        q, qd = np.asarray(q_all)[i], qd_all[i]
        pd = self._kp * (self._command - q) - self._kd * qd
        free = np.abs(pd) < self._torque_limit  # a clipped PD torque does not depend on the velocity
        damping = np.where(free, self._kd, 0.0) + self._damping
        tau = np.clip(pd, -self._torque_limit, self._torque_limit) - self._damping * qd
        tau -= self._frictionloss * np.tanh(qd / 1e-2)
        n = len(self._dofs)
        A = np.array(p.calculateMassMatrix(self.body, q_all)).reshape(n, n)
        A[i, i] += dt * damping
        rhs = -np.array(p.calculateInverseDynamics(self.body, q_all, qd_all.tolist(), [0.0] * n))
        rhs[i] += tau
        qdd = np.linalg.solve(A, rhs)[i]
        return tau - dt * damping * qdd

    def _apply_rotors(self) -> None:
        p, act = self.p, self.robot.actuators
        com_pos, com_orn = self._base_com()
        link_pos, link_orn = self._link_from_com(com_pos, com_orn)
        R = np.array(p.getMatrixFromQuaternion(link_orn)).reshape(3, 3)
        thrust = self._gain * self._thrust
        for r_body, f in zip(act.positions, thrust):
            point = np.array(link_pos) + R @ r_body
            p.applyExternalForce(self.body, -1, (R[:, 2] * f).tolist(), point.tolist(), pb.WORLD_FRAME)
        yaw = float(np.sum(-act.spin * act.torque_to_thrust * thrust))
        lin, _ = p.getBaseVelocity(self.body)
        drag = -act.linear_drag * np.array(lin)
        p.applyExternalForce(self.body, -1, drag.tolist(), com_pos, pb.WORLD_FRAME)
        p.applyExternalTorque(self.body, -1, (R[:, 2] * yaw).tolist(), pb.WORLD_FRAME)

    def set_external_force(self, force_world, torque_world=None) -> None:
        self._push_force = np.asarray(force_world, dtype=float)
        self._push_torque = np.zeros(3) if torque_world is None else np.asarray(torque_world, dtype=float)

    @property
    def time(self) -> float:
        return self._time

    def snapshot(self) -> dict:
        # Bullet's own copy (bodies' state and contacts) plus what this class holds: the command, rotor lag, clock, push
        kept = {k: copy.copy(getattr(self, k)) for k in self._KEPT if hasattr(self, k)}
        return {"bullet": self.p.saveState(), **kept}

    def restore(self, state: dict) -> None:
        """Not bit for bit after steps in between (1.2e-5 rad in joint angle, 1.8e-4 rad/s in joint speed, over 60
        steps of an A1 with a lookahead every third): Bullet's saved state leaves out its contact solver's warm
        start."""
        self.p.restoreState(stateId=state["bullet"])
        self.p.removeState(state["bullet"])  # each snapshot restores once: Bullet keeps it in memory until removed
        for k in self._KEPT:
            if k in state:
                setattr(self, k, state[k])

    # ------------------------------------------------------------------ parameters
    def _mass_elements(self) -> list[str]:
        names = [n for n, l in self._links.items() if self._nominal_mass[l] > 0]
        return names + [o.name for o in self.scene.objects if o.kind == "box"]

    def _handle(self, name: str) -> tuple[int, int]:
        if name in self._objects:
            return self._objects[name], -1
        if name == GROUND:
            return self._ground, -1
        return self.body, self._links[name]

    def param_elements(self, target: str) -> list[str]:
        if target in _UNSUPPORTED:
            return []
        if target not in PARAMS:
            raise TetherError(f"backend pybullet has no parameter target {target!r}")
        return PARAMS[target].elements(self)

    def get_param(self, target: str) -> np.ndarray:
        if target not in PARAMS:
            raise TetherError(f"backend pybullet cannot randomise {target!r}")
        return PARAMS[target].get(self)

    def set_param(self, target: str, values) -> None:
        if target not in PARAMS:
            raise TetherError(f"backend pybullet cannot randomise {target!r}")
        PARAMS[target].set(self, np.asarray(values, dtype=float))

    # ------------------------------------------------------------------ rendering
    def render(self, width: int = 320, height: int = 240, camera: str | None = None) -> np.ndarray:
        pos, _ = self.base_pose()
        dist = 1.2 if self.robot.name == "quadrotor" else 2.2
        view = self.p.computeViewMatrixFromYawPitchRoll(pos.tolist(), dist, 45.0, -20.0, 0.0, 2)
        proj = self.p.computeProjectionMatrixFOV(45.0, width / height, 0.01, 50.0)
        img = self.p.getCameraImage(width, height, view, proj, renderer=pb.ER_TINY_RENDERER)[2]
        return np.asarray(img, dtype=np.uint8).reshape(height, width, 4)[:, :, :3].copy()

    def close(self) -> None:
        try:
            self.p.disconnect()
        except pb.error:
            pass


# ---------------------------------------------------------------------- the DR parameter table
@dataclass(frozen=True)
class Param:
    """One DR target: which elements it has, how to read them from the running simulation and how to write them.

    Why a table (as the MuJoCo backend's): a target is supported exactly when it has a row here; the ones
    PyBullet cannot change after loading (``_UNSUPPORTED``) have none and are refused by name.
    """

    elements: Callable[[PybulletBackend], list[str]]
    get: Callable[[PybulletBackend], np.ndarray]
    set: Callable[[PybulletBackend, np.ndarray], None]


def _rotors(B: PybulletBackend) -> list[str]:
    return [f"rotor{i}" for i in range(len(B._command))]


def _friction_elements(B: PybulletBackend) -> list[str]:
    return [GROUND] + [o.name for o in B.scene.objects if o.kind == "box"] + list(B._links)


def _set_mass(B: PybulletBackend, values: np.ndarray) -> None:
    for n, m in zip(B._mass_elements(), values):
        b, link = B._handle(n)
        key = n if n in B._objects else link
        ratio = m / max(B._nominal_mass[key], 1e-12)
        B.p.changeDynamics(b, link, mass=float(m), localInertiaDiagonal=(B._nominal_inertia[key] * ratio).tolist())


def _get_friction(B: PybulletBackend) -> np.ndarray:
    ground = B.p.getDynamicsInfo(B._ground, -1)[1]
    kept = {**B._link_friction, **B._object_friction}
    return np.array([ground if n == GROUND else kept[n] for n in _friction_elements(B)])


def _set_friction(B: PybulletBackend, values: np.ndarray) -> None:
    """Friction means on PyBullet what it means on MuJoCo. PyBullet multiplies two surfaces' frictions; MuJoCo
    takes the higher-priority geom's: a box's own (``mujoco_backend.OBJECT_PRIORITY``), else the ground's, and a
    robot link's friction governs no contact with either. So a box's value is its friction against the ground,
    kept apart and realised as value / ground, and a link's value is kept (and returned) but realised as the
    neutral 1, leaving the ground's friction to be the foot-ground one. Before this, a box of friction 0.6 slid on
    the table as mu = 0.93 on MuJoCo and 0.61 on PyBullet, and scaling every friction by s (a served robot's
    ``scale: {friction: s}``) scaled the box's and the feet's contacts by s on MuJoCo and by s**2 on PyBullet
    (x0.3: a box's mu 0.30 against 0.054)."""
    for n, f in zip(_friction_elements(B), values):
        if n == GROUND:
            B.p.changeDynamics(B._ground, -1, lateralFriction=float(f))
        elif n in B._objects:
            B._object_friction[n] = float(f)
        else:
            B._link_friction[n] = float(f)
    for n in B._object_friction:  # after the ground's new value: each box's product with it
        B._apply_object_friction(B._objects[n], n)


def _set_gain(B: PybulletBackend, values: np.ndarray) -> None:
    if B._pd:  # damping scales with stiffness, always relative to nominal (no drift across resets)
        B._kd = B._nominal_kd * values / np.maximum(B._nominal_kp, 1e-12)
        B._kp = values.copy()
    else:
        B._gain = values.copy()


def _set_strength(B: PybulletBackend, values: np.ndarray) -> None:
    if B._pd:
        B._torque_limit = values.copy()
    else:
        B._max_thrust = values.copy()


def _set_gravity(B: PybulletBackend, values: np.ndarray) -> None:
    B._gravity = float(values[0])
    B.p.setGravity(0, 0, B._gravity)


def _set_roughness(B: PybulletBackend, values: np.ndarray) -> None:
    if float(values[0]) == B._terrain_roughness:
        return  # rebuilding a heightfield costs ~0.2 s; only do it when the ground really changes
    friction = B.p.getDynamicsInfo(B._ground, -1)[1]
    B._terrain_roughness = float(values[0])
    B.p.removeBody(B._ground)
    B._ground = B._make_ground()
    B.p.changeDynamics(B._ground, -1, lateralFriction=friction)


def _attr(name: str) -> tuple[Callable[[PybulletBackend], np.ndarray], Callable[[PybulletBackend, np.ndarray], None]]:
    """(getter, setter) of a per-element array this backend applies itself each substep."""
    return (lambda B: getattr(B, name).copy()), (lambda B, v: setattr(B, name, v.copy()))


PARAMS: dict[str, Param] = {
    "body_mass": Param(lambda B: B._mass_elements(),
                       lambda B: np.array([B.p.getDynamicsInfo(*B._handle(n))[0] for n in B._mass_elements()]),
                       _set_mass),
    "friction": Param(_friction_elements, _get_friction, _set_friction),
    "joint_damping": Param(lambda B: list(B.robot.joints), *_attr("_damping")),
    "joint_frictionloss": Param(lambda B: list(B.robot.joints), *_attr("_frictionloss")),
    "actuator_gain": Param(lambda B: list(B.robot.joints) if B._pd else _rotors(B),
                           lambda B: B._kp.copy() if B._pd else B._gain.copy(), _set_gain),
    "actuator_strength": Param(lambda B: list(B.robot.joints) if B._pd else _rotors(B),
                               lambda B: B._torque_limit.copy() if B._pd else B._max_thrust.copy(), _set_strength),
    "motor_time_constant": Param(lambda B: [] if B._pd else _rotors(B), *_attr("_tau")),
    "gravity": Param(lambda B: ["z"], lambda B: np.array([B._gravity]), _set_gravity),
    "terrain_roughness": Param(lambda B: ["terrain"] if B.scene.terrain.kind == "heightfield" else [],
                               lambda B: np.array([B._terrain_roughness]), _set_roughness),
}
