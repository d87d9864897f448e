"""The whole sim-to-real loop as one command: ``tether pipeline`` (what ``make demo`` runs).

train in MuJoCo under DR → serve a PyBullet robot with parameters the policy never saw → deploy over ROS 2
DDS and record → convert the bag to a dataset → fine-tune with hybrid real + sim RL → deploy again → report.
"""
