"""Surfaces: the pixels a display channel draws into.

Pixels are a numpy array (H, W, 4) uint8 in **BGRA** memory order: the byte order of SPICE's
32-bit little-endian xRGB/ARGB surfaces, so 32-bit bitmaps and decoders write straight in. For
xRGB surfaces the alpha byte is kept at 255. Screenshots convert to RGB(A) once, at the edge.

The other formats keep the same BGRA array, holding what pixman reads back from spice-gtk's
surface of that format (one mechanism for every format: draw in BGRA, then :meth:`quantise`
the touched box):

* 16_555 (PIXMAN_x1r5g5b5) / 16_565 (PIXMAN_r5g6b5): pixman stores a channel's top 5 (6) bits
  and reads them back replicated (``c5 << 3 | c5 >> 2``); alpha reads 255.
* 8_A (PIXMAN_a8): only alpha is stored; colour reads 0.
* 1_A (PIXMAN_a1): pixman stores the alpha's top bit; alpha reads 0 or 255, colour 0.

Colours in draw messages are raw pixels of the surface's format (spice_pixman_fill_rect writes
the low 16 or 8 bits of the u32); :func:`color_to_bgra` turns one into the BGRA word that
quantises to it.
"""

from __future__ import annotations

import numpy as np

from ryll.errors import ProtocolError
from ryll.protocol.constants import SurfaceFlags, SurfaceFmt
from ryll.render import _pixels  # type: ignore[attr-defined]

# The largest surface ryll allocates: 8192x4096 (128 MiB at 4 bytes a pixel), above the
# 4096x2160 primary surfaces QXL and virtio-gpu drivers use, and the bound behind the framer's
# message limit.
MAX_SURFACE_PIXELS = 8192 * 4096
MAX_SURFACE_SIDE = 16384


_FMT_32 = (SurfaceFmt.FMT_32_xRGB, SurfaceFmt.FMT_32_ARGB)


def is_32bit(fmt: int) -> bool:
    return fmt in _FMT_32


def _expand(c: np.ndarray, bits: int) -> np.ndarray:
    """pixman's read-back of a ``bits``-bit channel holding the top bits of ``c``."""
    top = c >> (8 - bits)
    return (top << (8 - bits)) | (top >> (2 * bits - 8))


def quantise(px: np.ndarray, fmt: int) -> None:
    """In place: BGRA pixels as a surface of ``fmt`` stores and reads them back (32-bit
    formats are left alone; unknown formats are treated as 32-bit)."""
    if fmt == SurfaceFmt.FMT_16_555:
        px[..., :3] = _expand(px[..., :3], 5)
        px[..., 3] = 255
    elif fmt == SurfaceFmt.FMT_16_565:
        px[..., 0] = _expand(px[..., 0], 5)
        px[..., 1] = _expand(px[..., 1], 6)
        px[..., 2] = _expand(px[..., 2], 5)
        px[..., 3] = 255
    elif fmt == SurfaceFmt.FMT_8_A:
        px[..., :3] = 0
    elif fmt == SurfaceFmt.FMT_1_A:
        px[..., :3] = 0
        px[..., 3] = np.where(px[..., 3] >= 0x80, 255, 0).astype(np.uint8)


def as_format(px: np.ndarray, fmt: int) -> np.ndarray:
    """A copy of decoded image pixels converted as canvas_get_image converts an image for a
    ``fmt`` canvas (then read back as pixman reads that format); the array itself for
    32-bit formats."""
    if is_32bit(fmt) or fmt not in SurfaceFmt._value2member_map_:
        return px
    out = px.copy()
    quantise(out, fmt)
    return out


def color_to_bgra(color: int, fmt: int) -> int:
    """A draw colour (a raw pixel of ``fmt``) as the 32-bit BGRA word ryll draws with."""
    if fmt in (SurfaceFmt.FMT_16_555, SurfaceFmt.FMT_16_565):
        v = color & 0xFFFF
        if fmt == SurfaceFmt.FMT_16_555:
            r, g, b = (v >> 10) & 0x1F, (v >> 5) & 0x1F, v & 0x1F
            g8 = (g << 3) | (g >> 2)
        else:
            r, g, b = v >> 11, (v >> 5) & 0x3F, v & 0x1F
            g8 = (g << 2) | (g >> 4)
        return 0xFF000000 | ((r << 3) | (r >> 2)) << 16 | g8 << 8 | ((b << 3) | (b >> 2))
    if fmt == SurfaceFmt.FMT_8_A:
        return (color & 0xFF) << 24
    if fmt == SurfaceFmt.FMT_1_A:
        # spice_pixman_fill_rect has no 1 bpp path (it asserts); ryll takes bit 0.
        return 0xFF000000 if color & 1 else 0
    return color & 0xFFFFFFFF


def check_surface_size(surface_id: int, width: int, height: int) -> None:
    """ProtocolError unless a surface of that size may be made (before anything is allocated)."""
    if not (0 < width <= MAX_SURFACE_SIDE and 0 < height <= MAX_SURFACE_SIDE) or (
        width * height > MAX_SURFACE_PIXELS
    ):
        raise ProtocolError(f"surface {surface_id}: {width}x{height} is over the size limit")


class Surface:
    def __init__(self, surface_id: int, width: int, height: int, fmt: int, flags: int) -> None:
        check_surface_size(surface_id, width, height)
        self.surface_id = surface_id
        self.width = width
        self.height = height
        self.format = fmt
        self.flags = flags
        self.pixels = np.zeros((height, width, 4), dtype=np.uint8)
        if fmt not in (SurfaceFmt.FMT_32_ARGB, SurfaceFmt.FMT_8_A, SurfaceFmt.FMT_1_A):
            self.pixels[..., 3] = 255
        # The same memory as (height, width) little-endian uint32 words: whole-pixel writes
        # (raster.words) without making the view again for every draw.
        self.words = self.pixels.view("<u4")[..., 0]

    @property
    def primary(self) -> bool:
        return bool(self.flags & SurfaceFlags.PRIMARY)

    @property
    def has_alpha(self) -> bool:
        """Whether draws keep the alpha byte they compute (ARGB, and the alpha-only formats,
        whose alpha :meth:`quantise` then keeps)."""
        return self.format in (SurfaceFmt.FMT_32_ARGB, SurfaceFmt.FMT_8_A, SurfaceFmt.FMT_1_A)

    @property
    def quantised(self) -> bool:
        """True for formats whose draws must be quantised (16-bit, 8_A, 1_A)."""
        return self.format in (SurfaceFmt.FMT_16_555, SurfaceFmt.FMT_16_565,
                               SurfaceFmt.FMT_8_A, SurfaceFmt.FMT_1_A)

    def quantise(self, top: int, left: int, bottom: int, right: int) -> None:
        """Quantise a box (clipped to the surface) after a draw touched it."""
        t, lf = max(top, 0), max(left, 0)
        b, r = min(bottom, self.height), min(right, self.width)
        if self.quantised and t < b and lf < r:
            quantise(self.pixels[t:b, lf:r], self.format)

    def color(self, color: int) -> int:
        return color_to_bgra(color, self.format)

    def rgb(self) -> np.ndarray:
        """(H, W, 3) RGB copy, the layout of QMP screendump and of PNG."""
        return _pixels.to_rgb(self.pixels, False)  # type: ignore[no-any-return]

    def as_dict(self) -> dict[str, object]:
        try:
            name = SurfaceFmt(self.format).name
        except ValueError:
            name = f"unknown_{self.format}"
        return {
            "surface_id": self.surface_id,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "flags": self.flags,
            "format_name": name,
            "primary": self.primary,
        }
