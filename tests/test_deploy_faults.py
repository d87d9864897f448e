"""Deploy under faults, over real DDS on loopback with the served robot and the deploy in separate processes.

One deploy of a hostile policy (NaN, +/-1e9, inf rows between ordinary actions) against a legged robot with 20 %
message loss, 5 ms latency and 30 ms jitter (delayed and reordered messages) each way; the robot server is
killed and restarted mid-run, then the latched e-stop is pressed, then the deploy itself is killed with
SIGKILL. Every command on the wire stays inside the limits and carries a valid CRC, the guard holds/damps
within the stale-state timeout, resumes on the restarted robot, latches the e-stop, and the bag left by the
killed recorder reads back. Contract mismatches are refused with nothing sent.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time

import numpy as np
import pytest

from tests._deploy_support import (
    PY,
    REPO,
    Probe,
    ServedRobot,
    env_contract,
    make_gaussian_checkpoint,
    make_replay_checkpoint,
)

DOMAIN = 40

FAULTS = ("--drop", "0.2", "--latency", "5", "--jitter", "30", "--noise", "0.005", "--seed", "3")
ENV = "tether/LeggedStand-v0"


@pytest.fixture(scope="module")
def served():
    srv = ServedRobot("legged", DOMAIN, *FAULTS)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def probe():
    p = Probe(DOMAIN)
    p.listen("/lowcmd", "unitree_go/msg/LowCmd")
    p.listen("/lowstate", "unitree_go/msg/LowState")
    p.listen("/tether/robot_stats", "std_msgs/msg/String", "default")
    yield p
    p.close()


def _robot_stats(probe: Probe) -> dict:
    from tether.ros import types as T

    raw = probe.raw["/tether/robot_stats"][-1][1]
    return json.loads(T.deserialize(probe.t.store, raw, "std_msgs/msg/String").data)


@pytest.mark.parametrize("case", ["wrong_robot", "wrong_rate"])
def test_contract_mismatch_refused_nothing_sent(case, served, probe, tmp_path, capsys):
    from tether.cli import main
    from tether.policies.gaussian import GaussianPolicy, default_gaussian_config

    if case == "wrong_robot":
        ckpt = make_gaussian_checkpoint(tmp_path / "arm", "tether/ArmReach-v0")
        expect = "unitree adapter cannot serve contract arm/reach"
    else:  # right robot and fields, trained at another rate: caught against the robot's own contract
        c = dataclasses.replace(env_contract(ENV), rate_hz=25.0)
        ckpt = tmp_path / "slow"
        GaussianPolicy(c, default_gaussian_config(c.obs_size, c.action_size)).save(ckpt)
        expect = "rate 25.0 Hz != 50.0 Hz"
    served.wait_ready()
    before = probe.count("/lowcmd")
    rc = main(["deploy", str(ckpt), "--adapter", "unitree", "--loopback", "--domain-id", str(DOMAIN),
               "--duration", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("tether: error:") and expect in err[0], err
    deadline = time.monotonic() + 0.6  # a stats message published after the refused deploy
    n_stats = probe.count("/tether/robot_stats")
    while probe.count("/tether/robot_stats") <= n_stats + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert probe.count("/lowcmd") == before == 0
    assert "/lowcmd" not in _robot_stats(probe)["bridge"]["received"]


def test_faults_never_leave_limits_and_bag_survives_sigkill(served, probe, tmp_path):
    from tether.ros.protocols.unitree import motor_indices
    from tether.ros.protocols.unitree_crc import lowcmd_crc
    from tether.ros import types as T
    from tether.ros.recorder import read_bag

    contract = env_contract(ENV)
    rng = np.random.default_rng(0)
    acts = rng.uniform(-0.5, 0.5, (50, contract.action_size))
    acts[10:14] = np.nan
    acts[15:20] = 1e9
    acts[20:25] = -1e9
    acts[25:28, ::2] = np.inf
    ckpt = make_replay_checkpoint(tmp_path / "hostile", contract, acts)
    bag = tmp_path / "faults.mcap"
    served.wait_ready()
    proc = subprocess.Popen([PY, "-m", "tether.cli", "deploy", str(ckpt), "--adapter", "unitree", "--loopback",
                             "--domain-id", str(DOMAIN), "--record", str(bag)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    restarted = None
    try:
        assert proc.stdout is not None
        out = []
        for line in proc.stdout:
            out.append(line)
            if "tether deploy: running" in line:
                break
        assert proc.poll() is None, "".join(out)
        time.sleep(2.5)
        served.kill()  # the robot dies mid-run
        t_kill = time.time_ns()
        time.sleep(1.0)
        restarted = ServedRobot("legged", DOMAIN, *FAULTS)
        restarted.wait_ready()
        t_restart = time.time_ns()
        time.sleep(2.0)
        estop = probe.t.publisher("/tether/estop", "std_msgs/msg/Bool", "latched")
        estop.publish(T.make(probe.t.store, "std_msgs/msg/Bool", data=True))
        t_estop = time.time_ns()
        time.sleep(1.0)
        proc.kill()  # SIGKILL: no clean close of the bag
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        srv_stats = restarted.stop() if restarted is not None else None

    # every command on the wire: valid CRC, finite, inside the limits (kp > 0) or passive damping (kp = 0)
    f = contract.field("joint_pos_target")
    idx = motor_indices(f.components)
    low, high = np.asarray(f.low), np.asarray(f.high)
    n_damp = 0
    assert probe.count("/lowcmd") > 100
    for _, raw in probe.raw["/lowcmd"]:
        m = T.deserialize(probe.t.store, raw, "unitree_go/msg/LowCmd")
        assert int(m.crc) == lowcmd_crc(m)
        kp = np.array([m.motor_cmd[i].kp for i in idx])
        q = np.array([m.motor_cmd[i].q for i in idx])
        if np.all(kp == 0):
            n_damp += 1
            assert all(m.motor_cmd[i].kd > 0 for i in idx)
        else:
            assert np.all(np.isfinite(q)) and np.all(q >= low - 1e-5) and np.all(q <= high + 1e-5)
    assert n_damp > 0
    assert srv_stats is not None and srv_stats["bridge"]["received"].get("/lowcmd", 0) > 0
    assert "bad_crc" not in srv_stats["bridge"]["rejected"]

    # the bag left by SIGKILL reads back
    msgs = list(read_bag(bag))
    assert len(msgs) > 300
    ticks = [(m.log_ns, m.msg.data) for m in msgs if m.topic == "/tether/guard"]
    actions = np.array([m.msg.data for m in msgs if m.topic == "/tether/action"])
    policy = np.array([m.msg.data for m in msgs if m.topic == "/tether/policy_action"])
    states = np.array([m.log_ns for m in msgs if m.topic == "/lowstate"])
    assert (~np.isfinite(policy)).any() and (np.abs(policy[np.isfinite(policy)]) > 1e6).any()
    assert np.all(np.isfinite(actions)) and np.all(actions >= low - 1e-9) and np.all(actions <= high + 1e-9)
    reasons = [r for _, r in ticks]
    assert "nan_hold" in reasons
    t = np.array([ts for ts, _ in ticks])
    assert np.diff(t).max() < 1e9  # the loop never blocked on the dead robot, drops or the restart

    # robot killed: damped within the stale timeout (3 periods), for as long as no state arrives
    settle = t_kill + int(0.2e9)  # anything in flight at the kill has landed by then
    t_last = states[states < settle].max()
    assert (states >= settle).any(), "no state from the restarted robot"
    t_back = states[states >= settle].min()
    assert t_back > t_restart - int(10e9)
    gap = [(ts, r) for ts, r in ticks if t_last < ts < t_back]
    first_stale = next(i for i, (_, r) in enumerate(gap) if r == "stale_damp")
    assert first_stale <= 4  # at most stale_periods (+1 for the tick in flight) fresh-looking ticks
    assert all(r == "stale_damp" for _, r in gap[first_stale:])
    assert len(gap) - first_stale > 10
    # restarted robot: the policy is back in control (through nan holds / ramp) before the e-stop
    back = [r for ts, r in ticks if t_back < ts < t_estop]
    assert {"policy", "rate_limit", "ramp"} & set(back)
    # e-stop: latched from its first tick to the end
    after = [r for ts, r in ticks if ts > t_estop]
    i = after.index("estop")
    assert i <= 10 and all(r == "estop" for r in after[i:]) and len(after) - i > 10
