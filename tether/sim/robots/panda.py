"""Franka Emika Panda: 7 revolute joints and a parallel two-finger gripper on a fixed base.

Geometry and meshes come from pybullet_data's ``franka_panda/panda.urdf`` so MuJoCo and PyBullet load the
same file. That URDF ships placeholder inertias (every link 0.1 kg m² on each axis, a 0.2 kg link 7), which
would make the wrist absurdly sluggish, so :func:`panda_urdf` writes a resolved copy with

- absolute mesh paths (no ``package://``; collision meshes for visuals too, so both engines render the
  same shapes and PyBullet does not parse 9 MB of visual meshes),
- the link masses, centres of mass and full inertia tensors of MuJoCo Menagerie's ``franka_emika_panda``
  model (identified values, same link frames as this URDF),
- the position, velocity and torque limits of Franka's published datasheet,
- the tool centre point ``panda_grasptarget`` at 0.1034 m from the flange (Franka Hand TCP), the same
  point ``tether.hardware.kinematics`` uses on the real robot,
- a ``<mujoco>`` compiler block (keep the named static links, absolute paths) and no ``<mimic>`` (both
  fingers are commanded to the same target instead, which every engine can do).

``robot.joints`` lists the 7 arm joints first and then the two finger joints, so the generic PD actuator
model drives the gripper as well; tasks expose only the arm joints in observations and map one opening
width to both finger targets.

No armature: PyBullet cannot model reflected rotor inertia, and the engines must simulate the same arm.
PD gains were chosen to hold a pose under gravity (static sag at the default pose: 0.015 rad on joint 2,
0.013 on joint 4, 0.006 on joint 6) while staying stable for PyBullet's explicit per-substep torques at
500 Hz; with them the two engines track the same 1 s joint trajectory within 1 mrad
(``tests/test_sim_arm.py``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from tether.errors import TetherError
from tether.sim.randomization import DRTerm
from tether.sim.robots.base import PDActuators, RobotSpec

ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")
EE_BODY = "panda_grasptarget"
BASE_BODY = "panda_link0"
TCP_OFFSET = 0.1034  # m from the flange (panda_link8) to the Franka Hand's TCP

# Franka datasheet limits (rad, rad/s, N m) for joints 1..7.
Q_LOW = np.array([-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973])
Q_HIGH = np.array([2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973])
VELOCITY_LIMIT = np.array([2.1750, 2.1750, 2.1750, 2.1750, 2.6100, 2.6100, 2.6100])
TORQUE_LIMIT = np.array([87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0])
FINGER_MAX = 0.04  # m per finger (0.08 m opening)
FINGER_FORCE = 20.0  # N per finger (URDF effort; the hand's continuous grasp force is 70 N for both)

# Arm start pose above the table: TCP at (0.53, 0, 0.22) m in the base frame, hand pointing straight down.
DEFAULT_ARM_POS = np.array([0.0, 0.1, 0.0, -2.25, 0.0, 2.35, np.pi / 4])

# Gains: chosen by a search that maximised the smallest modal damping ratio of the coupled 7-joint PD system
# around the default pose (0.39) subject to (a) static gravity sag <= 0.02 rad there and (b) PyBullet's explicit
# per-substep torques staying stable: dt * max eig(M^-1 (Kd + D)) < 1.5 over random poses (2 is the limit).
# The binding case is joints 1 and 3 counter-rotating when q2 ~ 0 (their axes align and only link 2's small
# inertia moves), hence joint 3's small damping. The real arm's reflected rotor inertia (armature, which
# PyBullet cannot model) would allow stiffer, better-damped gains.
ARM_KP = np.array([150.0, 2000.0, 500.0, 1500.0, 150.0, 400.0, 100.0])
ARM_KD = np.array([25.0, 80.0, 1.5, 30.0, 2.0, 2.0, 1.5])
FINGER_KP, FINGER_KD = 200.0, 2.0
NOMINAL_DAMPING = 0.5  # N m s/rad: modest viscous joint friction, a nominal for DR's joint_damping to scale

# Menagerie franka_emika_panda inertials: mass, com xyz, (ixx iyy izz ixy ixz iyz).
_INERTIALS = {
    "panda_link0": (0.629769, (-0.041018, -0.00014, 0.049974),
                     (0.00315, 0.00388, 0.004285, 8.2904e-7, 0.00015, 8.2299e-6)),
    "panda_link1": (4.970684, (0.003875, 0.002081, -0.04762),
                     (0.70337, 0.70661, 0.009117, -0.000139, 0.006772, 0.019169)),
    "panda_link2": (0.646926, (-0.003141, -0.02872, 0.003495),
                     (0.007962, 0.02811, 0.025995, -0.003925, 0.010254, 0.000704)),
    "panda_link3": (3.228604, (0.027518, 0.039252, -0.066502),
                     (0.037242, 0.036155, 0.01083, -0.004761, -0.011396, -0.012805)),
    "panda_link4": (3.587895, (-0.05317, 0.104419, 0.027454),
                     (0.025853, 0.019552, 0.028323, 0.007796, -0.001332, 0.008641)),
    "panda_link5": (1.225946, (-0.011953, 0.041065, -0.038437),
                     (0.035549, 0.029474, 0.008627, -0.002117, -0.004037, 0.000229)),
    "panda_link6": (1.666555, (0.060149, -0.014117, -0.010517),
                     (0.001964, 0.004354, 0.005433, 0.000109, -0.001158, 0.000341)),
    "panda_link7": (0.735522, (0.010517, -0.004252, 0.061597),
                     (0.012516, 0.010027, 0.004815, -0.000428, -0.001196, -0.000741)),
    "panda_hand": (0.73, (-0.01, 0.0, 0.03), (0.001, 0.0025, 0.0017, 0.0, 0.0, 0.0)),
    "panda_leftfinger": (0.015, (0.0, 0.0, 0.0), (2.375e-6, 2.375e-6, 7.5e-7, 0.0, 0.0, 0.0)),
    "panda_rightfinger": (0.015, (0.0, 0.0, 0.0), (2.375e-6, 2.375e-6, 7.5e-7, 0.0, 0.0, 0.0)),
}


def _source_urdf() -> Path:
    try:
        import pybullet_data
    except ImportError:  # pragma: no cover - pybullet is a hard dependency
        raise TetherError("the Panda model needs pybullet_data (pip install pybullet)") from None
    path = Path(pybullet_data.getDataPath()) / "franka_panda" / "panda.urdf"
    if not path.exists():
        raise TetherError(f"Panda URDF not found at {path}; expected pybullet_data to ship franka_panda/panda.urdf")
    return path


def _fmt(values) -> str:
    return " ".join(repr(float(v)) for v in values)


def resolved_urdf_text(source: Path | None = None) -> str:
    """The pybullet_data Panda URDF with absolute mesh paths, identified inertias, datasheet limits and link
    friction 1."""
    source = source or _source_urdf()
    root = ET.fromstring(source.read_text())
    mesh_dir = source.parent
    for link in root.iter("link"):
        for mesh in link.iter("mesh"):
            rel = mesh.get("filename", "").replace("package://", "").replace("meshes/visual/", "meshes/collision/")
            mesh.set("filename", str((mesh_dir / rel).resolve()))
        name = link.get("name")
        if link.find("collision") is not None and link.find("contact") is None:
            # Friction 1 is neutral under PyBullet's product of two surfaces' frictions (links default to 0.5
            # there); MuJoCo's links have 1 too, and a box's own friction governs its contacts on both engines.
            ET.SubElement(ET.SubElement(link, "contact"), "lateral_friction", value="1.0")
        if name in _INERTIALS:
            mass, com, inertia = _INERTIALS[name]
            for old in link.findall("inertial"):
                link.remove(old)
            inertial = ET.SubElement(link, "inertial")
            ET.SubElement(inertial, "origin", xyz=_fmt(com), rpy="0 0 0")
            ET.SubElement(inertial, "mass", value=repr(mass))
            ixx, iyy, izz, ixy, ixz, iyz = inertia
            ET.SubElement(inertial, "inertia", ixx=repr(ixx), iyy=repr(iyy), izz=repr(izz),
                          ixy=repr(ixy), ixz=repr(ixz), iyz=repr(iyz))
        elif link.find("inertial") is not None and float(link.find("inertial/mass").get("value")) == 0.0:
            # Frames only (link8, grasptarget): massless, without the placeholder inertia. The inertial element
            # must stay: PyBullet gives a link without one a mass of 1 kg.
            link.find("inertial/inertia").attrib.update(ixx="0", iyy="0", izz="0", ixy="0", ixz="0", iyz="0")
    for joint in root.iter("joint"):
        name = joint.get("name")
        for tag in ("mimic", "safety_controller", "dynamics"):
            for el in joint.findall(tag):
                joint.remove(el)
        if name in ARM_JOINTS:
            i = ARM_JOINTS.index(name)
            lim = joint.find("limit")
            lim.set("lower", repr(float(Q_LOW[i])))
            lim.set("upper", repr(float(Q_HIGH[i])))
            lim.set("velocity", repr(float(VELOCITY_LIMIT[i])))
            lim.set("effort", repr(float(TORQUE_LIMIT[i])))
            ET.SubElement(joint, "dynamics", damping=repr(NOMINAL_DAMPING), friction="0.0")
        elif name in FINGER_JOINTS:
            ET.SubElement(joint, "dynamics", damping="0.1", friction="0.0")
        elif name == "panda_grasptarget_hand":
            # grasptarget hangs off the hand, which coincides with the flange (link8): same offset.
            joint.find("origin").set("xyz", f"0 0 {TCP_OFFSET}")
    mj = ET.Element("mujoco")
    ET.SubElement(mj, "compiler", fusestatic="false", discardvisual="true", strippath="false",
                  balanceinertia="false", angle="radian")
    root.insert(0, mj)
    return '<?xml version="1.0"?>\n' + ET.tostring(root, encoding="unicode")


def panda_urdf() -> Path:
    """Write the resolved URDF once per content into a cache dir (atomic, so parallel workers never race)."""
    text = resolved_urdf_text()
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("TETHER_CACHE", Path(tempfile.gettempdir()) / "tether-cache")) / "panda"
    path = cache / f"panda-{digest}.urdf"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache, suffix=".urdf")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    return path


def _mujoco_edit(spec) -> None:
    """No self-collision (PyBullet has none without URDF_USE_SELF_COLLISION); the arm still hits the table/cube.

    Robot geoms get contype 2 / conaffinity 1: two robot geoms never match (2 & 1 == 0), a robot geom and the
    ground or a box (contype = conaffinity = 1) do.
    """
    for body in spec.bodies:
        if body.name.startswith("panda_"):
            for geom in body.geoms:
                geom.contype, geom.conaffinity = 2, 1


def dr_presets() -> dict[str, list[DRTerm]]:
    return {
        "none": [],
        "default": [
            DRTerm("body_mass", "uniform", "scale", (0.9, 1.1)),
            DRTerm("friction", "uniform", "scale", (0.8, 1.2)),
            DRTerm("joint_damping", "uniform", "scale", (0.7, 1.5)),
            DRTerm("joint_frictionloss", "uniform", "add", (0.0, 0.1)),
            DRTerm("actuator_gain", "uniform", "scale", (0.9, 1.1)),
            DRTerm("action_latency", "uniform", "abs", (0, 1)),
            DRTerm("obs_noise", "uniform", "abs", (0.0, 0.002)),
        ],
        "wide": [
            DRTerm("body_mass", "uniform", "scale", (0.7, 1.3)),
            DRTerm("friction", "uniform", "scale", (0.5, 1.5)),
            DRTerm("joint_damping", "log_uniform", "scale", (0.5, 2.0)),
            DRTerm("joint_frictionloss", "uniform", "add", (0.0, 0.3)),
            DRTerm("actuator_gain", "uniform", "scale", (0.8, 1.2)),
            DRTerm("actuator_strength", "uniform", "scale", (0.8, 1.0)),
            DRTerm("action_latency", "uniform", "abs", (0, 2)),
            DRTerm("obs_noise", "uniform", "abs", (0.0, 0.005)),
            DRTerm("obs_bias", "gaussian", "abs", (0.0, 0.002)),
            DRTerm("gravity", "uniform", "add", (-0.1, 0.1)),
        ],
    }


def panda() -> RobotSpec:
    n_f = len(FINGER_JOINTS)
    return RobotSpec(
        name="arm",
        model_path=panda_urdf(),
        floating_base=False,
        joints=ARM_JOINTS + FINGER_JOINTS,
        joint_lower=np.concatenate([Q_LOW, np.zeros(n_f)]),
        joint_upper=np.concatenate([Q_HIGH, np.full(n_f, FINGER_MAX)]),
        default_joint_pos=np.concatenate([DEFAULT_ARM_POS, np.zeros(n_f)]),
        base_pos=np.zeros(3),
        base_quat=np.array([1.0, 0.0, 0.0, 0.0]),
        actuators=PDActuators(
            kp=np.concatenate([ARM_KP, np.full(n_f, FINGER_KP)]),
            kd=np.concatenate([ARM_KD, np.full(n_f, FINGER_KD)]),
            torque_limit=np.concatenate([TORQUE_LIMIT, np.full(n_f, FINGER_FORCE)]),
        ),
        physics_dt=0.002,
        control_rate_hz=20.0,
        end_effector=EE_BODY,
        mujoco_edit=_mujoco_edit,
        dr_presets=dr_presets(),
    )
