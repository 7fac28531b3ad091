"""DRAW_STROKE as spice-common's software canvas draws it (canvas_base.c ``canvas_draw_stroke``
with lines.c's rasterisers, sw_canvas.c's span fills).

What spice-common does, and so what this does:

- The path becomes polylines of integer points: each point is rounded from fixed 28.4
  (``fix_to_int``: to nearest, halves down); a segment with SPICE_PATH_BEGIN starts a new
  polyline (drawing the pending one), SPICE_PATH_BEZIER segments are cubic beziers (three
  points each, from the polyline's last point) flattened by ``subdivide_bezier``,
  SPICE_PATH_END draws the polyline, after closing it back to its first point with
  SPICE_PATH_CLOSE. Whatever is pending at the end is drawn.
- The line width is always 0 (the protocol's LineAttr has none): solid paths are thin
  Bresenham lines (``miZeroLine``), CapNotLast (no segment draws its last point); STYLED paths
  are on/off dashes drawn as width-1 wide lines (``miZeroDashLine``), the dash lengths rounded
  from fixed 28.4 and truncated to 8 bits, START_WITH_GAP rotating the list by one and
  starting one dash in.
- Only the foreground is ever drawn (LineOnOffDash), with ``fore_mode`` as the rop over the
  brush (a NONE brush is colour 0, a pattern brush is tiled from its position); ``back_mode``
  is never used.
- The result is clipped by the box and the clip rects.

Where spice-common has undefined behaviour, ryll names a gap instead
(``display:malformed:draw_stroke_path``: a BEGIN segment without points, bezier points that
are not a multiple of three or with no point before them, at which spice-common returns
leaving what it drew; ``display:malformed:draw_stroke_style``: a STYLED attribute with no
dash, or dashes all of length 0, where spice-common loops forever). Input too big to draw in
bounded time (more than MAX_STROKE_POINTS points after flattening, or more than WORK_BUDGET
steps of rasterising) draws what was done and names ``display:unimpl:draw_stroke_too_complex``.
"""

from __future__ import annotations

import numpy as np

from ryll.protocol.constants import BrushType, LineFlags, PathFlags
from ryll.protocol.messages.draw import Brush, DrawStroke, LineAttr, PathSegment
from ryll.render import _stroke  # type: ignore[attr-defined]
from ryll.render.ops import put_brush
from ryll.render.raster import Region
from ryll.render.rop import RopInput, SpiceRop, ropd_to_rop

# Points after bezier flattening, in one draw (the parser already caps wire points at 1 << 20).
MAX_STROKE_POINTS = 1 << 20
# Halvings of one bezier before a piece is taken as straight (a screen-sized curve needs ~10).
BEZIER_MAX_DEPTH = 16
# Rasterising steps (segments, dashes, polygon rows, visited pixels) in one draw: about 30 ns
# each here, so one stroke holds its channel for ~120 ms at most (bench/bench_hostile.py);
# a full-screen dashed polyline of a thousand segments needs a few hundred thousand.
WORK_BUDGET = 1 << 22

PATH_MALFORMED = "malformed:draw_stroke_path"
STYLE_MALFORMED = "malformed:draw_stroke_style"
TOO_COMPLEX = "unimpl:draw_stroke_too_complex"

# lines.c miSpansCarefulRop: rops that must not touch a pixel twice (they invert dest).
CAREFUL_ROPS = frozenset(op for op in SpiceRop if (op & 0xC) == 0x8 or (op & 0x3) == 0x2)


def fix_to_int(fixed: np.ndarray) -> np.ndarray:
    """canvas_base.c fix_to_int over an int64 array of fixed 28.4 values."""
    return (fixed >> 4) + ((fixed & 0x0F) > 8)


def int_to_fix(v: int) -> int:
    """canvas_base.c int_to_fix: ``v << 4`` as a C int."""
    return ((v << 4) + (1 << 31)) % (1 << 32) - (1 << 31)


def polylines(path: tuple[PathSegment, ...]) -> tuple[list[np.ndarray], str | None]:
    """The path as the polylines canvas_draw_stroke hands to the line code, in order, each
    an (n, 2) int64 array of (x, y); and the problem that stopped the walk, if any (the
    polylines before it are still drawn, as spice-common draws them)."""
    out: list[np.ndarray] = []
    pending: list[np.ndarray] = []
    total = 0

    def flush() -> None:
        if pending:
            out.append(np.ascontiguousarray(np.concatenate(pending), dtype=np.int64))
            pending.clear()

    for seg in path:
        pts = np.asarray(seg.points, np.int64).reshape(-1, 2)
        idx = 0
        if seg.flags & PathFlags.BEGIN:
            flush()
            if len(pts) == 0:
                return out, PATH_MALFORMED
            pending.append(fix_to_int(pts[:1]))
            idx = 1
        if seg.flags & PathFlags.BEZIER:
            if (len(pts) - idx) % 3:
                return out, PATH_MALFORMED
            for j in range(idx, len(pts), 3):
                if not pending:
                    return out, PATH_MALFORMED
                x0, y0 = (int_to_fix(int(v)) for v in pending[-1][-1])
                c = pts[j : j + 3].ravel().tolist()
                flat = _stroke.bezier(x0, y0, *c, MAX_STROKE_POINTS - total, BEZIER_MAX_DEPTH)
                if flat is None:
                    return out, TOO_COMPLEX
                pending.append(flat)
                total += len(flat)
        elif idx < len(pts):
            pending.append(fix_to_int(pts[idx:]))
        total += idx + (0 if seg.flags & PathFlags.BEZIER else len(pts) - idx)
        if total > MAX_STROKE_POINTS:
            return out, TOO_COMPLEX
        if seg.flags & PathFlags.END:
            if seg.flags & PathFlags.CLOSE and pending:
                pending.append(pending[0][:1])
            flush()
    flush()
    return out, None


def dash_list(attr: LineAttr) -> tuple[np.ndarray, int] | None:
    """canvas_draw_stroke's X dash list and dash offset for a STYLED attribute (None when
    spice-common could not use it: no dash, or all of length 0)."""
    if not attr.style:
        return None
    lengths = fix_to_int(np.asarray(attr.style, np.int64)) & 0xFF  # unsigned char dash[]
    if attr.flags & LineFlags.START_WITH_GAP:
        lengths = np.roll(lengths, -1)
        offset = int(lengths[0])
    else:
        offset = 0
    if not lengths.any():
        return None
    return np.ascontiguousarray(lengths, dtype=np.uint8), offset


def stroke_hits(region: Region, stroke: DrawStroke, careful: bool
                ) -> tuple[np.ndarray | None, str | None]:
    """How many times spice-common applies the rop to each pixel of the region's extents
    (0 outside the region), and the problem to name, if any."""
    styled = bool(stroke.attr.flags & LineFlags.STYLED)
    dash = None
    if styled:
        dash = dash_list(stroke.attr)
        if dash is None:
            return None, STYLE_MALFORMED
    lines, problem = polylines(stroke.path)
    if not lines:
        return None, problem
    raster = _stroke.Raster(region.top, region.left, region.bottom, region.right, WORK_BUDGET)
    for pts in lines:
        if dash is None:
            status = raster.zero_line(pts)
        else:
            status = raster.dash_line(pts, dash[0], dash[1], careful)
        if status != _stroke.OK:
            problem = TOO_COMPLEX
            break
    hits: np.ndarray = raster.hits_array
    if region.mask is not None:
        hits[~region.mask] = 0
    return hits, problem


def put_stroke(pixels: np.ndarray, opaque: bool, region: Region, stroke: DrawStroke,
               pattern: np.ndarray | None) -> str | None:
    """Draw the stroke into the region; None, or the problem to name (``malformed:x`` /
    ``unimpl:x``) when some or all of it was not drawn."""
    rop = ropd_to_rop(stroke.fore_mode, RopInput.BRUSH, RopInput.DEST)
    careful = rop in CAREFUL_ROPS
    hits, problem = stroke_hits(region, stroke, careful)
    if hits is None or rop == SpiceRop.NOOP:
        return problem
    brush = stroke.brush
    if brush.type == BrushType.NONE:
        brush = Brush(BrushType.SOLID, color=0)  # gc.solid with colour 0
    # Every rop is bitwise with the brush fixed per pixel, so applying it n times is applying
    # it once (n odd) or twice (n even): only the careful rops differ between the two.
    for selected in (hits > 0, (hits > 0) & (hits % 2 == 0) if careful else None):
        if selected is None or not selected.any():
            continue
        sub = Region(region.top, region.left, region.bottom, region.right, selected)
        put_brush(pixels, opaque, sub, brush, pattern, rop)
    return problem
