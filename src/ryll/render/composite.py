"""DRAW_COMPOSITE: pixman_image_composite32 as spice-common's canvas_draw_composite drives it,
bit-exact against the system pixman (0.42.2 on Debian 12, the library spice-gtk's sw_canvas
links; tests/render/pixman_lib.py is the test oracle). The narrow path runs on 32-bit pixel
words in compiled kernels: the fetchers and combiners of render._composite, unified OVER in
render._pixels.over; an untransformed source or mask inside its image is a slice of it, read
in its format there only. The wide (float) path's fetch is render._composite.fetch_float, its
combiners numpy float32.

canvas_base.c ``canvas_draw_composite`` takes the surface box as the dest image, the source (and
optional mask) image, sets its transform (a SpiceTransform: the top two rows of a pixman 16.16
fixed matrix), filter (flags bits 8-10 / 11-13, a raw pixman_filter_t), repeat (bits 14-15 /
16-17, a raw pixman_repeat_t) and the mask's component-alpha bit (18), composites with the raw
pixman_op_t in bits 0-7 at (src_origin, mask_origin, 0, 0, w, h), and blits the result back
through the clip. Every image has a pixman format (:class:`Format`, spice-common's
spice_surface_format_to_pixman: a8r8g8b8, x8r8g8b8, r5g6b5, x1r5g5b5, a8, a1); pixels are
handed over as BGRA bytes and read as pixman reads that format (missing alpha 255, alpha-only
formats colourless, a1 alpha 0 / 255, 16-bit channels replicated from their top bits).

What is mirrored, from pixman.c, pixman-general.c, pixman-bits-image.c and the combiners:

* pixman_image_composite32's front end: an identity matrix is no transform; analyze_extent
  refuses (the dest is left as it is) a source or mask whose box is not 16-bit, whose size
  reaches 0x7fff or whose transformed box overflows 16.16; optimize_operator's table (the
  holes 0x0e-0x0f, 0x1c-0x1f, 0x2c-0x2f are zero entries: CLEAR; DISJOINT_ / CONJOINT_ CLEAR,
  SRC and DST are the plain ones; SATURATE of an opaque source, i.e. a format without alpha
  that repeats or whose samples cover the box, times an opaque mask, is OVER_REVERSE);
* sampling: no transform -> integer pixels ``origin + (x, y)``; with a transform the pixel
  centre goes through pixman_transform_point (``m * int + round(m * frac / 65536)``); NEAREST /
  FAST pick ``(v - pixman_fixed_e) >> 16``, BILINEAR / GOOD / BEST interpolate; the repeat modes
  NONE (transparent black outside), NORMAL, PAD and REFLECT apply to every tap;
* the narrow (8-bit) path of general_composite_rect for every op that does not divide: the
  combiners of pixman-combine32.c with pixman's rounding (``UN8x4_MUL_UN8``: ``t = x * a +
  0x80; (t + (t >> 8)) >> 8``, saturating adds), the 7-bit bilinear weights and
  ``bilinear_interpolation``; the separable PDF modes as PDF_SEPARABLE_BLEND_MODE computes them
  (``(1 - as) * d + (1 - ad) * s + blend`` in one 32-bit sum clamped to [0, 255 * 255], a
  negative sum wrapping to the top, then DIV_ONE_UN8); MULTIPLY as combine_multiply_{u,ca};
* the wide (float) path for the ops operator_needs_division lists: SATURATE, DISJOINT_*,
  CONJOINT_*, COLOR_DODGE, COLOR_BURN, SOFT_LIGHT and the four HSL modes. Pixels become C
  floats as pixman_expand_to_float does (a channel's top ``n`` bits times ``1.0f / (2^n -
  1)``, 1.0 for a missing alpha), bilinear taps are interpolated in float
  (bilinear_interpolation_float), the combiners of pixman-combine-float.c run in float32 with
  the C evaluation order (get_factor's clamped quotients, ``MIN (1, s * fa + d * fb)``, the
  blend functions, set_lum / set_sat / clip_color), and pixman_contract_from_float stores
  ``min(floor(clamp(f, 0, 1) * 256), 255)``. Two quirks of pixman are reproduced: the unified
  HSL combiners multiply green by the mask twice and blue not at all (``sc.g *= ma`` twice);
  and the affine / general source fetchers (a matrix, or PAD / REFLECT) get the mask scanline
  and skip a pixel whose mask is zero in all four channels, leaving the value the scanline
  buffer held there (that pixel on the previous row, 0 on the first), which the HSL modes
  then see through their unscaled blue;
* component alpha: the ``_ca`` combiners; the HSL modes have none and pixman runs combine_dst
  ("noops for now"): the destination is left as it is.

The result is BGRA as computed before the store: the caller quantises it to the dest format
(render.surface.quantise), which is what pixman's store then fetch gives.

Not done (``CompositeUnsupported``, a named gap): CONVOLUTION / SEPARABLE_CONVOLUTION filters
(spice-common passes no parameters), and op bytes above HSL_LUMINOSITY (0x3f-0xff: pixman
indexes its operator table beyond its end, so there is no defined result). Projective
matrices do not occur (SPICE carries two rows). Exactness also needs the caller to pass the
real formats and composite the whole box, as the display channel does (canvas_draw_composite).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum

import numpy as np

from ryll.render import _composite as _ck  # type: ignore[attr-defined]
from ryll.render import _pixels  # type: ignore[attr-defined]
from ryll.render.raster import FIXED_ONE


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


class Format(IntEnum):
    """The pixman_format_code_t of the images SPICE composites (spice_surface_format_to_pixman)."""

    A8R8G8B8 = 0x20028888
    X8R8G8B8 = 0x20020888
    R5G6B5 = 0x10020565
    X1R5G5B5 = 0x10020555
    A8 = 0x08018000
    A1 = 0x01011000


def _sizes(fmt: int) -> tuple[int, int, int, int]:
    """Bits of (B, G, R, A) in a pixman format code (PIXMAN_FORMAT_B / G / R / A)."""
    return (fmt & 0xF, (fmt >> 4) & 0xF, (fmt >> 8) & 0xF, (fmt >> 12) & 0xF)


@dataclass(frozen=True, slots=True)
class Picture:
    """A source or mask as pixman sees it: BGRA pixels (read as ``fmt`` stores them), an
    optional affine 16.16 matrix (t00, t01, t02, t10, t11, t12), a filter, a repeat mode and
    the composite origin."""

    pixels: np.ndarray
    transform: tuple[int, int, int, int, int, int] | None
    filter: int
    repeat: int
    origin: tuple[int, int]
    fmt: int = Format.A8R8G8B8


_IDENTITY = (FIXED_ONE, 0, 0, 0, FIXED_ONE, 0)


def read_as(px: np.ndarray, fmt: int) -> np.ndarray:
    """BGRA bytes as pixman fetches them from an image of ``fmt`` (a copy, uint8): each
    channel's top bits replicated down, a missing alpha 255, missing colour 0."""
    out = np.asarray(px, np.uint8).copy()
    for c, bits in enumerate(_sizes(fmt)):
        ch = out[..., c]
        if bits == 0:
            ch[...] = 255 if c == 3 else 0
        elif bits < 8:
            top = ch >> (8 - bits)
            v = top << (8 - bits)
            shift = bits
            while shift < 8:
                v |= (top << (8 - bits)) >> shift
                shift += bits
            ch[...] = v
    return out


# --- sampling --------------------------------------------------------------------------------


def _words(px: np.ndarray) -> np.ndarray:
    """(h, w, 4) BGRA bytes as (h, w) uint32 pixel words (a view when the pixels are
    contiguous in a row, else a copy)."""
    px = np.asarray(px, np.uint8)
    if px.strides[-1] != 1 or px.strides[-2] != 4:
        px = np.ascontiguousarray(px)
    return px.view(np.uint32)[..., 0]


def _bytes(words: np.ndarray) -> np.ndarray:
    """(h, w) uint32 words as (h, w, 4) BGRA bytes (a view)."""
    return words[..., None].view(np.uint8)


def read_words(px: np.ndarray, fmt: int) -> np.ndarray:
    """:func:`read_as` as (h, w) uint32 words; for a8r8g8b8, which reads as it is, a view."""
    if fmt == Format.A8R8G8B8:
        return _words(px)
    if fmt == Format.X8R8G8B8:
        return _words(px) | np.uint32(0xFF000000)
    return _words(read_as(px, fmt))


def _check_filter(pic: Picture) -> None:
    if pic.filter not in (Filter.FAST, Filter.GOOD, Filter.BEST, Filter.NEAREST,
                          Filter.BILINEAR):
        # CONVOLUTION / SEPARABLE_CONVOLUTION need parameters spice-common never passes.
        try:
            name = Filter(pic.filter).name.lower()
        except ValueError:
            name = "unknown"
        raise CompositeUnsupported(f"composite_filter_{name}")


def _transform(pic: Picture) -> tuple[int, int, int, int, int, int] | None:
    """The matrix pixman keeps: an identity one is no transform."""
    t = pic.transform
    if t is None or tuple(int(v) for v in t) == _IDENTITY:
        return None
    return t


def _untransformed(pic: Picture) -> bool:
    """Whether pixman fetches with bits_image_fetch_untransformed (no matrix, repeat NONE or
    NORMAL), which samples integer pixels and ignores the mask scanline."""
    return _transform(pic) is None and pic.repeat in (Repeat.NONE, Repeat.NORMAL)


def _bilinear(pic: Picture) -> bool:
    return pic.filter in (Filter.GOOD, Filter.BEST, Filter.BILINEAR)


def _sampling(pic: Picture, h: int, w: int
              ) -> np.ndarray | tuple[tuple[int, int, int, int, int, int], bool]:
    """How destination pixels (0..w, 0..h) sample the picture: the slice of its pixels they
    read when that is one (no matrix, every pixel inside), else the matrix (the identity for
    none: integer pixels whatever the filter) and whether the filter interpolates, for the
    _composite fetchers."""
    _check_filter(pic)
    t = _transform(pic)
    ox, oy = pic.origin
    if t is None:
        sh, sw = pic.pixels.shape[:2]
        if ox >= 0 and oy >= 0 and ox + w <= sw and oy + h <= sh:
            return pic.pixels[oy:oy + h, ox:ox + w]
        return _IDENTITY, False
    return t, _bilinear(pic)


def _fetch_words(pic: Picture, h: int, w: int) -> np.ndarray:
    """:func:`fetch` as (h, w) uint32 words (possibly a view of the picture's pixels)."""
    got = _sampling(pic, h, w)
    if isinstance(got, np.ndarray):
        return read_words(got, pic.fmt)  # reading a format is per pixel: the slice only
    t, bilinear = got
    ox, oy = pic.origin
    return _ck.fetch(read_words(pic.pixels, pic.fmt), t, bilinear, int(pic.repeat), ox, oy,
                     h, w)


def fetch(pic: Picture, h: int, w: int) -> np.ndarray:
    """The (h, w, 4) uint8 BGRA pixels pixman's narrow path fetches for destination pixels
    (0..w, 0..h): bilinear with 7-bit weights and the C ``bilinear_interpolation`` sums."""
    return _bytes(_fetch_words(pic, h, w))


# --- the float ("wide") path: pixman-utils.c conversions ------------------------------------

F32 = np.float32
_ONE = F32(1.0)
_FLT_MIN = F32(np.finfo(np.float32).tiny)


def _to_float(px: np.ndarray, fmt: int) -> np.ndarray:
    """pixman_expand_to_float of pixels already fetched as 8-bit ARGB (BGRA int arrays): a
    channel's top ``n`` bits times ``1.0f / ((1 << n) - 1)``; a missing alpha is 1.0."""
    out = np.empty(px.shape, F32)
    for c, bits in enumerate(_sizes(fmt)):
        if bits == 0:
            out[..., c] = _ONE if c == 3 else F32(0.0)
        else:
            mul = _ONE / F32((1 << bits) - 1)
            out[..., c] = (px[..., c] >> (8 - bits)).astype(F32) * mul
    return out


def _to_unorm8(f: np.ndarray) -> np.ndarray:
    """float_to_unorm (f, 8) as pixman_contract_from_float does it: clamp to [0, 1], ``u = f *
    256`` truncated, ``u -= u >> 8``. A NaN, which the combiners should not produce, gives 0
    as on x86-64 (cvttss2si's 0x8000000000000000 truncated to 32 bits)."""
    with np.errstate(invalid="ignore"):
        f = np.where(f > 1.0, _ONE, np.where(f < 0.0, F32(0.0), f))
        f = np.where(np.isnan(f), F32(0.0), f)
        u = (f * F32(256)).astype(np.int64)
    return (u - (u >> 8)).astype(np.uint8)


def fetch_float(pic: Picture, h: int, w: int) -> np.ndarray:
    """The (h, w, 4) float32 pixels pixman's wide path fetches: the image converted as
    :func:`_to_float` (outside it, with repeat NONE, all four channels 0), bilinear taps
    weighted by bilinear_interpolation_float."""
    got = _sampling(pic, h, w)
    if isinstance(got, np.ndarray):
        return _to_float(read_as(got, pic.fmt), pic.fmt)
    t, bilinear = got
    ox, oy = pic.origin
    src = _to_float(read_as(pic.pixels, pic.fmt), pic.fmt)
    return _ck.fetch_float(src, t, bilinear, int(pic.repeat), ox, oy, h, w)


def _stale_source(s: np.ndarray, m: np.ndarray, carry: np.ndarray | None = None
                  ) -> np.ndarray:
    """general_composite_rect hands the mask scanline to the source fetcher; the affine and
    general fetchers (a matrix, or PAD / REFLECT) skip a pixel whose mask value is zero (all
    four channels) and leave what the scanline buffer held there: that pixel's value on the
    previous row, 0 on the first (or ``carry``, the buffer as a previous band left it). Only
    the HSL modes can see it (their unified combiners do not multiply the source's blue by the
    mask)."""
    h, w = s.shape[:2]
    fetched = (m != 0).any(axis=-1)
    rows = np.where(fetched, np.arange(h)[:, None], -1)
    last = np.maximum.accumulate(rows, axis=0)
    out = s[np.maximum(last, 0), np.arange(w)[None, :]]
    if carry is None:
        out[last < 0] = 0
    else:
        unset = last < 0
        out[unset] = np.broadcast_to(carry, out.shape)[unset]
    return out


# --- pixman-combine-float.c ------------------------------------------------------------------


def _is_zero(f: np.ndarray) -> np.ndarray:
    """FLOAT_IS_ZERO: -FLT_MIN < f < FLT_MIN."""
    return (-_FLT_MIN < f) & (f < _FLT_MIN)


def _clamp01(f: np.ndarray) -> np.ndarray:
    """get_factor's CLAMP: f < 0 -> 0, f > 1 -> 1."""
    return np.where(f < 0, F32(0.0), np.where(f > 1.0, _ONE, f))


# get_factor's cases
(_ZERO, _ONE_F, _SRC_ALPHA, _DEST_ALPHA, _INV_SA, _INV_DA, _SA_OVER_DA, _DA_OVER_SA,
 _INV_SA_OVER_DA, _INV_DA_OVER_SA, _ONE_MINUS_SA_OVER_DA, _ONE_MINUS_DA_OVER_SA,
 _ONE_MINUS_INV_DA_OVER_SA, _ONE_MINUS_INV_SA_OVER_DA) = range(14)

# MAKE_PD_COMBINERS for the ops that reach the float path: op -> (Fa, Fb).
_PD_FACTORS = {
    Op.SATURATE: (_INV_DA_OVER_SA, _ONE_F),
    Op.DISJOINT_OVER: (_ONE_F, _INV_SA_OVER_DA),
    Op.DISJOINT_OVER_REVERSE: (_INV_DA_OVER_SA, _ONE_F),
    Op.DISJOINT_IN: (_ONE_MINUS_INV_DA_OVER_SA, _ZERO),
    Op.DISJOINT_IN_REVERSE: (_ZERO, _ONE_MINUS_INV_SA_OVER_DA),
    Op.DISJOINT_OUT: (_INV_DA_OVER_SA, _ZERO),
    Op.DISJOINT_OUT_REVERSE: (_ZERO, _INV_SA_OVER_DA),
    Op.DISJOINT_ATOP: (_ONE_MINUS_INV_DA_OVER_SA, _INV_SA_OVER_DA),
    Op.DISJOINT_ATOP_REVERSE: (_INV_DA_OVER_SA, _ONE_MINUS_INV_SA_OVER_DA),
    Op.DISJOINT_XOR: (_INV_DA_OVER_SA, _INV_SA_OVER_DA),
    Op.CONJOINT_OVER: (_ONE_F, _ONE_MINUS_SA_OVER_DA),
    Op.CONJOINT_OVER_REVERSE: (_ONE_MINUS_DA_OVER_SA, _ONE_F),
    Op.CONJOINT_IN: (_DA_OVER_SA, _ZERO),
    Op.CONJOINT_IN_REVERSE: (_ZERO, _SA_OVER_DA),
    Op.CONJOINT_OUT: (_ONE_MINUS_DA_OVER_SA, _ZERO),
    Op.CONJOINT_OUT_REVERSE: (_ZERO, _ONE_MINUS_SA_OVER_DA),
    Op.CONJOINT_ATOP: (_DA_OVER_SA, _ONE_MINUS_SA_OVER_DA),
    Op.CONJOINT_ATOP_REVERSE: (_ONE_MINUS_DA_OVER_SA, _SA_OVER_DA),
    Op.CONJOINT_XOR: (_ONE_MINUS_DA_OVER_SA, _ONE_MINUS_SA_OVER_DA),
}


def _factor(kind: int, sa: np.ndarray, da: np.ndarray) -> np.ndarray:
    """get_factor (float)."""
    zero, one = F32(0.0), _ONE
    if kind == _ZERO:
        return np.zeros_like(sa)
    if kind == _ONE_F:
        return np.ones_like(sa)
    if kind == _SRC_ALPHA:
        return sa
    if kind == _DEST_ALPHA:
        return da
    if kind == _INV_SA:
        return one - sa
    if kind == _INV_DA:
        return one - da
    # (numerator, denominator, value when the denominator is 0, 1 - quotient?)
    num, den, if_zero, invert = {
        _SA_OVER_DA: (sa, da, one, False),
        _DA_OVER_SA: (da, sa, one, False),
        _INV_SA_OVER_DA: (one - sa, da, one, False),
        _INV_DA_OVER_SA: (one - da, sa, one, False),
        _ONE_MINUS_SA_OVER_DA: (sa, da, zero, True),
        _ONE_MINUS_DA_OVER_SA: (da, sa, zero, True),
        _ONE_MINUS_INV_DA_OVER_SA: (one - da, sa, zero, True),
        _ONE_MINUS_INV_SA_OVER_DA: (one - sa, da, zero, True),
    }[kind]
    q = num / den
    if invert:
        q = one - q
    return np.where(_is_zero(den), if_zero, _clamp01(q))


def _pd(op: int, sa: np.ndarray, s: np.ndarray, da: np.ndarray, d: np.ndarray) -> np.ndarray:
    """pd_combine_<op>: MIN (1.0f, s * fa + d * fb)."""
    a, b = _PD_FACTORS[Op(op)]
    r = s * _factor(a, sa, da) + d * _factor(b, sa, da)
    return np.where(_ONE < r, _ONE, r)


def _blend_float(op: int, sa: np.ndarray, s: np.ndarray, da: np.ndarray, d: np.ndarray
                 ) -> np.ndarray:
    """blend_<mode> of pixman-combine-float.c for the separable modes on the float path."""
    two = F32(2)
    if op == Op.COLOR_DODGE:
        return np.where(_is_zero(d), F32(0.0),
                        np.where((d * sa >= sa * da - s * da) | _is_zero(sa - s), sa * da,
                                 sa * sa * d / (sa - s)))
    if op == Op.COLOR_BURN:
        return np.where(d >= da, sa * da,
                        np.where((sa * (da - d) >= s * da) | _is_zero(s), F32(0.0),
                                 sa * (da - sa * (da - d) / s)))
    if op == Op.SOFT_LIGHT:
        low = d * sa - d * (da - d) * (sa - two * s) / da
        mid = d * sa + (two * s - sa) * d * ((F32(16) * d / da - F32(12)) * d / da + F32(3))
        high = d * sa + (np.sqrt(d * da) - d) * (two * s - sa)
        return np.where(_is_zero(da), d * sa,
                        np.where(two * s <= sa, low, np.where(F32(4) * d <= da, mid, high)))
    raise AssertionError(op)


def _lum(c: list[np.ndarray]) -> np.ndarray:
    """get_lum: r * 0.3f + g * 0.59f + b * 0.11f (c is [r, g, b])."""
    return c[0] * F32(0.3) + c[1] * F32(0.59) + c[2] * F32(0.11)


def _cmin(c: list[np.ndarray]) -> np.ndarray:
    return np.minimum(np.minimum(c[0], c[1]), c[2])


def _cmax(c: list[np.ndarray]) -> np.ndarray:
    return np.maximum(np.maximum(c[0], c[1]), c[2])


def _clip_color(c: list[np.ndarray], a: np.ndarray) -> list[np.ndarray]:
    lum, n, x = _lum(c), _cmin(c), _cmax(c)
    t = lum - n
    lo = n < 0
    c = [np.where(lo, np.where(_is_zero(t), F32(0.0), lum + ((ch - lum) * lum) / t), ch)
         for ch in c]
    t = x - lum
    hi = x > a
    return [np.where(hi, np.where(_is_zero(t), a, lum + ((ch - lum) * (a - lum) / t)), ch)
            for ch in c]


def _set_lum(c: list[np.ndarray], sa: np.ndarray, lum: np.ndarray) -> list[np.ndarray]:
    d = lum - _lum(c)
    return _clip_color([ch + d for ch in c], sa)


def _set_sat(c: list[np.ndarray], sat: np.ndarray) -> list[np.ndarray]:
    """set_sat with pixman's choice of max / mid / min among equal channels."""
    r, g, b = c
    rg, rb, gb = r > g, r > b, g > b
    # index (0 r, 1 g, 2 b) of max, mid and min, following the C branches
    imax = np.where(rg, np.where(rb, 0, 2), np.where(rb, 1, np.where(gb, 1, 2)))
    imid = np.where(rg, np.where(rb, np.where(gb, 1, 2), 0), np.where(rb, 0, np.where(gb, 2, 1)))
    imin = np.where(rg, np.where(rb, np.where(gb, 2, 1), 1), np.where(rb, 2, 0))
    stack = np.stack(c)
    vmax = np.take_along_axis(stack, imax[None], 0)[0]
    vmid = np.take_along_axis(stack, imid[None], 0)[0]
    vmin = np.take_along_axis(stack, imin[None], 0)[0]
    t = vmax - vmin
    flat = _is_zero(t)
    new_mid = np.where(flat, F32(0.0), ((vmid - vmin) * sat) / t)
    new_max = np.where(flat, F32(0.0), sat)
    return [np.where(imax == i, new_max, np.where(imid == i, new_mid, F32(0.0)))
            for i in range(3)]


def _hsl_float(op: int, dc: list[np.ndarray], da: np.ndarray, sc: list[np.ndarray],
               sa: np.ndarray) -> list[np.ndarray]:
    if op == Op.HSL_HUE:
        res = _set_sat([x * da for x in sc], (_cmax(dc) - _cmin(dc)) * sa)
        return _set_lum(res, sa * da, _lum(dc) * sa)
    if op == Op.HSL_SATURATION:
        res = _set_sat([x * sa for x in dc], (_cmax(sc) - _cmin(sc)) * da)
        return _set_lum(res, sa * da, _lum(dc) * sa)
    if op == Op.HSL_COLOR:
        return _set_lum([x * da for x in sc], sa * da, _lum(dc) * sa)
    return _set_lum([x * sa for x in dc], sa * da, _lum(sc) * da)  # HSL_LUMINOSITY


def _combine_float(op: int, s: np.ndarray, m: np.ndarray | None, ca: bool, d: np.ndarray
                   ) -> np.ndarray:
    """combine_<op>_{u,ca}_float over (h, w, 4) float32 BGRA arrays."""
    da = d[..., 3]
    if op in _HSL:
        # MAKE_NON_SEPARABLE_PDF_COMBINERS (the _ca ones are combine_dst, handled earlier)
        sa = s[..., 3]
        sc = [s[..., 2], s[..., 1], s[..., 0]]
        if m is not None:
            ma = m[..., 3]
            sa = sa * ma
            sc = [sc[0] * ma, sc[1] * ma * ma, sc[2]]  # sc.g *= ma twice, sc.b never
        dc = [d[..., 2], d[..., 1], d[..., 0]]
        rc = _hsl_float(op, dc, da, sc, sa)
        out = np.empty_like(d)
        out[..., 3] = sa + da - sa * da
        for i, c in enumerate((2, 1, 0)):
            out[..., c] = (_ONE - sa) * dc[i] + (_ONE - da) * sc[i] + rc[i]
        return out
    # combine_inner
    if m is None:
        sv, mv = s, np.broadcast_to(s[..., 3:4], s.shape)
    elif ca:
        sv = s * m
        mv = m * s[..., 3:4]
        sv[..., 3] = mv[..., 3]  # sa = ma (the mask's alpha times the source's)
    else:
        sv = s * m[..., 3:4]
        mv = np.broadcast_to(sv[..., 3:4], s.shape)
    da4 = np.broadcast_to(d[..., 3:4], d.shape)
    if op in _PD_FACTORS:
        return _pd(op, mv, sv, da4, d)
    # MAKE_SEPARABLE_PDF_COMBINERS: alpha da + sa - da * sa, colour
    # (1 - sa) * d + (1 - da) * s + blend (sa, s, da, d)
    out = (_ONE - mv) * d + (_ONE - da4) * sv + _blend_float(op, mv, sv, da4, d)
    out[..., 3] = da + mv[..., 3] - da * mv[..., 3]
    return out


# --- pixman_image_composite32 -----------------------------------------------------------------

_HSL = {Op.HSL_HUE, Op.HSL_SATURATION, Op.HSL_COLOR, Op.HSL_LUMINOSITY}
# pixman's operator_table holes (0x0e-0x0f, 0x1c-0x1f, 0x2c-0x2f) are zero-filled: there,
# optimize_operator turns the op into PIXMAN_OP_CLEAR (0) whatever the images.
_HOLES = {0x0E, 0x0F, 0x1C, 0x1D, 0x1E, 0x1F, 0x2C, 0x2D, 0x2E, 0x2F}
# pixman-general.c operator_needs_division: these run through the float combiners.
_WIDE = {Op.SATURATE, *(op for op in Op if Op.DISJOINT_CLEAR <= op <= Op.CONJOINT_XOR),
         Op.COLOR_DODGE, Op.COLOR_BURN, Op.SOFT_LIGHT, *_HSL}


def op_name(op: int) -> str:
    try:
        return Op(op).name.lower()
    except ValueError:
        return "unknown"


_FIXED_E = 1
_INT32 = (-(1 << 31), (1 << 31) - 1)


def _in16(v: int) -> bool:
    return -(1 << 15) <= v < (1 << 15)


def _in16_16(v: int) -> bool:
    return _INT32[0] <= v <= _INT32[1]


def _transform_point(t: tuple[int, ...], x: int, y: int) -> tuple[int, int] | None:
    """pixman_transform_point for an affine matrix: None when a coordinate leaves int32."""
    out = []
    for row in (t[0:3], t[3:6]):
        hi = row[0] * (x >> 16) + row[1] * (y >> 16) + row[2]
        lo = row[0] * (x & 0xFFFF) + row[1] * (y & 0xFFFF)
        v = hi + ((lo + 0x8000) >> 16)
        if not _in16_16(v):
            return None
        out.append(v)
    return out[0], out[1]


def _transformed_extents(t: tuple[int, ...] | None, x1: int, y1: int, x2: int, y2: int
                         ) -> tuple[int, int, int, int] | None:
    """compute_transformed_extents: the box's corner pixel centres through the matrix."""
    fx1, fy1 = (x1 << 16) + FIXED_ONE // 2, (y1 << 16) + FIXED_ONE // 2
    fx2, fy2 = (x2 << 16) - FIXED_ONE // 2, (y2 << 16) - FIXED_ONE // 2
    if t is None:
        return fx1, fy1, fx2, fy2
    pts = []
    for px, py in ((fx2, fy2), (fx1, fy2), (fx2, fy1), (fx1, fy1)):
        p = _transform_point(t, px, py)
        if p is None:
            return None
        pts.append(p)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return min(xs), min(ys), max(xs), max(ys)


def _nearest_flag(pic: Picture, t: tuple[int, ...] | None) -> bool:
    """FAST_PATH_NEAREST_FILTER: NEAREST / FAST, or a bilinear filter that reduces to it (no
    matrix, or an integer one whose pixel centres land on half-integers)."""
    if not _bilinear(pic):
        return True
    if t is None:
        return True
    frac = (t[0] | t[1] | t[2] | t[3] | t[4] | t[5]) & 0xFFFF
    odd = (((t[0] + t[1]) & (t[3] + t[4])) >> 16) % 2 == 1
    limit = 30000 << 16
    return frac == 0 and odd and all(-limit <= v <= limit for v in (t[2], t[5]))


def _analyze(pic: Picture, h: int, w: int) -> tuple[bool, bool]:
    """analyze_extent for a source or mask used over a (w, h) dest box, and whether pixman
    then counts the image opaque (FAST_PATH_IS_OPAQUE, set directly or through the
    NEAREST_OPAQUE / BILINEAR_OPAQUE cover tests). Returns (ok, opaque)."""
    ox, oy = pic.origin
    x1, y1, x2, y2 = ox, oy, ox + w, oy + h
    if not all(_in16(v) for v in (x1 - 1, y1 - 1, x2 + 1, y2 + 1)):
        return False, False
    ph, pw = pic.pixels.shape[:2]
    if pw >= 0x7FFF or ph >= 0x7FFF:
        return False, False
    t = _transform(pic)
    samples_opaque = _sizes(pic.fmt)[3] == 0
    opaque = samples_opaque and pic.repeat != Repeat.NONE
    if t is None and x1 >= 0 and y1 >= 0 and x2 <= pw and y2 <= ph:
        return True, samples_opaque and _nearest_flag(pic, t)
    if _bilinear(pic):
        xo, yo, ew = -FIXED_ONE // 2, -FIXED_ONE // 2, FIXED_ONE
    else:
        xo, yo, ew = -_FIXED_E, -_FIXED_E, 0
    ext = _transformed_extents(t, x1, y1, x2, y2)
    if ext is None:
        return False, False
    tx1, ty1, tx2, ty2 = ext
    e = _FIXED_E
    cover_nearest = ((tx1 - e) >> 16 >= 0 and (ty1 - e) >> 16 >= 0
                     and (tx2 - e) >> 16 < pw and (ty2 - e) >> 16 < ph)
    half = FIXED_ONE // 2
    cover_bilinear = ((tx1 - half) >> 16 >= 0 and (ty1 - half) >> 16 >= 0
                      and (tx2 + half) >> 16 < pw and (ty2 + half) >> 16 < ph)
    ext = _transformed_extents(t, x1 - 1, y1 - 1, x2 + 1, y2 + 1)
    if ext is None:
        return False, False
    tx1, ty1, tx2, ty2 = ext
    if not (_in16_16(tx1 + xo - 8 * e) and _in16_16(ty1 + yo - 8 * e)
            and _in16_16(tx2 + xo + 8 * e + ew) and _in16_16(ty2 + yo + 8 * e + ew)):
        return False, False
    if samples_opaque and ((_nearest_flag(pic, t) and cover_nearest)
                           or (_bilinear(pic) and cover_bilinear)):
        opaque = True
    return True, opaque


def float_path(op: int) -> bool:
    """Whether pixman composites ``op`` through its float path (the costly one)."""
    return op in _WIDE


def composite(op: int, src: Picture, mask: Picture | None, component_alpha: bool,
              dest: np.ndarray, dest_fmt: int = Format.A8R8G8B8) -> np.ndarray:
    """pixman_image_composite32(op, src, mask, dest, ...) over the whole of ``dest`` (an
    (h, w, 4) BGRA array of an image of ``dest_fmt``); returns the new (h, w, 4) uint8, before
    the store into ``dest_fmt`` (see the module docstring)."""
    if op in _HOLES:
        op = Op.CLEAR
    elif op not in Op._value2member_map_:
        raise CompositeUnsupported(f"composite_op_{op_name(op)}")
    h, w = dest.shape[:2]
    _check_filter(src)
    if mask is not None:
        _check_filter(mask)
    if h == 0 or w == 0:
        return np.asarray(dest, np.uint8).copy()
    ok, src_opaque = _analyze(src, h, w)
    mask_opaque = True
    if mask is not None and ok:
        ok, mask_opaque = _analyze(mask, h, w)
        mask_opaque = mask_opaque and not component_alpha
    if not ok:
        return np.asarray(dest, np.uint8).copy()
    # optimize_operator (dest images never count as opaque: they do not repeat)
    if Op.DISJOINT_CLEAR <= op <= Op.CONJOINT_XOR and op & 0xF <= 2:
        op = op & 0xF
    if op == Op.SATURATE and src_opaque and mask_opaque:
        op = Op.OVER_REVERSE
    ca = mask is not None and component_alpha
    if op == Op.CLEAR:
        return np.zeros((h, w, 4), np.uint8)
    if op == Op.DST or op in _WIDE:
        d8 = read_as(dest, dest_fmt)
        return d8 if op == Op.DST else _composite_wide(op, src, mask, ca, d8, dest_fmt)
    s = _fetch_words(src, h, w)
    m = _fetch_words(mask, h, w) if mask is not None else None
    # an x8r8g8b8 dest reads with alpha 255: the kernels OR it in as they read
    d = read_words(dest, dest_fmt) if dest_fmt != Format.X8R8G8B8 else _words(dest)
    d_or = 0xFF000000 if dest_fmt == Format.X8R8G8B8 else 0
    if op == Op.OVER and not ca:
        # combine_over_u through the mask's alpha (combine_mask)
        out = _pixels.over(d, s, 255, None if m is None else _bytes(m)[..., 3], d_or)
    else:
        out = _ck.combine(int(op), s, m, ca, d, d_or)
    return _bytes(out)


# The wide path holds several float32 copies of what it composites; it runs in bands of
# about this many pixels, so its working memory stays near 64 MiB at any size.
WIDE_BAND_PIXELS = 1 << 19


def _composite_wide(op: int, src: Picture, mask: Picture | None, ca: bool, d8: np.ndarray,
                    dest_fmt: int) -> np.ndarray:
    h, w = d8.shape[:2]
    rows = max(1, WIDE_BAND_PIXELS // w)
    out = np.empty((h, w, 4), np.uint8)
    stale = mask is not None and not _untransformed(src) and not (ca and op in _HSL)
    carry = np.zeros((w, 4), F32)  # the scanline buffer _stale_source reads, across bands
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        d = _to_float(d8[r0:r1].astype(np.int32), dest_fmt)
        if ca and op in _HSL:
            # combine_float_ca[HSL_*] is combine_dst_u_float: the dest goes through floats
            out[r0:r1] = _to_unorm8(d)
            continue
        m = fetch_float(_rows_from(mask, r0), r1 - r0, w) if mask is not None else None
        s = fetch_float(_rows_from(src, r0), r1 - r0, w)
        if stale:
            assert m is not None
            s = _stale_source(s, m, carry)
            carry = s[-1].copy()
        with np.errstate(all="ignore"):
            out[r0:r1] = _to_unorm8(_combine_float(op, s, m, ca, d))
    return out


def _rows_from(pic: Picture, r0: int) -> Picture:
    """The picture as destination rows r0.. see it (its origin moved down by r0)."""
    if r0 == 0:
        return pic
    ox, oy = pic.origin
    return replace(pic, origin=(ox, oy + r0))


