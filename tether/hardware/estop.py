"""Feeding the guard's e-stop from a ROS topic: a latched std_msgs/Bool (RELIABLE + TRANSIENT_LOCAL).

Latched so a bridge that starts after the stop button was pressed still hears it (a late-joining
transient-local reader gets the last sample). ``True`` latches the guard; ``False`` does nothing: releasing
the button must not restart a robot, only an explicit ``CommandGuard.reset_estop()`` does (ros2-interop.md
section 2.6, as twist_mux's ``e_stop`` lock). This is a software stop on top of, never instead of, the
hardware e-stop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tether.data.topics import ESTOP_TOPIC
from tether.hardware.guard import CommandGuard


class EStopListener:
    """Subscribes ``guard.on_estop_message`` to ``topic``; close() unsubscribes.

    ``accept(info)`` (optional) decides from the transport's per-sample info (the writing participant) whether
    a message counts; refused ones are counted in ``refused``. By default every writer may stop the robot: a
    stop request from anyone is honoured unless the operator restricts who may send it.
    """

    def __init__(self, transport: Any, guard: CommandGuard, topic: str = ESTOP_TOPIC,
                 qos: Any = "latched", accept: Callable[[Any], bool] | None = None) -> None:
        self.guard = guard
        self.topic = topic
        self.received = 0
        self.refused = 0
        self.accept = accept
        if accept is None:
            self._sub = transport.subscribe(topic, "std_msgs/msg/Bool", self._on_msg, qos)
        else:
            self._sub = transport.subscribe(topic, "std_msgs/msg/Bool", self._on_msg, qos, info=True)

    def _on_msg(self, msg: Any, info: Any = None) -> None:
        if self.accept is not None and not self.accept(info):
            self.refused += 1
            return
        self.received += 1
        self.guard.on_estop_message(msg)

    def close(self) -> None:
        self._sub.close()
