"""``tether robot serve`` and ``tether deploy``: the two ends of a deployment, each its own process.

``tether robot serve`` is the robot (a simulator behind the real robot's ROS 2 topics); ``tether deploy`` is
the controller (checkpoint -> adapter -> guard -> loop, recorded to MCAP). Heavy imports stay in handlers.
"""

from __future__ import annotations

import sys
from typing import Any


def _print(text: str) -> None:
    print(text, flush=True)


ROBOTS = ("arm", "quadrotor", "legged")
BACKENDS = ("mujoco", "pybullet")


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
                   help="state publish / physics chunk rate (default: the robot's control rate)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: env or 0)")
    p.add_argument("--loopback", action="store_true", help="DDS on 127.0.0.1 only (tests, one machine)")
    p.add_argument("--distro", default="humble", choices=("humble", "jazzy"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stats-out", default=None, metavar="FILE", help="write final stats JSON here")



def register(subparsers: Any) -> None:
    robot = subparsers.add_parser("robot", help="served sim robots that speak a real robot's ROS 2 topics")
    rsub = robot.add_subparsers(dest="robot_command", metavar="ACTION", required=True)
    p = rsub.add_parser("serve", help="run a simulated arm / PX4 quadrotor / Unitree legged robot on ROS 2 topics")
    add_serve_arguments(p)
    p.set_defaults(func=_serve)

    adapters = ("arm-ros2-control", "px4", "unitree", "joint-level")
    p = subparsers.add_parser("deploy", help="run a checkpoint on a robot over ROS 2 (guarded, recorded)")
    p.add_argument("checkpoint", help="checkpoint directory (weights.safetensors + checkpoint.json)")
    p.add_argument("--adapter", required=True, choices=adapters, help="how to talk to the robot")
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
                   help="on stale state (default: damp for unitree, hold otherwise)")
    p.add_argument("--ramp-in", type=float, default=0.5, metavar="S", help="blend from the measured state over S s")
    p.add_argument("--robot-info-timeout", type=float, default=1.5, metavar="S",
                   help="wait this long for /tether/robot_info to check contracts against (0: skip)")
    p.add_argument("--connect-timeout", type=float, default=10.0, metavar="S")
    p.add_argument("--estop-topic", default="/tether/estop", help="latched std_msgs/Bool e-stop topic")
    p.add_argument("--episode", type=int, default=0, help="episode index written to /tether/episode")
    p.add_argument("--stats-json", default=None, metavar="FILE", help="write loop statistics as JSON")
    p.add_argument("--transport", default="auto", choices=("auto", "cyclonedds", "rclpy"),
                   help="auto: rclpy when a ROS 2 install is sourced, else Cyclone DDS")
    p.set_defaults(func=_deploy)


def _serve(args: Any) -> int:
    from tether.ros.robot_server import serve

    return serve(args)


def _deploy(args: Any) -> int:
    from tether.ros.deploy import run_cli

    return run_cli(args)


if __name__ == "__main__":  # pragma: no cover
    from tether.cli import main

    sys.exit(main(["robot", *sys.argv[1:]]))
