"""Pixel operations on surfaces, vectorised with numpy: clipped blits and fills.

Clipping follows spice-common canvas_base.c: the draw's box, intersected with each clip rect
(CLIP_TYPE_RECTS) and the surface bounds.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ryll.protocol.messages.draw import Rect


def clip_regions(
    box: Rect, clip: tuple[Rect, ...] | None, width: int, height: int
) -> Iterator[tuple[int, int, int, int]]:
    """(top, left, bottom, right) pieces of ``box`` that survive the clip and the surface."""
    rects = clip if clip is not None else (box,)
    for r in rects:
        top = max(box.top, r.top, 0)
        left = max(box.left, r.left, 0)
        bottom = min(box.bottom, r.bottom, height)
        right = min(box.right, r.right, width)
        if top < bottom and left < right:
            yield top, left, bottom, right


def blit(
    dest: np.ndarray,
    src: np.ndarray,
    box: Rect,
    src_origin: tuple[int, int],
    clip: tuple[Rect, ...] | None,
) -> None:
    """Copy ``src`` pixels into ``dest`` at ``box``; src pixel (sx, sy) lands at box.left,
    box.top. Parts of the box outside ``src`` are left untouched."""
    sx0, sy0 = src_origin
    sh, sw = src.shape[:2]
    h, w = dest.shape[:2]
    for top, left, bottom, right in clip_regions(box, clip, w, h):
        # Map to source coordinates and clamp to the source image.
        y0 = top - box.top + sy0
        x0 = left - box.left + sx0
        y1 = bottom - box.top + sy0
        x1 = right - box.left + sx0
        cy0, cx0, cy1, cx1 = max(y0, 0), max(x0, 0), min(y1, sh), min(x1, sw)
        if cy0 >= cy1 or cx0 >= cx1:
            continue
        dest[top + (cy0 - y0) : top + (cy1 - y0), left + (cx0 - x0) : left + (cx1 - x0)] = src[
            cy0:cy1, cx0:cx1
        ]


def fill(dest: np.ndarray, box: Rect, clip: tuple[Rect, ...] | None, bgra: np.ndarray) -> None:
    h, w = dest.shape[:2]
    for top, left, bottom, right in clip_regions(box, clip, w, h):
        dest[top:bottom, left:right] = bgra


def color_to_bgra(color: int, opaque: bool = True) -> np.ndarray:
    """A SPICE u32 color (xRGB/ARGB little-endian) as BGRA bytes."""
    px = np.array([color], dtype="<u4").view(np.uint8).copy()
    if opaque:
        px[3] = 255
    return px


def scale_nearest(src: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize to (height, width), sampling pixel centres."""
    sh, sw = src.shape[:2]
    ys = ((np.arange(height) * 2 + 1) * sh // (2 * height)).clip(0, sh - 1)
    xs = ((np.arange(width) * 2 + 1) * sw // (2 * width)).clip(0, sw - 1)
    # Row gather then column gather: two 1-D takes beat one 2-D fancy index several times over.
    return np.take(np.take(src, ys, axis=0), xs, axis=1)
