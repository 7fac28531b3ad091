"""GLZ / ZLIB_GLZ decoding and the shared dictionary: captured spice-server sessions (the
animate scene, ~400 small images that refer to earlier ones; the oracle is QMP screendump) and
hand-made images for cross-image references, eviction and hostile input."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from tests.fixtures.lz import captures

from ryll.codecs import _lz_enc
from ryll.codecs import lz as L
from ryll.codecs.glz import GlzDictionary, GlzMissingReference, decode_glz, decode_zlib_glz
from ryll.errors import DecodeError

RNG = np.random.default_rng(11)
WINDOW = 16 * 1024 * 1024 // 4  # pixels: the glz_window ryll announces by default (12..64 MiB)


def _replay(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, GlzDictionary]:
    draws, screen = captures.load(name)
    dictionary = GlzDictionary(WINDOW)

    def decode(d: captures.Draw) -> np.ndarray | None:
        if d.type == 101:
            return L.decode_lz(d.payload).pixels
        if d.type == 102:
            return decode_glz(d.payload, dictionary).pixels
        if d.type == 107:
            return decode_zlib_glz(d.payload, d.glz_size, dictionary).pixels
        return None

    canvas, ours = captures.replay(draws, screen, decode)
    return canvas, ours, screen, dictionary


@pytest.mark.parametrize("name", ["glz", "zlib_glz"])
def test_captured_session_matches_screendump(name: str) -> None:
    canvas, ours, screen, dictionary = _replay(name)
    assert ours.mean() > 0.99
    assert np.array_equal(canvas[ours], screen[ours])
    assert len(dictionary) > 100
    assert dictionary.total_pixels <= dictionary.cap_pixels


def test_captured_images_use_cross_image_references() -> None:
    draws, _ = captures.load("glz")
    glz = [d for d in draws if d.type == 102]
    crossing = 0
    for d in glz[1:50]:
        try:
            decode_glz(d.payload, GlzDictionary(WINDOW))
        except GlzMissingReference as exc:
            crossing += 1
            assert exc.reason == "missing_ref" and not exc.evicted
            assert exc.image_id < struct.unpack_from(">Q", d.payload, 25)[0]
    assert crossing > 10


def _cross_ref_image(image_id: int, dist: int, npix: int, width: int, height: int,
                     ofs: int = 0) -> bytes:
    """A GLZ RGB32 image that is one match: ``npix`` pixels of image ``image_id - dist`` from
    pixel ``ofs`` (decode-glz-tmpl.c: long pixel offset form, image distance in 1 byte)."""
    head = struct.pack(">IIBIIIQI", L.LZ_MAGIC, L.LZ_VERSION, L.RGB32 | 16, width, height,
                       width * 4, image_id, dist)
    length = npix  # RGB32: no bias
    ext = b""
    if length >= 7:
        r = length - 7
        ext = b"\xff" * (r // 255) + bytes([r % 255])
        ctrl = (7 << 5) | 0x10 | (ofs & 15)
    else:
        ctrl = (length << 5) | 0x10 | (ofs & 15)
    return head + bytes([ctrl]) + ext + bytes([(ofs >> 4) & 255, (1 << 6) | ((ofs >> 12) & 31),
                                               dist])


def _img(h: int, w: int) -> np.ndarray:
    img = RNG.integers(0, 256, (h, w, 4), dtype=np.uint8)
    img[..., 3] = 255
    return img


def test_cross_image_reference_resolves() -> None:
    d = GlzDictionary(WINDOW)
    a = _img(8, 10)
    decode_glz(_lz_enc.encode_glz(L.RGB32, a, 100), d)
    got = decode_glz(_cross_ref_image(101, 1, 40, 10, 4, ofs=20), d)
    assert np.array_equal(got.pixels, a[2:6])
    assert d.has(100) and d.has(101) and 101 in d


def test_rgba_dictionary_image_keeps_alpha_255_in_rgb_image() -> None:
    d = GlzDictionary(WINDOW)
    a = _img(4, 4)
    a[..., 3] = 7
    first = decode_glz(_lz_enc.encode_glz(L.RGBA, a, 1), d)
    assert np.array_equal(first.pixels, a)
    got = decode_glz(_cross_ref_image(2, 1, 16, 4, 4), d).pixels
    assert np.array_equal(got[..., :3], a[..., :3]) and (got[..., 3] == 255).all()


def test_reference_to_a_future_image_fails_until_it_arrives() -> None:
    d = GlzDictionary(WINDOW)
    b = _cross_ref_image(6, 1, 16, 4, 4)
    with pytest.raises(GlzMissingReference) as ei:
        decode_glz(b, d)
    assert (ei.value.image_id, ei.value.evicted, ei.value.reason) == (5, False, "missing_ref")
    assert not d.has(5) and not d.has(6)  # a failed decode leaves the dictionary as it was
    a = _img(4, 4)
    decode_glz(_lz_enc.encode_glz(L.RGB32, a, 5), d)
    assert d.has(5)
    assert np.array_equal(decode_glz(b, d).pixels, a)


def test_reference_to_evicted_image() -> None:
    d = GlzDictionary(window_pixels=100)  # cap: 2 windows = 200 pixels
    for i in range(5):
        decode_glz(_lz_enc.encode_glz(L.RGB32, _img(8, 8), i, win_head_dist=i), d)
        assert d.total_pixels <= d.cap_pixels
    assert not d.has(0) and d.has(4)
    with pytest.raises(GlzMissingReference) as ei:
        decode_glz(_cross_ref_image(5, 5, 16, 4, 4), d)
    assert ei.value.evicted and ei.value.image_id == 0 and ei.value.reason == "missing_ref"


def test_win_head_dist_releases_like_spice_gtk() -> None:
    d = GlzDictionary(WINDOW)
    for i in range(10):
        decode_glz(_lz_enc.encode_glz(L.RGB32, _img(2, 2), i, win_head_dist=min(i, 3)), d)
    assert d.ids() == [6, 7, 8, 9]
    # an image older than the gap-free tail does not release anything newer
    d2 = GlzDictionary(WINDOW)
    decode_glz(_lz_enc.encode_glz(L.RGB32, _img(2, 2), 0), d2)
    decode_glz(_lz_enc.encode_glz(L.RGB32, _img(2, 2), 2, win_head_dist=0), d2)  # 1 is late
    assert d2.ids() == [0, 2]
    decode_glz(_lz_enc.encode_glz(L.RGB32, _img(2, 2), 1, win_head_dist=1), d2)
    assert d2.ids() == [2]  # tail is now 2: its head is 2


def test_byte_cap() -> None:
    d = GlzDictionary(window_pixels=1 << 30, max_bytes=64 * 4 * 3)
    for i in range(10):
        decode_glz(_lz_enc.encode_glz(L.RGB32, _img(8, 8), i, win_head_dist=i), d)
        assert d.total_pixels * 4 <= 64 * 4 * 3
    assert len(d) == 3


def test_out_and_readonly_view() -> None:
    d = GlzDictionary(WINDOW)
    a = _img(6, 7)
    res = decode_glz(_lz_enc.encode_glz(L.RGB32, a, 1), d)
    assert not res.pixels.flags.writeable
    buf = np.empty(1000, np.uint8)
    res2 = decode_glz(_lz_enc.encode_glz(L.RGB32, a[::-1], 2, top_down=False), d, out=buf)
    assert np.shares_memory(res2.pixels, buf) and np.array_equal(res2.pixels, a)


def test_types_roundtrip() -> None:
    d = GlzDictionary(WINDOW)
    img = _img(5, 9)
    assert np.array_equal(decode_glz(_lz_enc.encode_glz(L.RGB24, img, 1), d).pixels, img)
    v = RNG.integers(0, 1 << 15, (5, 9)).astype(np.uint16)
    got = decode_glz(_lz_enc.encode_glz(L.RGB16, v, 2), d).pixels
    want = L.decode_lz(_lz_enc.encode_lz(L.RGB16, v)).pixels
    assert np.array_equal(got, want)


def test_bad_headers_and_sizes() -> None:
    d = GlzDictionary(WINDOW)
    good = _lz_enc.encode_glz(L.RGB32, _img(4, 4), 1)
    for bad in (b"", good[:20], b"XXXX" + good[4:], good[:4] + b"\0\0\0\2" + good[8:],
                good[:8] + bytes([L.PLT8]) + good[9:]):
        with pytest.raises(DecodeError):
            decode_glz(bad, d)
    huge = struct.pack(">IIBIIIQI", L.LZ_MAGIC, L.LZ_VERSION, L.RGB32, 1 << 20, 1 << 20,
                       4 << 20, 1, 0)
    with pytest.raises(DecodeError) as ei:
        decode_glz(huge, d)
    assert ei.value.reason == "too_large"


def test_truncated_and_flipped() -> None:
    d = GlzDictionary(WINDOW)
    decode_glz(_lz_enc.encode_glz(L.RGB32, _img(8, 8), 1), d)
    draws, _ = captures.load("glz")
    data = _lz_enc.encode_glz(L.RGBA, _img(10, 12), 2)
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            decode_glz(data[:cut], d)
    samples = [data] + [x.payload for x in draws if x.type == 102][5:15]
    for sample in samples:
        for _ in range(150):
            bad = bytearray(sample)
            pos = int(RNG.integers(33, len(bad)))
            bad[pos] ^= 1 << int(RNG.integers(0, 8))
            try:
                decode_glz(bytes(bad), d)
            except DecodeError:
                pass
    assert d.total_pixels <= d.cap_pixels


def test_zlib_glz_checks() -> None:
    d = GlzDictionary(WINDOW)
    glz = _lz_enc.encode_glz(L.RGB32, _img(4, 4), 1)
    z = zlib.compress(glz)
    assert decode_zlib_glz(z, len(glz), d).pixels.shape == (4, 4, 4)
    with pytest.raises(DecodeError):
        decode_zlib_glz(z, len(glz) - 1, d)  # inflates past glz_data_size
    with pytest.raises(DecodeError):
        decode_zlib_glz(z[:-6], len(glz), d)
    with pytest.raises(DecodeError):
        decode_zlib_glz(b"not zlib", 100, d)
    with pytest.raises(DecodeError) as ei:
        decode_zlib_glz(z, 1 << 40, d)
    assert ei.value.reason == "too_large"


def test_sorted_arrays_grow_in_place_without_changing_a_held_snapshot() -> None:
    # The decoder reads the arrays _refs() returned while add() runs for the next image:
    # appends go past their end and evictions move their start, so the snapshot stays as
    # it was, and the live arrays stay sorted through growth, eviction and a late image.
    d = GlzDictionary(window_pixels=1 << 20)
    pix = [np.full(4, i, np.uint32) for i in range(100)]
    for i in range(0, 40, 2):
        d.add(i, pix[i], False, 1000)
    ids, ptrs, sizes, alphas, keep = d._refs()
    before = (ids.copy(), ptrs.copy(), sizes.copy(), list(keep))
    for i in range(40, 100, 2):  # several growths of the buffers
        d.add(i, pix[i], i % 4 == 0, 1000)
    d.add(41, pix[41], False, 1000)  # out of order: new arrays
    assert (ids == before[0]).all() and (ptrs == before[1]).all()
    assert (sizes == before[2]).all() and keep[: len(before[3])] == before[3]
    expected = sorted([*range(0, 100, 2), 41])
    assert d.ids() == expected and len(d) == len(expected)
    ids, ptrs, sizes, alphas, keep = d._refs()
    assert [int(p) for p in ptrs] == [d._images[i].pixels.ctypes.data for i in expected]
    assert [int(a) for a in alphas] == [int(d._images[i].alpha) for i in expected]
    assert all(k is d._images[i].pixels for k, i in zip(keep, expected, strict=True))
    # With no gap, the server's win_head_dist releases the oldest: the start moves.
    d = GlzDictionary(window_pixels=1 << 20)
    for i in range(50):
        d.add(i, pix[i], False, 1000)
    held = d._refs()[0]
    d.add(50, np.zeros(4, np.uint32), False, 10)
    assert d.ids() == list(range(40, 51)) and list(held) == list(range(50))
    assert d.total_pixels == 4 * 11 and d.is_evicted(39) and not d.is_evicted(40)
