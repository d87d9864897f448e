"""The flat topic names a deploy bag carries and ``tether.data`` converts exactly into a dataset.

One home for them because three places speak them: ``tether deploy`` writes them (ros), the bag importer and
exporter read and write them (data), and the pipeline scores recorded runs from them. Each stamped topic has
a parallel ``<topic>/stamp`` (builtin_interfaces/Time) on the control clock; ``stamp_topic`` names it.
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

#: the topics the importer aligns on a grid (each with a ``/stamp`` twin)
FLAT_TOPICS = (OBS_TOPIC, ACTION_TOPIC, EPISODE_TOPIC)


def stamp_topic(topic: str) -> str:
    """The parallel builtin_interfaces/Time topic carrying ``topic``'s control-clock stamps."""
    return f"{topic}/stamp"
