"""DRAW_COMPOSITE through the display channel (canvas_base.c canvas_draw_composite): the box is
composited by pixman's rules (expected pixels from the scalar model in tests/render/pixman_ref)
and written back through the clip; sources and masks are bitmaps, cached images or surfaces.
Messages come from tests/render/builders.draw_composite (spice.proto's layout)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from tests.render import builders as B
from tests.render import pixman_ref as P
from tests.render.test_draws import H, W, channel, in_region, send

from ryll.channels.display import DisplayChannel
from ryll.protocol.constants import (
    BitmapFmt,
    DisplayCap,
    DisplayServer,
    ImageFlags,
    ImageType,
    Ropd,
    SurfaceFmt,
)

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


def expect(before: np.ndarray, box: B.Rect, clip: list[B.Rect] | None, pixel, opaque: bool
           ) -> np.ndarray:  # type: ignore[no-untyped-def]
    """``pixel(dx, dy, dest_word)`` for each pixel of the region (dx, dy relative to the box)."""
    want = before.copy()
    words = P.words(before)
    for y in range(H):
        for x in range(W):
            if in_region(x, y, box, clip):
                v = pixel(x - box[1], y - box[0], words[y][x])
                want[y, x] = np.frombuffer(struct.pack("<I", v), np.uint8)
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
    img = P.words(src)
    name = {OVER: "over", SRC: "src", ADD: "add"}.get(op)

    def pixel(dx: int, dy: int, d: int) -> int:
        s = P.sample(img, None, 0, 0, dx + 1, dy - 1)
        if name is not None:
            return P.unified(name, s, None, d)
        if op == MULTIPLY:
            return P.separable("multiply", s, None, d, False)
        return P.hsl("hsl_hue", s, None, d)

    want = expect(before, box, clip, pixel, fmt == SurfaceFmt.FMT_32_xRGB)
    assert (ch.surfaces[0].pixels == want).all()


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
    src = P.words(ch.surfaces[1].pixels)
    src = [[v | 0xFF000000 for v in row] for row in src]  # SOURCE_OPAQUE: x8r8g8b8
    mask = P.words(ch.surfaces[2].pixels)

    def pixel(dx: int, dy: int, d: int) -> int:
        return P.unified("over", P.sample(src, None, 0, 1, dx, dy),
                         P.sample(mask, None, 0, 0, dx, dy), d)

    assert (ch.surfaces[0].pixels == expect(before, box, None, pixel, True)).all()


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
    simg, mimg = P.words(src), P.words(mask)

    def pixel(dx: int, dy: int, d: int) -> int:
        return P.component("over", P.sample(simg, ts, 4, 1, dx + 2, dy + 1),
                           P.sample(mimg, tm, 3, 3, dx - 1, dy + 3), d)

    assert (ch.surfaces[0].pixels == expect(before, box, None, pixel, False)).all()


JOINT_NAMES = {op: f"{kind}_{base}" for kind, hi in (("disjoint", 0x10), ("conjoint", 0x20))
               for op, base in ((hi + 3, "over"), (hi + 4, "over_reverse"), (hi + 5, "in"),
                                (hi + 9, "atop"), (hi + 0xB, "xor"))}


@pytest.mark.parametrize("fmt", [SurfaceFmt.FMT_32_xRGB, SurfaceFmt.FMT_32_ARGB])
@pytest.mark.parametrize("op", sorted(JOINT_NAMES))
def test_disjoint_and_conjoint_ops_through_a_clip(fmt: int, op: int) -> None:
    ch, ctx = channel(fmt)
    before = ch.surfaces[0].pixels.copy()
    src, mask = premultiplied(12, 5, 6), premultiplied(13, 4, 4)
    box, clip = (1, 2, 8, 11), [(0, 0, 4, 7), (3, 5, 9, 13)]
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        box, flags(op, mask_repeat=1, extra=HAS_MASK), B.Image(src, fmt=BitmapFmt.FMT_RGBA),
        B.Image(mask, fmt=BitmapFmt.FMT_RGBA), src_origin=(1, -1), clip=clip))
    assert ctx.gaps.counts() == {}
    simg, mimg = P.words(src), P.words(mask)

    def pixel(dx: int, dy: int, d: int) -> int:
        return P.joint(JOINT_NAMES[op], P.sample(simg, None, 0, 0, dx + 1, dy - 1),
                       P.sample(mimg, None, 0, 1, dx, dy), d)

    want = expect(before, box, clip, pixel, fmt == SurfaceFmt.FMT_32_xRGB)
    assert (ch.surfaces[0].pixels == want).all()


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
    simg, mimg = P.words(src), P.words(mask)

    def pixel(dx: int, dy: int, d: int) -> int:
        s, m = P.sample(simg, None, 0, 1, dx + 2, dy + 1), P.sample(mimg, None, 0, 3, dx - 1,
                                                                    dy + 3)
        if op == 0x0D:
            return P.component("saturate", s, m, d)
        if op >= 0x3B:
            return P.hsl("hsl_hue", s, m, d, True)
        return P.joint({0x14: "disjoint_over_reverse", 0x17: "disjoint_out",
                        0x1A: "disjoint_atop_reverse", 0x23: "conjoint_over",
                        0x26: "conjoint_in_reverse", 0x2B: "conjoint_xor"}[op], s, m, d, True)

    want = expect(before, box, None, pixel, False)
    assert (ch.surfaces[0].pixels == want).all()
    if op >= 0x3B:
        assert (ch.surfaces[0].pixels == before).all()


def test_an_op_in_a_hole_of_pixmans_table_clears() -> None:
    ch, ctx = channel(SurfaceFmt.FMT_32_ARGB)
    before = ch.surfaces[0].pixels.copy()
    box = (1, 1, 4, 5)
    send(ch, DisplayServer.DRAW_COMPOSITE, B.draw_composite(
        box, flags(0x2E), B.Image(premultiplied(16, 2, 2), fmt=BitmapFmt.FMT_RGBA)))
    assert ctx.gaps.counts() == {}
    assert (ch.surfaces[0].pixels == expect(before, box, None, lambda dx, dy, d: 0,
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
