"""Tasks: what a robot is asked to do, as observation fields, reward, termination and a success metric."""
