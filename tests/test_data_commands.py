"""`tether demos`, `tether data info|convert|repair`, flat bag export ↔ import, and replay buffers, on the
real MuJoCo quadrotor env."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tether.sim
from tether.cli import main
from tether.data.dataset import Dataset
from tether.data.replay import load_transitions
from tether.policies.buffers import ReplayBuffer
from tether.data.rosbag_export import write_flat_bag

ENV = "tether/QuadrotorHover-v0"


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demos") / "ds"
    assert main(["demos", ENV, "--episodes", "2", "--out", str(out), "--seed", "7", "--max-steps", "40"]) == 0
    return out


def test_demos_record_what_the_env_did(demos: Path) -> None:
    ds = Dataset(demos)
    env = tether.sim.make(ENV, backend="mujoco", dr="none")
    c = env.unwrapped.contract
    assert ds.contract == c and ds.fps == c.rate_hz and ds.num_episodes == 2
    assert [e.length for e in ds.episodes] == [40, 40] and all(e.complete for e in ds.episodes)
    assert ds.metadata["env_id"] == ENV and ds.metadata["seed"] == 7
    assert np.all(np.abs(ds.actions) <= 1.0)
    # replaying the recorded actions from the same reset seed reproduces the recorded observations:
    # the dataset pairs each observation with the action taken *in* it (an off-by-one would diverge)
    for i in range(2):
        ep = ds.episode(i)
        obs, _ = env.reset(seed=7 + i)
        np.testing.assert_allclose(obs, ep["observation.state"][0], rtol=1e-5, atol=1e-6)
        for k in range(40):
            obs, r, *_ = env.step(ep["action"][k])
            assert r == pytest.approx(float(ep["next.reward"][k]), rel=1e-5, abs=1e-6)
            nxt = ep["observation.state"][k + 1] if k + 1 < 40 else ds.episodes[i].final_observation
            np.testing.assert_allclose(obs, nxt, rtol=1e-4, atol=1e-5)
    env.close()
    tr = ds.to_transitions()
    assert len(tr["obs"]) == 80 and tr["timeout"].sum() == 2 and not tr["terminal"].any()


def test_dagger_recording_labels_the_states_a_policy_reached_with_the_expert(tmp_path: Path) -> None:
    """``label="expert"``: a policy drives (here a constant command, which flies nowhere near the set point) and
    each observation is recorded with the expert's action in that state; the rewards stay the executed ones."""
    from tether.data.demos import record_episodes
    from tether.errors import TetherError

    steady = np.full(4, 0.2, np.float32)
    act = lambda o: np.tile(steady, (len(o), 1))  # noqa: E731
    kw = dict(seed=3, max_steps=30, env_kwargs={"dr": "none"})
    executed = record_episodes(ENV, tmp_path / "exec", 2, act=act, **kw)
    relabelled = record_episodes(ENV, tmp_path / "dagger", 2, act=act, label="expert", **kw)
    expert = record_episodes(ENV, tmp_path / "expert", 2, **kw)
    np.testing.assert_allclose(executed.actions, np.tile(steady, (len(executed.actions), 1)))
    # the same states as the executed run (same seeds, same commands), the expert's actions in them
    np.testing.assert_allclose(relabelled.episode_arrays()[0], executed.episode_arrays()[0], atol=1e-6)
    np.testing.assert_allclose(relabelled.episode(0)["next.reward"], executed.episode(0)["next.reward"], atol=1e-6)
    assert np.abs(relabelled.actions - steady).max() > 0.1
    # at each episode's first state (the reset, before the two runs part) the label is the expert's own action
    for i in range(2):
        np.testing.assert_allclose(relabelled.episode(i)["action"][0], expert.episode(i)["action"][0], atol=1e-6)
    mine, theirs = relabelled.episode(0)["action"], expert.episode(0)["action"]
    n = min(len(mine), len(theirs))
    assert n > 10 and not np.allclose(mine[10:n], theirs[10:n], atol=1e-3)  # different states, different labels
    with pytest.raises(TetherError, match="label 'teacher'; expected 'executed' or 'expert'"):
        record_episodes(ENV, tmp_path / "bad", 1, act=act, label="teacher", **kw)


@pytest.mark.parametrize("env_id", [ENV, "tether/LeggedVelocity-v0"])
def test_a_recording_does_not_depend_on_how_many_episodes_run_side_by_side(tmp_path: Path, env_id: str) -> None:
    """Episode ``k`` is its seed's whatever the batch (the pipeline records its demonstrations and DAgger rounds 32
    at a time, for speed, on that promise): under DR, one at a time and all at once write the same data."""
    from tether.data.demos import record_episodes

    kw = dict(seed=11, max_steps=25, env_kwargs={"dr": "default"})
    one = record_episodes(env_id, tmp_path / "one", 5, batch=1, **kw)
    wide = record_episodes(env_id, tmp_path / "wide", 5, batch=5, **kw)
    for a, b in zip(one.episode_arrays(), wide.episode_arrays()):
        np.testing.assert_array_equal(a, b)
    assert [e.success for e in one.episodes] == [e.success for e in wide.episodes]


def test_info_convert_roundtrip_and_replay(demos: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "info", str(demos)]) == 0
    out = capsys.readouterr().out
    assert "80 frames, 2 episodes (2 complete)" in out and "quadrotor/hover" in out

    ds = Dataset(demos)
    bag = write_flat_bag(ds, tmp_path / "run_bag")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "checkpoint.json").write_text(json.dumps({"format": 1, "contract": ds.contract.to_dict()}))
    assert main(["data", "convert", str(bag), "--contract", str(ckpt), "--out", str(tmp_path / "back")]) == 0
    back = Dataset(tmp_path / "back")
    assert back.num_episodes == 2 and [e.length for e in back.episodes] == [40, 40]
    np.testing.assert_array_equal(back.observations, ds.observations.astype(np.float64))
    np.testing.assert_allclose(back.actions, ds.actions, atol=1e-12)
    np.testing.assert_array_equal(back.frames["next.reward"], ds.frames["next.reward"])
    for a, b in zip(ds.episodes, back.episodes):
        np.testing.assert_array_equal(a.final_observation, b.final_observation)

    # the replay buffer sees the same transitions, terminal only where the env terminated
    buf = ReplayBuffer.from_transitions(tmp_path / "back", seed=0)
    tr = load_transitions(demos)
    assert len(buf) == len(tr["obs"]) == 80
    np.testing.assert_allclose(buf.arrays()["next_obs"], tr["next_obs"], rtol=1e-6)
    assert buf.arrays()["done"].sum() == 0
    from_bag = load_transitions(bag, contract=ds.contract)  # a bag path converts on the fly
    np.testing.assert_allclose(from_bag["obs"], tr["obs"], rtol=0, atol=0)
    np.testing.assert_allclose(from_bag["action"], tr["action"], atol=1e-12)
    batch = buf.sample(16)
    assert tuple(batch["obs"].shape) == (16, ds.contract.obs_size)

    # errors are one line, exit code 2
    argv = ["data", "convert", str(bag), "--contract", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]
    assert main(argv) == 2
    assert "does not exist" in capsys.readouterr().err
