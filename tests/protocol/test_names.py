"""The message-name table: names logs, traffic views and gap keys rely on."""

from __future__ import annotations

import pytest

from ryll.protocol import constants as c
from ryll.protocol.names import MESSAGE_NAMES, Direction, channel_name, message_name

S, C = Direction.SERVER, Direction.CLIENT


@pytest.mark.parametrize(
    ("channel", "direction", "opcode", "name"),
    [
        (c.ChannelType.DISPLAY, S, 126, "stream_destroy_all"),
        (c.ChannelType.DISPLAY, S, 314, "surface_create"),
        (c.ChannelType.DISPLAY, S, 304, "draw_copy"),
        (c.ChannelType.DISPLAY, C, 101, "init"),
        (c.ChannelType.DISPLAY, C, 103, "preferred_compression"),
        (c.ChannelType.MAIN, S, 103, "init"),
        (c.ChannelType.MAIN, S, 104, "channels_list"),
        (c.ChannelType.MAIN, C, 104, "attach_channels"),
        (c.ChannelType.INPUTS, S, 111, "mouse_motion_ack"),
        (c.ChannelType.INPUTS, C, 113, "mouse_press"),
        (c.ChannelType.CURSOR, S, 103, "set"),
        (c.ChannelType.PLAYBACK, S, 101, "data"),
        (c.ChannelType.RECORD, C, 103, "start_mark"),
        (c.ChannelType.SMARTCARD, C, 101, "data"),
        (c.ChannelType.USBREDIR, S, 102, "compressed_data"),
        (c.ChannelType.PORT, S, 201, "init"),
        (c.ChannelType.PORT, S, 101, "data"),
        (c.ChannelType.PORT, C, 201, "event"),
        (c.ChannelType.WEBDAV, S, 202, "event"),
        (c.ChannelType.WEBDAV, C, 101, "data"),
    ],
)
def test_known_names(channel: int, direction: Direction, opcode: int, name: str) -> None:
    assert message_name(channel, direction, opcode) == name


def test_plain_ints_work() -> None:
    assert message_name(2, Direction.SERVER, 126) == "stream_destroy_all"


@pytest.mark.parametrize("channel", [*c.ChannelType, 0, 42])
def test_base_names_on_every_channel(channel: int) -> None:
    # Unknown channel types (0, 42) still name base messages: every channel is a BaseChannel.
    assert message_name(channel, S, 3) == "set_ack"
    assert message_name(channel, S, 4) == "ping"
    assert message_name(channel, S, 7) == "notify"
    assert message_name(channel, S, 8) == "list"
    assert message_name(channel, C, 1) == "ack_sync"
    assert message_name(channel, C, 2) == "ack"
    assert message_name(channel, C, 3) == "pong"
    assert message_name(channel, C, 6) == "disconnecting"


@pytest.mark.parametrize(
    ("channel", "direction", "opcode"),
    [
        (c.ChannelType.DISPLAY, S, 109),  # reserved gap before STREAM_CREATE
        (c.ChannelType.DISPLAY, S, 999),
        (c.ChannelType.DISPLAY, C, 106),
        (c.ChannelType.CURSOR, C, 101),  # cursor has no client messages
        (c.ChannelType.TUNNEL, S, 101),  # no tunnel opcodes in spice-protocol 0.14.3
        (c.ChannelType.USBREDIR, S, 201),  # PORT_INIT is not a usbredir message
        (c.ChannelType.MAIN, S, 0),
        (c.ChannelType.MAIN, S, 9),
        (c.ChannelType.MAIN, C, 7),
        (42, S, 101),
    ],
)
def test_unknown_fallback(channel: int, direction: Direction, opcode: int) -> None:
    assert message_name(channel, direction, opcode) == f"unknown_{opcode}"


def test_channel_names() -> None:
    assert [channel_name(t) for t in range(1, 12)] == [
        "main",
        "display",
        "inputs",
        "cursor",
        "playback",
        "record",
        "tunnel",
        "smartcard",
        "usbredir",
        "port",
        "webdav",
    ]
    assert channel_name(0) == "channel0"
    assert channel_name(42) == "channel42"


@pytest.mark.parametrize("direction", [S, C])
@pytest.mark.parametrize("channel", list(c.ChannelType), ids=lambda ch: ch.name)
def test_names_unique_within_channel_and_direction(
    channel: c.ChannelType, direction: Direction
) -> None:
    # A name must identify one opcode, or gap keys and traffic filters would merge messages.
    base = c.BaseServer if direction is S else c.BaseClient
    own = (c.SERVER_MESSAGES if direction is S else c.CLIENT_MESSAGES)[channel]
    members = [*base, *own]
    names = [message_name(channel, direction, m) for m in members]
    assert len(set(names)) == len(names) == len({int(m) for m in members})
    for member, name in zip(members, names, strict=True):
        assert name == member.name.lower()


def test_table_covers_every_member() -> None:
    for direction, table in ((S, c.SERVER_MESSAGES), (C, c.CLIENT_MESSAGES)):
        base = c.BaseServer if direction is S else c.BaseClient
        for channel, enum_cls in table.items():
            for member in [*base, *enum_cls]:
                assert MESSAGE_NAMES[(channel, direction, member)] == member.name.lower()
    assert all(name == name.lower() and " " not in name for name in MESSAGE_NAMES.values())


def test_smartcard_aliases_use_the_canonical_name() -> None:
    assert c.SmartcardClient.READER_ADD is c.SmartcardClient.DATA
    assert message_name(c.ChannelType.SMARTCARD, C, c.SmartcardClient.READER_ADD) == "data"
