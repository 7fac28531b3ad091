"""DRAW_TEXT against pixels computed per pixel from sw_canvas.c canvas_draw_text."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ryll.protocol.constants import DisplayServer, Ropd, StringFlags, SurfaceFmt
from tests.render import builders as B
from tests.render.test_draws import CLIP, H, W, assert_pixels, channel, image, in_region, send

FLAGS = {1: StringFlags.RASTER_A1, 4: StringFlags.RASTER_A4, 8: StringFlags.RASTER_A8}
MAXV = {1: 1, 4: 15, 8: 255}


def un8_mul(x: int, a: int) -> int:
    return int(x * a / 255 + 0.5)


@pytest.mark.parametrize("bpp", [1, 4, 8])
@pytest.mark.parametrize("pattern", [False, True])
def test_text_glyphs_over_a_back_area(bpp: int, pattern: bool) -> None:
    ch, ctx = channel(SurfaceFmt.FMT_32_xRGB)
    before = ch.surfaces[0].pixels.copy()
    rng = np.random.default_rng(bpp)
    g1 = rng.integers(0, MAXV[bpp] + 1, (5, 3))
    g2 = rng.integers(0, MAXV[bpp] + 1, (4, 5))
    # Two overlapping glyphs; the second's origin is negative.
    glyphs = [((2, 6), (0, -4), g1), ((4, 5), (-1, -3), g2)]
    tile = image(5, 2, 3)
    back_area, box = (1, 0, 3, 6), (0, 0, 8, 12)
    send(ch, DisplayServer.DRAW_TEXT, B.draw_text(
        box, FLAGS[bpp], [B.glyph(p, o, a, bpp) for p, o, a in glyphs], back_area,
        fore_color=None if pattern else 0x00102030, fore_pattern=B.Image(tile) if pattern
        else None, fore_pos=(1, 0), back_color=0x00F0E0D0, clip=CLIP))
    want = before.copy()
    # Background first.
    for y, x in itertools.product(range(H), range(W)):
        if in_region(x, y, box, CLIP) and in_region(x, y, back_area, None):
            want[y, x] = [0xD0, 0xE0, 0xF0, 255]
    # The string mask: union box of the glyphs, MAX (OR) of their alphas.
    boxes = [(p[1] + o[1], p[0] + o[0], a) for p, o, a in glyphs]
    top, left = min(b[0] for b in boxes), min(b[1] for b in boxes)
    alpha = np.zeros((H, W), int)
    for t, lf, a in boxes:
        for (gy, gx), v in np.ndenumerate(a):
            y, x = t + gy, lf + gx
            if 0 <= y < H and 0 <= x < W:
                alpha[y, x] = max(alpha[y, x], 255 if bpp == 1 and v else
                                  (v << 4) if bpp == 4 else v)
    for y, x in itertools.product(range(H), range(W)):
        if not in_region(x, y, box, CLIP) or not alpha[y, x]:
            continue
        if pattern:
            src = [int(c) for c in tile[(y - top) % 2, (x - left - 1) % 3]]
        else:
            src = [0x30, 0x20, 0x10, 255]
        m = int(alpha[y, x])
        s = [un8_mul(c, m) for c in src]
        want[y, x] = [min(255, un8_mul(int(d), 255 - s[3]) + c) for c, d in zip(s, want[y, x],
                                                                                strict=True)]
    want[..., 3] = 255
    assert_pixels(ch, want)
    assert ctx.gaps.counts() == {}


def test_text_with_another_fore_mode_and_a_back_area_draws_nothing() -> None:
    ch, ctx = channel()
    before = ch.surfaces[0].pixels.copy()
    send(ch, DisplayServer.DRAW_TEXT, B.draw_text(
        (0, 0, 8, 8), StringFlags.RASTER_A1, [B.glyph((1, 1), (0, 0), np.ones((2, 2), int), 1)],
        (0, 0, 4, 4), fore_color=0, back_color=0xFFFFFF, fore_mode=Ropd.OP_XOR))
    assert (ch.surfaces[0].pixels == before).all()
    assert ctx.gaps.counts() == {"display:unimpl:text_fore_mode": 1}


def test_vector_glyphs_are_a_gap_and_far_glyphs_cost_nothing() -> None:
    ch, ctx = channel()
    send(ch, DisplayServer.DRAW_TEXT, B.draw_text((0, 0, 8, 8), 0, [], (0, 0, 0, 0),
                                                  fore_color=0))
    assert ctx.gaps.counts() == {"display:unimpl:text_vector_glyphs": 1}
    ch, ctx = channel()
    far = B.glyph((2**31 - 10, -(2**31) + 5), (0, 0), np.ones((3, 3), int), 8)
    send(ch, DisplayServer.DRAW_TEXT, B.draw_text((0, 0, 8, 8), StringFlags.RASTER_A8, [far],
                                                  (0, 0, 0, 0), fore_color=0))
    assert ctx.gaps.counts() == {}
