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

"""ament_python build of the tether_ros package: ``colcon build --packages-select tether_ros``."""

from glob import glob

from setuptools import find_packages, setup

package_name = 'tether_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='Tether maintainers',
    maintainer_email='maintainers@tether.invalid',
    description='Thin ROS 2 node running a Tether policy through tether.hardware over rclpy',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={'console_scripts': ['deploy_node = tether_ros.node:main']},
)
