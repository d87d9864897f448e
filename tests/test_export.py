"""ONNX export: the exported deterministic path matches torch within 1e-4, and a disagreement is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tether.contract import Field, IOContract
from tether.policies.export import ExportError, OnnxPolicy, export_onnx
from tether.policies.gaussian import GaussianPolicy


def _policy(**cfg) -> GaussianPolicy:
    contract = IOContract(
        robot="toy", task="t",
        observations=(Field.make("x", 7, "m"),),
        actions=(Field.make("u", 3, "N", low=-1.0, high=2.0),),
        control_mode="joint_torque", rate_hz=20.0,
    )
    torch.manual_seed(0)
    pol = GaussianPolicy(contract, {"net": {"hidden": [64, 64], "act": "elu", "layer_norm": True},
                                    "head_scale": 1.0, **cfg})
    pol.obs_norm.update(np.random.default_rng(0).normal(4.0, 3.0, size=(300, 7)))
    return pol


@pytest.mark.parametrize("cfg", [{}, {"squash": "clip", "log_std": "state_independent"}])
def test_onnx_parity_gaussian(tmp_path: Path, cfg: dict, capsys: pytest.CaptureFixture[str]) -> None:
    pol = _policy(**cfg)
    ck = tmp_path / "ck"
    pol.save(ck)
    report = export_onnx(ck, tmp_path / "p.onnx")  # from a checkpoint directory
    assert report.max_abs_diff <= 1e-4
    assert "max abs diff" in capsys.readouterr().out
    onnx_pol = OnnxPolicy(tmp_path / "p.onnx", pol.contract)
    obs = np.random.default_rng(5).normal(4.0, 3.0, size=(32, 7))
    np.testing.assert_allclose(onnx_pol.act(obs), pol.act(obs), atol=1e-5)
    assert np.abs(pol.act(obs)).std() > 0.05  # the compared actions actually vary
    np.testing.assert_allclose(onnx_pol.act(obs[0]), pol.act(obs[0]), atol=1e-5)


def test_parity_violation_is_refused(tmp_path: Path) -> None:
    """A module whose ONNX trace differs from its eager run (data-dependent Python branch) must be rejected."""
    pol = _policy()

    class Sneaky(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = pol.onnx_module()

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            out = self.inner(obs)
            if float(obs.abs().sum()) > 0:  # traced with zeros: this branch is dropped from the ONNX graph
                out = out * 0.5
            return out

    class Wrapper:
        contract = pol.contract
        obs_norm = pol.obs_norm

        def onnx_module(self) -> torch.nn.Module:
            return Sneaky()

    # the tracer's warning about the data-dependent branch reaches the user (only known noise is silenced)
    with pytest.raises(ExportError, match="parity failed"), pytest.warns(torch.jit.TracerWarning, match="Python float"):
        export_onnx(Wrapper(), tmp_path / "bad.onnx", verbose=False)


def test_a_clean_export_warns_nothing(tmp_path: Path) -> None:
    """The exporter's known noise (legacy-exporter deprecation, the normaliser's constant branch) is silenced;
    nothing else is expected from a Tether policy."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export_onnx(_policy(), tmp_path / "clean.onnx", verbose=False)


def test_export_needs_onnx_module(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="onnx_module"):
        export_onnx(object(), tmp_path / "x.onnx")
