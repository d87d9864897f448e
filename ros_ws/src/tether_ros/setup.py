"""ament_python build of the tether_ros node package (``colcon build --packages-select tether_ros``)."""

from glob import glob

from setuptools import find_packages, setup

package_name = "tether_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="Tether maintainers",
    maintainer_email="maintainers@tether.invalid",
    description="Thin ROS 2 node running a Tether policy through tether.hardware over rclpy",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={"console_scripts": ["deploy_node = tether_ros.node:main"]},
)
