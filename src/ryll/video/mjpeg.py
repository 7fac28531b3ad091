"""MJPEG stream frames through libjpeg-turbo (simplejpeg). Each SPICE MJPEG frame is a full
JPEG with its tables (spice-server mjpeg-encoder.c), so frames decode independently."""

from __future__ import annotations

import numpy as np

from ryll.codecs.lz import MAX_PIXELS
from ryll.errors import DecodeError
from ryll.protocol.constants import VideoCodecType

# Frame sides beyond this are refused before decoding (the surface limit's longer side), and
# so are frames of more pixels than an image may have (8192 x 4096, 128 MiB decoded): the JPEG
# header is read first, so a few hundred bytes cannot make ryll allocate more.
MAX_FRAME_SIDE = 16384
MAX_FRAME_PIXELS = MAX_PIXELS


def decode_mjpeg_frame(data: bytes) -> np.ndarray:
    """(H, W, 4) BGRA, alpha 255."""
    import simplejpeg  # at the first MJPEG frame: a session without one never loads it

    try:
        width, height, _, _ = simplejpeg.decode_jpeg_header(data)
    except (ValueError, LookupError) as exc:  # simplejpeg: KeyError for an unknown sampling
        raise DecodeError(f"mjpeg: bad JPEG header: {exc!r}", "bad_header") from None
    if not (0 < width <= MAX_FRAME_SIDE and 0 < height <= MAX_FRAME_SIDE) or \
            width * height > MAX_FRAME_PIXELS:
        raise DecodeError(f"mjpeg: frame {width}x{height} out of range", "size")
    try:
        pixels = simplejpeg.decode_jpeg(data, colorspace="BGRA", fastdct=False, fastupsample=False)
    except (ValueError, LookupError) as exc:
        raise DecodeError(f"mjpeg: {exc!r}", "corrupt") from None
    pixels[..., 3] = 255
    return pixels


class MjpegDecoder:
    """The per-stream decoder object for MJPEG: stateless, since every frame is a whole JPEG."""

    codec = VideoCodecType.MJPEG

    def decode(self, data: bytes) -> np.ndarray:
        return decode_mjpeg_frame(data)

    def close(self) -> None:
        pass
