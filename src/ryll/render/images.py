"""Turning a SpiceImage into BGRA pixels: the image-type switch of spice-common's
``canvas_get_image_internal``, with the caches it consults and fills.

Rules it mirrors: an image flagged CACHE_ME is cached even when the draw is fully clipped
(the caller decodes before clipping); FROM_CACHE_LOSSLESS must find a lossless entry;
HIGH_BITS_SET forces alpha to 0xFF on an image without alpha (spice-common: on an x8r8g8b8
surface only, never on a cached one).

Every decode gives a :class:`Decoded`: the pixels and their :class:`ImageKind` (opaque
colour, colour with alpha, alpha only), set by the decoder from the image's own format and
kept in the image cache with the pixels, so a FROM_CACHE image is what it was when cached.
The display channel converts it for the canvas from that (canvas_get_target_format).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ryll.budget import MemoryBudget
from ryll.codecs.glz import GlzDictionary
from ryll.codecs.lz import MAX_PIXELS
from ryll.errors import DecodeError
from ryll.protocol.constants import BitmapFlags, BitmapFmt, ImageFlags, ImageType, SurfaceFmt
from ryll.protocol.messages.draw import Image, Palette
from ryll.render.bitmap import decode_bitmap
from ryll.render.image_cache import ImageCache, ImageKind, PaletteCache
from ryll.render.surface import Surface

__all__ = ["Decoded", "DisplayShared", "ImageKind", "ImageUnsupported", "decode_image"]


class ImageUnsupported(Exception):
    """An image type ryll cannot decode yet; ``detail`` names it for the gap key."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded image: (H, W, 4) BGRA pixels and what they are (:class:`ImageKind`)."""

    pixels: np.ndarray
    kind: ImageKind


def bitmap_kind(fmt: int) -> ImageKind:
    """spice_bitmap_format_to_pixman's family for a BITMAP's format: RGBA is a8r8g8b8, 8BIT_A
    is a8, the rest (32BIT, 24BIT, 16BIT and the indexed formats) have no alpha. (An indexed
    bitmap cached on an ARGB canvas is a8r8g8b8 with the palette's top bytes in spice-common;
    ryll's palette lookup makes it opaque: docs/gaps.md.)"""
    if fmt == BitmapFmt.FMT_RGBA:
        return ImageKind.ALPHA
    if fmt == BitmapFmt.FMT_8BIT_A:
        return ImageKind.ALPHA_ONLY
    return ImageKind.OPAQUE


def surface_kind(fmt: int) -> ImageKind:
    """The kind of a surface's pixels (spice_surface_format_to_pixman's family)."""
    if fmt == SurfaceFmt.FMT_32_ARGB:
        return ImageKind.ALPHA
    if fmt in (SurfaceFmt.FMT_8_A, SurfaceFmt.FMT_1_A):
        return ImageKind.ALPHA_ONLY
    return ImageKind.OPAQUE


Decoder = Callable[[Image, "DisplayShared"], Decoded]

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
    _glz: GlzDictionary | None = None
    # The session's memory budget (ryll.budget): the caches here are metered into it.
    memory: MemoryBudget = field(default_factory=MemoryBudget)

    def __post_init__(self) -> None:
        self.images.memory = self.memory
        self.memory.meter("image_cache", lambda: self.images.bytes)
        self.memory.reclaimer(self.images.shrink)
        self.memory.meter("glz_dictionary",
                          lambda: 0 if self._glz is None else self._glz.total_pixels * 4)

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


# Plain ints: ``int & IntFlag`` builds a flag object (enum's __and__) on every image.
_HIGH_BITS_SET = int(ImageFlags.HIGH_BITS_SET)
_CACHED = int(ImageFlags.CACHE_ME | ImageFlags.CACHE_REPLACE_ME)


def decode_image(image: Image, shared: DisplayShared, surfaces: dict[int, Surface]) -> Decoded:
    """``image`` decoded: (H, W, 4) BGRA pixels and their kind. Raises DecodeError or
    ImageUnsupported."""
    itype = image.type
    lossy = itype in (ImageType.JPEG, ImageType.JPEG_ALPHA)
    if itype in (ImageType.FROM_CACHE, ImageType.FROM_CACHE_LOSSLESS):
        cached = shared.images.get(image.id)
        if cached is None:
            raise DecodeError(f"image {image.id:#x} is not in the cache", "missing")
        if itype == ImageType.FROM_CACHE_LOSSLESS and cached.lossy:
            raise DecodeError(f"image {image.id:#x} is cached only lossy", "lossy_only")
        return Decoded(cached.pixels, cached.kind)
    # What the decoded image will hold: within the per-image cap, then asked of the budget,
    # before anything is decoded.
    if image.width * image.height > MAX_PIXELS:
        raise DecodeError(f"{codec_name(itype)}: {image.width}x{image.height} is over the "
                          f"limit of {MAX_PIXELS} pixels", "too_large")
    shared.memory.require("image", image.width * image.height * 4)
    if itype == ImageType.BITMAP:
        assert image.bitmap is not None
        bmp = image.bitmap
        pixels = decode_bitmap(bmp, resolve_palette(bmp.palette, bmp.palette_id, bmp.flags,
                                                     shared))
        kind = bitmap_kind(bmp.format)
    elif itype == ImageType.SURFACE:
        src = surfaces.get(image.surface_id if image.surface_id is not None else -1)
        if src is None:
            raise DecodeError(f"source surface {image.surface_id} does not exist", "no_surface")
        pixels = src.pixels.copy()
        kind = surface_kind(src.format)
    else:
        decoder = shared.decoders.get(itype)
        if decoder is None:
            raise ImageUnsupported(f"image_{codec_name(itype)}")
        decoded = decoder(image, shared)
        pixels, kind = decoded.pixels, decoded.kind
    if pixels.shape[0] != image.height or pixels.shape[1] != image.width:
        raise DecodeError(
            f"{codec_name(itype)} decoded {pixels.shape[1]}x{pixels.shape[0]}, descriptor "
            f"says {image.width}x{image.height}",
            "size_mismatch",
        )
    if image.flags & _HIGH_BITS_SET and kind == ImageKind.OPAQUE:
        # canvas_get_image_internal ORs 0xff000000 into an x8r8g8b8 image only: an image
        # with alpha (or alpha only) keeps it.
        if not pixels.flags.writeable:  # e.g. a view of the GLZ dictionary's own copy
            pixels = pixels.copy()
        pixels[..., 3] = 255
    if image.flags & _CACHED:
        # A decoder may return a view of a buffer it reuses; the cache needs its own pixels.
        shared.images.put(image.id, pixels if pixels.base is None else pixels.copy(), lossy,
                          kind)
    return Decoded(pixels, kind)
