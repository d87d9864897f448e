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
Launch a served sim robot (``tether robot serve``) next to ROS 2 nodes to rehearse a deploy.

Example::

    ros2 launch tether_ros sim_robot.launch.py robot:=quadrotor latency_ms:=5 drop:=0.05
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.substitutions import LaunchConfiguration


def generate_launch_description():
    args = [
        DeclareLaunchArgument(
            'robot', default_value='arm', description='arm | quadrotor | legged'
        ),
        DeclareLaunchArgument('backend', default_value='mujoco', description='mujoco | pybullet'),
        DeclareLaunchArgument('latency_ms', default_value='0'),
        DeclareLaunchArgument('drop', default_value='0'),
    ]
    serve = ExecuteProcess(
        cmd=[
            'tether',
            'robot',
            'serve',
            '--robot',
            LaunchConfiguration('robot'),
            '--backend',
            LaunchConfiguration('backend'),
            '--latency',
            LaunchConfiguration('latency_ms'),
            '--drop',
            LaunchConfiguration('drop'),
        ],
        output='screen',
    )
    return LaunchDescription([*args, serve])
