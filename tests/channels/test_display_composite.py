"""DRAW_COMPOSITE through the display channel (canvas_base.c canvas_draw_composite): the box is
composited by pixman (expected pixels from the system libpixman-1 through
tests/render/pixman_lib, compositing the same images over the box) and written back through
the clip; sources and masks are bitmaps, cached images or surfaces. Messages come from
tests/render/builders.draw_composite (spice.proto's layout).

The later tests run the whole of canvas_draw_composite on the real pixman (:func:`spice`):
the dest is the whole box read from the canvas memory in the canvas's pixman format, an image
is converted with a pixman SRC composite from its own format to canvas_get_target_format's
(a8r8g8b8 only for images with alpha on 32-bit canvases), a surface is its memory in its
format (SOURCE_OPAQUE: without the alpha bits), and the result goes back through box, surface
and clip."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np
import pytest
from tests.render import builders as B
from tests.render import pixman_lib as PL
from tests.render.test_draws import H, W, channel, in_region, send

from ryll.channels.context import ChannelContext
from ryll.channels.display import DisplayChannel
from ryll.codecs import _lz_enc
from ryll.codecs import lz as L
from ryll.codecs.quic import encode_quic
from ryll.protocol.constants import (
    BitmapFlags,
    BitmapFmt,
    DisplayCap,
    DisplayServer,
    ImageFlags,
    ImageType,
    Ropd,
    SurfaceFmt,
)
from ryll.render.composite import Format, Picture

HAS_MASK, HAS_SRC_T, HAS_MASK_T = 1 << 19, 1 << 20, 1 << 21
CA, SOURCE_OPAQUE = 1 << 18, 1 << 22
OVER, SRC, ADD, MULTIPLY = 3, 1, 12, 0x30


def flags(op: int, src_filter: int = 0, mask_filter: int = 0, src_repeat: int = 0,
          mask_repeat: int = 0, extra: int = 0) -> int:
    return op | src_filter << 8 | mask_filter << 11 | src_repeat << 14 | mask_repeat << 16 | extra


def premultiplied(seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w), dtype=np.int64)
    c = (rng.integers(0, 256, (h, w, 3)) * a[..., None]) // 255
    return np.concatenate([c, a[..., None]], axis=2).astype(np.uint8)


def pixman_box(before: np.ndarray, box: B.Rect, op: int, src: Picture,
               mask: Picture | None = None, ca: bool = False,
               dest_fmt: int = Format.A8R8G8B8) -> np.ndarray:
    """The box of ``before`` after pixman_image_composite32 (the real pixman) with these
    images, as the dest format stores it."""
    PL.require()
    t, lf, b, r = box
    return PL.composite_pictures(op, src, mask, ca, before[t:b, lf:r], dest_fmt)


def expect(before: np.ndarray, box: B.Rect, clip: list[B.Rect] | None, result: np.ndarray,
           opaque: bool) -> np.ndarray:
    """``before`` with the region's pixels taken from ``result`` (the composited box)."""
    want = before.copy()
    for y in range(H):
        for x in range(W):
            if in_region(x, y, box, clip):
                want[y, x] = result[y - box[0], x - box[1]]
                if opaque:
                    want[y, x, 3] = 255
    return want


def create(ch: DisplayChannel, sid: int, w: int, h: int, fmt: int) -> None:
    send(ch, DisplayServer.SURFACE_CREATE, B.surface_create(sid, w, h, fmt, flags=0))


def test_the_channel_advertises_composite_and_a8_surfaces() -> None:
    assert DisplayCap.COMPOSITE in DisplayChannel.channel_caps
    assert DisplayCap.A8_SURFACE in DisplayChannel.channel_caps


@pytest.mark.parametrize("fmt", [SurfaceFmt.FMT_32_xRGB, SurfaceFmt.FMT_32_ARGB])
@pytest.mark.parametrize("op", [OVER, SRC, ADD, MULTIPLY, 0x3B])
def test_composite_of_an_rgba_bitmap_through_a_clip(fmt: int, op: int) -> None:
    ch, ctx = channel(fmt)
    before = ch.surfaces[0].pixels.copy()
    src = premultiplied(1, 5, 6)
    box, clip = (1, 2, 8, 11), [(0, 0, 4, 7), (3, 5, 9, 13)]
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        box, flags(op), B.Image(src, fmt=BitmapFmt.FMT_RGBA), src_origin=(1, -1), clip=clip))
    assert ctx.gaps.counts() == {}
    xrgb = fmt == SurfaceFmt.FMT_32_xRGB
    result = pixman_box(before, box, op, Picture(src, None, 0, 0, (1, -1)),
                        dest_fmt=Format.X8R8G8B8 if xrgb else Format.A8R8G8B8)
    assert (ch.surfaces[0].pixels == expect(before, box, clip, result, xrgb)).all()


def test_surface_source_with_source_opaque_and_an_a8_surface_mask() -> None:
    ch, ctx = channel(SurfaceFmt.FMT_32_xRGB)
    create(ch, 1, 4, 3, SurfaceFmt.FMT_32_ARGB)
    create(ch, 2, 5, 5, SurfaceFmt.FMT_8_A)
    ch.surfaces[1].pixels[...] = premultiplied(2, 3, 4)
    # An A8 surface is drawn with raw a8 colours: fill its top half with 0x90.
    body = bytearray(B.draw_fill((0, 0, 2, 5), Ropd.OP_PUT, color=0x12345690))
    struct.pack_into("<I", body, 0, 2)
    send(ch, DisplayServer.DRAW_FILL, bytes(body))
    assert (ch.surfaces[2].pixels[:2] == (0, 0, 0, 0x90)).all()
    assert (ch.surfaces[2].pixels[2:] == 0).all()
    before = ch.surfaces[0].pixels.copy()
    box = (2, 3, 7, 9)
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        box, flags(OVER, src_repeat=1, extra=HAS_MASK | SOURCE_OPAQUE),
        B.Image(type=ImageType.SURFACE, surface_id=1, width=4, height=3),
        B.Image(type=ImageType.SURFACE, surface_id=2, width=5, height=5)))
    assert ctx.gaps.counts() == {}
    # SOURCE_OPAQUE: the ARGB surface's memory as x8r8g8b8; the 8_A surface as a8
    result = pixman_box(before, box, OVER,
                        Picture(ch.surfaces[1].pixels, None, 0, 1, (0, 0), Format.X8R8G8B8),
                        Picture(ch.surfaces[2].pixels, None, 0, 0, (0, 0), Format.A8),
                        dest_fmt=Format.X8R8G8B8)
    assert (ch.surfaces[0].pixels == expect(before, box, None, result, True)).all()


def test_transformed_bilinear_repeating_source_with_component_alpha_mask() -> None:
    ch, ctx = channel(SurfaceFmt.FMT_32_ARGB)
    before = ch.surfaces[0].pixels.copy()
    src, mask = premultiplied(3, 3, 4), np.random.default_rng(4).integers(
        0, 256, (4, 4, 4), dtype=np.uint8)
    ts = (40000, 9000, -70000, -5000, 30000, 20000)
    tm = (65536 * 2, 0, 0, 0, 65536, 32768)
    box = (0, 0, H, W)
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        box, flags(OVER, src_filter=4, mask_filter=3, src_repeat=1, mask_repeat=3,
                   extra=HAS_MASK | HAS_SRC_T | HAS_MASK_T | CA),
        B.Image(src, fmt=BitmapFmt.FMT_RGBA), B.Image(mask, fmt=BitmapFmt.FMT_RGBA), ts, tm,
        src_origin=(2, 1), mask_origin=(-1, 3)))
    assert ctx.gaps.counts() == {}
    result = pixman_box(before, box, OVER, Picture(src, ts, 4, 1, (2, 1)),
                        Picture(mask, tm, 3, 3, (-1, 3)), ca=True)
    assert (ch.surfaces[0].pixels == expect(before, box, None, result, False)).all()


JOINT_OPS = [hi + lo for hi in (0x10, 0x20) for lo in (3, 4, 5, 9, 0xB)]


@pytest.mark.parametrize("fmt", [SurfaceFmt.FMT_32_xRGB, SurfaceFmt.FMT_32_ARGB])
@pytest.mark.parametrize("op", [*JOINT_OPS, 0x0D, 0x35, 0x36, 0x38, 0x3C])
def test_float_path_ops_through_a_clip(fmt: int, op: int) -> None:
    """The ops pixman 0.42 runs through its float combiners: DISJOINT_* / CONJOINT_*,
    SATURATE, COLOR_DODGE, COLOR_BURN, SOFT_LIGHT, the HSL modes."""
    ch, ctx = channel(fmt)
    before = ch.surfaces[0].pixels.copy()
    src, mask = premultiplied(12, 5, 6), premultiplied(13, 4, 4)
    box, clip = (1, 2, 8, 11), [(0, 0, 4, 7), (3, 5, 9, 13)]
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        box, flags(op, mask_repeat=1, extra=HAS_MASK), B.Image(src, fmt=BitmapFmt.FMT_RGBA),
        B.Image(mask, fmt=BitmapFmt.FMT_RGBA), src_origin=(1, -1), clip=clip))
    assert ctx.gaps.counts() == {}
    xrgb = fmt == SurfaceFmt.FMT_32_xRGB
    result = pixman_box(before, box, op, Picture(src, None, 0, 0, (1, -1)),
                        Picture(mask, None, 0, 1, (0, 0)),
                        dest_fmt=Format.X8R8G8B8 if xrgb else Format.A8R8G8B8)
    assert (ch.surfaces[0].pixels == expect(before, box, clip, result, xrgb)).all()


@pytest.mark.parametrize("op", [0x0D, 0x14, 0x17, 0x1A, 0x23, 0x26, 0x2B, 0x3B, 0x3E])
def test_component_alpha_saturate_joint_and_hsl_ops(op: int) -> None:
    """SATURATE, DISJOINT_* / CONJOINT_* with a component-alpha mask; the HSL modes there
    are pixman's combine_dst (the box is unchanged)."""
    ch, ctx = channel(SurfaceFmt.FMT_32_ARGB)
    before = ch.surfaces[0].pixels.copy()
    src = premultiplied(14, 4, 5)
    mask = np.random.default_rng(15).integers(0, 256, (5, 5, 4), dtype=np.uint8)
    box = (0, 1, H, W - 1)
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        box, flags(op, src_repeat=1, mask_repeat=3, extra=HAS_MASK | CA),
        B.Image(src, fmt=BitmapFmt.FMT_RGBA), B.Image(mask, fmt=BitmapFmt.FMT_RGBA),
        src_origin=(2, 1), mask_origin=(-1, 3)))
    assert ctx.gaps.counts() == {}
    result = pixman_box(before, box, op, Picture(src, None, 0, 1, (2, 1)),
                        Picture(mask, None, 0, 3, (-1, 3)), ca=True)
    assert (ch.surfaces[0].pixels == expect(before, box, None, result, False)).all()
    if op >= 0x3B:
        assert (ch.surfaces[0].pixels == before).all()


def test_an_op_in_a_hole_of_pixmans_table_clears() -> None:
    ch, ctx = channel(SurfaceFmt.FMT_32_ARGB)
    before = ch.surfaces[0].pixels.copy()
    box = (1, 1, 4, 5)
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        box, flags(0x2E), B.Image(premultiplied(16, 2, 2), fmt=BitmapFmt.FMT_RGBA)))
    assert ctx.gaps.counts() == {}
    assert (ch.surfaces[0].pixels == expect(before, box, None, np.zeros((3, 4, 4), np.uint8),
                                            False)).all()


def test_composite_caches_its_images_and_reuses_them() -> None:
    ch, ctx = channel()
    src = premultiplied(5, 3, 3)
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        (0, 0, 3, 3), flags(SRC), B.Image(src, fmt=BitmapFmt.FMT_RGBA, image_id=77,
                                          flags=ImageFlags.CACHE_ME)))
    first = ch.surfaces[0].pixels.copy()
    ch.surfaces[0].pixels[...] = 0
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        (0, 0, 3, 3), flags(SRC), B.Image(type=ImageType.FROM_CACHE, image_id=77)))
    assert ctx.gaps.counts() == {}
    assert (ch.surfaces[0].pixels[:3, :3] == first[:3, :3]).all()


def test_composite_onto_a_16_bit_surface_is_quantised() -> None:
    ch, ctx = channel(SurfaceFmt.FMT_16_565)
    send(ch, DisplayServer.SURFACE_CREATE, B.surface_create(0, W, H, SurfaceFmt.FMT_16_565))
    ch.surfaces[0].pixels[..., :3] = 0x84
    ch.surfaces[0].pixels[..., 3] = 255
    src = premultiplied(6, 4, 4)
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        (0, 0, 4, 4), flags(OVER), B.Image(src, fmt=BitmapFmt.FMT_RGBA)))
    assert ctx.gaps.counts() == {}
    got = ch.surfaces[0].pixels[:4, :4]
    # A non-surface source is converted to the canvas format first (canvas_get_image with
    # want_original FALSE): r5g6b5 has no alpha, so OVER is a copy of the quantised source.
    for c, bits in ((0, 5), (1, 6), (2, 5)):
        top = src[..., c] >> (8 - bits)
        assert (got[..., c] == (top << (8 - bits)) | (top >> (2 * bits - 8))).all()
    assert (got[..., 3] == 255).all()


def test_composite_gaps() -> None:
    src = B.Image(premultiplied(7, 2, 2), fmt=BitmapFmt.FMT_RGBA)
    cases = [
        (B.draw_composite((0, 0, 2, 2), flags(0x3F), src), "display:unimpl:composite_op_unknown"),
        (B.draw_composite((0, 0, 2, 2), flags(0xFF), src), "display:unimpl:composite_op_unknown"),
        (B.draw_composite((0, 0, 2, 2), flags(OVER, src_filter=5, extra=HAS_SRC_T), src,
                          src_transform=(65536, 0, 0, 0, 65536, 0)),
         "display:unimpl:composite_filter_convolution"),
        (B.draw_composite((0, 0, 2, 2), flags(OVER), B.Image(type=ImageType.SURFACE,
                                                             surface_id=9)),
         "display:decode_failure:surface:no_surface"),
        (B.draw_composite((0, 0, 2, 2), flags(OVER), None), "display:malformed:null_image"),
        (B.draw_composite((0, 0, 2, 2), flags(OVER), src, surface_id=5), "display:orphan:draw"),
    ]
    for body, key in cases:
        ch, ctx = channel()
        before = ch.surfaces[0].pixels.copy()
        send(ch, DisplayServer.DRAW_COMPOSITE, body)
        assert ctx.gaps.counts() == {key: 1}, key
        assert (ch.surfaces[0].pixels == before).all()


def test_source_opaque_on_an_alpha_only_surface_is_malformed() -> None:
    ch, ctx = channel()
    create(ch, 3, 2, 2, SurfaceFmt.FMT_8_A)
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        (0, 0, 2, 2), flags(OVER, extra=SOURCE_OPAQUE),
        B.Image(type=ImageType.SURFACE, surface_id=3, width=2, height=2)))
    assert ctx.gaps.counts() == {"display:malformed:composite_opaque_alpha_surface": 1}


def test_truncated_and_random_composites_never_raise() -> None:
    rng = np.random.default_rng(8)
    body = B.draw_composite((0, 0, 4, 4), flags(OVER, extra=HAS_MASK | HAS_SRC_T | HAS_MASK_T),
                            B.Image(premultiplied(9, 3, 3), fmt=BitmapFmt.FMT_RGBA),
                            B.Image(premultiplied(10, 2, 2), fmt=BitmapFmt.FMT_RGBA),
                            (65536, 0, 0, 0, 65536, 0), (65536, 0, 0, 0, 65536, 0))
    for cut in range(0, len(body), 5):
        ch, ctx = channel()
        send(ch, DisplayServer.DRAW_COMPOSITE, body[:cut])
        assert all(":malformed:" in k or ":decode_failure:" in k or ":orphan:" in k
                   for k in ctx.gaps.counts()), ctx.gaps.counts()
    for _ in range(200):
        ch, ctx = channel(seed=int(rng.integers(100)))
        t = tuple(int(v) for v in rng.integers(-(2**31), 2**31, 6))
        box = tuple(int(v) for v in rng.integers(-5, 15, 4))
        f = int(rng.integers(0, 1 << 22)) | HAS_SRC_T
        f &= ~(HAS_MASK | HAS_MASK_T)
        send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
            box, f, B.Image(premultiplied(11, 3, 2), fmt=BitmapFmt.FMT_RGBA), src_transform=t,
            src_origin=(int(rng.integers(-99, 99)), int(rng.integers(-99, 99)))))
        assert ch.surfaces[0].pixels.shape == (H, W, 4)
        assert all(k.startswith("display:") for k in ctx.gaps.counts())


# --- the whole of canvas_draw_composite on the real pixman --------------------------------

SF = SurfaceFmt
CANVAS = {SF.FMT_32_xRGB: PL.X8R8G8B8, SF.FMT_32_ARGB: PL.A8R8G8B8, SF.FMT_16_565: PL.R5G6B5,
          SF.FMT_16_555: PL.X1R5G5B5, SF.FMT_8_A: PL.A8, SF.FMT_1_A: PL.A1}
SATURATE, OVER_REVERSE = 0x0D, 0x04
COLOR_DODGE, COLOR_BURN, SOFT_LIGHT = 0x35, 0x36, 0x38
HSL_HUE, HSL_SATURATION, HSL_COLOR, HSL_LUMINOSITY = 0x3B, 0x3C, 0x3D, 0x3E
SCRATCH = 7  # a surface the cache-filling draws go to


def target(canvas_fmt: int, native: int) -> int:
    """canvas_get_target_format(canvas, native == a8r8g8b8)."""
    fmt = CANVAS[canvas_fmt]
    if native == PL.A8R8G8B8 and fmt == PL.X8R8G8B8:
        return PL.A8R8G8B8
    if native != PL.A8R8G8B8 and fmt == PL.A8R8G8B8:
        return PL.X8R8G8B8
    return fmt


@dataclass
class Src:
    """A source or mask as canvas_draw_composite gets it: ``pixels`` is the memory of an image
    of ``native`` (BGRA, packed by pixman_lib.pack), converted by a pixman SRC composite to
    ``fmt`` when that differs."""

    pixels: np.ndarray
    native: int
    fmt: int
    transform: tuple[int, ...] | None = None
    filter: int = 0
    repeat: int = 0
    origin: tuple[int, int] = (0, 0)


@dataclass
class _Images:
    held: list[PL.Image] = field(default_factory=list)

    def make(self, src: Src, ca: bool = False) -> PL.Image:
        h, w = src.pixels.shape[:2]
        mem = PL.pack(src.pixels, src.native)
        if src.fmt != src.native:
            conv = np.zeros((h, PL.stride(src.fmt, w)), np.uint8)
            with PL.create(src.native, mem, w) as nat, PL.create(src.fmt, conv, w) as c:
                PL.composite(SRC, nat, None, c, (0, 0), (0, 0), w, h)
            mem = conv
        img = PL.create(src.fmt, mem, w, src.transform, src.filter, src.repeat, ca)
        self.held.append(img)
        return img

    def close(self) -> None:
        for img in self.held:
            img.close()


def spice(before: np.ndarray, canvas_fmt: int, box: B.Rect, clip: list[B.Rect] | None, op: int,
          src: Src, mask: Src | None = None, ca: bool = False, seed: int = 99) -> np.ndarray:
    """The canvas after canvas_draw_composite, on the real pixman. Dest memory off the surface
    is random (spice-common reads whatever lies there)."""
    PL.require()
    fmt = CANVAS[canvas_fmt]
    sh, sw = before.shape[:2]
    t, lf, b, r = box
    bh, bw = b - t, r - lf
    ys, xs = np.mgrid[0:sh, 0:sw]
    inside = (ys >= t) & (ys < b) & (xs >= lf) & (xs < r)
    out = before.copy()
    if bh <= 0 or bw <= 0:
        return out
    dest = np.random.default_rng(seed).integers(0, 256, (bh, bw, 4), dtype=np.uint8)
    dest[ys[inside] - t, xs[inside] - lf] = before[inside]
    images = _Images()
    try:
        s = images.make(src)
        m = images.make(mask, ca) if mask is not None else None
        d = PL.create(fmt, PL.pack(dest, fmt), bw)
        images.held.append(d)
        PL.composite(op, s, m, d, src.origin, mask.origin if mask is not None else (0, 0),
                     bw, bh)
        result = PL.read_back(d)
    finally:
        images.close()
    if clip is not None:
        inside &= np.any([(ys >= ct) & (ys < cb) & (xs >= cl) & (xs < cr)
                          for ct, cl, cb, cr in clip], axis=0)
    out[inside] = result[ys[inside] - t, xs[inside] - lf]
    return out


def stored(seed: int, h: int, w: int, fmt: int) -> np.ndarray:
    """Random pixels as a surface of ``fmt`` holds them (read back by pixman)."""
    return PL.stored(np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8),
                     CANVAS[fmt])


def canvas(fmt: int, seed: int = 1, w: int = W, h: int = H
           ) -> tuple[DisplayChannel, ChannelContext]:
    """Surface 0 of ``fmt`` holding random pixels it can store (pixels the format cannot hold
    would be changed by the quantising after the draw, in the box, outside the clip)."""
    PL.require()
    ctx = ChannelContext()
    ch = DisplayChannel(0, ctx)
    create(ch, 0, w, h, fmt)
    ch.surfaces[0].pixels[...] = stored(seed, h, w, fmt)
    return ch, ctx


def surface(ch: DisplayChannel, sid: int, fmt: int, seed: int, w: int, h: int) -> np.ndarray:
    create(ch, sid, w, h, fmt)
    ch.surfaces[sid].pixels[...] = stored(seed, h, w, fmt)
    return ch.surfaces[sid].pixels.copy()


def raw(seed: int, h: int, w: int) -> np.ndarray:
    """Random BGRA bytes, alpha included (a 32BIT bitmap's fourth byte is not alpha)."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)


@dataclass
class A8Image(B.Image):
    """An 8BIT_A bitmap (spice.proto Bitmap): one alpha byte a pixel; ``pixels`` is (h, w)."""

    def encode(self, at: int) -> bytes:
        assert self.pixels is not None
        h, w = self.pixels.shape
        stride = w + 3  # a padded stride
        data = np.zeros((h, stride), np.uint8)
        data[:, :w] = self.pixels
        return (struct.pack("<QBBII", self.image_id, self.type, self.flags, w, h)
                + struct.pack("<BBIIII", BitmapFmt.FMT_8BIT_A, BitmapFlags.TOP_DOWN, w, h,
                              stride, 0) + data.tobytes())


def a8_bgra(alpha: np.ndarray) -> np.ndarray:
    px = np.zeros((*alpha.shape, 4), np.uint8)
    px[..., 3] = alpha
    return px


def check(ch: DisplayChannel, ctx: ChannelContext, want: np.ndarray, sid: int = 0) -> None:
    assert ctx.gaps.counts() == {}
    got = ch.surfaces[sid].pixels
    bad = np.argwhere((got != want).any(axis=2))
    assert bad.size == 0, (len(bad), bad[:5].tolist(),
                           [(got[y, x].tolist(), want[y, x].tolist()) for y, x in bad[:5]])


BOX, CLIP = (1, 2, 8, 11), [(0, 0, 4, 7), (3, 5, 9, 13)]


@pytest.mark.parametrize("fmt", [SF.FMT_16_565, SF.FMT_16_555])
@pytest.mark.parametrize("op", [SATURATE, 0x13, 0x24, COLOR_DODGE, COLOR_BURN, SOFT_LIGHT,
                                HSL_HUE, HSL_SATURATION, HSL_COLOR, HSL_LUMINOSITY, 0x30, 0x32])
def test_float_path_ops_on_16_bit_surfaces(fmt: int, op: int) -> None:
    """pixman reads a 5-bit channel as c5 / 31 in its float combiners: the dest, a bitmap
    converted to the canvas's 16-bit format, and a 16-bit surface source."""
    ch, ctx = canvas(fmt, seed=op)
    src = premultiplied(20, 5, 6)
    mask = premultiplied(21, 4, 4)
    before = ch.surfaces[0].pixels.copy()
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        BOX, flags(op, mask_repeat=1, extra=HAS_MASK), B.Image(src, fmt=BitmapFmt.FMT_RGBA),
        B.Image(mask, fmt=BitmapFmt.FMT_RGBA), src_origin=(1, -1), clip=CLIP))
    c16 = CANVAS[fmt]
    check(ch, ctx, spice(before, fmt, BOX, CLIP, op, Src(src, PL.A8R8G8B8, c16, origin=(1, -1)),
                         Src(mask, PL.A8R8G8B8, c16, repeat=1)))
    # a 16-bit surface source (its own format) under an a8 surface mask (alpha kept)
    spx = surface(ch, 1, fmt, 22, 4, 3)
    mpx = surface(ch, 2, SF.FMT_8_A, 23, 5, 5)
    before = ch.surfaces[0].pixels.copy()
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        BOX, flags(op, src_repeat=1, mask_repeat=3, extra=HAS_MASK),
        B.Image(type=ImageType.SURFACE, surface_id=1, width=4, height=3),
        B.Image(type=ImageType.SURFACE, surface_id=2, width=5, height=5),
        src_origin=(2, 1), mask_origin=(-1, 2), clip=CLIP))
    check(ch, ctx, spice(before, fmt, BOX, CLIP, op, Src(spx, c16, c16, repeat=1, origin=(2, 1)),
                         Src(mpx, PL.A8, PL.A8, repeat=3, origin=(-1, 2))))


@pytest.mark.parametrize("fmt", [SF.FMT_32_xRGB, SF.FMT_32_ARGB])
def test_saturate_of_an_x8r8g8b8_image_is_over_reverse(fmt: int) -> None:
    """A 32BIT bitmap is x8r8g8b8 (its fourth byte is not alpha): repeating, pixman counts it
    opaque and runs SATURATE as OVER_REVERSE in 8 bits, not the float saturate."""
    ch, ctx = canvas(fmt, seed=30)
    src = raw(31, 4, 5)
    before = ch.surfaces[0].pixels.copy()
    box = (0, 0, H, W)
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        box, flags(SATURATE, src_repeat=1), B.Image(src, fmt=BitmapFmt.FMT_32BIT),
        src_origin=(1, 2)))
    want = spice(before, fmt, box, None, SATURATE,
                 Src(src, PL.X8R8G8B8, PL.X8R8G8B8, repeat=1, origin=(1, 2)))
    check(ch, ctx, want)
    assert (want == spice(before, fmt, box, None, OVER_REVERSE,
                          Src(src, PL.X8R8G8B8, PL.X8R8G8B8, repeat=1, origin=(1, 2)))).all()
    if fmt == SF.FMT_32_xRGB:
        return  # an opaque dest: both leave it as it is
    # as a8r8g8b8 with alpha 255 (what ryll used to hand pixman) many pixels differ
    opaque = src.copy()
    opaque[..., 3] = 255
    wrong = spice(before, fmt, box, None, SATURATE,
                  Src(opaque, PL.A8R8G8B8, PL.A8R8G8B8, repeat=1, origin=(1, 2)))
    assert (wrong != want).any(axis=2).sum() > 10


@pytest.mark.parametrize("src_fmt", [SF.FMT_16_565, SF.FMT_16_555, SF.FMT_32_xRGB])
def test_saturate_of_an_opaque_surface_source(src_fmt: int) -> None:
    ch, ctx = canvas(SF.FMT_32_ARGB, seed=32)
    spx = surface(ch, 1, src_fmt, 33, W + 2, H + 1)
    before = ch.surfaces[0].pixels.copy()
    box = (1, 1, H - 1, W - 2)
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        box, flags(SATURATE), B.Image(type=ImageType.SURFACE, surface_id=1, width=W + 2,
                                      height=H + 1), src_origin=(1, 1)))
    # no repeat, but the samples cover the box: opaque
    fmt = CANVAS[src_fmt]
    check(ch, ctx, spice(before, SF.FMT_32_ARGB, box, None, SATURATE,
                         Src(spx, fmt, fmt, origin=(1, 1))))


@pytest.mark.parametrize("canvas_fmt", [SF.FMT_32_xRGB, SF.FMT_32_ARGB, SF.FMT_16_565])
def test_saturate_of_a_source_opaque_argb_surface(canvas_fmt: int) -> None:
    """SOURCE_OPAQUE: sw_canvas get_image(force_opaque) wraps the ARGB surface's memory as
    x8r8g8b8. Without the flag the same surface keeps its alpha."""
    for opaque in (True, False):
        ch, ctx = canvas(canvas_fmt, seed=34)
        spx = surface(ch, 1, SF.FMT_32_ARGB, 35, 3, 4)
        mask = premultiplied(36, 3, 3)
        before = ch.surfaces[0].pixels.copy()
        send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
            BOX, flags(SATURATE, src_repeat=2, mask_repeat=1,
                       extra=HAS_MASK | (SOURCE_OPAQUE if opaque else 0)),
            B.Image(type=ImageType.SURFACE, surface_id=1, width=3, height=4),
            B.Image(mask, fmt=BitmapFmt.FMT_RGBA), src_origin=(-1, 1), clip=CLIP))
        fmt = PL.X8R8G8B8 if opaque else PL.A8R8G8B8
        check(ch, ctx, spice(before, canvas_fmt, BOX, CLIP, SATURATE,
                             Src(spx, PL.A8R8G8B8, fmt, repeat=2, origin=(-1, 1)),
                             Src(mask, PL.A8R8G8B8, target(canvas_fmt, PL.A8R8G8B8),
                                 repeat=1)))


@pytest.mark.parametrize("canvas_fmt", [SF.FMT_32_xRGB, SF.FMT_32_ARGB])
@pytest.mark.parametrize("bitmap_fmt", [BitmapFmt.FMT_RGBA, BitmapFmt.FMT_32BIT])
@pytest.mark.parametrize("op", [OVER, ADD, SATURATE, 0x23, 0x32, HSL_COLOR])
def test_images_with_and_without_alpha(canvas_fmt: int, bitmap_fmt: int, op: int) -> None:
    """canvas_get_target_format: an RGBA bitmap stays a8r8g8b8 on an xRGB canvas, a 32BIT one
    is x8r8g8b8 on an ARGB canvas (its fourth bytes, here random, are not alpha)."""
    ch, ctx = canvas(canvas_fmt, seed=op)
    src = raw(40, 5, 6) if bitmap_fmt == BitmapFmt.FMT_32BIT else premultiplied(40, 5, 6)
    mask = premultiplied(41, 3, 4)
    before = ch.surfaces[0].pixels.copy()
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        BOX, flags(op, src_repeat=1, mask_repeat=3, extra=HAS_MASK),
        B.Image(src, fmt=bitmap_fmt), B.Image(mask, fmt=BitmapFmt.FMT_RGBA), src_origin=(2, 0),
        mask_origin=(1, 1), clip=CLIP))
    native = PL.A8R8G8B8 if bitmap_fmt == BitmapFmt.FMT_RGBA else PL.X8R8G8B8
    check(ch, ctx, spice(before, canvas_fmt, BOX, CLIP, op,
                         Src(src, native, target(canvas_fmt, native), repeat=1, origin=(2, 0)),
                         Src(mask, PL.A8R8G8B8, target(canvas_fmt, PL.A8R8G8B8), repeat=3,
                             origin=(1, 1))))


def _lz4_payload(px: np.ndarray, fmt: int) -> bytes:
    """An LZ4 image (canvas_get_lz4: top_down, the format byte, then big-endian sized
    blocks), the pixels as literals."""
    data = np.ascontiguousarray(px).tobytes()
    n = len(data)
    r = n - 15
    block = bytes([0xF0]) + b"\xff" * (r // 255) + bytes([r % 255]) + data
    return bytes([1, fmt]) + struct.pack(">I", len(block)) + block


@pytest.mark.parametrize("codec", ["lz", "quic", "lz4", "glz"])
@pytest.mark.parametrize("alpha", [True, False])
def test_compressed_images_carry_their_alpha(codec: str, alpha: bool) -> None:
    """QUIC, LZ, GLZ RGBA and LZ4 with the RGBA format byte are a8r8g8b8, their RGB32 types
    x8r8g8b8: on an xRGB canvas SATURATE then differs (float saturate vs OVER_REVERSE)."""
    ch, ctx = canvas(SF.FMT_32_xRGB, seed=50)
    px = premultiplied(51, 4, 5) if alpha else raw(51, 4, 5)
    h, w = px.shape[:2]
    if codec == "lz":
        payload = _lz_enc.encode_lz(L.RGBA if alpha else L.RGB32, px)
        img = B.Image(type=ImageType.LZ_RGB, width=w, height=h, payload=payload)
    elif codec == "glz":
        payload = _lz_enc.encode_glz(L.RGBA if alpha else L.RGB32, px, 1)
        img = B.Image(type=ImageType.GLZ_RGB, width=w, height=h, payload=payload)
    elif codec == "quic":
        img = B.Image(type=ImageType.QUIC, width=w, height=h,
                      payload=encode_quic(px, 5 if alpha else 4))
    else:
        img = B.Image(type=ImageType.LZ4, width=w, height=h,
                      payload=_lz4_payload(px, BitmapFmt.FMT_RGBA if alpha
                                           else BitmapFmt.FMT_32BIT))
    before = ch.surfaces[0].pixels.copy()
    box = (0, 0, H, W)
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        box, flags(SATURATE, src_repeat=1), img, src_origin=(1, 1)))
    native = PL.A8R8G8B8 if alpha else PL.X8R8G8B8
    check(ch, ctx, spice(before, SF.FMT_32_xRGB, box, None, SATURATE,
                         Src(px, native, native, repeat=1, origin=(1, 1))))


def _cache(ch: DisplayChannel, img: B.Image) -> None:
    """Send ``img`` flagged CACHE_ME in a composite onto the scratch surface."""
    img.flags |= ImageFlags.CACHE_ME
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        (0, 0, 1, 1), flags(OVER), img, surface_id=SCRATCH))


@pytest.mark.parametrize("canvas_fmt", [SF.FMT_32_xRGB, SF.FMT_32_ARGB, SF.FMT_16_565,
                                        SF.FMT_8_A])
@pytest.mark.parametrize("kind", ["rgba", "32bit", "a8"])
def test_from_cache_images_keep_their_kind(canvas_fmt: int, kind: str) -> None:
    """The cache keeps what an image is: a FROM_CACHE image is converted again for the canvas
    it is drawn on, as the decoded original would be (an A8 bitmap: opaque black on colour
    canvases, its alpha on an 8_A canvas)."""
    ch, ctx = canvas(canvas_fmt, seed=60)
    create(ch, SCRATCH, 4, 4, SF.FMT_32_xRGB)
    if kind == "a8":
        alpha = np.random.default_rng(61).integers(0, 256, (4, 5), dtype=np.uint8)
        img: B.Image = A8Image(alpha, image_id=900)
        px, native = a8_bgra(alpha), PL.A8
    elif kind == "rgba":
        px, native = premultiplied(61, 4, 5), PL.A8R8G8B8
        img = B.Image(px, fmt=BitmapFmt.FMT_RGBA, image_id=900)
    else:
        px, native = raw(61, 4, 5), PL.X8R8G8B8
        img = B.Image(px, fmt=BitmapFmt.FMT_32BIT, image_id=900)
    _cache(ch, img)
    assert ctx.display_shared.images.get(900) is not None
    mask = premultiplied(62, 3, 3)
    for op, extra in ((SATURATE, 0), (OVER, HAS_MASK), (HSL_LUMINOSITY, HAS_MASK)):
        before = ch.surfaces[0].pixels.copy()
        send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
            BOX, flags(op, src_repeat=1, mask_repeat=1, extra=extra),
            B.Image(type=ImageType.FROM_CACHE, image_id=900, width=5, height=4),
            B.Image(mask, fmt=BitmapFmt.FMT_RGBA), src_origin=(1, 2), clip=CLIP))
        check(ch, ctx, spice(before, canvas_fmt, BOX, CLIP, op,
                             Src(px, native, target(canvas_fmt, native), repeat=1,
                                 origin=(1, 2)),
                             Src(mask, PL.A8R8G8B8, target(canvas_fmt, PL.A8R8G8B8),
                                 repeat=1) if extra else None))


@pytest.mark.parametrize("canvas_fmt", [SF.FMT_32_ARGB, SF.FMT_16_555, SF.FMT_8_A])
@pytest.mark.parametrize("cached", [False, True])
def test_an_a8_bitmap_as_a_mask_and_as_a_copy_source(canvas_fmt: int, cached: bool) -> None:
    """An A8 bitmap is converted to the canvas's format like any image, through the cache
    too: as a composite mask on a colour canvas it is opaque (no alpha left); DRAW_COPY puts
    opaque black."""
    ch, ctx = canvas(canvas_fmt, seed=70)
    create(ch, SCRATCH, 4, 4, SF.FMT_32_xRGB)
    alpha = np.random.default_rng(71).integers(0, 256, (5, 6), dtype=np.uint8)
    img: B.Image = A8Image(alpha, image_id=901)
    if cached:
        _cache(ch, img)
        img = B.Image(type=ImageType.FROM_CACHE, image_id=901, width=6, height=5)
    src = premultiplied(72, 3, 3)
    before = ch.surfaces[0].pixels.copy()
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        BOX, flags(OVER, src_repeat=1, mask_repeat=1, extra=HAS_MASK),
        B.Image(src, fmt=BitmapFmt.FMT_RGBA), img, clip=CLIP))
    check(ch, ctx, spice(before, canvas_fmt, BOX, CLIP, OVER,
                         Src(src, PL.A8R8G8B8, target(canvas_fmt, PL.A8R8G8B8), repeat=1),
                         Src(a8_bgra(alpha), PL.A8, target(canvas_fmt, PL.A8), repeat=1)))
    if not cached:
        img = B.Image(type=ImageType.FROM_CACHE, image_id=901, width=6, height=5)
        _cache(ch, A8Image(alpha, image_id=901))
    send(ch, DisplayServer.DRAW_COPY, B.draw_copy((0, 0, 5, 6), img, (0, 0, 5, 6),
                                                  Ropd.OP_PUT))
    assert ctx.gaps.counts() == {}
    got = ch.surfaces[0].pixels[:5, :6]
    if canvas_fmt == SF.FMT_8_A:
        assert (got[..., 3] == alpha).all() and (got[..., :3] == 0).all()
    else:
        assert (got == (0, 0, 0, 255)).all()


def test_the_whole_box_decides_saturates_opaque_test() -> None:
    """The clip covers only pixels the source covers, but pixman looks at the whole box: the
    source does not cover it, so it is not opaque and SATURATE stays the float saturate."""
    ch, ctx = canvas(SF.FMT_32_ARGB, seed=80)
    src = raw(81, 6, 6)
    box, clip = (0, 0, 8, 8), [(0, 0, 4, 4)]
    before = ch.surfaces[0].pixels.copy()
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        box, flags(SATURATE), B.Image(src, fmt=BitmapFmt.FMT_32BIT), clip=clip))
    s = Src(src, PL.X8R8G8B8, PL.X8R8G8B8)
    want = spice(before, SF.FMT_32_ARGB, box, clip, SATURATE, s)
    check(ch, ctx, want)
    # compositing only the clip's box would take the source as opaque: OVER_REVERSE
    assert (spice(before, SF.FMT_32_ARGB, (0, 0, 4, 4), clip, SATURATE, s) != want).any()


def test_the_whole_box_decides_the_previous_row_under_a_zero_mask() -> None:
    """A transformed source is not fetched where the mask is zero: the scanline keeps the
    pixel of the row above, which the HSL modes see through their unscaled blue (where the
    dest is not opaque). With a clip whose first row is the box's fourth, a zero-mask row,
    that row still sees the box's third."""
    ch, ctx = canvas(SF.FMT_32_ARGB, seed=82)
    src = premultiplied(83, 5, 5)
    mask = premultiplied(84, 3, 3)
    mask[0] = 0
    ts = (40000, 9000, -70000, -5000, 30000, 20000)
    box, clip = (0, 0, H, W), [(3, 0, 6, 9), (5, 4, H, W)]
    before = ch.surfaces[0].pixels.copy()
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        box, flags(HSL_HUE, src_filter=4, src_repeat=2, mask_repeat=1,
                   extra=HAS_MASK | HAS_SRC_T), B.Image(src, fmt=BitmapFmt.FMT_RGBA),
        B.Image(mask, fmt=BitmapFmt.FMT_RGBA), ts, src_origin=(1, 0), clip=clip))
    s = Src(src, PL.A8R8G8B8, PL.A8R8G8B8, ts, 4, 2, (1, 0))
    m = Src(mask, PL.A8R8G8B8, PL.A8R8G8B8, repeat=1)
    want = spice(before, SF.FMT_32_ARGB, box, clip, HSL_HUE, s, m)
    check(ch, ctx, want)
    # the clip's bounding box composited from its own top row: a different previous row
    t, lf = 3, 0
    shifted = spice(before, SF.FMT_32_ARGB, (t, lf, H, W), clip, HSL_HUE,
                    Src(src, PL.A8R8G8B8, PL.A8R8G8B8, ts, 4, 2, (1 + lf, t)),
                    Src(mask, PL.A8R8G8B8, PL.A8R8G8B8, repeat=1, origin=(lf, t)))
    assert (shifted != want).any()


@pytest.mark.parametrize("box", [(-3, -2, 5, 6), (4, 7, H + 3, W + 4), (-2, 3, H + 2, 8),
                                 (2, -5, 6, W + 5)])
def test_a_box_partly_off_the_surface(box: B.Rect) -> None:
    """Composited whole (the dest memory off the surface does not change the pixels on it)."""
    ch, ctx = canvas(SF.FMT_32_ARGB, seed=90)
    src = premultiplied(91, 4, 3)
    mask = raw(92, 3, 5)
    ts = (70000, -3000, 10000, 2000, 50000, -40000)
    for op in (SATURATE, HSL_SATURATION, OVER):
        before = ch.surfaces[0].pixels.copy()
        send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
            box, flags(op, src_filter=1, src_repeat=3, extra=HAS_MASK | HAS_SRC_T),
            B.Image(src, fmt=BitmapFmt.FMT_RGBA), B.Image(mask, fmt=BitmapFmt.FMT_32BIT), ts,
            src_origin=(-1, 2), mask_origin=(1, -1)))
        check(ch, ctx, spice(before, SF.FMT_32_ARGB, box, None, op,
                             Src(src, PL.A8R8G8B8, PL.A8R8G8B8, ts, 1, 3, (-1, 2)),
                             Src(mask, PL.X8R8G8B8, PL.X8R8G8B8, origin=(1, -1))))


def test_a_box_pixman_refuses_draws_nothing() -> None:
    ch, ctx = canvas(SF.FMT_32_xRGB, seed=93)
    before = ch.surfaces[0].pixels.copy()
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        (-40000, -40000, 40000, 40000), flags(SRC, src_repeat=1),
        B.Image(premultiplied(94, 2, 2), fmt=BitmapFmt.FMT_RGBA)))
    assert ctx.gaps.counts() == {}
    assert (ch.surfaces[0].pixels == before).all()


_FORMATS = list(CANVAS)
_TRANSFORMS = [None, (65536, 0, 0, 0, 65536, 0), (32768, 0, 0, 0, 32768, 0),
               (98304, 0, -20000, 0, 81920, 30000), (60000, 12000, 5000, -9000, 70000, -30000),
               (131072, 0, 65536, 0, 131072, 0)]


def _random_input(rng: np.random.Generator, ch: DisplayChannel, canvas_fmt: int, sid: int,
                  image_id: int, as_source: bool) -> tuple[B.Image, Src, int]:
    """A random source or mask: an RGBA / 32BIT / A8 bitmap (sometimes through the cache) or
    a surface of any format (sources sometimes SOURCE_OPAQUE). Returns the message's image,
    the oracle's Src (no transform yet) and the extra flags."""
    h, w = (int(v) for v in rng.integers(1, 7, 2))
    kind = int(rng.integers(0, 4))
    extra = 0
    if kind == 3:
        fmt = _FORMATS[int(rng.integers(0, len(_FORMATS)))]
        px = surface(ch, sid, fmt, int(rng.integers(1000)), w, h)
        native = pfmt = CANVAS[fmt]
        if as_source and rng.integers(0, 2) and fmt not in (SF.FMT_8_A, SF.FMT_1_A):
            extra = SOURCE_OPAQUE
            pfmt = PL.X8R8G8B8 if native == PL.A8R8G8B8 else native
        return (B.Image(type=ImageType.SURFACE, surface_id=sid, width=w, height=h),
                Src(px, native, pfmt), extra)
    if kind == 0:
        px, native = premultiplied(int(rng.integers(1000)), h, w), PL.A8R8G8B8
        img: B.Image = B.Image(px, fmt=BitmapFmt.FMT_RGBA, image_id=image_id)
    elif kind == 1:
        px, native = raw(int(rng.integers(1000)), h, w), PL.X8R8G8B8
        img = B.Image(px, fmt=BitmapFmt.FMT_32BIT, image_id=image_id)
    else:
        alpha = rng.integers(0, 256, (h, w), dtype=np.uint8)
        px, native = a8_bgra(alpha), PL.A8
        img = A8Image(alpha, image_id=image_id)
    if rng.integers(0, 2):
        _cache(ch, img)
        img = B.Image(type=ImageType.FROM_CACHE, image_id=image_id, width=w, height=h)
    return img, Src(px, native, target(canvas_fmt, native)), extra


@pytest.mark.parametrize("seed", range(120))
def test_random_composites_match_pixman(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    canvas_fmt = _FORMATS[int(rng.integers(0, len(_FORMATS)))]
    ch, ctx = canvas(canvas_fmt, seed=seed)
    create(ch, SCRATCH, 4, 4, SF.FMT_32_xRGB)
    op = int(rng.integers(0, 0x3F))
    src_img, src, extra = _random_input(rng, ch, canvas_fmt, 1, 500, True)
    f = flags(op, src_filter=int(rng.integers(0, 5)), src_repeat=int(rng.integers(0, 4)),
              extra=extra)
    src.filter, src.repeat = (f >> 8) & 7, (f >> 14) & 3
    src.origin = (int(rng.integers(-4, 5)), int(rng.integers(-4, 5)))
    src.transform = _TRANSFORMS[int(rng.integers(0, len(_TRANSFORMS)))]
    if src.transform is not None:
        f |= HAS_SRC_T
    mask_img, mask = None, None
    ca = False
    if rng.integers(0, 3):
        mask_img, mask, _ = _random_input(rng, ch, canvas_fmt, 2, 501, False)
        f |= HAS_MASK | int(rng.integers(0, 5)) << 11 | int(rng.integers(0, 4)) << 16
        mask.filter, mask.repeat = (f >> 11) & 7, (f >> 16) & 3
        mask.origin = (int(rng.integers(-4, 5)), int(rng.integers(-4, 5)))
        mask.transform = _TRANSFORMS[int(rng.integers(0, len(_TRANSFORMS)))]
        if mask.transform is not None:
            f |= HAS_MASK_T
        if rng.integers(0, 3) == 0:
            f |= CA
            ca = True
    top, left = int(rng.integers(-2, H - 1)), int(rng.integers(-2, W - 1))
    box = (top, left, top + int(rng.integers(1, H + 2)), left + int(rng.integers(1, W + 2)))
    clip = None
    if rng.integers(0, 2):
        clip = []
        for _ in range(int(rng.integers(1, 4))):
            ct, cl = int(rng.integers(0, H)), int(rng.integers(0, W))
            clip.append((ct, cl, ct + int(rng.integers(1, H)), cl + int(rng.integers(1, W))))
    before = ch.surfaces[0].pixels.copy()
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        box, f, src_img, mask_img, src.transform, mask.transform if mask else None,
        src.origin, mask.origin if mask else (0, 0), clip))
    check(ch, ctx, spice(before, canvas_fmt, box, clip, op, src, mask, ca))
