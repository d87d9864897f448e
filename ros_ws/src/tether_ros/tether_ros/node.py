# Copyright 2026 Tether maintainers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
The tether_ros deploy node: ROS parameters in, ``tether.ros.deploy.deploy`` over rclpy out.

UNTESTED HERE: no ROS 2 install exists in Tether's development environment, so this node has
never been run (its package metadata, Python syntax and parameter handling are checked in
tests/test_ros_ws.py and test/test_node.py). The logic it drives - contract check before
anything is sent, CommandGuard, ControlLoop, latched e-stop, MCAP recording - is the same code
``tether deploy`` runs and is tested over Cyclone DDS. Why a node at all: under rclpy the
deployment shows up in ``ros2 node list``, works with any RMW (Fast DDS, Zenoh) and is started
by launch files next to the robot's own nodes.

Parameters (see config/params.yaml): checkpoint, adapter, rate_hz, duration_s, record,
adapter_params (JSON), stale_periods, stale_action, ramp_in_s, robot_info_timeout_s,
connect_timeout_s, estop_topic, distro.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

PARAMETERS: dict[str, Any] = {
    'checkpoint': '',
    'adapter': 'arm-ros2-control',
    'rate_hz': 0.0,
    'duration_s': 0.0,
    'record': '',
    'adapter_params': '{}',
    'stale_periods': 3.0,
    'stale_action': '',
    'ramp_in_s': 0.5,
    'robot_info_timeout_s': 1.5,
    'connect_timeout_s': 10.0,
    'estop_topic': '/tether/estop',
    'distro': 'humble',
}


def config_from_parameters(values: dict[str, Any]) -> Any:
    """ROS parameter values -> DeployConfig (empty strings / zeros mean "not set")."""
    from tether.errors import TetherError
    from tether.ros.deploy import DeployConfig

    if not values.get('checkpoint'):
        raise TetherError("parameter 'checkpoint' is empty; expected a checkpoint directory")
    try:
        params = json.loads(values.get('adapter_params') or '{}')
    except json.JSONDecodeError as exc:
        raise TetherError(
            f"parameter 'adapter_params' is not JSON ({exc}); expected e.g. '{{\"kp\": 25}}'"
        ) from None
    if not isinstance(params, dict):
        raise TetherError(
            "parameter 'adapter_params' must be a JSON object; expected e.g. '{\"kp\": 25}'"
        )
    return DeployConfig(
        checkpoint=values['checkpoint'],
        adapter=values['adapter'],
        rate_hz=float(values['rate_hz']) or None,
        duration_s=float(values['duration_s']) or None,
        record=values['record'] or None,
        distro=values['distro'],
        params=params,
        stale_periods=float(values['stale_periods']),
        stale_action=values['stale_action'] or None,
        ramp_in_s=float(values['ramp_in_s']),
        robot_info_timeout_s=float(values['robot_info_timeout_s']),
        connect_timeout_s=float(values['connect_timeout_s']),
        estop_topic=values['estop_topic'],
        transport='rclpy',
    )


def main(args: list[str] | None = None) -> int:
    import rclpy
    from rclpy.node import Node

    from tether.ros.deploy import deploy
    from tether.ros.rclpy_transport import RclpyTransport

    rclpy.init(args=args if args is not None else sys.argv)
    node = Node('tether_deploy')
    values = {}
    for name, default in PARAMETERS.items():
        node.declare_parameter(name, default)
        values[name] = node.get_parameter(name).value
    log = node.get_logger()
    cfg = config_from_parameters(values)
    # The wire gets its own node/context (the transport spins it on its own thread); this node
    # only holds the parameters and logs, so a slow log call can never delay a control tick.
    transport = RclpyTransport(node_name='tether_deploy_wire', distro=cfg.distro)
    result: dict[str, Any] = {}
    stop = threading.Event()

    def run() -> None:
        try:
            result['r'] = deploy(
                cfg, log=log.info, install_signals=False, transport=transport, stop=stop
            )
        except Exception as exc:  # reported once, in one line, like the CLI
            result['error'] = exc

    worker = threading.Thread(target=run, name='tether-deploy', daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            rclpy.spin_once(node, timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()  # the loop ends after its tick and sends one guard hold
        worker.join(timeout=10.0)
        transport.close()
        node.destroy_node()
        rclpy.try_shutdown()
    if 'error' in result:
        log.error(f'tether deploy failed: {result["error"]}')
        return 2
    if 'r' in result:
        log.info(f'tether deploy: {result["r"].stats.summary()}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
