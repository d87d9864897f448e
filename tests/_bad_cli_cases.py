"""A table of bad command lines for the CLI commands of sim, data, policies, hybrid, world_models, pipeline and
bag/topic: each must end with exit code 2 and one line naming the option and what was expected, before any work.

Shared by tests/test_cli_validation.py (in-process, after) and benchmarks/bad_input.py (subprocesses, before and
after figures). ``build(tmp)`` makes the fixture files under ``tmp`` and returns the cases.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]
    names: str  # text the one-line error must contain (the option, or the file it read)
    absent: tuple[Path, ...] = field(default_factory=tuple)  # outputs that must not exist afterwards


def refusal_problems(rc: int, err: str, names: str, words: tuple[str, ...] = ("expected",)) -> list[str]:
    """What is wrong with a refusal: an exit other than 2, a traceback or not exactly one stderr line, or a line
    that does not name ``names`` and (one of ``words``) what was expected. Empty: a good refusal."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    problems = []
    if rc != 2:
        problems.append(f"exit {rc}")
    if "Traceback" in err or len(lines) != 1:
        problems.append(f"{len(lines)} lines")
    elif names not in lines[0] or not any(w in lines[0] for w in words):
        problems.append(f"does not name {names!r} and what was expected")
    return problems


def read_only_dir(tmp: Path) -> Path:
    """A folder nobody may create files in. Root ignores mode bits, so as root it is sysfs (refuses creation)."""
    if os.geteuid() == 0:
        return Path("/sys/kernel")
    ro = tmp / "ro"
    ro.mkdir(exist_ok=True)
    ro.chmod(0o555)
    return ro


def build(tmp: Path) -> list[Case]:
    tmp.mkdir(parents=True, exist_ok=True)
    afile = tmp / "afile.txt"
    afile.write_text("not a directory\n")
    empty = tmp / "emptydir"
    empty.mkdir(exist_ok=True)
    nonempty = tmp / "nonempty"
    nonempty.mkdir(exist_ok=True)
    (nonempty / "notes.txt").write_text("mine\n")
    ro = read_only_dir(tmp)
    missing = tmp / "missing"
    dr123 = tmp / "dr123.json"
    dr123.write_text("[1, 2, 3]")
    drnan = tmp / "drnan.json"
    drnan.write_text('[{"target": "body_mass", "range": [NaN, 1.0]}]')
    deep = tmp / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    p_nan = tmp / "params_nan.json"
    p_nan.write_text('{"scale": {"body_mass": NaN}}')
    p_neg = tmp / "params_neg.json"
    p_neg.write_text(json.dumps({"scale": {"body_mass": -1}}))
    p_evil = tmp / "params_evil.json"
    p_evil.write_text(json.dumps({"env_id": "this:Foo-v0"}))
    p_goal = tmp / "params_goal.json"
    p_goal.write_text('{"goal": [NaN, NaN, NaN]}')
    p_goal1 = tmp / "params_goal1.json"
    p_goal1.write_text(json.dumps({"goal": [1.0]}))
    p_cmd2 = tmp / "params_cmd2.json"
    p_cmd2.write_text(json.dumps({"command": [1.0, 0.0]}))
    p_drname = tmp / "params_drname.json"
    p_drname.write_text(json.dumps({"dr": "bogus"}))
    dr_huge = tmp / "dr_huge.json"
    dr_huge.write_text(json.dumps([{"target": "body_mass", "range": [1e308, 1e308]}]))
    dr_lat = tmp / "dr_latency.json"
    dr_lat.write_text(json.dumps([{"target": "action_latency", "operation": "abs", "range": [1e9, 1e9]}]))
    E = "tether/ArmReach-v0"
    out = tmp / "out"  # a fresh output path; must never be created by a refused command
    ro_out = ro / "tether-out"
    topic = ["--topic", "/a:std_msgs/msg/String"]

    def c(name: str, argv: list[str], names: str, *absent: Path) -> Case:
        return Case(name, [str(a) for a in argv], names, tuple(absent))

    return [
        # ---- sim rollout
        c("sim steps -5", ["sim", "rollout", E, "--steps", "-5"], "--steps"),
        c("sim steps 0", ["sim", "rollout", E, "--steps", "0"], "--steps"),
        c("sim steps 1.5", ["sim", "rollout", E, "--steps", "1.5"], "--steps"),
        c("sim seed -1", ["sim", "rollout", E, "--seed", "-1"], "--seed"),
        c("sim seed 2**40", ["sim", "rollout", E, "--seed", str(2**40)], "--seed"),
        c("sim policy", ["sim", "rollout", E, "--policy", "bogus"], "--policy"),
        c("sim backend", ["sim", "rollout", E, "--backend", "bogus"], "--backend"),
        c("sim dr [1,2,3]", ["sim", "rollout", E, "--dr", dr123], "--dr"),
        c("sim dr NaN range", ["sim", "rollout", E, "--dr", drnan], "--dr"),
        c("sim dr 200k-deep", ["sim", "rollout", E, "--dr", deep], "--dr"),
        c("sim dr missing", ["sim", "rollout", E, "--dr", tmp / "nope.json"], "--dr"),
        c("sim dr range 1e308", ["sim", "rollout", E, "--dr", dr_huge], "--dr"),
        c("sim dr latency 1e9 steps", ["sim", "rollout", E, "--dr", dr_lat], "--dr"),
        c("sim video read-only", ["sim", "rollout", E, "--video", ro / "x.mp4"], "--video", ro / "x.mp4"),
        c("sim video file-as-dir", ["sim", "rollout", E, "--video", afile / "x.mp4"], "--video"),
        c("sim video no parent", ["sim", "rollout", E, "--video", missing / "x.mp4"], "--video", missing),
        c("sim env module:id", ["sim", "rollout", "this:Foo-v0"], "env_id"),
        c("sim env unknown", ["sim", "rollout", "tether/Nope-v0"], "env id"),
        c("sim control mode", ["sim", "rollout", E, "--control-mode", "a b"], "--control-mode"),
        # ---- demos
        c("demos episodes 0", ["demos", E, "--out", out, "--episodes", "0"], "--episodes", out),
        c("demos episodes -3", ["demos", E, "--out", out, "--episodes", "-3"], "--episodes", out),
        c("demos out read-only", ["demos", E, "--out", ro_out], "--out", ro_out),
        c("demos out is a file", ["demos", E, "--out", afile], "--out"),
        c("demos out under a file", ["demos", E, "--out", afile / "ds"], "--out"),
        c("demos out not empty", ["demos", E, "--out", nonempty], "--out"),
        c("demos seed -1", ["demos", E, "--out", out, "--seed", "-1"], "--seed", out),
        c("demos max-steps 0", ["demos", E, "--out", out, "--max-steps", "0"], "--max-steps", out),
        c("demos backend", ["demos", E, "--out", out, "--backend", "bogus"], "--backend", out),
        c("demos dr [1,2,3]", ["demos", E, "--out", out, "--dr", dr123], "--dr", out),
        c("demos env module:id", ["demos", "this:Foo-v0", "--out", out], "env_id", out),
        c("demos env unknown", ["demos", "tether/Nope-v0", "--out", out], "env id", out),
        # ---- data
        c("data info missing", ["data", "info", missing], "dir", missing),
        c("data info file", ["data", "info", afile], "dir"),
        c("data info deep info.json", ["data", "info", _deep_dataset(tmp)], "info.json"),
        c("data repair missing", ["data", "repair", missing], "dir", missing),
        c("data convert bag missing", ["data", "convert", missing, "--contract", empty, "--out", out], "BAG", out),
        c("data convert contract missing", ["data", "convert", empty, "--contract", missing, "--out", out],
          "--contract", out),
        c("data convert out read-only", ["data", "convert", empty, "--contract", empty, "--out", ro_out], "--out",
          ro_out),
        c("data convert out file", ["data", "convert", empty, "--contract", empty, "--out", afile], "--out"),
        c("data convert topic", ["data", "convert", empty, "--contract", empty, "--out", out, "--mapping",
                                 "ros2-control", "--command-topic", "not a topic"], "--command-topic", out),
        c("data convert mapping", ["data", "convert", empty, "--contract", empty, "--out", out, "--mapping",
                                   "a b"], "--mapping", out),
        # ---- train
        c("train steps -5", ["train", E, "--algo", "ppo", "--steps", "-5", "--out", out], "--steps", out),
        c("train steps 0", ["train", E, "--algo", "ppo", "--steps", "0", "--out", out], "--steps", out),
        c("train threads 0", ["train", E, "--algo", "ppo", "--threads", "0", "--out", out], "--threads", out),
        c("train threads -2", ["train", E, "--algo", "ppo", "--threads", "-2", "--out", out], "--threads", out),
        c("train seed -1", ["train", E, "--algo", "ppo", "--seed", "-1", "--out", out], "--seed", out),
        c("train eval-every -1", ["train", E, "--algo", "ppo", "--eval-every", "-1", "--out", out], "--eval-every",
          out),
        c("train eval-episodes -1", ["train", E, "--algo", "ppo", "--eval-episodes", "-1", "--out", out],
          "--eval-episodes", out),
        c("train out read-only", ["train", E, "--algo", "ppo", "--out", ro_out], "--out", ro_out),
        c("train out is a file", ["train", E, "--algo", "ppo", "--out", afile], "--out"),
        c("train out under a file", ["train", E, "--algo", "ppo", "--out", afile / "run"], "--out"),
        c("train dataset missing", ["train", E, "--algo", "iql", "--dataset", missing, "--out", out], "--dataset",
          out),
        c("train set", ["train", E, "--algo", "ppo", "--set", "nokey", "--out", out], "--set", out),
        c("train ray", ["train", E, "--algo", "ppo", "--ray", "not an address", "--out", out], "--ray", out),
        c("train backend", ["train", E, "--algo", "ppo", "--backend", "bogus", "--out", out], "--backend", out),
        c("train dr [1,2,3]", ["train", E, "--algo", "ppo", "--dr", dr123, "--out", out], "--dr", out),
        c("train dr NaN", ["train", E, "--algo", "ppo", "--dr", drnan, "--out", out], "--dr", out),
        c("train env module:id", ["train", "this:Foo-v0", "--algo", "ppo", "--out", out], "env_id", out),
        c("train env unknown", ["train", "tether/Nope-v0", "--algo", "ppo", "--out", out], "env id", out),
        c("train algo", ["train", E, "--algo", "nope", "--out", out], "--algo", out),
        # ---- eval
        c("eval missing", ["eval", missing], "checkpoint", missing),
        c("eval file", ["eval", afile], "checkpoint"),
        c("eval episodes 0", ["eval", empty, "--episodes", "0"], "--episodes"),
        c("eval episodes -1", ["eval", empty, "--episodes", "-1"], "--episodes"),
        c("eval seed -1", ["eval", empty, "--seed", "-1"], "--seed"),
        c("eval video read-only", ["eval", empty, "--video", ro / "v.mp4"], "--video", ro / "v.mp4"),
        c("eval video file-as-dir", ["eval", empty, "--video", afile / "v.mp4"], "--video"),
        c("eval env module:id", ["eval", empty, "this:Foo-v0"], "env_id"),
        c("eval ray", ["eval", empty, "--ray", "nowhere"], "--ray"),
        c("eval backend", ["eval", empty, "--backend", "bogus"], "--backend"),
        # ---- export
        c("export onnx no parent", ["export", empty, "--onnx", "/nonexistent/dir/x.onnx"], "--onnx",
          Path("/nonexistent")),
        c("export onnx read-only", ["export", empty, "--onnx", ro / "x.onnx"], "--onnx", ro / "x.onnx"),
        c("export onnx file-as-dir", ["export", empty, "--onnx", afile / "x.onnx"], "--onnx"),
        c("export onnx is a dir", ["export", empty, "--onnx", empty], "--onnx"),
        c("export samples 0", ["export", empty, "--onnx", tmp / "x.onnx", "--samples", "0"], "--samples",
          tmp / "x.onnx"),
        c("export samples -1", ["export", empty, "--onnx", tmp / "x.onnx", "--samples", "-1"], "--samples",
          tmp / "x.onnx"),
        c("export atol nan", ["export", empty, "--onnx", tmp / "x.onnx", "--atol", "nan"], "--atol", tmp / "x.onnx"),
        c("export atol -1", ["export", empty, "--onnx", tmp / "x.onnx", "--atol", "-1"], "--atol", tmp / "x.onnx"),
        c("export atol inf", ["export", empty, "--onnx", tmp / "x.onnx", "--atol", "inf"], "--atol", tmp / "x.onnx"),
        c("export checkpoint missing", ["export", missing, "--onnx", tmp / "x.onnx"], "checkpoint",
          tmp / "x.onnx"),
        # ---- finetune
        c("finetune checkpoint missing", ["finetune", missing, "--real", empty, "--out", out], "checkpoint", out),
        c("finetune real missing", ["finetune", empty, "--real", missing, "--out", out], "--real", out),
        c("finetune steps -5", ["finetune", empty, "--real", empty, "--steps", "-5", "--out", out], "--steps", out),
        c("finetune threads 0", ["finetune", empty, "--real", empty, "--threads", "0", "--out", out], "--threads",
          out),
        c("finetune seed -1", ["finetune", empty, "--real", empty, "--seed", "-1", "--out", out], "--seed", out),
        c("finetune out read-only", ["finetune", empty, "--real", empty, "--out", ro_out], "--out", ro_out),
        c("finetune out is a file", ["finetune", empty, "--real", empty, "--out", afile], "--out"),
        c("finetune algo", ["finetune", empty, "--real", empty, "--algo", "bogus", "--out", out], "--algo", out),
        c("finetune sim module:id", ["finetune", empty, "--real", empty, "--sim", "this:Foo-v0", "--out", out],
          "--sim", out),
        c("finetune dr [1,2,3]", ["finetune", empty, "--real", empty, "--dr", dr123, "--out", out], "--dr", out),
        c("finetune set", ["finetune", empty, "--real", empty, "--set", "x", "--out", out], "--set", out),
        # ---- wm
        c("wm fit dataset missing", ["wm", "fit", missing, "--out", out], "dataset", out),
        c("wm fit members 0", ["wm", "fit", empty, "--members", "0", "--out", out], "--members", out),
        c("wm fit elites 0", ["wm", "fit", empty, "--elites", "0", "--out", out], "--elites", out),
        c("wm fit elites > members", ["wm", "fit", empty, "--members", "3", "--elites", "5", "--out", out],
          "--elites", out),
        c("wm fit hidden 10^6", ["wm", "fit", empty, "--hidden", "1000000", "--out", out], "--hidden", out),
        c("wm fit hidden 0", ["wm", "fit", empty, "--hidden", "0,5", "--out", out], "--hidden", out),
        c("wm fit hidden abc", ["wm", "fit", empty, "--hidden", "abc", "--out", out], "--hidden", out),
        c("wm fit updates 0", ["wm", "fit", empty, "--updates", "0", "--out", out], "--updates", out),
        c("wm fit threads 0", ["wm", "fit", empty, "--threads", "0", "--out", out], "--threads", out),
        c("wm fit seed -1", ["wm", "fit", empty, "--seed", "-1", "--out", out], "--seed", out),
        c("wm fit out read-only", ["wm", "fit", empty, "--out", ro_out], "--out", ro_out),
        c("wm fit out is a file", ["wm", "fit", empty, "--out", afile], "--out"),
        c("wm eval model missing", ["wm", "eval", missing, empty], "model"),
        c("wm eval horizon 0", ["wm", "eval", empty, empty, "--horizon", "0"], "--horizon"),
        # ---- pipeline
        c("pipeline train-steps -5", ["pipeline", "--train-steps", "-5", "--out", out], "--train-steps", out),
        c("pipeline episodes 0", ["pipeline", "--episodes", "0", "--out", out], "--episodes", out),
        c("pipeline finetune-steps 0", ["pipeline", "--finetune-steps", "0", "--out", out], "--finetune-steps",
          out),
        c("pipeline finetune-rounds 0", ["pipeline", "--finetune-rounds", "0", "--out", out], "--finetune-rounds",
          out),
        c("pipeline seed -1", ["pipeline", "--seed", "-1", "--out", out], "--seed", out),
        c("pipeline explore 2", ["pipeline", "--explore", "2", "--out", out], "--explore", out),
        c("pipeline latency-ms -1", ["pipeline", "--latency-ms", "-1", "--out", out], "--latency-ms", out),
        c("pipeline latency-ms nan", ["pipeline", "--latency-ms", "nan", "--out", out], "--latency-ms", out),
        c("pipeline out read-only", ["pipeline", "--out", ro_out], "--out", ro_out),
        c("pipeline out is a file", ["pipeline", "--out", afile], "--out"),
        c("pipeline out under a file", ["pipeline", "--out", afile / "p"], "--out"),
        c("pipeline robot", ["pipeline", "--robot", "bogus", "--out", out], "--robot", out),
        c("pipeline finetune", ["pipeline", "--finetune", "bogus", "--out", out], "--finetune", out),
        c("pipeline dr [1,2,3]", ["pipeline", "--dr", dr123, "--out", out], "--dr", out),
        c("pipeline real-params missing", ["pipeline", "--real-params", missing, "--out", out], "--real-params",
          out),
        c("pipeline params mass NaN", ["pipeline", "--real-params", p_nan, "--out", out], "--real-params", out),
        c("pipeline params mass -1", ["pipeline", "--real-params", p_neg, "--out", out], "--real-params", out),
        c("pipeline params module:id", ["pipeline", "--real-params", p_evil, "--out", out], "--real-params", out),
        c("pipeline params goal NaN", ["pipeline", "--real-params", p_goal, "--out", out], "--real-params", out),
        c("pipeline params 200k-deep", ["pipeline", "--real-params", deep, "--out", out], "--real-params", out),
        c("pipeline params goal [1]", ["pipeline", "--real-params", p_goal1, "--out", out], "--real-params", out),
        c("pipeline params command [1,0]", ["pipeline", "--robot", "legged", "--real-params", p_cmd2, "--out", out],
          "--real-params", out),
        c("pipeline params dr bogus", ["pipeline", "--real-params", p_drname, "--out", out], "--real-params", out),
        c("pipeline dr latency 1e9 steps", ["pipeline", "--dr", dr_lat, "--out", out], "--dr", out),
        # ---- bag / topic
        c("bag info missing", ["bag", "info", missing], "bag", missing),
        c("bag recover missing", ["bag", "recover", missing], "bag", missing),
        c("bag record read-only", ["bag", "record", ro_out, *topic, "--duration", "0.1"], "out", ro_out),
        c("bag record under a file", ["bag", "record", afile / "bag", *topic, "--duration", "0.1"], "out"),
        c("bag record exists", ["bag", "record", empty, *topic, "--duration", "0.1"], "out"),
        c("bag record topic", ["bag", "record", out, "--topic", "bad", "--duration", "0.1"], "--topic", out),
        c("bag record duration -1", ["bag", "record", out, *topic, "--duration", "-1"], "--duration", out),
        c("bag record duration nan", ["bag", "record", out, *topic, "--duration", "nan"], "--duration", out),
        c("bag record duration inf", ["bag", "record", out, *topic, "--duration", "inf"], "--duration", out),
        c("bag record domain -1", ["bag", "record", out, *topic, "--domain-id", "-1", "--duration", "0.1"],
          "--domain-id", out),
        c("bag record domain 300", ["bag", "record", out, *topic, "--domain-id", "300", "--duration", "0.1"],
          "--domain-id", out),
        c("bag record qos", ["bag", "record", out, *topic, "--qos", "bogus", "--duration", "0.1"], "--qos", out),
        c("bag info distro", ["bag", "info", empty, "--distro", "bogus"], "--distro"),
        c("topic list domain -1", ["topic", "list", "--domain-id", "-1"], "--domain-id"),
        c("topic list wait nan", ["topic", "list", "--wait", "nan"], "--wait"),
        c("topic list wait -1", ["topic", "list", "--wait", "-1"], "--wait"),
        c("topic echo count 0", ["topic", "echo", "/x", "std_msgs/msg/String", "--count", "0"], "--count"),
        c("topic echo timeout nan", ["topic", "echo", "/x", "std_msgs/msg/String", "--timeout", "nan"], "--timeout"),
        c("topic echo timeout -1", ["topic", "echo", "/x", "std_msgs/msg/String", "--timeout", "-1"], "--timeout"),
        c("topic echo topic", ["topic", "echo", "not a topic", "std_msgs/msg/String", "--timeout", "0.1"], "topic"),
        c("topic echo type", ["topic", "echo", "/x", "nottype", "--timeout", "0.1"], "msgtype"),
        c("topic echo qos", ["topic", "echo", "/x", "std_msgs/msg/String", "--qos", "bogus", "--timeout", "0.1"],
          "--qos"),
    ]


def _deep_dataset(tmp: Path) -> Path:
    d = tmp / "deep_ds"
    (d / "meta").mkdir(parents=True, exist_ok=True)
    (d / "meta" / "info.json").write_text("[" * 200_000 + "]" * 200_000)
    return d
