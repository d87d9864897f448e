"""Diffusion and flow policies: history/chunk plumbing, multimodality, checkpoints and ONNX parity.

The learning test is the reason these policies exist: on a bimodal expert (from the same observation it
goes left OR right around an obstacle; the midpoint hits it) a generative policy must keep both modes while
an MSE regressor averages them into the failing midpoint.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tether.contract import Field, IOContract
from tether.errors import TetherError
from tether.policies.checkpoint import CheckpointError, load_checkpoint, load_policy
from tether.policies.diffusion import DiffusionPolicy, ddim_timesteps, make_betas
from tether.policies.export import export_onnx
from tether.policies.flow import FlowPolicy
from tether.policies.history import ChunkExecutor, ObservationHistory, episode_ids_from_dones, make_windows
from tether.policies.networks import mlp


def _contract(obs: int = 1, act: int = 2) -> IOContract:
    return IOContract(
        robot="toy", task="bimodal",
        observations=(Field.make("x", obs, "m"),),
        actions=(Field.make("a", act, "m", low=-1.0, high=1.0),),
        control_mode="ee_delta_pose", rate_hz=10.0,
    )


def _bimodal(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """a = (0.5 x, ±0.7): the second component passes an obstacle at 0 on either side, chosen at random."""
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    side = rng.choice([-1.0, 1.0], n)
    act = np.stack([0.5 * obs[:, 0], 0.7 * side], 1) + rng.normal(0, 0.03, (n, 2))
    return obs, np.clip(act, -1, 1).astype(np.float32)


GENERATIVE = [
    ("diffusion", DiffusionPolicy, {}),
    ("flow-rectified", FlowPolicy, {"variant": "rectified"}),
    ("flow-mean", FlowPolicy, {"variant": "mean"}),
]


# ------------------------------------------------------------------------------------------ plumbing
def test_make_windows_pads_with_episode_edges_and_never_crosses_episodes() -> None:
    obs = np.arange(6, dtype=np.float32)[:, None]  # two episodes: rows 0-2 and 3-5
    act = np.arange(6, dtype=np.float32)[:, None] * 10
    ids = episode_ids_from_dones(np.array([0, 0, 1, 0, 0, 1]))
    assert ids.tolist() == [0, 0, 0, 1, 1, 1]
    w, c = make_windows(obs, act, ids, n_obs_steps=2, horizon=3)
    assert w[:, :, 0].tolist() == [[0, 0], [0, 1], [1, 2], [3, 3], [3, 4], [4, 5]]
    assert c[:, :, 0].tolist() == [[0, 10, 20], [10, 20, 20], [20, 20, 20], [30, 40, 50], [40, 50, 50],
                                   [50, 50, 50]]
    with pytest.raises(TetherError, match="episode by episode"):
        make_windows(obs, act, np.array([0, 1, 0, 1, 0, 1]), 2, 3)


def test_observation_history_repeats_first_frame_like_training_windows() -> None:
    h = ObservationHistory(3)
    w0 = h.push(np.array([[1.0], [2.0]]))
    assert w0[:, :, 0].tolist() == [[1, 1, 1], [2, 2, 2]]
    w1 = h.push(np.array([[5.0], [6.0]]))
    assert w1[:, :, 0].tolist() == [[1, 1, 5], [2, 2, 6]]
    h.reset()
    assert h.push(np.array([[9.0], [9.0]]))[:, :, 0].tolist() == [[9, 9, 9], [9, 9, 9]]


def test_chunk_executor_receding_and_temporal_ensembling() -> None:
    rec = ChunkExecutor(horizon=4, n_action_steps=2, mode="receding")
    assert rec.needs_chunk()
    rec.add_chunk(np.arange(4, dtype=np.float32).reshape(1, 4, 1))
    assert [float(rec.next_action()[0, 0]) for _ in range(2)] == [0.0, 1.0]
    assert rec.needs_chunk()  # only n_action_steps of each chunk run
    ens = ChunkExecutor(horizon=3, n_action_steps=1, mode="ensemble", decay=0.5)
    ens.add_chunk(np.array([[[0.0], [10.0], [20.0]]]))
    assert float(ens.next_action()[0, 0]) == 0.0
    ens.add_chunk(np.array([[[100.0], [200.0], [300.0]]]))
    w = np.exp(-0.5 * np.arange(2))
    expected = (w[0] * 10.0 + w[1] * 100.0) / w.sum()  # oldest chunk weighted most (ACT)
    assert float(ens.next_action()[0, 0]) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(TetherError, match="execution mode"):
        ChunkExecutor(4, 2, mode="sometimes")


def test_beta_schedules_and_ddim_timesteps() -> None:
    for name in ("cosine", "linear", "vp"):
        b = make_betas(name, 50)
        ac = np.cumprod(1 - b)
        assert np.all(np.diff(ac) < 0) and ac[-1] < 0.05, name  # ends close to pure noise
    assert ddim_timesteps(100, 10)[0] == 99 and ddim_timesteps(100, 10)[-1] == 0
    with pytest.raises(TetherError, match="beta schedule"):
        make_betas("quadratic", 10)


@pytest.mark.parametrize("name,cls,kw", GENERATIVE, ids=[g[0] for g in GENERATIVE])
def test_chunked_policy_shapes_and_receding_horizon(name: str, cls: type, kw: dict) -> None:
    c = _contract()
    p = cls(c, {"horizon": 6, "n_obs_steps": 2, "n_action_steps": 3, "hidden": [32, 32], **kw})
    obs, act = _bimodal(200)
    p.fit(obs, act, steps=5, batch_size=16)
    o = obs[:4]
    assert p.act_chunk(o).shape == (4, 6, 2)
    assert p.sample_actions(o, 5).shape == (4, 5, 2)
    p.reset()
    chunk_calls = []
    orig = p.chunks_from_window
    p.chunks_from_window = lambda *a, **k: chunk_calls.append(1) or orig(*a, **k)  # type: ignore[method-assign]
    actions = [p.act(o) for _ in range(6)]
    assert len(chunk_calls) == 2  # one sampler call per n_action_steps
    assert all(a.shape == (4, 2) and np.all(np.abs(a) <= 1) for a in actions)
    assert p.act(o[0]).shape == (2,)  # a single observation gives a single action


def test_ensemble_execution_calls_sampler_every_step() -> None:
    p = DiffusionPolicy(_contract(), {"horizon": 4, "n_obs_steps": 1, "n_action_steps": 1,
                                      "execution": "ensemble", "hidden": [16], "inference_steps": 2})
    calls = []
    orig = p.chunks_from_window
    p.chunks_from_window = lambda *a, **k: calls.append(1) or orig(*a, **k)  # type: ignore[method-assign]
    for _ in range(5):
        assert p.act(np.zeros((3, 1), np.float32)).shape == (3, 2)
    assert len(calls) == 5


def test_bad_inputs_name_the_problem() -> None:
    c = _contract()
    with pytest.raises(TetherError, match="unknown diffusion policy option 'horizn'"):
        DiffusionPolicy(c, {"horizn": 4})
    with pytest.raises(TetherError, match="unknown flow variant"):
        FlowPolicy(c, {"variant": "curvy"})
    p = FlowPolicy(c, {"hidden": [8]})
    with pytest.raises(TetherError, match=r"expected \(B, 1\)"):
        p.act(np.zeros((2, 3), np.float32))
    with pytest.raises(TetherError, match=r"normalised actions in \[-1, 1\]"):
        p.fit(np.zeros((10, 1), np.float32), np.full((10, 2), 3.0, np.float32), steps=1)
    with pytest.raises(TetherError, match="NaN"):
        p.act(np.array([[np.nan]], np.float32))


# ------------------------------------------------------------------------------------------ learning
@pytest.mark.slow
def test_generative_policies_keep_both_modes_where_mse_averages() -> None:
    torch.manual_seed(0)
    c = _contract()
    obs, act = _bimodal()
    probe = np.linspace(-1, 1, 400, dtype=np.float32)[:, None]

    # the MSE regressor: same data, an MLP of the same width, trained to convergence
    reg = mlp(1, 2, (128, 128), act="mish")
    opt = torch.optim.Adam(reg.parameters(), lr=3e-3)
    x, y = torch.from_numpy(obs), torch.from_numpy(act)
    for _ in range(600):
        loss = ((reg(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        mse_side = reg(torch.from_numpy(probe))[:, 1].numpy()
    assert np.mean(np.abs(mse_side) < 0.3) > 0.9  # collapses onto the obstacle

    for name, cls, kw in GENERATIVE:
        p = cls(c, {"horizon": 1, "n_obs_steps": 1, "n_action_steps": 1, "hidden": [128, 128], **kw})
        p.fit(obs, act, steps=2500, batch_size=256, lr=3e-3, seed=0)
        a = p.sample_actions(probe, 1, seed=1)[:, 0]
        side = a[:, 1]
        left, right, mid = np.mean(side < -0.5), np.mean(side > 0.5), np.mean(np.abs(side) < 0.3)
        assert left > 0.25 and right > 0.25, (name, left, right)
        assert mid < 0.12, (name, mid)
        # the mode-independent component is still regressed accurately
        assert np.mean(np.abs(a[:, 0] - 0.5 * probe[:, 0])) < 0.05, name


# ------------------------------------------------------------------------------------------ checkpoints / export
@pytest.mark.parametrize("name,cls,kw", GENERATIVE, ids=[g[0] for g in GENERATIVE])
def test_checkpoint_round_trip_is_bit_exact(tmp_path, name: str, cls: type, kw: dict) -> None:
    c = _contract()
    p = cls(c, {"horizon": 4, "n_obs_steps": 2, "n_action_steps": 2, "hidden": [32, 32], "seed": 5, **kw})
    obs, act = _bimodal(300)
    p.fit(obs, act, np.repeat(np.arange(30), 10), steps=30, batch_size=32)
    p.save(tmp_path / "ckpt")
    q = load_policy(tmp_path / "ckpt", c)
    assert type(q) is cls and q.config == p.config
    for k, v in p.model.state_dict().items():
        w = q.model.state_dict()[k]
        assert v.dtype == w.dtype and torch.equal(v, w), k
    p.reset(), q.reset()
    p.reseed(11), q.reseed(11)
    for t in range(5):
        o = obs[t: t + 3]
        assert np.array_equal(p.act(o), q.act(o))
    assert np.array_equal(p.sample_actions(obs[:3], 4, seed=2), q.sample_actions(obs[:3], 4, seed=2))
    # a contract that does not match is refused
    with pytest.raises(CheckpointError, match="does not match"):
        load_policy(tmp_path / "ckpt", _contract(obs=3))
    # a missing tensor is refused with its name
    ckpt = load_checkpoint(tmp_path / "ckpt")
    ckpt.tensors.pop("denoiser.net.0.weight")
    with pytest.raises(CheckpointError, match="denoiser.net.0.weight"):
        cls.from_checkpoint(ckpt)


@pytest.mark.parametrize("name,cls,kw", GENERATIVE, ids=[g[0] for g in GENERATIVE])
def test_onnx_parity_with_unrolled_sampler(tmp_path, name: str, cls: type, kw: dict) -> None:
    import onnxruntime as ort

    c = _contract(obs=3, act=2)
    p = cls(c, {"horizon": 4, "n_obs_steps": 2, "n_action_steps": 2, "hidden": [64, 64], **kw})
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(400, 3)).astype(np.float32)
    act = np.tanh(obs[:, :2] + rng.normal(0, 0.1, (400, 2))).astype(np.float32)
    p.fit(obs, act, steps=50, batch_size=64)
    report = export_onnx(p, tmp_path / "p.onnx", verbose=False)
    assert report.max_abs_diff <= 1e-4
    # the exported single-step module is exactly the policy's first action from the same noise
    module = p.onnx_module()
    with torch.no_grad():
        first = module(torch.from_numpy(obs[:8])).numpy()
    noise = module.sampler.noise
    window = np.repeat(obs[:8, None, :], 2, axis=1)
    with torch.no_grad():
        cond = p.model.condition(torch.from_numpy(window))
        direct = p.model.generate(cond, noise.repeat(8, 1)).reshape(8, 4, 2)[:, 0].numpy()
    np.testing.assert_allclose(first, direct, atol=1e-6)
    # the chunk module (full history window in, whole chunk out) also matches onnxruntime
    chunk_mod = p.onnx_chunk_module()
    dummy = torch.zeros(2, p.onnx_window_size)
    torch.onnx.export(chunk_mod, (dummy,), str(tmp_path / "chunk.onnx"), dynamo=False, opset_version=17,
                      input_names=["window"], output_names=["chunk"],
                      dynamic_axes={"window": {0: "b"}, "chunk": {0: "b"}})
    win = rng.normal(size=(64, p.onnx_window_size)).astype(np.float32)
    ort_out = ort.InferenceSession(str(tmp_path / "chunk.onnx")).run(None, {"window": win})[0]
    with torch.no_grad():
        torch_out = chunk_mod(torch.from_numpy(win)).numpy()
    assert ort_out.shape == (64, 4, 2)
    assert np.max(np.abs(ort_out - torch_out)) <= 1e-4
