"""Physics engines behind one interface, so a robot and task run unchanged on MuJoCo, PyBullet or a later engine."""
