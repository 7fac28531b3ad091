"""Encoders for display draw messages, laid out as spice-server marshals them (spice.proto:
the fixed part first, pointed-to data appended after it, pointers as u32 offsets from the
start of the body).

The test VM's server never produces most of these cases (ROP descriptors other than PUT,
masks, pattern brushes, ROP3, TRANSPARENT, ...: only Windows QXL drivers send them), so the
render tests build their messages here, from spice.proto's layouts.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from ryll.protocol.constants import BitmapFlags, BitmapFmt, BrushType, ImageType

Rect = tuple[int, int, int, int]  # top, left, bottom, right


class Body:
    """A message body under construction: the fixed part, and a tail of pointed-to data."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail: list[tuple[int, bytes | Image]] = []  # (offset of the u32 to patch, data)

    def raw(self, data: bytes) -> None:
        self.head += data

    def pack(self, fmt: str, *values: int) -> None:
        self.head += struct.pack("<" + fmt, *values)

    def pointer(self, data: bytes | Image | None) -> None:
        if data is None:
            self.pack("I", 0)
            return
        self.tail.append((len(self.head), data))
        self.pack("I", 0)

    def build(self) -> bytes:
        out = bytearray(self.head)
        for at, data in self.tail:
            struct.pack_into("<I", out, at, len(out))
            if isinstance(data, Image):
                out += data.encode(len(out))
            else:
                out += data
        return bytes(out)


@dataclass
class Image:
    """A SpiceImage: BITMAP (pixels given as BGRA, or raw 1-bit rows), FROM_CACHE or SURFACE."""

    pixels: np.ndarray | None = None
    image_id: int = 0
    flags: int = 0
    type: int = ImageType.BITMAP
    fmt: int = BitmapFmt.FMT_32BIT
    bits: np.ndarray | None = None  # (h, w) bool for 1-bit formats
    top_down: bool = True
    width: int = 0
    height: int = 0
    surface_id: int = 0
    palette: list[int] = field(default_factory=list)
    payload: bytes = b""  # the compressed data of QUIC / LZ_RGB / GLZ_RGB / LZ4 / JPEG images

    def encode(self, at: int) -> bytes:
        if self.type in (ImageType.QUIC, ImageType.LZ_RGB, ImageType.GLZ_RGB, ImageType.JPEG,
                         ImageType.LZ4):
            # spice.proto: BinaryData, a u32 size then the bytes.
            return struct.pack("<QBBII", self.image_id, self.type, self.flags, self.width,
                               self.height) + struct.pack("<I", len(self.payload)) + self.payload
        if self.type == ImageType.SURFACE:
            return struct.pack("<QBBII", self.image_id, self.type, self.flags, self.width,
                               self.height) + struct.pack("<I", self.surface_id)
        if self.type in (ImageType.FROM_CACHE, ImageType.FROM_CACHE_LOSSLESS):
            return struct.pack("<QBBII", self.image_id, self.type, self.flags, self.width,
                               self.height)
        if self.bits is not None:
            h, w = self.bits.shape
            order = "little" if self.fmt == BitmapFmt.FMT_1BIT_LE else "big"
            rows = np.packbits(self.bits.astype(np.uint8), axis=1, bitorder=order)
            stride = rows.shape[1] + 1  # a padded stride, as drivers send
            data = np.zeros((h, stride), np.uint8)
            data[:, : rows.shape[1]] = rows
        else:
            assert self.pixels is not None
            h, w = self.pixels.shape[:2]
            if self.fmt == BitmapFmt.FMT_24BIT:
                data = np.ascontiguousarray(self.pixels[..., :3]).reshape(h, w * 3)
            else:
                data = np.ascontiguousarray(self.pixels).reshape(h, w * 4)
            stride = data.shape[1]
        if not self.top_down:
            data = data[::-1]
        bflags = BitmapFlags.TOP_DOWN if self.top_down else 0
        head = struct.pack("<QBBII", self.image_id, self.type, self.flags, w, h)
        palette_ptr = 0
        pal = b""
        if self.palette:
            palette_ptr = at + len(head) + 14 + stride * h
            pal = struct.pack("<QH", 0, len(self.palette)) + struct.pack(
                f"<{len(self.palette)}I", *self.palette)
        bitmap = struct.pack("<BBIIII", self.fmt, bflags, w, h, stride, palette_ptr)
        return head + bitmap + np.ascontiguousarray(data).tobytes() + pal


def base(body: Body, box: Rect, clip: list[Rect] | None = None, surface_id: int = 0) -> None:
    body.pack("I", surface_id)
    body.pack("4i", *box)
    if clip is None:
        body.pack("B", 0)
    else:
        body.pack("BI", 1, len(clip))
        for r in clip:
            body.pack("4i", *r)


def rect(body: Body, r: Rect) -> None:
    body.pack("4i", *r)


def brush(body: Body, color: int | None = None, pattern: Image | None = None,
          pos: tuple[int, int] = (0, 0)) -> None:
    if pattern is not None:
        body.pack("B", BrushType.PATTERN)
        body.pointer(pattern)
        body.pack("ii", *pos)
    elif color is not None:
        body.pack("BI", BrushType.SOLID, color)
    else:
        body.pack("B", BrushType.NONE)


def qmask(body: Body, mask: Image | None = None, pos: tuple[int, int] = (0, 0),
          flags: int = 0) -> None:
    body.pack("Bii", flags, *pos)
    body.pointer(mask)


def draw_copy(box: Rect, image: Image | None, src: Rect, rop: int, scale_mode: int = 1,
              clip: list[Rect] | None = None, mask: Image | None = None,
              mask_pos: tuple[int, int] = (0, 0), mask_flags: int = 0) -> bytes:
    b = Body()
    base(b, box, clip)
    b.pointer(image)
    rect(b, src)
    b.pack("HB", rop, scale_mode)
    qmask(b, mask, mask_pos, mask_flags)
    return b.build()


def draw_fill(box: Rect, rop: int, color: int | None = None, pattern: Image | None = None,
              pattern_pos: tuple[int, int] = (0, 0), clip: list[Rect] | None = None,
              mask: Image | None = None, mask_pos: tuple[int, int] = (0, 0),
              mask_flags: int = 0) -> bytes:
    b = Body()
    base(b, box, clip)
    brush(b, color, pattern, pattern_pos)
    b.pack("H", rop)
    qmask(b, mask, mask_pos, mask_flags)
    return b.build()


def draw_opaque(box: Rect, image: Image, src: Rect, rop: int, color: int | None = None,
                pattern: Image | None = None, pattern_pos: tuple[int, int] = (0, 0),
                scale_mode: int = 1, clip: list[Rect] | None = None) -> bytes:
    b = Body()
    base(b, box, clip)
    b.pointer(image)
    rect(b, src)
    brush(b, color, pattern, pattern_pos)
    b.pack("HB", rop, scale_mode)
    qmask(b)
    return b.build()


def draw_mask_only(box: Rect, clip: list[Rect] | None = None, mask: Image | None = None,
                   mask_pos: tuple[int, int] = (0, 0), mask_flags: int = 0) -> bytes:
    b = Body()
    base(b, box, clip)
    qmask(b, mask, mask_pos, mask_flags)
    return b.build()


def draw_rop3(box: Rect, image: Image, src: Rect, rop3: int, color: int | None = None,
              pattern: Image | None = None, pattern_pos: tuple[int, int] = (0, 0),
              scale_mode: int = 1, clip: list[Rect] | None = None, mask: Image | None = None,
              mask_pos: tuple[int, int] = (0, 0)) -> bytes:
    b = Body()
    base(b, box, clip)
    b.pointer(image)
    rect(b, src)
    brush(b, color, pattern, pattern_pos)
    b.pack("BB", rop3, scale_mode)
    qmask(b, mask, mask_pos)
    return b.build()


def draw_transparent(box: Rect, image: Image, src: Rect, src_color: int, true_color: int,
                     clip: list[Rect] | None = None) -> bytes:
    b = Body()
    base(b, box, clip)
    b.pointer(image)
    rect(b, src)
    b.pack("II", src_color, true_color)
    return b.build()


def draw_alpha_blend(box: Rect, image: Image, src: Rect, alpha: int, flags: int = 0,
                     clip: list[Rect] | None = None) -> bytes:
    b = Body()
    base(b, box, clip)
    b.pack("BB", flags, alpha)
    b.pointer(image)
    rect(b, src)
    return b.build()


def surface_create(surface_id: int, width: int, height: int, fmt: int, flags: int = 1) -> bytes:
    return struct.pack("<5I", surface_id, width, height, fmt, flags)


def glyph(render_pos: tuple[int, int], origin: tuple[int, int], alpha: np.ndarray,
          bpp: int) -> bytes:
    """A RasterGlyph; ``alpha`` is top row first (0/1 for 1 bpp, 0..15 for 4, 0..255 for 8),
    stored bottom-up as spice-common reads it."""
    h, w = alpha.shape
    rows = alpha[::-1].astype(np.uint8)
    if bpp == 1:
        data = np.packbits(rows, axis=1, bitorder="big")
    elif bpp == 4:
        padded = np.zeros((h, w + (w & 1)), np.uint8)
        padded[:, :w] = rows
        data = (padded[:, 0::2] << 4) | padded[:, 1::2]
    else:
        data = rows
    return struct.pack("<4iHH", *render_pos, *origin, w, h) + data.tobytes()


def draw_text(box: Rect, string_flags: int, glyphs: list[bytes], back_area: Rect,
              fore_color: int | None = None, fore_pattern: Image | None = None,
              fore_pos: tuple[int, int] = (0, 0), back_color: int | None = None,
              fore_mode: int = 8, back_mode: int = 8, clip: list[Rect] | None = None) -> bytes:
    b = Body()
    base(b, box, clip)
    b.pointer(struct.pack("<HB", len(glyphs), string_flags) + b"".join(glyphs))
    rect(b, back_area)
    brush(b, fore_color, fore_pattern, fore_pos)
    brush(b, back_color)
    b.pack("HH", fore_mode, back_mode)
    return b.build()


def draw_composite(box: Rect, flags: int, src: Image | None, mask: Image | None = None,
                   src_transform: tuple[int, ...] | None = None,
                   mask_transform: tuple[int, ...] | None = None,
                   src_origin: tuple[int, int] = (0, 0), mask_origin: tuple[int, int] = (0, 0),
                   clip: list[Rect] | None = None, surface_id: int = 0) -> bytes:
    """spice.proto DRAW_COMPOSITE: base, flags, src_bitmap, then the mask pointer only with
    HAS_MASK (bit 19), each Transform (6 x u32, 16.16 fixed) only with HAS_SRC_TRANSFORM
    (bit 20) / HAS_MASK_TRANSFORM (bit 21), then src_origin and mask_origin (Point16)."""
    b = Body()
    base(b, box, clip, surface_id)
    b.pack("I", flags)
    b.pointer(src)
    if flags & (1 << 19):
        b.pointer(mask)
    if flags & (1 << 20):
        assert src_transform is not None
        b.pack("6i", *src_transform)
    if flags & (1 << 21):
        assert mask_transform is not None
        b.pack("6i", *mask_transform)
    b.pack("2h", *src_origin)
    b.pack("2h", *mask_origin)
    return b.build()
