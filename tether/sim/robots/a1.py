"""Unitree A1 quadruped: 12 PD-driven joints on a floating base, foot contact sensing, IMU-like base sensors.

The model is pybullet_data's ``a1/a1.urdf`` (Unitree's published kinematics and inertias, 12.46 kg in
total), rewritten once by :func:`derive_urdf` into ``assets/a1.urdf`` so both engines read the same file
and see the same world:

- visual meshes are replaced by the collision primitives, because MuJoCo's URDF import discards visuals and
  PyBullet would otherwise render something MuJoCo never simulates (and the package would have to ship 4 MB
  of meshes);
- the toe links get ``<contact><lateral_friction value="1"/></contact>``: PyBullet multiplies the two
  surfaces' frictions and defaults links to 0.5, MuJoCo takes the ground's (``mujoco_backend.GROUND_PRIORITY``),
  so with toe friction 1 the ground's friction *is* the foot–ground friction on both engines and the
  ``friction`` DR term on ``ground`` means the same thing everywhere (Tether's PyBullet backend also holds
  every link at 1, whatever a DR or served robot sets for it);
- the 1 mm IMU collision box is dropped (a sensor mount, not a surface).

Joint names are the URDF's (``FR_hip_joint``, ``FR_upper_joint``, ``FR_lower_joint`` × FR/FL/RR/RL: hip
ab/adduction, thigh, calf). Feet are the ``*_toe`` links (2 cm spheres); static-body fusing is switched off
in MuJoCo so the toes stay separate bodies with the same names as PyBullet's links.

Actuators follow legged_gym's A1 setup (kp 20 N m/rad, kd 0.5 N m s/rad, default stance hip ±0.1, thigh 0.8
front / 1.0 rear, calf -1.5 rad) with the A1 motor's published 33.5 N m peak torque on every joint. The
joint-position action is absolute: [-1, 1] maps to a band around the default stance (hip ±0.7, thigh ±1.0,
calf ±1.0 rad) clipped to the URDF joint limits, symmetric but for the calf, whose straight-knee limit leaves it
0.58 rad on one side and 0.68 on the other (:data:`CALF_FLEX_EXTRA`), so a zero action holds the stance but
for the calves, 0.05 rad further flexed (the neutral action holds it exactly).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from tether.sim.randomization import DRTerm
from tether.sim.robots.base import PDActuators, RobotSpec

ASSETS = Path(__file__).parent / "assets"
URDF = ASSETS / "a1.urdf"

LEGS = ("FR", "FL", "RR", "RL")
PARTS = ("hip", "upper", "lower")  # ab/adduction, thigh, calf
JOINTS = tuple(f"{leg}_{part}_joint" for leg in LEGS for part in PARTS)
FEET = tuple(f"{leg}_toe" for leg in LEGS)
BASE = "trunk"

# URDF joint limits (rad), per part.
LIMITS = {"hip": (-0.802851455917, 0.802851455917), "upper": (-1.0471975512, 4.18879020479),
          "lower": (-2.69653369433, -0.916297857297)}
JOINT_LOWER = np.array([LIMITS[p][0] for _ in LEGS for p in PARTS])
JOINT_UPPER = np.array([LIMITS[p][1] for _ in LEGS for p in PARTS])

# legged_gym's A1 stance: left legs' hips out (+), right legs' out (-); rear thighs tucked further.
DEFAULT_JOINT_POS = np.array([
    -0.1, 0.8, -1.5,  # FR
    0.1, 0.8, -1.5,  # FL
    -0.1, 1.0, -1.5,  # RR
    0.1, 1.0, -1.5,  # RL
])
KP = 20.0  # N m / rad
KD = 0.5  # N m s / rad
TORQUE_LIMIT = 33.5  # N m, A1 motor peak torque
ACTION_HALF_RANGE = {"hip": 0.7, "upper": 1.0, "lower": 1.0}  # rad around the stance, before limit clipping
# How much further (rad) the calf's band reaches on its flexed side, where the straight-knee limit capped it at
# 0.58 rad from the stance: at kp 20 that is 11.7 N m of support, and the scripted trot's front calves asked for
# more in 12-14 % of its steps on the nominal A1. Over 128 episodes (seeds 500-1100, the trot told the robot,
# 2026-12-06; the episodes this value was chosen on), 0.1 rad more tracked 107 against 90 on an A1 at mass x1.2 and
# one step of delay, 94 against 83 at gain x0.8, 118 against 117 nominal, 101 against 101 light and stiff (mass
# x0.9, gain x1.2); 0.2-0.4 lost 3-13 nominal.
CALF_FLEX_EXTRA = 0.1

# Trunk height (link origin above flat ground, m) the stance settles to under PD sag; measured on MuJoCo
# and PyBullet (0.267 and 0.268 m) and used as the stand task's target.
STAND_HEIGHT = 0.267
SPAWN_HEIGHT = 0.305  # front toes 3 mm, rear toes 11 mm above flat ground at the default stance


def action_bounds() -> tuple[np.ndarray, np.ndarray]:
    """Physical joint-target limits of the action: a symmetric band around the stance within the URDF limits,
    whose calf side reaches :data:`CALF_FLEX_EXTRA` further toward flexion (the support a heavier A1 needs)."""
    half = np.array([ACTION_HALF_RANGE[p] for _ in LEGS for p in PARTS])
    half = np.minimum(half, np.minimum(DEFAULT_JOINT_POS - JOINT_LOWER, JOINT_UPPER - DEFAULT_JOINT_POS))
    extra = np.array([CALF_FLEX_EXTRA if p == "lower" else 0.0 for _ in LEGS for p in PARTS])
    return np.maximum(DEFAULT_JOINT_POS - half - extra, JOINT_LOWER), DEFAULT_JOINT_POS + half


def derive_urdf(source: Path, dest: Path | None = None) -> str:
    """Rewrite pybullet_data's A1 URDF into Tether's (see the module docstring for what changes and why)."""
    tree = ET.parse(source)
    root = tree.getroot()
    for link in root.findall("link"):
        name = link.get("name", "")
        collision = link.find("collision")
        for visual in link.findall("visual"):
            if collision is None:
                link.remove(visual)
                continue
            for child in list(visual):
                if child.tag in ("origin", "geometry"):
                    visual.remove(child)
            for i, child in enumerate(c for c in collision if c.tag in ("origin", "geometry")):
                visual.insert(i, ET.fromstring(ET.tostring(child)))
        if name == "imu_link" and collision is not None:
            link.remove(collision)
        if name.endswith("_toe"):
            contact = ET.SubElement(link, "contact")
            ET.SubElement(contact, "lateral_friction", value="1.0")
    ET.indent(tree, space="  ")
    text = ("<?xml version=\"1.0\" ?>\n<!-- Unitree A1, derived from pybullet_data/a1/a1.urdf by "
            "tether.sim.robots.a1.derive_urdf: visuals = collision primitives, toe friction 1, "
            "no IMU collision box. -->\n" + ET.tostring(root, encoding="unicode") + "\n")
    if dest is not None:
        dest.write_text(text)
    return text


def mujoco_edit(spec) -> None:
    """MuJoCo-side settings the URDF cannot carry: keep toes as bodies, no self-collision, no-slip iterations.

    - ``fusestatic`` off, so ``FR_toe`` etc. exist as bodies (foot contact sensing by the same names as PyBullet).
    - Robot geoms get contype 1 / conaffinity 0: they touch the ground and objects but never each other
      (legged_gym and PyBullet's default also leave A1 self-collision off).
    - 3 no-slip iterations: MuJoCo's soft friction otherwise lets loaded feet creep outward (4 cm in 10 s
      of standing, the trunk sinking with them); with them the stance matches PyBullet's rigid friction
      (trunk 0.267 vs 0.268 m, feet still) at no measurable cost per step.
    """
    spec.option.noslip_iterations = 3
    spec.compiler.fusestatic = False
    robot_links = _link_names()
    for body in spec.bodies:
        if body.name in robot_links:
            for g in body.geoms:
                g.contype, g.conaffinity = 1, 0


_LINKS: frozenset[str] | None = None


def _link_names() -> frozenset[str]:
    global _LINKS
    if _LINKS is None:
        _LINKS = frozenset(link.get("name", "") for link in ET.parse(URDF).getroot().findall("link"))
    return _LINKS


def dr_presets() -> dict[str, list[DRTerm]]:
    """legged_gym-style randomisation. Terrain first: rebuilding a PyBullet heightfield resets its friction.

    Only targets both engines implement (no body_com or joint_armature, which PyBullet cannot change).
    ``terrain_roughness`` scales the task's nominal roughness, so flat ground stays flat.
    """
    return {
        "none": [],
        "default": [
            DRTerm("terrain_roughness", "uniform", "scale", (0.8, 1.2)),
            DRTerm("body_mass", "uniform", "scale", (0.9, 1.1)),
            DRTerm("body_mass", "uniform", "add", (-0.5, 1.0), select=(BASE,)),
            DRTerm("friction", "uniform", "abs", (0.5, 1.25), select=("ground",)),
            DRTerm("actuator_gain", "uniform", "scale", (0.9, 1.1)),
            DRTerm("actuator_strength", "uniform", "scale", (0.9, 1.1)),
            DRTerm("action_latency", "uniform", "abs", (0, 1)),
            DRTerm("obs_noise", "uniform", "abs", (0.0, 0.01)),
            DRTerm("push", "uniform", "abs", (0.0, 30.0), when="interval", interval_s=4.0),
        ],
        "wide": [
            DRTerm("terrain_roughness", "uniform", "scale", (0.5, 1.5)),
            DRTerm("body_mass", "uniform", "scale", (0.8, 1.2)),
            DRTerm("body_mass", "uniform", "add", (-1.0, 2.0), select=(BASE,)),
            DRTerm("friction", "uniform", "abs", (0.3, 1.5), select=("ground",)),
            DRTerm("actuator_gain", "uniform", "scale", (0.8, 1.2)),
            DRTerm("actuator_strength", "uniform", "scale", (0.8, 1.1)),
            DRTerm("joint_damping", "uniform", "add", (0.0, 0.05)),
            DRTerm("joint_frictionloss", "uniform", "add", (0.0, 0.2)),
            DRTerm("action_latency", "uniform", "abs", (0, 2)),
            DRTerm("obs_noise", "uniform", "abs", (0.0, 0.03)),
            DRTerm("obs_bias", "gaussian", "abs", (0.0, 0.01)),
            DRTerm("push", "uniform", "abs", (0.0, 60.0), when="interval", interval_s=3.0),
        ],
    }


def a1() -> RobotSpec:
    n = len(JOINTS)
    return RobotSpec(
        name="legged",
        model_path=URDF,
        floating_base=True,
        joints=JOINTS,
        joint_lower=JOINT_LOWER.copy(),
        joint_upper=JOINT_UPPER.copy(),
        default_joint_pos=DEFAULT_JOINT_POS.copy(),
        base_pos=np.array([0.0, 0.0, SPAWN_HEIGHT]),
        base_quat=np.array([1.0, 0.0, 0.0, 0.0]),
        actuators=PDActuators(kp=np.full(n, KP), kd=np.full(n, KD), torque_limit=np.full(n, TORQUE_LIMIT)),
        physics_dt=0.002,
        control_rate_hz=50.0,
        feet=FEET,
        mujoco_edit=mujoco_edit,
        dr_presets=dr_presets(),
    )
