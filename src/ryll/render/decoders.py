"""The image decoders the display channel uses, by SpiceImage type: the compiled codecs
wrapped to the common ``(Image, DisplayShared) -> BGRA pixels`` shape.

LZ_PLT palettes come from the message or the palette cache (spice-common
``canvas_get_lz``); GLZ and ZLIB_GLZ decode against the session's one GLZ dictionary.

Each decoder also says what the image is (render.image_cache.ImageKind) from the format its
payload declares, as spice-common picks the pixman format of the surface it decodes into:
QUIC RGBA, LZ / GLZ RGBA, LZ4 with the RGBA bitmap format and JPEG_ALPHA have alpha
(a8r8g8b8); LZ A8 is alpha only (a8); the rest (RGB32 / RGB24 / RGB16, the palette types,
JPEG) have none.

A GLZ image may refer to an image another display channel has not delivered yet. spice-gtk
waits for it (decode-glz.c ``glz_decoder_window_bits``); ryll's decoders never wait: they
raise ``GlzMissingReference`` (``evicted`` False), the canvas turns it into ``ImageNotReady``
and the display channel parks the draw until the image is there. A reference to an evicted
image stays the gap ``missing_ref``.
"""

from __future__ import annotations

import numpy as np

from ryll.codecs import lz as L
from ryll.codecs.glz import decode_glz, decode_zlib_glz
from ryll.codecs.lz import LzImage, apply_lz_alpha, decode_lz
from ryll.codecs.lz4 import FMT_RGBA, decode_lz4
from ryll.codecs.quic import decode_quic
from ryll.errors import DecodeError
from ryll.protocol.constants import ImageType
from ryll.protocol.messages.draw import Image
from ryll.render.image_cache import ImageKind
from ryll.render.images import Decoded, Decoder, DisplayShared, resolve_palette
from ryll.video.mjpeg import decode_mjpeg_frame

QUIC_RGBA = 5  # QuicImageType


def _lz_decoded(lz: LzImage) -> Decoded:
    """canvas_get_lz / decode-glz.c: RGBA is a8r8g8b8, A8 is a8, everything else x8r8g8b8
    (or x1r5g5b5 for RGB16). (An XXXA image, which spice-common refuses as an image, is
    taken as colour 0 with alpha.)"""
    if lz.type in (L.RGBA, L.XXXA):
        return Decoded(lz.pixels, ImageKind.ALPHA)
    if lz.type == L.A8:
        return Decoded(lz.pixels, ImageKind.ALPHA_ONLY)
    return Decoded(lz.pixels, ImageKind.OPAQUE)


def _quic(image: Image, shared: DisplayShared) -> Decoded:
    q = decode_quic(image.data)
    return Decoded(q.pixels, ImageKind.ALPHA if q.type == QUIC_RGBA else ImageKind.OPAQUE)


def _lz_rgb(image: Image, shared: DisplayShared) -> Decoded:
    return _lz_decoded(decode_lz(image.data))


def _lz_plt(image: Image, shared: DisplayShared) -> Decoded:
    entries = resolve_palette(image.palette, image.palette_id, image.lz_plt_flags, shared)
    if entries is None:
        raise DecodeError("lz_plt image without a palette", "missing_palette")
    return _lz_decoded(decode_lz(image.data, palette=np.array(entries, dtype=np.uint32)))


def _glz(image: Image, shared: DisplayShared) -> Decoded:
    return _lz_decoded(decode_glz(image.data, shared.glz_dictionary()))


def _zlib_glz(image: Image, shared: DisplayShared) -> Decoded:
    return _lz_decoded(decode_zlib_glz(image.data, image.glz_data_size,
                                       shared.glz_dictionary()))


def _lz4(image: Image, shared: DisplayShared) -> Decoded:
    """canvas_get_lz4: the format byte after top_down; only SPICE_BITMAP_FMT_RGBA has alpha."""
    lz = decode_lz4(image.data, image.width, image.height)
    return Decoded(lz.pixels, ImageKind.ALPHA if lz.type == FMT_RGBA else ImageKind.OPAQUE)


def _jpeg(image: Image, shared: DisplayShared) -> Decoded:
    return Decoded(decode_mjpeg_frame(image.data), ImageKind.OPAQUE)


def _jpeg_alpha(image: Image, shared: DisplayShared) -> Decoded:
    """JPEG colour, then an LZ XXXA plane for alpha (spice-common canvas_get_jpeg_alpha:
    a8r8g8b8)."""
    pixels = decode_mjpeg_frame(image.data[: image.jpeg_size])
    apply_lz_alpha(image.data[image.jpeg_size :], pixels)
    return Decoded(pixels, ImageKind.ALPHA)


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
