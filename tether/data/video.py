"""Camera streams as MP4 files (H.264 via the ffmpeg binary bundled with imageio-ffmpeg).

The writer emits *fragmented* MP4 (``frag_keyframe+empty_moov``): a plain MP4 only becomes readable when
its index (moov atom) is written at close, so a recorder killed mid-episode would lose the whole video; a
fragmented file is readable up to the last complete fragment. Keyframes every ``gop`` frames bound how
much a crash can lose (with the default one keyframe per second of video, about one second).

Timestamps are part of the format, not decoration: LeRobot (torchcodec or PyAV) looks frame k up at
``k / fps`` and refuses a frame more than ``tolerance_s`` (1e-4 s) away. libx264's default B-frames delay
presentation by two frames, which a plain MP4 hides with an edit list but a fragmented one (empty moov, no
edit list) exposes as a 2/fps offset. So B-frames are off (``-bf 0``): decode order is presentation order,
and frame k's pts is exactly k in a time base that is a multiple of the rate (checked with PyAV in the tests).
"""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import numpy as np

from tether.errors import TetherError

DEFAULT_CODEC = "libx264"
CODECS = ("libx264",)  # what the features block declares ("h264", yuv420p) and LeRobot decodes


class VideoWriter:
    """Append RGB uint8 frames of a fixed (H, W) to one MP4 file."""

    def __init__(self, path: str | Path, fps: float, *, codec: str = DEFAULT_CODEC, crf: int = 18,
                 gop: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = float(fps)
        if codec not in CODECS:
            raise TetherError(f"video codec {codec!r} is not supported; expected one of {list(CODECS)}")
        if not self.fps > 0:
            raise TetherError(f"video fps is {fps!r}; expected a positive frame rate")
        self.codec = codec
        self.crf = int(crf)
        self.gop = max(1, int(round(fps))) if gop is None else int(gop)
        self.frames = 0
        self.shape: tuple[int, int] | None = None
        self._gen = None

    def _start(self, h: int, w: int) -> None:
        import imageio_ffmpeg

        # even sizes are required by yuv420p; we refuse odd sizes instead of silently rescaling pixels
        if h % 2 or w % 2:
            raise TetherError(f"video frame size {h}x{w} has an odd side; expected even height and width")
        # -bf 0: no B-frames, so pts == frame index (module doc); the rest is LeRobot-compatible H.264
        params = ["-g", str(self.gop), "-bf", "0", "-crf", str(self.crf), "-preset", "veryfast",
                  "-movflags", "frag_keyframe+empty_moov+default_base_moof"]
        self._gen = imageio_ffmpeg.write_frames(
            str(self.path), (w, h), fps=self.fps, codec=self.codec, pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p", macro_block_size=1, output_params=params, ffmpeg_log_level="error",
        )
        self._gen.send(None)
        self.shape = (h, w)

    def add(self, frame: np.ndarray) -> None:
        f = np.asarray(frame)
        if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
            raise TetherError(f"video frame has shape {f.shape} dtype {f.dtype}; expected (H, W, 3) uint8 RGB")
        if self._gen is None:
            self._start(f.shape[0], f.shape[1])
        elif f.shape[:2] != self.shape:
            raise TetherError(f"video frame size {f.shape[:2]} differs from this stream's {self.shape}")
        self._gen.send(np.ascontiguousarray(f))
        self.frames += 1

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()
            self._gen = None


def complete_length(path: str | Path) -> int:
    """Bytes of ``path`` made of complete top-level MP4 boxes, ending after the last whole fragment.

    A writer killed mid-write leaves a torn last box; a torn ``moof`` makes FFmpeg (so PyAV, torchcodec and
    LeRobot) refuse the whole file, not just the tail. Boxes are (size u32, type) with size 1 meaning a u64
    size after the type and 0 meaning "to the end of the file" (never written by a fragmenting muxer).
    """
    data = Path(path).read_bytes()
    pos = good = 0
    pending_moof = False
    while pos + 8 <= len(data):
        size = struct.unpack_from(">I", data, pos)[0]
        kind = data[pos + 4:pos + 8]
        if size == 1:
            if pos + 16 > len(data):
                break
            size = struct.unpack_from(">Q", data, pos + 8)[0]
        if size < 8 or pos + size > len(data):
            break
        pos += size
        if kind == b"moof":
            pending_moof = True  # a fragment counts once its media data is complete too
        else:
            pending_moof = pending_moof and kind != b"mdat"
            if not pending_moof:
                good = pos
    return good


def trim_to_complete(path: str | Path) -> int:
    """Cut a torn tail off a fragmented MP4 in place (what ``repair`` does); returns the bytes removed."""
    path = Path(path)
    size = path.stat().st_size
    keep = complete_length(path)
    if 0 < keep < size:
        with open(path, "r+b") as fh:
            fh.truncate(keep)
        return size - keep
    return 0


def read_video(path: str | Path, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Decode frames [start, stop) of an MP4 to (T, H, W, 3) uint8; a truncated fragmented file decodes
    up to its last complete fragment (read from a trimmed temporary copy: the reader never writes)."""
    path = Path(path)
    if not path.is_file():
        raise TetherError(f"video file {path} does not exist")
    keep = complete_length(path)
    if 0 < keep < path.stat().st_size:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / path.name
            with open(path, "rb") as src, open(copy, "wb") as dst:
                dst.write(src.read(keep))
            return _decode(copy, start, stop)
    return _decode(path, start, stop)


def _decode(path: Path, start: int, stop: int | None) -> np.ndarray:
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        meta = next(gen)
    except (RuntimeError, OSError, StopIteration) as exc:
        gen.close()
        raise TetherError(f"video file {path} cannot be decoded (no complete MP4 header); expected an MP4 "
                          "written by VideoWriter") from exc
    w, h = meta["size"]
    frames = []
    try:
        for i, buf in enumerate(gen):
            if stop is not None and i >= stop:
                break
            if i >= start:
                frames.append(np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3))
    finally:
        gen.close()
    if not frames:
        return np.zeros((0, h, w, 3), dtype=np.uint8)
    return np.stack(frames)
