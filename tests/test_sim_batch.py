"""The batched simulation core: one batch and N single envs follow the same trajectories, every executor and
engine gives the same results, the objective scores recorded data as the env scored it, and Gymnasium's
``make_vec`` returns the batched core."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import tether.sim
from tether.sim.core import SimCore
from tether.sim.env import TetherEnv
from tether.sim.registry import all_env_ids, parse_env_id
from tether.sim.robots import quadrotor as cf
from tether.sim.tasks.scoring import score_episode, transition_rewards
from tether.sim.vector import VecEnv, make_vec

IDS = sorted(all_env_ids())
N = 3


def _actions(rng: np.random.Generator, steps: int, n: int, size: int) -> np.ndarray:
    return rng.uniform(-0.4, 0.4, (steps, n, size)).astype(np.float32)


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
@pytest.mark.parametrize("eid", IDS)
def test_batch_and_single_envs_follow_the_same_trajectories(eid, backend):
    """World i of a batch seeded s and the single env seeded s + i: same observations and rewards, DR on."""
    steps = 30 if backend == "mujoco" else 12
    robot, task, kwargs = parse_env_id(eid)
    batch = SimCore(robot, task, N, backend=backend, dr="default", autoreset=False, **kwargs)
    singles = [TetherEnv(robot, task, backend=backend, dr="default", **kwargs) for _ in range(N)]
    obs, _ = batch.reset(7)
    for i, env in enumerate(singles):
        o, _ = env.reset(seed=7 + i)
        np.testing.assert_array_equal(o, obs[i])
    acts = _actions(np.random.default_rng(0), steps, N, batch.contract.action_size)
    for a in acts:
        out = batch.step(a)
        for i, env in enumerate(singles):
            o, r, te, tr, _ = env.step(a[i])
            np.testing.assert_allclose(o, out.obs[i], rtol=0, atol=1e-9)
            assert r == pytest.approx(float(out.reward[i]), abs=1e-9) and te == out.terminated[i]
        if out.done.any():
            break
    batch.close()


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
@pytest.mark.parametrize("eid", ["tether/LeggedVelocity-v0", "tether/QuadrotorHover-v0"])
def test_a_lookahead_is_undone(eid, backend):
    """Worlds stepped ahead inside ``lookahead()`` (other commands, a push) go on afterwards as worlds that never
    looked ahead: joint and base state, the quadrotor's onboard rate controller included. MuJoCo bit for bit;
    PyBullet to 1e-3 (over 60 steps with a lookahead every third: 1.2e-5 rad in joint angle, 1.8e-4 rad/s in joint
    speed, not growing): Bullet's saved state leaves out its contact solver's warm start, so a restore with no steps
    between is exact and one after steps is not."""
    robot, task, kwargs = parse_env_id(eid)
    traces = []
    for look in (False, True):
        core = SimCore(robot, task, 2, backend=backend, dr="default", autoreset=False, **kwargs)
        core.reset(5)
        sim, rng = core.sim, np.random.default_rng(0)
        trace = []
        for t in range(12):
            if look and t % 3 == 1:
                with sim.lookahead():
                    sim.set_external_force(np.arange(2), np.full((2, 3), 20.0))
                    for _ in range(3):
                        sim.set_command(core.contract.to_physical(rng.uniform(-1, 1, (2, core.contract.action_size))))
                        sim.step(core.robot_spec.substeps)
            sim.set_command(core.contract.to_physical(np.full((2, core.contract.action_size), 0.1 * (t % 4))))
            sim.step(core.robot_spec.substeps)
            trace += [*sim.joint_state(), *sim.base_pose(), *sim.base_velocity()]
        traces.append(trace)
        core.close()
    for a, b in zip(*traces):
        np.testing.assert_allclose(a, b, rtol=0, atol=0 if backend == "mujoco" else 1e-3)


def test_executors_give_identical_batches():
    """In-process (2 threads), in-process (1 thread) and worker processes: bit-identical, autoreset included."""
    results = []
    for executor, opts in (("inprocess", {"threads": 2}), ("inprocess", {"threads": 1}),
                           ("processes", {"workers": 2})):
        venv = make_vec("tether/ArmReach-v0", 4, executor=executor, dr="default", **opts)
        obs, _ = venv.reset_batch(11)
        trace = [obs]
        rng = np.random.default_rng(1)
        for _ in range(55):  # across the 50-step episode end
            s = venv.step_batch(rng.uniform(-1, 1, (4, 3)).astype(np.float32))
            trace += [s.obs, s.final_obs, s.reward[:, None]]
        venv.close()
        results.append(trace)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_gymnasium_make_vec_returns_the_batched_core():
    venv = gym.make_vec("tether/QuadrotorHover-v0", num_envs=4, vectorization_mode="vector_entry_point", dr="wide")
    assert isinstance(venv.unwrapped, VecEnv) and venv.num_envs == 4
    assert venv.unwrapped.contract.control_mode == "thrust_body_rates"  # the default control mode
    obs, info = venv.reset(seed=0)
    assert obs.shape == (4, 22) and info == {}
    obs, rew, term, trunc, info = venv.step(np.zeros((4, 4), np.float32))
    assert rew.shape == (4,) and "final_obs" in info and info["final_obs"].shape == (4, 22)
    venv.close()
    legged = gym.make_vec("tether/LeggedVelocityRough-v0", num_envs=2, vectorization_mode="vector_entry_point")
    assert legged.unwrapped.contract.metadata["terrain"] == "rough"
    _, info = legged.reset(seed=0)
    assert info["privileged"].shape == (2, legged.unwrapped.privileged_size)
    legged.close()


@pytest.mark.parametrize("eid", IDS)
def test_objective_scores_recorded_transitions_as_the_env_rewarded_them(eid):
    """Rewards labelled from recorded (obs, action, next obs) equal the env's, where the task's objective needs
    only observed fields; the episode score's success equals the env's."""
    robot, task, kwargs = parse_env_id(eid)
    env = TetherEnv(robot, task, **kwargs)
    obs, _ = env.reset(seed=3)
    trace, actions, rewards, info = [obs], [], [], {}
    rng = np.random.default_rng(0)
    for _ in range(env.task.max_steps):
        a = env.expert_action() if task != "velocity" else rng.uniform(-0.2, 0.2, 12).astype(np.float32)
        obs, r, te, tr, info = env.step(a)
        trace.append(obs), actions.append(env.contract.to_physical(a)), rewards.append(r)
        if te or tr:
            break
    trace = np.array(trace)
    needs_privileged = bool(env.contract.privileged) and task == "velocity"
    if needs_privileged:
        with pytest.raises(tether.errors.TetherError, match="needs fields"):
            transition_rewards(env.contract, trace[:-1], np.array(actions), trace[1:])
        return
    labelled = transition_rewards(env.contract, trace[:-1], np.array(actions), trace[1:])
    if robot == "legged":  # the recording has no trunk height: the kinematic estimate stands in (within 1 cm)
        assert np.abs(labelled - np.array(rewards)).max() < 0.02
    else:
        np.testing.assert_allclose(labelled, rewards, rtol=1e-5, atol=1e-5)
    assert score_episode(env.contract, trace, np.vstack([actions, actions[-1:]])).success == info["success"]


def test_onboard_rate_controller_matches_the_numpy_reference():
    """The C callback inside mj_step and the numpy RateController stepped between substeps: same flight."""
    from tether.sim.backends.mujoco_batch import MujocoBatch
    from tether.sim.tasks.quadrotor import Hover

    spec = tether.sim.robots.make_robot("quadrotor")
    scene = Hover(spec).scene()
    native = MujocoBatch(spec, scene, 2)
    assert native._native, "the rate controller callback must build here (a C compiler is on these machines)"
    reference = MujocoBatch(spec, scene, 2)
    reference._native = False
    rng = np.random.default_rng(0)
    for sim in (native, reference):
        sim.set_command(np.tile([4 * cf.HOVER_THRUST, 0, 0, 0], (2, 1)))
        sim.reset_state(np.arange(2), np.zeros((2, 0)), base_pos=np.array([[0, 0, 1.0], [0.5, 0, 1.0]]))
    import mujoco

    callback = mujoco.get_mjcb_control()
    try:
        for _ in range(40):
            cmd = np.column_stack([rng.uniform(0.2, 0.4, 2), rng.uniform(-3, 3, (2, 3))])
            native.set_command(cmd)
            native.step(10)
            mujoco.set_mjcb_control(None)  # the reference path: no callback, numpy between substeps
            reference.set_command(cmd)
            reference.step(10)
            mujoco.set_mjcb_control(callback)
            np.testing.assert_allclose(native.qpos, reference.qpos, atol=1e-12)
            np.testing.assert_allclose(native.qvel, reference.qvel, atol=1e-10)
        assert np.abs(native.qvel).max() > 0.5  # the commands did fly the vehicles
    finally:
        mujoco.set_mjcb_control(callback)


def test_a_lookahead_is_undone_on_the_numpy_rate_controller():
    """Where the C callback cannot be built, the MuJoCo batch runs the numpy rate controller between substeps, and
    its integrators live in Python: a lookahead restores them too, so the flight goes on bit for bit."""
    import mujoco

    from tether.sim.backends.mujoco_batch import MujocoBatch
    from tether.sim.tasks.quadrotor import Hover

    spec = tether.sim.robots.make_robot("quadrotor")
    callback = mujoco.get_mjcb_control()
    mujoco.set_mjcb_control(None)
    try:
        flights = []
        for look in (False, True):
            sim = MujocoBatch(spec, Hover(spec).scene(), 2)
            sim._native = False
            mujoco.set_mjcb_control(None)  # building a batch installs the callback; the reference path runs without
            sim.set_command(np.tile([4 * cf.HOVER_THRUST, 0, 0, 0], (2, 1)))
            sim.reset_state(np.arange(2), np.zeros((2, 0)), base_pos=np.array([[0, 0, 1.0], [0.5, 0, 1.0]]))
            rng, trace = np.random.default_rng(0), []
            for t in range(20):
                cmd = np.column_stack([np.full(2, 0.3 + 0.01 * t), np.full((2, 3), 0.5 * np.sin(t))])
                if look and t % 3 == 1:
                    with sim.lookahead():
                        sim.set_command(np.column_stack([rng.uniform(0.2, 0.4, 2), rng.uniform(-3, 3, (2, 3))]))
                        sim.step(30)
                sim.set_command(cmd)
                sim.step(10)
                trace.append(np.concatenate([sim.qpos, sim.qvel], axis=1).copy())
            flights.append(trace)
        for a, b in zip(*flights):
            np.testing.assert_array_equal(a, b)
    finally:
        mujoco.set_mjcb_control(callback)


@pytest.mark.parametrize("seed", [3, 11])
def test_a_recorded_waypoint_flight_is_scored_by_the_goal_moves_it_shows(seed):
    """A recording has no waypoint counter: each goal move (the error jumping by more than the vehicle's own
    motion) is a waypoint reached, and the last counts once within the reach radius. Checked on the expert's
    flight through the simulator's mission: all four counted, a recording cut short of the last waypoint fails,
    and a hover flight shows no goal move."""
    from tether.sim.tasks.quadrotor import waypoints_reached
    from tether.sim.tasks.scoring import task_for

    env = TetherEnv("quadrotor", "waypoint")
    obs, _ = env.reset(seed=seed)
    trace, counts = [obs], []
    for _ in range(env.task.max_steps):
        obs, _, te, tr, info = env.step(env.expert_action())
        trace.append(obs), counts.append(int(env.task.index[0]))
        if te or tr:
            break
    trace, counts = np.array(trace), np.array(counts)
    assert info["success"] and counts[-1] == 4
    task = task_for(env.contract)
    f = env.contract.split_obs(trace)

    def reached(upto: int) -> int:
        _, _, m = task.objective({k: v[:upto - 1] for k, v in f.items()}, None, {k: v[1:upto] for k, v in f.items()})
        return waypoints_reached(m, task.reach_radius)

    assert reached(len(trace)) == 4 and score_episode(env.contract, trace).success
    third = int(np.argmax(counts >= 3))  # the step the third waypoint was reached (the goal moves after it)
    assert reached(third + 1) == 2 and reached(third + 3) == 3
    assert not score_episode(env.contract, trace[: third + 3]).success
    hover = TetherEnv("quadrotor", "hover")
    obs, _ = hover.reset(seed=seed)
    flight = [obs] + [hover.step(hover.expert_action())[0] for _ in range(200)]
    fh = hover.contract.split_obs(np.array(flight))
    _, _, m = task.objective({k: v[:-1] for k, v in fh.items()}, None, {k: v[1:] for k, v in fh.items()})
    assert not np.any(m["goal_moved"])
