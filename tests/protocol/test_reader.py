"""The bounded reader: every accessor on real message bodies, and every overrun refused."""

from __future__ import annotations

import struct

import pytest
from tests.fixtures.loader import body

from ryll.errors import ProtocolError
from ryll.protocol.constants import (
    ChannelType,
    DisplayServer,
    ImageType,
    MainServer,
)
from ryll.protocol.reader import Reader

# MAIN_INIT from the capture: session_id 0xe38630b0, display_channels_hint 1, mouse modes 1/1,
# agent_connected 0, agent_tokens 10, multi_media_time 0x003c0037, ram_hint 0x02ffe000.
MAIN_INIT = body(ChannelType.MAIN, MainServer.INIT)
# MONITORS_CONFIG (spice.proto: uint16 count, uint16 max_allowed, Head heads[count]).
MONITORS = body(ChannelType.DISPLAY, DisplayServer.MONITORS_CONFIG)
# The first DRAW_COPY: DisplayBase (surface_id u32, Rect box, Clip NONE u8) then Image* at 21.
DRAW_COPY = body(ChannelType.DISPLAY, DisplayServer.DRAW_COPY)
CHANNELS_LIST = body(ChannelType.MAIN, MainServer.CHANNELS_LIST)


def test_fixture_sizes_are_what_the_tests_assume() -> None:
    assert len(MAIN_INIT) == 32
    assert len(MONITORS) == 32
    assert len(CHANNELS_LIST) == 10


def test_unsigned_accessors_on_main_init() -> None:
    r = Reader(MAIN_INIT, what="main init")
    assert r.u8() == 0xB0
    assert r.u8() == 0x30
    assert r.u16() == 0xE386
    assert r.pos == 4
    assert [r.u32() for _ in range(5)] == [1, 1, 1, 0, 10]
    assert r.u64() == 0x02FFE000_003C0037
    assert r.remaining == 0


def test_signed_accessors_see_the_sign_bit() -> None:
    r = Reader(MAIN_INIT)
    assert r.i32() == 0xE38630B0 - (1 << 32)
    r = Reader(MAIN_INIT)
    assert r.i16() == 0x30B0
    assert r.i16() == 0xE386 - (1 << 16)
    r = Reader(MAIN_INIT)
    assert r.i64() == 0x00000001_E38630B0
    # Mutation: the high byte of the first u64 set, so i64 must come out negative.
    mutated = MAIN_INIT[:7] + b"\xff" + MAIN_INIT[8:]
    assert Reader(mutated).i64() == 0xFF000001_E38630B0 - (1 << 64)
    assert Reader(mutated).u64() == 0xFF000001_E38630B0


def test_u64_matches_struct_on_every_offset() -> None:
    for pos in range(0, len(MAIN_INIT) - 7):
        r = Reader(MAIN_INIT, pos=pos)
        assert r.u64() == struct.unpack_from("<Q", MAIN_INIT, pos)[0]


def test_bytes_reads_exactly_and_advances() -> None:
    r = Reader(CHANNELS_LIST, what="channels_list")
    assert r.bytes(4, "n") == b"\x03\x00\x00\x00"
    assert r.pos == 4
    assert r.bytes(2) == b"\x02\x00"  # channel type DISPLAY, id 0
    assert r.bytes(0) == b""
    assert r.pos == 6


def test_rest_returns_the_tail_and_empties_the_reader() -> None:
    r = Reader(CHANNELS_LIST)
    r.skip(4)
    assert r.rest() == CHANNELS_LIST[4:]
    assert r.remaining == 0
    assert r.rest() == b""


def test_skip_moves_position() -> None:
    r = Reader(CHANNELS_LIST)
    r.skip(6)
    assert r.pos == 6
    assert r.u8() == CHANNELS_LIST[6]


def test_reader_accepts_memoryview_and_bytearray() -> None:
    for data in (memoryview(MAIN_INIT), bytearray(MAIN_INIT)):
        r = Reader(data)
        assert r.u32() == 0xE38630B0
        assert r.bytes(4) == MAIN_INIT[4:8]
        assert isinstance(r.rest(), bytes)


def test_window_limits_reads_to_end() -> None:
    r = Reader(MAIN_INIT, pos=4, end=12)
    assert r.remaining == 8
    assert r.u32() == 1
    assert r.u32() == 1
    with pytest.raises(ProtocolError):
        r.u8()


@pytest.mark.parametrize(
    ("method", "size"),
    [("u8", 1), ("u16", 2), ("i16", 2), ("u32", 4), ("i32", 4), ("u64", 8), ("i64", 8)],
)
def test_every_accessor_refuses_to_overrun(method: str, size: int) -> None:
    # Leave size - 1 bytes: one short of what the accessor needs.
    start = len(MONITORS) - (size - 1)
    r = Reader(MONITORS, pos=start, what="monitors_config")
    with pytest.raises(ProtocolError) as info:
        getattr(r, method)()
    text = str(info.value)
    assert "monitors_config" in text
    assert f"needs {size} bytes" in text
    assert f"offset {start}" in text
    assert f"only {size - 1} left" in text
    # A failed read consumes nothing.
    assert r.pos == start


def test_bytes_overrun_names_the_field() -> None:
    r = Reader(CHANNELS_LIST, what="channels_list")
    r.skip(4)
    expected = r"channels_list: channels needs 7 bytes .* only 6 left"
    with pytest.raises(ProtocolError, match=expected):
        r.bytes(7, "channels")


def test_negative_sizes_are_refused() -> None:
    r = Reader(CHANNELS_LIST)
    with pytest.raises(ProtocolError):
        r.bytes(-1)
    with pytest.raises(ProtocolError):
        r.skip(-4)


def test_skip_overrun() -> None:
    r = Reader(CHANNELS_LIST)
    with pytest.raises(ProtocolError, match="padding"):
        r.skip(len(CHANNELS_LIST) + 1)


def test_count_accepts_what_fits() -> None:
    r = Reader(CHANNELS_LIST, what="channels_list")
    n = r.u32()
    assert r.count(n, 2, "channels") == 3
    assert r.count(0, 2, "channels") == 0
    # Exactly the bytes left is still fine.
    assert r.count(6, 1, "channels") == 6
    # count() checks, it does not consume.
    assert r.remaining == 6


@pytest.mark.parametrize(("n", "item"), [(4, 2), (7, 1), (1, 7), (2**32 - 1, 2), (-1, 2)])
def test_count_rejects_counts_that_do_not_fit(n: int, item: int) -> None:
    r = Reader(CHANNELS_LIST, what="channels_list")
    r.skip(4)
    with pytest.raises(ProtocolError) as info:
        r.count(n, item, "channels")
    assert "channels_list: channels claims" in str(info.value)
    assert "only 6 bytes left" in str(info.value)


def test_at_follows_a_real_pointer() -> None:
    r = Reader(DRAW_COPY, what="draw_copy")
    assert r.u32() == 0  # surface_id
    assert [r.i32() for _ in range(4)] == [0, 0, 480, 640]  # box: top, left, bottom, right
    assert r.u8() == 0  # clip type NONE
    image_offset = r.u32()
    assert image_offset == 57
    img = r.at(image_offset, "image")
    assert img.pos == 57
    # SpiceImageDescriptor: id u64, type u8, flags u8, width u32, height u32.
    img.u64()
    assert img.u8() == ImageType.LZ_RGB
    img.u8()
    assert (img.u32(), img.u32()) == (640, 480)
    assert img.what == "image"
    # The outer reader is not moved by following the pointer.
    assert r.pos == 25


def test_at_inherits_the_end_of_a_window() -> None:
    r = Reader(DRAW_COPY, end=100)
    sub = r.at(57)
    assert sub.remaining == 43


@pytest.mark.parametrize("offset", [0, -1, len(DRAW_COPY) + 1, 2**32 - 1])
def test_at_rejects_null_and_out_of_range_offsets(offset: int) -> None:
    r = Reader(DRAW_COPY, what="draw_copy")
    with pytest.raises(ProtocolError) as info:
        r.at(offset, "image")
    assert f"image offset {offset} outside body of {len(DRAW_COPY)}" in str(info.value)


def test_at_end_of_body_gives_an_empty_reader_that_cannot_read() -> None:
    sub = Reader(DRAW_COPY).at(len(DRAW_COPY))
    assert sub.remaining == 0
    with pytest.raises(ProtocolError):
        sub.u8()


@pytest.mark.parametrize(("pos", "end"), [(-1, None), (5, 4), (0, 33), (33, None)])
def test_bad_bounds_are_refused(pos: int, end: int | None) -> None:
    with pytest.raises(ProtocolError, match="bad bounds"):
        Reader(MAIN_INIT, pos=pos, end=end, what="main init")


def test_trailing_bytes_are_allowed() -> None:
    # SPICE's minor-version rule: newer servers may append fields, so leftovers are not errors.
    from ryll.protocol.messages.main import parse_init

    assert parse_init(MAIN_INIT + b"newer field") == parse_init(MAIN_INIT)
