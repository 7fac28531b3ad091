"""The compiled pixel kernels (render/_pixels.pyx) and the word-level canvas helpers built on
them, against straightforward byte-wise numpy references (the implementations they replaced):
1-pixel regions, masks with holes, regions at the surface's edges, one broadcast pixel,
opaque (xRGB) and alpha (ARGB) surfaces."""

from __future__ import annotations

import numpy as np
import pytest

from ryll.render import _pixels, raster
from ryll.render.raster import Region
from ryll.render.rop import rop3

RNG = np.random.default_rng(20261123)
H, W = 9, 13


def px(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 4), dtype=np.uint8)


def premultiplied(h: int, w: int) -> np.ndarray:
    p = px(h, w)
    p[..., :3] = np.minimum(p[..., :3], p[..., 3:4])
    return p


def ref_commit(pixels: np.ndarray, region: Region, values: np.ndarray, opaque: bool) -> None:
    view = region.view(pixels)
    if region.mask is None:
        view[...] = values
    elif values.ndim == 1:
        view[region.mask] = values
    else:
        view[region.mask] = values[region.mask]
    if opaque:
        if region.mask is None:
            view[..., 3] = 255
        else:
            view[..., 3][region.mask] = 255


def ref_mul(x: np.ndarray, a: np.ndarray | int) -> np.ndarray:
    t = x * a + 0x80
    return (t + (t >> 8)) >> 8


def ref_over(dest: np.ndarray, src: np.ndarray, alpha: int | np.ndarray) -> np.ndarray:
    s = src.astype(np.uint32)
    if isinstance(alpha, np.ndarray):
        s = ref_mul(s, alpha.astype(np.uint32)[..., None])
    elif alpha != 0xFF:
        s = ref_mul(s, alpha)
    d = dest.astype(np.uint32)
    s = np.broadcast_to(s, d.shape)
    return np.minimum(ref_mul(d, 255 - s[..., 3:4]) + s, 255).astype(np.uint8)


def ref_tile(region: Region, pattern: np.ndarray, pos_x: int, pos_y: int) -> np.ndarray:
    ph, pw = pattern.shape[:2]
    rows = (np.arange(region.top, region.bottom) - pos_y) % ph
    cols = (np.arange(region.left, region.right) - pos_x) % pw
    return pattern[rows[:, None], cols[None, :]]


def holey(h: int, w: int) -> np.ndarray:
    """A mask with a hole in the middle and a ragged border (every extents row and column
    keeps a pixel)."""
    m = RNG.random((h, w)) < 0.6
    m[0, :] = m[:, 0] = True
    if h > 2 and w > 2:
        m[h // 2, w // 2] = False
    return m


REGIONS = {
    "whole": Region(0, 0, H, W),
    "one_pixel": Region(4, 5, 5, 6),
    "top_left_pixel": Region(0, 0, 1, 1),
    "bottom_right_pixel": Region(H - 1, W - 1, H, W),
    "right_edge_strip": Region(2, W - 3, H, W),
    "bottom_edge_row": Region(H - 1, 0, H, W),
    "one_pixel_masked": Region(3, 3, 4, 4, np.ones((1, 1), bool)),
    "mask_with_holes": Region(1, 2, H, W, holey(H - 1, W - 2)),
    "edge_mask": Region(H - 4, W - 5, H, W, holey(4, 5)),
}


@pytest.mark.parametrize("name", sorted(REGIONS))
@pytest.mark.parametrize("opaque", [True, False], ids=["xRGB", "ARGB"])
@pytest.mark.parametrize("solid", [True, False], ids=["one_pixel_value", "full_values"])
def test_commit_matches_the_byte_wise_reference(name: str, opaque: bool, solid: bool) -> None:
    region = REGIONS[name]
    base = px(H, W)
    base[..., 3] = RNG.integers(0, 256, (H, W), dtype=np.uint8)  # x bytes not all 0xFF
    values = (np.array([0x11, 0x22, 0x33, 0x44], np.uint8) if solid
              else px(region.height, region.width))
    got, want = base.copy(), base.copy()
    raster.commit(got, region, values, opaque)
    ref_commit(want, region, values, opaque)
    assert (got == want).all()


def test_commit_writes_nothing_outside_the_mask() -> None:
    region = REGIONS["mask_with_holes"]
    base = px(H, W)
    got = base.copy()
    raster.commit(got, region, px(region.height, region.width), True)
    changed_ok = np.zeros((H, W), bool)
    changed_ok[region.top : region.bottom, region.left : region.right] = region.mask
    assert (got[~changed_ok] == base[~changed_ok]).all()
    assert (got[changed_ok][:, 3] == 255).all()


def test_commit_from_an_overlapping_view_of_the_same_surface() -> None:
    base = px(H, W)
    got, want = base.copy(), base.copy()
    region = Region(1, 1, H, W)
    raster.commit(got, region, got[: H - 1, : W - 1], False)
    ref_commit(want, region, want[: H - 1, : W - 1].copy(), False)
    assert (got == want).all()


@pytest.mark.parametrize("name", sorted(REGIONS))
@pytest.mark.parametrize("pos", [(0, 0), (3, 5), (-7, 11), (100, -3)])
@pytest.mark.parametrize("size", [(1, 1), (8, 8), (3, 5)])
def test_tile_matches_the_fancy_index(name: str, pos: tuple[int, int],
                                      size: tuple[int, int]) -> None:
    region = REGIONS[name]
    pattern = px(*size)
    got = raster.tile(region, pattern, *pos)
    assert got.shape == (region.height, region.width, 4)
    assert (got == ref_tile(region, pattern, *pos)).all()


def test_words_of_unaligned_or_strided_pixels_copy() -> None:
    raw = RNG.integers(0, 256, 4 * 6 + 1, dtype=np.uint8)
    odd = raw[1:].reshape(2, 3, 4)  # starts one byte into its buffer
    w = raster.words(odd)
    assert w.shape == (2, 3)
    assert (raster.word_bytes(w) == odd).all()
    rev = px(2, 3)[..., ::-1]  # bytes of each pixel in reverse order
    assert (raster.word_bytes(raster.words(rev)) == rev).all()
    one = np.array([1, 2, 3, 4], np.uint8)
    assert int(raster.words(one)) == 0x04030201


def test_words_of_aligned_pixels_are_views_even_bottom_up() -> None:
    pixels = px(5, 7)
    for view in (pixels, pixels[::-1], pixels[1:4, 2:6], pixels[:, ::2]):
        w = raster.words(view)
        assert np.shares_memory(w, pixels)
        assert (raster.word_bytes(w) == view).all()


@pytest.mark.parametrize("shape", [(1, 1), (H, W), (1, W), (H, 1)])
def test_rop3_kernel_against_the_truth_table_per_word(shape: tuple[int, int]) -> None:
    s, p, d = (RNG.integers(0, 2**32, shape, dtype=np.uint32) for _ in range(3))
    s.flat[0], p.flat[0], d.flat[0] = 0xF0CCAA00, 0x0F3355FF, 0x00FF9601
    bits = np.arange(32, dtype=np.uint32)
    sb, pb, db = ((a[..., None] >> bits) & 1 for a in (s, p, d))
    for code in range(256):
        want = (((code >> ((pb << 2) | (sb << 1) | db)) & 1) << bits).sum(axis=-1)
        assert (_pixels.rop3(code, s, p, d) == want).all(), hex(code)


def test_rop3_broadcasts_a_solid_pattern_and_a_strided_dest() -> None:
    surface = px(H, W)
    region = REGIONS["right_edge_strip"]
    dst = region.view(surface)  # rows strided by the surface's width
    s = px(region.height, region.width)
    color = np.array([0x12, 0x34, 0x56, 0x78], np.uint8)
    full = np.broadcast_to(color, dst.shape).copy()
    for code in (0x00, 0x5A, 0x96, 0xB8, 0xCA, 0xE2, 0xFF):
        assert (rop3(code, s, color, dst) == rop3(code, s, full, dst.copy())).all()


@pytest.mark.parametrize("alpha", [0, 1, 127, 128, 200, 254, 255])
@pytest.mark.parametrize("shape", [(1, 1), (H, W)])
def test_over_solid_alpha_matches_the_reference(alpha: int, shape: tuple[int, int]) -> None:
    dest, src = px(*shape), premultiplied(*shape)
    assert (raster.over(dest, src, alpha) == ref_over(dest, src, alpha)).all()


def test_over_saturates_non_premultiplied_sources() -> None:
    dest, src = px(H, W), px(H, W)  # colour above alpha: sums past 255 clamp
    dest[0, 0], src[0, 0] = (255, 255, 255, 255), (255, 255, 255, 1)
    assert (raster.over(dest, src, 255) == ref_over(dest, src, 255)).all()
    assert (raster.over(dest, src, 255)[0, 0] == 255).all()


def test_over_an_a8_mask_with_holes_and_one_broadcast_pixel() -> None:
    dest = px(H, W)
    mask = RNG.integers(0, 256, (H, W), dtype=np.uint8)
    mask[2:5, 3:7] = 0  # a hole: dest stays
    mask[0] = 255
    for src in (premultiplied(H, W), np.array([10, 20, 30, 255], np.uint8)):
        got = raster.over(dest, src, mask)
        assert (got == ref_over(dest, src, mask)).all()
        assert (got[2:5, 3:7] == dest[2:5, 3:7]).all()


def test_colorkey_keeps_dest_where_the_rgb_matches_whatever_the_high_byte() -> None:
    dest, src = px(H, W), px(H, W)
    key = 0xAB102030
    src[::2, ::3, :3] = (0x30, 0x20, 0x10)
    keep = (src[..., 0] == 0x30) & (src[..., 1] == 0x20) & (src[..., 2] == 0x10)
    got = raster.colorkey(dest, src, key)
    assert (got == np.where(keep[..., None], dest, src)).all()
    one = raster.colorkey(dest[:1, :1], src[:1, :1], key)
    assert (one == dest[:1, :1]).all()


def test_kernels_reject_mismatched_shapes() -> None:
    a = np.zeros((2, 3), np.uint32)
    b = np.zeros((3, 2), np.uint32)
    with pytest.raises(ValueError):
        _pixels.rop3(0x96, b, a, a)
    with pytest.raises(ValueError):
        _pixels.rop3(0x96, a, b, a)
    with pytest.raises(ValueError):
        _pixels.over(a, b, 128)
    with pytest.raises(ValueError):
        _pixels.over(a, a, 128, np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError):
        _pixels.over(a, a, 256)
    with pytest.raises(ValueError):
        _pixels.colorkey(a, b, 0)


def test_sample_nearest_outside_the_source_is_transparent_black() -> None:
    src = px(4, 5)
    ys = np.array([-1, 0, 3, 4])
    xs = np.array([-2, 0, 4, 5, 1])
    got = raster._gather(src, ys, xs)
    want = src[ys.clip(0, 3)[:, None], xs.clip(0, 4)[None, :]].copy()
    want[~(((ys >= 0) & (ys < 4))[:, None] & ((xs >= 0) & (xs < 5))[None, :])] = 0
    assert (got == want).all()


def test_words_refuses_what_is_not_bgra_bytes() -> None:
    with pytest.raises(TypeError):
        raster.words(np.zeros((2, 3, 4), np.int32))
    with pytest.raises(TypeError):
        raster.words(np.zeros((2, 3, 3), np.uint8))


def test_commit_refuses_a_surface_it_cannot_write_as_words() -> None:
    raw = np.zeros(4 * H * W + 1, np.uint8)
    surface = raw[1:].reshape(H, W, 4)
    with pytest.raises(ValueError):
        raster.commit(surface, Region(0, 0, 1, 1), np.zeros(4, np.uint8), True)


def ref_bilinear(src: np.ndarray, vys: np.ndarray, vxs: np.ndarray) -> np.ndarray:
    """pixman's narrow bilinear fetch, per tap and per channel, taps off the source 0."""
    sh, sw = src.shape
    ys, xs = vys - 0x8000, vxs - 0x8000
    wy, wx = ((ys >> 9) & 0x7F) << 1, ((xs >> 9) & 0x7F) << 1
    iy, ix = ys >> 16, xs >> 16
    chans = src[..., None].view(np.uint8).reshape(sh, sw, 4).astype(np.int64)

    def tap(dy: int, dx: int) -> np.ndarray:
        yy, xx = (iy + dy)[:, None], (ix + dx)[None, :]
        inside = (yy >= 0) & (yy < sh) & (xx >= 0) & (xx < sw)
        got = chans[yy.clip(0, sh - 1), xx.clip(0, sw - 1)]
        return np.where(inside[..., None], got, 0)

    wy_, wx_ = wy[:, None, None], wx[None, :, None]
    acc = (tap(0, 0) * (256 - wx_) * (256 - wy_) + tap(0, 1) * wx_ * (256 - wy_)
           + tap(1, 0) * (256 - wx_) * wy_ + tap(1, 1) * wx_ * wy_) >> 16
    return acc.astype(np.uint8).view("<u4")[..., 0]


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (13, 17)])
def test_bilinear_matches_the_per_tap_reference_on_and_off_the_source(
        shape: tuple[int, int]) -> None:
    """Positions inside, on the edges, one pixel out and far out (both ways), at every
    weight: the kernel's padded, two-pass, two-channels-a-word sum is exactly the per-tap one."""
    rng = np.random.default_rng(sum(shape))
    src = rng.integers(0, 2**32, shape, dtype=np.uint64).astype(np.uint32)
    h, w = shape

    def positions(side: int) -> np.ndarray:
        near = rng.integers(-3 * 65536, (side + 3) * 65536, 40)
        far = np.array([-(1 << 40), -(1 << 20), (side + 50) << 16, 1 << 40])
        return np.concatenate([near, far]).astype(np.int64)

    vys, vxs = positions(h), positions(w)
    assert np.array_equal(_pixels.bilinear(src, vys, vxs), ref_bilinear(src, vys, vxs))
    strided = np.ascontiguousarray(np.repeat(src, 2, axis=1))[:, ::2]
    assert np.array_equal(_pixels.bilinear(strided, vys, vxs), ref_bilinear(src, vys, vxs))


@pytest.mark.parametrize("alpha", [False, True])
def test_to_rgb_is_the_reversed_channels_of_any_view(alpha: bool) -> None:
    rng = np.random.default_rng(7)
    surface = rng.integers(0, 256, (37, 53, 4), np.uint8)
    for view in (surface, surface[3:30, 5:41], surface[::2, ::3], surface[:0]):
        got = _pixels.to_rgb(view, alpha)
        want = view[..., [2, 1, 0, 3]] if alpha else view[..., 2::-1]
        assert got.flags.c_contiguous and got.dtype == np.uint8
        assert np.array_equal(got, want)
        # For a browser's ImageData: four bytes always, opaque where the surface has no alpha.
        page = _pixels.to_rgb(view, alpha, True)
        opaque = np.concatenate([view[..., 2::-1], np.full(view.shape[:2] + (1,), 255,
                                                            np.uint8)], axis=2)
        assert np.array_equal(page, want if alpha else opaque)
    with pytest.raises(ValueError, match="expected 4"):
        _pixels.to_rgb(surface[..., :3], False)
