"""Command-topic hygiene: deploy must be the only writer on the topics that command the robot.

Why: DDS without security lets any participant on the domain write a robot's command topics; two writers
interleave (an intruder's 40 rad/s setpoints between ours, a force-disarm in the air) and the robot cannot tell
them apart. :class:`WriterWatch` polls discovery (every writer, whatever its type or QoS, so an intruder whose
QoS would not match us is still seen) and reports the first foreign writer on a command topic; deploy then
latches its e-stop, starts the robot's safe stop and ends with a non-zero exit naming the writer. This detects,
it does not prevent: prevention is DDS Security (``tether security``) on a Cyclone build with its plugins.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("tether.ros.hygiene")


class WriterWatch:
    """Polls ``transport.writers(topic)`` for each topic at ``hz`` on its own thread; ``on_foreign(text)`` is
    called once, on the watch thread, for the first writer whose participant is not this transport's."""

    def __init__(self, transport: Any, topics: Sequence[str], on_foreign: Callable[[str], None],
                 hz: float = 10.0) -> None:
        self.transport, self.topics, self.on_foreign = transport, tuple(topics), on_foreign
        self.period = 1.0 / hz
        self.own = transport.participant_id
        self.foreign: list[str] = []
        self.supported = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tether-writer-watch", daemon=True)

    def start(self) -> WriterWatch:
        try:
            self.check()
        except NotImplementedError:
            self.supported = False
            log.warning("the %s transport cannot list writers: command-topic hygiene is off",
                        type(self.transport).__name__)
            return self
        self._thread.start()
        return self

    def check(self, notify: bool = True) -> list[str]:
        """Foreign writers on the command topics now (the first ones found are kept in ``foreign``)."""
        found = []
        for topic in self.topics:
            for w in self.transport.writers(topic):
                if w.participant != self.own:
                    found.append(f"{topic}: participant {w.participant} (enclave {w.enclave!r}, type {w.type_name})")
        if found and not self.foreign:
            self.foreign = found
            if notify:
                self.on_foreign("; ".join(found))
        return found

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.check()
            except Exception:  # a closing transport; the watch ends with the run
                if self._stop.is_set():
                    return
                log.debug("writer watch failed", exc_info=True)
            if self.foreign:
                return

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
