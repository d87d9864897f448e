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
The deploy node's parameter handling, without ROS: what colcon test can check anywhere.

The node module imports nothing from ROS at module level; config_from_parameters maps the ROS
parameters onto tether's DeployConfig and names bad values. Needs the tether Python package
(pip install tether) beside the workspace, as the node itself does.
"""

from pathlib import Path

import pytest
from tether.errors import TetherError
from tether_ros import node
import yaml

PARAMS = Path(__file__).resolve().parents[1] / 'config' / 'params.yaml'


def _params():
    return yaml.safe_load(PARAMS.read_text())['tether_deploy']['ros__parameters']


def test_params_yaml_declares_every_node_parameter():
    assert set(_params()) == set(node.PARAMETERS)
    for name, default in node.PARAMETERS.items():
        assert type(_params()[name]) is type(default), name  # ROS parameter types must match


def test_parameters_map_onto_deploy_config():
    values = {**_params(), 'checkpoint': '/tmp/ckpt', 'adapter': 'px4', 'record': 'run',
              'adapter_params': '{"goal": [0, 0, 1]}', 'rate_hz': 0.0, 'duration_s': 12.5}
    cfg = node.config_from_parameters(values)
    assert (cfg.checkpoint, cfg.adapter, cfg.params, cfg.record) == (
        '/tmp/ckpt', 'px4', {'goal': [0, 0, 1]}, 'run')
    assert cfg.rate_hz is None and cfg.duration_s == 12.5  # 0 means "the policy's rate"
    assert cfg.transport == 'rclpy' and cfg.stale_action is None


@pytest.mark.parametrize('bad,match', [
    ({'checkpoint': ''}, 'checkpoint'),
    ({'adapter_params': 'not json'}, 'not JSON'),
    ({'adapter_params': '[1, 2]'}, 'JSON object'),
])
def test_bad_parameters_are_named(bad, match):
    values = {**_params(), 'checkpoint': '/tmp/ckpt', **bad}
    with pytest.raises(TetherError, match=match):
        node.config_from_parameters(values)
