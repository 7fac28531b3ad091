"""render.composite against the system pixman (tests/render/pixman_lib.py, the libpixman-1 that
spice-gtk links), bit for bit: every op 0x00-0x3e (the holes of the operator table included),
with and without a mask, unified and component alpha, on random, invalid (colour above alpha)
and edge values; every surface format SPICE composites (a8r8g8b8, x8r8g8b8, r5g6b5, x1r5g5b5,
a8, a1) as source, mask and dest; transforms, the five filters, the four repeat modes; and
fixed-seed random differential runs over all of it. The dest is compared as the dest format
stores it (ryll returns the values before the store; pixman_lib.stored applies it)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from ryll.render.composite import (
    CompositeUnsupported,
    Format,
    Op,
    Picture,
    composite,
    fetch,
    read_as,
)
from tests.render import pixman_lib as PL

H, W = 6, 7
FORMATS = list(Format)
ALL_OPS = list(range(0x3F))
PORTER_DUFF = ["clear", "src", "dst", "over", "over_reverse", "in", "in_reverse", "out",
               "out_reverse", "atop", "atop_reverse", "xor", "add", "saturate"]
HSL = [Op.HSL_HUE, Op.HSL_SATURATION, Op.HSL_COLOR, Op.HSL_LUMINOSITY]
ALPHAS = [0, 1, 2, 127, 128, 129, 253, 254, 255]
TRANSFORMS = [
    (65536, 0, 0, 0, 65536, 0),  # identity as a matrix: pixman drops it
    (2 * 65536, 0, 0, 0, 2 * 65536, 0),  # downscale by 2
    (32768, 0, 3 * 65536 + 12345, 0, 32768, -65536),  # upscale by 2, fractional shift
    (43690, 0, 0, 0, 52429, 7000),  # non-integer factors
    (0, 65536, 0, 65536, 0, 0),  # transpose (rotate + flip)
    (46341, -46341, 65536 * 3, 46341, 46341, -65536),  # 45 degrees
    (-65536, 0, 5 * 65536, 0, 65536, 0),  # mirror
    (65536, 0, 2 * 65536, 0, 65536, -3 * 65536),  # integer shift: bilinear is nearest
]


@pytest.fixture
def pixman() -> Iterator[None]:
    PL.require()
    yield


def premultiplied(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """Random BGRA with colour <= alpha (valid premultiplied), some fully opaque/clear."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w), dtype=np.int64)
    a.flat[:2] = (0, 255)
    c = (rng.integers(0, 256, (h, w, 3)) * a[..., None]) // 255
    return np.concatenate([c, a[..., None]], axis=2).astype(np.uint8)


def arbitrary(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """Any bytes: colour may exceed alpha (pixman does not check)."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)


def edges(flip: bool = False) -> np.ndarray:
    """(9, 9) BGRA: alpha ALPHAS[y] (ALPHAS[x] when flipped); colours 0, alpha, alpha / 2 and
    255 (above alpha)."""
    a = np.array(ALPHAS, np.int64)
    a = np.broadcast_to(a[None, :] if flip else a[:, None], (len(a), len(a)))
    chans = [np.zeros_like(a), a, a // 2, a] if not flip else [a, np.full_like(a, 255), a, a]
    return np.stack(chans, axis=2).astype(np.uint8)


def pic(px: np.ndarray, origin: tuple[int, int] = (0, 0), fmt: int = Format.A8R8G8B8,
        transform: tuple[int, int, int, int, int, int] | None = None, filt: int = 3,
        repeat: int = 0) -> Picture:
    return Picture(px, transform, filt, repeat, origin, fmt)


def check(op: int, src: Picture, mask: Picture | None, ca: bool, dest: np.ndarray,
          dest_fmt: int = Format.A8R8G8B8) -> np.ndarray:
    """composite() stored into dest_fmt == pixman's result; returns it."""
    got = PL.stored(composite(op, src, mask, ca, dest, dest_fmt), dest_fmt)
    want = PL.composite_pictures(op, src, mask, ca, dest, dest_fmt)
    bad = np.argwhere((got != want).any(axis=-1))
    if len(bad):
        y, x = bad[0]
        raise AssertionError(
            f"op {op:#04x}: {len(bad)} pixels differ, first ({y}, {x}): ryll "
            f"{got[y, x].tolist()} pixman {want[y, x].tolist()} (dest {dest[y, x].tolist()})")
    return got


# --- every op --------------------------------------------------------------------------


@pytest.mark.parametrize("op", ALL_OPS, ids=lambda op: f"{op:#04x}")
def test_every_op_matches_pixman(pixman: None, op: int) -> None:
    for valid in (True, False):
        make = premultiplied if valid else arbitrary
        s, m, d = make(op * 8 + 1), make(op * 8 + 2), make(op * 8 + 3)
        m[0, 0], m[0, 1] = 0, 255
        check(op, pic(s), None, False, d)
        check(op, pic(s, (1, -1)), pic(m, (-1, 0)), False, d)
        check(op, pic(s), pic(arbitrary(op * 8 + 4)), True, d)


@pytest.mark.parametrize("op", ALL_OPS, ids=lambda op: f"{op:#04x}")
def test_every_op_on_edge_values(pixman: None, op: int) -> None:
    """Every pair of source / dest alphas from 0, 1, 2, 127..129, 253..255 (the boundaries of
    the divisions and of the float roundings), valid and invalid colours; unified, masked
    (mask channels 0, 1, 128, 254, 255) and component alpha."""
    s, d = edges(), edges(flip=True)
    m = np.random.default_rng(op).choice(np.array([0, 1, 128, 254, 255], np.uint8), (9, 9, 4))
    check(op, pic(s), None, False, d)
    check(op, pic(d), None, False, s)
    check(op, pic(s), pic(m), False, d)
    check(op, pic(s), pic(m), True, d)


# --- formats ---------------------------------------------------------------------------

FORMAT_OPS = [Op.OVER, Op.SRC, Op.IN_REVERSE, Op.ADD, Op.SATURATE, Op.DISJOINT_OVER,
              Op.CONJOINT_ATOP, Op.MULTIPLY, Op.SCREEN, Op.COLOR_DODGE, Op.SOFT_LIGHT,
              Op.HSL_HUE, Op.HSL_LUMINOSITY]


def test_read_as_is_what_pixman_reads(pixman: None) -> None:
    px = arbitrary(50, 9, 11)
    px[0, :9, 3] = ALPHAS
    for fmt in FORMATS:
        assert (read_as(px, fmt) == PL.stored(px, fmt)).all(), fmt.name


@pytest.mark.parametrize("dest_fmt", FORMATS, ids=lambda f: f.name)
@pytest.mark.parametrize("src_fmt", FORMATS, ids=lambda f: f.name)
def test_formats_as_source_mask_and_dest(pixman: None, src_fmt: Format, dest_fmt: Format
                                         ) -> None:
    """Each (source, dest) format pair, with each format as the mask in turn; 16-bit
    channels reach the float combiners as ``c5 / 31`` (not ``c8 / 255``), a missing alpha
    as 1.0, and an x8r8g8b8 or 16-bit source that repeats is opaque (SATURATE is then
    OVER_REVERSE, on the 8-bit path)."""
    seed = 100 + FORMATS.index(src_fmt) * 6 + FORMATS.index(dest_fmt)
    s, d = arbitrary(seed, 5, 4), arbitrary(seed + 50)
    for i, op in enumerate(FORMAT_OPS):
        mask_fmt = FORMATS[i % len(FORMATS)]
        m = arbitrary(seed + i)
        check(op, pic(s, (1, 2), src_fmt, repeat=i % 4), None, False, d, dest_fmt)
        check(op, pic(s, (0, 1), src_fmt, repeat=1), pic(m, (1, 0), mask_fmt), False, d,
              dest_fmt)
        check(op, pic(s, (-1, 0), src_fmt, repeat=2), pic(m, (0, -1), mask_fmt), True, d,
              dest_fmt)


# --- sampling --------------------------------------------------------------------------


@pytest.mark.parametrize("t", TRANSFORMS)
@pytest.mark.parametrize("filt", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("rep", [0, 1, 2, 3])
def test_sampling_matches_pixman(pixman: None, t: tuple[int, int, int, int, int, int],
                                 filt: int, rep: int) -> None:
    """Transforms with every filter (FAST = NEAREST, GOOD = BEST = BILINEAR) and repeat mode,
    on the 8-bit path (SRC, OVER with a transformed a8 mask) and on the float one (bilinear
    in float; CONJOINT_OVER, and HSL_COLOR whose source fetch skips where the mask is 0)."""
    src = arbitrary(20, 5, 4)
    mask = premultiplied(21, 4, 3)
    mask[1] = 0
    d = premultiplied(22)
    s = pic(src, (-2, 1), transform=t, filt=filt, repeat=rep)
    check(Op.SRC, s, None, False, d)
    m = pic(mask, (1, -1), Format.A8, transform=TRANSFORMS[2], filt=4 - (filt % 2), repeat=rep)
    check(Op.OVER, s, m, False, d)
    check(Op.CONJOINT_OVER, s, m, False, d)
    check(Op.HSL_COLOR, s, pic(mask, (0, 0), repeat=1), False, d)


@pytest.mark.parametrize("rep", [0, 1, 2, 3])
def test_untransformed_fetch_uses_integer_pixels_and_the_repeat(rep: int) -> None:
    src = arbitrary(21, 3, 2)
    got = fetch(Picture(src, None, 4, rep, (-3, -2)), H, W)
    ys, xs = np.mgrid[-2:H - 2, -3:W - 3]
    if rep == 0:
        inside = (ys >= 0) & (ys < 3) & (xs >= 0) & (xs < 2)
        want = np.where(inside[..., None], src[ys.clip(0, 2), xs.clip(0, 1)], 0)
    else:
        iy = {1: ys % 3, 2: ys.clip(0, 2), 3: np.where(ys % 6 >= 3, 5 - ys % 6, ys % 6)}[rep]
        ix = {1: xs % 2, 2: xs.clip(0, 1), 3: np.where(xs % 4 >= 2, 3 - xs % 4, xs % 4)}[rep]
        want = src[iy, ix]
    assert (got == want).all()


def test_none_repeat_outside_is_transparent_even_for_opaque_images(pixman: None) -> None:
    src = np.full((2, 2, 4), 200, np.uint8)
    got = fetch(Picture(src, None, 3, 0, (1, 1), Format.X8R8G8B8), 2, 2)
    assert got[0, 0].tolist() == [200, 200, 200, 255] and (got[1, 1] == 0).all()
    d = premultiplied(5, 2, 2)
    for op in (Op.SRC, Op.CONJOINT_ATOP_REVERSE, Op.HSL_HUE):
        check(op, pic(src, (1, 1), Format.X8R8G8B8, TRANSFORMS[7], 4), None, False, d)


# --- random differential runs ----------------------------------------------------------


def _random_transform(rng: np.random.Generator) -> tuple[int, int, int, int, int, int] | None:
    r = rng.random()
    if r < 0.35:
        return None
    if r < 0.7:
        return TRANSFORMS[int(rng.integers(len(TRANSFORMS)))]
    if r < 0.8:
        return tuple(int(v) * 65536 for v in rng.integers(-3, 4, 6))  # type: ignore[return-value]
    if r < 0.9:
        return tuple(int(v) for v in rng.integers(-2**18, 2**18, 6))  # type: ignore[return-value]
    return tuple(int(v) for v in rng.integers(-2**31, 2**31, 6))  # type: ignore[return-value]


def _random_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    kind = rng.random()
    if kind < 0.3:
        return rng.choice(np.array(ALPHAS, np.uint8), (h, w, 4))
    if kind < 0.6:
        a = rng.integers(0, 256, (h, w, 1))
        return np.concatenate([rng.integers(0, 256, (h, w, 3)) * a // 255, a],
                              axis=2).astype(np.uint8)
    return rng.integers(0, 256, (h, w, 4), dtype=np.uint8)


@pytest.mark.parametrize("seed", range(8))
def test_random_composites_in_bands_match_pixman(pixman: None, seed: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The wide path in bands of one to a few rows (as it runs on large composites): the
    same random cases, still pixman's result to the bit, the stale source of the HSL modes
    carried from band to band."""
    import ryll.render.composite as composite_mod

    monkeypatch.setattr(composite_mod, "WIDE_BAND_PIXELS", 1 + seed * 7)
    test_random_composites_match_pixman(pixman, seed)


@pytest.mark.parametrize("seed", range(8))
def test_random_composites_match_pixman(pixman: None, seed: int) -> None:
    """Random op, formats, sizes, origins (now and then beyond 16 bits, where pixman refuses),
    transforms (now and then overflowing 16.16), filters, repeats, masks and component
    alpha."""
    rng = np.random.default_rng(1000 + seed)
    for _ in range(250):
        op = int(rng.integers(0, 0x3F))
        sf, mf, df = (FORMATS[int(i)] for i in rng.integers(0, len(FORMATS), 3))

        def picture(fmt: Format, far: bool) -> Picture:
            h, w = (int(v) for v in rng.integers(1, 12, 2))
            lim = 40000 if far else 12
            origin = (int(rng.integers(-lim, lim)), int(rng.integers(-lim, lim)))
            return Picture(_random_image(rng, h, w), _random_transform(rng),
                           int(rng.integers(0, 5)), int(rng.integers(0, 4)), origin, fmt)

        src = picture(sf, rng.random() < 0.05)
        mask = picture(mf, False) if rng.random() < 0.6 else None
        ca = mask is not None and bool(rng.random() < 0.5)
        d = _random_image(rng, int(rng.integers(1, 10)), int(rng.integers(1, 40)))
        check(op, src, mask, ca, d, df)


# --- behaviours worth naming -------------------------------------------------------------


def test_over_of_an_opaque_source_is_a_copy_and_clear_is_zero() -> None:
    s, d = premultiplied(17), premultiplied(18)
    s[..., 3] = 255
    assert (composite(Op.OVER, pic(s), None, False, d) == s).all()
    assert (composite(Op.CLEAR, pic(s), None, False, d) == 0).all()


@pytest.mark.parametrize("base", PORTER_DUFF[:12])
def test_joint_ops_are_the_plain_ones_when_alphas_are_0_or_255(base: str) -> None:
    """Disjoint, conjoint and plain coverage agree when every pixel is fully covered or
    empty (the float path rounds these exactly): a check that does not need pixman."""
    s, d = premultiplied(39), premultiplied(40)
    for img in (s, d):
        img[img[..., 3] < 128] = 0
        img[..., 3] = np.where(img[..., 3] > 0, 255, 0)
    want = composite(Op[base.upper()], pic(s), None, False, d)
    for kind in ("DISJOINT", "CONJOINT"):
        assert (composite(Op[f"{kind}_{base.upper()}"], pic(s), None, False, d) == want).all()


def test_saturate_of_an_opaque_source_is_over_reverse(pixman: None) -> None:
    """optimize_operator: SATURATE with a source (and mask) pixman counts opaque is
    OVER_REVERSE in 8 bits; otherwise it is the float combine_saturate."""
    s, d = arbitrary(60), premultiplied(61)
    opaque = pic(s, (1, 1), Format.X8R8G8B8, repeat=1)
    got = check(Op.SATURATE, opaque, None, False, d)
    assert (got == PL.stored(composite(Op.OVER_REVERSE, opaque, None, False, d),
                             Format.A8R8G8B8)).all()
    covered = pic(arbitrary(62, 8, 9), (1, 1), Format.R5G6B5)  # repeat NONE, samples cover
    check(Op.SATURATE, covered, None, False, d)
    check(Op.SATURATE, pic(s, (1, 1), Format.X8R8G8B8), None, False, d)  # not covered
    check(Op.SATURATE, opaque, pic(arbitrary(63), fmt=Format.A8), False, d)


def test_unified_hsl_modes_scale_green_twice_and_blue_never(pixman: None) -> None:
    """MAKE_NON_SEPARABLE_PDF_COMBINERS multiplies sc.g by the mask twice and leaves sc.b."""
    s = np.full((1, 1, 4), 200, np.uint8)
    d = np.array([[[20, 40, 60, 128]]], np.uint8)
    m = np.zeros((1, 1, 4), np.uint8)  # mask alpha 0: only blue of the source survives
    got = check(Op.HSL_COLOR, pic(s), pic(m), False, d)
    plain = composite(Op.HSL_COLOR, pic(s), None, False, d)
    assert got.tolist() != d.tolist() and got.tolist() != plain.tolist()


def test_a_transformed_source_is_not_fetched_where_the_mask_is_zero(pixman: None) -> None:
    """The affine fetcher gets the mask scanline and skips zero mask pixels; the HSL modes
    then see the previous row's source pixel (0 on the first row)."""
    src = arbitrary(64, 4, 4)
    mask = np.full((4, 4, 4), 255, np.uint8)
    mask[0, :2] = 0
    mask[2] = 0
    d = premultiplied(65, 4, 4)
    for op in HSL:
        check(op, pic(src, transform=TRANSFORMS[3], filt=4, repeat=1), pic(mask), False, d)
        check(op, pic(src, repeat=3), pic(mask), False, d)


def test_the_stale_source_carries_across_bands(pixman: None,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """In bands of one row, a row whose mask is zero still sees the row above's source."""
    import ryll.render.composite as composite_mod

    monkeypatch.setattr(composite_mod, "WIDE_BAND_PIXELS", 1)
    src = arbitrary(68, 6, 5)
    mask = np.full((6, 5, 4), 255, np.uint8)
    mask[1:3, 1:4] = 0  # rows 1 and 2: stale from row 0, across two band edges
    mask[5] = 0
    d = premultiplied(69, 6, 5)
    for op in HSL:
        check(op, pic(src, transform=TRANSFORMS[3], filt=4, repeat=1), pic(mask), False, d)
        check(op, pic(src, repeat=3), pic(mask), False, d)


def test_pixman_refuses_boxes_beyond_16_bits(pixman: None) -> None:
    """analyze_extent: an origin whose box leaves int16, or a transform whose box overflows
    16.16, composites nothing."""
    s, d = premultiplied(66), premultiplied(67)
    for src in (pic(s, (32767, 0)), pic(s, (0, -32768)),
                pic(s, transform=(65536 * 30000, 0, 0, 0, 65536, 0))):
        for op in (Op.SRC, Op.CONJOINT_XOR):
            assert (check(op, src, None, False, d) == d).all()


@pytest.mark.parametrize("op", HSL)
@pytest.mark.parametrize("valid", [True, False])
def test_hsl_modes_with_component_alpha_leave_the_destination(op: int, valid: bool) -> None:
    make = premultiplied if valid else arbitrary
    s, m, d = make(41), arbitrary(42), make(43)
    assert (composite(op, pic(s), pic(m), True, d) == d).all()
    if PL.library() is not None:
        check(op, pic(s), pic(m), True, d)


@pytest.mark.parametrize("op", [0x0E, 0x0F, 0x1C, 0x1F, 0x2C, 0x2F])
def test_holes_in_pixmans_operator_table_clear(op: int) -> None:
    s, m, d = premultiplied(44), arbitrary(45), premultiplied(46)
    assert (composite(op, pic(s), None, False, d) == 0).all()
    assert (composite(op, pic(s), pic(m), True, d) == 0).all()


@pytest.mark.parametrize("op", [0x3F, 0x40, 0x80, 0xFF])
def test_ops_past_pixmans_operator_table_are_named(op: int) -> None:
    with pytest.raises(CompositeUnsupported) as exc:
        composite(op, pic(premultiplied(1)), None, False, premultiplied(2))
    assert exc.value.detail == "composite_op_unknown"


@pytest.mark.parametrize("filt", [5, 6, 7])
def test_convolution_filters_are_named(filt: int) -> None:
    with pytest.raises(CompositeUnsupported, match="composite_filter_"):
        fetch(Picture(premultiplied(1), (65536, 0, 0, 0, 65536, 0), filt, 0, (0, 0)), 2, 2)
    with pytest.raises(CompositeUnsupported, match="composite_filter_"):
        composite(Op.OVER, Picture(premultiplied(1), None, filt, 0, (0, 0)), None, False,
                  premultiplied(2))
