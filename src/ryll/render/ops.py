"""The draw operations of spice-common's canvas (canvas_base.c ``canvas_draw_*`` with
sw_canvas.c's ops), on a surface's BGRA pixels, given already-decoded inputs.

The display channel parses a draw, decodes its images (so caching happens even for draws that
end up clipped away), and calls one function here. A function returns None when it drew (or
had nothing to draw), or ``"unimpl:<detail>"`` / ``"malformed:<detail>"`` naming why it did
not, which the channel registers as the gap ``display:<that>``.
"""

from __future__ import annotations

import numpy as np

from ryll.protocol.constants import BrushType, ImageScaleMode
from ryll.protocol.messages.draw import Brush, DisplayBase, QMask, Rect
from ryll.render import raster
from ryll.render.raster import Region
from ryll.render.rop import SpiceRop, rop2, rop3


def color_bytes(color: int) -> np.ndarray:
    """A SPICE u32 colour as its 4 raw little-endian bytes (B, G, R, high byte): solid fills
    write the whole word (spice_pixman_fill_rect), so on ARGB surfaces the high byte is alpha."""
    return np.frombuffer(int(color & 0xFFFFFFFF).to_bytes(4, "little"), np.uint8).copy()


def region_for(width: int, height: int, base: DisplayBase, qmask: QMask | None,
               mask_bits: np.ndarray | None) -> Region | None:
    """canvas_clip_pixman then canvas_mask_pixman: the box on the surface, clipped, masked.
    The mask image's pixel (0, 0) sits on box.left - pos.x, box.top - pos.y; INVERS flips
    its bits within its own size."""
    region = raster.draw_region(base.box, base.clip_rects, width, height)
    if region is None or qmask is None or mask_bits is None:
        return region
    bits = ~mask_bits if qmask.flags & 1 else mask_bits
    return raster.intersect_bits(region, bits, base.box.left - qmask.pos[0],
                                 base.box.top - qmask.pos[1])


def _nearest(scale_mode: int) -> bool | None:
    if scale_mode == ImageScaleMode.NEAREST:
        return True
    if scale_mode == ImageScaleMode.INTERPOLATE:
        return False
    return None


def _write(pixels: np.ndarray, opaque: bool, region: Region, values: np.ndarray,
           rop: SpiceRop) -> None:
    if rop != SpiceRop.COPY:
        values = rop2(rop, values, region.view(pixels))
    raster.commit(pixels, region, values, opaque)


def put_image(pixels: np.ndarray, opaque: bool, region: Region, src: np.ndarray,
              src_area: Rect, box: Rect, scale_mode: int, rop: SpiceRop) -> str | None:
    """DRAW_COPY / DRAW_BLEND (and the image half of DRAW_OPAQUE): blit_image(_rop) when the
    source rect and the box are the same size, scale_image(_rop) otherwise."""
    if rop == SpiceRop.NOOP:
        return None
    nearest = True  # unscaled: the mode does not matter
    if (src_area.width, src_area.height) != (box.width, box.height):
        mode = _nearest(scale_mode)
        if mode is None:
            return "malformed:scale_mode"
        nearest = mode
    placed = _placed_source(region, src, src_area, box, nearest)
    if placed is not None:
        _write(pixels, opaque, placed[0], placed[1], rop)
    return None


def brush_values(region: Region, brush: Brush, pattern: np.ndarray | None) -> np.ndarray:
    """The brush over the region's extents (or one pixel for a solid / absent brush)."""
    if brush.type == BrushType.PATTERN and pattern is not None:
        return raster.tile(region, pattern, *brush.pattern_pos)
    if brush.type == BrushType.SOLID:
        return color_bytes(brush.color)
    # BRUSH_TYPE_NONE: draw_brush still runs the rop with colour 0 (it may invert dest).
    return np.zeros(4, np.uint8)


def put_brush(pixels: np.ndarray, opaque: bool, region: Region, brush: Brush,
              pattern: np.ndarray | None, rop: SpiceRop) -> None:
    """canvas_base.c ``draw_brush``: solid or tiled fill of the region through ``rop``."""
    if rop == SpiceRop.NOOP:
        return
    _write(pixels, opaque, region, brush_values(region, brush, pattern), rop)


def put_rop3(pixels: np.ndarray, opaque: bool, region: Region, src: np.ndarray,
             src_area: Rect, box: Rect, scale_mode: int, brush: Brush,
             pattern: np.ndarray | None, code: int) -> str | None:
    """canvas_base.c ``canvas_draw_rop3``: the source (scaled by canvas_scale_surface when
    the sizes differ) must cover the whole box, else spice-common gives up
    (``spice_critical("bad src bitmap size")``)."""
    if src_area.width <= 0 or src_area.height <= 0:
        return "malformed:rop3_src_size"  # nothing to draw from (spice-common divides by it)
    if (src_area.width, src_area.height) == (box.width, box.height):
        sx, sy = src_area.left, src_area.top
        if sx < 0 or sy < 0 or src.shape[1] - sx < box.width or src.shape[0] - sy < box.height:
            return "malformed:rop3_src_size"
        s_vals = src[region.top - box.top + sy : region.bottom - box.top + sy,
                     region.left - box.left + sx : region.right - box.left + sx]
    else:
        nearest = _nearest(scale_mode)
        if nearest is None:
            return "malformed:scale_mode"
        if box.width <= 0 or box.height <= 0:
            return None
        # Only the region's part of the scaled box: the box may be far larger than the
        # surface it is clipped to.
        s_vals = raster.scaled_surface(src, src_area, box.width, box.height, nearest, Rect(
            region.top - box.top, region.left - box.left, region.bottom - box.top,
            region.right - box.left))
    if brush.type == BrushType.PATTERN and pattern is not None:
        p_vals = raster.tile(region, pattern, *brush.pattern_pos)
    elif brush.type == BrushType.SOLID:
        p_vals = color_bytes(brush.color)
    else:
        p_vals = np.zeros(4, np.uint8)
    raster.commit(pixels, region, rop3(code, s_vals, p_vals, region.view(pixels)), opaque)
    return None


def _placed_source(region: Region, src: np.ndarray, src_area: Rect, box: Rect,
                   nearest: bool = True) -> tuple[Region, np.ndarray] | None:
    """The source pixel for each pixel of the region: unscaled when the source rect and the
    box have one size (the region shrinks to what the source covers), else scaled (nearest
    or bilinear; TRANSPARENT and ALPHA_BLEND always scale with NEAREST in spice-common).
    None: the source covers nothing of the region."""
    if (src_area.width, src_area.height) == (box.width, box.height):
        dx, dy = box.left - src_area.left, box.top - src_area.top
        sub = raster.source_region(region, src, dx, dy)
        if sub is None:
            return None
        return sub, raster.source_pixels(sub, src, dx, dy)
    return region, raster.scaled_source(region, src, src_area, box, nearest)


def put_transparent(pixels: np.ndarray, opaque: bool, region: Region, src: np.ndarray,
                    src_area: Rect, box: Rect, true_color: int) -> None:
    """canvas_draw_transparent at 32 bpp: colorkey_image, or colorkey_scale_image (always
    nearest) when the sizes differ. ``src_color`` is unused by spice-common."""
    placed = _placed_source(region, src, src_area, box)
    if placed is None:
        return
    region, values = placed
    raster.commit(pixels, region, raster.colorkey(region.view(pixels), values, true_color),
                  opaque)


def put_alpha_blend(pixels: np.ndarray, opaque: bool, region: Region, src: np.ndarray,
                    src_area: Rect, box: Rect, alpha: int) -> None:
    """canvas_draw_alpha_blend: pixman OVER of the source (its own alpha, premultiplied) with
    ``alpha`` as a solid mask; scaled always with NEAREST, as spice-common passes."""
    if alpha == 0:
        return
    placed = _placed_source(region, src, src_area, box)
    if placed is None:
        return
    region, values = placed
    raster.commit(pixels, region, raster.over(region.view(pixels), values, alpha), opaque)
