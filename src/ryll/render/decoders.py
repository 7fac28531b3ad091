"""The image decoders the display channel uses, by SpiceImage type: the compiled codecs
wrapped to the common ``(Image, DisplayShared) -> BGRA pixels`` shape.

LZ_PLT palettes come from the message or the palette cache (spice-common
``canvas_get_lz``); GLZ and ZLIB_GLZ decode against the session's one GLZ dictionary.

A GLZ image may refer to an image another display channel has not delivered yet. spice-gtk
waits for it (decode-glz.c ``glz_decoder_window_bits``); ryll waits too, bounded by
``DisplayShared.glz_wait_seconds``, but only in a thread that may block
(``images.allow_waiting``). On the event loop the decoder raises ``GlzWaitNeeded`` instead and
the display channel has the message decoded again in a worker (``DecodeDeferred``). A
reference to an evicted image, or a wait that times out, stays ``missing_ref``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ryll.codecs.glz import GlzMissingReference, GlzWaitNeeded, decode_glz, decode_zlib_glz
from ryll.codecs.lz import apply_lz_alpha, decode_lz
from ryll.codecs.lz4 import decode_lz4
from ryll.codecs.quic import decode_quic
from ryll.errors import DecodeError
from ryll.protocol.constants import ImageType
from ryll.protocol.messages.draw import Image
from ryll.render.images import Decoder, DisplayShared, may_wait, resolve_palette
from ryll.video.mjpeg import decode_mjpeg_frame


def _quic(image: Image, shared: DisplayShared) -> np.ndarray:
    return decode_quic(image.data).pixels


def _lz_rgb(image: Image, shared: DisplayShared) -> np.ndarray:
    return decode_lz(image.data).pixels


def _lz_plt(image: Image, shared: DisplayShared) -> np.ndarray:
    entries = resolve_palette(image.palette, image.palette_id, image.lz_plt_flags, shared)
    if entries is None:
        raise DecodeError("lz_plt image without a palette", "missing_palette")
    return decode_lz(image.data, palette=np.array(entries, dtype=np.uint32)).pixels


def _waiting_for_refs(decode: Callable[[], np.ndarray], shared: DisplayShared) -> np.ndarray:
    """``decode()``, waiting (bounded, in a thread that may block) for each image it refers
    to that is not in the dictionary yet and may still arrive."""
    deadline: float | None = None
    while True:
        try:
            return decode()
        except GlzMissingReference as exc:
            if exc.evicted:
                raise
            if not may_wait():
                raise GlzWaitNeeded(exc.image_id) from exc
            now = time.monotonic()
            if deadline is None:
                deadline = now + shared.glz_wait_seconds
            left = deadline - now
            if left <= 0 or not shared.glz_dictionary().wait_for(exc.image_id, left):
                raise


def _glz(image: Image, shared: DisplayShared) -> np.ndarray:
    return _waiting_for_refs(
        lambda: decode_glz(image.data, shared.glz_dictionary()).pixels, shared)


def _zlib_glz(image: Image, shared: DisplayShared) -> np.ndarray:
    return _waiting_for_refs(
        lambda: decode_zlib_glz(image.data, image.glz_data_size,
                                shared.glz_dictionary()).pixels, shared)


def _lz4(image: Image, shared: DisplayShared) -> np.ndarray:
    return decode_lz4(image.data, image.width, image.height).pixels


def _jpeg(image: Image, shared: DisplayShared) -> np.ndarray:
    return decode_mjpeg_frame(image.data)


def _jpeg_alpha(image: Image, shared: DisplayShared) -> np.ndarray:
    """JPEG colour, then an LZ XXXA plane for alpha (spice-common canvas_get_jpeg_alpha)."""
    pixels = decode_mjpeg_frame(image.data[: image.jpeg_size])
    apply_lz_alpha(image.data[image.jpeg_size :], pixels)
    return pixels


DECODERS: dict[int, Decoder] = {
    ImageType.JPEG: _jpeg,
    ImageType.JPEG_ALPHA: _jpeg_alpha,
    ImageType.QUIC: _quic,
    ImageType.LZ_RGB: _lz_rgb,
    ImageType.LZ_PLT: _lz_plt,
    ImageType.GLZ_RGB: _glz,
    ImageType.ZLIB_GLZ_RGB: _zlib_glz,
    ImageType.LZ4: _lz4,
}
