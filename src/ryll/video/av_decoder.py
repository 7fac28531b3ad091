"""VP8, VP9, H.264 and H.265 stream frames through FFmpeg's decoders (PyAV).

These codecs predict frames from earlier ones, so one ``AvDecoder`` (an FFmpeg codec context)
lives as long as its stream. spice-server sends one encoded picture per STREAM_DATA
(gstreamer-encoder.c pulls one buffer per frame from appsink), as spice-gtk's
channel-display-gst.c expects; we decode with a single thread, because FFmpeg's frame
threading holds every picture back by one frame per thread, and a remote display wants each
frame drawn when it arrives. A codec whose decoder PyAV lacks (or PyAV missing altogether) has
no decoder: its streams are reported unsupported and it is not advertised.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from ryll.errors import DecodeError
from ryll.protocol.constants import VideoCodecType
from ryll.video.mjpeg import MAX_FRAME_SIDE


@cache
def _av() -> Any:
    """PyAV, imported at the first stream that needs it (about 20 MiB of FFmpeg a session
    without such a stream never maps), or None on a broken install."""
    try:
        import av
    except ImportError:  # pragma: no cover - av is a dependency; a broken install still runs
        return None
    return av

# SpiceVideoCodecType -> FFmpeg decoder name.
AV_CODECS: dict[int, str] = {
    VideoCodecType.VP8: "vp8",
    VideoCodecType.H264: "h264",
    VideoCodecType.VP9: "vp9",
    VideoCodecType.H265: "hevc",
}
# The largest compressed frame we hand to FFmpeg. The display channel's framer already bounds a
# message; this keeps a decoder from being fed anything bigger than a raw 4K BGRA frame.
MAX_FRAME_BYTES = 4096 * 2160 * 4


def _context(name: str) -> Any:
    av = _av()
    assert av is not None
    ctx = av.CodecContext.create(name, "r")
    ctx.thread_count = 1
    ctx.thread_type = "SLICE"
    ctx.open()
    return ctx


@cache
def can_decode(codec: int) -> bool:
    """True if FFmpeg's decoder for ``codec`` opens here."""
    name = AV_CODECS.get(codec)
    if name is None or _av() is None:
        return False
    try:
        _context(name)
    except Exception:  # any failure means "not here": unknown codec, no decoder built in...
        return False
    return True


def gap_reason(exc: Exception) -> str:
    """A short stable gap word for an FFmpeg error: InvalidDataError -> invalid_data."""
    name = type(exc).__name__.removesuffix("Error")
    word = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return word or "error"


class AvDecoder:
    def __init__(self, codec: int) -> None:
        self.codec = codec
        self.name = AV_CODECS[codec]
        self._ctx: Any = _context(self.name)

    def decode(self, data: bytes) -> np.ndarray | None:
        if self._ctx is None:
            raise DecodeError(f"{self.name}: decoder closed", "closed")
        if not data:
            raise DecodeError(f"{self.name}: empty frame", "empty")
        if len(data) > MAX_FRAME_BYTES:
            raise DecodeError(f"{self.name}: {len(data)}-byte frame is over the limit", "size")
        av = _av()
        try:
            frames = self._ctx.decode(av.Packet(data))
        except av.error.FFmpegError as exc:
            raise DecodeError(f"{self.name}: {exc}", gap_reason(exc)) from None
        if not frames:
            return None
        frame = frames[-1]
        if not (0 < frame.width <= MAX_FRAME_SIDE and 0 < frame.height <= MAX_FRAME_SIDE):
            raise DecodeError(f"{self.name}: frame {frame.width}x{frame.height}", "size")
        pixels = frame.to_ndarray(format="bgra")
        pixels[..., 3] = 255
        return pixels

    def close(self) -> None:
        # PyAV frees the FFmpeg context with its last reference.
        self._ctx = None


def make_av_decoder(codec: int) -> AvDecoder | None:
    if not can_decode(codec):
        return None
    return AvDecoder(codec)
