"""The drawing half of spice-common's software canvas (canvas_base.c, sw_canvas.c,
pixman_utils.c), vectorised with numpy over BGRA surfaces.

A draw first computes its destination *region*: the box, intersected with the surface, the clip
rects and the QMask (canvas_base.c ``canvas_clip_pixman`` / ``canvas_mask_pixman``). ryll keeps
a region as its extents plus an optional boolean mask of the pixels inside them (None: all of
them), where spice-common keeps a pixman region; both describe the same pixel set.

Then an operation computes new values for the region's extents and commits them through the
mask. Surfaces without alpha (everything but 32_ARGB) keep their x byte at 0xFF, ryll's
surface convention; spice-common lets raster ops write garbage there, which no screen shows.

Scaling follows pixman as spice-common drives it (``__scale_image``: a scale transform of
fixed-point ``src * 65536 // dest`` plus a translation to the source rect, sampled at pixel
centres, ``PIXMAN_REPEAT_NONE``): NEAREST picks ``(v - pixman_fixed_e) >> 16``; INTERPOLATE
(``PIXMAN_FILTER_GOOD``, which pixman runs as BILINEAR) uses pixman's 7-bit bilinear weights
and its C reference arithmetic (each channel ``sum(c * w) >> 16``, weights out of 256*256).
pixman's SIMD bilinear paths may round a channel by one differently; samples outside the
source image are transparent black, as pixman's REPEAT_NONE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ryll.protocol.messages.draw import Rect
from ryll.render import _pixels  # type: ignore[attr-defined]

# pixman_fixed_1 (pixman's bilinear weights, BILINEAR_INTERPOLATION_BITS = 7, are in
# _pixels.bilinear).
FIXED_ONE = 65536


@dataclass(frozen=True, slots=True)
class Region:
    """A set of surface pixels: the extents [top, bottom) x [left, right) and, when not every
    pixel of them is in the set, a (h, w) boolean mask."""

    top: int
    left: int
    bottom: int
    right: int
    mask: np.ndarray | None = None

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    def view(self, pixels: np.ndarray) -> np.ndarray:
        return pixels[self.top : self.bottom, self.left : self.right]

    def restrict(self, top: int, left: int, bottom: int, right: int) -> Region | None:
        """The part of this region inside the rectangle."""
        t, lf = max(self.top, top), max(self.left, left)
        b, r = min(self.bottom, bottom), min(self.right, right)
        if t >= b or lf >= r:
            return None
        mask = None
        if self.mask is not None:
            mask = self.mask[t - self.top : b - self.top, lf - self.left : r - self.left]
            if not mask.any():
                return None
        return Region(t, lf, b, r, mask)

    def count(self) -> int:
        return self.height * self.width if self.mask is None else int(self.mask.sum())


def draw_region(box: Rect, clip: tuple[Rect, ...] | None, width: int, height: int
                ) -> Region | None:
    """The box on a width x height surface, clipped by the clip rects (their union). The
    union is one sweep whatever the number of rects (the compiled ``_pixels.rect_union``):
    a message's 65536 overlapping rects cost about what one does, not 65536 times the area."""
    whole = Region(0, 0, height, width).restrict(box.top, box.left, box.bottom, box.right)
    if whole is None or clip is None:
        return whole
    if not clip:
        return None
    r = np.array([(c.top, c.left, c.bottom, c.right) for c in clip], np.int64).reshape(-1, 4)
    top = np.maximum(r[:, 0], whole.top)
    left = np.maximum(r[:, 1], whole.left)
    bottom = np.minimum(r[:, 2], whole.bottom)
    right = np.minimum(r[:, 3], whole.right)
    keep = (top < bottom) & (left < right)
    if not keep.any():
        return None
    top, left, bottom, right = top[keep], left[keep], bottom[keep], right[keep]
    if len(top) == 1:
        return Region(int(top[0]), int(left[0]), int(bottom[0]), int(right[0]))
    t0, l0 = int(top.min()), int(left.min())
    h, w = int(bottom.max()) - t0, int(right.max()) - l0
    local = np.stack([top - t0, left - l0, bottom - t0, right - l0], axis=1)
    mask = _pixels.rect_union(np.ascontiguousarray(local, np.int64), h, w)
    return Region(t0, l0, t0 + h, l0 + w, None if mask.all() else mask)


def intersect_bits(region: Region, bits: np.ndarray, x: int, y: int) -> Region | None:
    """The region's pixels whose bit is set in ``bits`` (a (h, w) bool image whose pixel
    (0, 0) covers surface pixel (x, y)); pixels outside ``bits`` are out, as in
    canvas_base.c ``canvas_mask_pixman`` (an inverted mask is inverted only within its size)."""
    bh, bw = bits.shape
    sub = region.restrict(y, x, y + bh, x + bw)
    if sub is None:
        return None
    b = bits[sub.top - y : sub.bottom - y, sub.left - x : sub.right - x]
    mask = b if sub.mask is None else (b & sub.mask)
    if not mask.any():
        return None
    # Shrink to the extents of what is left, so later work covers no dead rows.
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    t, b_, lf, r = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    mask = mask[t:b_, lf:r]
    return Region(sub.top + int(t), sub.left + int(lf), sub.top + int(b_), sub.left + int(r),
                  None if mask.all() else mask.copy())


# A 32-bit pixel word's alpha / x byte (BGRA bytes read as a little-endian uint32).
ALPHA_WORD = 0xFF000000


def words(pixels: np.ndarray) -> np.ndarray:
    """BGRA pixels (..., 4) uint8 as their little-endian uint32 words (...): a view when the
    memory allows one (each pixel's 4 bytes contiguous and 4-aligned), else a copy's."""
    if pixels.dtype != np.uint8 or pixels.shape[-1:] != (4,):
        raise TypeError(f"expected (..., 4) uint8 pixels, got {pixels.dtype} {pixels.shape}")
    try:
        view = pixels.view("<u4")  # refused when a pixel's 4 bytes are not contiguous
    except ValueError:
        view = None
    if view is None or not view.flags.aligned:  # aligned: the address and every stride
        view = pixels.copy().view("<u4")
    return view[..., 0]


def word_bytes(words_: np.ndarray) -> np.ndarray:
    """The inverse of :func:`words`: (...) uint32 words as a (..., 4) uint8 view."""
    return words_.astype("<u4", copy=False)[..., None].view(np.uint8)


def commit(pixels: np.ndarray, region: Region, values: np.ndarray, opaque: bool) -> None:
    """Write ``values`` (the region's extents, or one broadcastable pixel) into the region,
    alpha forced to 255 when ``opaque``: one pass over 32-bit words."""
    view = region.view(pixels)
    dst = words(view)
    if dst.ctypes.data != view.ctypes.data:  # words() had to copy: writes would be lost
        raise ValueError("surface pixels must be 4-byte aligned BGRA rows")
    where = True if region.mask is None else region.mask
    if values.ndim == 1:
        word = int(words(values)) | (ALPHA_WORD if opaque else 0)
        if region.mask is None:
            dst[...] = word
        else:
            np.copyto(dst, np.uint32(word), where=where)
    elif opaque:
        np.bitwise_or(words(values), np.uint32(ALPHA_WORD), out=dst, where=where)
    else:
        np.copyto(dst, words(values), where=where)


# --- sources -----------------------------------------------------------------------------


def source_region(region: Region, src: np.ndarray, dx: int, dy: int) -> Region | None:
    """The part of the region an unscaled source covers when its pixel (sx, sy) lands on
    (sx + dx, sy + dy): spice_pixman_blit and friends clip to the source and leave the rest
    of the destination untouched."""
    sh, sw = src.shape[:2]
    return region.restrict(dy, dx, dy + sh, dx + sw)


def source_pixels(region: Region, src: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The source pixels for a region :func:`source_region` returned."""
    return src[region.top - dy : region.bottom - dy, region.left - dx : region.right - dx]


def blit(pixels: np.ndarray, opaque: bool, box: Rect, clip: tuple[Rect, ...] | None,
         src: np.ndarray, dx: int, dy: int) -> bool:
    """Unscaled copy of ``src``, whose pixel (0, 0) lands on surface pixel (dx, dy), into the
    box cut by the clip, the surface and the source (COPY_BITS and stream frames). Returns
    whether any pixel was written."""
    h, w = pixels.shape[:2]
    region = draw_region(box, clip, w, h)
    sub = source_region(region, src, dx, dy) if region is not None else None
    if sub is None:
        return False
    commit(pixels, sub, source_pixels(sub, src, dx, dy), opaque)
    return True


def scale_nearest(src: np.ndarray, width: int, height: int, part: Rect | None = None
                  ) -> np.ndarray:
    """Nearest-neighbour resize to (height, width), sampling pixel centres (stream frames
    whose size differs from their destination). ``part`` (in the resized image's pixels)
    computes only that part, so a destination far larger than the surface costs only what
    is on the surface."""
    sh, sw = src.shape[:2]
    if part is None:
        part = Rect(0, 0, height, width)
    ys = ((np.arange(part.top, part.bottom) * 2 + 1) * sh // (2 * height)).clip(0, sh - 1)
    xs = ((np.arange(part.left, part.right) * 2 + 1) * sw // (2 * width)).clip(0, sw - 1)
    # Row gather then column gather: two 1-D takes beat one 2-D fancy index several times over.
    return np.take(np.take(src, ys, axis=0), xs, axis=1)


def tile(region: Region, pattern: np.ndarray, pos_x: int, pos_y: int) -> np.ndarray:
    """A pattern brush over the region's extents: surface pixel (x, y) takes pattern pixel
    ((y - pos_y) mod h, (x - pos_x) mod w), spice_pixman_tile_rect's ``tile_start``."""
    ph, pw = pattern.shape[:2]
    r0, c0 = (region.top - pos_y) % ph, (region.left - pos_x) % pw
    h, w = region.height, region.width
    # Whole copies of the pattern covering the extents from the phase (r0, c0), then cut.
    reps = (-(-(r0 + h) // ph), -(-(c0 + w) // pw))
    return word_bytes(np.tile(words(pattern), reps)[r0 : r0 + h, c0 : c0 + w])


def scale_factor(src_len: int, dest_len: int) -> int:
    """sw_canvas.c: ``((pixman_fixed_48_16_t) src_width * 65536) / dest_width``."""
    return (src_len * FIXED_ONE) // dest_len


def sample_positions(first: int, count: int, factor: int, offset_fixed: int) -> np.ndarray:
    """pixman's transformed pixel centres, 16.16 fixed, for destination pixels
    first .. first + count - 1 of the transformed image: ``factor * i + round(factor / 2)``
    (pixman_transform_point_31_16 on i + 0.5) plus the translation."""
    i = np.arange(first, first + count, dtype=np.int64)
    return i * factor + ((factor + 1) >> 1) + offset_fixed


def _gather(src: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """src[ys, xs] with transparent black outside (REPEAT_NONE)."""
    sh, sw = src.shape[:2]
    vy = (ys >= 0) & (ys < sh)
    vx = (xs >= 0) & (xs < sw)
    # Row gather then column gather of whole pixel words (see scale_nearest).
    out = np.take(np.take(words(src), ys.clip(0, sh - 1), axis=0), xs.clip(0, sw - 1), axis=1)
    if not vy.all():
        out[~vy] = 0
    if not vx.all():
        out[:, ~vx] = 0
    return word_bytes(out)


def sample(src: np.ndarray, vys: np.ndarray, vxs: np.ndarray, nearest: bool) -> np.ndarray:
    """The (len(vys), len(vxs), 4) pixels pixman samples at the fixed-point positions:
    nearest (``(v - 1) >> 16``), or bilinear as pixman's narrow path (7-bit weights scaled to
    8 bits, the four taps summed exactly before the final ``>> 16``; the compiled
    ``_pixels.bilinear``, which allocates nothing but its output)."""
    if nearest:
        return _gather(src, (vys - 1) >> 16, (vxs - 1) >> 16)
    return word_bytes(_pixels.bilinear(words(np.ascontiguousarray(src)),
                                       np.ascontiguousarray(vys, np.int64),
                                       np.ascontiguousarray(vxs, np.int64)))


def scaled_source(region: Region, src: np.ndarray, src_area: Rect, box: Rect, nearest: bool
                  ) -> np.ndarray:
    """The region's extents of ``src_area`` scaled onto ``box`` (sw_canvas.c
    ``__scale_image``: the whole source image is sampled, not just the rect)."""
    fx = scale_factor(src_area.width, box.width)
    fy = scale_factor(src_area.height, box.height)
    vxs = sample_positions(region.left - box.left, region.width, fx, src_area.left * FIXED_ONE)
    vys = sample_positions(region.top - box.top, region.height, fy, src_area.top * FIXED_ONE)
    return sample(src, vys, vxs, nearest)


def scaled_surface(src: np.ndarray, src_area: Rect, width: int, height: int, nearest: bool,
                   part: Rect | None = None) -> np.ndarray:
    """canvas_base.c ``canvas_scale_surface`` (used by DRAW_ROP3): a width x height image,
    double-precision factors truncated to 16.16 and the source offset rounded in dest
    pixels, unlike ``__scale_image``. ``part`` (in the scaled image's pixels) computes only
    that part of it, so the cost is the region drawn, never the box the server named. The
    source rect must not be empty."""
    sx = src_area.width / width
    sy = src_area.height / height
    fx, fy = int(sx * FIXED_ONE), int(sy * FIXED_ONE)
    ox = int(np.floor(src_area.left / sx + 0.5))
    oy = int(np.floor(src_area.top / sy + 0.5))
    if part is None:
        part = Rect(0, 0, height, width)
    return sample(src, sample_positions(oy + part.top, part.height, fy, 0),
                  sample_positions(ox + part.left, part.width, fx, 0), nearest)


# --- compositing ------------------------------------------------------------------------


def over(dest: np.ndarray, src: np.ndarray, alpha: int | np.ndarray) -> np.ndarray:
    """pixman PIXMAN_OP_OVER of premultiplied ``src`` (the extents' pixels or one pixel) onto
    ``dest`` through a mask alpha: one value (a solid mask, omitted by spice-common when 255)
    or an (h, w) a8 mask. combine_over_u: ``s = s * m; d = s + d * (255 - s.alpha)``,
    saturating (the kernel _pixels.over)."""
    d = words(dest)
    s = np.broadcast_to(words(src), d.shape)
    if isinstance(alpha, np.ndarray):
        out = _pixels.over(d, s, 0xFF, np.asarray(alpha, np.uint8))
    else:
        out = _pixels.over(d, s, alpha)
    return word_bytes(out)


def colorkey(dest: np.ndarray, src: np.ndarray, key: int) -> np.ndarray:
    """spice_pixman_blit_colorkey at 32 bpp: a source pixel whose RGB (its low 24 bits) equals
    the key's leaves the destination alone; any other is copied whole (the kernel
    _pixels.colorkey)."""
    return word_bytes(_pixels.colorkey(words(dest), words(src), key & 0xFFFFFF))
