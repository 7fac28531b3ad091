"""A video file of a monitor, frame by frame with the real times they were drawn (PyAV).

The Rust ryll writes ``display.mp4`` (H.264) of the primary surface for ``--capture``; we do
the same with the best encoder PyAV's FFmpeg has: H.264 (libx264) in MP4, else VP9 or VP8 in
WebM, else MPEG-4 part 2 in MP4. Frames carry their time in milliseconds (a variable frame
rate: a still screen costs nothing). The size is fixed by the first frame (rounded down to
even, as 4:2:0 needs); a later frame of another size (a mode change) is scaled to it.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("ryll.capture")

# (codec, container suffix, encoder options), best first. One encoder thread: the video takes
# at most one core, never the one the session runs on as well.
ENCODERS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("libx264", ".mp4", {"preset": "ultrafast", "tune": "zerolatency", "crf": "23",
                         "threads": "1"}),
    ("libvpx-vp9", ".webm", {"deadline": "realtime", "cpu-used": "8", "threads": "1"}),
    ("libvpx", ".webm", {"deadline": "realtime", "cpu-used": "8", "threads": "1"}),
    ("mpeg4", ".mp4", {}),
)
TIME_BASE = Fraction(1, 1000)


def pick_encoder() -> tuple[str, str, dict[str, str]] | None:
    """The first encoder of ENCODERS this PyAV can open, or None."""
    import av

    for name, suffix, options in ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # PyAV raises UnknownCodecError (or ValueError in older ones)
            continue
        return name, suffix, options
    return None


class VideoWriter:
    """``add(pixels, at)`` frames in time order, then ``close()``. Not thread-safe: one caller
    (the capture's encoder thread) at a time."""

    def __init__(self, stem: Path) -> None:
        self.stem = stem
        self.path: Path | None = None
        self.codec: str | None = None
        self.frames = 0
        self._container: Any = None
        self._stream: Any = None
        self._last_pts = -1

    def add(self, pixels: np.ndarray, at: float) -> None:
        """One frame: (H, W, 3) RGB or (H, W, 4) RGBA pixels, drawn ``at`` seconds into the
        session. A frame in the same millisecond as the previous one is skipped."""
        import av

        pts = int(at * 1000)
        if pts <= self._last_pts:
            return
        height, width, depth = pixels.shape
        if self._container is None:
            self._open(width, height)
        # Into the frame's plane with numpy: one copy, and numpy lets the GIL go while it
        # copies (PyAV's from_ndarray holds it throughout, which slows the session's thread).
        frame = av.VideoFrame(width, height, "rgba" if depth == 4 else "rgb24")
        plane = frame.planes[0]
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(height, plane.line_size)
        np.copyto(rows[:, :width * depth], pixels.reshape(height, width * depth))
        frame = frame.reformat(width=self._stream.width, height=self._stream.height,
                               format="yuv420p")
        frame.pts = pts
        frame.time_base = TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self._last_pts = pts
        self.frames += 1

    def _open(self, width: int, height: int) -> None:
        import av

        chosen = pick_encoder()
        if chosen is None:
            raise RuntimeError("PyAV offers no video encoder (libx264, libvpx, mpeg4)")
        name, suffix, options = chosen
        self.path = self.stem.with_suffix(suffix)
        self.codec = name
        container = av.open(str(self.path), "w")
        stream: Any = container.add_stream(name, options=options)
        stream.width = max(2, width - width % 2)
        stream.height = max(2, height - height % 2)
        stream.pix_fmt = "yuv420p"
        stream.time_base = TIME_BASE
        stream.codec_context.time_base = TIME_BASE
        if name == "mpeg4":
            stream.codec_context.framerate = Fraction(1000)
        self._container, self._stream = container, stream
        log.debug("capture: video %s (%s, %dx%d)", self.path, name, stream.width, stream.height)

    def close(self) -> None:
        """Flush the encoder and finish the file (MP4's index is written here)."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None
