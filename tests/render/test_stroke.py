"""render.stroke against spice-common's semantics: miZeroLine's Bresenham pixels (a literal
port of its loop below), miWideDash's width-1 dashes (pixel counts recorded from spice-common's
own lines.c, compiled with stub headers and driven through its FillSpans callback), and
canvas_base.c's path walk and bezier flattening (a literal port below)."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest

from ryll.protocol.constants import LineFlags, PathFlags
from ryll.protocol.messages.draw import LineAttr, PathSegment
from ryll.render import _stroke, stroke

BIAS = (1 << 3) | (1 << 7) | (1 << 6) | (1 << 4)  # DEFAULTZEROLINEBIAS


def mi_zero_line(points: list[tuple[int, int]], w: int, h: int) -> np.ndarray:
    """lines.c miZeroLine's drawing loop, unclipped, one pixel at a time; counts per pixel
    of a w x h canvas."""
    out = np.zeros((h, w), np.int32)
    for (x1, y1), (x2, y2) in zip(points, points[1:], strict=False):
        octant, sx, sy = 0, 1, 1
        adx, ady = x2 - x1, y2 - y1
        if adx < 0:
            adx, sx, octant = -adx, -1, octant | 4
        if ady < 0:
            ady, sy, octant = -ady, -1, octant | 2
        x, y = x1, y1
        if adx > ady:
            e1, e2 = ady << 1, (ady << 1) - (adx << 1)
            e = e1 - adx - ((BIAS >> octant) & 1)
            e3, e = e2 - e1, e - e1
            for _ in range(adx):
                if 0 <= x < w and 0 <= y < h:
                    out[y, x] += 1
                e += e1
                if e >= 0:
                    y += sy
                    e += e3
                x += sx
        else:
            octant |= 1
            e1, e2 = adx << 1, (adx << 1) - (ady << 1)
            e = e1 - ady - ((BIAS >> octant) & 1)
            e3, e = e2 - e1, e - e1
            for _ in range(ady):
                if 0 <= x < w and 0 <= y < h:
                    out[y, x] += 1
                e += e1
                if e >= 0:
                    x += sx
                    e += e3
                y += sy
    return out


def raster_zero(points: list[tuple[int, int]], w: int, h: int,
                box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    top, left, bottom, right = box or (0, 0, h, w)
    r = _stroke.Raster(top, left, bottom, right, 1 << 25)
    assert r.zero_line(np.array(points, np.int64).reshape(-1, 2)) == _stroke.OK
    return r.hits_array


def pixels(hits: np.ndarray) -> set[tuple[int, int]]:
    return {(int(x), int(y)) for y, x in zip(*np.nonzero(hits), strict=True)}


# --- thin solid lines ------------------------------------------------------------------


def test_axis_lines_leave_out_their_last_point() -> None:
    assert pixels(raster_zero([(1, 2), (6, 2)], 10, 5)) == {(x, 2) for x in range(1, 6)}
    assert pixels(raster_zero([(6, 2), (1, 2)], 10, 5)) == {(x, 2) for x in range(2, 7)}
    assert pixels(raster_zero([(3, 0), (3, 4)], 10, 5)) == {(3, y) for y in range(4)}
    assert pixels(raster_zero([(0, 0), (3, 3)], 10, 5)) == {(0, 0), (1, 1), (2, 2)}


def test_ties_follow_the_default_bias() -> None:
    # (0,0)->(4,2): octant 8, no bias: the tie at x=1 steps y. Reversed (octant 4, biased):
    # the tie keeps the axial step, so the two directions draw different pixels.
    assert pixels(raster_zero([(0, 0), (4, 2)], 6, 4)) == {(0, 0), (1, 1), (2, 1), (3, 2)}
    assert pixels(raster_zero([(4, 2), (0, 0)], 6, 4)) == {(4, 2), (3, 2), (2, 1), (1, 1)}


def test_zero_length_and_single_points_draw_nothing() -> None:
    assert not raster_zero([(2, 2), (2, 2)], 5, 5).any()
    assert not raster_zero([(2, 2)], 5, 5).any()


def test_random_lines_match_mi_zero_line_including_clipping() -> None:
    rng = np.random.default_rng(5)
    for _ in range(300):
        w, h = int(rng.integers(3, 30)), int(rng.integers(3, 30))
        n = int(rng.integers(2, 6))
        pts = [(int(rng.integers(-40, w + 40)), int(rng.integers(-40, h + 40)))
               for _ in range(n)]
        expected = mi_zero_line(pts, w, h)
        assert (raster_zero(pts, w, h) == expected).all(), pts
        t, lf = int(rng.integers(0, h)), int(rng.integers(0, w))
        b, r = int(rng.integers(t + 1, h + 1)), int(rng.integers(lf + 1, w + 1))
        assert (raster_zero(pts, w, h, (t, lf, b, r)) == expected[t:b, lf:r]).all(), pts


def test_far_away_lines_cost_only_their_visible_part() -> None:
    far = 1 << 27
    started = time.perf_counter()
    hits = raster_zero([(-far, 5), (far, 5)], 20, 10)
    assert time.perf_counter() - started < 0.5
    assert pixels(hits) == {(x, 5) for x in range(20)}
    # A steep line from far above crossing the canvas: same pixels as the short line with
    # the same slope (here exactly vertical).
    assert pixels(raster_zero([(7, -far), (7, far)], 20, 10)) == {(7, y) for y in range(10)}


# --- dashes (expected counts recorded from spice-common's lines.c) ----------------------


def raster_dash(points: list[tuple[int, int]], w: int, h: int, dash: list[int], offset: int,
                careful: bool) -> np.ndarray:
    r = _stroke.Raster(0, 0, h, w, 1 << 25)
    assert r.dash_line(np.array(points, np.int64).reshape(-1, 2), np.array(dash, np.uint8),
                       offset, careful) == _stroke.OK
    return r.hits_array


def grid(text: str) -> np.ndarray:
    return np.array([[int(v) for v in row.split()] for row in text.strip().splitlines()])


def test_horizontal_dashes() -> None:
    hits = raster_dash([(0, 1), (13, 1)], 14, 3, [3, 2], 0, False)
    assert hits[1].tolist() == [1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0]
    assert not hits[0].any() and not hits[2].any()


def test_dash_offset_and_odd_dash_lists() -> None:
    # An odd list runs "on" dashes into each other (index 2 then 0, both even).
    hits = raster_dash([(0, 0), (12, 0)], 12, 2, [1, 3, 2], 1, False)
    assert hits[0].tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1]


DIAGONAL_JOINED = grid("""
0 0 0 0 0 0 0 0 0 0
0 1 1 0 0 0 0 0 0 0
0 0 0 0 1 0 0 0 0 0
0 0 0 0 0 1 0 0 0 0
0 0 0 0 0 0 0 1 0 0
0 0 0 0 0 0 1 1 0 0
0 0 0 0 0 0 0 0 0 0
0 0 0 1 1 0 0 0 0 0
0 0 1 0 0 0 0 0 0 0
0 0 0 0 0 0 0 0 0 0
""")


@pytest.mark.parametrize("careful", [False, True])
def test_dashed_polyline_with_a_join(careful: bool) -> None:
    hits = raster_dash([(1, 1), (8, 4), (2, 8)], 10, 10, [2, 1], 0, careful)
    assert (hits == DIAGONAL_JOINED).all()


# --- path walk, beziers, dash lists -----------------------------------------------------


def c_div2(a: int) -> int:
    """C's a / 2: truncating toward zero."""
    return -(-a // 2) if a < 0 else a // 2


def subdivide(out: list[tuple[int, int]], p0: tuple[int, int], p1: tuple[int, int],
              p2: tuple[int, int], p3: tuple[int, int]) -> None:
    """canvas_base.c subdivide_bezier, literally (no overflow in the ranges used here)."""
    def dot(x1: int, y1: int, x2: int, y2: int) -> int:
        return (x1 * x2 + y1 * y2) >> 4

    a2 = dot(p1[0] - p0[0], p1[1] - p0[1], p1[0] - p0[0], p1[1] - p0[1])
    b2 = dot(p3[0] - p0[0], p3[1] - p0[1], p3[0] - p0[0], p3[1] - p0[1])
    c2 = dot(p2[0] - p3[0], p2[1] - p3[1], p2[0] - p3[0], p2[1] - p3[1])
    ab = dot(p1[0] - p0[0], p1[1] - p0[1], p3[0] - p0[0], p3[1] - p0[1])
    cb = dot(p2[0] - p3[0], p2[1] - p3[1], p0[0] - p3[0], p0[1] - p3[1])
    h1, h2 = (a2 * b2 - ab * ab) >> 3, (c2 * b2 - cb * cb) >> 3
    if h1 < b2 and h2 < b2:
        out.append((int(stroke.fix_to_int(np.int64(p3[0]))),
                    int(stroke.fix_to_int(np.int64(p3[1])))))
        return

    def mid(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
        return c_div2(a[0] + b[0]), c_div2(a[1] + b[1])

    p01, p12, p23 = mid(p0, p1), mid(p1, p2), mid(p2, p3)
    p012, p123 = mid(p01, p12), mid(p12, p23)
    p0123 = mid(p012, p123)
    subdivide(out, p0, p01, p012, p0123)
    subdivide(out, p0123, p123, p23, p3)


def test_fix_to_int_rounds_halves_down() -> None:
    fixed = np.array([0, 8, 9, 16 + 8, 16 + 9, -8, -9, -7, -16 - 8], np.int64)
    assert stroke.fix_to_int(fixed).tolist() == [0, 0, 1, 1, 2, -1, -1, 0, -2]


def test_bezier_flattening_matches_subdivide_bezier() -> None:
    rng = np.random.default_rng(9)
    for _ in range(200):
        p = [(int(rng.integers(-4000, 4000)), int(rng.integers(-4000, 4000)))
             for _ in range(4)]
        expected: list[tuple[int, int]] = []
        subdivide(expected, *p)
        got = _stroke.bezier(*p[0], *p[1], *p[2], *p[3], 1 << 20, 60)
        assert [tuple(q) for q in got.tolist()] == expected


def test_bezier_guards() -> None:
    # All four points equal: spice-common recurses without end; here one point.
    assert _stroke.bezier(16, 16, 16, 16, 16, 16, 16, 16, 100, 16).tolist() == [[1, 1]]
    # A straight curve is its end point.
    assert _stroke.bezier(0, 0, 16, 0, 32, 0, 48, 0, 100, 16).tolist() == [[3, 0]]
    # Too many points for the cap: None.
    assert _stroke.bezier(0, 0, 16000, 16000, -16000, 16000, 0, 0, 4, 16) is None


def seg(flags: int, *pts: tuple[int, int]) -> PathSegment:
    return PathSegment(flags, b"".join(struct.pack("<2i", x * 16, y * 16) for x, y in pts))


def test_path_walk_begin_end_close() -> None:
    B, E, C = PathFlags.BEGIN, PathFlags.END, PathFlags.CLOSE
    lines, problem = stroke.polylines((seg(B, (1, 1), (5, 1)), seg(E | C, (5, 5)),
                                       seg(B | E, (0, 0), (2, 2)), seg(0, (3, 3))))
    assert problem is None
    assert [p.tolist() for p in lines] == [[[1, 1], [5, 1], [5, 5], [1, 1]],
                                           [[0, 0], [2, 2]], [[3, 3]]]


def test_path_walk_bezier_starts_at_the_last_point() -> None:
    B, Z = PathFlags.BEGIN, PathFlags.BEZIER
    lines, problem = stroke.polylines((seg(B | Z, (0, 0), (1, 0), (2, 0), (3, 0)),))
    assert problem is None and lines[0].tolist() == [[0, 0], [3, 0]]


@pytest.mark.parametrize("path", [
    (PathSegment(PathFlags.BEGIN, b""),),
    (seg(PathFlags.BEGIN | PathFlags.BEZIER, (0, 0), (1, 1)),),
    (seg(PathFlags.BEZIER, (0, 0), (1, 1), (2, 2)),),
])
def test_path_walk_undefined_in_spice_common_is_malformed(path: tuple[PathSegment, ...]
                                                          ) -> None:
    assert stroke.polylines(path)[1] == stroke.PATH_MALFORMED


def test_path_walk_keeps_what_came_before_a_bad_segment() -> None:
    B, E = PathFlags.BEGIN, PathFlags.END
    lines, problem = stroke.polylines((seg(B | E, (0, 0), (4, 0)),
                                       seg(B | PathFlags.BEZIER, (0, 0), (1, 1))))
    assert problem == stroke.PATH_MALFORMED and [p.tolist() for p in lines] == [[[0, 0],
                                                                                 [4, 0]]]


def test_dash_lists() -> None:
    styled = LineFlags.STYLED
    dash = stroke.dash_list(LineAttr(styled, (3 * 16, 2 * 16 + 9)))
    assert dash is not None and dash[0].tolist() == [3, 3] and dash[1] == 0
    # START_WITH_GAP: style[0] moves last, the offset is the new first length.
    dash = stroke.dash_list(LineAttr(styled | LineFlags.START_WITH_GAP, (32, 16, 48)))
    assert dash is not None and dash[0].tolist() == [1, 3, 2] and dash[1] == 1
    # Lengths are unsigned chars: 256 is 0, 257 is 1.
    dash = stroke.dash_list(LineAttr(styled, (256 * 16, 257 * 16)))
    assert dash is not None and dash[0].tolist() == [0, 1]
    assert stroke.dash_list(LineAttr(styled, ())) is None
    assert stroke.dash_list(LineAttr(styled, (0, 256 * 16))) is None


def test_huge_dashed_lines_run_out_of_budget_not_forever() -> None:
    r = _stroke.Raster(0, 0, 10, 10, 1 << 20)
    started = time.perf_counter()
    status = r.dash_line(np.array([[-(1 << 27), 5], [1 << 27, 5]], np.int64),
                         np.array([1, 1], np.uint8), 0, False)
    assert status == _stroke.E_BUDGET
    assert time.perf_counter() - started < 1.0


def test_the_compiled_walk_reads_spice_path_flags() -> None:
    assert (_stroke.PATH_BEGIN, _stroke.PATH_END, _stroke.PATH_CLOSE, _stroke.PATH_BEZIER) == (
        PathFlags.BEGIN, PathFlags.END, PathFlags.CLOSE, PathFlags.BEZIER)


def ref_polylines(path: tuple[PathSegment, ...], max_points: int
                  ) -> tuple[list[list[list[int]]], str | None]:
    """canvas_draw_stroke's path walk, segment by segment in Python (the model the compiled
    walk replaced): polylines of fix_to_int points, beziers flattened from the last point."""
    def fix(v: int) -> int:
        return (v >> 4) + ((v & 0x0F) > 8)

    def to_fix(v: int) -> int:
        return ((v << 4) + (1 << 31)) % (1 << 32) - (1 << 31)

    out: list[list[list[int]]] = []
    pending: list[list[int]] = []
    total = 0
    for s in path:
        pts = [list(p) for p in struct.iter_unpack("<2i", s.points)]
        idx = 0
        if s.flags & PathFlags.BEGIN:
            if pending:
                out.append(pending)
            pending = []
            if not pts:
                return out, stroke.PATH_MALFORMED
            pending.append([fix(pts[0][0]), fix(pts[0][1])])
            idx = 1
        if s.flags & PathFlags.BEZIER:
            if (len(pts) - idx) % 3:
                return out, stroke.PATH_MALFORMED
            for j in range(idx, len(pts), 3):
                if not pending:
                    return out, stroke.PATH_MALFORMED
                c = [v for p in pts[j:j + 3] for v in p]
                flat = _stroke.bezier(to_fix(pending[-1][0]), to_fix(pending[-1][1]), *c,
                                      max_points - total, stroke.BEZIER_MAX_DEPTH)
                if flat is None:
                    return out, stroke.TOO_COMPLEX
                pending += flat.tolist()
                total += len(flat)
        else:
            pending += [[fix(x), fix(y)] for x, y in pts[idx:]]
        total += idx if s.flags & PathFlags.BEZIER else len(pts)
        if total > max_points:
            return out, stroke.TOO_COMPLEX
        if s.flags & PathFlags.END:
            if s.flags & PathFlags.CLOSE and pending:
                pending.append(pending[0])
            if pending:
                out.append(pending)
            pending = []
    if pending:
        out.append(pending)
    return out, None


@pytest.mark.parametrize("seed", range(40))
def test_the_compiled_walk_matches_the_segment_by_segment_model(seed: int) -> None:
    """Random paths of every flag combination, point counts from 0 to 7, coordinates with
    every fraction, and small point caps: the same polylines and the same problem."""
    rng = np.random.default_rng(seed)
    path = []
    for _ in range(int(rng.integers(1, 12))):
        flags = int(rng.choice([0, 1, 2, 3, 8, 10, 11, 16, 17, 18, 19, 26, 27]))
        n = int(rng.integers(0, 8))
        raw = rng.integers(-4000, 4000, (n, 2)).astype("<i4")
        path.append(PathSegment(flags, raw.tobytes()))
    cap = int(rng.choice([5, 40, 1 << 20]))
    saved = stroke.MAX_STROKE_POINTS
    try:
        stroke.MAX_STROKE_POINTS = cap
        lines, problem = stroke.polylines(tuple(path))
    finally:
        stroke.MAX_STROKE_POINTS = saved
    want, want_problem = ref_polylines(tuple(path), cap)
    assert ([p.tolist() for p in lines], problem) == (want, want_problem)


def test_a_path_of_65536_segments_is_65536_polylines() -> None:
    """The parser's limit of segments, each its own polyline."""
    B = PathFlags.BEGIN | PathFlags.END
    path = tuple(PathSegment(B, struct.pack("<4i", i, 0, i + 160, 160)) for i in range(65536))
    lines, problem = stroke.polylines(path)
    assert problem is None and len(lines) == 65536 and lines[-1].tolist() == [[4096, 0],
                                                                              [4106, 10]]
