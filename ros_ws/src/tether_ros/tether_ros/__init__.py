"""ROS 2 wrapper around ``tether deploy``: the node lives in :mod:`tether_ros.node`."""
