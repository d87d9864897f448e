"""Launch a served sim robot (``tether robot serve``) next to ROS 2 nodes, e.g. to rehearse a deployment.

    ros2 launch tether_ros sim_robot.launch.py robot:=quadrotor latency_ms:=5 drop:=0.05
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.substitutions import LaunchConfiguration


def generate_launch_description():
    args = [
        DeclareLaunchArgument("robot", default_value="arm", description="arm | quadrotor | legged"),
        DeclareLaunchArgument("backend", default_value="mujoco", description="mujoco | pybullet"),
        DeclareLaunchArgument("latency_ms", default_value="0"),
        DeclareLaunchArgument("drop", default_value="0"),
    ]
    serve = ExecuteProcess(
        cmd=["tether", "robot", "serve", "--robot", LaunchConfiguration("robot"),
             "--backend", LaunchConfiguration("backend"),
             "--latency", LaunchConfiguration("latency_ms"), "--drop", LaunchConfiguration("drop")],
        output="screen",
    )
    return LaunchDescription([*args, serve])
