"""ROS 2 without ROS installed: message types (rosbags typestores + bundled .msg), QoS presets, transports (Cyclone DDS, rclpy, loopback), the wire protocols (robot adapters and served robots), deploy, the rosbag2 recorder and DDS security keystores.

Map (import the submodule you need; nothing heavy is imported here):
  types                 typestore(distro), make(store, msgtype, **fields), serialize/deserialize, stamps, names
  qos                   QoS, PRESETS, resolve(), incompatibility(), QosIncident
  transport             Transport/Publisher/Subscription ABCs (the interface the implementations import)
  transports            make_transport(kind="auto"): the one place that picks an implementation
  cyclonedds_transport  DdsTransport (the ROS 2 wire over Cyclone DDS), loopback_config()
  rclpy_transport       RclpyTransport (real ROS 2 installs; untested here)
  loopback              LoopbackTransport (in-process, CDR round trip, for unit tests)
  protocols/            px4, ros2_control, unitree, joint_level: topics, QoS, codec, adapter, served bridge
  robot_server          RobotServer: a simulator behind a protocol's topics, with wire faults
  deploy                deploy(): checkpoint -> adapter -> guard -> loop, recorded
  hygiene               WriterWatch: deploy must be the only writer on its command topics
  security              SROS2-compatible keystores (CA, governance, enclaves, permissions)
  recorder              BagRecorder (crash-safe rosbag2 MCAP), recover(), read_bag()
  commands              `tether robot serve|limits`, `tether deploy`, `tether security ...`
  bag_commands          `tether bag ...` / `tether topic ...`
"""
