"""Video stream decoders: frame bytes in, BGRA pixels out, one decoder object per stream.

A stream's frames are not independent for VP8, VP9, H.264 and H.265 (inter-frame prediction),
so each stream gets its own stateful decoder, made at STREAM_CREATE and closed when the stream
is destroyed. MJPEG frames are self-contained (libjpeg-turbo through simplejpeg); the other
codecs go through FFmpeg (PyAV). ``make_decoder`` returns None for a codec with no decoder
here, and ``available_codecs`` tells the display channel which CODEC_* caps to advertise.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from typing import Protocol

import numpy as np

from ryll.protocol.constants import VideoCodecType


class VideoDecoder(Protocol):
    """One stream's decoder. ``decode`` returns (H, W, 4) uint8 BGRA with alpha 255, or None
    when the codec holds the frame back (no picture yet); it raises DecodeError on bad data."""

    def decode(self, data: bytes) -> np.ndarray | None: ...

    def close(self) -> None: ...


def make_decoder(codec: int) -> VideoDecoder | None:
    """A new decoder for one stream of ``codec``, or None if nothing here decodes it."""
    if codec == VideoCodecType.MJPEG:
        from ryll.video.mjpeg import MjpegDecoder

        return MjpegDecoder()
    from ryll.video import av_decoder

    return av_decoder.make_av_decoder(codec)


@cache
def available_codecs() -> tuple[int, ...]:
    """The SpiceVideoCodecTypes decoded here, in enum order: MJPEG, and FFmpeg's own VP8,
    H.264, VP9 and H.265 decoders when PyAV is installed.

    Known without importing PyAV, so a session that never gets such a stream never loads
    FFmpeg: every FFmpeg build PyAV ships or links (its wheels, Debian's) has these native
    decoders. Should one still fail to open at STREAM_CREATE, that stream is the gap
    ``display:unimpl:stream_codec_<name>`` and the others go on.
    """
    found = [int(VideoCodecType.MJPEG)]
    if importlib.util.find_spec("av") is not None:
        from ryll.video.av_decoder import AV_CODECS  # cheap: it imports av when used

        found += [int(c) for c in AV_CODECS]
    return tuple(sorted(found))


# Names for --video-codecs and logs: SpiceVideoCodecType names, lower case.
CODEC_NAMES: dict[str, int] = {c.name.lower(): int(c) for c in VideoCodecType}
