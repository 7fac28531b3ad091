"""LZ4 image decoding: a captured spice-server session (the oracle is QMP screendump), payloads
made with the ``lz4`` package, and hand-made blocks that refer across block boundaries."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from tests.fixtures.lz import captures

from ryll.codecs import lz4 as Z
from ryll.errors import DecodeError

RNG = np.random.default_rng(5)


def test_captured_session_matches_screendump() -> None:
    draws, screen = captures.load("lz4")
    assert sum(d.type == 109 for d in draws) > 50

    def decode(d: captures.Draw) -> np.ndarray | None:
        return Z.decode_lz4(d.payload, d.width, d.height).pixels if d.type == 109 else None

    canvas, ours = captures.replay(draws, screen, decode)
    assert ours.mean() > 0.5  # the rest came as plain BITMAP images
    assert np.array_equal(canvas[ours], screen[ours])


def test_captured_surface_image() -> None:
    # spice-server writes one block per chunk of lines it gets (lz4_encode's more_lines); these
    # images came in one chunk each, so cross-block references are tested with made blocks.
    draws, _ = captures.load("lz4")
    first = next(d for d in draws if d.type == 109 and d.width * d.height >= 640 * 480)
    img = Z.decode_lz4(first.payload, first.width, first.height)
    assert img.type == Z.FMT_32BIT and img.top_down and (img.pixels[..., 3] == 255).all()


def _literal_block(raw: bytes) -> bytes:
    n = len(raw)
    if n < 15:
        return bytes([n << 4]) + raw
    r = n - 15
    return bytes([0xF0]) + b"\xff" * (r // 255) + bytes([r % 255]) + raw


def _payload(blocks: list[bytes], fmt: int = Z.FMT_32BIT, top_down: bool = True) -> bytes:
    return bytes([int(top_down), fmt]) + b"".join(struct.pack(">I", len(b)) + b for b in blocks)


def test_block_refers_to_previous_block() -> None:
    row = RNG.integers(0, 256, 16, dtype=np.uint8).tobytes()  # one 4-pixel row
    # block 2: no literals, a 16-byte match 16 bytes back (inside block 1), then 0 literals...
    # LZ4 needs a final literal-only sequence: copy 12 bytes, then the last 4 as literals.
    second = bytes([0x08, 16, 0]) + bytes([0x40]) + row[12:]
    img = Z.decode_lz4(_payload([_literal_block(row), second]), 4, 2)
    assert np.array_equal(img.pixels[0, :, :3], img.pixels[1, :, :3])
    assert img.pixels[0].tobytes()[:3] == row[:3]


@pytest.mark.parametrize("fmt", [Z.FMT_16BIT, Z.FMT_24BIT, Z.FMT_32BIT, Z.FMT_RGBA])
@pytest.mark.parametrize("top_down", [True, False])
def test_formats_with_lz4_package(fmt: int, top_down: bool) -> None:
    lz4_block = pytest.importorskip("lz4.block")
    h, w = 9, 13
    bpp = Z.BYTES_PER_PIXEL[fmt]
    raw = RNG.integers(0, 4, (h, w * bpp), dtype=np.uint8) * 60
    stream = raw if top_down else raw[::-1]
    blocks = [lz4_block.compress(stream[i : i + 4].tobytes(), store_size=False)
              for i in range(0, h, 4)]
    got = Z.decode_lz4(_payload(blocks, fmt, top_down), w, h).pixels
    if fmt == Z.FMT_16BIT:
        v = raw.view("<u2").astype(np.uint32)

        def exp(c: np.ndarray) -> np.ndarray:
            return ((c << 3) | (c >> 2)).astype(np.uint8)

        want = np.stack([exp(v & 31), exp((v >> 5) & 31), exp((v >> 10) & 31),
                         np.full(v.shape, 255, np.uint8)], axis=-1)
    elif fmt == Z.FMT_24BIT:
        rgb = raw.reshape(h, w, 3)
        want = np.concatenate([rgb, np.full((h, w, 1), 255, np.uint8)], axis=-1)
    else:
        want = raw.reshape(h, w, 4).copy()
        if fmt == Z.FMT_32BIT:
            want[..., 3] = 255
    assert np.array_equal(got, want)


def test_out_reuse() -> None:
    raw = RNG.integers(0, 256, 4 * 4 * 4, dtype=np.uint8).tobytes()
    buf = np.empty(4 * 4 * 4, np.uint8)
    img = Z.decode_lz4(_payload([_literal_block(raw)]), 4, 4, out=buf)
    assert np.shares_memory(img.pixels, buf)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x01",
        b"\x01\x05",  # a format LZ4 images do not use
        b"\x01\x08",  # no block
        b"\x01\x08\x00\x00\x00",
        b"\x01\x08\x00\x00\x00\x10\x00",  # block longer than the data
        b"\x01\x08\x00\x00\x00\x00",  # empty block
        b"\x01\x08\x00\x00\x00\x01\x00",  # a block that produces nothing
        b"\x01\x08\x00\x00\x00\x04\x10\x00\x00\x00",  # offset 0
        b"\x01\x08\x00\x00\x00\x04\x10\xaa\x05\x00",  # offset past the output
        b"\x01\x08\x00\x00\x00\x03\xf0\xff\xff",  # literal length runs off the end
        _payload([_literal_block(bytes(63))]),  # one byte short
        _payload([_literal_block(bytes(65))]),  # one byte long
        _payload([bytes([0x1F, 1, 1, 0, 255, 255, 255, 255])]),  # match past the image
    ],
)
def test_hostile_payloads(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        Z.decode_lz4(payload, 4, 4)


def test_sizes() -> None:
    with pytest.raises(DecodeError) as ei:
        Z.decode_lz4(b"\x01\x08", 1 << 20, 1 << 20)
    assert ei.value.reason == "too_large"
    with pytest.raises(DecodeError):
        Z.decode_lz4(b"\x01\x08", 0, 4)


def test_truncated_and_flipped_capture() -> None:
    draws, _ = captures.load("lz4")
    small = [d for d in draws if d.type == 109 and d.width * d.height < 5000][:5]
    for d in small:
        for cut in range(0, len(d.payload), max(1, len(d.payload) // 60)):
            with pytest.raises(DecodeError):
                Z.decode_lz4(d.payload[:cut], d.width, d.height)
        for _ in range(100):
            bad = bytearray(d.payload)
            bad[int(RNG.integers(2, len(bad)))] ^= 1 << int(RNG.integers(0, 8))
            try:
                Z.decode_lz4(bytes(bad), d.width, d.height)
            except DecodeError:
                pass
