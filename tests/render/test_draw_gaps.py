"""Draws ryll cannot or must not render end in named gaps, never in exceptions."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from ryll.protocol.constants import BitmapFmt, DisplayServer, ImageType, Ropd
from tests.render import builders as B
from tests.render.test_draws import MASK, H, W, channel, image, send

DRAWS = [DisplayServer.DRAW_FILL, DisplayServer.DRAW_OPAQUE, DisplayServer.DRAW_COPY,
         DisplayServer.DRAW_BLEND, DisplayServer.DRAW_BLACKNESS, DisplayServer.DRAW_WHITENESS,
         DisplayServer.DRAW_INVERS, DisplayServer.DRAW_ROP3, DisplayServer.DRAW_STROKE,
         DisplayServer.DRAW_TEXT, DisplayServer.DRAW_TRANSPARENT,
         DisplayServer.DRAW_ALPHA_BLEND, DisplayServer.DRAW_COMPOSITE]


def sample_body(opcode: int) -> bytes:
    img = B.Image(image(1, 4, 5))
    box, area = (0, 0, 4, 5), (0, 0, 4, 5)
    return {
        DisplayServer.DRAW_FILL: B.draw_fill(box, Ropd.OP_PUT, pattern=img),
        DisplayServer.DRAW_OPAQUE: B.draw_opaque(box, img, area, Ropd.OP_PUT, color=1),
        DisplayServer.DRAW_COPY: B.draw_copy(box, img, area, Ropd.OP_PUT),
        DisplayServer.DRAW_BLEND: B.draw_copy(box, img, area, Ropd.OP_PUT),
        DisplayServer.DRAW_BLACKNESS: B.draw_mask_only(box, mask=B.Image(
            bits=MASK, fmt=BitmapFmt.FMT_1BIT_LE)),
        DisplayServer.DRAW_WHITENESS: B.draw_mask_only(box),
        DisplayServer.DRAW_INVERS: B.draw_mask_only(box),
        DisplayServer.DRAW_ROP3: B.draw_rop3(box, img, area, 0x5A, pattern=img),
        DisplayServer.DRAW_TRANSPARENT: B.draw_transparent(box, img, area, 0, 0),
        DisplayServer.DRAW_ALPHA_BLEND: B.draw_alpha_blend(box, img, area, 200),
    }.get(opcode, b"")


@pytest.mark.parametrize("opcode", DRAWS[:8] + DRAWS[10:12])
def test_truncated_draws_are_malformed_gaps(opcode: int) -> None:
    body = sample_body(opcode)
    for cut in range(0, len(body), 7):
        ch, ctx = channel()
        send(ch, opcode, body[:cut])
        assert all(":malformed:" in k or ":decode_failure:" in k or ":orphan:" in k
                   for k in ctx.gaps.counts()), ctx.gaps.counts()
    ch, ctx = channel()
    send(ch, opcode, body)
    assert ctx.gaps.counts() == {}


def test_unknown_scale_mode_is_a_gap() -> None:
    ch, ctx = channel()
    send(ch, DisplayServer.DRAW_COPY, B.draw_copy((0, 0, 4, 4), B.Image(image(1, 2, 2)),
                                                  (0, 0, 2, 2), Ropd.OP_PUT, scale_mode=7))
    assert ctx.gaps.counts() == {"display:malformed:scale_mode": 1}


def test_rop3_source_smaller_than_the_box_is_a_gap() -> None:
    # spice-common: spice_critical("bad src bitmap size").
    ch, ctx = channel()
    send(ch, DisplayServer.DRAW_ROP3, B.draw_rop3((0, 0, 4, 4), B.Image(image(1, 3, 4)),
                                                  (0, 0, 4, 4), 0x66, color=0))
    assert ctx.gaps.counts() == {"display:malformed:rop3_src_size": 1}


def test_mask_of_a_colour_format_is_a_decode_failure() -> None:
    ch, ctx = channel()
    before = ch.surfaces[0].pixels.copy()
    send(ch, DisplayServer.DRAW_WHITENESS, B.draw_mask_only(
        (0, 0, 4, 4), mask=B.Image(image(1, 4, 4), fmt=BitmapFmt.FMT_32BIT)))
    assert ctx.gaps.counts() == {"display:decode_failure:qmask:mask_format": 1}
    assert (ch.surfaces[0].pixels == before).all()


def test_mask_from_a_missing_surface_is_a_decode_failure() -> None:
    # (SURFACE masks that exist are drawn: tests/channels/test_display_formats.py.)
    ch, ctx = channel()
    before = ch.surfaces[0].pixels.copy()
    send(ch, DisplayServer.DRAW_WHITENESS, B.draw_mask_only(
        (0, 0, 4, 4), mask=B.Image(type=ImageType.SURFACE, surface_id=7)))
    assert ctx.gaps.counts() == {"display:decode_failure:qmask:no_surface": 1}
    assert (ch.surfaces[0].pixels == before).all()


def test_missing_cached_mask_is_a_decode_failure() -> None:
    ch, ctx = channel()
    send(ch, DisplayServer.DRAW_INVERS, B.draw_mask_only(
        (0, 0, 4, 4), mask=B.Image(type=ImageType.FROM_CACHE, image_id=1234)))
    assert ctx.gaps.counts() == {"display:decode_failure:qmask:missing": 1}


def test_draw_on_a_missing_surface_is_an_orphan() -> None:
    ch, ctx = channel()
    body = bytearray(B.draw_fill((0, 0, 2, 2), Ropd.OP_PUT, color=1))
    struct.pack_into("<I", body, 0, 99)
    send(ch, DisplayServer.DRAW_FILL, bytes(body))
    assert ctx.gaps.counts() == {"display:orphan:draw": 1}


def test_random_geometry_never_raises() -> None:
    """Boxes, source rects, clips, mask and pattern positions anywhere, including empty and
    inverted rects: every draw either draws or names a gap."""
    rng = np.random.default_rng(3)

    def r() -> tuple[int, int, int, int]:
        t, lf = (int(v) for v in rng.integers(-20, 20, 2))
        return t, lf, t + int(rng.integers(-3, 25)), lf + int(rng.integers(-3, 25))

    for _ in range(300):
        ch, ctx = channel(seed=int(rng.integers(1000)))
        img = B.Image(image(int(rng.integers(99)), int(rng.integers(1, 9)),
                            int(rng.integers(1, 9))))
        mask = B.Image(bits=MASK, fmt=BitmapFmt.FMT_1BIT_BE)
        pos = (int(rng.integers(-30, 30)), int(rng.integers(-30, 30)))
        clip = None if rng.integers(2) else [r() for _ in range(int(rng.integers(0, 4)))]
        box, area = r(), r()
        scale = int(rng.integers(0, 2))
        kind = int(rng.integers(6))
        if kind == 0:
            send(ch, DisplayServer.DRAW_COPY, B.draw_copy(
                box, img, area, int(rng.integers(0, 1 << 11)), scale, clip, mask, pos, 1))
        elif kind == 1:
            send(ch, DisplayServer.DRAW_FILL, B.draw_fill(
                box, int(rng.integers(0, 1 << 11)), pattern=img, pattern_pos=pos, clip=clip,
                mask=mask, mask_pos=pos))
        elif kind == 2:
            send(ch, DisplayServer.DRAW_ROP3, B.draw_rop3(
                box, img, area, int(rng.integers(256)), pattern=img, pattern_pos=pos,
                scale_mode=scale, clip=clip, mask=mask, mask_pos=pos))
        elif kind == 3:
            send(ch, DisplayServer.DRAW_TRANSPARENT, B.draw_transparent(box, img, area, 0, 0,
                                                                        clip))
        elif kind == 4:
            send(ch, DisplayServer.DRAW_ALPHA_BLEND, B.draw_alpha_blend(
                box, img, area, int(rng.integers(256)), clip=clip))
        else:
            send(ch, DisplayServer.DRAW_OPAQUE, B.draw_opaque(
                box, img, area, int(rng.integers(0, 1 << 11)), pattern=img, pattern_pos=pos,
                scale_mode=scale, clip=clip))
        assert ch.surfaces[0].pixels.shape == (H, W, 4)
        assert all(k.startswith("display:") for k in ctx.gaps.counts())

