# cython: language_level=3, cdivision=True
"""Compiled per-pixel kernels of the software canvas (render.raster, render.rop).

Every kernel works on 32-bit pixel words: a BGRA pixel's 4 bytes read as one little-endian
uint32 (B in bits 0-7, G 8-15, R 16-23, alpha / x byte 24-31), spice-common's own view of a
32 bpp pixel. Inputs are 2-D (h, w) word arrays of any strides (a stride of 0 broadcasts one
pixel or one row); the output is a new C-contiguous (h, w) array the caller commits. The
kernels check that every input has the output's shape, run without the GIL and keep Cython's
bounds checks.

- :func:`rop3`: a ternary raster op from its truth table, branch-free: a Shannon expansion on
  P, then S, then D, each leaf a constant word of all zeros or all ones.
- :func:`colorkey`: spice_pixman_blit_colorkey's select, branch-free.
- :func:`over`: pixman's ``combine_over_u`` through a solid or a8 mask, with pixman's
  two-channels-per-word arithmetic (``UN8x4_MUL_UN8``, ``UN8x4_ADD_UN8x4``), which gives each
  channel exactly the UN8 result ``t = x * a + 0x80; (t + (t >> 8)) >> 8``, saturating adds.
  It is also DRAW_COMPOSITE's unified OVER (render.composite).

The word arithmetic is in _pixels.pxd, which render._composite cimports too.
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t

import numpy as np

cdef inline void _check(Py_ssize_t h, Py_ssize_t w, Py_ssize_t ih, Py_ssize_t iw,
                        str name) except *:
    if ih != h or iw != w:
        raise ValueError(f"{name} is {ih}x{iw}, expected {h}x{w}")


def rop3(unsigned int code, const uint32_t[:, :] src, const uint32_t[:, :] pat,
         const uint32_t[:, :] dst):
    """Ternary raster op ``code`` over the words: bit ``(P << 2) | (S << 1) | D`` of the code
    is the result bit for that combination of input bits."""
    cdef Py_ssize_t h = dst.shape[0], w = dst.shape[1], y, x
    _check(h, w, src.shape[0], src.shape[1], "src")
    _check(h, w, pat.shape[0], pat.shape[1], "pat")
    out_arr = np.empty((h, w), np.uint32)
    cdef uint32_t[:, ::1] out = out_arr
    # m[k]: all ones when minterm k (P<<2 | S<<1 | D) is in the code.
    cdef uint32_t m[8]
    cdef int k
    for k in range(8):
        m[k] = 0xFFFFFFFF if (code >> k) & 1 else 0
    cdef uint32_t s, p, d, nd, ns, f_s1, f_s0, f_p1, f_p0
    with nogil:
        for y in range(h):
            for x in range(w):
                s = src[y, x]
                p = pat[y, x]
                d = dst[y, x]
                nd = ~d
                ns = ~s
                # f(P=1, S, D) and f(P=0, S, D), each expanded on S then D.
                f_p1 = ((s & ((d & m[7]) | (nd & m[6])))
                        | (ns & ((d & m[5]) | (nd & m[4]))))
                f_p0 = ((s & ((d & m[3]) | (nd & m[2])))
                        | (ns & ((d & m[1]) | (nd & m[0]))))
                out[y, x] = (p & f_p1) | (~p & f_p0)
    return out_arr


def over(const uint32_t[:, :] dst, const uint32_t[:, :] src, unsigned int alpha,
         const uint8_t[:, :] mask=None, uint32_t dst_or=0):
    """pixman OVER of premultiplied ``src`` onto ``dst`` through a mask: the a8 ``mask`` when
    given, else the solid ``alpha`` (0..255). ``s = s * m; d = s + d * (255 - s.alpha)``.
    ``dst_or`` is ORed into each dest word as it is read (0xFF000000: a dest whose format has
    no alpha, read as 255)."""
    cdef Py_ssize_t h = dst.shape[0], w = dst.shape[1], y, x
    _check(h, w, src.shape[0], src.shape[1], "src")
    if alpha > 255:
        raise ValueError(f"alpha {alpha} is not 0..255")
    cdef bint has_mask = mask is not None
    if has_mask:
        _check(h, w, mask.shape[0], mask.shape[1], "mask")
    out_arr = np.empty((h, w), np.uint32)
    cdef uint32_t[:, ::1] out = out_arr
    cdef uint32_t s, a
    with nogil:
        for y in range(h):
            for x in range(w):
                s = src[y, x]
                a = mask[y, x] if has_mask else alpha
                if a != 0xFF:  # a multiply by 255 is the identity
                    s = _mul(s, a)
                out[y, x] = _add_sat(_mul(dst[y, x] | dst_or, 0xFF - (s >> 24)), s)
    return out_arr


def colorkey(const uint32_t[:, :] dst, const uint32_t[:, :] src, uint32_t key):
    """spice_pixman_blit_colorkey at 32 bpp: ``dst`` where the source word's low 24 bits (its
    RGB) equal the key's, else the source word."""
    cdef Py_ssize_t h = dst.shape[0], w = dst.shape[1], y, x
    _check(h, w, src.shape[0], src.shape[1], "src")
    out_arr = np.empty((h, w), np.uint32)
    cdef uint32_t[:, ::1] out = out_arr
    cdef uint32_t s, keep
    key &= 0xFFFFFF
    with nogil:
        for y in range(h):
            for x in range(w):
                s = src[y, x]
                keep = -<uint32_t>((s & 0xFFFFFF) == key)  # all ones to keep dst
                out[y, x] = (dst[y, x] & keep) | (s & ~keep)
    return out_arr


def bilinear(const uint32_t[:, :] src, const long long[:] vys, const long long[:] vxs):
    """The (len(vys), len(vxs)) words pixman's narrow bilinear fetch samples at the 16.16
    positions (render.raster.sample's model: 7-bit weights scaled to 8 bits, the four taps
    summed exactly and shifted by 16; taps outside the source are transparent black).

    The source is read through a copy with two transparent pixels on every side, and each
    position's top-left tap is clamped into that border, so every tap is a plain load (a tap
    past the border reads the border's zero, as the unpadded rule would). The sum is taken
    in two passes, exactly the same integer: per destination row, the two source rows
    blended by the row's weight (every source column, once); then per pixel, two blended
    columns by the column's weight. Two channels travel in one 64-bit word, 32 bits apart
    (room for ``255 * 65536``)."""
    cdef Py_ssize_t sh = src.shape[0], sw = src.shape[1], n = vys.shape[0], m = vxs.shape[0]
    out_arr = np.zeros((n, m), np.uint32)
    if sh == 0 or sw == 0 or n == 0 or m == 0:
        return out_arr
    padded_arr = np.zeros((sh + 4, sw + 4), np.uint32)
    padded_arr[2:sh + 2, 2:sw + 2] = src
    cdef const uint32_t[:, ::1] pad = padded_arr
    cdef uint32_t[:, ::1] out = out_arr
    col_arr = np.empty(m, np.intp)
    wx_arr = np.empty(m, np.uint64)
    blend_arr = np.empty((sw + 4, 2), np.uint64)  # one row's (B|R, G|A) per padded column
    cdef Py_ssize_t[::1] col = col_arr
    cdef uint64_t[::1] wxs = wx_arr
    cdef uint64_t[:, ::1] blend = blend_arr
    cdef Py_ssize_t y, x, iy, ix
    cdef long long v
    cdef uint64_t wy, wx, t, b, lo, hi
    with nogil:
        for x in range(m):
            v = vxs[x] - 0x8000
            wxs[x] = <uint64_t>(((v >> 9) & 0x7F) << 1)
            col[x] = _tap(v >> 16, sw)
        for y in range(n):
            v = vys[y] - 0x8000
            wy = <uint64_t>(((v >> 9) & 0x7F) << 1)
            iy = _tap(v >> 16, sh)
            for x in range(sw + 4):
                t = pad[iy, x]
                b = pad[iy + 1, x]
                blend[x, 0] = (256 - wy) * _spread(t) + wy * _spread(b)
                blend[x, 1] = (256 - wy) * _spread(t >> 8) + wy * _spread(b >> 8)
            for x in range(m):
                ix = col[x]
                wx = wxs[x]
                lo = (256 - wx) * blend[ix, 0] + wx * blend[ix + 1, 0]
                hi = (256 - wx) * blend[ix, 1] + wx * blend[ix + 1, 1]
                out[y, x] = <uint32_t>(((lo >> 16) & 0xFF) | (((lo >> 48) & 0xFF) << 16)
                                       | (((hi >> 16) & 0xFF) << 8)
                                       | (((hi >> 48) & 0xFF) << 24))
    return out_arr


cdef inline uint64_t _spread(uint64_t word) noexcept nogil:
    """Bytes 0 and 2 of ``word`` in bits 0-7 and 32-39 of a 64-bit word."""
    return (word & 0xFF) | (((word >> 16) & 0xFF) << 32)


cdef inline Py_ssize_t _tap(long long i, Py_ssize_t size) noexcept nogil:
    """The padded index of a top-left tap ``i`` on a side of ``size`` pixels: taps i and i + 1
    read the source where they are on it and a border zero where not."""
    if i < -2:
        i = -2
    elif i > size:
        i = size
    return <Py_ssize_t>(i + 2)


def rect_union(const long long[:, :] rects, Py_ssize_t h, Py_ssize_t w):
    """The (h, w) bool mask of the union of ``rects`` (rows of top, left, bottom, right, each
    inside [0, h) x [0, w) and not empty), in one sweep down the rows: a column difference
    array changes where a rect starts or ends, a row is summed from it only when it changed
    and copied from the row above otherwise. O(n log n + h * w) whatever the overlap, with
    memory for the mask and two index arrays."""
    cdef Py_ssize_t n = rects.shape[0]
    out_arr = np.zeros((h, w), np.bool_)
    if n == 0 or h == 0 or w == 0:
        return out_arr
    if rects.shape[1] != 4:
        raise ValueError("rects must be (n, 4)")
    starts_arr = np.argsort(np.asarray(rects[:, 0]), kind="stable")
    ends_arr = np.argsort(np.asarray(rects[:, 2]), kind="stable")
    cdef const Py_ssize_t[::1] starts = starts_arr.astype(np.intp)
    cdef const Py_ssize_t[::1] ends = ends_arr.astype(np.intp)
    cdef Py_ssize_t k
    for k in range(n):
        if not (0 <= rects[k, 0] < rects[k, 2] <= h and 0 <= rects[k, 1] < rects[k, 3] <= w):
            raise ValueError("a rect is empty or outside the mask")
    diff_arr = np.zeros(w + 1, np.int64)
    cdef long long[::1] diff = diff_arr
    cdef uint8_t[:, ::1] out = out_arr.view(np.uint8)
    cdef Py_ssize_t y, x, i_s = 0, i_e = 0, r
    cdef long long run
    cdef bint changed
    with nogil:
        for y in range(h):
            changed = y == 0
            while i_e < n and rects[ends[i_e], 2] == y:
                r = ends[i_e]
                diff[rects[r, 1]] -= 1
                diff[rects[r, 3]] += 1
                i_e += 1
                changed = True
            while i_s < n and rects[starts[i_s], 0] == y:
                r = starts[i_s]
                diff[rects[r, 1]] += 1
                diff[rects[r, 3]] -= 1
                i_s += 1
                changed = True
            if changed:
                run = 0
                for x in range(w):
                    run += diff[x]
                    out[y, x] = run > 0
            else:
                for x in range(w):
                    out[y, x] = out[y - 1, x]
    return out_arr


def to_rgb(const uint8_t[:, :, :] src, bint alpha, bint rgba=False):
    """A BGRA/BGRX surface region (h, w, 4 bytes, any strides) as a new C-contiguous RGB
    (h, w, 3) array, or RGBA (h, w, 4) with ``alpha``: the layout of screendump and PNG.
    ``rgba``: four bytes a pixel always, alpha 255 where the surface has none (a browser's
    ImageData, which then needs no per-pixel work in the page).
    numpy's reversed-channel copy is an element-wise strided loop with the GIL held; this one
    is a plain loop without it (grabs run between display messages, on the session's
    thread)."""
    cdef Py_ssize_t h = src.shape[0], w = src.shape[1], y, x
    if src.shape[2] != 4:
        raise ValueError(f"pixels have {src.shape[2]} bytes, expected 4")
    cdef bint four = alpha or rgba
    out = np.empty((h, w, 4 if four else 3), np.uint8)
    cdef uint8_t[:, :, ::1] dst = out
    with nogil:
        for y in range(h):
            for x in range(w):
                dst[y, x, 0] = src[y, x, 2]
                dst[y, x, 1] = src[y, x, 1]
                dst[y, x, 2] = src[y, x, 0]
                if four:
                    dst[y, x, 3] = src[y, x, 3] if alpha else 255
    return out
