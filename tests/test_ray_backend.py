"""The Ray backend against a real local Ray cluster (a head node started here with ``ray start --head``).

What must hold: remote env actors give bit-identical observations/rewards to the in-process vector env and pool
for the same seeds and actions (across episode boundaries), distributed evaluation gives the same per-episode
returns as local evaluation, ``--ray`` works from the CLI (and a PPO run collected on the cluster trains the same
weights as a local one), and without ``--ray`` nothing imports Ray or starts a Ray process.
One cluster is shared by the module (its startup dominates the runtime on 2 cores).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("ray")  # optional dependency: the 'ray' extra

from tether.errors import TetherError  # noqa: E402
from tether.policies.checkpoint import load_checkpoint, load_policy  # noqa: E402
from tether.policies.envs import make_env  # noqa: E402
from tether.policies.evaluation import evaluate_policy  # noqa: E402
from tether.policies.gaussian import GaussianPolicy  # noqa: E402
from tether.scale import cluster  # noqa: E402
from tether.sim.vector import make_vec  # noqa: E402

ARM = "tether/ArmReach-v0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc), so teardown ends exactly the cluster this test started."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, stack = [], [pid]
    while stack:
        for c in children.get(stack.pop(), []):
            out.append(c)
            stack.append(c)
    return out


@pytest.fixture(scope="module")
def ray_address():
    tmp = tempfile.mkdtemp(prefix="tray")  # short: Ray's unix socket paths must fit in 107 bytes
    port = _free_port()
    # Token auth as a real multi-machine cluster runs it, with a token of this test's own (not ~/.ray/auth_token):
    # the head and this driver share it through the environment.
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"}
    saved = {k: os.environ.get(k) for k in auth}
    os.environ.update(auth)
    from ray._raylet import Config  # ray read its config at import; re-read it so this driver sends the token

    Config.initialize("")
    env = dict(os.environ)
    ray_exe = str(Path(sys.executable).with_name("ray"))
    head = subprocess.Popen(
        [ray_exe, "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
         f"--temp-dir={tmp}", "--node-ip-address=127.0.0.1", "--disable-usage-stats"],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if head.poll() is not None:
                raise RuntimeError(f"ray start --head exited with {head.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        cluster.connect(address)
        yield address
    finally:
        cluster.disconnect()
        procs = [head.pid, *_descendants(head.pid)]
        for pid in procs:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        head.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _random_policy(path: Path, seed: int = 0) -> Path:
    """An untrained but non-trivial Gaussian policy for the arm (actions vary with the observation)."""
    env = make_env(ARM)
    contract = env.unwrapped.contract
    env.close()
    torch.manual_seed(seed)
    pol = GaussianPolicy(contract, {"net": {"hidden": [32, 32], "act": "tanh", "layer_norm": False}})
    with torch.no_grad():
        for p in pol.net.parameters():
            p.mul_(3.0)
    pol.extra = {"env_id": ARM}
    return pol.save(path)


def test_ray_executor_matches_in_process_batch(ray_address):
    rng = np.random.default_rng(0)
    n = 4
    local = make_vec(ARM, n, dr="default")
    remote = make_vec(ARM, n, executor="ray", workers=2, dr="default")
    try:
        where = remote.executor.workers()
        assert len(where) == 2 and sum(w["num_envs"] for w in where) == n
        assert all(w["pid"] != os.getpid() for w in where) and len({w["pid"] for w in where}) == 2
        o_l, _ = local.reset(seed=3)
        o_r, _ = remote.reset(seed=3)
        np.testing.assert_array_equal(o_l, o_r)
        assert not np.array_equal(o_r[0], o_r[1])  # distinct per-env seeds, not one copy
        ended = 0
        for _ in range(55):  # ArmReach episodes are 50 steps: crosses the same-step autoreset
            a = rng.uniform(-1, 1, size=(n, local.single_action_space.shape[0])).astype(np.float32)
            o_l, r_l, te_l, tr_l, i_l = local.step(a)
            o_r, r_r, te_r, tr_r, i_r = remote.step(a)
            np.testing.assert_array_equal(o_l, o_r)
            np.testing.assert_array_equal(r_l, r_r)
            np.testing.assert_array_equal(te_l, te_r)
            np.testing.assert_array_equal(tr_l, tr_r)
            np.testing.assert_array_equal(i_l["_final_obs"], i_r["_final_obs"])
            for k in np.nonzero(i_r["_final_obs"])[0]:
                np.testing.assert_array_equal(i_l["final_obs"][k], i_r["final_obs"][k])
                ended += 1
        assert ended == n
        np.testing.assert_array_equal(local.expert_action(), remote.expert_action())
    finally:
        local.close()
        remote.close()


def test_ray_executor_matches_with_privileged_obs_across_episode_ends(ray_address):
    local = make_vec("tether/LeggedStand-v0", 3, dr="default")
    remote = make_vec("tether/LeggedStand-v0", 3, executor="ray", workers=2, dr="default")
    assert local.privileged_size > 0
    rng = np.random.default_rng(1)
    try:
        for x, y in zip(local.reset_batch(5), remote.reset_batch(5)):
            np.testing.assert_array_equal(x, y)
        finished = 0
        for _ in range(255):  # 250-step episodes: every env ends (or falls) and resets once
            a = rng.uniform(-0.3, 0.3, size=(3, 12)).astype(np.float32)
            s_l, s_r = local.step_batch(a), remote.step_batch(a)
            for name in ("obs", "reward", "terminated", "truncated", "final_obs", "privileged", "final_privileged",
                         "success", "episode_return", "episode_length"):
                np.testing.assert_array_equal(getattr(s_l, name), getattr(s_r, name), err_msg=name)
            assert s_l.finished() == s_r.finished()
            finished += len(s_r.finished())
        assert finished >= 3
    finally:
        local.close()
        remote.close()


def test_distributed_evaluation_matches_local(ray_address, tmp_path):
    ckpt = _random_policy(tmp_path / "ck")
    remote = evaluate_policy(load_policy(ckpt), ARM, episodes=5, seed=11, dr="default", executor="ray",
                             executor_options={"workers": 2})
    local = evaluate_policy(load_policy(ckpt), ARM, episodes=5, seed=11, dr="default")
    # the same episodes; the worlds step in two actors, the policy runs here on the same batch
    np.testing.assert_array_equal(remote.returns, local.returns)
    np.testing.assert_array_equal(remote.lengths, local.lengths)
    np.testing.assert_array_equal(remote.successes, local.successes)
    assert len(set(np.round(local.returns, 6))) == 5  # episodes differ, so an order mix-up would show


def test_distributed_evaluation_reports_bad_env_in_one_line(ray_address, tmp_path):
    ckpt = _random_policy(tmp_path / "ck")
    with pytest.raises(TetherError, match="policy contract does not match the env's") as err:
        evaluate_policy(load_policy(ckpt), "tether/QuadrotorHover-v0", episodes=2, executor="ray")
    assert "\n" not in str(err.value)


def test_cli_eval_and_train_with_ray(ray_address, tmp_path, capsys):
    from tether.cli import main

    ckpt = _random_policy(tmp_path / "ck")
    assert main(["eval", str(ckpt), "--episodes", "3", "--seed", "2", "--ray", ray_address, "--json"]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    local = evaluate_policy(load_policy(ckpt), ARM, episodes=3, seed=2)
    assert got["return_mean"] == pytest.approx(local.return_mean, rel=1e-6)
    assert got["success_rate"] == local.success_rate

    train = ["train", "tether/QuadrotorHover-v0", "--algo", "ppo", "--steps", "96", "--seed", "4",
             "--set", "num_envs=2", "--set", "rollout_steps=48", "--set", "epochs=1", "--eval-every", "0",
             "--no-progress"]
    assert main([*train, "--out", str(tmp_path / "ray"), "--ray", ray_address]) == 0
    assert main([*train, "--out", str(tmp_path / "local")]) == 0
    w_ray = load_checkpoint(tmp_path / "ray" / "checkpoint").tensors
    w_loc = load_checkpoint(tmp_path / "local" / "checkpoint").tensors
    assert set(w_ray) == set(w_loc)
    for k in w_loc:
        assert torch.equal(w_ray[k], w_loc[k]), k
    init = GaussianPolicy(load_checkpoint(tmp_path / "local" / "checkpoint").contract,
                          load_checkpoint(tmp_path / "local" / "checkpoint").config).state_dict()
    assert any(not torch.equal(init[k], w_loc[k]) for k in init if k.startswith("obs_norm"))  # it did collect


def test_bad_ray_address_is_one_line_error(ray_address):
    with pytest.raises(TetherError, match="no Ray cluster answers at '127.0.0.1:"):
        cluster._preflight(f"127.0.0.1:{_free_port()}")  # what connect() runs before ray.init
    with pytest.raises(TetherError, match="port 'x'"):
        cluster._preflight("10.0.0.1:x")
    with pytest.raises(TetherError, match="already connected"):
        cluster.connect(f"127.0.0.1:{_free_port()}")


def test_without_ray_flag_no_ray_import_or_process(tmp_path):
    ckpt = _random_policy(tmp_path / "ck")
    script = f"""
import json, os, sys
from tether.cli import main
assert main(["eval", {str(ckpt)!r}, "--episodes", "1", "--json"]) == 0
assert main(["train", "tether/QuadrotorHover-v0", "--algo", "ppo", "--steps", "32", "--set", "num_envs=2",
             "--set", "rollout_steps=16", "--set", "epochs=1", "--eval-every", "0", "--no-progress"]) == 0
kids = []
for e in os.listdir("/proc"):
    if e.isdigit():
        try:
            st = open(f"/proc/{{e}}/stat").read()
        except OSError:
            continue
        if int(st.rsplit(")", 1)[1].split()[1]) == os.getpid():
            kids.append(st.split("(", 1)[1].split(")")[0])
print(json.dumps({{"ray": "ray" in sys.modules, "scale": any(m.startswith("tether.scale") for m in sys.modules), "kids": kids}}))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, MUJOCO_GL="egl"))
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"ray": False, "scale": False, "kids": []}
