"""`tether train / eval / export` end to end on a tiny budget: files, logs, checkpoint, ONNX, clear errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tether.cli import main
from tether.policies.algos import available_algorithms, get_algorithm, register_algorithm
from tether.policies.checkpoint import load_checkpoint
from tether.policies.training import TrainSpec, TrainingRun, run_training


def test_train_eval_export_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    rc = main(["train", "Pendulum-v1", "--algo", "sac", "--steps", "400", "--out", str(out), "--seed", "3",
               "--set", "hidden=[32,32]", "--set", "critic_hidden=[32,32]", "--set", "learning_starts=200",
               "--set", "batch_size=32", "--eval-every", "200", "--eval-episodes", "1", "--no-progress"])
    assert rc == 0
    ck = load_checkpoint(out / "checkpoint")
    assert ck.kind == "gaussian_mlp" and ck.extra["algo"] == "sac" and ck.extra["env_id"] == "Pendulum-v1"
    assert ck.extra["steps"] == 400 and "eval/return_mean" in ck.extra["last_eval"]
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert any(r.get("eval/return_mean") for r in rows) and any(r.get("train/critic_loss") for r in rows)
    eval_steps = [r["step"] for r in rows if r.get("eval/return_mean")]
    assert eval_steps == sorted(set(eval_steps)), eval_steps  # one eval/* point per step, the last one included
    assert list((out / "tb").iterdir()), "no TensorBoard event file"
    assert json.loads((out / "spec.json").read_text())["seed"] == 3
    capsys.readouterr()

    # a plain Gymnasium id is taken only from the command line, never from the checkpoint's file
    assert main(["eval", str(out / "checkpoint"), "--episodes", "2", "--json"]) == 2
    assert "type any other env id on the command line" in capsys.readouterr().err
    assert main(["eval", str(out / "checkpoint"), "Pendulum-v1", "--episodes", "2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["env_id"] == "Pendulum-v1" and res["success_rate"] is None and res["return_mean"] < 0

    assert main(["export", str(out / "checkpoint"), "--onnx", str(tmp_path / "p.onnx")]) == 0
    assert "max abs diff" in capsys.readouterr().out and (tmp_path / "p.onnx").stat().st_size > 0


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "Pendulum-v1", "--algo", "nope", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown algorithm 'nope'" in err and "ppo" in err and "sac" in err and len(err.strip().splitlines()) == 1
    assert main(["eval", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "Pendulum-v1", "--algo", "sac", "--set", "bogus=1", "--out", str(tmp_path / "y"),
                 "--no-progress"]) == 2
    assert "unknown SAC option 'bogus'" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()  # refused before training: no half-made run folder is left
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "notes.txt").write_text("mine")
    assert main(["train", "Pendulum-v1", "--algo", "sac", "--set", "bogus=1", "--out", str(tmp_path / "z"),
                 "--no-progress"]) == 2
    assert (tmp_path / "z" / "notes.txt").read_text() == "mine"  # a folder that was there is never removed


def test_ctrl_c_saves_a_checkpoint(tmp_path: Path) -> None:
    """A KeyboardInterrupt mid-training leaves OUT/checkpoint marked interrupted."""

    def trainer(spec: TrainSpec, run: TrainingRun):
        from tether.policies.rl.sac import SAC
        from tether.policies.envs import env_contract, make_env

        env = make_env(spec.env_id)
        sac = SAC(env_contract(env), None, seed=0)
        run.set_policy(sac.policy)
        run.advance(123)
        raise KeyboardInterrupt

    register_algorithm("test-interrupt", trainer)
    assert "test-interrupt" in available_algorithms() and get_algorithm("test-interrupt") is trainer
    with pytest.raises(KeyboardInterrupt):
        run_training(TrainSpec("Pendulum-v1", "test-interrupt", steps=1000, out=tmp_path / "r", progress=False))
    ck = load_checkpoint(tmp_path / "r" / "checkpoint")
    assert ck.extra["interrupted"] is True and ck.extra["steps"] == 123


def test_evaluation_schedule_follows_the_trainers_default_length() -> None:
    """Without --steps the trainer picks the length; until it says so no periodic evaluation runs (an unknown
    length used to mean an evaluation after every rollout), and then one every fifth of the run."""
    from tether.policies.training import TrainingRun, TrainSpec

    run = TrainingRun(TrainSpec("Pendulum-v1", "ppo", steps=None, out=None, progress=False))
    assert run.eval_every == 0 and run.maybe_evaluate(10_000) is None
    run.set_total(150_000)
    assert run.eval_every == 30_000 and run.maybe_evaluate(29_999) is None
    explicit = TrainingRun(TrainSpec("Pendulum-v1", "ppo", steps=None, out=None, progress=False, eval_every=7))
    explicit.set_total(150_000)
    assert explicit.eval_every == 7
