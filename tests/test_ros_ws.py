"""The ros_ws/src/tether_ros ament_python package: package.xml is a valid format-3 manifest (parsed by
catkin_pkg, as colcon does), and setup.py, the launch files and the node are valid Python. The node itself
needs rclpy and is untested here; its parameter mapping onto DeployConfig is tested without ROS."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

PKG = Path(__file__).resolve().parents[1] / "ros_ws" / "src" / "tether_ros"


def test_package_xml_parses_with_catkin_pkg():
    from catkin_pkg.package import parse_package

    pkg = parse_package(str(PKG / "package.xml"))
    pkg.validate()
    assert pkg.name == "tether_ros" and pkg.package_format == 3
    assert pkg.get_build_type() == "ament_python"
    deps = {d.name for d in pkg.exec_depends}
    assert {"rclpy", "std_msgs", "sensor_msgs"} <= deps
    optional = {d.name: d.condition for d in pkg.exec_depends if d.condition}
    assert set(optional) == {"px4_msgs", "unitree_go", "control_msgs"}
    assert (PKG / "resource" / "tether_ros").is_file()  # ament index marker installed by setup.py


@pytest.mark.parametrize("rel", ["setup.py", "launch/deploy.launch.py", "launch/sim_robot.launch.py",
                                 "tether_ros/node.py", "tether_ros/__init__.py"])
def test_python_files_are_valid(rel):
    tree = ast.parse((PKG / rel).read_text(), filename=rel)
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    if rel.startswith("launch/"):
        assert "generate_launch_description" in names
    if rel == "tether_ros/node.py":
        assert "main" in names


def test_setup_and_params_agree_with_the_node():
    setup = (PKG / "setup.py").read_text()
    assert '"deploy_node = tether_ros.node:main"' in setup
    assert (PKG / "setup.cfg").read_text().count("$base/lib/tether_ros") == 2
    params = yaml.safe_load((PKG / "config" / "params.yaml").read_text())["tether_deploy"]["ros__parameters"]
    spec = importlib.util.spec_from_file_location("tether_ros_node", PKG / "tether_ros" / "node.py")
    node = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(node)  # imports nothing from ROS at module level
    assert set(params) == set(node.PARAMETERS)
    params.update(checkpoint="/tmp/ckpt", adapter="px4", adapter_params='{"goal": [0, 0, 1]}', record="run.mcap")
    cfg = node.config_from_parameters(params)
    assert (cfg.adapter, cfg.params, cfg.record, cfg.rate_hz, cfg.transport) == (
        "px4", {"goal": [0, 0, 1]}, "run.mcap", None, "rclpy")
    from tether.errors import TetherError

    with pytest.raises(TetherError, match="adapter_params"):
        node.config_from_parameters({**params, "adapter_params": "[1, 2]"})
