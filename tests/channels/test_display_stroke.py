"""DRAW_STROKE through the display channel: messages built with the project's encoders
(tests.render.builders), pixels checked against spice-common's canvas_draw_stroke semantics
(thin Bresenham lines, CapNotLast, fore_mode's rop over the brush, clip rects)."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest
from tests.render import builders as B
from tests.render.test_draws import H, W, channel, image, send
from tests.render.test_stroke import mi_zero_line, pixels, subdivide

from ryll.protocol.constants import DisplayServer, LineFlags, PathFlags, Ropd, SurfaceFmt

BEGIN, END, CLOSE, BEZIER = PathFlags.BEGIN, PathFlags.END, PathFlags.CLOSE, PathFlags.BEZIER
Seg = tuple[int, list[tuple[int, int]]]


def fx(*pts: tuple[int, int]) -> list[tuple[int, int]]:
    """Whole pixels as fixed 28.4."""
    return [(x * 16, y * 16) for x, y in pts]


def draw_stroke(segments: list[Seg], box: B.Rect = (0, 0, H, W), color: int | None = None,
                pattern: B.Image | None = None, pos: tuple[int, int] = (0, 0),
                fore: int = Ropd.OP_PUT, back: int = Ropd.OP_PUT,
                style: list[int] | None = None, flags: int = 0,
                clip: list[B.Rect] | None = None) -> bytes:
    """spice.proto Stroke: DisplayBase, Path *path, LineAttr (flags, [style_nseg, style *]),
    Brush, fore_mode, back_mode; the path is num_segments then each PathSegment inline."""
    b = B.Body()
    B.base(b, box, clip)
    path = struct.pack("<I", len(segments))
    for f, pts in segments:
        path += struct.pack("<BI", f, len(pts)) + b"".join(struct.pack("<ii", *p) for p in pts)
    b.pointer(path)
    if style is None:
        b.pack("B", flags)
    else:
        b.pack("BB", flags | LineFlags.STYLED, len(style))
        b.pointer(struct.pack(f"<{len(style)}i", *style) if style else None)
    B.brush(b, color, pattern, pos)
    b.pack("HH", fore, back)
    return b.build()


def stroke(segments: list[Seg], fmt: int = SurfaceFmt.FMT_32_xRGB, **kw: object
           ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    ch, ctx = channel(fmt)
    before = ch.surfaces[0].pixels.copy()
    send(ch, DisplayServer.DRAW_STROKE, draw_stroke(segments, **kw))  # type: ignore[arg-type]
    return before, ch.surfaces[0].pixels, ctx.gaps.counts()


def changed(before: np.ndarray, after: np.ndarray) -> set[tuple[int, int]]:
    ys, xs = np.nonzero((before != after).any(axis=-1))
    return {(int(x), int(y)) for y, x in zip(ys, xs, strict=True)}


def bgra(color: int) -> list[int]:
    return list(color.to_bytes(4, "little"))


def test_thin_line_copy() -> None:
    before, after, gaps = stroke([(BEGIN | END, fx((1, 2), (9, 6)))], color=0x00112233)
    assert gaps == {}
    # Bresenham from (1,2) to (9,6), octant 8 (no bias): y = floor((8i + 8) / 16) + 2.
    expected = {(1 + i, 2 + (8 * i + 8) // 16) for i in range(8)}
    assert changed(before, after) == expected
    for x, y in expected:
        assert after[y, x].tolist() == [0x33, 0x22, 0x11, 0xFF]  # xRGB keeps x at 0xFF


def test_polyline_close_and_subpixel_rounding() -> None:
    # (1.5, 1) rounds to 1 (halves down), (7.5625, 1) to 8.
    pts = [(24, 16), (121, 16), (121, 96)]
    before, after, gaps = stroke([(BEGIN, pts), (END | CLOSE, [])], color=0xFFFFFF)
    assert gaps == {}
    expected = mi_zero_line([(1, 1), (8, 1), (8, 6), (1, 1)], W, H)
    assert expected.max() == 1 and changed(before, after) == pixels(expected)


def test_clip_rects_and_box() -> None:
    segs: list[Seg] = [(BEGIN | END, fx((0, 4), (13, 4)))]
    before, after, gaps = stroke(segs, color=0xFF, clip=[(0, 2, H, 5), (0, 8, H, 10)])
    assert gaps == {} and changed(before, after) == {(x, 4) for x in (2, 3, 4, 8, 9)}
    before, after, _ = stroke(segs, color=0xFF, box=(4, 6, 5, 11))
    assert changed(before, after) == {(x, 4) for x in range(6, 11)}


def test_xor_applies_the_rop_once_per_pass() -> None:
    # Out and back along the same diagonal: every pixel but the two ends is drawn twice, and
    # XOR twice is no change; ends once.
    before, after, gaps = stroke([(BEGIN | END, fx((0, 0), (6, 6), (0, 0)))],
                                 color=0x00FFFFFF, fore=Ropd.OP_XOR)
    assert gaps == {}
    assert changed(before, after) == {(0, 0), (6, 6)}
    assert (after[0, 0, :3] == before[0, 0, :3] ^ 0xFF).all()


def test_back_mode_is_never_used() -> None:
    segs: list[Seg] = [(BEGIN | END, fx((0, 3), (12, 3)))]
    a = stroke(segs, color=0x123456, style=[32, 32], back=Ropd.OP_XOR)[1]
    b = stroke(segs, color=0x123456, style=[32, 32], back=Ropd.OP_PUT)[1]
    assert (a == b).all()


def test_fore_mode_invert_with_no_brush() -> None:
    before, after, gaps = stroke([(BEGIN | END, fx((2, 1), (2, 5)))],
                                 fore=Ropd.OP_PUT | Ropd.INVERS_DEST | Ropd.OP_XOR)
    # OP_PUT wins: COPY of the (NONE -> colour 0) brush.
    assert gaps == {} and changed(before, after) <= {(2, y) for y in range(1, 5)}
    assert (after[1:5, 2, :3] == 0).all()


def test_pattern_brush_is_tiled_from_its_position() -> None:
    pat = image(3, 2, 3)
    before, after, gaps = stroke([(BEGIN | END, fx((0, 4), (10, 4)))],
                                 pattern=B.Image(pat), pos=(1, 1))
    assert gaps == {}
    for x in range(10):
        assert after[4, x].tolist() == pat[(4 - 1) % 2, (x - 1) % 3].tolist()


def test_argb_surface_takes_the_colour_word() -> None:
    before, after, gaps = stroke([(BEGIN | END, fx((0, 0), (3, 0)))],
                                 fmt=SurfaceFmt.FMT_32_ARGB, color=0x80102030)
    assert gaps == {} and after[0, 0].tolist() == bgra(0x80102030)


def test_dashed_line_start_with_gap() -> None:
    # style (2, 1, 3) with START_WITH_GAP: X dash list (1, 3, 2), offset 1 (lines.c counts
    # recorded from spice-common: gap 3, on 3, gap 3, on 3).
    before, after, gaps = stroke([(BEGIN | END, fx((0, 2), (12, 2)))], color=0xFF,
                                 style=[32, 16, 48], flags=LineFlags.START_WITH_GAP)
    assert gaps == {}
    assert changed(before, after) == {(x, 2) for x in (3, 4, 5, 9, 10, 11)}


def test_straight_bezier_is_a_line() -> None:
    segs: list[Seg] = [(BEGIN | BEZIER | END, fx((1, 1), (4, 2), (7, 3), (10, 4)))]
    before, after, gaps = stroke(segs, color=0xFF)
    line = stroke([(BEGIN | END, fx((1, 1), (10, 4)))], color=0xFF)
    assert gaps == {} and changed(before, after) == changed(line[0], line[1])


def test_curved_bezier_is_the_subdivided_polyline() -> None:
    ctrl = fx((0, 8), (0, 0), (12, 0), (12, 8))
    before, after, gaps = stroke([(BEGIN | BEZIER | END, ctrl)], color=0xFF)
    flat: list[tuple[int, int]] = [(0, 8)]
    subdivide(flat, *ctrl)
    assert len(flat) > 4
    expected = mi_zero_line(flat, W, H)
    assert gaps == {} and changed(before, after) == pixels(expected)


@pytest.mark.parametrize(("segments", "kw", "gap"), [
    ([(BEGIN, [])], {}, "display:malformed:draw_stroke_path"),
    ([(BEGIN | BEZIER, fx((0, 0), (1, 1)))], {}, "display:malformed:draw_stroke_path"),
    ([(BEGIN | END, fx((0, 0), (5, 5)))], {"style": []}, "display:malformed:draw_stroke_style"),
    ([(BEGIN | END, fx((0, 0), (5, 5)))], {"style": [0, 0]},
     "display:malformed:draw_stroke_style"),
])
def test_undefined_strokes_are_named_gaps(segments: list[Seg], kw: dict[str, object],
                                          gap: str) -> None:
    _, _, gaps = stroke(segments, color=0xFF, **kw)
    assert gaps == {gap: 1}


def test_truncated_stroke_is_malformed() -> None:
    body = draw_stroke([(BEGIN | END, fx((0, 0), (5, 5)))], color=0xFF, style=[16, 16])
    for cut in range(0, len(body), 3):
        ch, ctx = channel()
        send(ch, DisplayServer.DRAW_STROKE, body[:cut])
        assert set(ctx.gaps.counts()) <= {"display:malformed:draw_stroke"}, cut


def test_absurd_segment_count_is_malformed() -> None:
    b = B.Body()
    B.base(b, (0, 0, H, W))
    b.pointer(struct.pack("<I", 1 << 30))
    b.pack("B", 0)
    B.brush(b, 0xFF)
    b.pack("HH", Ropd.OP_PUT, Ropd.OP_PUT)
    ch, ctx = channel()
    send(ch, DisplayServer.DRAW_STROKE, b.build())
    assert ctx.gaps.counts() == {"display:malformed:draw_stroke": 1}


def test_extreme_coordinates_are_bounded() -> None:
    lo, hi = -(1 << 31), (1 << 31) - 1
    started = time.perf_counter()
    _, after, gaps = stroke([(BEGIN | END, [(lo, lo), (hi, hi), (lo, hi), (hi, 5 * 16)])],
                            color=0xFF)
    assert set(gaps) <= {"display:unimpl:draw_stroke_too_complex"}
    # Dashed: far too many dashes to walk; a named gap, quickly.
    _, _, gaps = stroke([(BEGIN | END, [(lo, 16), (hi, 16)])], color=0xFF, style=[16, 16])
    assert gaps == {"display:unimpl:draw_stroke_too_complex": 1}
    # Beziers over the whole fixed range flatten within the caps.
    _, _, gaps = stroke([(BEGIN | BEZIER | END, [(lo, lo), (hi, lo), (lo, hi), (hi, hi)])],
                        color=0xFF)
    assert set(gaps) <= {"display:unimpl:draw_stroke_too_complex"}
    assert time.perf_counter() - started < 5


def test_degenerate_bezier_does_not_recurse_forever() -> None:
    _, _, gaps = stroke([(BEGIN | BEZIER | END, fx((3, 3), (3, 3), (3, 3), (3, 3)))],
                        color=0xFF)
    assert gaps == {}


def test_stroke_off_the_surface_or_on_a_missing_one() -> None:
    _, _, gaps = stroke([(BEGIN | END, fx((0, 0), (5, 5)))], color=0xFF, box=(0, 0, 0, 0))
    assert gaps == {}
    ch, ctx = channel()
    b = B.Body()
    B.base(b, (0, 0, 4, 4), surface_id=7)
    b.pointer(struct.pack("<IBI4i", 1, 3, 2, 0, 0, 48, 48))
    b.pack("B", 0)
    B.brush(b, color=0xFFFFFF)
    b.pack("HH", Ropd.OP_PUT, Ropd.OP_PUT)
    send(ch, DisplayServer.DRAW_STROKE, b.build())
    assert ctx.gaps.counts() == {"display:orphan:draw": 1}
