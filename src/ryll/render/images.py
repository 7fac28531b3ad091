"""Turning a SpiceImage into BGRA pixels: the image-type switch of spice-common's
``canvas_get_image_internal``, with the caches it consults and fills.

Rules it mirrors: an image flagged CACHE_ME is cached even when the draw is fully clipped
(the caller decodes before clipping); FROM_CACHE_LOSSLESS must find a lossless entry;
HIGH_BITS_SET forces alpha to 0xFF.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from ryll.codecs.glz import GlzDictionary
from ryll.errors import DecodeError
from ryll.protocol.constants import BitmapFlags, ImageFlags, ImageType
from ryll.protocol.messages.draw import Image, Palette
from ryll.render.bitmap import decode_bitmap
from ryll.render.image_cache import ImageCache, PaletteCache
from ryll.render.surface import Surface


class ImageUnsupported(Exception):
    """An image type ryll cannot decode yet; ``detail`` names it for the gap key."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


Decoder = Callable[[Image, "DisplayShared"], np.ndarray]

# How long a GLZ decode waits for an image another display channel has not delivered yet.
# spice-gtk waits without bound (decode-glz.c glz_decoder_window_bits: a coroutine condition);
# a bounded wait turns a lost image into the named gap decode_failure:glz_rgb:missing_ref.
GLZ_WAIT_TIMEOUT_S = 5.0

_waiting = threading.local()
T = TypeVar("T")


def may_wait() -> bool:
    """True in a thread run through :func:`allow_waiting` (never the event loop's)."""
    return bool(getattr(_waiting, "allowed", False))


def allow_waiting(fn: Callable[..., T], *args: object) -> T:
    """Run ``fn(*args)`` letting decoders block this thread (the session runs worker-thread
    handling through this; the event loop thread never is)."""
    before = may_wait()
    _waiting.allowed = True
    try:
        return fn(*args)
    finally:
        _waiting.allowed = before


@dataclass
class DisplayShared:
    """What every display channel of one session shares (spice-gtk: per session)."""

    images: ImageCache = field(default_factory=ImageCache)
    palettes: PaletteCache = field(default_factory=PaletteCache)
    # Decoders by image type (render.decoders.DECODERS; tests may register fewer).
    decoders: dict[int, Decoder] = field(default_factory=dict)
    # The GLZ window in pixels, from display INIT; the dictionary is made on first use.
    glz_window_pixels: int = 16 * 1024 * 1024 // 4
    glz_max_bytes: int = 256 * 1024 * 1024
    glz_wait_seconds: float = GLZ_WAIT_TIMEOUT_S
    _glz: GlzDictionary | None = None

    def glz_dictionary(self) -> GlzDictionary:
        if self._glz is None:
            self._glz = GlzDictionary(self.glz_window_pixels, self.glz_max_bytes)
        return self._glz


def codec_name(image_type: int) -> str:
    try:
        return ImageType(image_type).name.lower()
    except ValueError:
        return f"type{image_type}"


def resolve_palette(
    palette: Palette | None, palette_id: int | None, flags: int, shared: DisplayShared
) -> tuple[int, ...] | None:
    if palette_id is not None:
        entries = shared.palettes.get(palette_id)
        if entries is None:
            raise DecodeError(f"palette {palette_id:#x} is not in the cache", "palette_missing")
        return entries
    if palette is None:
        return None
    if flags & BitmapFlags.PAL_CACHE_ME:
        shared.palettes.put(palette.unique, palette.entries)
    return palette.entries


def decode_image(image: Image, shared: DisplayShared, surfaces: dict[int, Surface]) -> np.ndarray:
    """(H, W, 4) BGRA pixels of ``image``. Raises DecodeError or ImageUnsupported."""
    itype = image.type
    lossy = itype in (ImageType.JPEG, ImageType.JPEG_ALPHA)
    if itype in (ImageType.FROM_CACHE, ImageType.FROM_CACHE_LOSSLESS):
        cached = shared.images.get(image.id)
        if cached is None:
            raise DecodeError(f"image {image.id:#x} is not in the cache", "missing")
        if itype == ImageType.FROM_CACHE_LOSSLESS and cached.lossy:
            raise DecodeError(f"image {image.id:#x} is cached only lossy", "lossy_only")
        return cached.pixels
    if itype == ImageType.BITMAP:
        assert image.bitmap is not None
        bmp = image.bitmap
        pixels = decode_bitmap(bmp, resolve_palette(bmp.palette, bmp.palette_id, bmp.flags,
                                                     shared))
    elif itype == ImageType.SURFACE:
        src = surfaces.get(image.surface_id if image.surface_id is not None else -1)
        if src is None:
            raise DecodeError(f"source surface {image.surface_id} does not exist", "no_surface")
        pixels = src.pixels.copy()
    else:
        decoder = shared.decoders.get(itype)
        if decoder is None:
            raise ImageUnsupported(f"image_{codec_name(itype)}")
        pixels = decoder(image, shared)
    if pixels.shape[0] != image.height or pixels.shape[1] != image.width:
        raise DecodeError(
            f"{codec_name(itype)} decoded {pixels.shape[1]}x{pixels.shape[0]}, descriptor "
            f"says {image.width}x{image.height}",
            "size_mismatch",
        )
    if image.flags & ImageFlags.HIGH_BITS_SET:
        if not pixels.flags.writeable:  # e.g. a view of the GLZ dictionary's own copy
            pixels = pixels.copy()
        pixels[..., 3] = 255
    if image.flags & (ImageFlags.CACHE_ME | ImageFlags.CACHE_REPLACE_ME):
        # A decoder may return a view of a buffer it reuses; the cache needs its own pixels.
        shared.images.put(image.id, pixels if pixels.base is None else pixels.copy(), lossy)
    return pixels
