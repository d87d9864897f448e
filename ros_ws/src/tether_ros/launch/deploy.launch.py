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
Launch the tether_ros deploy node with a parameters YAML (default: config/params.yaml).

Example::

    ros2 launch tether_ros deploy.launch.py checkpoint:=/path/to/ckpt adapter:=px4 \
        record:=/tmp/run
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    default_params = os.path.join(
        get_package_share_directory('tether_ros'), 'config', 'params.yaml'
    )
    args = [
        DeclareLaunchArgument(
            'params', default_value=default_params, description='parameters YAML'
        ),
        DeclareLaunchArgument('checkpoint', default_value='', description='checkpoint directory'),
        DeclareLaunchArgument(
            'adapter',
            default_value='arm-ros2-control',
            description='arm-ros2-control | px4 | unitree | joint-level',
        ),
        DeclareLaunchArgument(
            'record', default_value='', description='rosbag2 MCAP output directory'
        ),
    ]
    node = Node(
        package='tether_ros',
        executable='deploy_node',
        name='tether_deploy',
        output='screen',
        emulate_tty=True,
        parameters=[
            LaunchConfiguration('params'),
            {
                'checkpoint': LaunchConfiguration('checkpoint'),
                'adapter': LaunchConfiguration('adapter'),
                'record': LaunchConfiguration('record'),
            },
        ],
    )
    return LaunchDescription([*args, node])
