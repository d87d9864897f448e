"""Camera streams as MP4 files (H.264 via the ffmpeg binary bundled with imageio-ffmpeg).

The writer emits *fragmented* MP4 (``frag_keyframe+empty_moov``): a plain MP4 only becomes readable when
its index (moov atom) is written at close, so a recorder killed mid-episode would lose the whole video; a
fragmented file is readable up to the last complete fragment. Keyframes every ``gop`` frames bound how
much a crash can lose (with the default one keyframe per second of video, about one second).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tether.errors import TetherError

DEFAULT_CODEC = "libx264"


class VideoWriter:
    """Append RGB uint8 frames of a fixed (H, W) to one MP4 file."""

    def __init__(self, path: str | Path, fps: float, *, codec: str = DEFAULT_CODEC, crf: int = 18,
                 gop: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = float(fps)
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
        params = ["-g", str(self.gop), "-bf", "0", "-movflags", "frag_keyframe+empty_moov+default_base_moof"]
        if self.codec in ("libx264", "libx264rgb"):
            params += ["-crf", str(self.crf), "-preset", "veryfast"]
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


def read_video(path: str | Path, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Decode frames [start, stop) of an MP4 to (T, H, W, 3) uint8; a truncated fragmented file decodes
    up to its last complete fragment."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise TetherError(f"video file {path} does not exist")
    gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    meta = next(gen)
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
