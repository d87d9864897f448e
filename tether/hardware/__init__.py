"""The robot side of deployment: RobotInterface, CommandGuard (the safety layer every command passes), ControlLoop (fixed rate, deadline statistics, chunk execution) and robot adapters."""
