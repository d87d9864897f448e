"""Every CLI number and path is checked before work starts; a file system that refuses mid-work ends in one line.

The table (tests/_bad_cli_cases.py: the issue's named cases for sim, data, policies, hybrid, world models,
pipeline and bag/topic, and their neighbours) runs in-process through ``tether.cli.main`` with every entry point
that would start work replaced by a tripwire: each case must end with exit code 2, exactly one line on stderr
naming the option (or the file read) and what was expected, no traceback, and no refused output on disk.
Disk-full and read-only outputs during `demos`, `train`, `bag record` are emulated by making the writer's own
write fail (and, for the bag, by a real ENOSPC from /dev/full); what was written before stays readable.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tether.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bad_cli_cases import build, read_only_dir, refusal_problems  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


class WorkStarted(BaseException):
    """Raised by the tripwires: a bad argument got past validation into real work."""


@pytest.fixture
def tripwires(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    def mod(name: str) -> object:
        return importlib.import_module(name)

    def trip(*_a: object, **_k: object) -> None:
        raise WorkStarted("work started")

    for module, name in (("tether.data.demos", "record_episodes"), ("tether.pipeline.run", "run_pipeline"),
                         ("tether.policies.evaluation", "evaluate_policy"), ("tether.policies.export", "export_onnx"),
                         ("tether.policies.hybrid.finetune", "finetune"), ("tether.policies.training", "run_training"),
                         ("tether.ros.cyclonedds_transport", "DdsTransport"), ("tether.sim", "make"),
                         ("tether.world_models.ensemble", "EnsembleWorldModel")):
        monkeypatch.setattr(mod(module), name, trip)


def test_bad_inputs_end_in_one_line_before_any_work(tmp_path: Path, tripwires: None,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    cases = build(tmp_path)
    assert len(cases) >= 130
    failures = []
    for case in cases:
        try:
            rc = main(case.argv)
        except WorkStarted:
            failures.append(f"{case.name}: work started")
            continue
        err = capsys.readouterr().err
        problems = refusal_problems(rc, err, case.names, ("expected", "choose from"))
        created = [str(p) for p in case.absent if p.exists()]
        if created:
            problems.append(f"created {created}")
        if problems:
            failures.append(f"{case.name}: {', '.join(problems)}: {err.strip()[:300]}")
    assert not failures, "\n".join(failures)


def test_module_id_from_a_typed_env_is_refused_without_import(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "evil_cli_mod.py").write_text("import sys\nsys.modules[__name__].IMPORTED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for argv in (["train", "evil_cli_mod:Foo-v0", "--algo", "sac", "--out", str(tmp_path / "o")],
                 ["sim", "rollout", "evil_cli_mod:Foo-v0"], ["demos", "evil_cli_mod:Foo-v0", "--out", str(tmp_path)]):
        assert main(argv) == 2
        assert "module:id" in capsys.readouterr().err
    assert "evil_cli_mod" not in sys.modules


def test_validators_import_only_the_standard_library() -> None:
    code = ("import sys; import tether.cli_types, tether.validation; "
            "print(sorted(m for m in ('numpy', 'torch', 'gymnasium', 'mujoco') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_qos_choices_match_the_presets() -> None:
    from tether.ros.bag_commands import QOS_PRESETS
    from tether.ros.qos import PRESETS

    assert set(QOS_PRESETS) == set(PRESETS)


def test_output_validators_create_nothing_and_name_the_reason(tmp_path: Path) -> None:
    import argparse

    from tether.cli_types import output_dir, output_file

    ro = read_only_dir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    for fn, text, why in ((output_dir, str(ro / "new" / "deeper"), "not writable"),
                          (output_file(".onnx"), str(tmp_path / "no" / "x.onnx"), "does not exist"),
                          (output_file(".onnx"), str(tmp_path / "x.txt"), "extension"),
                          (output_dir, str(Path("/proc/self/status") / "x"), "is a file")):
        with pytest.raises(argparse.ArgumentTypeError, match=why):
            fn(text)
    assert sorted(os.listdir(tmp_path)) == before  # the writability probe leaves nothing behind
    assert output_dir(str(tmp_path / "a" / "b")) == tmp_path / "a" / "b" and not (tmp_path / "a").exists()


def test_os_error_during_work_is_one_line_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import tether.policies.training
    from tether.policies.algos import register_algorithm

    def fail(_spec: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "run" / "metrics.csv"))

    register_algorithm("test-noop", lambda spec, run: None)
    monkeypatch.setattr(tether.policies.training, "run_training", fail)
    rc = main(["train", "Pendulum-v1", "--algo", "test-noop", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "No space left on device (ENOSPC)" in err[0] and "metrics.csv" in err[0]
    assert "free some space" in err[0]


# ---------------------------------------------------------------------------------------------- disk full / read-only
def _failing_after(real, calls: int, err: int):  # noqa: ANN001, ANN202
    """``real`` until it has been called ``calls`` times, then OSError(err) (the file system refusing)."""
    n = [0]

    def wrapper(*a, **k):  # noqa: ANN002, ANN003, ANN202
        n[0] += 1
        if n[0] > calls:
            raise OSError(err, os.strerror(err), str(a[1] if len(a) > 1 else a[0]))
        return real(*a, **k)

    return wrapper


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS])
def test_demos_disk_full_or_read_only_keeps_the_episodes_written(tmp_path: Path, err: int,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import tether.data.dataset.writer as writer
    from tether.data.dataset import Dataset

    # every episode writes its part, then the episode index: fail in the third episode
    monkeypatch.setattr(writer, "atomic_write_table", _failing_after(writer.atomic_write_table, 5, err))
    out = tmp_path / "ds"
    rc = main(["demos", "tether/ArmReach-v0", "--episodes", "6", "--out", str(out), "--max-steps", "5"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and errno.errorcode[err] in lines[0], lines
    monkeypatch.undo()
    ds = Dataset(out)  # readable as is: the reader recovers what the writer could not index
    complete = [e for e in ds.episodes if e.complete]
    assert len(complete) >= 2 and all(e.length == 5 for e in complete)
    assert not list(out.rglob("*.tmp"))


def test_checkpoint_save_disk_full_keeps_the_previous_checkpoint(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    import tether.policies.checkpoint as ck
    from _checkpoint_toys import tiny_gaussian

    pol = tiny_gaussian()
    pol.save(tmp_path / "c")
    first = ck.load_checkpoint(tmp_path / "c").files
    pol.obs_norm.update(np.ones((4, pol.contract.obs_size)))
    monkeypatch.setattr(ck, "_write_tmp", _failing_after(ck._write_tmp, 1, errno.ENOSPC))  # weights ok, JSON fails
    with pytest.raises(OSError, match="No space"):
        pol.save(tmp_path / "c")
    monkeypatch.undo()
    assert ck.load_checkpoint(tmp_path / "c").files == first  # the old set, intact
    assert not list((tmp_path / "c").glob("*.tmp"))


def test_train_out_disk_full_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import tether.policies.checkpoint as ck
    from tether.policies.algos import register_algorithm
    from _checkpoint_toys import tiny_gaussian

    def trainer(spec: object, run):  # noqa: ANN001, ANN202
        run.log(1, {"train/loss": 0.5})
        return tiny_gaussian()

    register_algorithm("test-tiny", trainer)
    monkeypatch.setattr(ck, "_write_tmp", _failing_after(ck._write_tmp, 0, errno.ENOSPC))
    rc = main(["train", "Pendulum-v1", "--algo", "test-tiny", "--out", str(tmp_path / "run"), "--no-progress",
               "--eval-every", "0"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and "ENOSPC" in lines[0], lines
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()  # the logs written before stay readable
    assert rows[0].startswith("step") and len(rows) == 2
    assert not list((tmp_path / "run").rglob("*.tmp"))


def _bag_with_messages(path: Path, n: int):  # noqa: ANN202
    from tether.ros.recorder import BagRecorder

    rec = BagRecorder(path, "humble", flush_period=60.0)
    for i in range(n):
        rec.write("/chatter", "std_msgs/msg/String", _string(rec, f"m{i}"), stamp_ns=1_000 + i)
    rec.commit()
    return rec


def _string(rec, text: str):  # noqa: ANN001, ANN202
    from tether.ros import types as T

    return T.make(rec.store, "std_msgs/msg/String", data=text)


def _read_count(path: Path) -> int:
    from tether.ros.recorder import read_bag

    return sum(1 for _ in read_bag(path, "humble"))


def test_bag_disk_full_real_enospc_keeps_what_was_committed(tmp_path: Path) -> None:
    """A real ENOSPC from the kernel: the bag file's descriptor is pointed at /dev/full after 5 commits."""
    rec = _bag_with_messages(tmp_path / "b", 5)
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, rec._stage._fd)  # every later write of the recorder hits a full device
    os.close(full)
    for i in range(5):
        rec.write("/chatter", "std_msgs/msg/String", _string(rec, f"late{i}"), stamp_ns=2_000 + i)
    with pytest.raises(OSError) as exc:
        rec.commit()
    assert exc.value.errno == errno.ENOSPC and rec.error is not None
    rec.write("/chatter", "std_msgs/msg/String", _string(rec, "dropped"), stamp_ns=3_000)  # never raises now
    with pytest.raises(OSError, match="keeps the 5 messages committed before"):
        rec.close()
    assert _read_count(tmp_path / "b") == 5


def test_bag_torn_write_is_rolled_back_to_the_last_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tether.ros.recorder as recorder

    rec = _bag_with_messages(tmp_path / "b", 3)
    real = os.pwrite

    def half_then_full(fd: int, data: bytes, off: int) -> int:  # the disk fills in the middle of a commit
        if len(data) > 40:
            real(fd, bytes(data[: len(data) // 2]), off)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data, off)

    monkeypatch.setattr(recorder.os, "pwrite", half_then_full)
    for i in range(50):
        rec.write("/chatter", "std_msgs/msg/String", _string(rec, "x" * 100), stamp_ns=2_000 + i)
    with pytest.raises(OSError):
        rec.commit()
    monkeypatch.undo()
    with pytest.raises(OSError, match="No space"):
        rec.close()
    assert _read_count(tmp_path / "b") == 3


def test_bag_record_cli_disk_full_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`tether bag record` over real DDS on loopback; the disk fills after the first commit."""
    import tether.ros.recorder as recorder

    real = recorder._StagedFile.commit
    calls = [0]

    def commit(self, tail: bytes = b"") -> None:  # noqa: ANN001
        calls[0] += 1
        if calls[0] > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        real(self, tail)

    monkeypatch.setattr(recorder._StagedFile, "commit", commit)
    rc = main(["bag", "record", str(tmp_path / "bag"), "--topic", "/tether_test_nobody:std_msgs/msg/String",
               "--duration", "0.3", "--loopback", "--domain-id", "97"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and "ENOSPC" in lines[0] and "keeps the 0 messages" in lines[0], lines
    monkeypatch.undo()
    assert _read_count(tmp_path / "bag") == 0  # an empty but readable bag


def test_pipeline_params_validator_is_shared(tmp_path: Path) -> None:
    """robot serve --params and pipeline --real-params read the same schema (tether.sim.served_params)."""
    from tether.errors import TetherError
    from tether.sim.served_params import check_served_params, load_served_params

    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps({"scale": {"body_mass": 1.3, "joint_damping": [1.0, 2.0]}, "goal": [0.1, 0.2, 0.3],
                              "seed": 3, "env_id": "tether/ArmReach-v0", "dr": "none"}))
    assert load_served_params(ok, "arm")["seed"] == 3
    for bad, why in (({"scale": {"body_mass": 0}}, "scale.body_mass"), ({"scale": {"nope": 1}}, "unknown keys"),
                     ({"env_id": "tether/QuadrotorHover-v0"}, "not an env of the arm"),
                     ({"env_id": "Pendulum-v1"}, "not a Tether env id"), ({"seed": -1}, "seed"),
                     ({"goal": [1e9, 0, 0]}, "goal"), ({"bridge": {"x": {"y": 1}}}, "bridge.x"),
                     ({"dr": [{"target": "body_mass", "range": [1, "a"]}]}, "range")):
        with pytest.raises(TetherError, match=why):
            check_served_params(bad, "params", "arm")


def test_demos_ctrl_c_keeps_the_episodes_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import tether.data.dataset.writer as writer
    from tether.data.dataset import Dataset

    real, calls = writer.DatasetWriter.end_episode, [0]

    def end_episode(self, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(writer.DatasetWriter, "end_episode", end_episode)
    out = tmp_path / "ds"
    rc = main(["demos", "tether/ArmReach-v0", "--episodes", "6", "--out", str(out), "--max-steps", "4"])
    assert rc == 130 and capsys.readouterr().err.strip().splitlines() == ["tether: interrupted"]
    monkeypatch.undo()
    assert sum(e.complete for e in Dataset(out).episodes) >= 2


def test_pipeline_disk_full_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import tether.policies.training

    def full(spec):  # noqa: ANN001, ANN202
        (spec.out / "metrics.csv").parent.mkdir(parents=True, exist_ok=True)
        (spec.out / "metrics.csv").write_text("step\n")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(spec.out / "tb"))

    monkeypatch.setattr(tether.policies.training, "run_training", full)
    rc = main(["pipeline", "--robot", "arm", "--out", str(tmp_path / "p")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and "ENOSPC" in lines[0] and "free some space" in lines[0], lines
    assert (tmp_path / "p" / "train" / "metrics.csv").read_text() == "step\n"
