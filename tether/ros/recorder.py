"""rosbag2 (MCAP) recorder that survives SIGKILL, plus ``recover`` and a reader for what it wrote.

Why not just rosbags' Writer: it writes the MCAP summary, footer and ``metadata.yaml`` only on ``close()``.
A recorder killed mid-run (the robot e-stopped, the laptop died, ``kill -9``) would leave a file that neither
rosbags (footer magic missing, no metadata.yaml) nor ``ros2 bag`` opens. So Tether keeps rosbags' Writer for
the layout (ros2 profile, ``ros2msg`` schemas with full definitions, ``cdr`` channels with
``offered_qos_profiles``) and adds three things:

1. Every ``flush_period`` seconds the pending chunk is closed and committed to disk in ONE ``pwrite`` together
   with a provisional MCAP tail (DataEnd record + Footer with ``summary_start=0``, which the MCAP spec
   allows: readers then scan the data section). The next commit overwrites that tail. A clean ``close()``
   replaces it with rosbags' full summary. Then ``metadata.yaml`` is rewritten atomically (tmp + rename) with
   the counts of what is committed. So after SIGKILL the bag opens as is, with everything up to the last
   commit (``flush_period``, default 0.5 s).
2. :func:`recover` handles the residual case (killed inside the commit's write: a torn tail) and bags from
   other tools: it keeps every complete record of the data section, truncates the rest, writes a fresh tail
   and rebuilds ``metadata.yaml`` from the channels and messages found in the file.

3. The names and the metadata a target distro's ``ros2 bag`` reads. ``BagRecorder("NAME")`` and
   ``BagRecorder("NAME.mcap")`` both make the directory ``NAME`` holding ``NAME_0.mcap``, as
   ``ros2 bag record -o NAME -s mcap`` does. ``metadata.yaml`` has the version the distro's rosbag2 writes
   (:data:`METADATA_VERSION`): Humble's rosbag2 (metadata v5) reads ``offered_qos_profiles`` as a YAML
   *string* and fails on v9's list; Jazzy's writes v9 (a list, plus type hashes). Channel metadata inside
   the MCAP keeps the string form for both, as both distros' MCAP plugins write it.

Bag timestamps are log times and are kept non-decreasing (an earlier ``stamp_ns`` than the previous one is
raised to it and counted in ``reordered``), because readers of summary-less MCAP require time order. The
message's own ``header.stamp`` keeps the true capture time.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tether.bag_names import bag_directory, resolve_bag  # noqa: F401  (re-exported)
from tether.errors import TetherError
from tether.ros import types as T
from tether.ros.qos import QoS, resolve

MCAP_MAGIC = b"\x89MCAP0\r\n"
# DataEnd (op 0x0F, len 4, crc 0) + Footer (op 0x02, len 20, summary_start 0, summary_offset_start 0, crc 0)
# metadata.yaml version each distro's rosbag2 writes (rosbag2_storage/bag_metadata.hpp: humble 5, jazzy 9)
METADATA_VERSION = {"humble": 5, "jazzy": 9}
PROVISIONAL_TAIL = (
    b"\x0f" + struct.pack("<Q", 4) + struct.pack("<I", 0) + b"\x02" + struct.pack("<QQQI", 20, 0, 0, 0) + MCAP_MAGIC
)


class _StagedFile:
    """File-like sink for rosbags' McapWriter: buffers writes and commits them with one pwrite.

    ``commit(tail)`` writes buffered bytes + ``tail`` at the committed offset; only the buffered bytes count
    as committed, so the tail is overwritten by the next commit (a provisional footer).
    """

    def __init__(self, path: Path, committed: int) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR)
        self.committed = committed
        self._buf = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._buf += data
        return len(data)

    def tell(self) -> int:
        return self.committed + len(self._buf)

    def flush(self) -> None:  # rosbags may call it; commits happen explicitly
        return None

    def pending(self) -> int:
        return len(self._buf)

    def commit(self, tail: bytes = b"") -> None:
        payload = bytes(self._buf) + tail
        view = memoryview(payload)
        off = self.committed
        try:
            while view:
                n = os.pwrite(self._fd, view, off)
                view, off = view[n:], off + n
        except OSError:
            self.restore()
            raise
        self.committed += len(self._buf)
        self._buf.clear()

    def restore(self) -> None:
        """After a failed write (disk full, I/O error): drop what was not committed and put the provisional tail
        back at the committed offset, so the file is again a readable MCAP with everything committed before.
        The tail's bytes were allocated by the previous commit, so rewriting them needs no new space."""
        self._buf.clear()
        try:
            os.pwrite(self._fd, PROVISIONAL_TAIL, self.committed)
            os.ftruncate(self._fd, self.committed + len(PROVISIONAL_TAIL))
        except OSError:
            pass  # `tether bag recover` still finds every complete record

    def close(self, keep_committed: bool = False) -> None:
        """Finish the file; ``keep_committed`` (after a failed write) only closes it, provisional tail in place."""
        if self._fd < 0:
            return
        try:
            if not keep_committed:
                self.commit(b"")
                os.ftruncate(self._fd, self.committed)
        finally:
            os.close(self._fd)
            self._fd = -1


def metadata_version(distro: str, version: int | None = None) -> int:
    """The metadata.yaml version for ``distro`` (or a requested one); bad values are named."""
    if version is None:
        if distro not in METADATA_VERSION:
            raise TetherError(f"unknown ROS 2 distro {distro!r}; expected one of {sorted(METADATA_VERSION)}")
        return METADATA_VERSION[distro]
    if version not in (5, 8, 9):
        raise TetherError(f"rosbag2 metadata version {version!r} is not supported; expected 5 (humble), 8 or 9 (jazzy)")
    return int(version)


def _metadata_yaml(
    connections: Iterable[Any], counts: dict[int, int], start: int, end: int, relpath: str, version: int,
    distro: str = "humble",
) -> str:
    """rosbag2 metadata.yaml text with the fields and QoS encoding of ``version`` (5: Humble, 9: Jazzy)."""
    from rosbags.rosbag2.metadata import dump_qos_v8, dump_qos_v9

    dump_qos = dump_qos_v9 if version >= 9 else dump_qos_v8  # < 9: one YAML string with integer enums
    count = sum(counts.values())
    duration = max(0, end - start) if count else 0
    start = start if count else 0

    def topic(c: Any) -> dict[str, Any]:
        meta = {
            "name": c.topic,
            "type": c.msgtype,
            "serialization_format": c.ext.serialization_format,
            "offered_qos_profiles": dump_qos(list(c.ext.offered_qos_profiles)),
        }
        if version >= 7:
            meta["type_description_hash"] = c.digest
        return {"topic_metadata": meta, "message_count": counts.get(c.id, 0)}

    info: dict[str, Any] = {
        "version": version,
        "storage_identifier": "mcap",
        "duration": {"nanoseconds": duration},
        "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": count,
        "topics_with_message_count": [topic(c) for c in connections],
        "compression_format": "",
        "compression_mode": "",
        "relative_file_paths": [relpath],
        "files": [
            {
                "path": relpath,
                "starting_time": {"nanoseconds_since_epoch": start},
                "duration": {"nanoseconds": duration},
                "message_count": count,
            }
        ],
    }
    if version >= 6:
        info["custom_data"] = None
    if version >= 8:
        info["ros_distro"] = distro
    # JSON is valid YAML (1.2): rosbags' ruamel and rosbag2's yaml-cpp both read it, and json.dumps is ~100x
    # faster than ruamel's emitter, which matters because this runs every flush_period beside a control loop.
    return json.dumps({"rosbag2_bagfile_information": info}, indent=1) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
    os.replace(tmp, path)


class BagRecorder:
    """Write a rosbag2 MCAP bag from transport callbacks or direct ``write`` calls; crash-safe (module doc).

    ``record(transport, topics)`` subscribes (raw CDR, no re-encoding); ``write(topic, msgtype, msg,
    stamp_ns)`` records from any thread (e.g. the control loop's own commands).
    """

    def __init__(
        self, path: str | Path, distro: str = "humble", flush_period: float = 0.5, version: int | None = None
    ) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        if not flush_period > 0:
            raise TetherError(f"bad flush_period {flush_period!r}; expected seconds > 0")
        self.path = bag_directory(path)
        if self.path.exists():
            raise TetherError(f"bag directory {str(self.path)!r} already exists; expected a new path")
        if not self.path.name:
            raise TetherError(f"bag path {str(path)!r} has no name; expected a directory name like 'run'")
        self.store = T.typestore(distro)
        self.distro = distro
        self.version = metadata_version(distro, version)
        self.flush_period = float(flush_period)
        # rosbags writes the MCAP layout (v8 and v9 differ only in metadata, which is ours to write)
        self._writer = Writer(self.path, version=9 if self.version >= 9 else 8,  # type: ignore[arg-type]
                              storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        storage = self._writer.storage
        real = storage.bio  # header already written through the normal buffered file
        real.flush()
        header_end = real.tell()
        real.close()
        named = storage.path.with_name(f"{self.path.name}_0.mcap")  # ros2 bag's first split file
        storage.path.rename(named)
        storage.path = named
        self._stage = _StagedFile(storage.path, header_end)
        storage.bio = self._stage
        self._mcap_name = storage.path.name
        self._lock = threading.RLock()  # the rosbags writer and the staged file
        self._qlock = threading.Lock()  # the queue and the log-time clamp (held for microseconds)
        self._queue: deque[tuple[str, str, int, bytes]] = deque()
        self._conns: dict[tuple[str, str], Any] = {}
        self._last_ts = 0
        self.written = 0
        self.reordered = 0
        self.committed_messages = 0
        self.dropped = 0  # messages refused after a write error
        self.error: OSError | None = None
        self._subs: list[Any] = []
        self._closed = False
        self._committed_once = False
        self._committed_conns = 0
        self._stop = threading.Event()
        self.commit()  # a readable (empty) bag exists from the start
        self._thread = threading.Thread(target=self._flusher, name="tether-bag-flush", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------------ writing

    def add_topic(self, topic: str, msgtype: str, qos: str | QoS = "default") -> Any:
        """Declare a topic (done implicitly by the first ``write``); ``qos`` goes into offered_qos_profiles."""
        T.check_topic(topic)
        T.check_msgtype(self.store, msgtype)
        with self._lock:
            key = (topic, msgtype)
            if key not in self._conns:
                self._conns[key] = self._writer.add_connection(
                    topic, msgtype, typestore=self.store, offered_qos_profiles=[resolve(qos).to_rosbag2()]
                )
            return self._conns[key]

    def write(self, topic: str, msgtype: str, msg: Any, stamp_ns: int | None = None) -> None:
        """Record one message (a rosbags object or CDR bytes) at log time ``stamp_ns`` (default: now).

        Never touches the disk: the message is serialised here and queued; the flusher thread writes and
        commits, so a control loop calling this at 500 Hz is never blocked behind file I/O.
        """
        T.check_topic(topic)
        T.check_msgtype(self.store, msgtype)
        data = bytes(msg) if isinstance(msg, (bytes, bytearray, memoryview)) else T.serialize(self.store, msg, msgtype)
        ts = time.time_ns() if stamp_ns is None else int(stamp_ns)
        with self._qlock:
            if self._closed:
                raise TetherError(f"bag {str(self.path)!r} is closed; expected an open recorder")
            if self.error is not None:  # the disk refused: drop (counted), never block or raise in the caller
                self.dropped += 1
                return
            if ts < self._last_ts:
                ts = self._last_ts
                self.reordered += 1
            self._last_ts = ts
            self._queue.append((topic, msgtype, ts, data))
            self.written += 1

    def _drain(self) -> int:
        """Move queued messages into the rosbags writer (flusher/close only; holds the writer lock)."""
        n = 0
        while True:
            with self._qlock:
                if not self._queue:
                    return n
                topic, msgtype, ts, data = self._queue.popleft()
            conn = self._conns.get((topic, msgtype)) or self.add_topic(topic, msgtype)
            self._writer.write(conn, ts, data)
            n += 1

    def record(self, transport: Any, topics: Iterable[tuple[str, str] | tuple[str, str, Any]]) -> list[Any]:
        """Subscribe to ``(topic, msgtype[, qos])`` on ``transport`` and record raw CDR at receive time.

        The default QoS for recording is ``sensor_data`` (best-effort matches every publisher).
        """
        subs = []
        for entry in topics:
            topic, msgtype = entry[0], entry[1]
            qos = entry[2] if len(entry) > 2 else "sensor_data"  # type: ignore[misc]
            self.add_topic(topic, msgtype, qos)

            def cb(raw: bytes, _t: str = topic, _m: str = msgtype) -> None:
                if not self._closed:  # a sample racing close() is simply not recorded
                    try:
                        self.write(_t, _m, raw)
                    except TetherError:
                        pass

            subs.append(transport.subscribe(topic, msgtype, cb, qos, raw=True))
        self._subs.extend(subs)
        return subs

    # ------------------------------------------------------------------------------------ durability

    def commit(self) -> None:
        """Make everything written so far durable and readable (chunk + provisional tail + metadata.yaml)."""
        with self._lock:
            if self._writer.storage is None or self.error is not None:
                return
            try:
                drained = self._drain()
                storage = self._writer.storage
                if storage.chunk.bio.tell():
                    storage.close_chunk()
                elif self._committed_once and len(self._writer.connections) == self._committed_conns:
                    return  # nothing new since the last commit: skip the disk work
                self._stage.commit(PROVISIONAL_TAIL)
                self.committed_messages += drained
                self._committed_once = True
                self._committed_conns = len(self._writer.connections)
                self._write_metadata()
            except OSError as exc:
                self._failed(exc)
                raise

    def _write_metadata(self) -> None:
        _write_atomic(
            self._writer.metapath,
            _metadata_yaml(self._writer.connections, dict(self._writer.counts), self._writer.min_timestamp,
                           self._writer.max_timestamp, self._mcap_name, self.version, self.distro),
        )

    def _flusher(self) -> None:
        while not self._stop.wait(self.flush_period):
            try:
                self.commit()
            except OSError:  # a full disk must not kill the process: commit() stopped recording, said it once
                return

    def _failed(self, exc: OSError) -> None:
        """The first write error ends recording: later messages are dropped (counted), the bag keeps everything
        committed before (a readable MCAP plus metadata.yaml), and ``close()`` raises one OSError naming it."""
        if self.error is not None:
            return
        self.error = exc
        import logging

        logging.getLogger("tether.ros.recorder").warning(
            "bag %s: %s; recording stopped, the %d messages committed before are kept", self.path,
            exc.strerror or exc, self.committed_messages)

    def close(self) -> None:
        """Finish the bag with rosbags' full MCAP summary and final metadata.yaml."""
        for s in self._subs:
            s.close()
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)
        with self._qlock:
            if self._closed:
                return
            self._closed = True  # no more writes accepted; the queue is final
        with self._lock:
            if self.error is None:
                try:
                    self.committed_messages += self._drain()
                    self._writer.close()  # summary + footer through the staged file, then rosbags' metadata.yaml
                    self._stage.close()
                    self._write_metadata()  # replaced by the target distro's version
                    return
                except OSError as exc:
                    self._failed(exc)
            self._stage.close(keep_committed=True)  # the provisional tail of the last good commit stays
            exc = self.error
            raise OSError(exc.errno, f"{exc.strerror or exc}; bag {self.path} keeps the {self.committed_messages} "
                                     f"messages committed before ({self.dropped + len(self._queue)} lost)",
                          str(self.path)) from None

    def __enter__(self) -> BagRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------------ recovery


def _scan_records(buf: bytes, start: int) -> tuple[int, bool]:
    """End offset of the last complete data-section record from ``start``, and whether a footer was found."""
    pos = start
    n = len(buf)
    while pos + 9 <= n:
        op = buf[pos]
        (length,) = struct.unpack_from("<Q", buf, pos + 1)
        end = pos + 9 + length
        if op in (0x0F, 0x02) or op == 0x00 or end > n:  # DataEnd/Footer/garbage: data section ends here
            return pos, op == 0x02 and end <= n
        if op == 0x06:  # chunk: must decompress to count as complete
            try:
                _check_chunk(buf[pos + 9 : end])
            except Exception:
                return pos, False
        pos = end
    return pos, False


def _check_chunk(rec: bytes) -> None:
    from rosbags.rosbag2.storage_mcap import decompress

    _start, _end, usize, crc = struct.unpack_from("<QQQI", rec, 0)
    (clen,) = struct.unpack_from("<I", rec, 28)
    comp = rec[32 : 32 + clen].decode()
    (size,) = struct.unpack_from("<Q", rec, 32 + clen)
    data = rec[40 + clen : 40 + clen + size]
    if len(data) != size:
        raise TetherError("truncated chunk")
    decompress(data, comp, usize, crc)


def recover(bag_dir: str | Path, distro: str = "humble") -> dict[str, int]:
    """Make a crashed recording readable; returns ``{topic: message_count}``. Safe on a healthy bag.

    Keeps all complete records of the MCAP data section, replaces anything after them by a summary-less
    tail (DataEnd + Footer), and rebuilds ``metadata.yaml`` from the channels/messages in the file.
    """
    from rosbags.rosbag2.storage_mcap import McapReader

    bag_dir = resolve_bag(bag_dir)
    version = metadata_version(distro)
    if not bag_dir.is_dir():
        raise TetherError(f"bag directory {str(bag_dir)!r} does not exist; expected a rosbag2 directory")
    files = sorted(bag_dir.glob("*.mcap"))
    if len(files) != 1:
        raise TetherError(f"{str(bag_dir)!r} holds {len(files)} .mcap files; expected exactly one")
    path = files[0]
    from tether.validation import check_regular_file

    check_regular_file(path, "bag file")  # a link is never followed (recovery rewrites the file in place)
    buf = path.read_bytes()
    if not buf.startswith(MCAP_MAGIC) or len(buf) < 9 + 8 or buf[8] != 0x01:
        raise TetherError(f"{str(path)!r} is not an MCAP file (bad magic/header); cannot recover")
    (hlen,) = struct.unpack_from("<Q", buf, 9)
    data_start = 8 + 9 + hlen
    healthy = buf.endswith(MCAP_MAGIC) and len(buf) >= 37 and buf[-37] == 0x02
    if healthy:
        (summary_start,) = struct.unpack_from("<Q", buf, len(buf) - 37 + 9)
        if summary_start:  # a cleanly closed bag: leave the file alone
            pass
        else:
            healthy = False
    if not healthy:
        end, _ = _scan_records(buf, data_start)
        with open(path, "r+b") as f:
            f.seek(end)
            f.write(PROVISIONAL_TAIL)
            f.truncate()
    reader = McapReader(path)
    reader.open()
    try:
        store = T.typestore(distro)
        conns = []
        counts: dict[int, int] = {}
        assert reader.statistics is not None
        for c in reader.connections:
            digest = store.hash_rihs01(c.msgtype) if c.msgtype in store.fielddefs else ""
            conns.append(c._replace(digest=digest))
            counts[c.id] = reader.statistics.channel_message_counts.get(c.id, 0)
        meta = _metadata_yaml(conns, counts, reader.statistics.start_time, reader.statistics.end_time, path.name,
                              version, distro)
    finally:
        reader.close()
    _write_atomic(bag_dir / "metadata.yaml", meta)
    return {c.topic: counts[c.id] for c in conns}


# ------------------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str
    log_ns: int  # bag (receive/log) time
    msg: Any


def read_bag(
    bag_dir: str | Path, distro: str = "humble", topics: Iterable[str] | None = None
) -> Iterator[BagMessage]:
    """Iterate a rosbag2 bag (ours or ``ros2 bag record``'s) with Tether's typestore (bundled vendor types).

    A bag that does not open (no metadata.yaml, or a tail torn by a kill inside a commit) is recovered first.
    """
    from rosbags.highlevel import AnyReader

    bag_dir = resolve_bag(bag_dir)
    if bag_dir.is_dir():
        from tether.validation import walk_folder

        walk_folder(bag_dir, "bag")  # a link inside (to an .mcap elsewhere) is refused, never followed
    store = T.typestore(distro)
    try:
        if not (bag_dir / "metadata.yaml").exists():
            raise FileNotFoundError("metadata.yaml")
        reader = AnyReader([bag_dir], default_typestore=store)
        reader.open()
    except Exception:
        recover(bag_dir, distro)
        reader = AnyReader([bag_dir], default_typestore=store)
        reader.open()
    try:
        wanted = set(topics) if topics is not None else None
        conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
        if wanted is not None and not conns:
            return  # rosbags reads an empty connection list as "all of them"
        for conn, ts, raw in reader.messages(connections=conns):
            yield BagMessage(conn.topic, conn.msgtype, ts, reader.deserialize(raw, conn.msgtype))
    finally:
        reader.close()
