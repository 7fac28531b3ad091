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

from libc.stdint cimport uint8_t, uint32_t

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
    summed exactly and shifted by 16; taps outside the source are transparent black)."""
    cdef Py_ssize_t sh = src.shape[0], sw = src.shape[1], n = vys.shape[0], m = vxs.shape[0]
    cdef Py_ssize_t y, x, iy0, ix0
    cdef long long y1, x1
    cdef uint32_t wy, wx, tl, tr, bl, br, acc, c, k
    cdef uint32_t w_tl, w_tr, w_bl, w_br
    out_arr = np.zeros((n, m), np.uint32)
    if sh == 0 or sw == 0:
        return out_arr
    cdef uint32_t[:, ::1] out = out_arr
    with nogil:
        for y in range(n):
            y1 = vys[y] - 0x8000
            wy = <uint32_t>(((y1 >> 9) & 0x7F) << 1)
            iy0 = <Py_ssize_t>(y1 >> 16)
            for x in range(m):
                x1 = vxs[x] - 0x8000
                wx = <uint32_t>(((x1 >> 9) & 0x7F) << 1)
                ix0 = <Py_ssize_t>(x1 >> 16)
                tl = src[iy0, ix0] if 0 <= iy0 < sh and 0 <= ix0 < sw else 0
                tr = src[iy0, ix0 + 1] if 0 <= iy0 < sh and 0 <= ix0 + 1 < sw else 0
                bl = src[iy0 + 1, ix0] if 0 <= iy0 + 1 < sh and 0 <= ix0 < sw else 0
                br = src[iy0 + 1, ix0 + 1] if 0 <= iy0 + 1 < sh and 0 <= ix0 + 1 < sw else 0
                w_tl = (256 - wx) * (256 - wy)
                w_tr = wx * (256 - wy)
                w_bl = (256 - wx) * wy
                w_br = wx * wy
                acc = 0
                for k in range(4):
                    c = (w_tl * ((tl >> (8 * k)) & 0xFF) + w_tr * ((tr >> (8 * k)) & 0xFF)
                         + w_bl * ((bl >> (8 * k)) & 0xFF) + w_br * ((br >> (8 * k)) & 0xFF))
                    acc |= ((c >> 16) & 0xFF) << (8 * k)
                out[y, x] = acc
    return out_arr
