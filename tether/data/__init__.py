"""Episode datasets in the LeRobot v3 layout, crash-safe recording, rosbag2 conversion and replay buffers."""
