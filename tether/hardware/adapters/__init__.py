"""Robot adapters: ros2_control arm, PX4 quadrotor, Unitree and joint-level legged, and an in-process sim robot."""
