"""The QUIC decoder (ryll.codecs.quic) against payloads spice-server really sent.

Oracles, strongest first:
1. captured payloads (tests/fixtures/quic/*.npz, see make_fixtures.py there) decode to exactly
   the pixels of QEMU's screendump at the draw's box, for draws no later draw overwrote;
2. every captured payload, re-encoded from its decoded pixels by ryll's encoder, is byte-for-
   byte the payload the server sent (the encoder mirrors quic.c's quic_encode, so this checks
   decoder and encoder against spice-server at once, also for the overwritten draws);
3. round trips through the encoder for the types the server does not send here (GRAY, RGB16,
   RGB24, RGBA) and for shapes the VM does not produce (1 pixel, > 2048 wide...);
4. hostile input: truncations, bit flips, bad headers, absurd sizes raise DecodeError only.
"""

from __future__ import annotations

import struct
import threading
import time
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from ryll.codecs.quic import (
    GRAY,
    QUIC_MAGIC,
    RGB16,
    RGB24,
    RGB32,
    RGBA,
    QuicImage,
    decode_quic,
    encode_quic,
)
from ryll.errors import DecodeError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "quic"
TYPES = (GRAY, RGB16, RGB24, RGB32, RGBA)


@cache
def captured(name: str) -> list[tuple[bytes, np.ndarray, np.ndarray | None]]:
    """[(payload, meta, expected RGB crop of the screendump or None), ...] of one capture;
    meta as in make_fixtures.py."""
    with np.load(FIXTURES / f"{name}.npz") as z:
        draws = []
        n = 0
        while f"payload_{n}" in z:
            expected = z[f"expected_{n}"] if f"expected_{n}" in z else None
            draws.append((z[f"payload_{n}"].tobytes(), z[f"meta_{n}"], expected))
            n += 1
    return draws


def all_payloads() -> list[tuple[str, int]]:
    return [(name, i) for name in ("static", "animate") for i in range(len(captured(name)))]


def expected_pixels(img: np.ndarray, qtype: int) -> np.ndarray:
    """What decode_quic must return for an encode_quic input (see quic.py's docstring)."""
    out = img.copy()
    if qtype == GRAY:
        out[..., 1] = out[..., 0]
        out[..., 2] = out[..., 0]
    elif qtype == RGB16:
        c = img[..., :3] >> 3
        out[..., :3] = (c << 3) | (c >> 2)
    if qtype != RGBA:
        out[..., 3] = 255
    return out


def test_images(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Random pixels with flat runs, repeated rows and a gradient: exercises every path."""
    img = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    img[:, w // 4 : w // 2] = img[:, w // 4 : w // 4 + 1]  # horizontal runs
    if h > 3:
        img[h // 2 : h // 2 + 2] = img[h // 2 - 1]  # rows equal to the row above
    img[: h // 3, w // 2 :, 1] = np.arange(w - w // 2, dtype=np.uint8)  # a gradient
    return img


test_images.__test__ = False  # type: ignore[attr-defined]


# -- captured payloads ----------------------------------------------------------------------


def test_fixtures_are_real_rgb32_payloads() -> None:
    payload, meta, expected = captured("static")[0]
    assert expected is not None and expected.shape == (480, 640, 3)
    assert struct.unpack_from("<5I", payload) == (QUIC_MAGIC, 0, RGB32, 640, 480)
    assert tuple(meta[:2]) == (640, 480)
    assert len(captured("animate")) >= 5


@pytest.mark.parametrize("name", ["static", "animate"])
def test_captured_draws_match_screendump(name: str) -> None:
    checked = 0
    for payload, meta, expected in captured(name):
        width, height, top, left, bottom, right, st, sl, sb, sr, _index, final = meta.tolist()
        img = decode_quic(payload)
        assert (img.width, img.height) == (width, height)
        assert img.pixels.shape == (height, width, 4)
        assert (img.pixels[..., 3] == 255).all()
        if not final:
            continue
        assert expected is not None and expected.shape == (bottom - top, right - left, 3)
        rgb = img.pixels[st:sb, sl:sr, 2::-1]
        np.testing.assert_array_equal(rgb, expected)
        checked += 1
    assert checked >= 1


@pytest.mark.parametrize(("name", "index"), all_payloads())
def test_captured_payload_reencodes_identically(name: str, index: int) -> None:
    payload = captured(name)[index][0]
    img = decode_quic(payload)
    assert encode_quic(img.pixels, img.type) == payload


def test_accepts_bytes_bytearray_memoryview_and_trailing_bytes() -> None:
    payload = captured("animate")[0][0]
    ref = decode_quic(payload).pixels
    for data in (bytearray(payload), memoryview(payload), payload + b"\x01\x02\x03",
                 payload + b"\xff" * 64, np.frombuffer(payload, np.uint8),
                 memoryview(payload).cast("b"),
                 memoryview(payload[: len(payload) // 4 * 4]).cast("I")):
        np.testing.assert_array_equal(decode_quic(data).pixels, ref)


# -- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("qtype", TYPES)
@pytest.mark.parametrize(("h", "w"), [(1, 1), (1, 7), (6, 1), (3, 3), (17, 33), (9, 2100),
                                      (5, 4200)])
def test_round_trip(qtype: int, h: int, w: int) -> None:
    img = test_images(np.random.default_rng(h * 10007 + w), h, w)
    data = encode_quic(img, qtype)
    got = decode_quic(data)
    assert (got.type, got.width, got.height) == (qtype, w, h)
    np.testing.assert_array_equal(got.pixels, expected_pixels(img, qtype))


@pytest.mark.parametrize("qtype", TYPES)
def test_round_trip_flat_image_uses_runs(qtype: int) -> None:
    img = np.zeros((64, 300, 4), np.uint8)
    img[...] = (10, 200, 30, 128)
    data = encode_quic(img, qtype)
    assert len(data) < 64 * 300 // 8  # runs: far below a bit per pixel
    np.testing.assert_array_equal(decode_quic(data).pixels, expected_pixels(img, qtype))


def test_rgb16_expansion_is_canvas_rgb16_to_32() -> None:
    img = np.zeros((1, 32, 4), np.uint8)
    img[0, :, 0] = np.arange(32) << 3
    got = decode_quic(encode_quic(img, RGB16)).pixels
    c = np.arange(32)
    assert got[0, :, 0].tolist() == ((c << 3) | (c >> 2)).tolist()
    assert got[0, 31, 0] == 255 and got[0, 0, 0] == 0


def test_gray_from_2d_array() -> None:
    gray = np.arange(12 * 20, dtype=np.uint8).reshape(12, 20)
    got = decode_quic(encode_quic(gray, GRAY)).pixels
    for c in range(3):
        np.testing.assert_array_equal(got[..., c], gray)
    assert (got[..., 3] == 255).all()


def test_rgb24_and_rgb32_streams_differ_only_in_type() -> None:
    img = test_images(np.random.default_rng(5), 20, 30)
    a, b = encode_quic(img, RGB24), encode_quic(img, RGB32)
    assert a[:8] == b[:8] and a[12:] == b[12:] and a[8:12] != b[8:12]


# -- output buffer --------------------------------------------------------------------------


def test_out_buffer_is_reused() -> None:
    payload = captured("static")[0][0]
    out = np.zeros(640 * 480 * 4 + 100, np.uint8)
    img = decode_quic(payload, out=out)
    assert isinstance(img, QuicImage)
    assert img.pixels.base is out
    assert np.shares_memory(img.pixels, out)
    again = decode_quic(payload, out=out)
    assert again.pixels.base is out
    np.testing.assert_array_equal(again.pixels, decode_quic(payload).pixels)


def test_too_small_out_buffer_allocates_a_new_one() -> None:
    payload = captured("static")[0][0]
    small = np.zeros(16, np.uint8)
    img = decode_quic(payload, out=small)
    assert not np.shares_memory(img.pixels, small)
    assert (small == 0).all()
    fresh = img.pixels.base
    assert fresh.ndim == 1 and fresh.shape[0] == 640 * 480 * 4
    assert decode_quic(payload, out=fresh).pixels.base is fresh  # adopt it for the next frame


@pytest.mark.parametrize(
    "out",
    [
        np.zeros(10**6, np.uint16),
        np.zeros((1000, 1000), np.uint8),
        np.zeros(2 * 10**6, np.uint8)[::2],
    ],
)
def test_bad_out_buffer_is_a_value_error(out: np.ndarray) -> None:
    with pytest.raises(ValueError):
        decode_quic(captured("static")[0][0], out=out)


def test_read_only_out_buffer_is_a_value_error() -> None:
    out = np.zeros(10**6, np.uint8)
    out.flags.writeable = False
    with pytest.raises(ValueError):
        decode_quic(captured("animate")[0][0], out=out)


# -- hostile input --------------------------------------------------------------------------


def header(magic: int = QUIC_MAGIC, version: int = 0, qtype: int = RGB32, width: int = 4,
           height: int = 4) -> bytes:
    return struct.pack("<5I", magic, version, qtype, width, height)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "truncated"),
        (b"QUIC", "truncated"),
        (header()[:19], "truncated"),
        (header(magic=0x43495552) + bytes(64), "bad_magic"),
        (b"LZ  " + header()[4:] + bytes(64), "bad_magic"),
        (header(version=1) + bytes(64), "bad_version"),
        (header(version=0x10000) + bytes(64), "bad_version"),
        (header(qtype=0) + bytes(64), "bad_type"),
        (header(qtype=6) + bytes(64), "bad_type"),
        (header(qtype=0xFFFFFFFF) + bytes(64), "bad_type"),
        (header(width=0) + bytes(64), "bad_size"),
        (header(height=0) + bytes(64), "bad_size"),
        (header(width=0x80000000) + bytes(64), "bad_size"),
        (header(width=0xFFFFFFFF, height=0xFFFFFFFF) + bytes(64), "bad_size"),
        (header(width=100_000, height=100_000) + bytes(64), "too_large"),
        (header(width=8192, height=4097) + bytes(64), "too_large"),
        (header(width=8192, height=4096), "truncated"),  # within the limit, no data
        (header(width=4096, height=4096) + bytes(64), "truncated"),
        (header(width=1, height=1), "truncated"),  # not even the look-ahead word
    ],
)
def test_bad_headers(data: bytes, reason: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(DecodeError) as exc:
        decode_quic(data)
    assert exc.value.reason == reason
    assert time.perf_counter() - t0 < 0.5  # rejected before any big allocation or decode


def test_max_pixels_is_checked() -> None:
    payload = captured("static")[0][0]
    with pytest.raises(DecodeError) as exc:
        decode_quic(payload, max_pixels=640 * 480 - 1)
    assert exc.value.reason == "too_large"
    assert decode_quic(payload, max_pixels=640 * 480).width == 640


def small_payloads() -> list[bytes]:
    draws = sorted((p for p, _m, _e in captured("animate")), key=len)
    rng = np.random.default_rng(7)
    made = [encode_quic(test_images(rng, 13, 40), t) for t in TYPES]
    return [draws[0], draws[len(draws) // 2], *made]


@pytest.mark.parametrize("which", range(7))
def test_every_truncation_is_detected(which: int) -> None:
    payload = small_payloads()[which]
    cuts = range(len(payload)) if len(payload) < 3000 else np.linspace(
        0, len(payload) - 1, 1500).astype(int)
    for cut in cuts:
        with pytest.raises(DecodeError) as exc:
            decode_quic(payload[:cut])
        assert exc.value.reason == "truncated", cut


def test_truncations_of_the_full_screen_payload() -> None:
    payload = captured("static")[0][0]
    for cut in (20, 24, 100, 1000, len(payload) // 2, len(payload) - 8, len(payload) - 4,
                len(payload) - 1):
        with pytest.raises(DecodeError):
            decode_quic(payload[:cut])


@pytest.mark.parametrize("which", range(7))
def test_flipped_bytes_never_crash(which: int) -> None:
    payload = bytearray(small_payloads()[which])
    rng = np.random.default_rng(which)
    out = np.empty(4 * 1024 * 1024, np.uint8)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(300):
        data = bytearray(payload)
        for _k in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(20, len(data)))
            data[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            img = decode_quic(data, out=out)
        except DecodeError as exc:
            assert exc.reason in ("truncated", "corrupt")
            outcomes["error"] += 1
        else:
            assert img.pixels.shape == (img.height, img.width, 4)
            outcomes["ok"] += 1
    assert outcomes["error"] > 0


def test_random_garbage_after_a_valid_header() -> None:
    rng = np.random.default_rng(11)
    for qtype in TYPES:
        for size in (24, 64, 1000, 20000):
            for fill in ("random", "ones", "zeros"):
                body = {"random": rng.integers(0, 256, size, dtype=np.uint8).tobytes(),
                        "ones": b"\xff" * size, "zeros": bytes(size)}[fill]
                data = header(qtype=qtype, width=97, height=31) + body
                try:
                    decode_quic(data)
                except DecodeError as exc:
                    assert exc.reason in ("truncated", "corrupt")


def test_all_ones_stream_is_a_corrupt_run_quickly() -> None:
    # all ones: maximal Golomb codes, then run hits on every row: must fail, not spin
    data = header(width=4000, height=2000) + b"\xff" * 4_000_000
    t0 = time.perf_counter()
    with pytest.raises(DecodeError):
        decode_quic(data)
    assert time.perf_counter() - t0 < 2.0


# -- threading ------------------------------------------------------------------------------


def test_decode_releases_the_gil() -> None:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (1024, 1024, 4), dtype=np.uint8)
    data = encode_quic(img, RGB32)
    t0 = time.perf_counter()
    decode_quic(data)
    one = time.perf_counter() - t0
    done = threading.Event()
    out = np.empty(1024 * 1024 * 4, np.uint8)

    def work() -> None:
        for _ in range(3):
            decode_quic(data, out=out)
        done.set()

    thread = threading.Thread(target=work)
    gaps = []
    last = time.perf_counter()
    thread.start()
    while not done.is_set():
        time.sleep(0.001)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    thread.join()
    # with the GIL held the main thread would stall for a whole decode (tens of ms)
    assert len(gaps) > 3
    assert sorted(gaps)[len(gaps) // 2] < max(one / 2, 0.005)


# -- live server ----------------------------------------------------------------------------


@pytest.mark.e2e
def test_live_static_scene_decodes_to_screendump() -> None:
    import asyncio
    import shutil

    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 not installed")
    from tests.fixtures.quic.make_fixtures import parse_draw_copy, record

    from ryll.testvm import TestVM

    with TestVM(vga="qxl", scene="static", mode="800x600", image_compression="quic") as vm:
        vm.wait_frame(1)
        time.sleep(2.0)
        copies = asyncio.run(record(vm.port, 4.0))
        shot = vm.screendump()
    draws = [d for d in (parse_draw_copy(body) for _op, body in copies) if d is not None]
    assert draws, "the server sent no QUIC image"
    d = draws[-1]
    img = decode_quic(d["payload"])
    top, left, bottom, right = d["box"]
    st, sl, sb, sr = d["src"]
    np.testing.assert_array_equal(img.pixels[st:sb, sl:sr, 2::-1], shot[top:bottom, left:right])
