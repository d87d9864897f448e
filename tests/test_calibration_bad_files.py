"""Malformed input files of `tether calibrate camera|handeye|latency|sysid`: each ends in exit code 2 and one line
naming the file and what was expected (no traceback), before anything is estimated or written."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests._bad_cli_cases import refusal_problems
from tether.cli import main


def _log(tmp: Path, name: str, **arrays: object) -> Path:
    p = tmp / name
    if name.endswith(".npz"):
        np.savez(p, **arrays)
    else:
        p.write_text(json.dumps(arrays))
    return p


def _latency_arrays() -> dict[str, np.ndarray]:
    t = np.arange(200) * 0.01
    c = np.sin(5 * t)
    return {"t": t, "command": c, "response": np.roll(c, 3)}


def _pose() -> dict[str, list[float]]:
    return {"xyz": [0.0, 0.0, 0.0], "quaternion_wxyz": [1.0, 0.0, 0.0, 0.0]}


def _deep(tmp: Path, name: str) -> Path:
    p = tmp / name
    p.write_text("[" * 100_000 + "]" * 100_000)
    return p


def _cases(tmp: Path) -> list[tuple[str, list[str], str, list[Path]]]:
    """(name, argv, text the line must hold, outputs that must not exist afterwards)."""
    ok = _log(tmp, "ok.npz", **_latency_arrays())
    out = tmp / "out.json"
    garbage = tmp / "garbage.json"
    garbage.write_text("{{garbage")
    unknown_dr = tmp / "unknown_dr.json"
    unknown_dr.write_text(json.dumps([{"target": "nope", "range": [1, 2]}]))
    not_contract = tmp / "not_contract.json"
    not_contract.write_text(json.dumps({"not": "a contract"}))
    tiny = tmp / "tiny.png"
    cv2.imwrite(str(tiny), np.zeros((1, 1), np.uint8))
    hand = tmp / "samples_str.json"
    hand.write_text(json.dumps({"samples": ["x", "y"]}))
    cv2.imwrite(str(tmp / "s0.png"), np.zeros((64, 64), np.uint8))
    outside = tmp / "outside.json"
    outside.write_text(json.dumps({"samples": [{"robot": _pose(), "image": "s0.png"}], "camera": str(garbage),
                                   "board": {}}))
    up = tmp / "up.json"
    up.write_text(json.dumps({"samples": [{"robot": _pose(), "image": "../s0.png"}], "camera": "cam.yaml",
                              "board": {}}))
    lat = ["calibrate", "latency"]
    return [
        ("latency --dr-preset not JSON", [*lat, ok, "--dr-preset", garbage, "--out", out], "--dr-preset", [out]),
        ("latency --dr-preset unknown target", [*lat, ok, "--dr-preset", unknown_dr, "--out", out], "'nope'", [out]),
        ("latency --dr-preset 100k-deep", [*lat, ok, "--dr-preset", _deep(tmp, "deep_dr.json"), "--out", out],
         "deep", [out]),
        ("latency --contract not a contract", [*lat, ok, "--contract", not_contract, "--out", out], "--contract",
         [out]),
        ("latency --contract not JSON", [*lat, ok, "--contract", garbage, "--out", out], "--contract", [out]),
        ("latency log 100k-deep", [*lat, _deep(tmp, "deep_log.json"), "--out", out], "deep_log.json", [out]),
        ("latency log text command", [*lat, _log(tmp, "lat_text.npz", t=np.arange(200) * 0.01,
                                                  command=np.array(["a"] * 200), response=np.zeros(200)),
                                      "--out", out], "'command'", [out]),
        ("latency log text t", [*lat, _log(tmp, "text_t.json", t="x", command=[0.0] * 200, response=[0.0] * 200),
                                "--out", out], "'t'", [out]),
        ("latency log empty control_period", [*lat, _log(tmp, "cp0.npz", **_latency_arrays(),
                                                         control_period=np.zeros(0)), "--out", out],
         "control_period", [out]),
        ("handeye samples not objects", ["calibrate", "handeye", hand, "--out", out], "sample 0", [out]),
        ("handeye text poses", ["calibrate", "handeye", _log(tmp, "he_text.npz", robot_poses=np.array(["a"]),
                                                             target_poses=np.array(["a"])), "--out", out],
         "'robot_poses'", [out]),
        ("handeye camera path outside the folder", ["calibrate", "handeye", outside, "--out", out], "'camera'", [out]),
        ("handeye image path with ..", ["calibrate", "handeye", up, "--out", out], "'image'", [out]),
        ("handeye 100k-deep", ["calibrate", "handeye", _deep(tmp, "deep_he.json"), "--out", out], "deep", [out]),
        ("camera 1x1 image", ["calibrate", "camera", tiny, "--board", "checkerboard", "--squares", "7", "5",
                              "--square-size", "0.03", "--out", tmp / "cam.yaml"], "tiny.png", [tmp / "cam.yaml"]),
        ("sysid log text command", ["calibrate", "sysid", _log(tmp, "sys_text.npz", command=np.array(["a"] * 10),
                                                               joint_pos=np.zeros((11, 7))),
                                    "--robot", "arm", "--dr-preset", out], "'command'", [out]),
        ("sysid log empty control_period", ["calibrate", "sysid", _log(tmp, "sys_cp0.npz", command=np.zeros((10, 7)),
                                                                       joint_pos=np.zeros((11, 7)),
                                                                       control_period=np.zeros(0)),
                                            "--robot", "arm", "--dr-preset", out], "control_period", [out]),
    ]


def test_malformed_calibration_inputs_end_in_one_line_before_any_output(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    kept = {}
    failures = []
    for name, argv, names, absent in _cases(tmp_path):
        kept = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
        rc = main([str(a) for a in argv])
        err = capsys.readouterr().err
        problems = refusal_problems(rc, err, names)
        problems += [f"wrote {p.name}" for p in absent if p.exists()]
        problems += [f"changed {p.name}" for p, b in kept.items() if not p.exists() or p.read_bytes() != b]
        if problems:
            failures.append(f"{name}: {', '.join(problems)}: {err.strip()[-300:]}")
        for p in absent:
            p.unlink(missing_ok=True)
    assert not failures, "\n".join(failures)
