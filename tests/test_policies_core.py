"""Checkpoint format, registry, normaliser and Gaussian policy: round trips are bit-exact and bad files are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tether.contract import Field, IOContract
from tether.errors import TetherError
from tether.policies.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_policy,
    registered_policy_kinds,
    save_checkpoint,
)
from tether.policies.gaussian import GaussianPolicy
from tether.policies.normalization import RunningNormalizer


def _contract(obs: int = 5, act: int = 2, rate: float = 50.0, robot: str = "toy") -> IOContract:
    return IOContract(
        robot=robot,
        task="reach",
        observations=(Field.make("pos", obs - 2, "m", "world"), Field.make("vel", 2, "m/s", "world")),
        actions=(Field.make("force", act, "N", low=-3.0, high=3.0),),
        control_mode="joint_torque",
        rate_hz=rate,
    )


def _trained_policy(seed: int = 0, **cfg) -> GaussianPolicy:
    torch.manual_seed(seed)
    pol = GaussianPolicy(_contract(), {"net": {"hidden": [32, 32], "act": "tanh", "layer_norm": True},
                                       "head_scale": 1.0, **cfg})
    rng = np.random.default_rng(seed)
    pol.obs_norm.update(rng.normal(3.0, 2.0, size=(500, 5)))
    return pol


def _reseal(directory: Path) -> None:
    """Recompute manifest.json after an edit, as someone with write access to the folder could."""
    import hashlib

    path = directory / "manifest.json"
    m = json.loads(path.read_text())
    m["files"] = {rel: hashlib.sha256((directory / rel).read_bytes()).hexdigest() for rel in m["files"]}
    path.write_text(json.dumps(m))


def test_round_trip_is_bit_exact(tmp_path: Path) -> None:
    pol = _trained_policy()
    pol.dr_terms = [{"field": "mass", "dist": "uniform", "range": [0.8, 1.2]}]
    obs = np.random.default_rng(1).normal(2.0, 3.0, size=(64, 5))
    before = pol.act(obs)
    pol.save(tmp_path / "ck")
    loaded = load_policy(tmp_path / "ck", expected_contract=_contract())
    assert isinstance(loaded, GaussianPolicy)
    after = loaded.act(obs)
    assert np.array_equal(before, after)
    assert np.abs(before).max() <= 1.0 and np.abs(before).std() > 0.05  # a real, non-constant action map
    for k, v in pol.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    meta = json.loads((tmp_path / "ck" / "checkpoint.json").read_text())
    assert meta["kind"] == "gaussian_mlp"
    assert meta["dr_terms"] == pol.dr_terms
    assert {"tether", "torch", "numpy", "mujoco"} <= set(meta["versions"])
    assert "obs_norm.mean" in meta["tensors"]
    # single observation in, single action out
    np.testing.assert_allclose(loaded.act(obs[0]), before[0], atol=1e-6)  # batch-1 GEMM may round differently


def test_ppo_flavour_round_trip(tmp_path: Path) -> None:
    pol = _trained_policy(squash="clip", log_std="state_independent", log_std_init=-0.7)
    obs = np.random.default_rng(2).normal(size=(16, 5))
    pol.save(tmp_path / "ck")
    assert np.array_equal(pol.act(obs), load_policy(tmp_path / "ck").act(obs))


def test_corrupt_weights_refused(tmp_path: Path) -> None:
    _trained_policy().save(tmp_path / "ck")
    w = tmp_path / "ck" / "weights.safetensors"
    data = bytearray(w.read_bytes())
    data[-10] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_policy(tmp_path / "ck")
    # a truncated file is refused even when the hash check is skipped
    w.write_bytes(bytes(data[:100]))
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(tmp_path / "ck", verify_hash=False)


def test_missing_tensor_refused(tmp_path: Path) -> None:
    pol = _trained_policy()
    sd = pol.state_dict()
    sd.pop("net.0.weight")
    save_checkpoint(tmp_path / "ck", kind="gaussian_mlp", tensors=sd, config=pol.config, contract=pol.contract)
    with pytest.raises(CheckpointError, match="net.0.weight"):
        load_policy(tmp_path / "ck")
    # manifest says a tensor exists that the file lacks
    meta_path = tmp_path / "ck" / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    meta["tensors"]["ghost"] = {"dtype": "float32", "shape": [3]}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="checkpoint.json is corrupt or was modified"):
        load_checkpoint(tmp_path / "ck")
    _reseal(tmp_path / "ck")  # even with the manifest rewritten to match, the schema checks still apply
    with pytest.raises(CheckpointError, match="ghost"):
        load_checkpoint(tmp_path / "ck")


def test_contract_mismatch_refused(tmp_path: Path) -> None:
    _trained_policy().save(tmp_path / "ck")
    with pytest.raises(CheckpointError, match="rate 50.0 Hz != 100.0 Hz"):
        load_policy(tmp_path / "ck", expected_contract=_contract(rate=100.0))
    with pytest.raises(CheckpointError, match="robot 'toy' != 'other'"):
        load_policy(tmp_path / "ck", expected_contract=_contract(robot="other"))


def test_wrong_kind_missing_dir_and_bad_json(tmp_path: Path) -> None:
    pol = _trained_policy()
    pol.save(tmp_path / "ck")
    with pytest.raises(CheckpointError, match="expected 'diffusion'"):
        load_policy(tmp_path / "ck", expected_kind="diffusion")
    save_checkpoint(tmp_path / "k2", kind="no_such_kind", tensors=pol.state_dict(), config={}, contract=pol.contract)
    with pytest.raises(CheckpointError, match="unknown policy kind 'no_such_kind'"):
        load_policy(tmp_path / "k2")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_policy(tmp_path / "nope")
    (tmp_path / "ck" / "checkpoint.json").write_text("{not json")
    _reseal(tmp_path / "ck")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_policy(tmp_path / "ck")
    assert "gaussian_mlp" in registered_policy_kinds()
    assert issubclass(CheckpointError, TetherError)


def test_wrong_shape_refused(tmp_path: Path) -> None:
    pol = _trained_policy()
    big = GaussianPolicy(_contract(), {"net": {"hidden": [64, 64], "act": "tanh", "layer_norm": True}})
    save_checkpoint(tmp_path / "ck", kind="gaussian_mlp", tensors=big.state_dict(), config=pol.config,
                    contract=pol.contract)
    with pytest.raises(CheckpointError, match="shape"):
        load_policy(tmp_path / "ck")


def test_normaliser_matches_numpy_stats() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal([1.0, -2.0, 5.0], [0.5, 3.0, 10.0], size=(1000, 3))
    norm = RunningNormalizer(3)
    for chunk in np.array_split(data, 7):
        norm.update(chunk)
    np.testing.assert_allclose(norm.mean.numpy(), data.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(norm.var.numpy(), data.var(0), rtol=1e-10)
    y = norm.normalize_np(data)
    np.testing.assert_allclose(y.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.std(0), 1.0, atol=1e-4)
    with pytest.raises(TetherError, match="NaN"):
        norm.update(np.full((2, 3), np.nan))


def test_bad_observation_shape_is_one_line_error() -> None:
    pol = _trained_policy()
    with pytest.raises(TetherError, match=r"expected \(B, 5\)"):
        pol.act(np.zeros((2, 4)))


def test_tanh_log_prob_matches_change_of_variables() -> None:
    """The squashed log-prob equals a numeric density of tanh(Normal) (checks the Jacobian term)."""
    pol = _trained_policy()
    obs = torch.zeros(1, 5)
    g = torch.Generator().manual_seed(0)
    a, logp = pol.sample(obs.repeat(4, 1), generator=g)
    mean, log_std = pol.dist_params(obs)
    u = torch.atanh(a.clamp(-0.999999, 0.999999))
    base = torch.distributions.Normal(mean, log_std.exp()).log_prob(u).sum(-1)
    ref = base - torch.log(1 - a.pow(2)).sum(-1)
    torch.testing.assert_close(logp, ref, rtol=1e-3, atol=1e-3)
    samples = pol.sample_actions(np.zeros((2, 5)), 8, seed=3)
    assert samples.shape == (2, 8, 2) and np.abs(samples).max() <= 1.0
    assert samples[0].std(0).min() > 1e-3


def test_fit_teaches_the_actor_labels_that_need_its_history() -> None:
    """``GaussianPolicy.fit`` (DAgger's step for an RL actor): labels that are the *previous* observation's first
    two values can only be learned through the window (oldest first, episode starts padded as ``act`` pads
    them); on an episode it never saw, the fitted actor acts them, a memoryless one cannot. The exploration std
    and a trained normaliser stay as they were."""
    rng = np.random.default_rng(0)
    obs = rng.normal(3.0, 2.0, size=(700, 5)).astype(np.float32)
    episodes = np.repeat(np.arange(7), 100)
    starts = episodes != np.concatenate([[-1], episodes[:-1]])
    prev = np.where(starts[:, None], obs, np.concatenate([obs[:1], obs[:-1]]))
    labels = np.tanh((prev[:, :2] - 3.0) / 2.0).astype(np.float32)
    fit, held = slice(0, 600), slice(600, 700)  # the last episode is held out
    for history, squash in ((2, "clip"), (2, "tanh"), (1, "clip")):
        pol = _trained_policy(history=history, squash=squash, log_std="state_independent")
        norm = (pol.obs_norm.mean.clone(), pol.obs_norm.var.clone())
        log_std = pol.log_std.detach().clone()
        pol.fit(obs[fit], labels[fit], episodes[fit], steps=1500, lr=3e-3, seed=0)
        pol.reset()
        acted = np.stack([pol.act(obs[i:i + 1])[0] for i in range(held.start, held.stop)])  # step by step
        err = float(np.mean((acted - labels[held]) ** 2))
        if history == 2:
            assert err < 0.02, (squash, err)
        else:  # a memoryless actor cannot know the last observation
            assert err > 0.2, err
        assert torch.equal(pol.obs_norm.mean, norm[0]) and torch.equal(pol.obs_norm.var, norm[1])
        assert torch.equal(pol.log_std.detach(), log_std)
    with pytest.raises(TetherError, match="expected normalised actions in"):
        pol.fit(obs, labels * 3, episodes, steps=1)
    with pytest.raises(TetherError, match=r"actions have shape \(700, 3\); expected \(N, 2\)"):
        pol.fit(obs, np.zeros((700, 3)), episodes, steps=1)
    with pytest.raises(TetherError, match="no labelled steps"):
        pol.fit(obs[:0], labels[:0], episodes[:0], steps=1)
