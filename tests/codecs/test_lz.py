"""LZ decoding: payloads captured from spice-server (the oracle is QMP screendump) and payloads
from our test encoder for the types that server never sends (PLT, A8, RGB16, RGBA, XXXA)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from tests.fixtures.lz import captures

from ryll.codecs import _lz_enc
from ryll.codecs import lz as L
from ryll.errors import DecodeError

RNG = np.random.default_rng(7)


def _bgra(h: int, w: int, levels: int = 4, alpha: bool = False) -> np.ndarray:
    img = (RNG.integers(0, levels, (h, w, 4)) * (255 // (levels - 1))).astype(np.uint8)
    img[: h // 3, : w // 2] = img[0, 0]  # some runs
    if not alpha:
        img[..., 3] = 255
    return img


def test_captured_lz_matches_screendump() -> None:
    draws, screen = captures.load("lz")
    assert any(d.type == 101 for d in draws)
    canvas, ours = captures.replay(draws, screen, lambda d: L.decode_lz(d.payload).pixels)
    assert ours.all()
    assert np.array_equal(canvas, screen)


def test_captured_lz_header_and_alpha() -> None:
    draws, _ = captures.load("lz")
    img = L.decode_lz(draws[0].payload)
    assert (img.type, img.width, img.height, img.top_down) == (L.RGB32, 640, 480, True)
    assert img.pixels.shape == (480, 640, 4) and img.pixels.dtype == np.uint8
    assert (img.pixels[..., 3] == 255).all()


@pytest.mark.parametrize("typ", [L.RGB24, L.RGB32])
@pytest.mark.parametrize("top_down", [True, False])
def test_rgb_roundtrip(typ: int, top_down: bool) -> None:
    img = _bgra(37, 53)
    stream = img if top_down else img[::-1]
    got = L.decode_lz(_lz_enc.encode_lz(typ, stream, top_down))
    assert got.top_down is top_down
    assert np.array_equal(got.pixels, img)


def test_rgba_keeps_alpha() -> None:
    img = _bgra(20, 30, alpha=True)
    assert np.array_equal(L.decode_lz(_lz_enc.encode_lz(L.RGBA, img)).pixels, img)


def test_rgb16_expands_like_spice_common() -> None:
    # lz_rgb16_to_rgb32 (lz_decompress_tmpl.c): each 5-bit channel v becomes v << 3 | v >> 2
    vals = np.array([[0x7FFF, 0x0000, 0x7C00, 0x03E0, 0x001F, 0x0421, 0x8000 | 0x2945]],
                    dtype=np.uint16)
    got = L.decode_lz(_lz_enc.encode_lz(L.RGB16, vals)).pixels[0]

    def exp(v: int) -> int:
        return (v << 3) | (v >> 2)

    for px, v in zip(got, vals[0], strict=True):
        r, g, b = (int(v) >> 10) & 31, (int(v) >> 5) & 31, int(v) & 31
        assert tuple(px) == (exp(b), exp(g), exp(r), 255)


def test_a8() -> None:
    a = RNG.integers(0, 3, (9, 17)).astype(np.uint8) * 100
    got = L.decode_lz(_lz_enc.encode_lz(L.A8, a)).pixels
    assert (got[..., :3] == 0).all() and np.array_equal(got[..., 3], a)


def test_xxxa_alone_and_apply_lz_alpha() -> None:
    img = _bgra(12, 20, alpha=True)
    data = _lz_enc.encode_lz(L.XXXA, img)
    got = L.decode_lz(data).pixels
    assert (got[..., :3] == 0).all() and np.array_equal(got[..., 3], img[..., 3])
    base = _bgra(12, 20)
    L.apply_lz_alpha(data, base)
    assert np.array_equal(base[..., 3], img[..., 3])
    # a bottom-up plane's first row is the image's last
    base2 = _bgra(12, 20)
    colour = base2[..., :3].copy()
    L.apply_lz_alpha(_lz_enc.encode_lz(L.XXXA, img[::-1], top_down=False), base2)
    assert np.array_equal(base2[..., 3], img[..., 3])
    assert np.array_equal(base2[..., :3], colour)


def test_apply_lz_alpha_checks() -> None:
    img = _bgra(4, 4, alpha=True)
    with pytest.raises(DecodeError):
        L.apply_lz_alpha(_lz_enc.encode_lz(L.XXXA, img), np.zeros((4, 5, 4), np.uint8))
    with pytest.raises(DecodeError):
        L.apply_lz_alpha(_lz_enc.encode_lz(L.RGB32, img), np.zeros((4, 4, 4), np.uint8))


def _pack(idx: np.ndarray, bits: int, le: bool) -> np.ndarray:
    """Packs palette indices (H, W) into rows of bytes, bit order as the PLT type says."""
    h, w = idx.shape
    per = 8 // bits
    stride = -(-w // per)
    padded = np.zeros((h, stride * per), np.uint8)
    padded[:, :w] = idx
    out = np.zeros((h, stride), np.uint8)
    for k in range(per):
        shift = bits * k if le else 8 - bits * (k + 1)
        out |= (padded[:, k::per] << shift).astype(np.uint8)
    return out


@pytest.mark.parametrize(
    ("typ", "bits", "le"),
    [(L.PLT1_LE, 1, True), (L.PLT1_BE, 1, False), (L.PLT4_LE, 4, True), (L.PLT4_BE, 4, False),
     (L.PLT8, 8, True)],
)
@pytest.mark.parametrize("width", [16, 21])
def test_palette_types(typ: int, bits: int, le: bool, width: int) -> None:
    n = 1 << bits
    palette = RNG.integers(0, 1 << 24, n).astype(np.uint32) | np.uint32(0xAB000000)
    idx = RNG.integers(0, n, (11, width)).astype(np.uint8)
    idx[:4] = 1
    data = _lz_enc.encode_lz(typ, _pack(idx, bits, le), width=width)
    got = L.decode_lz(data, palette=palette).pixels
    ent = palette[idx]
    want = np.stack([ent & 255, (ent >> 8) & 255, (ent >> 16) & 255, np.full_like(ent, 255)],
                    axis=-1).astype(np.uint8)
    assert np.array_equal(got, want)
    with pytest.raises(DecodeError) as ei:
        L.decode_lz(data)
    assert ei.value.reason == "missing_palette"


def test_plt8_index_past_palette() -> None:
    idx = np.full((2, 8), 9, np.uint8)
    with pytest.raises(DecodeError):
        L.decode_lz(_lz_enc.encode_lz(L.PLT8, idx, width=8), palette=np.arange(4, dtype=np.uint32))


def test_out_reuse() -> None:
    draws, _ = captures.load("lz")
    buf = np.empty(640 * 480 * 4 + 100, np.uint8)
    first = L.decode_lz(draws[0].payload, out=buf)
    assert np.shares_memory(first.pixels, buf)
    again = L.decode_lz(draws[0].payload, out=first.pixels)
    assert np.shares_memory(again.pixels, buf)
    assert np.array_equal(again.pixels, L.decode_lz(draws[0].payload).pixels)
    with pytest.raises(ValueError):
        L.decode_lz(draws[0].payload, out=np.empty(10, np.uint8))


def _header(typ: int = L.RGB32, w: int = 4, h: int = 4, stride: int | None = None,
            magic: int = L.LZ_MAGIC, version: int = L.LZ_VERSION) -> bytes:
    bpp = L.RGB_BYTES_PER_PIXEL.get(typ, 1)
    return struct.pack(">7I", magic, version, typ, w, h, w * bpp if stride is None else stride, 1)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"LZ",
        _header(magic=0x12345678),
        _header(version=2),
        _header(typ=0),
        _header(typ=12),
        _header(stride=15),
        _header(w=0),
        _header(w=1 << 31, stride=4),
        _header(typ=L.PLT8, stride=2),
    ],
)
def test_bad_headers(data: bytes) -> None:
    with pytest.raises(DecodeError):
        L.decode_lz(data, palette=np.zeros(4, np.uint32))


def test_absurd_size_rejected_before_allocating() -> None:
    with pytest.raises(DecodeError) as ei:
        L.decode_lz(_header(w=100000, h=100000) + b"\0" * 16)
    assert ei.value.reason == "too_large"
    with pytest.raises(DecodeError):
        L.decode_lz(_header(w=64, h=64), max_pixels=100)


def test_truncated_everywhere() -> None:
    data = _lz_enc.encode_lz(L.RGBA, _bgra(16, 24, alpha=True))
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            L.decode_lz(data[:cut])
    with pytest.raises(DecodeError):
        L.decode_lz(data + b"\0")  # lz_decode: all the data must be used


@pytest.mark.parametrize("typ", [L.RGB32, L.RGB16, L.A8, L.RGBA])
def test_flipped_bytes_never_crash(typ: int) -> None:
    img = _bgra(24, 24, alpha=True)
    src = {L.RGB16: img[..., 0].astype(np.uint16) * 100, L.A8: img[..., 1]}.get(typ, img)
    data = bytearray(_lz_enc.encode_lz(typ, src))
    for _ in range(400):
        bad = bytearray(data)
        for _ in range(RNG.integers(1, 4)):
            pos = int(RNG.integers(28, len(bad)))
            bad[pos] ^= 1 << int(RNG.integers(0, 8))
        try:
            got = L.decode_lz(bytes(bad))
        except DecodeError:
            continue
        assert got.pixels.shape == (24, 24, 4)


def test_hostile_tokens() -> None:
    head = _header(w=8, h=1)
    # a match before the first pixel
    with pytest.raises(DecodeError):
        L.decode_lz(head + bytes([0x20, 0x00]))
    # a match longer than the image
    with pytest.raises(DecodeError):
        L.decode_lz(head + bytes([0, 1, 2, 3, 0xE0, 200, 0]))
    # an endless length extension ends with the data
    with pytest.raises(DecodeError):
        L.decode_lz(head + bytes([0, 1, 2, 3, 0xE0]) + b"\xff" * 10000)
    # far offset escape
    with pytest.raises(DecodeError):
        L.decode_lz(head + bytes([0, 1, 2, 3, 0x3F, 0xFF, 0xFF, 0xFF]))
