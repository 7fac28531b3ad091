"""DRAW_TEXT: raster glyph strings (1, 4 and 8 bits a pixel) as spice-common's software canvas
draws them (sw_canvas.c ``canvas_draw_text``, canvas_base.c ``canvas_get_str_mask`` /
``canvas_put_glyph_bits``).

Rules mirrored:
- The background (back_area, when not empty) is filled with the back brush (COPY) within the
  clip, and only when fore_mode is OP_PUT; with another fore_mode spice-common draws nothing.
- Glyph rasters are bottom-up (spice-common ignores RASTER_TOP_DOWN: "todo"). 1 bpp rows are
  MSB-first bits, combined by OR; 4 bpp is high nibble first, each nibble n giving alpha n << 4
  (not n * 17), combined by MAX; 8 bpp alpha combined by MAX.
- The string mask spans the union of the glyph boxes (render_pos + glyph_origin, width x
  height); the fore brush goes OVER the surface through it: a solid brush is opaque, a pattern
  brush keeps its alpha and is tiled from the *string mask's* top-left corner plus the
  pattern position (its pixman transform is relative to the composite source origin).

One deliberate difference: spice-common's 8 bpp path starts reading one row past the glyph
data (its "untested path A8 glyphs"), so its first row is garbage and the glyph's top data row
is never used. ryll reads the 8 bpp rows like the 4 bpp ones.

The mask is only ever built over the draw's region, so a glyph placed far away by a hostile
message costs nothing.
"""

from __future__ import annotations

import numpy as np

from ryll.protocol.constants import BrushType, Ropd
from ryll.protocol.messages.draw import Brush, RasterGlyph, Rect
from ryll.render import raster
from ryll.render.ops import color_bytes, put_brush
from ryll.render.raster import Region
from ryll.render.rop import SpiceRop


def glyph_alpha(glyph: RasterGlyph, bpp: int) -> np.ndarray:
    """(height, width) uint8 alpha of one glyph, top row first."""
    w, h = glyph.width, glyph.height
    if w == 0 or h == 0:
        return np.zeros((h, w), np.uint8)
    data = np.frombuffer(glyph.data, np.uint8)
    if bpp == 1:
        rows = data.reshape(h, (w + 7) // 8)
        out = np.unpackbits(rows, axis=1, bitorder="big")[:, :w] * np.uint8(255)
    elif bpp == 4:
        rows = data.reshape(h, (w * 4 + 7) // 8)
        out = np.stack([rows & 0xF0, (rows << 4) & 0xF0], axis=-1).reshape(h, -1)[:, :w]
    else:
        out = data.reshape(h, w)
    return np.ascontiguousarray(out[::-1])


def glyph_box(glyph: RasterGlyph) -> tuple[int, int, int, int]:
    """canvas_raster_glyph_box: (top, left, bottom, right)."""
    top = glyph.render_pos[1] + glyph.glyph_origin[1]
    left = glyph.render_pos[0] + glyph.glyph_origin[0]
    return top, left, top + glyph.height, left + glyph.width


def string_mask(region: Region, glyphs: tuple[RasterGlyph, ...], bpp: int) -> np.ndarray:
    """The string's alpha over the region's extents."""
    mask = np.zeros((region.height, region.width), np.uint8)
    for g in glyphs:
        t, lf, b, r = glyph_box(g)
        it, il = max(t, region.top), max(lf, region.left)
        ib, ir = min(b, region.bottom), min(r, region.right)
        if it >= ib or il >= ir:
            continue
        alpha = glyph_alpha(g, bpp)[it - t : ib - t, il - lf : ir - lf]
        dest = mask[it - region.top : ib - region.top, il - region.left : ir - region.left]
        np.maximum(dest, alpha, out=dest)
    return mask


def put_text(pixels: np.ndarray, opaque: bool, region: Region, glyphs: tuple[RasterGlyph, ...],
             bpp: int, back_area: Rect, back_brush: Brush, back_pattern: np.ndarray | None,
             fore_brush: Brush, fore_pattern: np.ndarray | None, fore_mode: int) -> str | None:
    if back_area.top != back_area.bottom and back_area.left != back_area.right:
        if fore_mode != Ropd.OP_PUT:
            return "unimpl:text_fore_mode"
        back = region.restrict(back_area.top, back_area.left, back_area.bottom, back_area.right)
        if back is not None:
            put_brush(pixels, opaque, back, back_brush, back_pattern, SpiceRop.COPY)
    if bpp == 0:
        return "unimpl:text_vector_glyphs"
    if not glyphs or fore_brush.type == BrushType.NONE:
        return None
    if fore_brush.type == BrushType.PATTERN and fore_pattern is None:
        return None
    boxes = [glyph_box(g) for g in glyphs]
    top, left = min(b[0] for b in boxes), min(b[1] for b in boxes)
    alpha = string_mask(region, glyphs, bpp)
    if region.mask is not None:
        alpha[~region.mask] = 0
    if not alpha.any():
        return None
    if fore_brush.type == BrushType.SOLID:
        src = color_bytes(fore_brush.color)
        src[3] = 255  # canvas_get_pixman_brush: a solid fill of alpha 0xffff
    else:
        assert fore_pattern is not None
        px, py = fore_brush.pattern_pos
        src = raster.tile(region, fore_pattern, left + px, top + py)
    view = region.view(pixels)
    values = raster.over(view, src, alpha)
    raster.commit(pixels, region, values, opaque)
    return None
