"""The ros_ws/src/tether_ros ament_python package: package.xml is a valid format-3 manifest (parsed by
catkin_pkg, as colcon does) that declares every ROS package the Python files import, setup.py, the launch
files and the node are valid Python with the license header ament_copyright wants, ``colcon test`` has the
ament linter tests plus a real test of the node module, which runs here too. The node itself needs rclpy and
is untested here; its parameter mapping onto DeployConfig is tested without ROS."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
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
    assert "'deploy_node = tether_ros.node:main'" in setup
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


# ROS packages an import resolves to (the Python module of a ROS package is named like the package)
ROS_PACKAGES = {"ament_index_python", "launch", "launch_ros", "rclpy", "rosidl_runtime_py"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            names |= {a.name.split(".")[0] for a in n.names}
        elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
            names.add(n.module.split(".")[0])
    return names


def test_package_xml_declares_what_the_python_files_import():
    from catkin_pkg.package import parse_package

    pkg = parse_package(str(PKG / "package.xml"))
    exec_deps = {d.name for d in pkg.exec_depends}
    for path in [*PKG.glob("launch/*.py"), PKG / "tether_ros" / "node.py"]:
        used = _imports(path) & ROS_PACKAGES
        assert used <= exec_deps, f"{path.name} imports {sorted(used - exec_deps)} without an exec_depend"
    test_deps = {d.name for d in pkg.test_depends}
    assert {"ament_copyright", "ament_flake8", "ament_pep257", "python3-pytest", "python3-yaml"} <= test_deps


def test_colcon_test_has_the_ament_linters_and_a_real_test():
    tests = {p.name for p in (PKG / "test").glob("test_*.py")}
    assert tests == {"test_copyright.py", "test_flake8.py", "test_pep257.py", "test_node.py"}
    for path in PKG.rglob("*.py"):  # what ament_copyright checks: a copyright line and the license header
        head = path.read_text()[:800]
        assert head.startswith("# Copyright ") and "Licensed under the Apache License, Version 2.0" in head, path
    for name in ("copyright", "flake8", "pep257"):
        src = (PKG / "test" / f"test_{name}.py").read_text()
        assert f"from ament_{name}.main import" in src and "pytest.mark.skip" not in src


def test_the_packages_own_node_test_passes_without_ros():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PKG), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test/test_node.py"],
                         cwd=PKG, capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "5 passed" in run.stdout
