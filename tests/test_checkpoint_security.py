"""Checkpoints, datasets and DR files never turn data into code or into NaN actions (issue 11, item 7).

Each test is one of the attacks the issue reproduced, made against real files: an env id naming a module,
a symlinked weights file, a 200 000-deep JSON nesting, a 10**6-wide hidden layer, a NaN ``norm_clip``, NaN
weights, an edited JSON under a stale manifest, and the same tricks on datasets and DR preset files.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tether.cli import main
from tether.errors import TetherError
from tether.policies.checkpoint import (
    CheckpointError, checkpoint_files, load_checkpoint, load_policy, recorded_env_id, save_checkpoint,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _checkpoint_toys import tiny_gaussian  # noqa: E402


def _edit(directory: Path, fn, reseal: bool = True) -> None:  # noqa: ANN001
    """Edit checkpoint.json with ``fn(meta)``; with ``reseal`` also rewrite manifest.json to match, as someone
    with write access to the folder could (so the checks after the manifest are what is tested)."""
    path = directory / "checkpoint.json"
    meta = json.loads(path.read_text())
    fn(meta)
    path.write_text(json.dumps(meta))
    if reseal:
        _reseal(directory)


def _reseal(directory: Path) -> None:
    path = directory / "manifest.json"
    m = json.loads(path.read_text())
    m["files"] = {rel: hashlib.sha256((directory / rel).read_bytes()).hexdigest() for rel in m["files"]}
    path.write_text(json.dumps(m))


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    return lines[0]


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    tiny_gaussian(extra={"env_id": "tether/ArmReach-v0"}).save(tmp_path / "ck")
    return tmp_path / "ck"


# ---------------------------------------------------------------------------------------------- env ids
@pytest.mark.parametrize("where", ["extra", "contract"])
def test_module_env_id_in_a_checkpoint_is_refused_and_never_imported(tmp_path: Path, ckpt: Path, where: str,
                                                                     capsys: pytest.CaptureFixture[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "evil_ckpt_mod.py").write_text("raise SystemExit('imported evil_ckpt_mod')\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def plant(meta: dict) -> None:
        if where == "extra":
            meta["extra"]["env_id"] = "evil_ckpt_mod:Foo-v0"
        else:
            meta["contract"]["metadata"]["env_id"] = "evil_ckpt_mod:Foo-v0"
            meta["extra"].pop("env_id")

    _edit(ckpt, plant)
    assert main(["eval", str(ckpt), "--episodes", "1"]) == 2
    line = _one_line(capsys)
    assert "env_id" in line and "module:id" in line and "evil_ckpt_mod" in line
    assert main(["finetune", str(ckpt), "--real", str(tmp_path), "--steps", "1", "--out", str(tmp_path / "ft")]) == 2
    assert "module:id" in _one_line(capsys)
    assert "evil_ckpt_mod" not in sys.modules and not (tmp_path / "ft").exists()


def test_env_ids_from_files_must_be_registered_typed_ones_may_be_gymnasium(ckpt: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert recorded_env_id(load_checkpoint(ckpt)) == "tether/ArmReach-v0"
    _edit(ckpt, lambda m: m["extra"].update(env_id="Pendulum-v1"))
    with pytest.raises(CheckpointError, match="only Tether's own env ids are taken from a file"):
        recorded_env_id(load_checkpoint(ckpt))
    assert main(["eval", str(ckpt)]) == 2
    assert "type any other env id on the command line" in _one_line(capsys)
    from tether.sim.registry import env_id_from_file

    for bad in ("tether/Nope-v0", 42, None, "gymnasium.envs:Pendulum-v1"):
        with pytest.raises(TetherError, match="not a Tether env id"):
            env_id_from_file(bad, "a file")


# ---------------------------------------------------------------------------------------------- folder contents
def test_symlinked_weights_are_refused_even_with_matching_hashes(tmp_path: Path, ckpt: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / "elsewhere.safetensors"
    (ckpt / "weights.safetensors").rename(outside)
    (ckpt / "weights.safetensors").symlink_to(outside)  # same bytes, same SHA-256: only the link is wrong
    with pytest.raises(CheckpointError, match="symbolic link 'weights.safetensors'"):
        load_checkpoint(ckpt)
    assert main(["eval", str(ckpt), "--episodes", "1"]) == 2
    assert "symbolic link" in _one_line(capsys)


def test_links_and_fifos_anywhere_inside_are_refused(ckpt: Path) -> None:
    (ckpt / "sub").mkdir()
    (ckpt / "sub" / "notes").symlink_to("/etc/hostname")
    with pytest.raises(CheckpointError, match="symbolic link 'sub/notes'"):
        load_checkpoint(ckpt)
    (ckpt / "sub" / "notes").unlink()
    os.mkfifo(ckpt / "sub" / "pipe")  # reading it would block forever
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_checkpoint(ckpt)


def test_manifest_paths_stay_inside_and_an_old_checkpoint_without_one_is_named(ckpt: Path) -> None:
    m = json.loads((ckpt / "manifest.json").read_text())
    m["files"]["../x"] = "0" * 64
    (ckpt / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="expected a path inside the checkpoint folder"):
        load_checkpoint(ckpt)
    (ckpt / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="has no manifest.json"):
        load_checkpoint(ckpt)


# ---------------------------------------------------------------------------------------------- manifest
def test_edited_json_under_a_stale_manifest_is_refused(ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(ckpt, lambda m: m["config"].update(norm_clip=1e9), reseal=False)
    with pytest.raises(CheckpointError, match="checkpoint.json is corrupt or was modified after saving"):
        load_checkpoint(ckpt)
    assert main(["eval", str(ckpt), "--episodes", "1"]) == 2
    assert "checkpoint.json is corrupt or was modified" in _one_line(capsys)


def test_every_file_is_in_the_manifest_and_checkpoint_files_ships_them(ckpt: Path) -> None:
    ck = load_checkpoint(ckpt)
    assert set(ck.files) == {"checkpoint.json", "weights.safetensors"}
    files = checkpoint_files(ckpt)
    assert set(files) == {"checkpoint.json", "weights.safetensors", "manifest.json"}
    assert hashlib.sha256(files["checkpoint.json"]).hexdigest() == ck.files["checkpoint.json"]


def test_hmac_signed_checkpoints(tmp_path: Path, ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "key"
    key.write_bytes(os.urandom(32))
    monkeypatch.setenv("TETHER_CHECKPOINT_KEY_FILE", str(key))
    with pytest.raises(CheckpointError, match="not signed"):
        load_checkpoint(ckpt)  # saved without a key
    tiny_gaussian().save(tmp_path / "signed")
    load_policy(tmp_path / "signed")
    _edit(tmp_path / "signed", lambda m: m["config"].update(norm_clip=5.0))  # edit + manifest rewritten
    with pytest.raises(CheckpointError, match="signed with another key or was modified"):
        load_checkpoint(tmp_path / "signed")
    key.write_bytes(b"short")
    with pytest.raises(CheckpointError, match=">= 16 bytes"):
        load_checkpoint(tmp_path / "signed")


# ---------------------------------------------------------------------------------------------- JSON bounds / types
def test_200k_deep_json_is_one_line(ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ckpt / "checkpoint.json").write_text('{"a": ' * 200_000 + "1" + "}" * 200_000)
    _reseal(ckpt)
    assert main(["eval", str(ckpt), "--episodes", "1"]) == 2
    assert "nests deeper than 64 levels" in _one_line(capsys)
    (ckpt / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(CheckpointError, match="manifest.json' nests deeper|manifest.json nests deeper"):
        load_checkpoint(ckpt)


def test_million_wide_hidden_layer_is_refused_before_allocating(ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_alloc(*_a: object, **_k: object) -> None:
        raise AssertionError("a network was built")

    _edit(ckpt, lambda m: m["config"]["net"].update(hidden=[1_000_000, 1_000_000]))  # the 4 TB
    monkeypatch.setattr(torch.nn.Linear, "__init__", no_alloc)
    with pytest.raises(CheckpointError, match=r"hidden\[0\] is 1000000; expected a whole number in \[1, 65536\]"):
        load_policy(ckpt)
    _edit(ckpt, lambda m: m["config"]["net"].update(hidden=[60_000, 60_000]))  # within the cap: 14 GB of weights
    with pytest.raises(CheckpointError, match="config asks for networks of at least 3,600,"):
        load_policy(ckpt)
    _edit(ckpt, lambda m: m["config"].update(history=10**9))
    with pytest.raises(CheckpointError, match="history is 1000000000"):
        load_policy(ckpt)


def test_contract_sizes_and_types_are_bounded(ckpt: Path) -> None:
    _edit(ckpt, lambda m: m["contract"]["observations"][0].update(size=10**12))
    with pytest.raises(CheckpointError, match=r"observations\[0\].size is 1000000000000"):
        load_checkpoint(ckpt)
    _edit(ckpt, lambda m: m["contract"].update(observations="pos"))
    with pytest.raises(CheckpointError, match="observations is a JSON string; expected an array"):
        load_checkpoint(ckpt)
    _edit(ckpt, lambda m: m.update(tensors=[1, 2]))
    with pytest.raises(CheckpointError, match="tensors is a JSON array; expected an object"):
        load_checkpoint(ckpt)


def test_nan_norm_clip_is_refused(ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(ckpt, lambda m: m["config"].update(norm_clip=float("nan")))
    assert "NaN" in (ckpt / "checkpoint.json").read_text()
    assert main(["eval", str(ckpt), "--episodes", "1"]) == 2
    assert "norm_clip is nan; expected a finite number" in _one_line(capsys)
    _edit(ckpt, lambda m: m["config"].update(norm_clip=-1.0))
    with pytest.raises(CheckpointError, match="norm_clip is -1.0"):
        load_checkpoint(ckpt)


@pytest.mark.parametrize("tensor", ["obs_norm.mean", "obs_norm.var", "net.0.weight"])
def test_nan_or_inf_weights_and_statistics_are_refused(tmp_path: Path, tensor: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    pol = tiny_gaussian(extra={"env_id": "tether/ArmReach-v0"})
    sd = pol.state_dict()
    sd[tensor] = sd[tensor].clone()
    sd[tensor].view(-1)[0] = float("nan") if tensor != "obs_norm.var" else float("inf")
    # a legitimately saved file (valid manifest): the NaN came from training or from whoever made it
    save_checkpoint(tmp_path / "ck", kind="gaussian_mlp", tensors=sd, config=pol.config, contract=pol.contract,
                    extra=pol.extra)
    assert main(["eval", str(tmp_path / "ck"), "--episodes", "1"]) == 2
    assert f"tensor {tensor!r} holds NaN or infinite values" in _one_line(capsys)


def test_negative_normaliser_variance_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """var < 0 is finite but makes sqrt(var + eps) NaN: NaN actions from a checkpoint that passed every check."""
    pol = tiny_gaussian(extra={"env_id": "tether/ArmReach-v0"})
    sd = pol.state_dict()
    sd["obs_norm.var"] = -sd["obs_norm.var"]
    save_checkpoint(tmp_path / "ck", kind="gaussian_mlp", tensors=sd, config=pol.config, contract=pol.contract,
                    extra=pol.extra)
    assert main(["eval", str(tmp_path / "ck"), "--episodes", "1"]) == 2
    line = _one_line(capsys)
    assert "obs_norm" in line and "negative variance" in line and "expected" in line, line


@pytest.mark.parametrize("key,value,text", [
    ("log_std_min", "a", "log_std_min is 'a'; expected a number"),
    ("log_std_max", -10.0, "log_std_max is -10.0; expected a number in"),
    ("log_std_init", [1], "log_std_init is [1]; expected a number"),
])
def test_gaussian_config_numbers_are_typed(ckpt: Path, key: str, value: object, text: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    _edit(ckpt, lambda m: m["config"].update({key: value}))
    assert main(["export", str(ckpt), "--onnx", str(ckpt.parent / "x.onnx")]) == 2
    assert text in _one_line(capsys) and not (ckpt.parent / "x.onnx").exists()


@pytest.mark.parametrize("key,value,text", [
    ("ensemble_decay", [1], "ensemble_decay=[1]; expected a value like 0.01"),
    ("time_scale", None, "time_scale=None; expected a value like 10.0"),
    ("seed", 2**70, "expected a seed in 0..2**32-1"),
    ("inference_steps", 10**9, "inference_steps is 1000000000; expected a whole number in [0, 4096]"),
])
def test_generative_config_values_are_typed_and_bounded(tmp_path: Path, key: str, value: object, text: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A flow checkpoint's config: a list or null where a number belongs was a TypeError traceback, and
    10**9 inference steps made every act() run 10**9 network calls (eval hung)."""
    from _checkpoint_toys import toy_contract

    from tether.policies.flow import FlowPolicy

    FlowPolicy(toy_contract(), {"hidden": [8], "horizon": 4, "n_action_steps": 2}).save(tmp_path / "ck")
    _edit(tmp_path / "ck", lambda m: m["config"].update({key: value}))
    with pytest.raises(CheckpointError if key == "inference_steps" else TetherError) as info:
        load_policy(tmp_path / "ck")
    assert text in str(info.value) and "\n" not in str(info.value)


def test_an_unforeseen_config_error_of_a_kind_is_still_one_line(ckpt: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """What a kind's from_checkpoint did not check (a missing key: KeyError) ends in one line naming the
    checkpoint, never a traceback."""
    from tether.policies.gaussian import GaussianPolicy

    def broken(cls, ck):  # noqa: ANN001, ANN202
        return ck.config["critic"]

    monkeypatch.setattr(GaussianPolicy, "from_checkpoint", classmethod(broken))
    assert main(["eval", str(ckpt), "--episodes", "1"]) == 2
    line = _one_line(capsys)
    assert str(ckpt) in line and "KeyError: 'critic'" in line and "expected" in line, line


def test_a_clean_checkpoint_still_round_trips(ckpt: Path) -> None:
    pol = load_policy(ckpt)
    obs = np.random.default_rng(0).normal(size=(8, 5))
    assert np.array_equal(pol.act(obs), tiny_gaussian().act(obs))


# ---------------------------------------------------------------------------------------------- datasets and DR files
def test_dataset_links_templates_and_meta_are_checked(tmp_path: Path) -> None:
    from tether.data.dataset import Dataset
    from tether.data.demos import record_episodes

    out = tmp_path / "ds"
    record_episodes("tether/ArmReach-v0", out, 1, max_steps=3)
    assert len(Dataset(out)) == 3
    info_path = out / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    (out / "meta" / "evil").symlink_to("/etc/hostname")
    with pytest.raises(TetherError, match="symbolic link 'meta/evil'"):
        Dataset(out)
    (out / "meta" / "evil").unlink()
    for key, value, why in (("video_path", "../../../etc/{video_key}", "relative path template"),
                            ("video_path", "{video_key.__class__}", "relative path template"),
                            ("fps", float("nan"), "fps is nan"), ("fps", "50", "fps is '50'"),
                            ("features", [1], "features is a JSON array")):
        info_path.write_text(json.dumps({**info, key: value}))
        with pytest.raises(TetherError, match=why):
            Dataset(out)
    info_path.write_text(json.dumps({**info, "tether": {**info["tether"], "metadata": {"env_id": "evil:Foo-v0"}}}))
    with pytest.raises(TetherError, match="module:id"):
        Dataset(out)
    info_path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(TetherError, match="nests deeper than 64"):
        Dataset(out)


def test_dr_files_are_typed_bounded_and_finite(tmp_path: Path) -> None:
    from tether.sim.randomization import terms_from_file

    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"target": "body_mass", "range": [0.8, 1.2]}]))
    assert terms_from_file(good)[0].range == (0.8, 1.2)
    for text, why in (("[1, 2, 3]", "term 0 is a JSON int; expected an object"),
                      ('[{"target": "body_mass", "range": [NaN, 1]}]', "is nan; expected a finite number"),
                      ('[{"target": "body_mass", "range": [1, 2, 3]}]', "range has 3 numbers; expected 2"),
                      ('[{"target": "body_mass", "range": "ab"}]', "range is a JSON string"),
                      ('[{"target": ["x"]}]', "target is a JSON array"),
                      ('[{"target": "body_mass", "per_element": "yes"}]', "per_element"),
                      ("[" * 200_000 + "]" * 200_000, "nests deeper"),
                      ('{"terms": 5}', "expected a list of term objects")):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(TetherError, match=why):
            terms_from_file(bad)
    link = tmp_path / "link.json"  # a path the user typed may be a link to a regular file ...
    link.symlink_to(good)
    assert len(terms_from_file(link)) == 1
    fifo = tmp_path / "fifo.json"  # ... but never a FIFO or device (a read that blocks or never ends)
    os.mkfifo(fifo)
    with pytest.raises(TetherError, match="not a regular file"):
        terms_from_file(fifo)
    link.unlink()
    link.symlink_to("/dev/zero")
    with pytest.raises(TetherError, match="not a regular file"):
        terms_from_file(link)
