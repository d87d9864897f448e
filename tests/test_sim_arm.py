"""Franka Panda robot and its reach/push tasks on MuJoCo and PyBullet: model, PD, IK, experts, DR, engine agreement."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import tether.sim  # noqa: F401  (registers the ids)
from tether.errors import TetherError
from tether.sim.backends import make_backend
from tether.sim.core import SimCore
from tether.sim.env import TetherEnv
from tether.sim.ik import DifferentialIK, SerialChain
from tether.sim.randomization import BACKEND_TARGETS, DRTerm, terms_to_json
from tether.sim.robots import panda as P
from tether.sim.robots.base import Scene, SceneObject

ENGINES = ("mujoco", "pybullet")
HOLD_TOL = 0.03  # rad: PD + gravity static sag at the default pose is <= 0.016 rad per joint
AGREE_TOL = 0.01  # rad: MuJoCo vs PyBullet joint angles over a 1 s open-loop trajectory (measured ~1e-3)


@pytest.fixture(scope="module")
def robot():
    return P.panda()


@pytest.fixture(scope="module")
def chain(robot):
    return SerialChain(robot.model_path, P.BASE_BODY, P.EE_BODY)


def test_resolved_urdf_has_real_meshes_limits_and_inertias(robot):
    root = ET.fromstring(robot.model_path.read_text())
    meshes = [m.get("filename") for m in root.iter("mesh")]
    assert meshes and all("package://" not in m for m in meshes)
    from pathlib import Path

    assert all(Path(m).is_file() for m in meshes)
    limits = {j.get("name"): j.find("limit") for j in root.iter("joint") if j.get("name") in P.ARM_JOINTS}
    assert float(limits["panda_joint4"].get("upper")) == pytest.approx(-0.0698)
    assert float(limits["panda_joint6"].get("lower")) == pytest.approx(-0.0175)
    assert [float(limits[n].get("effort")) for n in P.ARM_JOINTS] == [87.0] * 4 + [12.0] * 3
    # the pybullet_data placeholder inertia (0.1 kg m^2 on every axis) must be gone
    diagonals = [tuple(float(i.get(k)) for k in ("ixx", "iyy", "izz")) for i in root.iter("inertia")]
    assert (0.1, 0.1, 0.1) not in diagonals
    masses = {l.get("name"): float(l.find("inertial/mass").get("value")) for l in root.iter("link")}
    assert masses["panda_link7"] == pytest.approx(0.735522) and masses["panda_leftfinger"] == pytest.approx(0.015)
    assert robot.joints[:7] == P.ARM_JOINTS and robot.substeps == 25


@pytest.mark.parametrize("engine", ENGINES)
def test_urdf_chain_forward_kinematics_matches_engine(engine, robot, chain):
    sim = make_backend(engine, robot, Scene())
    rng = np.random.default_rng(3)
    for _ in range(5):
        q = rng.uniform(robot.joint_lower, robot.joint_upper)
        sim.reset_state(q)
        np.testing.assert_allclose(chain.position(q[:7]), sim.body_pose(P.EE_BODY)[0], atol=1e-6)
    sim.close()


def test_position_jacobian_matches_mujoco_and_real_robot_fk(robot, chain):
    sim = make_backend("mujoco", robot, Scene())
    m, d = sim.model, sim.data
    q = robot.default_joint_pos + np.r_[np.random.default_rng(0).uniform(-0.5, 0.5, 7), 0, 0]
    sim.reset_state(q)
    jacp = np.zeros((3, m.nv))
    mujoco.mj_jacBody(m, d, jacp, None, mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, P.EE_BODY))
    _, J = chain.position_jacobian(q[:7])
    np.testing.assert_allclose(J, jacp[:, :7], atol=1e-9)
    # the same TCP as Franka's published DH table gives (flange 0.926 m above the base at q = 0, TCP 0.1034 m
    # further along the flange's z axis, which points down there)
    np.testing.assert_allclose(chain.position(np.zeros(7)), [0.088, 0.0, 0.926 - 0.1034], atol=1e-6)


def test_differential_ik_converges_and_respects_limits(chain):
    ik = DifferentialIK(chain, P.Q_LOW, P.Q_HIGH, rest=P.DEFAULT_ARM_POS, iterations=1)
    q = P.DEFAULT_ARM_POS.copy()
    target = chain.position(q) + np.array([0.1, -0.15, 0.1])
    for _ in range(40):
        q = ik.solve(q, target)
    assert np.linalg.norm(chain.position(q) - target) < 1e-3
    assert np.all(q >= P.Q_LOW) and np.all(q <= P.Q_HIGH)
    unreachable = np.array([2.0, 0.0, 0.5])
    for _ in range(40):
        q = ik.solve(q, unreachable)
    assert np.all(np.isfinite(q)) and np.all(q >= P.Q_LOW) and np.all(q <= P.Q_HIGH)


def _hold(engine: str, robot, seconds: float = 2.0, settled: bool = True) -> np.ndarray:
    sim = make_backend(engine, robot, Scene())
    sim.set_command(robot.default_joint_pos)
    sim.reset_state(robot.default_joint_pos)
    sim.step(int(seconds / robot.physics_dt))
    q, qd = sim.joint_state()
    sim.close()
    if settled:
        assert np.abs(qd[:7]).max() < 1e-2  # not drifting or ringing
    return q - robot.default_joint_pos


@pytest.mark.parametrize("engine", ENGINES)
def test_pd_holds_default_pose_under_gravity(engine, robot):
    err = _hold(engine, robot)
    assert np.abs(err[:7]).max() < HOLD_TOL
    # gravity really acts: with a tenth of the stiffness the shoulder sags far beyond the tolerance
    act = robot.actuators
    soft = type(robot)(**{**robot.__dict__, "actuators": type(act)(act.kp * 0.1, act.kd * 0.3, act.torque_limit)})
    assert np.abs(_hold(engine, soft, 1.0, settled=False)[:7]).max() > 3 * HOLD_TOL


@pytest.mark.parametrize("scale", [{}, {"body_mass": 0.6, "actuator_gain": 1.4, "joint_damping": 0.3}],
                         ids=["nominal", "light and stiff"])
def test_mujoco_and_pybullet_agree_on_open_loop_trajectory(robot, scale):
    """Same joint targets for 1 s (a ramp away from the default pose, then hold) on both engines, on the nominal
    arm and on a lighter, stiffer, less damped one (a served robot's parameters): with explicit PD damping at
    the 2 ms step PyBullet's shoulder and upper-arm joints rang at ~4 rad/s there, 0.14 rad away from MuJoCo."""
    goal = robot.default_joint_pos + np.r_[0.3, -0.2, 0.3, 0.3, 0.4, -0.3, 0.5, 0.03, 0.03]
    trajs, speeds = {}, {}
    for engine in ENGINES:
        sim = make_backend(engine, robot, Scene())
        for target, factor in scale.items():
            sim.set_param(target, sim.get_param(target) * factor)
        sim.set_command(robot.default_joint_pos)
        sim.reset_state(robot.default_joint_pos)
        traj = []
        for k in range(40):
            a = min(1.0, (k + 1) / 10)
            sim.set_command(robot.default_joint_pos + a * (goal - robot.default_joint_pos))
            sim.step(robot.substeps)
            traj.append(np.r_[sim.joint_state()[0], sim.body_pose(P.EE_BODY)[0]])
        trajs[engine] = np.array(traj)
        speeds[engine] = np.abs(sim.joint_state()[1][:7]).max()
        sim.close()
    diff = np.abs(trajs["mujoco"] - trajs["pybullet"])
    assert diff[:, :7].max() < AGREE_TOL
    assert diff[:, 9:].max() < 0.005  # TCP within 5 mm
    # and the trajectory really moved (so agreement is not trivially at rest) ...
    assert np.abs(trajs["mujoco"][-1, :7] - robot.default_joint_pos[:7]).max() > 0.25
    # ... then came to rest on both engines
    assert max(speeds.values()) < 1e-2, speeds


def _slide(engine: str, robot, scale: float) -> float:
    """Stopping distance (m) of a 5 cm box (friction 0.6) sent sliding along the ground at 0.5 m/s, with every
    friction in the scene scaled by ``scale`` (as a DR term or a served robot's ``scale`` does)."""
    cube = SceneObject("cube", "box", (0.025,) * 3, mass=0.2, pos=(0.5, 0.0, 0.025), friction=0.6)
    sim = make_backend(engine, robot, Scene(objects=(cube,)))
    sim.set_param("friction", sim.get_param("friction") * scale)
    sim.reset_state(robot.default_joint_pos)
    sim.set_command(robot.default_joint_pos)
    if engine == "mujoco":
        body = mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_BODY, "cube")
        sim.data.qvel[sim.model.jnt_dofadr[sim.model.body_jntadr[body]]] = 0.5
    else:
        sim.p.resetBaseVelocity(sim._objects["cube"], [0.5, 0.0, 0.0], [0.0, 0.0, 0.0])
    x0 = sim.body_pose("cube")[0][0]
    sim.step(500)  # 1 s
    x1 = sim.body_pose("cube")[0][0]
    sim.close()
    return float(x1 - x0)


@pytest.mark.parametrize("scale", [1.0, 0.3, 1.5])
def test_a_box_slides_as_far_on_both_engines(robot, scale):
    """Friction means the same on both engines: a box's own friction is its coefficient against the ground,
    and scaling every friction by s scales that contact by s. Before, MuJoCo took the ground's 1.0 (the larger)
    and PyBullet the product, and x0.3 gave mu 0.30 on MuJoCo but 0.054 on PyBullet (a served arm's cube far
    more slippery than anything trained for). d = v^2 / (2 mu g)."""
    mu = {engine: 0.5**2 / (2 * 9.81 * max(_slide(engine, robot, scale), 1e-6)) for engine in ENGINES}
    for engine, value in mu.items():
        assert value == pytest.approx(0.6 * scale, rel=0.12), mu


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("eid", ["tether/ArmReach-v0", "tether/ArmPush-v0"])
def test_check_env(eid, engine):
    env = gym.make(eid, backend=engine)
    check_env(env.unwrapped, skip_render_check=True)
    c = env.unwrapped.contract
    assert c.control_mode == "ee_delta_pose" and c.rate_hz == 20.0
    assert c.field("joint_pos").components == P.ARM_JOINTS
    env.close()


@pytest.mark.parametrize("engine,task,episodes,need", [
    ("mujoco", "reach", 5, 0.9), ("pybullet", "reach", 3, 0.9),
    ("mujoco", "push", 5, 0.7), ("pybullet", "push", 3, 0.66),
])
def test_scripted_expert_succeeds(engine, task, episodes, need):
    env = TetherEnv("arm", task, backend=engine)
    wins = [_expert_episode(env, seed)[1]["success"] for seed in range(episodes)]
    env.close()
    assert np.mean(wins) >= need, wins


def _expert_episode(env: TetherEnv, seed: int) -> tuple[dict, dict]:
    """One episode of the scripted expert: (the reset's info, the last step's info)."""
    _, first = env.reset(seed=seed)
    done = False
    while not done:
        _, _, term, trunc, info = env.step(env.expert_action())
        done = term or trunc
    return first, info


def test_push_expert_holds_up_under_the_drs_latency(tmp_path):
    """Two control steps of action latency (the wide DR's most) on top of the PD's lag: an expert that moved half
    its remaining error per step rang and pushed 32 % of 40 episodes; the demonstrations an imitation learner
    gets are only as good as this."""
    dr = tmp_path / "latency.json"
    dr.write_text(terms_to_json([DRTerm("action_latency", "uniform", "abs", (2, 2))]))
    env = TetherEnv("arm", "push", dr=str(dr))
    episodes = [_expert_episode(env, seed) for seed in range(8)]
    env.close()
    assert all(first["latency_steps"] == 2 for first, _ in episodes)
    wins = [last["success"] for _, last in episodes]
    assert np.mean(wins) >= 0.75, wins


def _batched_expert_success(task: str, mode: str | None, terms, queue: bool, n: int = 20, seed: int = 300) -> float:
    """Share of ``n`` episodes (one batch) the scripted expert succeeds in; ``queue=False`` hides the latency
    queue from it (what it acted on before it was given one)."""
    core = SimCore("arm", task, n=n, dr=terms, control_mode=mode)
    core.reset(seeds=seed)
    ended, wins = np.zeros(n, bool), np.zeros(n, bool)
    while not ended.all():
        if queue:
            action = core.expert_action()
        else:
            action = np.clip(core.contract.to_normalised(core.task.expert(core.sim, None)), -1.0, 1.0)
        step = core.step(action)
        new = (step.terminated | step.truncated) & ~ended
        wins[new], ended[new] = step.success[new], True
    core.close()
    return float(wins.mean())


@pytest.mark.parametrize("task,mode", [("push", None), ("push", "joint_position"), ("reach", None)])
def test_experts_predict_through_the_latency_queue(task, mode):
    """A weak arm (actuator gain x0.6) with 2 steps of action latency, as identification finds the served weak-joints
    arm: on the measured TCP the experts ring (here, MuJoCo, 20 episodes: push 60 %, joint-mode push 45 %, reach
    40 %); on the TCP the queued commands lead to (a Smith predictor) 100 %, 100 %, 95 %."""
    terms = [DRTerm("actuator_gain", "uniform", "scale", (0.6, 0.6), per_element=False),
             DRTerm("action_latency", "uniform", "abs", (2, 2))]
    predicted = _batched_expert_success(task, mode, terms, queue=True)
    measured = _batched_expert_success(task, mode, terms, queue=False)
    assert predicted >= 0.85 and predicted >= measured + 0.15, (predicted, measured)


def test_expert_in_joint_position_mode_reaches():
    env = TetherEnv("arm", "reach", control_mode="joint_position")
    env.reset(seed=1)
    for _ in range(env.task.max_steps):
        _, _, _, _, info = env.step(env.expert_action())
    assert info["success"] and info["distance"] < 0.03


def test_the_joint_speed_limit_is_per_second_however_often_the_arm_ticks():
    """A served arm ticks at its controller manager's 100 Hz, five times a 20 Hz control step, applying the held
    target each time: its commanded joints must move as far in a control period as one training step does,
    and never faster than the datasheet speed limit."""
    env = TetherEnv("arm", "reach", control_mode="joint_position")
    task, sim, n = env.task, env.core.sim, env.core.robot_spec.substeps
    far = np.asarray(P.Q_HIGH, dtype=np.float64)[None, :]
    moved = {}
    for ticks in (1, 5, 25):
        env.reset(seed=0)
        q0 = task.q_cmd.copy()
        for _ in range(ticks):
            task.actuate(sim, far, n // ticks)
        moved[ticks] = task.q_cmd - q0
    limit = np.asarray(P.VELOCITY_LIMIT) * n * env.core.robot_spec.physics_dt
    assert np.max(np.abs(moved[1]) / limit) == pytest.approx(1.0)  # the binding joint moves at its limit
    np.testing.assert_allclose(moved[5], moved[1], atol=1e-12)
    np.testing.assert_allclose(moved[25], moved[1], atol=1e-12)


def test_zero_action_does_not_reach_and_ee_step_moves_tcp():
    env = TetherEnv("arm", "reach")
    env.reset(seed=0)
    for _ in range(env.task.max_steps):
        _, _, _, _, info = env.step(np.zeros(3))
    assert not info["success"]  # the target is never at the start pose
    env.reset(seed=0)
    ee0 = env.task.ee_pos(env.core.sim)[0]
    for _ in range(4):
        env.step(np.array([1.0, 0.0, 0.0]))  # +5 cm in x per step
    for _ in range(10):
        env.step(np.zeros(3))
    moved = env.task.ee_pos(env.core.sim)[0] - ee0
    # at most 4 x 5 cm (less where the datasheet joint speed limits cap a step); z may sag up to ~2 cm more
    # as the arm stretches out under gravity with PD (no gravity compensation)
    assert 0.1 < moved[0] < 0.21 and abs(moved[1]) < 0.01 and abs(moved[2]) < 0.025


@pytest.mark.parametrize("engine", ENGINES)
def test_gripper_action_opens_fingers(engine):
    env = TetherEnv("arm", "reach", backend=engine, gripper=True)
    assert env.contract.actions[-1].name == "gripper"
    env.reset(seed=0)
    for _ in range(10):
        env.step(np.array([0.0, 0.0, 0.0, 1.0]))  # fully open: 8 cm
    q, _ = env.sim.joint_state()
    assert q[7:] == pytest.approx([0.04, 0.04], abs=3e-3)


def test_bad_control_mode_is_a_clear_error():
    with pytest.raises(TetherError, match="no control mode 'cartesian'.*ee_delta_pose, joint_position"):
        TetherEnv("arm", "reach", control_mode="cartesian")


@pytest.mark.parametrize("engine", ENGINES)
def test_every_dr_target_in_presets_changes_the_model(engine, robot):
    terms = {t.target: t for preset in ("default", "wide") for t in robot.dr_presets[preset]}
    env = TetherEnv("arm", "push", backend=engine, dr="wide")
    nominal = {t: env.sim.get_param(t).copy() for t in terms if t in BACKEND_TARGETS}
    latencies, biased = set(), False
    for seed in range(4):
        obs, info = env.reset(seed=seed)
        latencies.add(info["latency_steps"])
        clean = env.contract.flatten_obs(env.task.observe(env.core.sim))[0]
        biased |= not np.allclose(obs, clean, atol=1e-6)
        for target in nominal:
            assert not np.allclose(env.sim.get_param(target), nominal[target]), (engine, target)
    assert latencies - {0} and latencies <= {0, 1, 2}
    assert biased  # obs noise and bias reach the observation
    assert set(terms) - set(nominal) <= {"action_latency", "obs_noise", "obs_bias"}
    env.close()


def test_reach_reward_falls_with_distance_and_success_needs_the_last_step():
    env = TetherEnv("arm", "reach")
    env.reset(seed=0)
    task = env.task
    target = task.target[0]

    def reward(d: float):
        fields = {"ee_pos": target + np.array([d, 0.0, 0.0]), "target_pos": target}
        r, _, metrics = task.objective({}, np.zeros(3), fields)
        return float(r), metrics

    rewards = [reward(d)[0] for d in (0.0, 0.01, 0.03, 0.1, 0.3, 0.6)]
    assert all(a > b for a, b in zip(rewards, rewards[1:]))
    assert rewards[0] == pytest.approx(task.precision_bonus) and rewards[-1] < -0.55
    episode = [reward(d)[1]["distance"] for d in np.linspace(0.3, 0.0, task.max_steps)]
    assert task.success({"distance": np.array(episode)}, False)
    # only the final step of the episode counts
    assert not task.success({"distance": np.array(episode[:-1] + [reward(0.04)[1]["distance"]])}, False)
    assert task.success({"distance": np.array(episode[:-1] + [reward(0.02)[1]["distance"]])}, False)
