"""Cursor image decoding, the cursor cache and compositing. Every image is built by this file's
own encoder from spice.proto's layouts; expectations come from a per-pixel reference written
from spice-gtk's ``set_cursor`` rules (loops are fine here, the decoder has none)."""

from __future__ import annotations

import numpy as np
import pytest

from ryll.protocol.constants import CursorType
from ryll.render.cursor import (
    CURSOR_CACHE_ENTRIES,
    MAX_CURSOR_DIM,
    CursorCache,
    CursorDecodeError,
    CursorImage,
    composite,
    cursor_data_size,
    decode_cursor,
)

RNG = np.random.default_rng(5)
DARK = (0x30, 0x30, 0x30, 0xC0)  # spice-gtk's checker for inverted pixels
LIGHT = (0x50, 0x50, 0x50, 0x30)

# --- the encoder (spice.proto / QXL layouts) -------------------------------------------------


def pack_mask(bits: np.ndarray, pad_ones: bool = False) -> bytes:
    """(h, w) bool -> rows of (w + 7) // 8 bytes, MSB first; padding bits 0 (or 1)."""
    h, w = bits.shape
    bpl = (w + 7) // 8
    padded = np.full((h, bpl * 8), pad_ones, bool)
    padded[:, :w] = bits
    return np.packbits(padded, axis=1).tobytes()


def enc_alpha(rgba: np.ndarray) -> bytes:
    return rgba[..., [2, 1, 0, 3]].astype(np.uint8).tobytes()


def enc_mono(and_bits: np.ndarray, xor_bits: np.ndarray, pad_ones: bool = False) -> bytes:
    return pack_mask(and_bits, pad_ones) + pack_mask(xor_bits)


def enc_palette(entries: list[int]) -> bytes:
    return np.array(entries, "<u4").tobytes()


def enc_color4(idx: np.ndarray, palette: list[int], and_bits: np.ndarray) -> bytes:
    h, w = idx.shape
    stride = (w + 1) // 2
    nib = np.zeros((h, stride * 2), np.uint8)
    nib[:, :w] = idx
    packed = (nib[:, 0::2] << 4) | nib[:, 1::2]
    return packed.astype(np.uint8).tobytes() + enc_palette(palette) + pack_mask(and_bits)


def enc_color8(idx: np.ndarray, palette: list[int], and_bits: np.ndarray) -> bytes:
    return idx.astype(np.uint8).tobytes() + enc_palette(palette) + pack_mask(and_bits)


def enc_color16(pix: np.ndarray, and_bits: np.ndarray) -> bytes:
    return pix.astype("<u2").tobytes() + pack_mask(and_bits)


def enc_color24(xrgb: np.ndarray, and_bits: np.ndarray) -> bytes:
    bgr = np.stack([xrgb & 0xFF, (xrgb >> 8) & 0xFF, (xrgb >> 16) & 0xFF], axis=-1)
    return bgr.astype(np.uint8).tobytes() + pack_mask(and_bits)


def enc_color32(xrgb: np.ndarray, and_bits: np.ndarray) -> bytes:
    return xrgb.astype("<u4").tobytes() + pack_mask(and_bits)


# --- the per-pixel reference ---------------------------------------------------------------


def ref_color(
    xrgb: np.ndarray, and_bits: np.ndarray, white: np.ndarray | None = None
) -> np.ndarray:
    h, w = xrgb.shape
    out = np.zeros((h, w, 4), np.uint8)
    for y in range(h):
        for x in range(w):
            c = int(xrgb[y, x]) & 0xFFFFFF
            is_white = bool(white[y, x]) if white is not None else c == 0xFFFFFF
            if and_bits[y, x]:
                if is_white:
                    out[y, x] = DARK if (x ^ y) & 1 else LIGHT
            else:
                out[y, x] = (c >> 16, (c >> 8) & 0xFF, c & 0xFF, 255)
    return out


def bits(h: int, w: int, p: float = 0.3) -> np.ndarray:
    return RNG.random((h, w)) < p


# --- types ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("w", "h"), [(1, 1), (5, 3), (64, 64), (33, 17)])
def test_alpha_is_exact(w: int, h: int) -> None:
    rgba = RNG.integers(0, 256, (h, w, 4), dtype=np.uint8)
    img = decode_cursor(CursorType.ALPHA, w, h, 0, 0, enc_alpha(rgba), unique=7)
    assert np.array_equal(img.rgba, rgba)
    assert (img.width, img.height, img.type, img.unique) == (w, h, CursorType.ALPHA, 7)
    assert img.type_name == "alpha"
    assert not img.rgba.flags.writeable


def test_mono_and_xor_table() -> None:
    # The four AND/XOR combinations, one per column pair, over 8 columns and 2 rows.
    and_bits = np.array([[0, 0, 1, 1, 0, 0, 1, 1]] * 2, bool)
    xor_bits = np.array([[0, 1, 0, 1, 0, 1, 0, 1]] * 2, bool)
    img = decode_cursor(CursorType.MONO, 8, 2, 0, 0, enc_mono(and_bits, xor_bits))
    row = img.rgba[0]
    assert tuple(row[0]) == (0, 0, 0, 255)  # clear -> black
    assert tuple(row[1]) == (255, 255, 255, 255)  # set -> white
    assert tuple(row[2]) == (0, 0, 0, 0)  # unchanged -> transparent
    assert tuple(row[3]) == (255, 255, 255, 255)  # invert -> white
    assert np.array_equal(img.rgba[0], img.rgba[1])


def test_mono_inverted_pixels_get_a_black_edge() -> None:
    """spice-gtk's spice_mono_edge_highlight example: an all-ones AND mask with a 1x2 XOR
    stroke: the stroke is white and its interior 8-neighbours black; borders stay clear."""
    h, w = 6, 5
    and_bits = np.ones((h, w), bool)
    xor_bits = np.zeros((h, w), bool)
    xor_bits[2:4, 2] = True
    img = decode_cursor(CursorType.MONO, w, h, 0, 0, enc_mono(and_bits, xor_bits, pad_ones=True))
    alpha = (img.rgba[..., 3] > 0).astype(int)
    assert alpha.tolist() == [
        [0, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 0],
        [0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0],
    ]
    white = (img.rgba[..., 0] == 255).astype(int)
    assert white[2:4, 2].tolist() == [1, 1] and white.sum() == 2
    # Without an all-ones AND mask (here its padding bits are 0) there is no edge.
    img = decode_cursor(CursorType.MONO, w, h, 0, 0, enc_mono(and_bits, xor_bits))
    assert int((img.rgba[..., 3] > 0).sum()) == 2


def test_mono_random_against_reference() -> None:
    h, w = 13, 11
    and_bits, xor_bits = bits(h, w, 0.5), bits(h, w, 0.5)
    img = decode_cursor(CursorType.MONO, w, h, 0, 0, enc_mono(and_bits, xor_bits))
    for y in range(h):
        for x in range(w):
            a, xo = and_bits[y, x], xor_bits[y, x]
            want = (255,) * 4 if xo else ((0, 0, 0, 0) if a else (0, 0, 0, 255))
            assert tuple(img.rgba[y, x]) == want, (x, y)


@pytest.mark.parametrize("w", [5, 8, 9])
def test_color4_palette_and_mask(w: int) -> None:
    h = 4
    palette = [0x000000, 0xFFFFFF] + [int(v) for v in RNG.integers(0, 1 << 24, 14)]
    palette[2] = 0x12345678  # the top byte is ignored
    idx = RNG.integers(0, 16, (h, w))
    idx[0, :2] = [1, 2]
    and_bits = bits(h, w)
    and_bits[0, 0] = True  # white under AND: inverted
    img = decode_cursor(CursorType.COLOR4, w, h, 1, 1, enc_color4(idx, palette, and_bits))
    xrgb = np.array(palette, np.uint32)[idx]
    assert np.array_equal(img.rgba, ref_color(xrgb, and_bits))
    assert tuple(img.rgba[0, 0]) == LIGHT  # (0 ^ 0) & 1 == 0
    if not and_bits[0, 1]:
        assert tuple(img.rgba[0, 1]) == (0x34, 0x56, 0x78, 255)


def test_color8_palette_and_mask() -> None:
    h, w = 6, 7
    palette = [int(v) for v in RNG.integers(0, 1 << 24, 256)]
    palette[9] = 0xFFFFFF
    idx = RNG.integers(0, 256, (h, w))
    idx[1, 0] = 9
    and_bits = bits(h, w)
    and_bits[1, 0] = True
    img = decode_cursor(CursorType.COLOR8, w, h, 0, 0, enc_color8(idx, palette, and_bits))
    assert np.array_equal(img.rgba, ref_color(np.array(palette, np.uint32)[idx], and_bits))
    assert tuple(img.rgba[1, 0]) == DARK


def test_color16_555() -> None:
    h, w = 3, 8
    pix = RNG.integers(0, 1 << 16, (h, w))
    pix[0, :4] = [0x7C00, 0x03E0, 0x001F, 0x7FFF]
    pix[1, 0] = 0xFFFF  # top bit ignored: still white
    and_bits = np.zeros((h, w), bool)
    and_bits[1, 0] = True
    and_bits[2, :] = bits(1, w)[0]
    img = decode_cursor(CursorType.COLOR16, w, h, 0, 0, enc_color16(pix, and_bits))
    assert [tuple(p) for p in img.rgba[0, :4]] == [
        (0xF8, 0, 0, 255), (0, 0xF8, 0, 255), (0, 0, 0xF8, 255), (0xF8, 0xF8, 0xF8, 255),
    ]
    p32 = pix.astype(np.uint32)
    xrgb = ((p32 & 0x7C00) << 9) | ((p32 & 0x3E0) << 6) | ((p32 & 0x1F) << 3)
    assert np.array_equal(img.rgba, ref_color(xrgb, and_bits, (p32 & 0x7FFF) == 0x7FFF))
    assert tuple(img.rgba[1, 0]) == DARK


def test_color24() -> None:
    h, w = 5, 6
    xrgb = RNG.integers(0, 1 << 24, (h, w)).astype(np.uint32)
    xrgb[0, 0] = 0xFFFFFF
    and_bits = bits(h, w)
    and_bits[0, 0] = True
    img = decode_cursor(CursorType.COLOR24, w, h, 0, 0, enc_color24(xrgb, and_bits))
    assert np.array_equal(img.rgba, ref_color(xrgb, and_bits))


def test_color32_with_and_mask() -> None:
    h, w = 4, 10
    xrgb = RNG.integers(0, 1 << 32, (h, w), dtype=np.uint64).astype(np.uint32)
    xrgb[0, 0] = 0xAAFFFFFF  # white (top byte ignored) under AND: inverted
    xrgb[0, 1] = 0x00000000  # black under AND: transparent
    xrgb[0, 2] = 0xFF102030  # drawn, opaque whatever the top byte says
    and_bits = bits(h, w)
    and_bits[0, :3] = [True, True, False]
    img = decode_cursor(CursorType.COLOR32, w, h, 0, 0, enc_color32(xrgb, and_bits))
    assert np.array_equal(img.rgba, ref_color(xrgb, and_bits))
    assert [tuple(p) for p in img.rgba[0, :3]] == [LIGHT, (0, 0, 0, 0), (0x10, 0x20, 0x30, 255)]


# --- sizes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ctype", list(CursorType))
def test_truncated_and_oversized_data_fail(ctype: CursorType) -> None:
    need = cursor_data_size(ctype, 9, 7)
    with pytest.raises(CursorDecodeError) as short:
        decode_cursor(ctype, 9, 7, 0, 0, bytes(need - 1))
    assert short.value.reason == "truncated"
    with pytest.raises(CursorDecodeError) as long:
        decode_cursor(ctype, 9, 7, 0, 0, bytes(need + 1))
    assert long.value.reason == "size_mismatch"
    assert decode_cursor(ctype, 9, 7, 0, 0, bytes(need)).rgba.shape == (7, 9, 4)


@pytest.mark.parametrize(("w", "h"), [(0, 4), (4, 0), (MAX_CURSOR_DIM + 1, 4), (4, 65535)])
def test_absurd_sizes_fail_before_reading(w: int, h: int) -> None:
    with pytest.raises(CursorDecodeError) as exc:
        decode_cursor(CursorType.ALPHA, w, h, 0, 0, b"")
    assert exc.value.reason == "bad_size"


def test_unknown_type_fails() -> None:
    with pytest.raises(CursorDecodeError) as exc:
        decode_cursor(9, 4, 4, 0, 0, bytes(64))
    assert exc.value.reason == "unknown_type"


def test_data_sizes() -> None:
    assert cursor_data_size(CursorType.ALPHA, 64, 64) == 16384
    assert cursor_data_size(CursorType.MONO, 32, 32) == 256
    assert cursor_data_size(CursorType.COLOR4, 5, 2) == 6 + 64 + 2
    assert cursor_data_size(CursorType.COLOR8, 8, 2) == 16 + 1024 + 2
    assert cursor_data_size(CursorType.COLOR16, 8, 2) == 32 + 2
    assert cursor_data_size(CursorType.COLOR24, 8, 2) == 48 + 2
    assert cursor_data_size(CursorType.COLOR32, 8, 2) == 64 + 2


def test_hotspot_outside_is_capped() -> None:
    img = decode_cursor(CursorType.ALPHA, 4, 3, 100, 2, bytes(48))
    assert (img.hot_x, img.hot_y) == (4, 2)


# --- cache ---------------------------------------------------------------------------------


def img(w: int = 4, h: int = 4, unique: int = 0) -> CursorImage:
    return decode_cursor(CursorType.ALPHA, w, h, 0, 0, bytes(4 * w * h), unique)


def test_cache_lru_by_entries() -> None:
    cache = CursorCache(max_entries=3)
    for i in range(3):
        cache.put(i, img(unique=i))
    assert cache.get(0) is not None  # 0 is now the most recent
    cache.put(3, img())
    assert 1 not in cache and {0, 2, 3} <= {k for k in range(4) if k in cache}
    assert (len(cache), cache.evictions, cache.bytes) == (3, 1, 3 * 64)


def test_cache_bounded_by_bytes() -> None:
    cache = CursorCache(max_bytes=1000)
    cache.put(1, img(8, 8))  # 256 B
    cache.put(2, img(8, 8))
    cache.put(3, img(10, 10))  # 400 B: 912 in all
    cache.put(4, img(8, 8))  # 1168 > 1000: 1 goes
    assert 1 not in cache and len(cache) == 3 and cache.bytes == 912
    cache.put(5, img(16, 16))  # 1024 B: bigger than the whole cache, not kept
    assert 5 not in cache and cache.bytes == 912
    cache.put(2, img(4, 4))  # replacing an entry updates the byte count
    assert cache.bytes == 912 - 256 + 64


def test_cache_remove_and_clear() -> None:
    cache = CursorCache()
    assert cache.max_entries == CURSOR_CACHE_ENTRIES == 256
    cache.put(1, img())
    cache.put(2, img())
    assert cache.remove(1) and not cache.remove(1)
    assert cache.as_dict()["entries"] == 1
    cache.clear()
    assert (len(cache), cache.bytes, cache.get(2)) == (0, 0, None)


# --- compositing ---------------------------------------------------------------------------


def test_composite_alpha_over_at_hotspot() -> None:
    rgba = np.zeros((3, 3, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[1, 1] = (0, 0, 255, 128)  # half blue
    shape = CursorImage(rgba, 1, 1, CursorType.ALPHA)
    frame = np.full((10, 10, 3), 100, np.uint8)
    out = composite(frame, shape, 5, 5)  # top-left at (4, 4)
    assert tuple(out[4, 4]) == (255, 0, 0)
    assert tuple(out[5, 5]) == ((100 * 127 + 127) // 255, (100 * 127 + 127) // 255,
                                (255 * 128 + 100 * 127 + 127) // 255)
    assert tuple(out[6, 6]) == (100, 100, 100)  # transparent pixel
    assert np.array_equal(frame, np.full((10, 10, 3), 100, np.uint8))  # input untouched
    changed = np.argwhere((out != frame).any(axis=2))
    assert sorted(map(tuple, changed)) == [(4, 4), (5, 5)]


def test_composite_clips_and_keeps_rgba_alpha() -> None:
    rgba = np.full((4, 4, 4), 255, np.uint8)
    shape = CursorImage(rgba, 0, 0, CursorType.ALPHA)
    frame = np.zeros((5, 5, 4), np.uint8)
    out = composite(frame, shape, 3, -2)  # partly off the top and the right
    assert out[:2, 3:].min() == 255 and out[2:].max() == 0 and out[:, :3].max() == 0
    assert np.array_equal(composite(frame, shape, 50, 50), frame)  # fully off: unchanged
    assert np.array_equal(composite(frame, shape, -4, 0), frame)
