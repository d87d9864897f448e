"""Issue 11's attack table, rerun: a hostile tester against served robots over DDS on loopback.

For each attack, ``tether deploy`` from the checkout under test (``--tree``; default: this one) runs in its own
process against a served robot from *this* checkout (so both trees meet the same, honest robot model: the served
PX4 measures touchdown speeds) while a second participant attacks and a probe decodes every command on the wire.
Figures per attack: commands outside the robot's limits that reached the robot, whether deploy crashed (exit not
0 / 3, or a traceback), whether it noticed (non-zero exit with the reason, or the attack counted as dropped), and
for the e-stop under 50 % loss the touchdown speed of every run.

    python benchmarks/safety.py [--tree /path/to/checkout] [--runs 10]

Goals: out-of-limit commands 0, crashes 0, safe-stop touchdown < 1 m/s. Prints one table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests._deploy_support import (  # noqa: E402
    DeployProcess,
    Probe,
    ServedRobot,
    arm_under_spoofed_joint_states,
    background,
    bad_odometry,
    decode,
    deploy_loopback,
    deploy_until_running,
    fake_px4,
    hover_actions,
    hover_checkpoint,
    hover_contract,
    make_replay_checkpoint,
    robot_stats,
    wait_until,
)

RATES = "/fmu/in/vehicle_rates_setpoint"
BASE = 190  # DDS domains 190.. (one per attack)


def _crashed(dep: DeployProcess, rc: int | None) -> bool:
    return rc not in (0, 3, None) or any("Traceback" in line for line in dep.err)


def _row(attack: str, tried: int, out_of_limit: int, crash: bool, noticed: bool, detail: str) -> dict:
    return {"attack": attack, "tried": tried, "out_of_limit": out_of_limit, "crash": crash, "noticed": noticed,
            "detail": detail}


# ----------------------------------------------------------------------------------------------- attacks


def estop_under_loss(tree: str, tmp: Path, runs: int) -> dict:
    from tether.ros import types as T
    from tether.ros.cyclonedds_transport import DdsTransport
    from tether.ros.protocols.px4 import VEHICLE_CMD_NAV_TAKEOFF, vehicle_command
    from tether.hardware.safe_stop import THRUST_FLOOR
    from tether.sim.robots import quadrotor as cf

    dom = BASE
    srv = ServedRobot("quadrotor", dom, "--goal", "0", "0", "1", "--drop", "0.5", "--seed", "5")
    probe = Probe(dom)
    ckpt = hover_checkpoint(tmp / "hover")
    floor = THRUST_FLOOR * cf.MASS * cf.GRAVITY / (4 * cf.MAX_THRUST)
    impacts, cuts, crashes = [], 0, 0
    try:
        probe.listen(RATES, "px4_msgs/msg/VehicleRatesSetpoint")
        probe.listen("/tether/robot_stats", "std_msgs/msg/String", "default")
        estop = probe.t.publisher("/tether/estop", "std_msgs/msg/Bool", "latched")
        srv.wait_ready()
        wait_until(lambda: robot_stats(probe) is not None, 10.0)
        for _ in range(runs):
            def st() -> dict:
                return robot_stats(probe)["bridge"]

            if not (st()["armed"] and st()["altitude"] > 0.9 and st()["nav_state"] == 4):
                gcs = DdsTransport(domain_id=dom, config="loopback")
                pub = gcs.publisher("/fmu/in/vehicle_command", "px4_msgs/msg/VehicleCommand", "px4_in")
                wait_until(lambda: (pub.publish(vehicle_command(gcs.store, VEHICLE_CMD_NAV_TAKEOFF, time.time_ns() // 1000,
                                                           param7=1.0)), time.sleep(0.25))[1] is None
                      and st()["armed"] and st()["altitude"] > 0.9 and st()["nav_state"] == 4, 25.0, 0.0)
                gcs.close()
                time.sleep(0.5)
            seen = len(st()["impacts"])
            estop.publish(T.make(probe.t.store, "std_msgs/msg/Bool", data=False))
            dep = deploy_until_running(ckpt, "px4", dom, 40, "--robot-info-timeout", "0", "--ramp-in", "0.3",
                                       pythonpath=tree)
            time.sleep(1.5)
            t_press = time.monotonic()
            estop.publish(T.make(probe.t.store, "std_msgs/msg/Bool", data=True))
            wait_until(lambda: len(st()["impacts"]) > seen and st()["altitude"] < 0.05, 15.0, 0.1)
            time.sleep(0.5)
            dep.proc.send_signal(2)
            rc = dep.wait(30)
            crashes += _crashed(dep, rc)
            new = st()["impacts"][seen:]
            impacts.append(max(new) if new else float("nan"))
            # setpoints asking for less than the descent's floor after the e-stop (a motor cut if airborne; counted
            # whether or not the vehicle was still in the air, so a before/after comparison sees the same thing)
            cuts += sum(1 for t, m in decode(probe, RATES, "px4_msgs/msg/VehicleRatesSetpoint")
                        if t > t_press + 0.3 and -m.thrust_body[2] < floor - 1e-3)
    finally:
        probe.close()
        srv.stop()
    worst = float(np.nanmax(impacts)) if impacts else float("nan")
    row = _row("e-stop under 50 % loss (PX4 at 1 m)", runs, cuts, crashes > 0, worst < 1.0,
               f"touchdown m/s per run {[round(v, 2) for v in impacts]} (nan: none within 15 s); setpoints below "
               f"the descent thrust after the e-stop {cuts}")
    row["impact_max_m_s"] = worst
    return row


def wide_checkpoint(tree: str, tmp: Path) -> list[dict]:
    from tether.sim.robots import quadrotor as cf

    dom = BASE + 1
    srv = ServedRobot("quadrotor", dom, "--goal", "0", "0", "1")
    probe = Probe(dom)
    rows = []
    try:
        probe.listen(RATES, "px4_msgs/msg/VehicleRatesSetpoint")
        srv.wait_ready()
        wide = hover_contract(body_rates=(-100.0, 100.0))
        ckpt = make_replay_checkpoint(tmp / "wide", wide, hover_actions(wide, rates=(1.0, -1.0, 1.0)))
        t0 = time.monotonic()
        dep = deploy_loopback(ckpt, "px4", dom, 2, "--robot-info-timeout", "0", pythonpath=tree)
        rc = dep.wait(90)
        got = [m for t, m in decode(probe, RATES, "px4_msgs/msg/VehicleRatesSetpoint") if t > t0]
        over = sum(1 for m in got if np.any(np.abs([m.roll, m.pitch, m.yaw]) > cf.MAX_BODY_RATE + 1e-4))
        rows.append(_row("checkpoint with +-100 rad/s, no robot_info", len(got), over, _crashed(dep, rc), over == 0,
                         f"max |rate| {np.abs([[m.roll, m.pitch, m.yaw] for m in got]).max(axis=0).round(1).tolist()}"
                         if got else "nothing sent"))
        ckpt = hover_checkpoint(tmp / "hover")
        t0 = time.monotonic()
        dep = deploy_loopback(ckpt, "px4", dom, 2, "--param", "max_collective_thrust_n=0.05", pythonpath=tree)
        rc = dep.wait(90)
        got = [m for t, m in decode(probe, RATES, "px4_msgs/msg/VehicleRatesSetpoint") if t > t0]
        hover_norm = cf.MASS * cf.GRAVITY / (4 * cf.MAX_THRUST)
        rescaled = sum(1 for m in got if -m.thrust_body[2] > 1.5 * hover_norm)
        rows.append(_row("--param max_collective_thrust_n=0.05 (rescale after the guard)", len(got) or 1, rescaled,
                         _crashed(dep, rc) and rc != 2, rc == 2 and not got,
                         f"exit {rc}; {len(got)} setpoints, {rescaled} above 1.5x hover thrust"))
    finally:
        probe.close()
        srv.stop()
    return rows


def spoofed_robot_info(tree: str, tmp: Path) -> dict:
    from tether.sim.robots import quadrotor as cf

    dom = BASE + 2
    wide = hover_contract(body_rates=(-100.0, 100.0))
    ckpt = make_replay_checkpoint(tmp / "wide2", wide, hover_actions(wide, rates=(-1.0, 1.0, -1.0)))
    probe = Probe(dom)
    probe.listen(RATES, "px4_msgs/msg/VehicleRatesSetpoint")
    stop = threading.Event()
    background(stop, 0.02, fake_px4(probe.t, wide))
    try:
        dep = deploy_loopback(ckpt, "px4", dom, 2, pythonpath=tree)
        rc = dep.wait(90)
    finally:
        stop.set()
        probe.close()
    got = [m for _, m in decode(probe, RATES, "px4_msgs/msg/VehicleRatesSetpoint")]
    over = sum(1 for m in got if np.any(np.abs([m.roll, m.pitch, m.yaw]) > cf.MAX_BODY_RATE + 1e-4))
    return _row("spoofed robot_info agreeing with a +-100 rad/s checkpoint", len(got), over, _crashed(dep, rc),
                over == 0, f"exit {rc}")


def arm_spoofed_joint_states(tree: str, tmp: Path) -> dict:
    from tether.sim.robots import panda as P

    q, contract, dep, rc = arm_under_spoofed_joint_states(tmp, BASE + 3, pythonpath=tree)
    limit = P.VELOCITY_LIMIT / contract.rate_hz + 1e-9
    steps = np.abs(np.diff(q, axis=0)) if len(q) > 1 else np.zeros((0, 7))
    over = int(np.any(steps > limit, axis=1).sum())
    fastest = float((steps * contract.rate_hz).max()) if len(steps) else 0.0
    return _row("arm ee_delta_pose under spoofed /joint_states", len(q), over, _crashed(dep, rc), over == 0,
                f"fastest joint {fastest:.1f} rad/s (limit 2.2-2.6)")


def bad_state(tree: str, tmp: Path) -> dict:
    dom = BASE + 4
    ckpt = hover_checkpoint(tmp / "hover3")
    srv = ServedRobot("quadrotor", dom, "--goal", "0", "0", "1")
    probe = Probe(dom)
    stop = threading.Event()
    bad = bad_odometry(probe.t)
    sent = [0]
    try:
        srv.wait_ready()
        dep = deploy_until_running(ckpt, "px4", dom, 4, "--stats-json", str(tmp / "bad.json"), pythonpath=tree)
        background(stop, 0.02, lambda k: (bad(k), sent.__setitem__(0, k + 1)))
        rc = dep.wait(90)
    finally:
        stop.set()
        probe.close()
        srv.stop()
    dropped = ""
    if (tmp / "bad.json").exists():
        dropped = json.dumps(json.loads((tmp / "bad.json").read_text()).get("state_rejected", {}))[:200]
    return _row("bad odometry (NaN/zero q, 1e9 m/s, stamps 2^63/1, byte-swapped)", sent[0], 0,
                rc != 0, rc == 0, f"exit {rc}; dropped {dropped or '-'}; {dep.err[-1] if dep.err else ''}"[:240])


def px4_restart(tree: str, tmp: Path) -> dict:
    dom = BASE + 5
    ckpt = hover_checkpoint(tmp / "hover4")
    srv = ServedRobot("quadrotor", dom, "--goal", "0", "0", "1")
    restarted = None
    try:
        srv.wait_ready()
        dep = deploy_until_running(ckpt, "px4", dom, 25, pythonpath=tree)
        time.sleep(2.0)
        srv.kill()
        restarted = ServedRobot("quadrotor", dom, "--goal", "0", "0", "1")
        rc = dep.wait(60)
        rstats = restarted.stop()
    finally:
        if restarted is not None:
            restarted.stop()
        srv.stop()
    rejected = (rstats or {}).get("bridge", {}).get("rejected", {}).get("not_offboard", 0)
    return _row("PX4 autopilot restart mid-run", 1, 0, _crashed(dep, rc), rc == 3,
                f"exit {rc}; setpoints the restarted vehicle rejected: {rejected}; "
                f"{dep.err[-1] if dep.err else ''}"[:240])


def intruder(tree: str, tmp: Path) -> list[dict]:
    from tether.ros import types as T
    from tether.ros.cyclonedds_transport import DdsTransport
    from tether.ros.protocols.px4 import FORCE_DISARM_MAGIC, rates_setpoint, vehicle_command

    dom = BASE + 6
    ckpt = hover_checkpoint(tmp / "hover5")
    srv = ServedRobot("quadrotor", dom, "--goal", "0", "0", "1")
    rows = []
    try:
        srv.wait_ready()
        dep = deploy_until_running(ckpt, "px4", dom, 12, pythonpath=tree)
        out = subprocess.run(["ss", "-uapnH"], capture_output=True, text=True).stdout
        wild = [ln.split()[3] for ln in out.splitlines() if f"pid={dep.proc.pid}," in ln
                and not (ln.split()[3].startswith("127.0.0.1:") or "%lo:" in ln.split()[3])]
        rows.append(_row("--loopback: UDP sockets listening beyond loopback", 1, len(wild), False, not wild,
                         f"{wild or 'none'}"))
        time.sleep(1.5)
        bad = DdsTransport(domain_id=dom, config="loopback", enclave="/intruder")
        rates = bad.publisher(RATES, "px4_msgs/msg/VehicleRatesSetpoint", "px4_in")
        cmd = bad.publisher("/fmu/in/vehicle_command", "px4_msgs/msg/VehicleCommand", "px4_in")
        g = bad.publisher("/tether/goal", "geometry_msgs/msg/PointStamped")
        P = bad.store.types["geometry_msgs/msg/Point"]
        for k in range(150):
            rates.publish(rates_setpoint(bad.store, 0.5, np.full(3, 40.0), 0.6, time.time_ns() // 1000))
            g.publish(T.make(bad.store, "geometry_msgs/msg/PointStamped", point=P(x=1000.0, y=0.0, z=1.0)))
            if k == 10:
                cmd.publish(vehicle_command(bad.store, 400, time.time_ns() // 1000, 0.0, FORCE_DISARM_MAGIC))
            time.sleep(0.01)
        rc = dep.wait(60)
        bad.close()
        rows.append(_row("intruder: 150 setpoints at 40 rad/s + force-disarm + goal x=1000", 152, 0,
                         _crashed(dep, rc), rc == 3, f"exit {rc}; {dep.err[-1] if dep.err else ''}"[:240]))
    finally:
        srv.stop()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", default=str(REPO), help="checkout whose `tether deploy` is attacked")
    ap.add_argument("--runs", type=int, default=10, help="e-stop runs under 50 %% loss")
    args = ap.parse_args()
    tree = str(Path(args.tree).resolve())
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for attack in (lambda: [estop_under_loss(tree, tmp, args.runs)], lambda: wide_checkpoint(tree, tmp),
                       lambda: [spoofed_robot_info(tree, tmp)], lambda: [arm_spoofed_joint_states(tree, tmp)],
                       lambda: [bad_state(tree, tmp)], lambda: [px4_restart(tree, tmp)], lambda: intruder(tree, tmp)):
            try:
                rows += attack()
            except Exception as exc:  # an attack the tree could not even be run against is reported, not hidden
                rows.append(_row(f"(harness error) {type(exc).__name__}", 0, 0, True, False, str(exc)[:200]))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\ntree: {tree}   load average: {os.getloadavg()}")
    print(f"| attack | tried | out-of-limit commands reaching the robot | deploy crashed | noticed / refused | detail |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['attack']} | {r['tried']} | {r['out_of_limit']} | {'yes' if r['crash'] else 'no'} | "
              f"{'yes' if r['noticed'] else 'NO'} | {r['detail']} |")
    total = {"attacks": len(rows), "out_of_limit": sum(r["out_of_limit"] for r in rows),
             "crashes": sum(bool(r["crash"]) for r in rows), "unnoticed": sum(not r["noticed"] for r in rows),
             "impact_max_m_s": next((r.get("impact_max_m_s") for r in rows if "impact_max_m_s" in r), None)}
    print("summary " + json.dumps(total))
    return 0


if __name__ == "__main__":
    sys.exit(main())
