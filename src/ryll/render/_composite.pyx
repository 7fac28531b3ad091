# cython: language_level=3, cdivision=True
"""Compiled kernels of render.composite (DRAW_COMPOSITE, pixman_image_composite32): the
source / mask fetchers and the 8-bit combiners, bit-exact against pixman 0.42.

Pixels are 32-bit words as in render._pixels (a BGRA pixel's 4 bytes read as one
little-endian uint32: B bits 0-7 .. alpha 24-31), 2-D (h, w) arrays of any strides; the float
path's pixels are (h, w, 4) float32 BGRA. Outputs are new C-contiguous arrays. The loops run
without the GIL and keep Cython's bounds checks, but :func:`combine`'s, which read each row
through a pointer to its bounds-checked first word once the shapes are checked equal and the
rows contiguous; its commonest combiners get a loop of their own, which the C compiler (at
-O3 here) specialises and vectorises.

- :func:`fetch` / :func:`fetch_float`: the pixels pixman reads for destination pixels
  (0..w, 0..h) of a picture with an affine 16.16 matrix (the identity for an untransformed
  one), a filter and a repeat mode: the pixel centre through pixman_transform_point (a
  linear function of the pixel, stepped), NEAREST ``(v - pixman_fixed_e) >> 16`` or the four
  bilinear taps around ``v - 0.5``, each tap through pixman-inlines.h ``repeat`` (NONE:
  transparent black outside). :func:`fetch` weights the taps as bits_image_fetch_bilinear's
  ``bilinear_interpolation`` (7-bit weights, ``tl * (256 - wx) * (256 - wy) + ... >> 16`` a
  channel); :func:`fetch_float` as ``bilinear_interpolation_float`` (C float, its evaluation
  order).
- :func:`combine`: the pixman-combine32.c combiners but unified OVER (that is
  render._pixels.over):
  the Porter-Duff ``_u`` (the source multiplied by the mask's alpha, combine_mask) and ``_ca``
  ones, and the separable PDF modes MULTIPLY .. EXCLUSION but the float ones (DODGE, BURN,
  SOFT_LIGHT) as PDF_SEPARABLE_BLEND_MODE computes them: ``(1 - as) * d + (1 - ad) * s +
  blend`` in one int32 sum clamped to [0, 255 * 255] (a negative sum, unsigned in C, to the
  top), then DIV_ONE_UN8; MULTIPLY as combine_multiply_{u,ca}.
"""

from libc.stdint cimport int32_t, int64_t, uint32_t

from ryll.render._pixels cimport _add_sat, _mul, _mul4

import numpy as np

# The combiner loops are integer arithmetic the C compiler can vectorise once each is
# specialised for its op (ISO C semantics kept: no -ffast-math, the float code untouched by
# reassociation or contraction).
cdef extern from *:
    """
    #pragma GCC optimize ("O3")
    """

cdef enum:
    REPEAT_NONE = 0
    REPEAT_NORMAL = 1
    REPEAT_PAD = 2
    REPEAT_REFLECT = 3

# pixman_op_t values combine handles
cdef enum:
    OP_CLEAR = 0x00
    OP_SRC = 0x01
    OP_DST = 0x02
    OP_OVER = 0x03
    OP_OVER_REVERSE = 0x04
    OP_IN = 0x05
    OP_IN_REVERSE = 0x06
    OP_OUT = 0x07
    OP_OUT_REVERSE = 0x08
    OP_ATOP = 0x09
    OP_ATOP_REVERSE = 0x0A
    OP_XOR = 0x0B
    OP_ADD = 0x0C
    OP_MULTIPLY = 0x30
    OP_SCREEN = 0x31
    OP_OVERLAY = 0x32
    OP_DARKEN = 0x33
    OP_LIGHTEN = 0x34
    OP_HARD_LIGHT = 0x37
    OP_DIFFERENCE = 0x39
    OP_EXCLUSION = 0x3A


cdef inline Py_ssize_t _wrap(int64_t v, Py_ssize_t size, int repeat) noexcept nogil:
    """pixman-inlines.h ``repeat``: the index in [0, size), or -1 (NONE, outside)."""
    if repeat == REPEAT_NORMAL:
        v = v % size
        if v < 0:
            v += size
    elif repeat == REPEAT_PAD:
        if v < 0:
            v = 0
        elif v >= size:
            v = size - 1
    elif repeat == REPEAT_REFLECT:
        v = v % (2 * size)
        if v < 0:
            v += 2 * size
        if v >= size:
            v = 2 * size - v - 1
    elif v < 0 or v >= size:
        return -1
    return <Py_ssize_t>v


cdef struct Geometry:
    # pixel (x, y)'s centre through the matrix: vx = x0 + x * t00 + y * t01 (16.16)
    int64_t x0
    int64_t y0
    int64_t t00
    int64_t t01
    int64_t t10
    int64_t t11


cdef Geometry _geometry(tuple t, long ox, long oy) except *:
    """pixman_transform_point_31_16 on (ox + x + 0.5, oy + y + 0.5, 1): integer parts times
    the matrix, the fractional parts (0x8000 each) summed and rounded once."""
    cdef Geometry g
    t00, t01, t02, t10, t11, t12 = (int(v) for v in t)
    half = 0x8000
    g.x0 = t00 * ox + t01 * oy + t02 + ((t00 * half + t01 * half + 0x8000) >> 16)
    g.y0 = t10 * ox + t11 * oy + t12 + ((t10 * half + t11 * half + 0x8000) >> 16)
    g.t00, g.t01, g.t10, g.t11 = t00, t01, t10, t11
    return g


def fetch(const uint32_t[:, :] src, tuple t, bint bilinear, int repeat, long ox, long oy,
          Py_ssize_t h, Py_ssize_t w):
    """The (h, w) words pixman's narrow path fetches from ``src`` (words as the picture's
    format reads) with matrix ``t`` (t00, t01, t02, t10, t11, t12) for destination pixels
    (0..w, 0..h), the composite origin (ox, oy)."""
    cdef Py_ssize_t sh = src.shape[0], sw = src.shape[1], y, x, ix0, ix1, iy0, iy1
    out_arr = np.zeros((h, w), np.uint32)
    if sh == 0 or sw == 0:
        return out_arr
    cdef uint32_t[:, ::1] out = out_arr
    cdef Geometry g = _geometry(t, ox, oy)
    cdef int64_t vx, vy, x1, y1
    cdef uint32_t wx, wy, tl, tr, bl, br, acc, r, c
    cdef uint32_t w_tl, w_tr, w_bl, w_br
    cdef int k
    with nogil:
        for y in range(h):
            vx = g.x0 + y * g.t01
            vy = g.y0 + y * g.t11
            for x in range(w):
                if not bilinear:
                    ix0 = _wrap((vx - 1) >> 16, sw, repeat)
                    iy0 = _wrap((vy - 1) >> 16, sh, repeat)
                    if ix0 >= 0 and iy0 >= 0:
                        out[y, x] = src[iy0, ix0]
                else:
                    x1 = vx - 0x8000
                    y1 = vy - 0x8000
                    wx = <uint32_t>(((x1 >> 9) & 0x7F) << 1)
                    wy = <uint32_t>(((y1 >> 9) & 0x7F) << 1)
                    ix0 = _wrap(x1 >> 16, sw, repeat)
                    ix1 = _wrap((x1 >> 16) + 1, sw, repeat)
                    iy0 = _wrap(y1 >> 16, sh, repeat)
                    iy1 = _wrap((y1 >> 16) + 1, sh, repeat)
                    tl = src[iy0, ix0] if iy0 >= 0 and ix0 >= 0 else 0
                    tr = src[iy0, ix1] if iy0 >= 0 and ix1 >= 0 else 0
                    bl = src[iy1, ix0] if iy1 >= 0 and ix0 >= 0 else 0
                    br = src[iy1, ix1] if iy1 >= 0 and ix1 >= 0 else 0
                    w_tl = (256 - wx) * (256 - wy)
                    w_tr = wx * (256 - wy)
                    w_bl = (256 - wx) * wy
                    w_br = wx * wy
                    r = 0
                    for k in range(0, 32, 8):
                        acc = (((tl >> k) & 0xFF) * w_tl + ((tr >> k) & 0xFF) * w_tr
                               + ((bl >> k) & 0xFF) * w_bl + ((br >> k) & 0xFF) * w_br)
                        r |= (acc >> 16) << k
                    out[y, x] = r
                vx += g.t00
                vy += g.t10
    return out_arr


def fetch_float(const float[:, :, :] src, tuple t, bint bilinear, int repeat, long ox,
                long oy, Py_ssize_t h, Py_ssize_t w):
    """:func:`fetch` on the wide path: ``src`` is (sh, sw, 4) float32 (pixman_expand_to_float),
    the result (h, w, 4) float32, bilinear taps weighted in C float as
    bilinear_interpolation_float does."""
    cdef Py_ssize_t sh = src.shape[0], sw = src.shape[1], y, x, ix0, ix1, iy0, iy1
    out_arr = np.zeros((h, w, 4), np.float32)
    if sh == 0 or sw == 0:
        return out_arr
    if src.shape[2] != 4:
        raise ValueError(f"src has {src.shape[2]} channels, expected 4")
    cdef float[:, :, ::1] out = out_arr
    cdef Geometry g = _geometry(t, ox, oy)
    cdef int64_t vx, vy, x1, y1
    cdef float one = 1.0, scale = 65536.0
    cdef float distx, disty, distxy, distxiy, distixy, distixiy, ftl, ftr, fbl, fbr
    cdef int k
    with nogil:
        for y in range(h):
            vx = g.x0 + y * g.t01
            vy = g.y0 + y * g.t11
            for x in range(w):
                if not bilinear:
                    ix0 = _wrap((vx - 1) >> 16, sw, repeat)
                    iy0 = _wrap((vy - 1) >> 16, sh, repeat)
                    if ix0 >= 0 and iy0 >= 0:
                        for k in range(4):
                            out[y, x, k] = src[iy0, ix0, k]
                else:
                    x1 = vx - 0x8000
                    y1 = vy - 0x8000
                    distx = (<float>(x1 & 0xFFFF)) / scale
                    disty = (<float>(y1 & 0xFFFF)) / scale
                    distxy = distx * disty
                    distxiy = distx * (one - disty)
                    distixy = (one - distx) * disty
                    distixiy = (one - distx) * (one - disty)
                    ix0 = _wrap(x1 >> 16, sw, repeat)
                    ix1 = _wrap((x1 >> 16) + 1, sw, repeat)
                    iy0 = _wrap(y1 >> 16, sh, repeat)
                    iy1 = _wrap((y1 >> 16) + 1, sh, repeat)
                    for k in range(4):
                        ftl = src[iy0, ix0, k] if iy0 >= 0 and ix0 >= 0 else 0
                        ftr = src[iy0, ix1, k] if iy0 >= 0 and ix1 >= 0 else 0
                        fbl = src[iy1, ix0, k] if iy1 >= 0 and ix0 >= 0 else 0
                        fbr = src[iy1, ix1, k] if iy1 >= 0 and ix1 >= 0 else 0
                        out[y, x, k] = (ftl * distixiy + ftr * distxiy + fbl * distixy
                                        + fbr * distxy)
                vx += g.t00
                vy += g.t10
    return out_arr


cdef inline uint32_t _clamp_div_one(int32_t v) noexcept nogil:
    """CLAMP (v, 0, 255 * 255) on the uint32 (negative: the top), then DIV_ONE_UN8."""
    if v < 0 or v > 255 * 255:
        v = 255 * 255
    v += 0x80
    return <uint32_t>((v + (v >> 8)) >> 8)


cdef inline int32_t _blend(int op, int32_t d, int32_t ad, int32_t s, int32_t as_
                           ) noexcept nogil:
    """blend_<mode> of pixman-combine32.c for one colour channel."""
    cdef int32_t ss, dd
    if op == OP_SCREEN:
        return s * ad + d * as_ - s * d
    if op == OP_OVERLAY or op == OP_HARD_LIGHT:
        if (2 * d < ad) if op == OP_OVERLAY else (2 * s < as_):
            return 2 * s * d
        return as_ * ad - 2 * (ad - d) * (as_ - s)
    if op == OP_DARKEN or op == OP_LIGHTEN:
        ss = ad * s
        dd = as_ * d
        if (ss > dd) == (op == OP_DARKEN):
            return dd
        return ss
    if op == OP_DIFFERENCE:
        dd = d * as_
        ss = s * ad
        return dd - ss if ss < dd else ss - dd
    return s * ad + d * as_ - 2 * d * s  # EXCLUSION


cdef inline uint32_t _combine_u(int op, uint32_t s, uint32_t d) noexcept nogil:
    """combine_<op>_u on one pixel, s already multiplied by the mask's alpha."""
    cdef uint32_t sa = s >> 24, da = d >> 24, r
    cdef int k
    if op == OP_SRC:
        return s
    if op == OP_OVER_REVERSE:
        return _add_sat(_mul(s, 255 - da), d)
    if op == OP_IN:
        return _mul(s, da)
    if op == OP_IN_REVERSE:
        return _mul(d, sa)
    if op == OP_OUT:
        return _mul(s, 255 - da)
    if op == OP_OUT_REVERSE:
        return _mul(d, 255 - sa)
    if op == OP_ATOP:
        return _add_sat(_mul(s, da), _mul(d, 255 - sa))
    if op == OP_ATOP_REVERSE:
        return _add_sat(_mul(s, 255 - da), _mul(d, sa))
    if op == OP_XOR:
        return _add_sat(_mul(s, 255 - da), _mul(d, 255 - sa))
    if op == OP_ADD:
        return _add_sat(s, d)
    if op == OP_MULTIPLY:
        return _add_sat(_mul4(d, s), _add_sat(_mul(s, 255 - da), _mul(d, 255 - sa)))
    if op == OP_CLEAR:
        return 0
    if op == OP_DST:
        return d
    r = _clamp_div_one(<int32_t>(da * 255 + sa * 255 - sa * da)) << 24
    for k in range(0, 24, 8):
        r |= _clamp_div_one(
            <int32_t>((255 - sa) * ((d >> k) & 0xFF) + (255 - da) * ((s >> k) & 0xFF))
            + _blend(op, (d >> k) & 0xFF, da, (s >> k) & 0xFF, sa)) << k
    return r


cdef inline uint32_t _combine_ca(int op, uint32_t s, uint32_t m, uint32_t d) noexcept nogil:
    """combine_<op>_ca on one pixel, m the mask's four channels."""
    cdef uint32_t sa = s >> 24, da = d >> 24, sm, mm, r, ak
    cdef int k
    sm = _mul4(s, m)  # combine_mask_ca: s *= m, m *= s.alpha
    mm = _mul(m, sa)
    if op == OP_SRC:
        return sm
    if op == OP_ADD:
        return _add_sat(d, sm)
    if op == OP_OVER_REVERSE:
        return _add_sat(_mul(sm, 255 - da), d)
    if op == OP_IN:
        return _mul(sm, da)
    if op == OP_OUT:
        return _mul(sm, 255 - da)
    if op == OP_IN_REVERSE:
        return _mul4(d, mm)
    if op == OP_OUT_REVERSE:
        return _mul4(d, ~mm)
    if op == OP_OVER:
        return _add_sat(_mul4(d, ~mm), sm)
    if op == OP_ATOP:
        return _add_sat(_mul4(d, ~mm), _mul(sm, da))
    if op == OP_ATOP_REVERSE:
        return _add_sat(_mul4(d, mm), _mul(sm, 255 - da))
    if op == OP_XOR:
        return _add_sat(_mul4(d, ~mm), _mul(sm, 255 - da))
    if op == OP_MULTIPLY:
        return _add_sat(_mul4(d, sm), _add_sat(_mul4(d, ~mm), _mul(sm, 255 - da)))
    if op == OP_CLEAR:
        return 0
    if op == OP_DST:
        return d
    sa = sm >> 24
    r = _clamp_div_one(<int32_t>(da * 255 + sa * 255 - sa * da)) << 24
    for k in range(0, 24, 8):
        ak = (mm >> k) & 0xFF
        r |= _clamp_div_one(
            <int32_t>((255 - ak) * ((d >> k) & 0xFF) + (255 - da) * ((sm >> k) & 0xFF))
            + _blend(op, (d >> k) & 0xFF, da, (sm >> k) & 0xFF, ak)) << k
    return r


_OPS = frozenset({OP_CLEAR, OP_SRC, OP_DST, OP_OVER, OP_OVER_REVERSE, OP_IN, OP_IN_REVERSE,
                  OP_OUT, OP_OUT_REVERSE, OP_ATOP, OP_ATOP_REVERSE, OP_XOR, OP_ADD,
                  OP_MULTIPLY, OP_SCREEN, OP_OVERLAY, OP_DARKEN, OP_LIGHTEN, OP_HARD_LIGHT,
                  OP_DIFFERENCE, OP_EXCLUSION})


cdef void _row(int op, bint ca, bint has_mask, const uint32_t *sp, const uint32_t *mp,
               const uint32_t *dp, uint32_t *out, Py_ssize_t w, uint32_t d_or
               ) noexcept nogil:
    """One row of any combiner."""
    cdef Py_ssize_t x
    for x in range(w):
        if ca:
            out[x] = _combine_ca(op, sp[x], mp[x], dp[x] | d_or)
        elif has_mask:
            out[x] = _combine_u(op, _mul(sp[x], mp[x] >> 24), dp[x] | d_or)
        else:
            out[x] = _combine_u(op, sp[x], dp[x] | d_or)


# The same rows for the commonest combiners, each with a constant op the compiler specialises
# (and vectorises) the inlined combiner for.

cdef void _row_over_ca(int op, bint ca, bint has_mask, const uint32_t *sp,
                       const uint32_t *mp, const uint32_t *dp, uint32_t *out, Py_ssize_t w,
                       uint32_t d_or) noexcept nogil:
    cdef Py_ssize_t x
    for x in range(w):
        out[x] = _combine_ca(OP_OVER, sp[x], mp[x], dp[x] | d_or)


cdef void _row_multiply_u(int op, bint ca, bint has_mask, const uint32_t *sp,
                          const uint32_t *mp, const uint32_t *dp, uint32_t *out, Py_ssize_t w,
                          uint32_t d_or) noexcept nogil:
    cdef Py_ssize_t x
    if has_mask:
        for x in range(w):
            out[x] = _combine_u(OP_MULTIPLY, _mul(sp[x], mp[x] >> 24), dp[x] | d_or)
    else:
        for x in range(w):
            out[x] = _combine_u(OP_MULTIPLY, sp[x], dp[x] | d_or)


ctypedef void (*row_fn)(int, bint, bint, const uint32_t *, const uint32_t *,
                        const uint32_t *, uint32_t *, Py_ssize_t, uint32_t) noexcept nogil


def combine(int op, const uint32_t[:, :] src, const uint32_t[:, :] mask, bint ca,
            const uint32_t[:, :] dst, uint32_t dst_or=0):
    """combine_<op>_u (``ca`` false: the source times the mask's alpha when there is a mask)
    or combine_<op>_ca (the mask's four channels) of the (h, w) words; a new (h, w) array.
    ``dst_or`` is ORed into each dest word as it is read (as render._pixels.over)."""
    if op not in _OPS or (op == OP_OVER and not ca):
        # unified OVER is render._pixels.over
        raise ValueError(f"op {op:#04x} is not a combine() combiner")
    cdef Py_ssize_t h = dst.shape[0], w = dst.shape[1]
    if src.shape[0] != h or src.shape[1] != w:
        raise ValueError(f"src is {src.shape[0]}x{src.shape[1]}, expected {h}x{w}")
    cdef bint has_mask = mask is not None
    if has_mask and (mask.shape[0] != h or mask.shape[1] != w):
        raise ValueError(f"mask is {mask.shape[0]}x{mask.shape[1]}, expected {h}x{w}")
    if ca and not has_mask:
        raise ValueError("component alpha needs a mask")
    if src.strides[1] != 4 or dst.strides[1] != 4 or (has_mask and mask.strides[1] != 4):
        raise ValueError("the words of a row must be contiguous")
    out_arr = np.empty((h, w), np.uint32)
    if h == 0 or w == 0:
        return out_arr
    cdef uint32_t[:, ::1] out = out_arr
    cdef row_fn row = _row
    if ca and op == OP_OVER:
        row = _row_over_ca
    elif not ca and op == OP_MULTIPLY:
        row = _row_multiply_u
    cdef Py_ssize_t y
    cdef const uint32_t *mp = NULL
    with nogil:
        for y in range(h):
            # rows through their bounds-checked element 0: the shapes are the same and the
            # words of a row contiguous (checked above)
            if has_mask:
                mp = &mask[y, 0]
            row(op, ca, has_mask, &src[y, 0], mp, &dst[y, 0], &out[y, 0], w, dst_or)
    return out_arr
