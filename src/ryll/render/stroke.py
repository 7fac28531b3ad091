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

from ryll.protocol.constants import BrushType, LineFlags
from ryll.protocol.messages.draw import Brush, DrawStroke, LineAttr, PathSegment
from ryll.render import _stroke, work  # type: ignore[attr-defined]
from ryll.render.ops import put_brush
from ryll.render.raster import Region
from ryll.render.rop import RopInput, SpiceRop, ropd_to_rop

# Points after bezier flattening, in one draw (the parser already caps wire points at 1 << 20).
MAX_STROKE_POINTS = 1 << 20
# Halvings of one bezier before a piece is taken as straight (a screen-sized curve needs ~10).
BEZIER_MAX_DEPTH = 16
# Rasterising steps (segments, dashes, polygon rows, visited pixels) in one draw: a few ns
# each here, so one stroke's path holds its channel for ~15 ms at most on top of its box
# (render.work charges the box; bench/bench_work.py); a full-screen dashed polyline of a
# thousand segments needs a few hundred thousand.
WORK_BUDGET = 1 << 21

PATH_MALFORMED = "malformed:draw_stroke_path"
STYLE_MALFORMED = "malformed:draw_stroke_style"
TOO_COMPLEX = "unimpl:draw_stroke_too_complex"

# lines.c miSpansCarefulRop: rops that must not touch a pixel twice (they invert dest).
CAREFUL_ROPS = frozenset(op for op in SpiceRop if (op & 0xC) == 0x8 or (op & 0x3) == 0x2)


def fix_to_int(fixed: np.ndarray) -> np.ndarray:
    """canvas_base.c fix_to_int over an int64 array of fixed 28.4 values."""
    return (fixed >> 4) + ((fixed & 0x0F) > 8)


def polylines(path: tuple[PathSegment, ...]) -> tuple[list[np.ndarray], str | None]:
    """The path as the polylines canvas_draw_stroke hands to the line code, in order, each
    an (n, 2) int64 array of (x, y); and the problem that stopped the walk, if any (the
    polylines before it are still drawn, as spice-common draws them).

    The rules are the module docstring's; the walk itself is compiled (``_stroke.walk``), so
    a path of 65536 segments or a million points costs one C loop, not a Python one."""
    flags = np.fromiter((seg.flags for seg in path), np.uint8, len(path))
    counts = np.fromiter((seg.count for seg in path), np.int64, len(path))
    points = np.frombuffer(b"".join(seg.points for seg in path), "<i4").reshape(-1, 2)
    lines, status = _stroke.walk(flags, counts, np.ascontiguousarray(points, np.int32),
                                 MAX_STROKE_POINTS, BEZIER_MAX_DEPTH)
    return lines, _WALK_PROBLEMS[status]


_WALK_PROBLEMS = {_stroke.WALK_OK: None, _stroke.WALK_MALFORMED: PATH_MALFORMED,
                  _stroke.WALK_TOO_COMPLEX: TOO_COMPLEX}


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


def stroke_selection(region: Region, stroke: DrawStroke, careful: bool
                     ) -> tuple[tuple[Region, Region | None] | None, str | None]:
    """Where spice-common applies the rop: the region's pixels hit at all, and (careful rops)
    those hit an even number of times, so applied twice; each a Region shrunk to the hit
    pixels' bounding box (so the work after rasterising is what was drawn, never the whole
    box), or None when nothing was hit; and the problem to name, if any."""
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
    picked = raster.selected(region.mask, careful)
    if picked is None:
        return None, problem
    r0, c0, r1, c1, once, twice = picked
    t, lf, b, r = region.top + r0, region.left + c0, region.top + r1, region.left + c1
    return (Region(t, lf, b, r, once),
            None if twice is None or not twice.any() else Region(t, lf, b, r, twice)), problem


def stroke_work(stroke: DrawStroke) -> tuple[str, ...]:
    """The work kinds to charge for the stroke's box (render.work): a careful rop costs a
    parity pass and a second brush (the pixels hit an even number of times get it twice)."""
    rop = ropd_to_rop(stroke.fore_mode, RopInput.BRUSH, RopInput.DEST)
    return (work.STROKE, work.CAREFUL_STROKE) if rop in CAREFUL_ROPS else (work.STROKE,)


def put_stroke(pixels: np.ndarray, opaque: bool, region: Region, stroke: DrawStroke,
               pattern: np.ndarray | None) -> str | None:
    """Draw the stroke into the region; None, or the problem to name (``malformed:x`` /
    ``unimpl:x``) when some or all of it was not drawn."""
    rop = ropd_to_rop(stroke.fore_mode, RopInput.BRUSH, RopInput.DEST)
    careful = rop in CAREFUL_ROPS
    picked, problem = stroke_selection(region, stroke, careful)
    if picked is None or rop == SpiceRop.NOOP:
        return problem
    brush = stroke.brush
    if brush.type == BrushType.NONE:
        brush = Brush(BrushType.SOLID, color=0)  # gc.solid with colour 0
    for sub in picked:
        if sub is not None:
            put_brush(pixels, opaque, sub, brush, pattern, rop)
    return problem
