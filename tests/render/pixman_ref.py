"""A scalar reference of pixman's 32-bit combiners and samplers, one pixel at a time, written
from pixman-combine32.h / pixman-combine32.c / pixman-bits-image.c as C computes them: packed
32-bit ARGB words, the RB-pair macros, uint32 wrap-around. ``ryll.render.composite`` works per
channel with numpy; this file shares no code with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

M32 = 0xFFFFFFFF
MASK = 0xFF
RB_MASK = 0x00FF00FF
RB_ONE_HALF = 0x00800080
RB_MASK_PLUS_ONE = 0x10000100


def alpha(x: int) -> int:
    return x >> 24


def _rb_mul_un8(x: int, a: int) -> int:
    t = (x & RB_MASK) * a + RB_ONE_HALF
    return ((t + ((t >> 8) & RB_MASK)) >> 8) & RB_MASK


def _rb_add(x: int, y: int) -> int:
    t = x + y
    t |= RB_MASK_PLUS_ONE - ((t >> 8) & RB_MASK)
    return t & RB_MASK


def _rb_mul_rb(x: int, a: int) -> int:
    t = (x & MASK) * (a & MASK)
    t |= (x & 0xFF0000) * ((a >> 16) & MASK)
    t += RB_ONE_HALF
    t = (t + ((t >> 8) & RB_MASK)) >> 8
    return t & RB_MASK


def mul_un8(x: int, a: int) -> int:
    """UN8x4_MUL_UN8"""
    return _rb_mul_un8(x, a) | (_rb_mul_un8(x >> 8, a) << 8)


def add(x: int, y: int) -> int:
    """UN8x4_ADD_UN8x4"""
    return _rb_add(x & RB_MASK, y & RB_MASK) | (_rb_add((x >> 8) & RB_MASK,
                                                        (y >> 8) & RB_MASK) << 8)


def mul_un8x4(x: int, a: int) -> int:
    """UN8x4_MUL_UN8x4"""
    return _rb_mul_rb(x, a) | (_rb_mul_rb(x >> 8, a >> 8) << 8)


def mul_add(x: int, a: int, y: int) -> int:
    """UN8x4_MUL_UN8_ADD_UN8x4"""
    return add(mul_un8(x, a), y)


def mul_add_mul(x: int, a: int, y: int, b: int) -> int:
    """UN8x4_MUL_UN8_ADD_UN8x4_MUL_UN8"""
    return add(mul_un8(x, a), mul_un8(y, b))


def mul4_add_mul(x: int, a: int, y: int, b: int) -> int:
    """UN8x4_MUL_UN8x4_ADD_UN8x4_MUL_UN8"""
    return add(mul_un8x4(x, a), mul_un8(y, b))


def div_one(x: int) -> int:
    """DIV_ONE_UN8 on a uint32: ((x + 0x80) + ((x + 0x80) >> 8)) >> 8, each sum wrapping."""
    t = (x + 0x80) & M32
    return ((t + (t >> 8)) & M32) >> 8


def div_un8(a: int, b: int) -> int:
    return ((a & 0xFFFF) * MASK + b // 2) // b


def combine_mask(s: int, m: int | None) -> int:
    if m is None:
        return s
    ma = m >> 24
    return 0 if ma == 0 else mul_un8(s, ma)


def unified(op: str, s: int, m: int | None, d: int) -> int:
    s = combine_mask(s, m)
    sa, da = alpha(s), alpha(d)
    isa, ida = alpha(~s & M32), alpha(~d & M32)
    if op == "clear":
        return 0
    if op == "src":
        return s
    if op == "dst":
        return d
    if op == "over":
        return s if sa == 0xFF else (mul_add(d, isa, s) if s else d)
    if op == "over_reverse":
        return mul_add(s, ida, d)
    if op == "in":
        return mul_un8(s, da)
    if op == "in_reverse":
        return mul_un8(d, sa)
    if op == "out":
        return mul_un8(s, ida)
    if op == "out_reverse":
        return mul_un8(d, isa)
    if op == "atop":
        return mul_add_mul(s, da, d, isa)
    if op == "atop_reverse":
        return mul_add_mul(s, ida, d, sa)
    if op == "xor":
        return mul_add_mul(s, ida, d, isa)
    if op == "add":
        return add(d, s)
    if op == "saturate":
        if sa > ida:
            s = mul_un8(s, div_un8(ida, sa))
        return add(d, s)
    raise KeyError(op)


def mask_ca(s: int, m: int) -> tuple[int, int]:
    """combine_mask_ca"""
    if m == 0:
        return 0, 0
    if m == M32:
        x = s >> 24
        return s, x | (x << 8) | (x << 16) | (x << 24)
    xa = s >> 24
    return mul_un8x4(s, m), mul_un8(m, xa)


def component(op: str, s: int, m: int, d: int) -> int:
    da = alpha(d)
    if op == "clear":
        return 0
    if op == "src":
        return mul_un8x4(s, m)
    if op == "over":
        s, m = mask_ca(s, m)
        a = ~m & M32
        return add(mul_un8x4(d, a), s) if a else s
    if op == "over_reverse":
        a = alpha(~d & M32)
        return mul_add(mul_un8x4(s, m), a, d) if a else d
    if op == "in":
        if not da:
            return 0
        s = mul_un8x4(s, m)
        return s if da == MASK else mul_un8(s, da)
    if op == "in_reverse":
        m = mul_un8(m, s >> 24)
        return d if m == M32 else mul_un8x4(d, m)
    if op == "out":
        a = alpha(~d & M32)
        if not a:
            return 0
        s = mul_un8x4(s, m)
        return s if a == MASK else mul_un8(s, a)
    if op == "out_reverse":
        m = mul_un8(m, s >> 24)
        a = ~m & M32
        return d if a == M32 else mul_un8x4(d, a)
    if op == "atop":
        s, m = mask_ca(s, m)
        return mul4_add_mul(d, ~m & M32, s, da)
    if op == "atop_reverse":
        s, m = mask_ca(s, m)
        return mul4_add_mul(d, m, s, alpha(~d & M32))
    if op == "xor":
        s, m = mask_ca(s, m)
        return mul4_add_mul(d, ~m & M32, s, alpha(~d & M32))
    if op == "add":
        return add(d, mul_un8x4(s, m))
    if op == "saturate":
        return saturate_ca(s, m, d)
    raise KeyError(op)


# --- SATURATE (ca), DISJOINT_* / CONJOINT_* (pixman 0.32 pixman-combine32.c) ----------------


def _mul_un8_16(a: int, b: int) -> int:
    """MUL_UN8(a, b, t) with its uint16_t t."""
    t = (a * (b & 0xFFFF) + 0x80) & 0xFFFF
    return ((t >> 8) + t) >> 8


def _sat_byte(t: int) -> int:
    """(uint8_t) (t | (0 - (t >> G_SHIFT))) for a uint16_t t."""
    return (t | (0 - (t >> 8))) & MASK


def _add_comp(x: int, y: int, i: int) -> int:
    """ADD (x, y, i, t)"""
    return _sat_byte((_ch(x, i) + _ch(y, i)) & 0xFFFF) << i


def _generic(x: int, y: int, i: int, ax: int, ay: int) -> int:
    """GENERIC (x, y, i, ax, ay, t, u, v): y * ay + x * ax in component i, saturated."""
    t = (_mul_un8_16(_ch(y, i), ay) + _mul_un8_16(_ch(x, i), ax)) & 0xFFFF
    return _sat_byte(t) << i


def saturate_ca(s: int, m: int, d: int) -> int:
    s, m = mask_ca(s, m)
    da = alpha(~d & M32)
    out = 0
    for sh in (0, 8, 16, 24):
        c = _ch(m, sh)
        out |= _add_comp(s, d, sh) if c <= da else _generic(s, d, sh, (da << 8) // c, MASK)
    return out


def disjoint_out_part(a: int, b: int) -> int:
    b = ~b & MASK
    return MASK if b >= a else div_un8(b, a)


def disjoint_in_part(a: int, b: int) -> int:
    b = ~b & MASK
    return 0 if b >= a else ~div_un8(b, a) & MASK


def conjoint_out_part(a: int, b: int) -> int:
    return 0 if b >= a else ~div_un8(b, a) & MASK


def conjoint_in_part(a: int, b: int) -> int:
    return MASK if b >= a else div_un8(b, a)


A_OUT, A_IN, B_OUT, B_IN = 1, 2, 4, 8
COMBINE = {"over": A_OUT | B_OUT | A_IN, "over_reverse": A_OUT | B_OUT | B_IN, "in": A_IN,
           "in_reverse": B_IN, "out": A_OUT, "out_reverse": B_OUT, "atop": B_OUT | A_IN,
           "atop_reverse": A_OUT | B_IN, "xor": A_OUT | B_OUT}


Part = Callable[[int, int], int]


def _parts(kind: str) -> tuple[Part, Part]:
    if kind == "disjoint":
        return disjoint_out_part, disjoint_in_part
    return conjoint_out_part, conjoint_in_part


def _factor(sel: int, out_bit: int, in_bit: int, part_out: Part, part_in: Part, a: int,
            b: int) -> int:
    if sel == out_bit | in_bit:
        return MASK
    if sel == out_bit:
        return part_out(a, b)
    if sel == in_bit:
        return part_in(a, b)
    return 0


def general_u(kind: str, base: str, s: int, m: int | None, d: int) -> int:
    """combine_{disjoint,conjoint}_general_u"""
    s = combine_mask(s, m)
    sa, da = alpha(s), alpha(d)
    po, pi = _parts(kind)
    combine = COMBINE[base]
    fa = _factor(combine & (A_OUT | A_IN), A_OUT, A_IN, po, pi, sa, da)
    fb = _factor(combine & (B_OUT | B_IN), B_OUT, B_IN, po, pi, da, sa)
    return sum(_generic(s, d, sh, fa, fb) for sh in (0, 8, 16, 24))


def general_ca(kind: str, base: str, s: int, m: int, d: int) -> int:
    """combine_{disjoint,conjoint}_general_ca"""
    da = alpha(d)
    s, sa = mask_ca(s, m)
    po, pi = _parts(kind)
    combine = COMBINE[base]

    def word(sel: int, out_bit: int, in_bit: int, src_first: bool) -> int:
        if sel == out_bit | in_bit:
            return M32
        w = 0
        for sh in (0, 8, 16, 24):
            a, b = (_ch(sa, sh), da) if src_first else (da, _ch(sa, sh))
            w |= _factor(sel, out_bit, in_bit, po, pi, a, b) << sh
        return w

    fa = word(combine & (A_OUT | A_IN), A_OUT, A_IN, True)
    fb = word(combine & (B_OUT | B_IN), B_OUT, B_IN, False)
    return sum(_generic(s, d, sh, _ch(fa, sh), _ch(fb, sh)) for sh in (0, 8, 16, 24))


def joint(name: str, s: int, m: int | None, d: int, ca: bool = False) -> int:
    """``disjoint_<op>`` / ``conjoint_<op>`` as pixman 0.32's combiner tables set them up."""
    kind, _, base = name.partition("_")
    if ca:
        assert m is not None
        if base == "clear":
            return 0
        if base == "src":
            return component("src", s, m, d)
        if base == "dst":
            return d
        if kind == "disjoint" and base == "over_reverse":
            return saturate_ca(s, m, d)
        return general_ca(kind, base, s, m, d)
    if base in ("clear", "src", "dst"):
        return unified(base, s, m, d)
    if kind == "disjoint" and base == "over_reverse":
        return unified("saturate", s, m, d)
    if kind == "disjoint" and base == "over":
        s = combine_mask(s, m)  # combine_disjoint_over_u
        if s:
            d = mul_add(d, disjoint_out_part(alpha(d), alpha(s)), s)
        return d
    return general_u(kind, base, s, m, d)


# --- blend modes: blend_<name>(d, ad, s, as) in uint32 --------------------------------------


def _u(x: int) -> int:
    return x & M32


def _soft_light(d0: int, ad0: int, s0: int, as0: int) -> int:
    d, ad, s, as_ = d0 / 255, ad0 / 255, s0 / 255, as0 / 255
    if 2 * s < as_:
        r = d * as_ if ad == 0 else d * as_ - d * (ad - d) * (as_ - 2 * s) / ad
    elif ad == 0:
        r = 0.0
    elif 4 * d <= ad:
        r = d * as_ + (2 * s - as_) * d * ((16 * d / ad - 12) * d / ad + 3)
    else:
        r = d * as_ + (math.sqrt(d * ad) - d) * (2 * s - as_)
    return int(r * MASK + 0.5)


def blend(name: str, d: int, ad: int, s: int, as_: int) -> int:
    if name == "screen":
        return div_one(_u(s * ad + d * as_ - s * d))
    if name == "overlay":
        r = 2 * s * d if 2 * d < ad else _u(as_ * ad - _u(2 * _u(ad - d) * _u(as_ - s)))
        return div_one(r)
    if name == "darken":
        ss, dd = ad * s, as_ * d
        return div_one(dd if ss > dd else ss)
    if name == "lighten":
        ss, dd = ad * s, as_ * d
        return div_one(ss if ss > dd else dd)
    if name == "color_dodge":
        if d == 0:
            return 0
        if as_ * d >= _u(ad * _u(as_ - s)):
            return div_one(as_ * ad)
        if _u(as_ - s) == 0:
            return div_one(as_ * ad)
        return div_one(_u(as_ * ((d * as_) // _u(as_ - s))))
    if name == "color_burn":
        if s == 0:
            return 0 if d < ad else div_one(as_ * ad)
        r = _u(_u(ad - d) * as_) // s
        return div_one(_u(as_ * (max(r, ad) - r)))
    if name == "hard_light":
        if 2 * s < as_:
            return div_one(2 * s * d)
        return div_one(_u(as_ * ad - _u(2 * _u(ad - d) * _u(as_ - s))))
    if name == "soft_light":
        return _soft_light(d, ad, s, as_)
    if name == "difference":
        das, sad = d * as_, s * ad
        return div_one(das - sad) if sad < das else div_one(sad - das)
    if name == "exclusion":
        return div_one(_u(s * ad + d * as_ - 2 * d * s))
    raise KeyError(name)


def _ch(x: int, shift: int) -> int:
    return (x >> shift) & MASK


def separable(name: str, s: int, m: int | None, d: int, ca: bool) -> int:
    if name == "multiply":
        if ca:
            assert m is not None
            s, m = mask_ca(s, m)
            r = mul4_add_mul(d, ~m & M32, s, alpha(~d & M32))
            return add(r, mul_un8x4(d, s))
        s = combine_mask(s, m)
        ss = mul_add_mul(s, alpha(~d & M32), d, alpha(~s & M32))
        return add(mul_un8x4(d, s), ss)
    da = alpha(d)
    if ca:
        assert m is not None
        s, m = mask_ca(s, m)
        result = mul4_add_mul(d, ~m & M32, s, MASK - da)
        result += (div_one(alpha(m) * da) << 24) + sum(
            blend(name, _ch(d, sh), da, _ch(s, sh), _ch(m, sh)) << sh for sh in (16, 8, 0))
        return result & M32
    s = combine_mask(s, m)
    sa = alpha(s)
    result = mul_add_mul(d, MASK - sa, s, MASK - da)
    result += (div_one(sa * da) << 24) + sum(
        blend(name, _ch(d, sh), da, _ch(s, sh), sa) << sh for sh in (16, 8, 0))
    return result & M32


# --- HSL (pixman set_lum / set_sat) -------------------------------------------------------


def _lum(c: list[float] | list[int], integer: bool) -> float | int:
    v = c[0] * 30 + c[1] * 59 + c[2] * 11
    return v // 100 if integer else v / 100  # type: ignore[operator,return-value]


def _sat(c: list[int]) -> int:
    return max(c) - min(c)


def set_lum(src: list[int], sa: int, lum: int) -> list[int]:
    a = sa * (1.0 / MASK)
    l_ = lum * (1.0 / MASK)
    tmp = [v * (1.0 / MASK) for v in src]
    l_ = l_ - _lum(tmp, False)
    tmp = [t + l_ for t in tmp]
    l_ = _lum(tmp, False)
    mn, mx = min(tmp), max(tmp)
    if mn < 0:
        tmp = [0.0] * 3 if l_ - mn == 0.0 else [l_ + (t - l_) * l_ / (l_ - mn) for t in tmp]
    if mx > a:
        tmp = [a] * 3 if mx - l_ == 0.0 else [l_ + (t - l_) * (a - l_) / (mx - l_) for t in tmp]
    return [int(t * MASK + 0.5) for t in tmp]


def set_sat(src: list[int], sat: int) -> list[int]:
    order = sorted(range(3), key=lambda i: -src[i])
    mx, mid, mn = order
    out = list(src)
    if src[mx] > src[mn]:
        out[mid] = _u((src[mid] - src[mn]) * sat) // (src[mx] - src[mn])
        out[mx] = sat
        out[mn] = 0
    else:
        out = [0, 0, 0]
    return out


def hsl(name: str, s: int, m: int | None, d: int, ca: bool = False) -> int:
    if ca:
        return d  # combine_32_ca[HSL_*] = combine_dst ("noops for now")
    s = combine_mask(s, m)
    sa, da = alpha(s), alpha(d)
    result = mul_add_mul(d, MASK - sa, s, MASK - da)
    dc = [_ch(d, 16), _ch(d, 8), _ch(d, 0)]
    sc = [_ch(s, 16), _ch(s, 8), _ch(s, 0)]
    if name == "hsl_hue":
        c = set_lum(set_sat([x * da for x in sc], _sat(dc) * sa), sa * da,
                    int(_lum(dc, True)) * sa)
    elif name == "hsl_saturation":
        c = set_lum(set_sat([x * sa for x in dc], _sat(sc) * da), sa * da,
                    int(_lum(dc, True)) * sa)
    elif name == "hsl_color":
        c = set_lum([x * da for x in sc], sa * da, int(_lum(dc, True)) * sa)
    else:
        c = set_lum([x * sa for x in dc], sa * da, int(_lum(sc, True)) * da)
    result += ((div_one(sa * da) << 24) + (div_one(c[0]) << 16) + (div_one(c[1]) << 8)
               + div_one(c[2]))
    return result & M32


# --- sampling (pixman-bits-image.c, general path) ------------------------------------------


def repeat(v: int, size: int, mode: int) -> int | None:
    if mode == 1:
        return v % size
    if mode == 2:
        return min(max(v, 0), size - 1)
    if mode == 3:
        v %= size * 2
        return size * 2 - v - 1 if v >= size else v
    return v if 0 <= v < size else None


def transform_point(t: tuple[int, ...], x: int, y: int) -> tuple[int, int]:
    """pixman_transform_point_31_16 on the pixel centre (x + 0.5, y + 0.5, 1)."""
    v = (x * 65536 + 32768, y * 65536 + 32768, 65536)
    out = []
    for row in (t[0:3], t[3:6]):
        hi = sum(row[i] * (v[i] >> 16) for i in range(3))
        lo = sum(row[i] * (v[i] & 0xFFFF) for i in range(3))
        out.append(hi + ((lo + 0x8000) >> 16))
    return out[0], out[1]


def pixel(img: list[list[int]], x: int, y: int, mode: int) -> int:
    h, w = len(img), len(img[0])
    rx, ry = repeat(x, w, mode), repeat(y, h, mode)
    if rx is None or ry is None:
        return 0
    return img[ry][rx]


def sample(img: list[list[int]], t: tuple[int, ...] | None, filt: int, mode: int, x: int,
           y: int) -> int:
    """The ARGB word pixman fetches for destination pixel (x, y) (origin already added)."""
    if t is None:
        return pixel(img, x, y, mode)
    vx, vy = transform_point(t, x, y)
    if filt in (0, 3):
        return pixel(img, (vx - 1) >> 16, (vy - 1) >> 16, mode)
    x1, y1 = vx - 32768, vy - 32768
    distx = ((x1 >> 9) & 0x7F) << 1
    disty = ((y1 >> 9) & 0x7F) << 1
    x0, y0 = x1 >> 16, y1 >> 16
    tl, tr = pixel(img, x0, y0, mode), pixel(img, x0 + 1, y0, mode)
    bl, br = pixel(img, x0, y0 + 1, mode), pixel(img, x0 + 1, y0 + 1, mode)
    distxy = distx * disty
    distxiy = (distx << 8) - distxy
    distixy = (disty << 8) - distxy
    distixiy = 256 * 256 - (disty << 8) - (distx << 8) + distxy
    out = 0
    for sh in (0, 8, 16, 24):
        f = (_ch(tl, sh) * distixiy + _ch(tr, sh) * distxiy + _ch(bl, sh) * distixy
             + _ch(br, sh) * distxy)
        out |= (f >> 16) << sh
    return out


def words(px: object) -> list[list[int]]:
    """BGRA (h, w, 4) uint8 -> rows of ARGB words."""
    import numpy as np

    a = np.asarray(px)
    return a.view("<u4")[..., 0].astype(np.int64).tolist()  # type: ignore[no-any-return]
