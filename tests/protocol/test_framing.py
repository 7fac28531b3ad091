"""Framing: the captured session re-framed with both header kinds, fed in every chunking, and
sub-message lists built from captured sub-bodies."""

from __future__ import annotations

import random
import struct

import pytest
from tests.fixtures.loader import body, records, wire

from ryll.errors import ProtocolError
from ryll.protocol.constants import (
    DATA_HEADER_SIZE,
    MINI_DATA_HEADER_SIZE,
    BaseServer,
    ChannelType,
    DisplayServer,
)
from ryll.protocol.framing import (
    MAX_MESSAGE_SIZE,
    Message,
    MessageFramer,
    MessageWriter,
    split_sub_messages,
)

SERVER = [r for r in records() if r.direction == "in"]
EXPECTED = [(r.opcode, r.body) for r in SERVER]

SURFACE_CREATE = body(ChannelType.DISPLAY, DisplayServer.SURFACE_CREATE)
MONITORS = body(ChannelType.DISPLAY, DisplayServer.MONITORS_CONFIG)
MARK = body(ChannelType.DISPLAY, DisplayServer.MARK)
DRAW_COPY = body(ChannelType.DISPLAY, DisplayServer.DRAW_COPY)


def build_list(subs: list[tuple[int, bytes]], prefix: bytes = b"") -> tuple[bytes, int]:
    """A SpiceSubMessageList after ``prefix`` (spice.proto / protocol.h: SpiceSubMessageList is
    u16 size + u32 sub_messages[size], each pointing at a SpiceSubMessage: u16 type, u32 size,
    then the body). Returns the body and the list's offset in it."""
    list_off = len(prefix)
    first = list_off + 2 + 4 * len(subs)
    offsets, blobs, pos = [], [], first
    for mtype, sbody in subs:
        offsets.append(pos)
        blob = struct.pack("<HI", mtype, len(sbody)) + sbody
        blobs.append(blob)
        pos += len(blob)
    header = struct.pack(f"<H{len(subs)}I", len(subs), *offsets)
    return prefix + header + b"".join(blobs), list_off


def as_pairs(messages: list[Message]) -> list[tuple[int, bytes]]:
    return [(m.type, m.body) for m in messages]


def test_capture_has_what_these_tests_need() -> None:
    assert len(SERVER) > 100
    assert any(len(b) > 1000 for _, b in EXPECTED)
    assert any(len(b) == 0 for _, b in EXPECTED)


@pytest.mark.parametrize("mini", [True, False])
def test_one_chunk_gives_every_message(mini: bool) -> None:
    framer = MessageFramer(mini)
    out = framer.feed(wire(SERVER, mini))
    assert as_pairs(out) == EXPECTED
    assert framer.buffered == 0


@pytest.mark.parametrize("mini", [True, False])
def test_one_byte_at_a_time_gives_identical_messages(mini: bool) -> None:
    data = wire(SERVER, mini)
    framer = MessageFramer(mini)
    out: list[Message] = []
    for i in range(len(data)):
        out.extend(framer.feed(data[i : i + 1]))
    assert as_pairs(out) == EXPECTED
    assert framer.buffered == 0


@pytest.mark.parametrize("mini", [True, False])
def test_random_chunks_give_identical_messages(mini: bool) -> None:
    data = wire(SERVER, mini)
    rng = random.Random(1234)
    framer = MessageFramer(mini)
    out: list[Message] = []
    pos = 0
    while pos < len(data):
        n = rng.randint(1, 700)
        out.extend(framer.feed(data[pos : pos + n]))
        pos += n
    assert as_pairs(out) == EXPECTED


def test_full_header_carries_serials() -> None:
    out = MessageFramer(False).feed(wire(SERVER, mini_header=False))
    assert [m.serial for m in out] == list(range(1, len(SERVER) + 1))
    assert all(m.sub_list == 0 for m in out)


def test_mini_header_has_no_serial() -> None:
    out = MessageFramer(True).feed(wire(SERVER[:5], mini_header=True))
    assert [m.serial for m in out] == [0] * 5


def test_writer_header_layouts() -> None:
    # Mini: type u16, size u32. Full: serial u64, type u16, size u32, sub_list u32.
    mini = MessageWriter(True).build(DisplayServer.SURFACE_CREATE, SURFACE_CREATE)
    assert len(mini) == MINI_DATA_HEADER_SIZE + len(SURFACE_CREATE)
    assert struct.unpack_from("<HI", mini) == (314, 20)
    full_writer = MessageWriter(False)
    full_writer.build(1)
    full = full_writer.build(DisplayServer.SURFACE_CREATE, SURFACE_CREATE)
    assert len(full) == DATA_HEADER_SIZE + len(SURFACE_CREATE)
    assert struct.unpack_from("<QHII", full) == (2, 314, 20, 0)
    assert full[DATA_HEADER_SIZE:] == SURFACE_CREATE


def test_partial_message_stays_buffered() -> None:
    data = wire(SERVER[:1])
    framer = MessageFramer(True)
    assert framer.feed(data[:-1]) == []
    assert framer.buffered == len(data) - 1 - MINI_DATA_HEADER_SIZE
    assert as_pairs(framer.feed(data[-1:])) == EXPECTED[:1]


@pytest.mark.parametrize("mini", [True, False])
def test_oversized_declared_size_is_refused_before_the_body(mini: bool) -> None:
    data = wire(SERVER[:1], mini)
    header = bytearray(data[: MINI_DATA_HEADER_SIZE if mini else DATA_HEADER_SIZE])
    size_at = 2 if mini else 10  # mini: after type u16; full: after serial u64 + type u16
    struct.pack_into("<I", header, size_at, MAX_MESSAGE_SIZE + 1)
    framer = MessageFramer(mini)
    with pytest.raises(ProtocolError, match=r"message type 103 declares \d+ bytes, over the"):
        framer.feed(bytes(header))


def test_max_size_is_inclusive() -> None:
    big = [r for r in SERVER if r.opcode == DisplayServer.DRAW_COPY and len(r.body) == 1331]
    data = wire(big[:1])
    assert len(MessageFramer(True, max_size=1331).feed(data)) == 1
    with pytest.raises(ProtocolError, match="over the 1330-byte limit"):
        MessageFramer(True, max_size=1330).feed(data[:MINI_DATA_HEADER_SIZE])


def test_not_a_list_has_no_sub_messages() -> None:
    assert split_sub_messages(Message(DisplayServer.SURFACE_CREATE, SURFACE_CREATE)) == []


def test_list_from_captured_sub_bodies_in_order() -> None:
    subs = [
        (DisplayServer.SURFACE_CREATE, SURFACE_CREATE),
        (DisplayServer.MONITORS_CONFIG, MONITORS),
        (DisplayServer.MARK, MARK),
    ]
    data, _ = build_list(subs)
    out = split_sub_messages(Message(BaseServer.LIST, data))
    assert as_pairs(out) == subs


def test_list_survives_framing() -> None:
    subs = [(DisplayServer.MARK, MARK), (DisplayServer.SURFACE_CREATE, SURFACE_CREATE)]
    data, _ = build_list(subs)
    (msg,) = MessageFramer(True).feed(MessageWriter(True).build(BaseServer.LIST, data))
    assert [m.type for m in split_sub_messages(msg)] == [102, 314]


def test_empty_list_is_fine_but_empty_body_is_not() -> None:
    assert split_sub_messages(Message(BaseServer.LIST, struct.pack("<H", 0))) == []
    with pytest.raises(ProtocolError):
        split_sub_messages(Message(BaseServer.LIST, b""))


def test_list_count_larger_than_body() -> None:
    data, _ = build_list([(DisplayServer.MARK, MARK)])
    mutated = struct.pack("<H", 500) + data[2:]
    with pytest.raises(ProtocolError, match="sub_messages"):
        split_sub_messages(Message(BaseServer.LIST, mutated))


@pytest.mark.parametrize("bad", [0xFFFF_FFFF, 10_000, 32, 27])
def test_list_offset_outside_body(bad: int) -> None:
    data, _ = build_list([(DisplayServer.SURFACE_CREATE, SURFACE_CREATE)])
    assert len(data) == 32  # 2 + 4 offset + 6 sub header + 20 body; 27 leaves 5 < 6 bytes
    mutated = data[:2] + struct.pack("<I", bad) + data[6:]
    with pytest.raises(ProtocolError, match="outside body"):
        split_sub_messages(Message(BaseServer.LIST, mutated))


def test_list_offset_leaving_no_room_for_a_sub_header() -> None:
    data, _ = build_list([(DisplayServer.SURFACE_CREATE, SURFACE_CREATE)])
    mutated = data[:2] + struct.pack("<I", len(data) - 3) + data[6:]
    with pytest.raises(ProtocolError):
        split_sub_messages(Message(BaseServer.LIST, mutated))


def test_truncated_sub_message_body() -> None:
    data, _ = build_list([(DisplayServer.SURFACE_CREATE, SURFACE_CREATE)])
    with pytest.raises(ProtocolError, match="sub-message body"):
        split_sub_messages(Message(BaseServer.LIST, data[:-1]))


def test_sub_message_size_field_too_big() -> None:
    data, _ = build_list([(DisplayServer.MONITORS_CONFIG, MONITORS)])
    raw = bytearray(data)
    struct.pack_into("<I", raw, 6 + 2, len(MONITORS) + 1)  # the sub's size, after its type
    with pytest.raises(ProtocolError):
        split_sub_messages(Message(BaseServer.LIST, bytes(raw)))


def test_full_header_sub_list() -> None:
    # A full-header message whose sub_list points at a list placed after its own body.
    subs = [(DisplayServer.MARK, MARK), (DisplayServer.MONITORS_CONFIG, MONITORS)]
    data, list_off = build_list(subs, prefix=SURFACE_CREATE)
    assert list_off == 20
    msg = Message(DisplayServer.SURFACE_CREATE, data, serial=7, sub_list=list_off)
    assert as_pairs(split_sub_messages(msg)) == subs


def test_full_header_sub_list_through_the_framer() -> None:
    subs = [(DisplayServer.MARK, MARK)]
    data, list_off = build_list(subs, prefix=SURFACE_CREATE)
    raw = struct.pack("<QHII", 9, DisplayServer.SURFACE_CREATE, len(data), list_off) + data
    (msg,) = MessageFramer(False).feed(raw)
    assert (msg.serial, msg.sub_list) == (9, list_off)
    assert as_pairs(split_sub_messages(msg)) == subs


def test_full_header_sub_list_offset_out_of_range() -> None:
    data, _ = build_list([(DisplayServer.MARK, MARK)], prefix=SURFACE_CREATE)
    msg = Message(DisplayServer.SURFACE_CREATE, data, sub_list=len(data) + 4)
    with pytest.raises(ProtocolError, match="sub_list"):
        split_sub_messages(msg)
