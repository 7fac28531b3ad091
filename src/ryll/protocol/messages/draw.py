"""Display draw messages and the shapes they carry (spice.proto: Rect, Clip, DisplayBase,
Image, Brush, QMask, and the draw_* messages).

Pointer fields are u32 offsets from the start of the message body, resolved through
``Reader.at`` so every one is bounds-checked. Image payloads are returned as byte slices; the
codecs decode them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ryll.errors import ProtocolError
from ryll.protocol.constants import (
    BitmapFlags,
    BrushType,
    ClipType,
    CompositeFlags,
    ImageType,
    LineFlags,
    StringFlags,
)
from ryll.protocol.reader import Reader

# Clip rectangles in one message. spice-server sends at most a few hundred (its region code
# merges beyond that); 65536 rects is 1 MiB of wire data and keeps loops bounded.
MAX_CLIP_RECTS = 65536
# Palette entries: a palette serves at most 8-bit indices.
MAX_PALETTE = 256


@dataclass(frozen=True, slots=True)
class Rect:
    top: int
    left: int
    bottom: int
    right: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top


@dataclass(frozen=True, slots=True)
class DisplayBase:
    surface_id: int
    box: Rect
    clip_rects: tuple[Rect, ...] | None  # None: no clip (CLIP_TYPE_NONE)


@dataclass(frozen=True, slots=True)
class Palette:
    unique: int
    entries: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class BitmapData:
    format: int
    flags: int
    width: int
    height: int
    stride: int
    palette: Palette | None
    palette_id: int | None  # set when PAL_FROM_CACHE
    data: bytes

    @property
    def top_down(self) -> bool:
        return bool(self.flags & BitmapFlags.TOP_DOWN)


@dataclass(frozen=True, slots=True)
class Image:
    """A SpiceImage: its descriptor and the type-specific payload."""

    id: int
    type: int
    flags: int
    width: int
    height: int
    bitmap: BitmapData | None = None
    data: bytes = b""  # QUIC, LZ_RGB, GLZ_RGB, JPEG, LZ4, LZ_PLT, ZLIB_GLZ, JPEG_ALPHA payload
    lz_plt_flags: int = 0
    palette: Palette | None = None  # LZ_PLT
    palette_id: int | None = None  # LZ_PLT with PAL_FROM_CACHE
    glz_data_size: int = 0  # ZLIB_GLZ_RGB: size of the GLZ data after inflating
    jpeg_alpha_flags: int = 0
    jpeg_size: int = 0  # JPEG_ALPHA: JPEG part of ``data``, then LZ alpha
    surface_id: int | None = None  # SURFACE


@dataclass(frozen=True, slots=True)
class QMask:
    flags: int
    pos: tuple[int, int]
    bitmap: Image | None


@dataclass(frozen=True, slots=True)
class Brush:
    type: int
    color: int = 0
    pattern: Image | None = None
    pattern_pos: tuple[int, int] = (0, 0)


@dataclass(frozen=True, slots=True)
class DrawCopy:
    """DRAW_COPY and DRAW_BLEND share this layout."""

    base: DisplayBase
    image: Image | None
    src_area: Rect
    rop: int
    scale_mode: int
    mask: QMask


@dataclass(frozen=True, slots=True)
class DrawFill:
    base: DisplayBase
    brush: Brush
    rop: int
    mask: QMask


@dataclass(frozen=True, slots=True)
class DrawOpaque:
    base: DisplayBase
    image: Image | None
    src_area: Rect
    brush: Brush
    rop: int
    scale_mode: int
    mask: QMask


@dataclass(frozen=True, slots=True)
class CopyBits:
    base: DisplayBase
    src_pos: tuple[int, int]


@dataclass(frozen=True, slots=True)
class DrawMaskOnly:
    """DRAW_BLACKNESS, DRAW_WHITENESS, DRAW_INVERS: a QMask only."""

    base: DisplayBase
    mask: QMask


# SpiceRect: top, left, bottom, right (int32 each), as an array element.
_RECT = struct.Struct("<4i")
# The fixed parts the hot parsers read in one unpack (Reader.fields): DisplayBase's surface id
# and box; a SpiceImage descriptor (id, type, flags, width, height); a QMask (flags, pos,
# bitmap offset); DRAW_COPY's image offset, src_area, rop and scale mode.
_BASE = struct.Struct("<I4i")
_IMAGE_HEAD = struct.Struct("<QBBII")
_QMASK = struct.Struct("<BiiI")
_COPY = struct.Struct("<I4iHB")


def read_rect(r: Reader) -> Rect:
    return Rect(*r.fields(_RECT, "rect"))


def read_point(r: Reader) -> tuple[int, int]:
    return r.i32(), r.i32()


def read_clip(r: Reader) -> tuple[Rect, ...] | None:
    ctype = r.u8()
    if ctype == ClipType.NONE:
        return None
    if ctype != ClipType.RECTS:
        raise ProtocolError(f"{r.what}: unknown clip type {ctype}")
    n = r.u32()
    if n > MAX_CLIP_RECTS:
        raise ProtocolError(f"{r.what}: {n} clip rects is over the limit of {MAX_CLIP_RECTS}")
    return tuple(Rect(*v) for v in r.records(_RECT, n, "clip rects"))


def read_base(r: Reader) -> DisplayBase:
    surface_id, top, left, bottom, right = r.fields(_BASE, "display base")
    return DisplayBase(surface_id, Rect(top, left, bottom, right), read_clip(r))


def _palette(r: Reader) -> Palette:
    unique = r.u64()
    n = r.u16()
    if n > MAX_PALETTE:
        raise ProtocolError(f"{r.what}: palette of {n} entries (at most {MAX_PALETTE})")
    r.count(n, 4, "palette")
    return Palette(unique, tuple(r.u32() for _ in range(n)))


def _palette_field(r: Reader, body: Reader, flags: int) -> tuple[Palette | None, int | None]:
    if flags & BitmapFlags.PAL_FROM_CACHE:
        return None, r.u64()
    off = r.u32()
    return (_palette(body.at(off, "palette")) if off else None), None


def read_image(body: Reader, offset: int) -> Image | None:
    """The SpiceImage at ``offset`` in the body (None for a NULL pointer)."""
    if offset == 0:
        return None
    r = body.at(offset, "image")
    iid, itype, flags, width, height = r.fields(_IMAGE_HEAD, "image descriptor")
    head = (iid, itype, flags, width, height)
    if itype == ImageType.BITMAP:
        fmt, bflags, x, y, stride = r.u8(), r.u8(), r.u32(), r.u32(), r.u32()
        palette, palette_id = _palette_field(r, body, bflags)
        if stride and y > r.remaining // stride:
            raise ProtocolError(f"bitmap {x}x{y} stride {stride} overruns the message")
        data = r.bytes(stride * y, "bitmap data")
        return Image(*head, bitmap=BitmapData(fmt, bflags, x, y, stride, palette, palette_id,
                                               data))
    if itype in (ImageType.QUIC, ImageType.LZ_RGB, ImageType.GLZ_RGB, ImageType.JPEG,
                 ImageType.LZ4):
        return Image(*head, data=r.bytes(r.u32(), "image data"))
    if itype == ImageType.LZ_PLT:
        pflags = r.u8()
        size = r.u32()
        palette, palette_id = _palette_field(r, body, pflags)
        return Image(*head, data=r.bytes(size, "lz_plt data"), lz_plt_flags=pflags,
                     palette=palette, palette_id=palette_id)
    if itype == ImageType.ZLIB_GLZ_RGB:
        glz_size, size = r.u32(), r.u32()
        return Image(*head, data=r.bytes(size, "zlib_glz data"), glz_data_size=glz_size)
    if itype == ImageType.JPEG_ALPHA:
        jflags, jpeg_size, size = r.u8(), r.u32(), r.u32()
        if jpeg_size > size:
            raise ProtocolError(f"jpeg_alpha: jpeg_size {jpeg_size} > data_size {size}")
        return Image(*head, data=r.bytes(size, "jpeg_alpha data"), jpeg_alpha_flags=jflags,
                     jpeg_size=jpeg_size)
    if itype == ImageType.SURFACE:
        return Image(*head, surface_id=r.u32())
    if itype in (ImageType.FROM_CACHE, ImageType.FROM_CACHE_LOSSLESS):
        return Image(*head)
    raise ProtocolError(f"unknown image type {itype}")


def read_qmask(r: Reader, body: Reader) -> QMask:
    flags, x, y, bitmap = r.fields(_QMASK, "qmask")
    return QMask(flags, (x, y), read_image(body, bitmap))


def read_brush(r: Reader, body: Reader) -> Brush:
    btype = r.u8()
    if btype == BrushType.NONE:
        return Brush(btype)
    if btype == BrushType.SOLID:
        return Brush(btype, color=r.u32())
    if btype == BrushType.PATTERN:
        image = read_image(body, r.u32())
        return Brush(btype, pattern=image, pattern_pos=read_point(r))
    raise ProtocolError(f"{r.what}: unknown brush type {btype}")


def parse_draw_copy(data: bytes) -> DrawCopy:
    r = Reader(data, what="draw_copy")
    base = read_base(r)
    image_at, top, left, bottom, right, rop, scale = r.fields(_COPY, "draw_copy")
    image = read_image(r, image_at)
    return DrawCopy(base, image, Rect(top, left, bottom, right), rop, scale,
                    read_qmask(r, r))


def parse_draw_fill(data: bytes) -> DrawFill:
    r = Reader(data, what="draw_fill")
    base = read_base(r)
    brush = read_brush(r, r)
    rop = r.u16()
    return DrawFill(base, brush, rop, read_qmask(r, r))


def parse_draw_opaque(data: bytes) -> DrawOpaque:
    r = Reader(data, what="draw_opaque")
    base = read_base(r)
    image = read_image(r, r.u32())
    src = read_rect(r)
    brush = read_brush(r, r)
    rop, scale = r.u16(), r.u8()
    return DrawOpaque(base, image, src, brush, rop, scale, read_qmask(r, r))


def parse_copy_bits(data: bytes) -> CopyBits:
    r = Reader(data, what="copy_bits")
    return CopyBits(read_base(r), read_point(r))


def parse_mask_only(data: bytes, what: str) -> DrawMaskOnly:
    r = Reader(data, what=what)
    base = read_base(r)
    return DrawMaskOnly(base, read_qmask(r, r))


# --- ROP3, TRANSPARENT, ALPHA_BLEND, STROKE, TEXT, COMPOSITE (spice.proto DisplayChannel) ---

# Path segments and points per message: a path's points are 8 bytes each on the wire, so the
# message size bounds them; these caps keep a hostile count from building huge Python lists.
MAX_PATH_SEGMENTS = 65536
MAX_PATH_POINTS = 1 << 20
# Glyphs per string: spice-server's QXL string limit is far below this.
MAX_GLYPHS = 65536


@dataclass(frozen=True, slots=True)
class DrawRop3:
    base: DisplayBase
    image: Image | None
    src_area: Rect
    brush: Brush
    rop3: int
    scale_mode: int
    mask: QMask


@dataclass(frozen=True, slots=True)
class DrawTransparent:
    base: DisplayBase
    image: Image | None
    src_area: Rect
    src_color: int
    true_color: int


@dataclass(frozen=True, slots=True)
class DrawAlphaBlend:
    base: DisplayBase
    alpha_flags: int
    alpha: int
    image: Image | None
    src_area: Rect


@dataclass(frozen=True, slots=True)
class PathSegment:
    """One SpicePathSeg. ``points`` is its SpicePointFix array as the wire has it (x, y
    pairs of little-endian int32, fixed 28.4): a path may carry a million points, which the
    stroke code reads as one array, never as a million Python tuples."""

    flags: int
    points: bytes

    @property
    def count(self) -> int:
        return len(self.points) // 8


@dataclass(frozen=True, slots=True)
class LineAttr:
    flags: int
    style: tuple[int, ...]  # fixed 28.4 dash lengths (STYLED only)


@dataclass(frozen=True, slots=True)
class DrawStroke:
    base: DisplayBase
    path: tuple[PathSegment, ...]
    attr: LineAttr
    brush: Brush
    fore_mode: int
    back_mode: int


@dataclass(frozen=True, slots=True)
class RasterGlyph:
    render_pos: tuple[int, int]
    glyph_origin: tuple[int, int]
    width: int
    height: int
    data: bytes


@dataclass(frozen=True, slots=True)
class DrawText:
    base: DisplayBase
    string_flags: int
    glyphs: tuple[RasterGlyph, ...]
    back_area: Rect
    fore_brush: Brush
    back_brush: Brush
    fore_mode: int
    back_mode: int


@dataclass(frozen=True, slots=True)
class Transform:
    """16.16 fixed affine matrix rows (t00 t01 t02 / t10 t11 t12), signed."""

    t00: int
    t01: int
    t02: int
    t10: int
    t11: int
    t12: int


@dataclass(frozen=True, slots=True)
class DrawComposite:
    base: DisplayBase
    flags: int
    src: Image | None
    mask: Image | None
    src_transform: Transform | None
    mask_transform: Transform | None
    src_origin: tuple[int, int]
    mask_origin: tuple[int, int]


def parse_draw_rop3(data: bytes) -> DrawRop3:
    r = Reader(data, what="draw_rop3")
    base = read_base(r)
    image = read_image(r, r.u32())
    src = read_rect(r)
    brush = read_brush(r, r)
    rop3, scale = r.u8(), r.u8()
    return DrawRop3(base, image, src, brush, rop3, scale, read_qmask(r, r))


def parse_draw_transparent(data: bytes) -> DrawTransparent:
    r = Reader(data, what="draw_transparent")
    base = read_base(r)
    image = read_image(r, r.u32())
    src = read_rect(r)
    return DrawTransparent(base, image, src, r.u32(), r.u32())


def parse_draw_alpha_blend(data: bytes) -> DrawAlphaBlend:
    r = Reader(data, what="draw_alpha_blend")
    base = read_base(r)
    flags, alpha = r.u8(), r.u8()
    image = read_image(r, r.u32())
    return DrawAlphaBlend(base, flags, alpha, image, read_rect(r))


def _read_path(body: Reader, offset: int) -> tuple[PathSegment, ...]:
    if offset == 0:
        raise ProtocolError("draw_stroke: NULL path")
    r = body.at(offset, "path")
    n = r.u32()
    if n > MAX_PATH_SEGMENTS:
        raise ProtocolError(f"path of {n} segments (at most {MAX_PATH_SEGMENTS})")
    segments = []
    total = 0
    for _ in range(n):
        flags, count = r.u8(), r.u32()
        total += count
        if total > MAX_PATH_POINTS:
            raise ProtocolError(f"path of more than {MAX_PATH_POINTS} points")
        r.count(count, 8, "path points")
        segments.append(PathSegment(flags, r.bytes(count * 8, "path points")))
    return tuple(segments)


def _read_line_attr(r: Reader, body: Reader) -> LineAttr:
    flags = r.u8()
    if not flags & LineFlags.STYLED:
        return LineAttr(flags, ())
    nseg = r.u8()
    off = r.u32()
    if off == 0:
        return LineAttr(flags, ())
    s = body.at(off, "line style")
    s.count(nseg, 4, "line style")
    return LineAttr(flags, tuple(s.i32() for _ in range(nseg)))


def parse_draw_stroke(data: bytes) -> DrawStroke:
    r = Reader(data, what="draw_stroke")
    base = read_base(r)
    path = _read_path(r, r.u32())
    attr = _read_line_attr(r, r)
    brush = read_brush(r, r)
    return DrawStroke(base, path, attr, brush, r.u16(), r.u16())


def glyph_bpp(string_flags: int) -> int:
    """Bits per glyph pixel from the string flags (0: vector glyphs, not rendered)."""
    if string_flags & StringFlags.RASTER_A1:
        return 1
    if string_flags & StringFlags.RASTER_A4:
        return 4
    if string_flags & StringFlags.RASTER_A8:
        return 8
    return 0


def _read_string(body: Reader, offset: int) -> tuple[int, tuple[RasterGlyph, ...]]:
    if offset == 0:
        raise ProtocolError("draw_text: NULL string")
    r = body.at(offset, "string")
    length, flags = r.u16(), r.u8()
    bpp = glyph_bpp(flags)
    if bpp == 0:
        return flags, ()
    if length > MAX_GLYPHS:
        raise ProtocolError(f"string of {length} glyphs")
    glyphs = []
    for _ in range(length):
        render_pos, origin = read_point(r), read_point(r)
        w, h = r.u16(), r.u16()
        size = ((w * bpp + 7) // 8) * h  # spice.proto image_size(bpp, width, height)
        glyphs.append(RasterGlyph(render_pos, origin, w, h, r.bytes(size, "glyph data")))
    return flags, tuple(glyphs)


def parse_draw_text(data: bytes) -> DrawText:
    r = Reader(data, what="draw_text")
    base = read_base(r)
    flags, glyphs = _read_string(r, r.u32())
    back_area = read_rect(r)
    fore, back = read_brush(r, r), read_brush(r, r)
    return DrawText(base, flags, glyphs, back_area, fore, back, r.u16(), r.u16())


def _read_transform(r: Reader) -> Transform:
    return Transform(*(r.i32() for _ in range(6)))


def parse_draw_composite(data: bytes) -> DrawComposite:
    r = Reader(data, what="draw_composite")
    base = read_base(r)
    flags = r.u32()
    src = read_image(r, r.u32())
    mask = read_image(r, r.u32()) if flags & CompositeFlags.HAS_MASK else None
    src_t = _read_transform(r) if flags & CompositeFlags.HAS_SRC_TRANSFORM else None
    mask_t = _read_transform(r) if flags & CompositeFlags.HAS_MASK_TRANSFORM else None
    src_origin = (r.i16(), r.i16())
    mask_origin = (r.i16(), r.i16())
    return DrawComposite(base, flags, src, mask, src_t, mask_t, src_origin, mask_origin)
