"""The compiled kernels of render.composite (render._composite: fetch, fetch_float, combine;
render._pixels.over's dst_or) against the system pixman (tests/render/pixman_lib.py), called
directly on pixel words: every 8-bit combiner on edge values, rows wide enough for the
vectorised loops, the fetchers under every repeat mode and filter, and their argument
checks."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from ryll.render._pixels import over

from ryll.render import _composite as ck
from ryll.render.composite import Format, Op, Picture
from tests.render import pixman_lib as PL

# the ops combine() computes (unified OVER is render._pixels.over)
NARROW = [Op.CLEAR, Op.SRC, Op.DST, Op.OVER, Op.OVER_REVERSE, Op.IN, Op.IN_REVERSE, Op.OUT,
          Op.OUT_REVERSE, Op.ATOP, Op.ATOP_REVERSE, Op.XOR, Op.ADD, Op.MULTIPLY, Op.SCREEN,
          Op.OVERLAY, Op.DARKEN, Op.LIGHTEN, Op.HARD_LIGHT, Op.DIFFERENCE, Op.EXCLUSION]
EDGE = np.array([0, 1, 2, 127, 128, 129, 253, 254, 255], np.uint8)
TRANSFORMS = [
    (2 * 65536, 0, 0, 0, 2 * 65536, 0),
    (32768, 0, 3 * 65536 + 12345, 0, 32768, -65536),
    (43690, 0, 0, 0, 52429, 7000),
    (0, 65536, 0, 65536, 0, 0),
    (46341, -46341, 65536 * 3, 46341, 46341, -65536),
    (-65536, 0, 5 * 65536, 0, 65536, 0),
]


@pytest.fixture
def pixman() -> Iterator[None]:
    PL.require()
    yield


def words(px: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(px, np.uint8).view(np.uint32)[..., 0]


def as_bytes(w: np.ndarray) -> np.ndarray:
    return w[..., None].view(np.uint8)


def edge_pixels(seed: int, h: int, w: int, premultiplied: bool) -> np.ndarray:
    """(h, w, 4) BGRA drawn from the edge values (colour <= alpha when premultiplied)."""
    rng = np.random.default_rng(seed)
    px = rng.choice(EDGE, (h, w, 4))
    if premultiplied:
        px[..., :3] = np.minimum(px[..., :3], px[..., 3:4])
    return px


def pixman_result(op: int, s: np.ndarray, m: np.ndarray | None, ca: bool, d: np.ndarray
                  ) -> np.ndarray:
    def p(px: np.ndarray) -> Picture:
        return Picture(px, None, 3, 0, (0, 0), Format.A8R8G8B8)

    return PL.composite_pictures(op, p(s), None if m is None else p(m), ca, d)


@pytest.mark.parametrize("op", NARROW, ids=lambda op: op.name.lower())
@pytest.mark.parametrize("mode", ["none", "mask", "ca"])
def test_combine_matches_pixman(pixman: None, op: Op, mode: str) -> None:
    h, w = 9, 37  # odd widths: the vectorised loops' tails
    for premultiplied in (True, False):
        s = edge_pixels(1, h, w, premultiplied)
        m = edge_pixels(2, h, w, premultiplied) if mode != "none" else None
        d = edge_pixels(3, h, w, premultiplied)
        want = pixman_result(op, s, m, mode == "ca", d)
        if op == Op.OVER and mode != "ca":
            got = over(words(d), words(s), 255,
                       None if m is None else np.ascontiguousarray(m[..., 3]))
        else:
            got = ck.combine(int(op), words(s), None if m is None else words(m), mode == "ca",
                             words(d))
        assert got.dtype == np.uint32 and got.flags.c_contiguous
        assert (as_bytes(got) == want).all(), (op.name, mode, premultiplied)


@pytest.mark.parametrize("op", [Op.OVER, Op.MULTIPLY, Op.ATOP])
def test_dst_or_reads_the_dest_with_alpha_255(pixman: None, op: Op) -> None:
    """dst_or 0xFF000000 is an x8r8g8b8 dest: as pixman composites onto one."""
    s, m = edge_pixels(4, 5, 19, True), edge_pixels(5, 5, 19, True)
    d = edge_pixels(6, 5, 19, False)
    opaque = d.copy()
    opaque[..., 3] = 255
    for mode in ("none", "mask", "ca"):
        mm = None if mode == "none" else m
        want = pixman_result(op, s, mm, mode == "ca", opaque)
        if op == Op.OVER and mode != "ca":
            got = over(words(d), words(s), 255,
                       None if mm is None else np.ascontiguousarray(mm[..., 3]), 0xFF000000)
        else:
            got = ck.combine(int(op), words(s), None if mm is None else words(mm),
                             mode == "ca", words(d), 0xFF000000)
        assert (as_bytes(got) == want).all(), (op.name, mode)


def test_combine_takes_strided_rows_and_checks_its_arguments() -> None:
    s, d = words(edge_pixels(7, 6, 10, True)), words(edge_pixels(8, 6, 10, True))
    want = ck.combine(int(Op.ADD), s[1:4, 2:9], None, False, d[1:4, 2:9])
    assert (want == ck.combine(int(Op.ADD), s[1:4, 2:9].copy(), None, False,
                               d[1:4, 2:9].copy())).all()
    assert ck.combine(int(Op.ADD), s[:0], None, False, d[:0]).shape == (0, 10)
    with pytest.raises(ValueError, match="expected"):
        ck.combine(int(Op.ADD), s[:3], None, False, d)
    with pytest.raises(ValueError, match="mask"):
        ck.combine(int(Op.ADD), s, s[:2], False, d)
    with pytest.raises(ValueError, match="component alpha"):
        ck.combine(int(Op.ADD), s, None, True, d)
    with pytest.raises(ValueError, match="contiguous"):
        ck.combine(int(Op.ADD), s[:, ::2], None, False, d[:, ::2])
    for op in (Op.OVER, Op.SATURATE, Op.COLOR_DODGE, Op.HSL_HUE, 0x0E):
        with pytest.raises(ValueError, match="combiner"):
            ck.combine(int(op), s, None, False, d)


def fetched_by_pixman(px: np.ndarray, t: tuple[int, ...] | None, filt: int, repeat: int,
                      origin: tuple[int, int], h: int, w: int, op: int = Op.SRC
                      ) -> np.ndarray:
    """What pixman composites with SRC (or a wide op that is the fetched value on a clear
    dest) from the picture onto an (h, w) dest: its fetched pixels."""
    return PL.composite_pictures(op, Picture(px, t, filt, repeat, origin, Format.A8R8G8B8),
                                 None, False, np.zeros((h, w, 4), np.uint8))


@pytest.mark.parametrize("repeat", [0, 1, 2, 3])
@pytest.mark.parametrize("filt", [3, 4])
def test_fetch_matches_pixman(pixman: None, repeat: int, filt: int) -> None:
    rng = np.random.default_rng(repeat * 10 + filt)
    h, w = 11, 13
    for t in TRANSFORMS:
        for shape in ((5, 4), (1, 1), (1, 7)):
            px = rng.integers(0, 256, (*shape, 4), dtype=np.uint8)
            px[..., :3] = np.minimum(px[..., :3], px[..., 3:4])
            origin = (int(rng.integers(-6, 6)), int(rng.integers(-6, 6)))
            got = ck.fetch(words(px), t, filt == 4, repeat, origin[0], origin[1], h, w)
            want = fetched_by_pixman(px, t, filt, repeat, origin, h, w)
            assert (as_bytes(got) == want).all(), (t, shape, origin)


@pytest.mark.parametrize("repeat", [0, 1, 2, 3])
def test_fetch_float_matches_pixman(pixman: None, repeat: int) -> None:
    """CONJOINT_OVER onto a clear dest stores the fetched float (fb is 0 where da is 0)."""
    rng = np.random.default_rng(40 + repeat)
    h, w = 9, 10
    for t in TRANSFORMS:
        px = rng.integers(0, 256, (4, 5, 4), dtype=np.uint8)
        px[..., :3] = np.minimum(px[..., :3], px[..., 3:4])
        src = px.astype(np.float32) * np.float32(1.0 / 255)
        got = ck.fetch_float(src, t, True, repeat, -2, 1, h, w)
        f = np.where(got > 1, np.float32(1), np.where(got < 0, np.float32(0), got))
        u = (f * np.float32(256)).astype(np.int64)
        stored = (u - (u >> 8)).astype(np.uint8)
        want = fetched_by_pixman(px, t, 4, repeat, (-2, 1), h, w, Op.CONJOINT_OVER)
        assert (stored == want).all(), t


def test_fetch_of_an_empty_image_is_transparent() -> None:
    assert (ck.fetch(np.zeros((0, 3), np.uint32), TRANSFORMS[0], True, 1, 0, 0, 2, 3) == 0).all()
    got = ck.fetch_float(np.zeros((2, 0, 4), np.float32), TRANSFORMS[0], False, 1, 0, 0, 2, 3)
    assert got.shape == (2, 3, 4) and (got == 0).all()
