"""tether.ros.types: per-distro typestores, bundled vendor messages, builders, stamps and name mangling."""

from __future__ import annotations

import numpy as np
import pytest

from tether.errors import TetherError
from tether.ros import types as T

# Hashes emitted by real rosidl builds (generated *__description.c files / `ros2 topic info -v`), so a typo
# in a bundled .msg (a field name, a width, an array length) shows up here.
ROSIDL_HASHES = {
    "unitree_go/msg/LowCmd": "RIHS01_0da1142c994d184f6102948c3acf52b9557836cfe5062b924a1f08ac8b72dc34",
    "unitree_go/msg/MotorCmd": "RIHS01_4581f18a3bf58baad04f12f51747f2dd388f64aa2ac997d1d64777563c627fbf",
    "unitree_hg/msg/LowCmd": "RIHS01_b0eec4778db3ad67ffade328b063bea700bd1558f3f359ea5e4c86e3c3f25bc5",
    "unitree_hg/msg/MotorCmd": "RIHS01_b47468413c7037d0e2c0227fced04b91224cc165e5befe2b8cefacbe08391329",
    "control_msgs/msg/JointTrajectoryControllerState": (
        "RIHS01_51d8dd89cc624cbe9daaeeb4d80d6de9b86168ffdc3be41fefc0953e3c26e480"
    ),
}


@pytest.mark.parametrize("msgtype,expected", sorted(ROSIDL_HASHES.items()))
def test_bundled_hashes_match_rosidl(msgtype: str, expected: str) -> None:
    assert T.rihs01(T.typestore("jazzy"), msgtype) == expected


def test_px4_and_core_hash_prefixes_match_public_ros_output() -> None:
    store = T.typestore("jazzy")
    assert T.rihs01(store, "px4_msgs/msg/TrajectorySetpoint").startswith("RIHS01_9a7deb0c")
    assert T.rihs01(store, "sensor_msgs/msg/JointState").startswith("RIHS01_a13ee3a3")


def test_typestore_is_cached_and_distros_differ_where_upstream_does() -> None:
    assert T.typestore("humble") is T.typestore("humble")
    humble = dict(T.typestore("humble").fielddefs["control_msgs/msg/JointTrajectoryControllerState"][1])
    jazzy = dict(T.typestore("jazzy").fielddefs["control_msgs/msg/JointTrajectoryControllerState"][1])
    assert "desired" in humble and "speed_scaling_factor" not in humble
    assert "desired" not in jazzy and "speed_scaling_factor" in jazzy


def test_unknown_distro_names_it_and_lists_valid() -> None:
    with pytest.raises(TetherError, match=r"'iron'.*humble.*jazzy"):
        T.typestore("iron")


def test_every_bundled_package_registered() -> None:
    names = T.registered(T.typestore("humble"))
    for t in (
        "px4_msgs/msg/VehicleOdometry",
        "px4_msgs/msg/OffboardControlMode",
        "px4_msgs/msg/TrajectorySetpoint",
        "px4_msgs/msg/VehicleRatesSetpoint",
        "px4_msgs/msg/VehicleCommand",
        "px4_msgs/msg/VehicleStatus",
        "px4_msgs/msg/ActuatorMotors",
        "unitree_go/msg/LowState",
        "unitree_go/msg/LowCmd",
        "unitree_hg/msg/LowState",
        "unitree_hg/msg/LowCmd",
        "control_msgs/msg/DynamicJointState",
    ):
        assert t in names


def test_make_defaults_coercion_and_roundtrip() -> None:
    store = T.typestore("humble")
    before = T.stamp_to_ns(T.now_stamp(store))
    js = T.make(store, "sensor_msgs/msg/JointState", name=["a", "b"], position=[1, 2])
    assert T.stamp_to_ns(js.header.stamp) >= before
    assert js.position.dtype == np.float64 and js.velocity.shape == (0,)
    back = T.deserialize(store, T.serialize(store, js), "sensor_msgs/msg/JointState")
    assert back.name == ["a", "b"] and np.array_equal(back.position, [1.0, 2.0])

    cmd = T.make(store, "unitree_go/msg/LowCmd", head=[0xFE, 0xEF], motor_cmd=[{"q": float(i)} for i in range(20)])
    raw = T.serialize(store, cmd)
    assert raw[:4] == b"\x00\x01\x00\x00"
    back = T.deserialize(store, raw, "unitree_go/msg/LowCmd")
    assert [m.q for m in back.motor_cmd] == [float(i) for i in range(20)]
    assert list(back.head) == [0xFE, 0xEF]


def test_make_rejects_bad_fields() -> None:
    store = T.typestore("humble")
    with pytest.raises(TetherError, match=r"no field\(s\) \['foo'\].*position"):
        T.make(store, "sensor_msgs/msg/JointState", foo=1)
    with pytest.raises(TetherError, match=r"position has 2 elements; expected exactly 3"):
        T.make(store, "px4_msgs/msg/TrajectorySetpoint", position=[0.0, 1.0])
    with pytest.raises(TetherError, match="unknown ROS message type 'px4_msgs/msg/Nope'"):
        T.make(store, "px4_msgs/msg/Nope")


def test_deserialize_malformed_raises_tether_error() -> None:
    store = T.typestore("humble")
    raw = T.serialize(store, T.make(store, "unitree_go/msg/LowCmd"))
    with pytest.raises(TetherError, match="malformed CDR"):
        T.deserialize(store, raw[:40], "unitree_go/msg/LowCmd")
    with pytest.raises(TetherError, match="encapsulation"):
        T.deserialize(store, b"\xff\xff" + raw[2:], "unitree_go/msg/LowCmd")


def test_stamps_roundtrip_including_negative_and_rounding() -> None:
    store = T.typestore("humble")
    s = T.sec_to_stamp(store, 12.3456789012)
    assert (s.sec, s.nanosec) == (12, 345678901)
    assert T.stamp_to_sec(s) == pytest.approx(12.345678901)
    neg = T.ns_to_stamp(store, -1)
    assert (neg.sec, neg.nanosec) == (-1, 999_999_999) and T.stamp_to_ns(neg) == -1
    with pytest.raises(TetherError, match="not finite"):
        T.sec_to_stamp(store, float("nan"))


def test_name_mangling() -> None:
    assert T.dds_typename("px4_msgs/msg/TrajectorySetpoint") == "px4_msgs::msg::dds_::TrajectorySetpoint_"
    assert T.msgtype_from_dds("unitree_go::msg::dds_::LowCmd_") == "unitree_go/msg/LowCmd"
    assert T.dds_topic("/fmu/in/trajectory_setpoint") == "rt/fmu/in/trajectory_setpoint"
    assert T.ros_topic("rt/lowcmd") == "/lowcmd"
    for bad in ("joint_states", "/a//b", "/1abc", "/a/", "/a-b"):
        with pytest.raises(TetherError, match="bad ROS topic name"):
            T.check_topic(bad)


def test_load_msg_dir_registers_extra_package(tmp_path) -> None:
    from rosbags.typesys import Stores, get_typestore

    (tmp_path / "my_msgs" / "msg").mkdir(parents=True)
    (tmp_path / "my_msgs" / "msg" / "Gain.msg").write_text("float64 kp\nfloat64 kd\n")
    store = get_typestore(Stores.ROS2_HUMBLE)  # a private store: never mutate the shared cached one in tests
    assert T.load_msg_dir(store, tmp_path) == ["my_msgs/msg/Gain"]
    assert T.make(store, "my_msgs/msg/Gain", kp=2.0).kp == 2.0
    with pytest.raises(TetherError, match="does not exist"):
        T.load_msg_dir(store, tmp_path / "nope")
