"""QMask images: the 1-bit masks of FILL/OPAQUE/COPY/BLEND/BLACKNESS/WHITENESS/INVERS/ROP3, as
spice-common canvas_base.c ``canvas_get_mask`` / ``canvas_get_bitmap_mask`` read them.

A mask is a BITMAP in 1BIT_LE or 1BIT_BE (no palette: a set bit is "draw here"), or a cached
one, or a SURFACE: canvas_mask_pixman then wraps the surface's own memory as a PIXMAN_a1 image
of the surface's width, height and stride (:func:`surface_bits`). The cache holds masks
*uninverted* (spice-common caches the plain bits and inverts on use), stored in the shared
image cache as BGRA with 0xFF where the bit is set, so one cache and its INVAL rules serve
both; a cached colour image used as a mask counts its non-zero alpha as set.
"""

from __future__ import annotations

import numpy as np

from ryll.codecs.lz import MAX_PIXELS
from ryll.errors import DecodeError
from ryll.protocol.constants import BitmapFmt, ImageFlags, ImageType, SurfaceFmt
from ryll.protocol.messages.draw import Image
from ryll.render.image_cache import ImageCache, ImageKind
from ryll.render.surface import Surface


class MaskUnsupported(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def bitmap_bits(image: Image) -> np.ndarray:
    """The (h, w) bool bits of a 1-bit BITMAP mask (top-down)."""
    bmp = image.bitmap
    assert bmp is not None
    if bmp.format not in (BitmapFmt.FMT_1BIT_LE, BitmapFmt.FMT_1BIT_BE):
        raise DecodeError(f"mask bitmap format {bmp.format} is not 1-bit", "mask_format")
    w, h = bmp.width, bmp.height
    if w == 0 or h == 0:
        raise DecodeError(f"empty mask {w}x{h}", "mask_empty")
    if w * h > MAX_PIXELS:  # 1 bit a pixel in, a byte a pixel out: check before expanding
        raise DecodeError(f"mask {w}x{h} is over the limit of {MAX_PIXELS} pixels", "too_large")
    row_bytes = (w + 7) // 8
    if bmp.stride < row_bytes or len(bmp.data) < bmp.stride * h:
        raise DecodeError("mask data shorter than stride x height", "mask_short")
    rows = np.frombuffer(bmp.data, np.uint8, bmp.stride * h).reshape(h, bmp.stride)
    rows = rows[:, :row_bytes]
    if not bmp.top_down:
        rows = rows[::-1]
    # spice-common copies 1BIT_LE straight into a pixman a1 image (LSB = first pixel on
    # little-endian) and bit-reverses 1BIT_BE.
    if bmp.format == BitmapFmt.FMT_1BIT_LE:
        bits = np.unpackbits(rows, axis=1, bitorder="little")
    else:
        bits = np.unpackbits(rows, axis=1, bitorder="big")
    return bits[:, :w].astype(bool)


def decode_mask(image: Image, cache: ImageCache) -> np.ndarray:
    """(h, w) bool bits of a QMask image, uninverted; caches CACHE_ME masks."""
    if image.type == ImageType.BITMAP:
        bits = bitmap_bits(image)
    elif image.type in (ImageType.FROM_CACHE, ImageType.FROM_CACHE_LOSSLESS):
        cached = cache.get(image.id)
        if cached is None:
            raise DecodeError(f"mask {image.id:#x} is not in the cache", "missing")
        return cached.pixels[..., 3] != 0
    else:
        # canvas_get_mask accepts nothing else (the display channel reads SURFACE masks
        # with surface_bits before it gets here).
        raise MaskUnsupported(f"qmask_{ImageType(image.type).name.lower()}"
                              if image.type in ImageType._value2member_map_ else "qmask_type")
    if image.flags & (ImageFlags.CACHE_ME | ImageFlags.CACHE_REPLACE_ME):
        stored = np.zeros((*bits.shape, 4), np.uint8)
        stored[bits] = 0xFF
        # spice-common caches the mask as an a1 image: alpha only, opaque black when a
        # colour canvas later uses it as an image.
        cache.put(image.id, stored, kind=ImageKind.ALPHA_ONLY)
    return bits


def _raw_rows(surface: Surface, row_bytes: int) -> np.ndarray:
    """The first ``row_bytes`` bytes of each row of the surface's memory as spice-gtk lays it
    out (stride width * 4 for every format, channel-display.c display_handle_surface_create)."""
    px = surface.pixels
    fmt = surface.format
    h, w = px.shape[:2]
    if fmt == SurfaceFmt.FMT_8_A:
        raw = px[..., 3]
    elif fmt in (SurfaceFmt.FMT_16_555, SurfaceFmt.FMT_16_565):
        b, g, r = (px[..., c].astype(np.uint16) for c in range(3))
        if fmt == SurfaceFmt.FMT_16_555:
            word = (r >> 3) << 10 | (g >> 3) << 5 | (b >> 3)
        else:
            word = (r >> 3) << 11 | (g >> 2) << 5 | (b >> 3)
        raw = word.astype("<u2").view(np.uint8).reshape(h, w * 2)
    else:
        raw = px.reshape(h, w * 4)
    out = np.zeros((h, row_bytes), np.uint8)
    n = min(row_bytes, raw.shape[1])
    out[:, :n] = raw[:, :n]
    return out


def surface_bits(surface: Surface) -> np.ndarray:
    """(h, w) bool bits of a SURFACE QMask: canvas_base.c canvas_mask_pixman takes the
    surface's pixels as PIXMAN_a1 (pixel x is bit x & 7 of byte x >> 3, LSB first on
    little-endian). For a 1_A surface that is each pixel's alpha bit; any other format's bytes
    are reinterpreted as they lie in memory (32-bit surfaces with ryll's x byte 0xFF where
    pixman may hold another value)."""
    w = surface.width
    if surface.format == SurfaceFmt.FMT_1_A:
        return surface.pixels[..., 3] != 0
    rows = _raw_rows(surface, (w + 7) // 8)
    return np.unpackbits(rows, axis=1, bitorder="little")[:, :w].astype(bool)
