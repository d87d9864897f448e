"""ROS 2 without ROS installed: message types (rosbags typestores + bundled .msg), QoS presets, transports (Cyclone DDS, rclpy, loopback), the served sim robot and the rosbag2 recorder.

Map (import the submodule you need; nothing heavy is imported here):
  types                 typestore(distro), make(store, msgtype, **fields), serialize/deserialize, stamps, names
  qos                   QoS, PRESETS, resolve(), incompatibility(), QosIncident
  transport             Transport/Publisher/Subscription ABCs, make_transport(kind="auto")
  cyclonedds_transport  DdsTransport (the ROS 2 wire over Cyclone DDS), loopback_config()
  rclpy_transport       RclpyTransport (real ROS 2 installs; untested here)
  loopback              LoopbackTransport (in-process, CDR round trip, for unit tests)
  recorder              BagRecorder (crash-safe rosbag2 MCAP), recover(), read_bag()
  bag_commands          `tether bag ...` / `tether topic ...`
"""
