"""``tether robot serve|limits``, ``tether deploy`` and ``tether security``: the CLI around the ROS side.

``tether robot serve`` is the robot (a simulator behind the real robot's ROS 2 topics); ``tether deploy`` is
the controller (checkpoint -> adapter -> guard -> loop, recorded to MCAP); ``tether robot limits`` writes a
robot model's shipped limits file for the operator to edit; ``tether security`` makes SROS2-compatible
keystores. Every number and path is checked here before any work starts (one line, exit 2); heavy imports
stay in the handlers.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from tether.data import topics
from tether.errors import TetherError
from tether.ros.protocols import ADAPTERS


def _print(text: str) -> None:
    print(text, flush=True)


ROBOTS = ("arm", "quadrotor", "legged")
BACKENDS = ("mujoco", "pybullet")
ADAPTER_NAMES = tuple(ADAPTERS)
EXIT_LOST_CONTROL = 3


# ------------------------------------------------------------------------------------------ validation


def _number(name: str, v: float | None, lo: float, hi: float = math.inf, *, lo_open: bool = False) -> None:
    if v is None:
        return
    if not math.isfinite(v) or v < lo or (lo_open and v == lo) or v > hi:
        rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
        raise TetherError(f"{name} is {v}; expected a finite number in {rng}")


def _domain(v: int | None) -> None:
    if v is not None and not 0 <= v <= 232:
        raise TetherError(f"--domain-id {v}; expected an integer in 0..232")


def _new_output(name: str, path: str | None, *, directory_ok: bool = False) -> None:
    """An output path whose parent is an existing writable directory and which does not exist yet."""
    if path is None:
        return
    p = Path(path)
    if p.exists() and not directory_ok:
        raise TetherError(f"{name} {path!r} already exists; expected a new path")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise TetherError(f"{name} {path!r}: directory {str(parent)!r} does not exist; expected an existing directory")
    if not os.access(parent, os.W_OK):
        raise TetherError(f"{name} {path!r}: directory {str(parent)!r} is not writable; expected a writable one")


def _security_args(args: Any) -> None:
    """Enclave name, keystore files and whether this Cyclone build can enforce them: before any work."""
    from tether.ros.security import check_enclave, require_security

    if args.enclave != "/":
        check_enclave(args.enclave)
    if args.keystore is not None:
        if not Path(args.keystore).is_dir():
            raise TetherError(f"--keystore {args.keystore!r} is not a directory; expected a keystore made by "
                              "`tether security create-keystore`")
        require_security(args.keystore, args.enclave)


def _input_file(name: str, path: str | None) -> None:
    if path is None:
        return
    p = Path(path)
    if p.is_symlink() or not p.is_file():
        raise TetherError(f"{name} {path!r} is not a regular file; expected an existing (non-symlink) file")


# ----------------------------------------------------------------------------------------------- parsers


def add_serve_arguments(p: Any) -> None:
    p.add_argument("--robot", required=True, choices=ROBOTS, help="robot kind: arm (ros2_control), quadrotor "
                   "(PX4 uXRCE-DDS), legged (Unitree LowState/LowCmd)")
    p.add_argument("--interface", default=None, choices=("ros2-control", "px4", "unitree"),
                   help="which real stack to speak (default: arm ros2-control, quadrotor px4, legged unitree; "
                   "legged also ros2-control: /joint_states + /imu/data)")
    p.add_argument("--backend", default="mujoco", choices=BACKENDS)
    p.add_argument("--params", default=None, help="JSON: DR terms and parameter scales the policy never saw "
                   "(keys: dr, scale, goal, command, seed, env_id, bridge) or a bare list of DR terms")
    p.add_argument("--goal", type=float, nargs=3, default=None, metavar=("X", "Y", "Z"),
                   help="arm target / quadrotor set point (published on /tether/goal); legged: vx vy yaw_rate")
    p.add_argument("--latency", type=float, default=0.0, metavar="MS", help="one-way delay per direction")
    p.add_argument("--jitter", type=float, default=0.0, metavar="MS",
                   help="extra uniform random delay per message (reorders messages when > the publish period)")
    p.add_argument("--drop", type=float, default=0.0, metavar="P", help="message loss probability per direction")
    p.add_argument("--noise", type=float, default=0.0, metavar="STD", help="Gaussian noise on published sensors")
    p.add_argument("--rate-factor", type=float, default=1.0, metavar="F", help="1 = real time, >1 = faster")
    p.add_argument("--state-rate", type=float, default=None, metavar="HZ",
                   help="state publish / command uptake rate (default: the real stack's where the sim allows: "
                   "Unitree 500 Hz; ros2_control 100 Hz; PX4 the robot's control rate)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: env or 0)")
    p.add_argument("--loopback", action="store_true", help="DDS on 127.0.0.1 only (tests, one machine)")
    p.add_argument("--distro", default="humble", choices=("humble", "jazzy"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stats-out", default=None, metavar="FILE", help="write final stats JSON here")
    _add_security_arguments(p)


def _add_security_arguments(p: Any) -> None:
    p.add_argument("--enclave", default="/", metavar="ENCLAVE",
                   help="this participant's ROS enclave (its identity; authenticated with --keystore)")
    p.add_argument("--keystore", default=None, metavar="DIR",
                   help="SROS2 keystore (tether security): run with DDS Security; needs a Cyclone DDS built with "
                   "security (the PyPI wheel has none, and then this refuses to start)")


def register(subparsers: Any) -> None:
    robot = subparsers.add_parser("robot", help="served sim robots that speak a real robot's ROS 2 topics")
    rsub = robot.add_subparsers(dest="robot_command", metavar="ACTION", required=True)
    p = rsub.add_parser("serve", help="run a simulated arm / PX4 quadrotor / Unitree legged robot on ROS 2 topics")
    add_serve_arguments(p)
    p.set_defaults(func=_serve)
    p = rsub.add_parser("limits", help="write a robot model's shipped limits file (edit it for your robot)")
    p.add_argument("--adapter", required=True, choices=ADAPTER_NAMES, help="the adapter (robot model) to describe")
    p.add_argument("--out", default=None, metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=_limits)

    p = subparsers.add_parser("deploy", help="run a checkpoint on a robot over ROS 2 (guarded, recorded)")
    p.add_argument("checkpoint", help="checkpoint directory (weights.safetensors + checkpoint.json)")
    p.add_argument("--adapter", required=True, choices=ADAPTER_NAMES, help="how to talk to the robot")
    p.add_argument("--robot-limits", default=None, metavar="FILE",
                   help="the robot's limits (JSON, see `tether robot limits`); default: the adapter's model")
    p.add_argument("--rate", type=float, default=None, metavar="HZ", help="loop rate (default and only "
                   "accepted value: the policy's rate)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S s (default: Ctrl-C)")
    p.add_argument("--record", default=None, metavar="OUT.mcap", help="record a rosbag2 MCAP bag (directory)")
    p.add_argument("--param", action="append", default=None, metavar="KEY=VALUE",
                   help="adapter option, VALUE as JSON (e.g. controller=my_ctrl, goal=[0.5,0,0.3], kp=25)")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: env or 0)")
    p.add_argument("--loopback", action="store_true", help="DDS on 127.0.0.1 only")
    p.add_argument("--distro", default="humble", choices=("humble", "jazzy"))
    p.add_argument("--stale-periods", type=float, default=3.0, help="state older than this many periods is stale")
    p.add_argument("--stale-action", default=None, choices=("hold", "damp"),
                   help="on stale state (default: the adapter's: damp for unitree and px4, hold otherwise)")
    p.add_argument("--ramp-in", type=float, default=None, metavar="S",
                   help="blend from the measured state over S s (default 0.5; none for an arm's ee_delta_pose policy, "
                        "whose every command is a bounded step from the measured state)")
    p.add_argument("--robot-info-timeout", type=float, default=1.5, metavar="S",
                   help="wait this long for /tether/robot_info to check contracts against (0: skip)")
    p.add_argument("--connect-timeout", type=float, default=10.0, metavar="S")
    p.add_argument("--lost-control", type=float, default=3.0, metavar="S",
                   help="stop (exit 3) when the robot has not followed for S s while its state kept arriving")
    p.add_argument("--estop-topic", default=topics.ESTOP_TOPIC, help="latched std_msgs/Bool e-stop topic")
    p.add_argument("--goal-publisher", action="append", default=None, metavar="ENCLAVE",
                   help="accept /tether/goal only from this ROS enclave (repeatable; default: the first writer)")
    p.add_argument("--estop-publisher", action="append", default=None, metavar="ENCLAVE",
                   help="accept the e-stop only from this ROS enclave (repeatable; default: anyone may stop)")
    p.add_argument("--episode", type=int, default=0, help="episode index written to /tether/episode")
    p.add_argument("--explore", type=float, default=0.0, metavar="SCALE",
                   help="add bounded exploration (band-limited noise, SCALE x each action's half-range, clipped "
                        "to the limits and guarded) for identification; default 0: none")
    p.add_argument("--stats-json", default=None, metavar="FILE", help="write loop statistics as JSON")
    p.add_argument("--transport", default="auto", choices=("auto", "cyclonedds", "rclpy"),
                   help="auto: rclpy when a ROS 2 install is sourced, else Cyclone DDS")
    _add_security_arguments(p)
    p.set_defaults(func=_deploy)


# ---------------------------------------------------------------------------------------------- handlers


def _check_serve_args(args: Any) -> None:
    for name, v, lo, hi in (("--latency", args.latency, 0.0, 60e3), ("--jitter", args.jitter, 0.0, 60e3),
                            ("--noise", args.noise, 0.0, 1e3), ("--rate-factor", args.rate_factor, 1.0, 1e3)):
        _number(name, v, lo, hi)
    _number("--drop", args.drop, 0.0, 0.999)
    _number("--state-rate", args.state_rate, 0.0, 10e3, lo_open=True)
    _number("--duration", args.duration, 0.0, lo_open=True)
    if args.goal is not None:
        for v in args.goal:
            _number("--goal", v, -1e3, 1e3)
    _domain(args.domain_id)
    if not 0 <= args.seed < 2**63:
        raise TetherError(f"--seed {args.seed}; expected an integer in 0..2^63-1")
    _input_file("--params", args.params)
    _new_output("--stats-out", args.stats_out)
    _security_args(args)


def _serve(args: Any) -> int:
    """``tether robot serve``: build the served robot, run until SIGTERM/SIGINT or --duration."""
    import signal

    _check_serve_args(args)
    from tether.ros.cyclonedds_transport import DdsTransport
    from tether.ros.robot_server import Faults, RobotServer, load_params

    faults = Faults(latency_s=args.latency / 1e3, jitter_s=args.jitter / 1e3, drop=args.drop,
                    noise_std=args.noise, seed=args.seed)
    params = load_params(args.params, args.robot)
    if args.goal is not None:
        params["goal" if args.robot != "legged" else "command"] = list(args.goal)
    params.setdefault("seed", args.seed)
    transport = DdsTransport(domain_id=args.domain_id, distro=args.distro,
                             config="loopback" if args.loopback else None, enclave=args.enclave,
                             keystore=args.keystore)
    try:
        server = RobotServer(args.robot, transport, backend=args.backend, params=params, faults=faults,
                             rate_factor=args.rate_factor, state_rate_hz=args.state_rate, interface=args.interface)
    except BaseException:
        transport.close()
        raise

    def _signal(_sig: int, _frame: Any) -> None:
        server.stop()

    signal.signal(signal.SIGTERM, _signal)
    signal.signal(signal.SIGINT, _signal)

    def ready() -> None:
        _print(f"tether robot serve: ready robot={args.robot} interface={server.interface} backend={args.backend} "
               f"domain={transport.domain_id} "
               f"state_rate={server.state_rate_hz:g}Hz topics_out={[t for t, _, _ in server.bridge.outputs()]} "
               f"topics_in={[t for t, _, _ in server.bridge.inputs()]}")

    try:
        stats = server.run(args.duration, ready=ready)
    finally:
        server.close()
        transport.close()
    out = stats.as_dict()
    _print("tether robot serve: stats " + json.dumps(out))
    if args.stats_out:
        Path(args.stats_out).write_text(json.dumps(out, indent=1))
    return 0


def _limits(args: Any) -> int:
    from tether.ros.protocols import default_limits

    _new_output("--out", args.out)
    text = default_limits(args.adapter).to_json() + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _deploy(args: Any) -> int:
    """``tether deploy``: exit 0 when the run ended as asked, 3 when it lost control or met a foreign writer."""
    from tether.ros.deploy import DeployConfig, deploy, parse_params

    _domain(args.domain_id)
    _security_args(args)
    _input_file("--robot-limits", args.robot_limits)
    _new_output("--record", args.record)
    _new_output("--stats-json", args.stats_json)
    for name, values in (("--goal-publisher", args.goal_publisher), ("--estop-publisher", args.estop_publisher)):
        for v in values or []:
            if not v or len(v) > 256 or not v.startswith("/"):
                raise TetherError(f"{name} {v!r}; expected a ROS enclave name like /tether/operator")
    cfg = DeployConfig(
        checkpoint=args.checkpoint, adapter=args.adapter, rate_hz=args.rate, duration_s=args.duration,
        record=args.record, domain_id=args.domain_id, loopback=args.loopback, distro=args.distro,
        params=parse_params(args.param), stale_periods=args.stale_periods, stale_action=args.stale_action,
        ramp_in_s=args.ramp_in, robot_info_timeout_s=args.robot_info_timeout, connect_timeout_s=args.connect_timeout,
        estop_topic=args.estop_topic, episode=args.episode, transport=args.transport,
        robot_limits=args.robot_limits, goal_publishers=args.goal_publisher, estop_publishers=args.estop_publisher,
        lost_control_s=args.lost_control, enclave=args.enclave, keystore=args.keystore, explore=args.explore,
        explore_seed=args.episode,
    )
    result = deploy(cfg, log=_print)
    s = result.stats
    d = result.as_dict()
    _print(f"tether deploy: stopped ({s.stop_reason}) after {s.ticks} ticks in {s.duration_s:.2f} s: "
           f"rate {d['achieved_rate_hz']:.1f}/{s.rate_hz:g} Hz, latency p50 {d['latency_p50_ms']:.2f} ms "
           f"p99 {d['latency_p99_ms']:.2f} ms, deadline misses {s.misses} ({100 * s.miss_rate:.2f} %), "
           f"guard interventions {json.dumps({k: v for k, v in s.guard.items() if v and k != 'ticks'})}"
           + (f", state dropped {json.dumps(result.state_rejected)}" if result.state_rejected else "")
           + (f", {result.recorded} messages to {result.bag}" if result.bag else ""))
    if args.stats_json:
        Path(args.stats_json).write_text(json.dumps(d, indent=1, default=float))
    if result.failure:
        print(f"tether deploy: error: {result.failure}", file=sys.stderr, flush=True)
        return EXIT_LOST_CONTROL
    return 0


if __name__ == "__main__":  # pragma: no cover
    from tether.cli import main

    sys.exit(main(["robot", *sys.argv[1:]]))
