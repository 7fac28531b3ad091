"""render.composite against a scalar model of pixman (tests/render/pixman_ref.py: the packed
32-bit macros of pixman-combine32.h and the general fetchers of pixman-bits-image.c), pixel by
pixel: every op (DISJOINT_* and CONJOINT_* included), with and without a mask, unified and
component alpha, on random and edge values, the two filters with transforms and every repeat
mode."""

from __future__ import annotations

import numpy as np
import pytest

from ryll.render.composite import CompositeUnsupported, Op, Picture, composite, fetch
from tests.render import pixman_ref as P

RNG = np.random.default_rng(5)
H, W = 6, 7
PORTER_DUFF = ["clear", "src", "dst", "over", "over_reverse", "in", "in_reverse", "out",
               "out_reverse", "atop", "atop_reverse", "xor", "add", "saturate"]
SEPARABLE = ["multiply", "screen", "overlay", "darken", "lighten", "color_dodge", "color_burn",
             "hard_light", "soft_light", "difference", "exclusion"]
HSL = ["hsl_hue", "hsl_saturation", "hsl_color", "hsl_luminosity"]
JOINT = [f"{kind}_{base}" for kind in ("disjoint", "conjoint") for base in PORTER_DUFF[:12]]


def premultiplied(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """Random BGRA with colour <= alpha (valid premultiplied), some fully opaque/clear."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w), dtype=np.int64)
    a[0, :2] = (0, 255)
    c = (rng.integers(0, 256, (h, w, 3)) * a[..., None]) // 255
    return np.concatenate([c, a[..., None]], axis=2).astype(np.uint8)


def arbitrary(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """Any bytes: colour may exceed alpha (pixman does not check; carries must match)."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)


def pic(px: np.ndarray, origin: tuple[int, int] = (0, 0)) -> Picture:
    return Picture(px, None, 3, 0, origin)


def reference(fn, got: np.ndarray, *images: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    h, w = got.shape[:2]
    rows = [P.words(i) for i in images]
    want = [[fn(*(r[y][x] for r in rows)) for x in range(w)] for y in range(h)]
    got_w = P.words(got)
    bad = [(y, x) for y in range(h) for x in range(w) if got_w[y][x] != want[y][x]]
    assert not bad, f"{len(bad)} differ, first {bad[0]}: {got_w[bad[0][0]][bad[0][1]]:#010x} " \
        f"!= {want[bad[0][0]][bad[0][1]]:#010x}"


@pytest.mark.parametrize("name", PORTER_DUFF)
@pytest.mark.parametrize("valid", [True, False])
def test_porter_duff_unified(name: str, valid: bool) -> None:
    make = premultiplied if valid else arbitrary
    s, d = make(1), make(2)
    got = composite(Op[name.upper()], pic(s), None, False, d)
    reference(lambda s_, d_: P.unified(name, s_, None, d_), got, s, d)


@pytest.mark.parametrize("name", PORTER_DUFF)
def test_porter_duff_with_a_mask(name: str) -> None:
    s, m, d = premultiplied(3), premultiplied(4), premultiplied(5)
    got = composite(Op[name.upper()], pic(s), pic(m), False, d)
    reference(lambda s_, m_, d_: P.unified(name, s_, m_, d_), got, s, m, d)


@pytest.mark.parametrize("name", PORTER_DUFF)
def test_porter_duff_component_alpha(name: str) -> None:
    s, m, d = premultiplied(6), arbitrary(7), premultiplied(8)
    m[0, 0] = 0
    m[0, 1] = 255
    got = composite(Op[name.upper()], pic(s), pic(m), True, d)
    if name == "dst":
        assert (got == d).all()
        return
    reference(lambda s_, m_, d_: P.component(name, s_, m_, d_), got, s, m, d)


@pytest.mark.parametrize("name", SEPARABLE)
@pytest.mark.parametrize("valid", [True, False])
def test_separable_blend_modes(name: str, valid: bool) -> None:
    make = premultiplied if valid else arbitrary
    s, d = make(9), make(10)
    got = composite(Op[name.upper()], pic(s), None, False, d)
    reference(lambda s_, d_: P.separable(name, s_, None, d_, False), got, s, d)


@pytest.mark.parametrize("name", SEPARABLE)
def test_separable_blend_modes_masked_and_component_alpha(name: str) -> None:
    s, m, d = premultiplied(11), premultiplied(12), premultiplied(13)
    got = composite(Op[name.upper()], pic(s), pic(m), False, d)
    reference(lambda s_, m_, d_: P.separable(name, s_, m_, d_, False), got, s, m, d)
    got = composite(Op[name.upper()], pic(s), pic(m), True, d)
    reference(lambda s_, m_, d_: P.separable(name, s_, m_, d_, True), got, s, m, d)


@pytest.mark.parametrize("name", HSL)
def test_hsl_blend_modes(name: str) -> None:
    s, m, d = premultiplied(14), premultiplied(15), premultiplied(16)
    got = composite(Op[name.upper()], pic(s), None, False, d)
    reference(lambda s_, d_: P.hsl(name, s_, None, d_), got, s, d)
    got = composite(Op[name.upper()], pic(s), pic(m), False, d)
    reference(lambda s_, m_, d_: P.hsl(name, s_, m_, d_), got, s, m, d)


def test_over_of_an_opaque_source_is_a_copy_and_clear_is_zero() -> None:
    s, d = premultiplied(17), premultiplied(18)
    s[..., 3] = 255
    assert (composite(Op.OVER, pic(s), None, False, d) == s).all()
    assert (composite(Op.CLEAR, pic(s), None, False, d) == 0).all()


# --- DISJOINT_* / CONJOINT_*, SATURATE with component alpha, edge values ------------------

ALPHAS = [0, 1, 2, 127, 128, 129, 253, 254, 255]


def edges(valid: bool, flip: bool = False) -> np.ndarray:
    """(9, 9) BGRA: alpha ALPHAS[y] (ALPHAS[x] when flipped), colours 0, alpha, alpha / 2 when
    valid, else 0, 255 and alpha (colour above alpha)."""
    a = np.array(ALPHAS, np.int64)
    a = np.broadcast_to(a[None, :] if flip else a[:, None], (len(a), len(a)))
    other = a // 2 if valid else np.full_like(a, 255)
    chans = [np.zeros_like(a), a, other, a] if not flip else [a, other, np.zeros_like(a), a]
    return np.stack(chans, axis=2).astype(np.uint8)


def edge_mask(seed: int) -> np.ndarray:
    """(9, 9) masks whose channels are drawn from 0, 1, 128, 254, 255 (whole words 0 and ~0
    included)."""
    m = np.random.default_rng(seed).choice(np.array([0, 1, 128, 254, 255], np.uint8), (9, 9, 4))
    m[0, 0], m[0, 1], m[1, 0] = 0, 255, (255, 0, 128, 1)
    return m


@pytest.mark.parametrize("name", JOINT)
@pytest.mark.parametrize("valid", [True, False])
def test_joint_ops_unified(name: str, valid: bool) -> None:
    make = premultiplied if valid else arbitrary
    s, d = make(30), make(31)
    s[1, 0] = 0  # combine_disjoint_over_u skips a zero source word
    got = composite(Op[name.upper()], pic(s), None, False, d)
    reference(lambda s_, d_: P.joint(name, s_, None, d_), got, s, d)


@pytest.mark.parametrize("name", JOINT)
def test_joint_ops_with_a_mask(name: str) -> None:
    s, m, d = premultiplied(32), premultiplied(33), premultiplied(34)
    got = composite(Op[name.upper()], pic(s), pic(m), False, d)
    reference(lambda s_, m_, d_: P.joint(name, s_, m_, d_), got, s, m, d)


@pytest.mark.parametrize("name", JOINT)
@pytest.mark.parametrize("valid", [True, False])
def test_joint_ops_component_alpha(name: str, valid: bool) -> None:
    make = premultiplied if valid else arbitrary
    s, m, d = make(35), arbitrary(36), make(37)
    m[0, 0], m[0, 1] = 0, 255
    got = composite(Op[name.upper()], pic(s), pic(m), True, d)
    reference(lambda s_, m_, d_: P.joint(name, s_, m_, d_, True), got, s, m, d)


@pytest.mark.parametrize("name", [*JOINT, "saturate"])
@pytest.mark.parametrize("valid", [True, False])
def test_joint_ops_and_saturate_on_edge_values(name: str, valid: bool) -> None:
    """Every pair of source / dest alphas from 0, 1, 2, 127..129, 253..255 (the DIV_UN8
    branches and their boundaries), colours 0 / 255 / alpha; unified, masked and CA."""
    s, d = edges(valid), edges(valid, flip=True)
    m = edge_mask(38)
    op = Op[name.upper()]

    def model(s_: int, m_: int | None, d_: int, ca: bool = False) -> int:
        if name == "saturate":
            return P.component(name, s_, m_, d_) if ca and m_ is not None else \
                P.unified(name, s_, m_, d_)
        return P.joint(name, s_, m_, d_, ca)

    reference(lambda s_, d_: model(s_, None, d_), composite(op, pic(s), None, False, d), s, d)
    reference(lambda s_, m_, d_: model(s_, m_, d_), composite(op, pic(s), pic(m), False, d),
              s, m, d)
    reference(lambda s_, m_, d_: model(s_, m_, d_, True),
              composite(op, pic(s), pic(m), True, d), s, m, d)


@pytest.mark.parametrize("base", PORTER_DUFF[:12])
def test_joint_ops_are_the_plain_ones_when_alphas_are_0_or_255(base: str) -> None:
    """Disjoint, conjoint and plain coverage agree when every pixel is fully covered or
    empty: a check on the factors that does not go through pixman_ref."""
    s, d = premultiplied(39), premultiplied(40)
    for img in (s, d):
        img[img[..., 3] < 128] = 0
        img[..., 3] = np.where(img[..., 3] > 0, 255, 0)
    want = composite(Op[base.upper()], pic(s), None, False, d)
    for kind in ("DISJOINT", "CONJOINT"):
        assert (composite(Op[f"{kind}_{base.upper()}"], pic(s), None, False, d) == want).all()


def test_saturate_component_alpha_scales_by_a_truncated_quotient() -> None:
    """combine_saturate_ca: where m > 255 - da the colour is s * ((255 - da) << 8) / m, not
    DIV_UN8: s = 200, m = 255 (alpha 255), da = 100 -> 200 * (155 * 256 // 255) / 255."""
    s = np.array([[[200, 200, 200, 255]]], np.uint8)
    m = np.array([[[255, 100, 0, 255]]], np.uint8)
    d = np.array([[[0, 0, 0, 100]]], np.uint8)
    got = composite(Op.SATURATE, pic(s), pic(m), True, d)[0, 0]
    f = (155 << 8) // 255
    assert got.tolist() == [(200 * f + 127) // 255, (200 * 100 + 127) // 255,
                            0, 100 + (255 * f + 127) // 255]


@pytest.mark.parametrize("name", HSL)
@pytest.mark.parametrize("valid", [True, False])
def test_hsl_modes_with_component_alpha_leave_the_destination(name: str, valid: bool) -> None:
    make = premultiplied if valid else arbitrary
    s, m, d = make(41), arbitrary(42), make(43)
    got = composite(Op[name.upper()], pic(s), pic(m), True, d)
    reference(lambda s_, m_, d_: P.hsl(name, s_, m_, d_, True), got, s, m, d)
    assert (got == d).all()


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


# --- sampling ---------------------------------------------------------------------------

TRANSFORMS = [
    (65536, 0, 0, 0, 65536, 0),  # identity as a matrix: sampled at centres
    (2 * 65536, 0, 0, 0, 2 * 65536, 0),  # downscale by 2
    (32768, 0, 3 * 65536 + 12345, 0, 32768, -65536),  # upscale by 2, fractional shift
    (43690, 0, 0, 0, 52429, 7000),  # non-integer factors
    (0, 65536, 0, 65536, 0, 0),  # transpose (rotate + flip)
    (46341, -46341, 65536 * 3, 46341, 46341, -65536),  # 45 degrees
    (-65536, 0, 5 * 65536, 0, 65536, 0),  # mirror
]


@pytest.mark.parametrize("t", TRANSFORMS)
@pytest.mark.parametrize("filt", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("rep", [0, 1, 2, 3])
def test_fetch_matches_pixman_general_path(t: tuple[int, ...], filt: int, rep: int) -> None:
    src = arbitrary(20, 5, 4)
    origin = (-2, 1)
    got = fetch(Picture(src, t, filt, rep, origin), H, W)
    img = P.words(src)
    got_w = got.astype(np.uint8).view("<u4")[..., 0].astype(np.int64).tolist()
    for y in range(H):
        for x in range(W):
            want = P.sample(img, t, filt, rep, x + origin[0], y + origin[1])
            assert got_w[y][x] == want, (y, x, hex(got_w[y][x]), hex(want))


@pytest.mark.parametrize("rep", [0, 1, 2, 3])
def test_untransformed_fetch_uses_integer_pixels_and_the_repeat(rep: int) -> None:
    src = arbitrary(21, 3, 2)
    got = fetch(Picture(src, None, 4, rep, (-3, -2)), H, W)
    img = P.words(src)
    got_w = got.astype(np.uint8).view("<u4")[..., 0].astype(np.int64).tolist()
    for y in range(H):
        for x in range(W):
            assert got_w[y][x] == P.pixel(img, x - 3, y - 2, rep)


def test_none_repeat_outside_is_transparent_even_for_opaque_images() -> None:
    src = np.full((2, 2, 4), 200, np.uint8)
    src[..., 3] = 255
    got = fetch(Picture(src, None, 3, 0, (1, 1)), 2, 2)
    assert (got[0, 0] == src[1, 1]).all() and (got[1, 1] == 0).all()


def test_composite_with_transformed_masked_source() -> None:
    s, m, d = premultiplied(22, 4, 5), premultiplied(23, 3, 3), premultiplied(24)
    ts = (32768, 0, 0, 0, 32768, 0)
    tm = (65536, 0, 0, 0, 65536, 0)
    got = composite(Op.OVER, Picture(s, ts, 4, 1, (1, 0)), Picture(m, tm, 3, 2, (0, -1)),
                    False, d)
    simg, mimg, dimg = P.words(s), P.words(m), P.words(d)
    got_w = P.words(got)
    for y in range(H):
        for x in range(W):
            sv = P.sample(simg, ts, 4, 1, x + 1, y)
            mv = P.sample(mimg, tm, 3, 2, x, y - 1)
            assert got_w[y][x] == P.unified("over", sv, mv, dimg[y][x])
