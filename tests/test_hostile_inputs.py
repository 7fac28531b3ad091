"""Issue 10's reproducers, each a few bytes to a few hundred KB a hostile server can send: every
one is a named gap or a clean RyllError, never an escaping exception, and none allocates more
than a small bound before it is refused (measured with tracemalloc, which numpy reports to).

A handler that raises something unexpected is contained to its message: the gap
``<channel>:internal:<message>`` and a logged traceback, and the channel carries on."""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import simplejpeg
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ryll.channels.base import handled
from ryll.channels.context import ChannelContext
from ryll.channels.display import DisplayChannel
from ryll.codecs import lz as L
from ryll.errors import DecodeError, ProtocolError, RyllError
from ryll.protocol.constants import BitmapFmt, DisplayServer, ImageType, Ropd, SurfaceFmt
from ryll.protocol.framing import MessageWriter
from ryll.protocol.link import encrypt_ticket
from ryll.video.mjpeg import decode_mjpeg_frame
from tests.render import builders as B

WRITER = MessageWriter(True)
MIB = 1 << 20
# A 768-bit RSA public key (cryptography no longer generates keys that small; a server may
# still send one). Only the modulus' size matters to the ticket.
SMALL_KEY = rsa.RSAPublicNumbers(65537, (1 << 767) | 12345677).public_key().public_bytes(
    Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


@contextmanager
def peak_below(limit: int) -> Iterator[None]:
    """The block's peak traced allocation is under ``limit`` bytes."""
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < limit, f"peak {peak / MIB:.1f} MiB"


def display(width: int = 64, height: int = 64) -> tuple[DisplayChannel, ChannelContext]:
    ctx = ChannelContext()
    ch = DisplayChannel(0, ctx)
    ch.receive_data(WRITER.build(DisplayServer.SURFACE_CREATE,
                                 B.surface_create(0, width, height, SurfaceFmt.FMT_32_xRGB)))
    return ch, ctx


def send(ch: DisplayChannel, opcode: int, body: bytes) -> None:
    ch.receive_data(WRITER.build(opcode, body))


def raw_bitmap(fmt: int, width: int, height: int, stride: int, data: bytes) -> B.Image:
    """A BITMAP SpiceImage with the given header fields, whatever they claim."""
    class Raw(B.Image):
        def encode(self, at: int) -> bytes:
            head = struct.pack("<QBBII", 0, ImageType.BITMAP, 0, width, height)
            return head + struct.pack("<BBIIII", fmt, 1, width, height, stride, 0) + data

    return Raw()


# --- escaping exceptions -----------------------------------------------------------------


def test_rop3_with_an_empty_source_rect_is_a_gap() -> None:
    ch, ctx = display()
    src = B.Image(pixels=np.zeros((4, 4, 4), np.uint8))
    for src_rect in ((0, 0, 0, 4), (0, 0, 4, 0)):
        send(ch, DisplayServer.DRAW_ROP3, B.draw_rop3((0, 0, 32, 32), src, src_rect, 0xCA,
                                                      color=0x123456))
    assert ctx.gaps.counts() == {"display:malformed:rop3_src_size": 2}


def test_a_24_bit_bitmap_with_stride_0_is_refused_before_allocating() -> None:
    ch, ctx = display()
    image = raw_bitmap(BitmapFmt.FMT_24BIT, 60000, 60000, 0, b"\0" * 16)
    with peak_below(4 * MIB):
        send(ch, DisplayServer.DRAW_COPY, B.draw_copy((0, 0, 64, 64), image, (0, 0, 64, 64),
                                                      Ropd.OP_PUT))
    assert list(ctx.gaps.counts()) == ["display:decode_failure:bitmap:too_large"]


def test_a_small_24_bit_bitmap_with_stride_0_is_refused_before_allocating() -> None:
    ch, ctx = display()
    image = raw_bitmap(BitmapFmt.FMT_24BIT, 4000, 4000, 0, b"\0" * 16)
    with peak_below(4 * MIB):
        send(ch, DisplayServer.DRAW_COPY, B.draw_copy((0, 0, 64, 64), image, (0, 0, 64, 64),
                                                      Ropd.OP_PUT))
    [key] = ctx.gaps.counts()
    assert key.startswith("display:decode_failure:bitmap:")


def test_an_indexed_bitmap_over_the_pixel_cap_is_refused_before_expanding() -> None:
    ch, ctx = display()
    rows = 9000
    image = raw_bitmap(BitmapFmt.FMT_1BIT_BE, 8192 * 8, rows, 8192, b"\xAA" * (8192 * rows))
    message = WRITER.build(DisplayServer.DRAW_COPY, B.draw_copy(
        (0, 0, 64, 64), image, (0, 0, 64, 64), Ropd.OP_PUT))  # 72 MiB of 1-bit rows
    # The read buffer and the message's body (one copy), and no expansion (2.2 GiB of BGRA).
    with peak_below(2 * len(message) + 8 * MIB):
        ch.receive_data(message)
    assert list(ctx.gaps.counts()) == ["display:decode_failure:bitmap:too_large"]


@pytest.mark.parametrize(("key_der", "password", "what"), [
    # A SubjectPublicKeyInfo of an algorithm no library knows (OID 1.2.3.4).
    (bytes.fromhex("300f300506032a0304030600ff00ff00ff"), "", "unreadable"),
    (SMALL_KEY, "x" * 54, "cannot carry"),
])
def test_a_hostile_ticket_key_is_a_protocol_error(key_der: bytes, password: str,
                                                  what: str) -> None:
    with pytest.raises(ProtocolError, match=what):
        encrypt_ticket(key_der, password)


def test_a_768_bit_key_still_carries_a_short_password() -> None:
    assert len(encrypt_ticket(SMALL_KEY, "x" * 53)) == 96


# --- unbounded memory, refused before the allocation ------------------------------------


def test_a_rop3_box_far_larger_than_the_surface_costs_only_the_surface() -> None:
    ch, ctx = display(64, 64)
    src = B.Image(pixels=np.full((8, 8, 4), 200, np.uint8))
    with peak_below(8 * MIB):  # the box is 16000x16000: 1 GB of pixels if it were scaled whole
        send(ch, DisplayServer.DRAW_ROP3, B.draw_rop3((0, 0, 16000, 16000), src, (0, 0, 8, 8),
                                                      0xCC))
    assert ctx.gaps.counts() == {}
    assert (ch.surfaces[0].pixels[..., :3] == 200).all()


def test_an_lz_palette_image_with_rows_over_the_cap_is_refused() -> None:
    head = struct.pack(">IIIIIII", L.LZ_MAGIC, L.LZ_VERSION, L.PLT1_LE, 1, 40_000_000, 1, 1)
    with peak_below(4 * MIB), pytest.raises(DecodeError) as info:
        L.decode_lz(head + b"\0" * 64, palette=np.array([0, 0xFFFFFF], np.uint32))
    assert info.value.reason == "too_large"


def _jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(simplejpeg.encode_jpeg(np.zeros((8, 8, 3), np.uint8), 80))
    sof = data.index(b"\xff\xc0")  # SOF0: length u16, precision u8, height u16, width u16
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_a_huge_jpeg_header_is_refused_before_decoding() -> None:
    with peak_below(4 * MIB), pytest.raises(DecodeError) as info:
        decode_mjpeg_frame(_jpeg_claiming(16384, 16384))
    assert info.value.reason == "size"


# --- whatever else goes wrong in a handler ----------------------------------------------


def test_an_unexpected_exception_in_a_handler_is_an_internal_gap(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(ch: DisplayChannel, body: bytes) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setitem(DisplayChannel.routes, DisplayServer.MARK, handled(None, broken))
    ch, ctx = display()
    send(ch, DisplayServer.MARK, b"")
    assert ctx.gaps.counts() == {"display:internal:mark": 1}
    gap = ctx.gaps.get("display:internal:mark")
    assert gap is not None and "RuntimeError: a bug" in gap.detail
    assert "internal error handling mark" in caplog.text and "Traceback" in caplog.text
    ch.receive_data(WRITER.build(4, struct.pack("<IQ", 1, 2)))  # PING: still answered
    assert ch.stats.pings == 1


def test_a_ryll_error_from_a_handler_is_a_named_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    def refusing(ch: DisplayChannel, body: bytes) -> None:
        raise DecodeError("nope", "corrupt")

    monkeypatch.setitem(DisplayChannel.routes, DisplayServer.MARK, handled(None, refusing))
    ch, ctx = display()
    send(ch, DisplayServer.MARK, b"")
    assert ctx.gaps.counts() == {"display:error:mark": 1}


REPRODUCERS: list[tuple[str, Callable[[], object]]] = [
    ("jpeg", lambda: decode_mjpeg_frame(_jpeg_claiming(16384, 16384))),
    ("lz", lambda: L.decode_lz(struct.pack(">IIIIIII", L.LZ_MAGIC, L.LZ_VERSION, L.PLT1_LE, 1,
                                           40_000_000, 1, 1), np.array([0, 1], np.uint32))),
]


@pytest.mark.parametrize(("name", "call"), REPRODUCERS, ids=[n for n, _ in REPRODUCERS])
def test_decoders_raise_only_ryll_errors(name: str, call: Callable[[], object]) -> None:
    with pytest.raises(RyllError):
        call()


# --- unbounded work ------------------------------------------------------------------------


def _stroke_body(polylines: int, side: int, clip: list[tuple[int, int, int, int]] | None = None,
                 styled: bool = True, width: int | None = None,
                 fore: int = Ropd.OP_XOR) -> bytes:
    """DRAW_STROKE of ``polylines`` three-point polylines across the whole side x side (or
    width x side) surface, dashed, with an XOR fore mode (the merged-span path of lines.c)."""
    from ryll.protocol.constants import LineFlags, PathFlags

    width = side if width is None else width
    b = B.Body()
    B.base(b, (0, 0, side, width), clip)
    path = struct.pack("<I", polylines)
    pts = [(0, 0), (width * 16 - 16, side * 16 - 16), (0, side * 16 - 16)]
    for _ in range(polylines):
        path += struct.pack("<BI", PathFlags.BEGIN | PathFlags.END, len(pts))
        path += b"".join(struct.pack("<ii", *p) for p in pts)
    b.pointer(path)
    if styled:
        b.pack("BB", LineFlags.STYLED, 2)
        b.pointer(struct.pack("<2i", 6 << 4, 3 << 4))
    else:
        b.pack("B", 0)
    B.brush(b, 0x00FFFFFF)
    b.pack("HH", fore, Ropd.OP_PUT)
    return b.build()


def test_a_dashed_xor_stroke_of_many_polylines_is_bounded() -> None:
    """2000 polylines on 4096x4096 took 47.6 s (the merged-span flush scanned the whole
    raster per polyline); the flush now scans what the spans touched, charged to the
    stroke's step budget, so the message ends in well under a second as a named gap."""
    import time

    ch, ctx = display(3072, 3072)  # its box fits render.work's budget: the path does not
    body = _stroke_body(2000, 3072)
    started = time.monotonic()
    send(ch, DisplayServer.DRAW_STROKE, body)
    assert time.monotonic() - started < 3.0
    assert ctx.gaps.counts() == {"display:unimpl:draw_stroke_too_complex": 1}


def test_a_few_dashed_xor_polylines_still_draw() -> None:
    ch, ctx = display(256, 256)
    send(ch, DisplayServer.DRAW_STROKE, _stroke_body(3, 256))
    assert ctx.gaps.counts() == {}
    assert ch.surfaces[0].pixels[..., :3].any()


def test_thousands_of_clip_rects_cost_one_pass() -> None:
    """20,000 overlapping clip rects took 7.5 s a draw (one mask pass per rect)."""
    import time

    ch, ctx = display(2048, 2048)
    clip = [(i % 7, i % 5, 2048 - i % 3, 2048 - i % 11) for i in range(20_000)]
    started = time.monotonic()
    send(ch, DisplayServer.DRAW_FILL, B.draw_fill((0, 0, 2048, 2048), Ropd.OP_PUT, 0x123456,
                                                  clip=clip))
    assert time.monotonic() - started < 2.0
    assert ctx.gaps.counts() == {}
    # The union: rows 0..2048 - 0 (i % 3 == 0 reaches the bottom), and so on; every rect
    # covers [6, 2038) x [4, 2037), none covers the top-left pixel with i % 7 and i % 5
    # both non-zero... pixel (0, 0) is covered by i = 0 (top 0, left 0).
    px = ch.surfaces[0].pixels
    assert (px[6:2038, 4:2037, :3] == (0x56, 0x34, 0x12)).all()
    want = np.zeros((2048, 2048), bool)
    for t, lf, b, r in set(clip):
        want[t:b, lf:r] = True
    assert np.array_equal((px[..., :3] != 0).any(axis=2), want)


def test_a_large_wide_path_composite_works_in_bands() -> None:
    """SATURATE at 2048x2048 (pixman's float path) took 716 MB; in bands its working memory is
    the output plus about 64 MiB."""
    from ryll.render.composite import Op, Picture, composite

    rng = np.random.default_rng(3)
    src = rng.integers(0, 256, (2048, 2048, 4), dtype=np.uint8)
    dest = rng.integers(0, 256, (2048, 2048, 4), dtype=np.uint8)
    with peak_below(16 * MIB + 100 * MIB):
        out = composite(Op.SATURATE, Picture(src, None, 3, 0, (0, 0)), None, False, dest)
    assert out.shape == (2048, 2048, 4)
