"""An exported ONNX file is the deployed controller: onnxruntime alone (a process that never imports torch),
reading the contract embedded in the file, reproduces ``policy.act`` given the noise the torch policy drew, for
every policy class (Gaussian as PPO and SAC build it, diffusion, rectified flow, one-step flow, V-GPS), through
episode resets, receding-horizon and ensembled chunks, batched and single observations."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from tether.contract import Field, IOContract
from tether.policies.diffusion import DiffusionPolicy
from tether.policies.export import export_onnx
from tether.policies.flow import FlowPolicy
from tether.policies.offline.common import Critic
from tether.policies.rl.ppo import PPO, PPOConfig
from tether.policies.rl.sac import SAC, SACConfig
from tether.policies.vgps import VGPSPolicy
from tether.runtime import KEY_ACTION, KEY_CONTRACT, KEY_POLICY

REPO = Path(__file__).resolve().parents[1]
B, EPISODE = 3, 7  # batch of 3 robots, episodes of 7 steps


def contract() -> IOContract:
    return IOContract(
        robot="arm", task="reach",
        observations=(Field.make("joint_pos", 3, "rad", components=("j1", "j2", "j3")),
                      Field.make("goal", 2, "m", "base")),
        actions=(Field.make("joint_pos_target", 2, "rad", low=[-2.0, -0.5], high=[1.0, 3.0]),),
        control_mode="joint_position", rate_hz=25.0,
    )


def _observations(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.5, 2.0, size=(400, 5)).astype(np.float32)


def _spread(policy: torch.nn.Module) -> None:
    """Untrained heads start near zero (PPO's 0.01 head): widen the weights so actions vary and parity bites."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in policy.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.4)


def _generative(cls: type, **cfg: object) -> torch.nn.Module:
    p = cls(contract(), {"horizon": 4, "n_obs_steps": 3, "n_action_steps": 2, "hidden": [48, 48], **cfg})
    obs = _observations(1)
    act = np.tanh(obs[:, :2] * 0.7 + np.random.default_rng(2).normal(0, 0.1, (len(obs), 2))).astype(np.float32)
    p.fit(obs, act, steps=40, batch_size=64)
    return p


def make_policies() -> dict[str, object]:
    c = contract()
    ppo = PPO(c, PPOConfig(hidden=(32, 32)), seed=0).policy
    sac = SAC(c, SACConfig(hidden=(32, 32)), seed=0).policy
    for p in (ppo, sac):
        _spread(p)
        p.obs_norm.update(_observations(0))
    critic = Critic(5, 2, [32, 32])
    critic.obs_norm.update(_observations(3))
    _spread(critic)
    return {
        "ppo-actor": ppo,
        "sac-actor": sac,
        "diffusion-receding": _generative(DiffusionPolicy),
        "diffusion-ensemble": _generative(DiffusionPolicy, execution="ensemble", inference_steps=5),
        "flow-rectified": _generative(FlowPolicy, variant="rectified", inference_steps=6),
        "flow-one-step": _generative(FlowPolicy, variant="mean"),
        "vgps-over-one-step-flow": VGPSPolicy(_generative(FlowPolicy, variant="mean"), critic, num_candidates=5),
    }


def _record_noise(policy: object) -> list[np.ndarray]:
    """Capture every noise tensor the torch policy draws (exactly what its act consumed), as the runtime's
    (B, noise_size) rows."""
    target = getattr(policy, "base", policy)
    drawn: list[np.ndarray] = []
    if not hasattr(target, "noise"):
        return drawn
    original = target.noise
    k = int(getattr(policy, "num_candidates", 1))

    def noise(batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        t = original(batch, generator)
        drawn.append(t.numpy().reshape(batch // k, -1).copy())  # row b*K + k -> (b, k) flattened
        return t

    target.noise = noise  # type: ignore[attr-defined]
    return drawn


def torch_rollout(policy: object, obs: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Two batched episodes (reset between) then one single-observation episode, as a controller runs them."""
    drawn = _record_noise(policy)
    out = []
    policy.reset()
    for t in range(2 * EPISODE):
        if t == EPISODE:
            policy.reset()
        out.append(policy.act(obs[t * B:(t + 1) * B]))
    policy.reset()
    for t in range(EPISODE):
        out.append(policy.act(obs[300 + t])[None])
    return np.concatenate(out), drawn


RUNTIME_CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from tether.runtime import ExportedPolicy
    B, EPISODE = {B}, {EPISODE}
    manifest = json.load(open(sys.argv[1]))
    for case in manifest:
        data = np.load(case["inputs"])
        obs = data["obs"]
        noise = [data[f"noise{{i}}"] for i in range(int(data["n_noise"]))]

        def noise_fn(shape, _queue=noise):
            n = _queue.pop(0)
            assert n.shape == tuple(shape), (n.shape, shape)
            return n

        pol = ExportedPolicy(case["onnx"], noise_fn=noise_fn)
        out, phys = [], []
        for t in range(2 * EPISODE):
            if t == EPISODE:
                pol.reset()
            a = pol.act(obs[t * B:(t + 1) * B])
            out.append(a)
            phys.append(pol.contract.to_physical(a))
        pol.reset()
        for t in range(EPISODE):
            out.append(pol.act(obs[300 + t])[None])
        assert not noise, f"{{len(noise)}} noise draws left unused"
        np.savez(case["outputs"], actions=np.concatenate(out), physical=np.concatenate(phys),
                 contract=json.dumps(pol.contract.to_dict()))
    assert "torch" not in sys.modules, "the runtime imported torch"
    print("torch-free", sorted(m for m in sys.modules if m.startswith("tether")))
    """
).format(B=B, EPISODE=EPISODE)


def test_onnxruntime_alone_reproduces_policy_act_for_every_policy_class(tmp_path: Path) -> None:
    obs = _observations(9)
    policies = make_policies()
    manifest, expected = [], {}
    for name, policy in policies.items():
        path = tmp_path / f"{name}.onnx"
        report = export_onnx(policy, path, parity_samples=64, verbose=False)
        assert report.max_abs_diff <= 1e-4
        actions, drawn = torch_rollout(policy, obs)
        expected[name] = actions
        np.savez(tmp_path / f"{name}.in.npz", obs=obs, n_noise=len(drawn),
                 **{f"noise{i}": n for i, n in enumerate(drawn)})
        manifest.append({"onnx": str(path), "inputs": str(tmp_path / f"{name}.in.npz"),
                         "outputs": str(tmp_path / f"{name}.out.npz")})
        # the embedded contract and execution settings are what the policy has
        props = {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}
        assert IOContract.from_dict(props[KEY_CONTRACT]) == policy.contract
        assert props[KEY_ACTION]["low"] == [-2.0, -0.5] and props[KEY_ACTION]["high"] == [1.0, 3.0]
        spec = props[KEY_POLICY]
        assert spec["history"] == (1 if "actor" in name else 3)
        assert spec["chunk"]["horizon"] == (4 if name.startswith(("diffusion", "flow")) else 1)
        assert (spec["noise"] is None) == ("actor" in name)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    run = subprocess.run([sys.executable, "-c", RUNTIME_CHILD, str(tmp_path / "manifest.json")], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "torch-free" in run.stdout
    for name, actions in expected.items():
        got = np.load(tmp_path / f"{name}.out.npz")
        assert got["actions"].shape == actions.shape == (2 * EPISODE * B + EPISODE, 2)
        diff = float(np.max(np.abs(got["actions"] - actions)))
        assert diff <= 1e-4, f"{name}: onnxruntime differs from policy.act by {diff:.2e}"
        assert float(np.std(actions)) > 0.05, f"{name}: the compared actions hardly vary"
        np.testing.assert_allclose(got["physical"], contract().to_physical(actions[:2 * EPISODE * B]), atol=1e-4)


def test_a_broken_sampler_is_caught_by_the_rollout_parity(tmp_path: Path) -> None:
    """The parity above bites: the same file run with other noise (or a stateless window) no longer matches."""
    from tether.runtime import ExportedPolicy

    policy = _generative(DiffusionPolicy)
    export_onnx(policy, tmp_path / "d.onnx", parity_samples=32, verbose=False)
    obs = _observations(9)
    actions, _ = torch_rollout(policy, obs)
    pol = ExportedPolicy(tmp_path / "d.onnx", seed=123)  # its own noise stream
    got = np.concatenate([pol.act(obs[t * B:(t + 1) * B]) for t in range(EPISODE)])
    assert float(np.max(np.abs(got - actions[:EPISODE * B]))) > 1e-2


def test_runtime_refuses_a_model_without_a_contract(tmp_path: Path) -> None:
    from tether.errors import TetherError
    from tether.runtime import ExportedPolicy, main

    lin = torch.nn.Linear(5, 2)
    torch.onnx.export(lin, (torch.zeros(1, 5),), str(tmp_path / "plain.onnx"), dynamo=False,
                      input_names=["obs_history"], output_names=["action_chunk"])
    with pytest.raises(TetherError, match="no Tether contract"):
        ExportedPolicy(tmp_path / "plain.onnx")
    assert main([str(tmp_path / "plain.onnx")]) == 2
    with pytest.raises(TetherError, match="does not exist"):
        ExportedPolicy(tmp_path / "missing.onnx")


class _StackedActor(torch.nn.Module):
    """A single-action policy conditioned on a stacked observation history (what the Gaussian RL actors get
    with ``history`` in their config): ``onnx_module`` takes the flattened window, oldest first."""

    kind = "stacked_toy"

    def __init__(self, history: int) -> None:
        super().__init__()
        from tether.policies.history import ObservationHistory

        self.contract, self.config = contract(), {"history": history}
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(5 * history, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
        self.window = ObservationHistory(history)

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(flat))

    def onnx_module(self) -> torch.nn.Module:
        return self

    def act(self, obs: np.ndarray) -> np.ndarray:
        w = self.window.push(np.atleast_2d(obs))
        with torch.no_grad():
            return self(torch.from_numpy(w.reshape(len(w), -1))).numpy()

    def reset(self) -> None:
        self.window.reset()


def test_a_stacked_history_is_a_graph_input_and_the_runtime_keeps_the_ring_buffer(tmp_path: Path) -> None:
    from tether.runtime import ExportedPolicy

    policy = _StackedActor(history=4)
    report = export_onnx(policy, tmp_path / "s.onnx", parity_samples=32, verbose=False)
    assert report.history == 4
    runtime = ExportedPolicy(tmp_path / "s.onnx")
    assert runtime.history_length == 4
    obs = _observations(4)
    for t in range(10):
        if t == 6:
            policy.reset(), runtime.reset()
        np.testing.assert_allclose(runtime.act(obs[t * B:(t + 1) * B]), policy.act(obs[t * B:(t + 1) * B]),
                                   atol=1e-5)
