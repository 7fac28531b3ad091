"""Every draw operation through the display channel, against expected pixels computed pixel by
pixel from spice-common's canvas semantics (canvas_base.c, sw_canvas.c, pixman_utils.c).

The messages come from ``builders`` (the project's own encoder of spice.proto layouts): the
test VM's server does not produce ROP descriptors, masks, brushes, ROP3 or TRANSPARENT draws.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ryll.channels.context import ChannelContext
from ryll.channels.display import DisplayChannel
from ryll.protocol.constants import (
    AlphaFlags,
    BitmapFmt,
    DisplayServer,
    ImageFlags,
    ImageType,
    MaskFlags,
    Ropd,
    SurfaceFmt,
)
from ryll.protocol.framing import MessageWriter
from ryll.render.rop import RopInput
from tests.render import builders as B
from tests.render.test_rop import EQUATIONS, c_ropd_descriptor_to_rop

W, H = 13, 9
M32 = 0xFFFFFFFF


def channel(fmt: int = SurfaceFmt.FMT_32_xRGB, seed: int = 1
            ) -> tuple[DisplayChannel, ChannelContext]:
    ctx = ChannelContext()
    ch = DisplayChannel(0, ctx)
    ch.receive_data(MessageWriter(True).build(DisplayServer.SURFACE_CREATE,
                                              B.surface_create(0, W, H, fmt)))
    px = np.random.default_rng(seed).integers(0, 256, (H, W, 4), dtype=np.uint8)
    if fmt != SurfaceFmt.FMT_32_ARGB:
        px[..., 3] = 255
    ch.surfaces[0].pixels[...] = px
    return ch, ctx


def send(ch: DisplayChannel, opcode: int, body: bytes) -> None:
    ch.receive_data(MessageWriter(True).build(opcode, body))


def words(px: np.ndarray) -> np.ndarray:
    return px.view("<u4")[..., 0].astype(np.int64)


def image(seed: int, h: int, w: int, alpha: bool = False) -> np.ndarray:
    px = np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)
    if not alpha:
        px[..., 3] = 255
    return px


def in_region(x: int, y: int, box: B.Rect, clip: list[B.Rect] | None,
              mask: np.ndarray | None = None, mask_pos: tuple[int, int] = (0, 0),
              invers: bool = False) -> bool:
    """canvas_clip_pixman + canvas_mask_pixman for one pixel."""
    t, lf, b, r = box
    if not (t <= y < b and lf <= x < r and 0 <= x < W and 0 <= y < H):
        return False
    if clip is not None and not any(ct <= y < cb and cl <= x < cr for ct, cl, cb, cr in clip):
        return False
    if mask is not None:
        mx, my = x - lf + mask_pos[0], y - t + mask_pos[1]
        if not (0 <= my < mask.shape[0] and 0 <= mx < mask.shape[1]):
            return False
        return bool(mask[my, mx]) != invers
    return True


def finish(expected: np.ndarray, fmt: int = SurfaceFmt.FMT_32_xRGB) -> np.ndarray:
    """Words back to BGRA, with ryll's x byte convention for surfaces without alpha."""
    out = (expected & M32).astype("<u4").view(np.uint8).reshape(H, W, 4).copy()
    if fmt != SurfaceFmt.FMT_32_ARGB:
        out[..., 3] = 255
    return out


def assert_pixels(ch: DisplayChannel, want: np.ndarray) -> None:
    got = ch.surfaces[0].pixels
    bad = np.argwhere((got != want).any(axis=2))
    assert bad.size == 0, f"{len(bad)} pixels differ, first (y, x) {tuple(bad[0])}: " \
        f"{got[tuple(bad[0])]} != {want[tuple(bad[0])]}"


OPS = [Ropd.OP_PUT, Ropd.OP_OR, Ropd.OP_AND, Ropd.OP_XOR, Ropd.OP_BLACKNESS,
       Ropd.OP_WHITENESS, Ropd.OP_INVERS]
DESCRIPTORS = [op | inv for op in OPS for inv in range(8)] + [
    op | inv | Ropd.INVERS_RES for op in OPS[:4] for inv in range(8)] + [0]
CLIP = [(1, 0, 5, 9), (4, 6, 8, 13)]


@pytest.mark.parametrize("desc", DESCRIPTORS, ids=hex)
def test_draw_copy_and_blend_with_every_rop_descriptor(desc: int) -> None:
    for opcode in (DisplayServer.DRAW_COPY, DisplayServer.DRAW_BLEND):
        ch, ctx = channel()
        before = words(ch.surfaces[0].pixels.copy())
        src = image(5, 6, 8)
        # The box runs off the right edge; the source covers only part of the box.
        box, area = (0, 3, 8, 15), (1, 2, 9, 14)
        send(ch, opcode, B.draw_copy(box, B.Image(src), area, desc, clip=CLIP))
        rop = c_ropd_descriptor_to_rop(desc, RopInput.SRC, RopInput.DEST)
        want = before.copy()
        sw = words(src)
        for y, x in itertools.product(range(H), range(W)):
            sx, sy = x - box[1] + area[1], y - box[0] + area[0]
            if in_region(x, y, box, CLIP) and 0 <= sx < 8 and 0 <= sy < 6:
                want[y, x] = EQUATIONS[rop](int(sw[sy, sx]), int(before[y, x])) & M32
        assert_pixels(ch, finish(want))
        assert ctx.gaps.counts() == {}


@pytest.mark.parametrize("desc", DESCRIPTORS[::3], ids=hex)
@pytest.mark.parametrize("pattern", [False, True])
def test_draw_fill_solid_and_pattern_brushes(desc: int, pattern: bool) -> None:
    ch, ctx = channel()
    before = words(ch.surfaces[0].pixels.copy())
    tile = image(9, 3, 5)
    pos = (-7, 2)
    box = (-2, 1, 7, 11)
    if pattern:
        body = B.draw_fill(box, desc, pattern=B.Image(tile), pattern_pos=pos, clip=CLIP)
    else:
        body = B.draw_fill(box, desc, color=0x80123456, clip=CLIP)
    send(ch, DisplayServer.DRAW_FILL, body)
    rop = c_ropd_descriptor_to_rop(desc, RopInput.BRUSH, RopInput.DEST)
    tw = words(tile)
    want = before.copy()
    for y, x in itertools.product(range(H), range(W)):
        if in_region(x, y, box, CLIP):
            brush = int(tw[(y - pos[1]) % 3, (x - pos[0]) % 5]) if pattern else 0x80123456
            want[y, x] = EQUATIONS[rop](brush, int(before[y, x])) & M32
    assert_pixels(ch, finish(want))
    assert ctx.gaps.counts() == {}


def test_fill_on_argb_keeps_the_colour_word_alpha() -> None:
    ch, _ = channel(SurfaceFmt.FMT_32_ARGB)
    send(ch, DisplayServer.DRAW_FILL, B.draw_fill((0, 0, H, W), Ropd.OP_PUT, color=0x40A0B0C0))
    assert (ch.surfaces[0].pixels == [0xC0, 0xB0, 0xA0, 0x40]).all()


@pytest.mark.parametrize("desc", [Ropd.OP_PUT, Ropd.OP_XOR | Ropd.INVERS_SRC,
                                  Ropd.OP_AND | Ropd.INVERS_BRUSH, Ropd.OP_OR | Ropd.INVERS_RES],
                         ids=hex)
def test_draw_opaque_puts_the_image_then_the_brush(desc: int) -> None:
    ch, ctx = channel()
    before = words(ch.surfaces[0].pixels.copy())
    src = image(3, H, W)
    tile = image(4, 2, 3)
    box, area = (1, 1, 8, 12), (0, 0, 7, 11)
    send(ch, DisplayServer.DRAW_OPAQUE, B.draw_opaque(box, B.Image(src), area, desc,
                                                      pattern=B.Image(tile), pattern_pos=(1, 1)))
    rop = c_ropd_descriptor_to_rop(desc, RopInput.BRUSH, RopInput.SRC)
    sw, tw = words(src), words(tile)
    want = before.copy()
    for y, x in itertools.product(range(H), range(W)):
        if in_region(x, y, box, None):
            s = int(sw[y - 1, x - 1])
            want[y, x] = EQUATIONS[rop](int(tw[(y - 1) % 2, (x - 1) % 3]), s) & M32
    assert_pixels(ch, finish(want))
    assert ctx.gaps.counts() == {}


MASK = np.random.default_rng(11).integers(0, 2, (6, 10)).astype(bool)


@pytest.mark.parametrize("fmt", [BitmapFmt.FMT_1BIT_LE, BitmapFmt.FMT_1BIT_BE])
@pytest.mark.parametrize("top_down", [True, False])
@pytest.mark.parametrize("invers", [False, True])
@pytest.mark.parametrize("opcode", [DisplayServer.DRAW_BLACKNESS, DisplayServer.DRAW_WHITENESS,
                                    DisplayServer.DRAW_INVERS])
def test_mask_only_draws_through_a_qmask(fmt: int, top_down: bool, invers: bool,
                                         opcode: int) -> None:
    ch, ctx = channel(SurfaceFmt.FMT_32_ARGB)
    before = words(ch.surfaces[0].pixels.copy())
    box, pos = (1, -1, 9, 12), (2, 1)
    mask = B.Image(bits=MASK, fmt=fmt, top_down=top_down)
    send(ch, opcode, B.draw_mask_only(box, CLIP, mask, pos, MaskFlags.INVERS if invers else 0))
    want = before.copy()
    for y, x in itertools.product(range(H), range(W)):
        if in_region(x, y, box, CLIP, MASK, pos, invers):
            want[y, x] = {DisplayServer.DRAW_BLACKNESS: 0, DisplayServer.DRAW_WHITENESS: M32,
                          DisplayServer.DRAW_INVERS: ~int(before[y, x])}[opcode]
    assert_pixels(ch, finish(want, SurfaceFmt.FMT_32_ARGB))
    assert ctx.gaps.counts() == {}


def test_cached_mask_is_stored_uninverted_and_reused() -> None:
    ch, ctx = channel()
    box = (0, 0, H, W)
    mask = B.Image(bits=MASK, fmt=BitmapFmt.FMT_1BIT_LE, image_id=77, flags=ImageFlags.CACHE_ME)
    # First use inverted (spice-common caches the plain bits), second from the cache, plain.
    send(ch, DisplayServer.DRAW_BLACKNESS, B.draw_mask_only(box, None, mask, (0, 0),
                                                            MaskFlags.INVERS))
    send(ch, DisplayServer.DRAW_WHITENESS, B.draw_mask_only(
        box, None, B.Image(type=ImageType.FROM_CACHE, image_id=77, width=10, height=6)))
    px = words(ch.surfaces[0].pixels) & 0xFFFFFF
    for y, x in itertools.product(range(6), range(10)):
        assert px[y, x] == (0xFFFFFF if MASK[y, x] else 0)
    assert ctx.gaps.counts() == {}


def test_draw_copy_with_a_mask_and_a_rop() -> None:
    ch, ctx = channel()
    before = words(ch.surfaces[0].pixels.copy())
    src = image(2, H, W)
    box = (0, 0, H, W)
    send(ch, DisplayServer.DRAW_COPY, B.draw_copy(
        box, B.Image(src), box, Ropd.OP_XOR, clip=CLIP,
        mask=B.Image(bits=MASK, fmt=BitmapFmt.FMT_1BIT_BE), mask_pos=(1, 0)))
    want = before.copy()
    sw = words(src)
    for y, x in itertools.product(range(H), range(W)):
        if in_region(x, y, box, CLIP, MASK, (1, 0)):
            want[y, x] = int(sw[y, x]) ^ int(before[y, x])
    assert_pixels(ch, finish(want))
    assert ctx.gaps.counts() == {}


def pixman_nearest(i: int, src_off: int, src_len: int, dest_len: int) -> int:
    """Source index pixman's NEAREST filter reads for destination pixel i (sw_canvas.c
    __scale_image transform), computed with exact integers per pixel."""
    f = src_len * 65536 // dest_len
    centre = src_off * 65536 + (f * (2 * i + 1) + 1) // 2
    return (centre - 1) // 65536


@pytest.mark.parametrize(("area", "box"), [
    ((0, 0, 4, 5), (1, 1, 9, 11)),      # 2x up
    ((0, 0, 9, 13), (2, 2, 5, 6)),      # down by odd factors
    ((1, 2, 6, 9), (0, 0, 9, 13)),      # a sub-rect, up by non-integer factors
])
def test_scaled_copy_nearest_matches_pixman(area: B.Rect, box: B.Rect) -> None:
    ch, ctx = channel()
    before = words(ch.surfaces[0].pixels.copy())
    src = image(6, 9, 13)
    send(ch, DisplayServer.DRAW_COPY, B.draw_copy(box, B.Image(src), area, Ropd.OP_PUT,
                                                  scale_mode=1))
    want = before.copy()
    sw = words(src)
    aw, ah = area[3] - area[1], area[2] - area[0]
    bw, bh = box[3] - box[1], box[2] - box[0]
    for y, x in itertools.product(range(H), range(W)):
        if in_region(x, y, box, None):
            sx = pixman_nearest(x - box[1], area[1], aw, bw)
            sy = pixman_nearest(y - box[0], area[0], ah, bh)
            want[y, x] = int(sw[sy, sx]) if 0 <= sx < 13 and 0 <= sy < 9 else 0
    assert_pixels(ch, finish(want))
    assert ctx.gaps.counts() == {}


def test_scaled_copy_nearest_doubles_pixels() -> None:
    ch, _ = channel()
    src = image(8, 2, 3)
    send(ch, DisplayServer.DRAW_COPY, B.draw_copy((0, 0, 4, 6), B.Image(src), (0, 0, 2, 3),
                                                  Ropd.OP_PUT, scale_mode=1))
    got = ch.surfaces[0].pixels[:4, :6]
    assert (got == np.repeat(np.repeat(src, 2, axis=0), 2, axis=1)).all()


def pixman_bilinear(src: np.ndarray, x: int, y: int, area: B.Rect, box: B.Rect) -> list[int]:
    """pixman's C bilinear fetch (7-bit weights) at destination pixel (x, y), per channel."""
    def pos(i: int, off: int, slen: int, dlen: int) -> tuple[int, int]:
        f = slen * 65536 // dlen
        v = off * 65536 + (f * (2 * i + 1) + 1) // 2 - 32768
        return v // 65536, ((v // 512) % 128) * 2

    x0, wx = pos(x - box[1], area[1], area[3] - area[1], box[3] - box[1])
    y0, wy = pos(y - box[0], area[0], area[2] - area[0], box[2] - box[0])

    def px(yy: int, xx: int) -> np.ndarray:
        if 0 <= yy < src.shape[0] and 0 <= xx < src.shape[1]:
            return src[yy, xx].astype(int)
        return np.zeros(4, int)

    acc = (px(y0, x0) * (256 - wx) * (256 - wy) + px(y0, x0 + 1) * wx * (256 - wy)
           + px(y0 + 1, x0) * (256 - wx) * wy + px(y0 + 1, x0 + 1) * wx * wy)
    return [int(c) >> 16 for c in acc]


def test_scaled_copy_interpolated_matches_pixman_bilinear() -> None:
    ch, ctx = channel(SurfaceFmt.FMT_32_ARGB)
    before = ch.surfaces[0].pixels.copy()
    src = image(12, 5, 6, alpha=True)
    area, box = (1, 1, 5, 6), (0, 0, 9, 12)
    send(ch, DisplayServer.DRAW_COPY, B.draw_copy(box, B.Image(src, fmt=BitmapFmt.FMT_RGBA),
                                                  area, Ropd.OP_PUT, scale_mode=0))
    want = before.copy()
    for y, x in itertools.product(range(H), range(W)):
        if in_region(x, y, box, None):
            want[y, x] = pixman_bilinear(src, x, y, area, box)
    assert_pixels(ch, want)
    assert ctx.gaps.counts() == {}


@pytest.mark.parametrize("code", [0x00, 0x11, 0x5A, 0x66, 0x96, 0xB8, 0xCA, 0xE2, 0xFF])
@pytest.mark.parametrize("pattern", [False, True])
def test_draw_rop3(code: int, pattern: bool) -> None:
    ch, ctx = channel()
    before = words(ch.surfaces[0].pixels.copy())
    src = image(21, 10, 14)
    tile = image(22, 4, 3)
    box, area, pos = (1, 2, 8, 12), (2, 3, 9, 13), (5, -1)
    body = B.draw_rop3(box, B.Image(src), area, code, color=None if pattern else 0x00A5C3E1,
                       pattern=B.Image(tile) if pattern else None, pattern_pos=pos, clip=CLIP,
                       mask=B.Image(bits=MASK, fmt=BitmapFmt.FMT_1BIT_LE))
    send(ch, DisplayServer.DRAW_ROP3, body)
    sw, tw = words(src), words(tile)
    want = before.copy()
    for y, x in itertools.product(range(H), range(W)):
        if not in_region(x, y, box, CLIP, MASK):
            continue
        s = int(sw[y - box[0] + area[0], x - box[1] + area[1]])
        p = int(tw[(y - pos[1]) % 4, (x - pos[0]) % 3]) if pattern else 0x00A5C3E1
        d = int(before[y, x])
        v = 0
        for bit in range(32):
            idx = ((p >> bit) & 1) << 2 | ((s >> bit) & 1) << 1 | ((d >> bit) & 1)
            v |= ((code >> idx) & 1) << bit
        want[y, x] = v
    assert_pixels(ch, finish(want))
    assert ctx.gaps.counts() == {}


def test_draw_transparent_keys_out_the_true_colour() -> None:
    ch, ctx = channel()
    before = words(ch.surfaces[0].pixels.copy())
    src = image(31, 6, 8)
    src[::2, 1::3, :3] = [0x33, 0x22, 0x11]  # key 0x112233 (RGB), any x byte
    src[1, 1, :3] = [0x33, 0x22, 0x12]        # one bit off: drawn
    box, area = (2, 3, 8, 11), (0, 0, 6, 8)
    send(ch, DisplayServer.DRAW_TRANSPARENT, B.draw_transparent(
        box, B.Image(src, fmt=BitmapFmt.FMT_RGBA), area, 0xDEAD, 0xFF112233, clip=CLIP))
    sw = words(src)
    want = before.copy()
    for y, x in itertools.product(range(H), range(W)):
        if in_region(x, y, box, CLIP):
            s = int(sw[y - 2, x - 3])
            if s & 0xFFFFFF != 0x112233:
                want[y, x] = s
    assert_pixels(ch, finish(want))
    assert ctx.gaps.counts() == {}


def un8_mul(x: int, a: int) -> int:
    return int(x * a / 255 + 0.5)  # exact rounding; pixman's (t + (t >> 8)) >> 8 equals it


@pytest.mark.parametrize("alpha", [255, 128, 1])
@pytest.mark.parametrize("fmt", [SurfaceFmt.FMT_32_xRGB, SurfaceFmt.FMT_32_ARGB])
def test_draw_alpha_blend_is_pixman_over(alpha: int, fmt: int) -> None:
    ch, ctx = channel(fmt)
    before = ch.surfaces[0].pixels.copy()
    src = image(41, 7, 9, alpha=True)
    src[..., :3] = np.minimum(src[..., :3], src[..., 3:4])  # premultiplied, as pixman expects
    box, area = (1, 2, 8, 11), (0, 0, 7, 9)
    send(ch, DisplayServer.DRAW_ALPHA_BLEND, B.draw_alpha_blend(
        box, B.Image(src, fmt=BitmapFmt.FMT_RGBA), area, alpha,
        AlphaFlags.DEST_HAS_ALPHA if fmt == SurfaceFmt.FMT_32_ARGB else 0, clip=CLIP))
    want = before.copy()
    for y, x in itertools.product(range(H), range(W)):
        if in_region(x, y, box, CLIP):
            s = [int(c) for c in src[y - 1, x - 2]]
            if alpha != 255:
                s = [un8_mul(c, alpha) for c in s]
            d = [int(c) for c in before[y, x]]
            want[y, x] = [min(255, un8_mul(dc, 255 - s[3]) + sc) for sc, dc in zip(s, d,
                                                                                  strict=True)]
    if fmt != SurfaceFmt.FMT_32_ARGB:
        want[..., 3] = 255
    assert_pixels(ch, want)
    assert ctx.gaps.counts() == {}


def test_alpha_zero_draws_nothing_but_caches() -> None:
    ch, ctx = channel()
    before = ch.surfaces[0].pixels.copy()
    send(ch, DisplayServer.DRAW_ALPHA_BLEND, B.draw_alpha_blend(
        (0, 0, 4, 4), B.Image(image(1, 4, 4), image_id=9, flags=ImageFlags.CACHE_ME),
        (0, 0, 4, 4), 0))
    assert (ch.surfaces[0].pixels == before).all()
    assert ctx.display_shared.images.get(9) is not None


def test_fully_clipped_draws_still_cache_their_images() -> None:
    ch, ctx = channel()
    send(ch, DisplayServer.DRAW_ROP3, B.draw_rop3(
        (0, 0, 2, 2), B.Image(image(1, 2, 2), image_id=5, flags=ImageFlags.CACHE_ME),
        (0, 0, 2, 2), 0x66, pattern=B.Image(image(2, 2, 2), image_id=6,
                                            flags=ImageFlags.CACHE_ME), clip=[(5, 5, 5, 5)]))
    assert ctx.display_shared.images.get(5) is not None
    assert ctx.display_shared.images.get(6) is not None
    assert ctx.gaps.counts() == {}


@pytest.mark.parametrize("kind", ["bitmap", "quic", "bitmap_rgba", "quic_truncated"])
def test_whole_image_copy_takes_the_short_path_with_the_same_pixels(
        kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """DRAW_COPY of a whole opaque image 1:1 inside an xRGB surface, no clip, no mask, rop
    COPY (what a display sends most) skips the general path and draws the same pixels; an
    image that is not opaque goes on to the general path from its decoded pixels, and a
    corrupt one is a gap that leaves the surface as it was."""
    from ryll.codecs.quic import RGB32, encode_quic
    from ryll.render.canvas import Canvas

    general = []
    real = Canvas._copy
    monkeypatch.setattr(Canvas, "_copy", lambda self, d, decoded=None: (
        general.append(decoded is not None), real(self, d, decoded))[1])
    ch, ctx = channel()
    before = ch.surfaces[0].pixels.copy()
    src = image(21, 5, 7, alpha=kind == "bitmap_rgba")
    src[..., 3] = np.where(src[..., 3] == 255, 254, src[..., 3])  # alpha the draw must fix
    if kind.startswith("quic"):
        payload = encode_quic(src, RGB32)
        if kind == "quic_truncated":
            payload = payload[: len(payload) // 3]
        img = B.Image(None, type=ImageType.QUIC, width=7, height=5, payload=payload)
    else:
        img = B.Image(src, fmt=BitmapFmt.FMT_RGBA if kind == "bitmap_rgba"
                      else BitmapFmt.FMT_32BIT)
    box = (2, 4, 7, 11)
    send(ch, DisplayServer.DRAW_COPY, B.draw_copy(box, img, (0, 0, 5, 7), Ropd.OP_PUT))
    want = before.copy()
    if kind == "quic_truncated":
        assert list(ctx.gaps.counts()) == ["display:decode_failure:quic:truncated"]
    elif kind == "bitmap_rgba":  # canvas_get_image onto x8r8g8b8: the colour, alpha 255
        want[2:7, 4:11, :3] = src[..., :3]
        assert ctx.gaps.counts() == {}
    else:
        want[2:7, 4:11] = src
        want[2:7, 4:11, 3] = 255
        assert ctx.gaps.counts() == {}
    assert_pixels(ch, want)
    assert general == ([True] if kind == "bitmap_rgba" else [])
    # The same draw with a clip takes the general path (and draws the same pixels).
    ch2, _ = channel()
    send(ch2, DisplayServer.DRAW_COPY,
         B.draw_copy(box, img, (0, 0, 5, 7), Ropd.OP_PUT, clip=[(0, 0, H, W)]))
    assert_pixels(ch2, want)
    assert general[-1] is False
