"""DRAW_COMPOSITE: pixman_image_composite32 as spice-common's canvas_draw_composite drives it,
vectorised with numpy over BGRA arrays.

canvas_base.c ``canvas_draw_composite`` copies the box out of the surface (the dest image),
takes the source (and optional mask) image, sets its transform (a SpiceTransform: the top two
rows of a pixman 16.16 fixed matrix), filter (flags bits 8-10 / 11-13, a raw pixman_filter_t),
repeat (bits 14-15 / 16-17, a raw pixman_repeat_t) and the mask's component-alpha bit (18),
composites with the raw pixman_op_t in bits 0-7 at (src_origin, mask_origin, 0, 0, w, h), and
blits the result back through the clip.

What is mirrored here, from pixman's general (C reference) path:

* sampling: no transform -> integer pixels ``origin + (x, y)`` (the filter is not used); with a
  transform the pixel centre ``origin + (x, y) + 0.5`` goes through
  pixman_transform_point_31_16 (``m * int + round(m * frac / 65536)``); NEAREST / FAST pick
  ``(v - pixman_fixed_e) >> 16``, BILINEAR / GOOD / BEST use 7-bit weights and the C
  ``bilinear_interpolation`` sums (``sum(c * w) >> 16``); the repeat modes NONE (transparent
  black outside), NORMAL, PAD and REFLECT (pixman-inlines.h ``repeat``) apply to every tap;
* the combiners of pixman-combine32.c for the 8-bit ("narrow") formats every SPICE surface
  uses, with pixman's rounding: ``UN8x4_MUL_UN8`` (``t = x * a + 0x80; (t + (t >> 8)) >> 8``),
  saturating adds, ``DIV_UN8``, ``DIV_ONE_UN8``; the PDF blend modes' channel sums are added
  into one 32-bit word without saturation, as pixman does, so their carries match too. The
  soft-light and HSL modes use pixman's double-precision helpers;
* the DISJOINT_* / CONJOINT_* ops: combine_{disjoint,conjoint}_general_{u,ca} with the 8-bit
  ``*_out_part`` / ``*_in_part`` factors (``DIV_UN8``), DISJOINT_OVER_REVERSE as
  combine_saturate, their CLEAR / SRC / DST as the plain ones;
* component alpha: the ``_ca`` combiners for the Porter-Duff ops (SATURATE's
  combine_saturate_ca included), the DISJOINT / CONJOINT ops and the separable blend modes;
  the HSL modes have no ``_ca`` combiner, pixman runs combine_dst ("noops for now"): the
  destination is left as it is;
* the holes of pixman's operator table (0x0e-0x0f, 0x1c-0x1f, 0x2c-0x2f) are zero-filled,
  so optimize_operator makes them CLEAR.

The 8-bit combiners are those of pixman 0.32, the last release whose pixman-combine32.c has
the operators that divide. From 0.33.2 pixman runs SATURATE, DISJOINT_*, CONJOINT_*,
COLOR_DODGE, COLOR_BURN, SOFT_LIGHT and the HSL modes through pixman-combine-float.c
(pixels as floats, one rounding at the end), which can round differently.

Not done (``CompositeUnsupported``, a named gap): CONVOLUTION / SEPARABLE_CONVOLUTION filters
(spice-common passes no parameters), and op bytes above HSL_LUMINOSITY (0x3f-0xff: pixman
indexes its operator table beyond its end, so there is no defined result). pixman's SIMD fast
paths may round a bilinear tap by one where its C path does not; ryll follows the C path.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from ryll.render.canvas import BILINEAR_BITS, FIXED_ONE


class CompositeUnsupported(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Op(IntEnum):
    """pixman_op_t (the values SPICE carries in the flags' low byte)."""

    CLEAR = 0x00
    SRC = 0x01
    DST = 0x02
    OVER = 0x03
    OVER_REVERSE = 0x04
    IN = 0x05
    IN_REVERSE = 0x06
    OUT = 0x07
    OUT_REVERSE = 0x08
    ATOP = 0x09
    ATOP_REVERSE = 0x0A
    XOR = 0x0B
    ADD = 0x0C
    SATURATE = 0x0D
    DISJOINT_CLEAR = 0x10
    DISJOINT_SRC = 0x11
    DISJOINT_DST = 0x12
    DISJOINT_OVER = 0x13
    DISJOINT_OVER_REVERSE = 0x14
    DISJOINT_IN = 0x15
    DISJOINT_IN_REVERSE = 0x16
    DISJOINT_OUT = 0x17
    DISJOINT_OUT_REVERSE = 0x18
    DISJOINT_ATOP = 0x19
    DISJOINT_ATOP_REVERSE = 0x1A
    DISJOINT_XOR = 0x1B
    CONJOINT_CLEAR = 0x20
    CONJOINT_SRC = 0x21
    CONJOINT_DST = 0x22
    CONJOINT_OVER = 0x23
    CONJOINT_OVER_REVERSE = 0x24
    CONJOINT_IN = 0x25
    CONJOINT_IN_REVERSE = 0x26
    CONJOINT_OUT = 0x27
    CONJOINT_OUT_REVERSE = 0x28
    CONJOINT_ATOP = 0x29
    CONJOINT_ATOP_REVERSE = 0x2A
    CONJOINT_XOR = 0x2B
    MULTIPLY = 0x30
    SCREEN = 0x31
    OVERLAY = 0x32
    DARKEN = 0x33
    LIGHTEN = 0x34
    COLOR_DODGE = 0x35
    COLOR_BURN = 0x36
    HARD_LIGHT = 0x37
    SOFT_LIGHT = 0x38
    DIFFERENCE = 0x39
    EXCLUSION = 0x3A
    HSL_HUE = 0x3B
    HSL_SATURATION = 0x3C
    HSL_COLOR = 0x3D
    HSL_LUMINOSITY = 0x3E


_HSL = {Op.HSL_HUE, Op.HSL_SATURATION, Op.HSL_COLOR, Op.HSL_LUMINOSITY}


class Filter(IntEnum):
    """pixman_filter_t."""

    FAST = 0
    GOOD = 1
    BEST = 2
    NEAREST = 3
    BILINEAR = 4
    CONVOLUTION = 5
    SEPARABLE_CONVOLUTION = 6


class Repeat(IntEnum):
    """pixman_repeat_t."""

    NONE = 0
    NORMAL = 1
    PAD = 2
    REFLECT = 3


@dataclass(frozen=True, slots=True)
class Picture:
    """A source or mask as pixman sees it: BGRA pixels (premultiplied, alpha 255 for formats
    without alpha), an optional affine 16.16 matrix (t00, t01, t02, t10, t11, t12), a filter,
    a repeat mode and the composite origin."""

    pixels: np.ndarray
    transform: tuple[int, int, int, int, int, int] | None
    filter: int
    repeat: int
    origin: tuple[int, int]


# --- sampling --------------------------------------------------------------------------------


def _repeat(v: np.ndarray, size: int, repeat: int) -> tuple[np.ndarray, np.ndarray | None]:
    """pixman-inlines.h ``repeat``: indices inside [0, size), and for NONE the in-range mask."""
    if repeat == Repeat.NORMAL:
        return v % size, None
    if repeat == Repeat.PAD:
        return v.clip(0, size - 1), None
    if repeat == Repeat.REFLECT:
        v = v % (size * 2)
        return np.where(v >= size, size * 2 - v - 1, v), None
    inside = (v >= 0) & (v < size)
    return v.clip(0, size - 1), inside


def _gather(src: np.ndarray, ys: np.ndarray, xs: np.ndarray, repeat: int) -> np.ndarray:
    """src at integer positions (any matching shapes), with the repeat mode; int32 BGRA."""
    sh, sw = src.shape[:2]
    iy, vy = _repeat(ys, sh, repeat)
    ix, vx = _repeat(xs, sw, repeat)
    out = src[iy, ix].astype(np.int32)
    if vy is not None and vx is not None:
        out[~(vy & vx)] = 0
    return out


def _positions(pic: Picture, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Transformed pixel centres (16.16 fixed, int64), shape (h, w) each."""
    assert pic.transform is not None
    t00, t01, t02, t10, t11, t12 = (int(v) for v in pic.transform)
    ox, oy = pic.origin
    xi = np.arange(ox, ox + w, dtype=np.int64)[None, :]
    yi = np.arange(oy, oy + h, dtype=np.int64)[:, None]
    half = FIXED_ONE // 2
    # pixman_transform_point_31_16 on (x + 0.5, y + 0.5, 1): integer parts times the matrix,
    # fractional parts (0x8000 each) summed and rounded once.
    vx = t00 * xi + t01 * yi + t02 + ((t00 * half + t01 * half + 0x8000) >> 16)
    vy = t10 * xi + t11 * yi + t12 + ((t10 * half + t11 * half + 0x8000) >> 16)
    return np.broadcast_to(vx, (h, w)), np.broadcast_to(vy, (h, w))


def fetch(pic: Picture, h: int, w: int) -> np.ndarray:
    """The (h, w, 4) int32 pixels pixman fetches for destination pixels (0..w, 0..h)."""
    if pic.filter not in (Filter.FAST, Filter.GOOD, Filter.BEST, Filter.NEAREST,
                          Filter.BILINEAR):
        # CONVOLUTION / SEPARABLE_CONVOLUTION need parameters spice-common never passes.
        try:
            name = Filter(pic.filter).name.lower()
        except ValueError:
            name = "unknown"
        raise CompositeUnsupported(f"composite_filter_{name}")
    src = pic.pixels
    if src.shape[0] == 0 or src.shape[1] == 0:
        return np.zeros((h, w, 4), np.int32)
    if pic.transform is None:
        ox, oy = pic.origin
        ys = np.arange(oy, oy + h, dtype=np.int64)[:, None]
        xs = np.arange(ox, ox + w, dtype=np.int64)[None, :]
        return _gather(src, np.broadcast_to(ys, (h, w)), np.broadcast_to(xs, (h, w)),
                       pic.repeat)
    if pic.filter in (Filter.FAST, Filter.NEAREST):
        vx, vy = _positions(pic, h, w)
        return _gather(src, (vy - 1) >> 16, (vx - 1) >> 16, pic.repeat)
    if pic.filter in (Filter.GOOD, Filter.BEST, Filter.BILINEAR):
        vx, vy = _positions(pic, h, w)
        x1, y1 = vx - FIXED_ONE // 2, vy - FIXED_ONE // 2
        shift, wmask = 16 - BILINEAR_BITS, (1 << BILINEAR_BITS) - 1
        wx = (((x1 >> shift) & wmask) << (8 - BILINEAR_BITS))[..., None].astype(np.int64)
        wy = (((y1 >> shift) & wmask) << (8 - BILINEAR_BITS))[..., None].astype(np.int64)
        x0, y0 = x1 >> 16, y1 >> 16
        tl = _gather(src, y0, x0, pic.repeat)
        tr = _gather(src, y0, x0 + 1, pic.repeat)
        bl = _gather(src, y0 + 1, x0, pic.repeat)
        br = _gather(src, y0 + 1, x0 + 1, pic.repeat)
        acc = (tl * (256 - wx) * (256 - wy) + tr * wx * (256 - wy)
               + bl * (256 - wx) * wy + br * wx * wy)
        return (acc >> 16).astype(np.int32)
    raise AssertionError(pic.filter)


# --- pixman's 8-bit arithmetic ----------------------------------------------------------------

U32 = np.uint32


def _mul(x: np.ndarray, a: np.ndarray | int) -> np.ndarray:
    """UN8x4_MUL_UN8 / UN8x4_MUL_UN8x4 per channel: x * a / 255 rounded."""
    t = x * a + 0x80
    return (t + (t >> 8)) >> 8


def _div_one(x: np.ndarray) -> np.ndarray:
    """DIV_ONE_UN8 in uint32 (wraps as C does on out-of-range premultiplied input)."""
    x = x.astype(U32)
    t = x + U32(0x80)
    return (t + (t >> U32(8))) >> U32(8)


def _sat(x: np.ndarray) -> np.ndarray:
    return np.minimum(x, 255)


def _alpha(px: np.ndarray) -> np.ndarray:
    """The alpha channel, shaped to broadcast over the 4 channels."""
    return px[..., 3:4]


def _unified(op: int, s: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The ``_u`` Porter-Duff combiners (s already multiplied by the mask's alpha)."""
    sa, da = _alpha(s), _alpha(d)
    if op == Op.CLEAR:
        return np.zeros_like(d)
    if op == Op.SRC:
        return s
    if op == Op.DST:
        return d
    if op == Op.OVER:
        return _sat(_mul(d, 255 - sa) + s)
    if op == Op.OVER_REVERSE:
        return _sat(_mul(s, 255 - da) + d)
    if op == Op.IN:
        return _mul(s, da)
    if op == Op.IN_REVERSE:
        return _mul(d, sa)
    if op == Op.OUT:
        return _mul(s, 255 - da)
    if op == Op.OUT_REVERSE:
        return _mul(d, 255 - sa)
    if op == Op.ATOP:
        return _sat(_mul(s, da) + _mul(d, 255 - sa))
    if op == Op.ATOP_REVERSE:
        return _sat(_mul(s, 255 - da) + _mul(d, sa))
    if op == Op.XOR:
        return _sat(_mul(s, 255 - da) + _mul(d, 255 - sa))
    if op == Op.ADD:
        return _sat(s + d)
    if op == Op.SATURATE:
        # sa > 255 - da: s *= DIV_UN8(255 - da, sa), then add.
        ida = 255 - da
        over = sa > ida
        f = (ida * 255 + sa // 2) // np.maximum(sa, 1)
        s = np.where(over, _mul(s, f), s)
        return _sat(s + d)
    if Op.DISJOINT_CLEAR <= op <= Op.CONJOINT_XOR:
        return _joint(op, s, sa, d)
    raise AssertionError(op)


def _component(op: int, s: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The ``_ca`` Porter-Duff combiners; m is the mask's four channels."""
    sa, da = _alpha(s), _alpha(d)
    if op == Op.CLEAR:
        return np.zeros_like(d)
    if op == Op.DST:
        return d
    if op in (Op.SRC, Op.ADD):
        sv = _mul(s, m)  # combine_mask_value_ca
        return sv if op == Op.SRC else _sat(d + sv)
    if op == Op.OVER_REVERSE:
        return _sat(_mul(_mul(s, m), 255 - da) + d)
    if op in (Op.IN, Op.OUT):
        a = da if op == Op.IN else 255 - da
        return _mul(_mul(s, m), a)
    if op in (Op.IN_REVERSE, Op.OUT_REVERSE):
        ma = _mul(m, sa)  # combine_mask_alpha_ca
        return _mul(d, ma if op == Op.IN_REVERSE else 255 - ma)
    # combine_mask_ca: s *= m per channel, m *= s.alpha
    sm, mm = _mul(s, m), _mul(m, sa)
    if op == Op.OVER:
        return _sat(_mul(d, 255 - mm) + sm)
    if op == Op.ATOP:
        return _sat(_mul(d, 255 - mm) + _mul(sm, da))
    if op == Op.ATOP_REVERSE:
        return _sat(_mul(d, mm) + _mul(sm, 255 - da))
    if op == Op.XOR:
        return _sat(_mul(d, 255 - mm) + _mul(sm, 255 - da))
    if op == Op.SATURATE:
        # combine_saturate_ca: per channel, where m > 255 - da the source is scaled by
        # ((255 - da) << 8) / m (a truncating division, not DIV_UN8), then added.
        ida = 255 - da
        f = (ida << 8) // np.maximum(mm, 1)
        return _sat(d + np.where(mm > ida, _mul(sm, f), sm))
    if Op.DISJOINT_CLEAR <= op <= Op.CONJOINT_XOR:
        return _joint(op, sm, mm, d)
    raise AssertionError(op)


# --- DISJOINT_* / CONJOINT_* -------------------------------------------------------------------

# pixman-combine32.c's COMBINE_* bits: which part of A (source) and of B (dest) is kept.
_A_OUT, _A_IN, _B_OUT, _B_IN = 1, 2, 4, 8
# op & 0xF -> bits, for the ops combine_{disjoint,conjoint}_general_{u,ca} do (CLEAR, SRC,
# DST and DISJOINT_OVER_REVERSE use combine_clear / src / dst / saturate instead).
_COMBINE = {0x3: _A_OUT | _A_IN | _B_OUT, 0x4: _A_OUT | _B_OUT | _B_IN, 0x5: _A_IN,
            0x6: _B_IN, 0x7: _A_OUT, 0x8: _B_OUT, 0x9: _B_OUT | _A_IN, 0xA: _A_OUT | _B_IN,
            0xB: _A_OUT | _B_OUT}


def _div_un8(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """DIV_UN8: (a * 255 + b / 2) / b, integer division (b > 0 wherever the result is used)."""
    return (a * 255 + b // 2) // np.maximum(b, 1)


def _out_part(a: np.ndarray, b: np.ndarray, disjoint: bool) -> np.ndarray:
    """combine_disjoint_out_part min(1, (1 - b) / a) / combine_conjoint_out_part
    max(1 - b / a, 0), in 8 bits."""
    if disjoint:
        nb = 255 - b
        return np.where(nb >= a, 255, _div_un8(nb, a))
    return np.where(b >= a, 0, 255 - _div_un8(b, a))


def _in_part(a: np.ndarray, b: np.ndarray, disjoint: bool) -> np.ndarray:
    """combine_disjoint_in_part max(1 - (1 - b) / a, 0) / combine_conjoint_in_part
    min(1, b / a), in 8 bits."""
    if disjoint:
        nb = 255 - b
        return np.where(nb >= a, 0, 255 - _div_un8(nb, a))
    return np.where(b >= a, 255, _div_un8(b, a))


def _factor(bits: int, out_bit: int, in_bit: int, a: np.ndarray, b: np.ndarray,
            disjoint: bool) -> np.ndarray | int:
    part = bits & (out_bit | in_bit)
    if part == out_bit | in_bit:
        return 255
    if part == out_bit:
        return _out_part(a, b, disjoint)
    if part == in_bit:
        return _in_part(a, b, disjoint)
    return 0


def _joint(op: int, s: np.ndarray, sa: np.ndarray, d: np.ndarray) -> np.ndarray:
    """combine_{disjoint,conjoint}_general_{u,ca}: per channel ``d * Fb + s * Fa`` (MUL_UN8
    each, saturating add). ``sa`` is the source alpha (the ``_u`` form, s already multiplied by
    the mask's alpha) or the mask times the source alpha per channel (``_ca``, after
    combine_mask_ca). combine_disjoint_over_u's ``s == 0`` shortcut leaves d, as this does."""
    disjoint = op < Op.CONJOINT_CLEAR
    bits = _COMBINE[op & 0xF]
    da = _alpha(d)
    fa = _factor(bits, _A_OUT, _A_IN, sa, da, disjoint)
    fb = _factor(bits, _B_OUT, _B_IN, da, sa, disjoint)
    return _sat(_mul(d, fb) + _mul(s, fa))


# --- PDF blend modes ---------------------------------------------------------------------------


def _blend_channel(op: int, d: np.ndarray, ad: np.ndarray, s: np.ndarray, as_: np.ndarray
                   ) -> np.ndarray:
    """pixman's ``blend_<mode>`` for one channel, uint32 arithmetic (wrapping as C)."""
    if op == Op.SCREEN:
        return _div_one(s * ad + d * as_ - s * d)
    if op == Op.OVERLAY:
        r = np.where(2 * d < ad, 2 * s * d, as_ * ad - 2 * (ad - d) * (as_ - s))
        return _div_one(r)
    if op == Op.DARKEN:
        ss, dd = ad * s, as_ * d
        return _div_one(np.where(ss > dd, dd, ss))
    if op == Op.LIGHTEN:
        ss, dd = ad * s, as_ * d
        return _div_one(np.where(ss > dd, ss, dd))
    if op == Op.COLOR_DODGE:
        diff = as_ - s
        full = (as_ * d >= ad * diff) | (diff == 0)
        q = (d * as_) // np.where(diff == 0, U32(1), diff)
        r = np.where(d == 0, U32(0), np.where(full, _div_one(as_ * ad), _div_one(as_ * q)))
        return r.astype(U32)
    if op == Op.COLOR_BURN:
        r = ((ad - d) * as_) // np.where(s == 0, U32(1), s)
        nonzero = _div_one(as_ * (np.maximum(r, ad) - r))
        zero = np.where(d < ad, U32(0), _div_one(as_ * ad))
        return np.where(s == 0, zero, nonzero).astype(U32)
    if op == Op.HARD_LIGHT:
        return np.where(2 * s < as_, _div_one(2 * s * d),
                        _div_one(as_ * ad - 2 * (ad - d) * (as_ - s))).astype(U32)
    if op == Op.SOFT_LIGHT:
        fd, fad = d / 255.0, ad / 255.0
        fs, fas = s / 255.0, as_ / 255.0
        with np.errstate(divide="ignore", invalid="ignore"):
            safe_ad = np.where(fad == 0, 1.0, fad)
            low = np.where(fad == 0, fd * fas,
                           fd * fas - fd * (fad - fd) * (fas - 2 * fs) / safe_ad)
            mid = fd * fas + (2 * fs - fas) * fd * ((16 * fd / safe_ad - 12) * fd / safe_ad + 3)
            high = fd * fas + (np.sqrt(np.maximum(fd * fad, 0.0)) - fd) * (2 * fs - fas)
        r = np.where(2 * fs < fas, low, np.where(fad == 0, 0.0, np.where(4 * fd <= fad, mid, high)))
        return _to_u32(r * 255 + 0.5)
    if op == Op.DIFFERENCE:
        das, sad = d * as_, s * ad
        return np.where(sad < das, _div_one(das - sad), _div_one(sad - das)).astype(U32)
    if op == Op.EXCLUSION:
        return _div_one(s * ad + d * as_ - 2 * d * s)
    raise AssertionError(op)


def _to_u32(v: np.ndarray) -> np.ndarray:
    """C's double -> uint32_t as x86-64 compilers do it: truncate toward zero to 64 bits,
    keep the low 32 (a negative result, from colour above alpha, wraps)."""
    return np.trunc(v).astype(np.int64).astype(U32)


def _lum_int(c: list[np.ndarray]) -> np.ndarray:
    # LUM with c[0] red, c[1] green, c[2] blue, integer (uint32) division
    return (c[0] * U32(30) + c[1] * U32(59) + c[2] * U32(11)) // U32(100)


def _sat_int(c: list[np.ndarray]) -> np.ndarray:
    return np.maximum(np.maximum(c[0], c[1]), c[2]) - np.minimum(np.minimum(c[0], c[1]), c[2])


def _set_sat(c: list[np.ndarray], sat: np.ndarray) -> list[np.ndarray]:
    """pixman set_sat: max -> sat, min -> 0, mid scaled; all 0 when max == min (ties give
    the same values whichever channel pixman's ordering picks)."""
    mx = np.maximum(np.maximum(c[0], c[1]), c[2])
    mn = np.minimum(np.minimum(c[0], c[1]), c[2])
    span = mx - mn
    safe = np.where(span == 0, U32(1), span)
    return [np.where(span > 0, ((ch - mn).astype(np.uint64) * sat // safe).astype(U32), U32(0))
            for ch in c]


def _set_lum(c: list[np.ndarray], sa: np.ndarray, lum: np.ndarray) -> list[np.ndarray]:
    """pixman set_lum (doubles), results truncated to uint32 as C does."""
    a = sa * (1.0 / 255)
    tmp = [ch * (1.0 / 255) for ch in c]
    ll = lum * (1.0 / 255) - (tmp[0] * 30 + tmp[1] * 59 + tmp[2] * 11) / 100
    tmp = [t + ll for t in tmp]
    lv = (tmp[0] * 30 + tmp[1] * 59 + tmp[2] * 11) / 100
    mn = np.minimum(np.minimum(tmp[0], tmp[1]), tmp[2])
    mx = np.maximum(np.maximum(tmp[0], tmp[1]), tmp[2])
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = mn < 0
        zero_lo = lv - mn == 0.0
        tmp = [np.where(lo, np.where(zero_lo, 0.0, lv + (t - lv) * lv / (lv - mn)), t)
               for t in tmp]
        hi = mx > a
        zero_hi = mx - lv == 0.0
        tmp = [np.where(hi, np.where(zero_hi, a, lv + (t - lv) * (a - lv) / (mx - lv)), t)
               for t in tmp]
    return [_to_u32(t * 255 + 0.5) for t in tmp]


def _hsl(op: int, dc: list[np.ndarray], da: np.ndarray, sc: list[np.ndarray], sa: np.ndarray
         ) -> list[np.ndarray]:
    if op == Op.HSL_HUE:
        r = [x * da for x in sc]
        r = _set_sat(r, _sat_int(dc) * sa)
        return _set_lum(r, sa * da, _lum_int(dc) * sa)
    if op == Op.HSL_SATURATION:
        r = [x * sa for x in dc]
        r = _set_sat(r, _sat_int(sc) * da)
        return _set_lum(r, sa * da, _lum_int(dc) * sa)
    if op == Op.HSL_COLOR:
        r = [x * da for x in sc]
        return _set_lum(r, sa * da, _lum_int(dc) * sa)
    r = [x * sa for x in dc]  # HSL_LUMINOSITY
    return _set_lum(r, sa * da, _lum_int(sc) * da)


def _pack(chans: list[np.ndarray]) -> np.ndarray:
    """Four per-channel uint32 values (B, G, R, A) added into one 32-bit word each, carries
    and all, then split back into BGRA bytes."""
    word = chans[0].astype(U32)
    for i, shift in ((1, 8), (2, 16), (3, 24)):
        word = word + (chans[i].astype(U32) << U32(shift))
    return word[..., None].view(np.uint8).reshape(*word.shape, 4)


def _blend(op: int, s: np.ndarray, m: np.ndarray | None, d: np.ndarray) -> np.ndarray:
    """MULTIPLY .. HSL_LUMINOSITY, ``_u`` (m None) or ``_ca``; returns uint8 BGRA."""
    s = s.astype(U32)
    d = d.astype(U32)
    sa, da = s[..., 3], d[..., 3]
    if m is not None:
        m = m.astype(U32)
        s, m = _mul(s, m), _mul(m, s[..., 3:4])  # combine_mask_ca
        base = _sat(_mul(d, 255 - m) + _mul(s, 255 - d[..., 3:4]))
        alphas = [m[..., c] for c in range(4)]
    else:
        base = _sat(_mul(d, 255 - s[..., 3:4]) + _mul(s, 255 - d[..., 3:4]))
        alphas = [sa] * 4
    if op == Op.MULTIPLY:
        if m is None:
            return _sat(_mul(d, s) + base).astype(np.uint8)
        return _sat(base + _mul(d, s)).astype(np.uint8)
    if op in _HSL:
        assert m is None  # composite() handles the HSL modes' component alpha (a no-op)
        dc = [d[..., 2], d[..., 1], d[..., 0]]
        sc = [s[..., 2], s[..., 1], s[..., 0]]
        r, g, b = _hsl(op, dc, da, sc, sa)
        extra = [_div_one(b), _div_one(g), _div_one(r)]
    else:
        extra = [_blend_channel(op, d[..., c], da, s[..., c], alphas[c]) for c in range(3)]
    extra.append(_div_one(alphas[3] * da))
    return _pack([base[..., c] + extra[c] for c in range(4)])


# --- the composite --------------------------------------------------------------------------

_PORTER_DUFF = {Op.CLEAR, Op.SRC, Op.DST, Op.OVER, Op.OVER_REVERSE, Op.IN, Op.IN_REVERSE,
                Op.OUT, Op.OUT_REVERSE, Op.ATOP, Op.ATOP_REVERSE, Op.XOR, Op.ADD, Op.SATURATE,
                *(op for op in Op if Op.DISJOINT_CLEAR <= op <= Op.CONJOINT_XOR)}
# pixman's operator_table holes (0x0e-0x0f, 0x1c-0x1f, 0x2c-0x2f) are zero-filled: there,
# optimize_operator turns the op into PIXMAN_OP_CLEAR (0) whatever the images.
_HOLES = {0x0E, 0x0F, 0x1C, 0x1D, 0x1E, 0x1F, 0x2C, 0x2D, 0x2E, 0x2F}


def op_name(op: int) -> str:
    try:
        return Op(op).name.lower()
    except ValueError:
        return "unknown"


def _combiner(op: int) -> int:
    """The op whose combiner pixman (0.32, combine32.c's setup) runs for ``op``: the
    DISJOINT_ / CONJOINT_ CLEAR, SRC and DST use combine_clear / src / dst, DISJOINT_OVER_REVERSE
    is combine_saturate (u and ca), a hole of the operator table is CLEAR. Ops past
    HSL_LUMINOSITY index beyond pixman's operator_table (undefined): a named gap."""
    if op in _HOLES:
        return Op.CLEAR
    if op not in Op._value2member_map_:
        raise CompositeUnsupported(f"composite_op_{op_name(op)}")
    if Op.DISJOINT_CLEAR <= op <= Op.CONJOINT_XOR and op & 0xF <= 2:
        return op & 0xF
    if op == Op.DISJOINT_OVER_REVERSE:
        return Op.SATURATE
    return op


def composite(op: int, src: Picture, mask: Picture | None, component_alpha: bool,
              dest: np.ndarray) -> np.ndarray:
    """pixman_image_composite32(op, src, mask, dest, ...) over the whole of ``dest`` (an
    (h, w, 4) BGRA array, read as premultiplied ARGB); returns the new (h, w, 4) uint8."""
    op = _combiner(op)
    h, w = dest.shape[:2]
    ca = mask is not None and component_alpha
    if op == Op.DST or (ca and op in _HSL):
        # The HSL modes have no _ca combiner: pixman sets combine_32_ca[HSL_*] (and
        # combine_float_ca in later versions) to combine_dst, "noops for now".
        return dest.copy()
    s = fetch(src, h, w)
    d = dest.astype(np.int32)
    m = fetch(mask, h, w) if mask is not None else None
    if op in _PORTER_DUFF:
        if ca:
            assert m is not None
            return _component(op, s, m, d).astype(np.uint8)
        if m is not None:
            s = _mul(s, _alpha(m))  # combine_mask: s * mask alpha
        return _unified(op, s, d).astype(np.uint8)
    if m is not None and not ca:
        s = _mul(s, _alpha(m))
        return _blend(op, s, None, d)
    return _blend(op, s, m if ca else None, d)
