"""Simulation core: quadrotor physics on both engines, domain randomisation, env API, vector env, bad input."""

from __future__ import annotations

import json
import warnings

import gymnasium as gym
import numpy as np
import pytest

import tether.sim
from tether.cli import main as cli_main
from tether.errors import TetherError
from tether.sim.core import SimCore
from tether.sim.env import TetherEnv
from tether.sim.randomization import DRTerm, Randomizer, terms_from_json, terms_to_json
from tether.sim.robots import make_robot
from tether.sim.robots import quadrotor as cf
from tether.sim.vector import make_vec

BACKENDS = ("mujoco", "pybullet")
QUAD_IDS = ("tether/QuadrotorHover-v0", "tether/QuadrotorWaypoint-v0")


def _fly(env: TetherEnv, thrust: np.ndarray, steps: int) -> np.ndarray:
    sim = env.sim
    sim.set_command(thrust)
    sim.reset_state(np.zeros(0), base_pos=np.array([0.0, 0.0, 1.0]))
    for _ in range(steps):
        env.task.actuate(env.core.sim, np.atleast_2d(thrust), env.robot_spec.substeps)
    return sim.base_pose()[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_quadrotor_hovers_at_mg_over_4_and_falls_with_less(backend):
    env = TetherEnv("quadrotor", "hover", backend=backend, control_mode="motor_thrust")
    held = _fly(env, np.full(4, cf.MASS * 9.81 / 4), 50)  # 1 s
    assert np.allclose(held, [0, 0, 1.0], atol=1e-3)
    fell = _fly(env, np.full(4, 0.9 * cf.MASS * 9.81 / 4), 50)
    # 10 % less thrust: a = 0.981 m/s^2 down, 0.49 m in 1 s (a bit less with drag and motor lag)
    assert 0.40 < 1.0 - fell[2] < 0.50


def test_mujoco_and_pybullet_agree_on_open_loop_quadrotor_trajectory():
    trajs = {}
    for backend in BACKENDS:
        env = TetherEnv("quadrotor", "hover", backend=backend, control_mode="motor_thrust")
        sim = env.sim
        sim.set_command(np.full(4, cf.HOVER_THRUST))
        sim.reset_state(np.zeros(0), base_pos=np.array([0.0, 0.0, 1.0]))
        out = []
        for i in range(25):  # 0.5 s: a roll/pitch doublet then a climb
            u = cf.HOVER_THRUST * (np.array([1.05, 1.0, 0.97, 1.0]) if i < 10 else np.full(4, 1.02))
            env.task.actuate(env.core.sim, np.atleast_2d(u), env.robot_spec.substeps)
            pos, quat = sim.base_pose()
            out.append(np.concatenate([pos, quat]))
        trajs[backend] = np.array(out)
    # Stated tolerance: 2 mm in position and 0.005 in quaternion components over 0.5 s.
    diff = np.abs(trajs["mujoco"] - trajs["pybullet"])
    assert diff[:, :3].max() < 2e-3
    assert diff[:, 3:].max() < 5e-3
    assert np.abs(trajs["mujoco"][-1, :3] - [0, 0, 1]).max() > 0.05  # the trajectory did move


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("env_id", QUAD_IDS)
def test_check_env_passes(env_id, backend):
    from gymnasium.utils.env_checker import check_env

    env = tether.sim.make(env_id, backend=backend, dr="wide")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped, skip_render_check=True)
    c = env.unwrapped.contract
    assert env.observation_space.shape == (c.obs_size,)
    assert env.action_space.shape == (c.action_size,)
    env.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_scripted_expert_hovers(backend):
    env = tether.sim.make("tether/QuadrotorHover-v0", backend=backend)
    wins = 0
    for seed in range(3):
        env.reset(seed=seed)
        for _ in range(env.unwrapped.task.max_steps):
            _, _, term, trunc, info = env.step(env.unwrapped.expert_action())
            if term or trunc:
                break
        wins += info["success"]
    assert wins == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_waypoint_expert_flies_vehicles_outside_the_wide_dr(backend):
    """The quadrotor expert is a privileged teacher: it sizes thrust for each world's mass and rotor gain, so it
    flies the waypoints on vehicles it was never tuned for. Sized for the nominal vehicle it reached all four
    waypoints in 28 % of episodes under the wide DR, and in none with 1.6x the mass and 3x the motor lag."""
    from tether.sim.core import SimCore
    from tether.sim.randomization import DRTerm

    def fixed(target, value, operation="scale"):
        return DRTerm(target, "uniform", operation, (value, value))

    worlds = {"wide": "wide",  # heavy and slow, light and fast, weak rotors, 4 steps late: all outside the wide DR
              "heavy": [fixed("body_mass", 1.6), fixed("motor_time_constant", 3.0), fixed("action_latency", 2, "abs")],
              "light": [fixed("body_mass", 0.6), fixed("motor_time_constant", 0.4)],
              "weak": [fixed("actuator_gain", 0.7), fixed("action_latency", 4, "abs")]}
    for name, dr in worlds.items():
        core = SimCore("quadrotor", "waypoint", n=8, backend=backend, dr=dr, autoreset=False)
        core.reset(3)
        alive, won = np.ones(8, bool), np.zeros(8, bool)
        while alive.any():
            step = core.step(core.expert_action())
            won[step.done & alive] = step.success[step.done & alive]
            alive &= ~step.done
        core.close()
        assert won.mean() >= 0.85, (name, won)


def test_zero_action_quadrotor_crashes_and_fails():
    env = tether.sim.make("tether/QuadrotorHover-v0")
    env.reset(seed=0)
    zero_thrust = -np.ones(4, dtype=np.float32)  # normalised -1 = no thrust
    for _ in range(250):
        _, _, term, trunc, info = env.step(zero_thrust)
        if term or trunc:
            break
    assert term and not info["success"]


def test_rate_controller_tracks_a_body_rate_step():
    env = TetherEnv("quadrotor", "hover", backend="mujoco")
    sim = env.sim
    sim.set_command(np.full(4, cf.HOVER_THRUST))
    sim.reset_state(np.zeros(0), base_pos=np.array([0.0, 0.0, 1.0]))
    cmd = np.array([4 * cf.HOVER_THRUST, 2.0, 0.0, 0.0])  # 2 rad/s roll rate
    for _ in range(5):  # 0.1 s
        env.task.actuate(env.core.sim, np.atleast_2d(cmd), env.robot_spec.substeps)
    _, rates = sim.base_velocity()
    assert abs(rates[0] - 2.0) < 0.3 and abs(rates[1]) < 0.3


# ---------------------------------------------------------------------------------------------- DR
PHYSICAL_TERMS = {
    "body_mass": DRTerm("body_mass", "uniform", "scale", (1.3, 1.5)),
    "body_com": DRTerm("body_com", "uniform", "add", (0.002, 0.004)),
    "friction": DRTerm("friction", "uniform", "scale", (0.5, 0.7)),
    "actuator_gain": DRTerm("actuator_gain", "uniform", "scale", (0.7, 0.8)),
    "actuator_strength": DRTerm("actuator_strength", "uniform", "scale", (0.7, 0.8)),
    "motor_time_constant": DRTerm("motor_time_constant", "log_uniform", "scale", (1.5, 2.0)),
    "gravity": DRTerm("gravity", "uniform", "add", (0.2, 0.4)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("target", sorted(PHYSICAL_TERMS))
def test_every_dr_target_changes_the_model_reproducibly(backend, target):
    term = PHYSICAL_TERMS[target]
    probe = TetherEnv("quadrotor", "hover", backend=backend)
    if not probe.sim.param_elements(target):
        with pytest.raises(TetherError, match=target):
            TetherEnv("quadrotor", "hover", backend=backend, dr=[term])
        return
    nominal = probe.sim.get_param(target)
    values = []
    for seed in (7, 7, 8):
        env = TetherEnv("quadrotor", "hover", backend=backend, dr=[term])
        env.reset(seed=seed)
        values.append(env.sim.get_param(target))
    assert not np.allclose(values[0], nominal)
    np.testing.assert_array_equal(values[0], values[1])
    assert not np.array_equal(values[0], values[2])


def test_mass_randomisation_changes_the_dynamics():
    """Not just a number in an array: heavier quadrotor with hover thrust sinks."""
    env = TetherEnv("quadrotor", "hover", control_mode="motor_thrust",
                    dr=[DRTerm("body_mass", "uniform", "scale", (1.2, 1.2))])
    env.reset(seed=0)
    pos = _fly(env, np.full(4, cf.HOVER_THRUST), 25)
    assert pos[2] < 0.95


@pytest.mark.parametrize("latency", [1, 3])
def test_latency_term_delays_actions_by_exactly_the_sampled_steps(latency):
    delayed = TetherEnv("quadrotor", "hover", dr=[DRTerm("action_latency", "uniform", "abs", (latency, latency))])
    direct = TetherEnv("quadrotor", "hover")
    o1, info = delayed.reset(seed=3)
    o2, _ = direct.reset(seed=3)
    assert info["latency_steps"] == latency
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.3, 0.3, (20, 4))
    neutral = direct.contract.to_normalised(direct.task.neutral_action())
    shifted = [neutral] * latency + list(actions[:-latency])
    for a, b in zip(actions, shifted):
        o1, *_ = delayed.step(a)
        o2, *_ = direct.step(b)
        # last_action differs by design (it is what the policy emitted); physics must match exactly
        np.testing.assert_allclose(o1[:18], o2[:18], atol=1e-9)


def test_the_expert_is_shown_the_commands_every_episode_still_has_queued():
    """The commands sent but not yet applied, newest first, in physical units; as many as the DR's lowest latency
    (a world that drew more has more queued, but a label depending on the draw is one a student cannot learn)."""
    core = SimCore("quadrotor", "hover", n=2, dr=[DRTerm("action_latency", "uniform", "abs", (2, 4))])
    core.reset(seeds=0)
    seen = []
    core.task.expert = lambda sim, pending: seen.append(pending) or np.tile(core.task.neutral_action(), (2, 1))
    sent = []
    for a in np.random.default_rng(0).uniform(-0.5, 0.5, (5, 2, 4)):
        core.step(a)
        sent.append(core.sent.copy())  # the command after rate shaping: what the queue holds
    core.expert_action()
    pending = seen[-1].actions
    assert pending.shape == (2, 2, 4)
    np.testing.assert_allclose(pending, core.contract.to_physical(np.array(sent)[[4, 3]].swapaxes(0, 1)))
    np.testing.assert_allclose(seen[-1].total(), pending.sum(1))
    np.testing.assert_allclose(seen[-1].newest(), core.contract.to_physical(sent[4]))
    core.close()
    none = SimCore("quadrotor", "hover", n=1, dr=[DRTerm("action_latency", "uniform", "abs", (0, 2))])
    none.reset(seeds=0)
    none.task.expert = lambda sim, pending: seen.append(pending) or none.task.neutral_action()[None]
    none.expert_action()
    assert seen[-1] is None  # some episodes of this DR have no latency: the expert sees no queue
    none.close()


@pytest.mark.parametrize("env_id", ["tether/QuadrotorWaypoint-v0", "tether/LeggedStand-v0"])
def test_commands_move_no_faster_than_the_deploy_guard_lets_them(env_id):
    """The sim sends what a deployed robot receives: the guard's default rate limit, the same sequence."""
    from tether.contract import FULL_RANGE_S
    from tether.hardware.guard import CommandGuard, GuardConfig

    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    core, c = env.core, env.contract
    guard = CommandGuard(c, None, GuardConfig(ramp_in_s=0.0), dt=1.0 / c.rate_hz)
    guard.start(c.to_physical(core.sent[0]), now=0.0)
    rng = np.random.default_rng(1)
    actions = (rng.choice([-1.0, 1.0], (40, c.action_size)) * rng.uniform(0.2, 1.0, (40, c.action_size))).astype(
        np.float32).astype(np.float64)
    moved, reasons = [], set()
    for k, a in enumerate(actions):
        before = core.sent[0].copy()
        env.step(a)
        out = guard.step(c.to_physical(a), state_stamp=k * guard.dt, now=k * guard.dt)
        np.testing.assert_allclose(c.to_physical(core.sent[0]), out.command, rtol=1e-9, atol=1e-9)
        moved.append(np.abs(core.sent[0] - before).max())
        reasons.add(out.reason)
        assert np.array_equal(env.core.last_action[0], a)  # the policy's own action is fed back
    step = 2.0 / (c.rate_hz * FULL_RANGE_S)
    assert max(moved) == pytest.approx(step) and guard.counters.rate_limited > 10
    assert "rate_limit" in reasons  # and the guard's record says when it shaped a command
    free = gym.make(env_id, full_range_s=None).unwrapped
    free.reset(seed=0)
    free.step(actions[0])
    np.testing.assert_allclose(free.core.sent[0], actions[0])  # None: the command jumps at once
    with pytest.raises(TetherError, match="full_range_s"):
        TetherEnv("quadrotor", "hover", full_range_s=0.0)
    arm = gym.make("tether/ArmReach-v0").unwrapped  # end-effector deltas: the guard limits joint targets instead
    arm.reset(seed=0)
    arm.step(np.ones(arm.contract.action_size))
    np.testing.assert_allclose(arm.core.sent[0], 1.0)


def test_obs_noise_and_bias_apply_and_are_seeded():
    terms = [DRTerm("obs_noise", "uniform", "abs", (0.01, 0.01)), DRTerm("obs_bias", "gaussian", "abs", (0.0, 0.05))]
    a, b, clean = (TetherEnv("quadrotor", "hover", dr=terms), TetherEnv("quadrotor", "hover", dr=terms),
                   TetherEnv("quadrotor", "hover"))
    oa, _ = a.reset(seed=1)
    ob, _ = b.reset(seed=1)
    oc, _ = clean.reset(seed=1)
    np.testing.assert_array_equal(oa, ob)
    assert np.abs(oa - oc).max() > 0.01


def test_push_moves_the_base():
    pushed = TetherEnv("quadrotor", "hover", dr=[DRTerm("push", "uniform", "abs", (0.1, 0.1), when="interval",
                                                         interval_s=0.2)])
    calm = TetherEnv("quadrotor", "hover")
    for env in (pushed, calm):
        env.reset(seed=0)
        for _ in range(30):
            env.step(env.expert_action())
    drift = np.linalg.norm(pushed.sim.base_pose()[0] - calm.sim.base_pose()[0])
    assert drift > 0.01


def test_dr_terms_round_trip_through_json():
    terms = make_robot("quadrotor").dr_presets["wide"]
    again = terms_from_json(terms_to_json(terms))
    assert again == terms
    assert json.loads(terms_to_json(terms))[0]["target"] == terms[0].target


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"target": "mass"}, "unknown DR target 'mass'"),
        ({"target": "body_mass", "range": (-1.0, 1.0)}, "negative scale"),
        ({"target": "body_mass", "range": (1.2, 0.8)}, "empty range"),
        ({"target": "body_mass", "distribution": "beta"}, "unknown DR distribution 'beta'"),
        ({"target": "body_mass", "when": "sometimes"}, "'sometimes'"),
        ({"target": "body_mass", "distribution": "log_uniform", "range": (0.0, 1.0)}, "low > 0"),
    ],
)
def test_invalid_dr_terms_are_refused_with_a_clear_message(kwargs, fragment):
    with pytest.raises(TetherError, match=fragment):
        DRTerm(**kwargs)


def test_dr_select_rejects_unknown_elements():
    env = TetherEnv("quadrotor", "hover")
    with pytest.raises(TetherError, match="unknown elements"):
        Randomizer([DRTerm("body_mass", select=("wing",))], env.core.sim, env.contract.obs_size)


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: tether.sim.make("tether/Submarine-v0"), "unknown env id 'tether/Submarine-v0'"),
        (lambda: TetherEnv("humanoid", "hover"), "unknown robot 'humanoid'"),
        (lambda: TetherEnv("quadrotor", "backflip"), "unknown task 'backflip'"),
        (lambda: TetherEnv("quadrotor", "hover", backend="gazebo"), "unknown backend 'gazebo'"),
        (lambda: TetherEnv("quadrotor", "hover", dr="extreme"), "unknown DR preset 'extreme'"),
        (lambda: TetherEnv("quadrotor", "hover", control_mode="joint_torque"), "no control mode 'joint_torque'"),
    ],
)
def test_bad_names_give_one_line_errors_listing_valid_ones(call, fragment):
    with pytest.raises(TetherError, match=fragment) as info:
        call()
    assert "\n" not in str(info.value)
    assert "expected one of" in str(info.value)


# ---------------------------------------------------------------------------------------------- vector env
def test_vector_env_workers_match_in_process_and_autoreset():
    results = []
    for executor in ("inprocess", "processes"):
        venv = make_vec("tether/QuadrotorHover-v0", 4, executor=executor, dr="default")
        obs, _ = venv.reset(seed=10)
        trace, finals = [obs], 0
        for _ in range(260):  # past one 250-step episode
            obs, rew, term, trunc, info = venv.step(np.zeros((4, 4), dtype=np.float32))
            trace.append(obs)
            finals += int(np.sum(info.get("_final_obs", np.zeros(4, bool))))
        venv.close()
        results.append((np.array(trace), finals))
    np.testing.assert_allclose(results[0][0], results[1][0], atol=1e-6)
    assert results[0][1] >= 4  # every env ended at least once and reset itself
    assert not np.allclose(results[0][0][5, 0], results[0][0][5, 1])  # copies are randomised differently


def test_cli_sim_list_and_rollout(capsys, tmp_path):
    assert cli_main(["sim", "list"]) == 0
    out = capsys.readouterr().out
    assert "tether/QuadrotorHover-v0" in out and "wide" in out
    video = tmp_path / "hover.mp4"
    assert cli_main(["sim", "rollout", "tether/QuadrotorHover-v0", "--policy", "expert", "--steps", "60",
                     "--video", str(video)]) == 0
    assert video.stat().st_size > 1000
    assert cli_main(["sim", "rollout", "tether/QuadrotorHover-v0", "--backend", "ode"]) == 2
    assert "unknown backend 'ode'" in capsys.readouterr().err


def test_render_gives_an_image_on_both_engines():
    for backend in BACKENDS:
        env = tether.sim.make("tether/QuadrotorHover-v0", backend=backend, render_mode="rgb_array")
        env.reset(seed=0)
        img = env.render()
        assert img.shape == (240, 320, 3) and img.dtype == np.uint8 and img.std() > 5
        env.close()


def test_gym_make_works_directly():
    env = gym.make("tether/QuadrotorHover-v0")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (22,)


def test_interval_terms_redraw_physics_mid_episode_and_keep_reset_draws():
    terms = [DRTerm("body_mass", "uniform", "scale", (0.8, 1.2), when="interval", interval_s=0.2),
             DRTerm("motor_time_constant", "uniform", "scale", (1.5, 2.0))]
    env = TetherEnv("quadrotor", "hover", dr=terms)
    env.reset(seed=4)
    tau = env.sim.get_param("motor_time_constant").copy()
    masses = [env.sim.get_param("body_mass").copy()]
    for _ in range(31):  # redraws at 0.2, 0.4 and 0.6 s of simulated time
        env.step(env.expert_action())
        if not np.allclose(env.sim.get_param("body_mass"), masses[-1]):
            masses.append(env.sim.get_param("body_mass").copy())
    assert len(masses) == 4
    np.testing.assert_array_equal(env.sim.get_param("motor_time_constant"), tau)  # reset draw kept
