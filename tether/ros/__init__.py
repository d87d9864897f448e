"""ROS 2 without ROS installed: message types (rosbags typestores + bundled .msg), QoS presets, transports (Cyclone DDS, rclpy, loopback), the served sim robot and the rosbag2 recorder."""
