"""Video stream decoders: frame bytes in, BGRA pixels out, one decoder object per stream.

A stream's frames are not independent for VP8, VP9, H.264 and H.265 (inter-frame prediction),
so each stream gets its own stateful decoder, made at STREAM_CREATE and closed when the stream
is destroyed. MJPEG frames are self-contained (libjpeg-turbo through simplejpeg); the other
codecs go through FFmpeg (PyAV). ``make_decoder`` returns None for a codec with no decoder
here, and ``available_codecs`` tells the display channel which CODEC_* caps to advertise.
"""

from __future__ import annotations

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
    """The SpiceVideoCodecTypes whose decoder opens on this machine, in enum order."""
    from ryll.video import av_decoder

    found = [int(VideoCodecType.MJPEG)]
    found += [int(c) for c in av_decoder.AV_CODECS if av_decoder.can_decode(c)]
    return tuple(sorted(found))


# Names for --video-codecs and logs: SpiceVideoCodecType names, lower case.
CODEC_NAMES: dict[str, int] = {c.name.lower(): int(c) for c in VideoCodecType}
