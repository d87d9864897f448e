"""The topic names a deploy bag carries: Tether's flat topics, the e-stop, the goal, and PX4's.

One home for them because several places speak them: ``tether deploy`` writes them (ros), the bag importer and
exporter read and write them (data), the pipeline scores recorded runs from them, and system identification
reads PX4 recordings (calibration, which must not import ros). Each stamped flat topic has a parallel
``<topic>/stamp`` (builtin_interfaces/Time) on the control clock; ``stamp_topic`` names it.
"""

from __future__ import annotations

OBS_TOPIC = "/tether/obs"  # std_msgs/Float64MultiArray: the policy observation vector, physical units
ACTION_TOPIC = "/tether/action"  # std_msgs/Float64MultiArray: the command sent, physical (policy) units
REWARD_TOPIC = "/tether/reward"  # std_msgs/Float64MultiArray (or Float64)
EPISODE_TOPIC = "/tether/episode"  # std_msgs/UInt32: a change marks a reset
POLICY_ACTION_TOPIC = "/tether/policy_action"  # std_msgs/Float64MultiArray: raw normalised policy output
GUARD_TOPIC = "/tether/guard"  # std_msgs/String: why the guard chose each command
STATE_REJECTED_TOPIC = "/tether/state_rejected"  # std_msgs/String JSON: state messages dropped, per reason
CONTROL_TOPIC = "/tether/control"  # std_msgs/String JSON: the robot's control status when it changes

ESTOP_TOPIC = "/tether/estop"  # std_msgs/Bool, latched: the operator's e-stop (deploy listens and records it)
GOAL_TOPIC = "/tether/goal"  # geometry_msgs/PointStamped, reliable: the set point robot adapters read
GOAL_TYPE = "geometry_msgs/msg/PointStamped"
# a legged robot's state estimate (nav_msgs/Odometry: pose in the odom frame, twist in the body frame, as REP 105
# and the ROS message define it); a recording's only source of the base velocity that velocity tracking is
# scored on (a Unitree LowState carries joints and the IMU only)
ODOM_TOPIC, ODOM_TYPE = "/odom", "nav_msgs/msg/Odometry"

# PX4 over uXRCE-DDS, without a vehicle namespace (multi-vehicle setups prefix /uavN); each with its type
PX4_ODOMETRY, PX4_ODOMETRY_TYPE = "/fmu/out/vehicle_odometry", "px4_msgs/msg/VehicleOdometry"
PX4_STATUS, PX4_STATUS_TYPE = "/fmu/out/vehicle_status", "px4_msgs/msg/VehicleStatus"
PX4_CONTROL_MODE, PX4_CONTROL_MODE_TYPE = "/fmu/in/offboard_control_mode", "px4_msgs/msg/OffboardControlMode"
PX4_RATES, PX4_RATES_TYPE = "/fmu/in/vehicle_rates_setpoint", "px4_msgs/msg/VehicleRatesSetpoint"
PX4_MOTORS, PX4_MOTORS_TYPE = "/fmu/in/actuator_motors", "px4_msgs/msg/ActuatorMotors"
PX4_COMMAND, PX4_COMMAND_TYPE = "/fmu/in/vehicle_command", "px4_msgs/msg/VehicleCommand"

#: the topics the importer aligns on a grid (each with a ``/stamp`` twin)
FLAT_TOPICS = (OBS_TOPIC, ACTION_TOPIC, EPISODE_TOPIC)


def stamp_topic(topic: str) -> str:
    """The parallel builtin_interfaces/Time topic carrying ``topic``'s control-clock stamps."""
    return f"{topic}/stamp"
