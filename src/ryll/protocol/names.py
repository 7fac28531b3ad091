"""The message-name table: ``(channel type, direction, opcode) -> "stream_destroy_all"``.

Logs, the traffic view, pcap comments and gap-registry keys all need the same short, stable
name for a message, so it is computed in one place. Names are the lower-cased member names of
the opcode enums in ``ryll.protocol.constants`` (the header names without their
``SPICE_MSG[C]_<CHANNEL>_`` prefix), so they never drift from the numbers.

The table is built once at import; a lookup is one dict access, cheap enough to call for every
message when tracing.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum, IntEnum

from ryll.protocol.constants import (
    BASE_LAST,
    CLIENT_MESSAGES,
    SERVER_MESSAGES,
    BaseClient,
    BaseServer,
    ChannelType,
    CommonCap,
    DisplayCap,
    InputsCap,
    MainCap,
    PlaybackCap,
    RecordCap,
    SpicevmcCap,
)

__all__ = ["Direction", "cap_names", "channel_name", "message_name", "MESSAGE_NAMES"]


class Direction(Enum):
    """Which way a message travels; the same opcode means different messages each way."""

    SERVER = "server to client"
    CLIENT = "client to server"


def _enum_names(enum_cls: type[IntEnum]) -> dict[int, str]:
    # Iterating an enum skips aliases, so an opcode with several header names (smartcard
    # client 101) reports its first, canonical one.
    return {int(member): member.name.lower() for member in enum_cls}


_BASE_NAMES: dict[Direction, dict[int, str]] = {
    Direction.SERVER: _enum_names(BaseServer),
    Direction.CLIENT: _enum_names(BaseClient),
}


def _build_table() -> dict[tuple[int, Direction, int], str]:
    table: dict[tuple[int, Direction, int], str] = {}
    per_direction = (
        (Direction.SERVER, SERVER_MESSAGES),
        (Direction.CLIENT, CLIENT_MESSAGES),
    )
    for direction, messages in per_direction:
        for channel, enum_cls in messages.items():
            for opcode, name in _BASE_NAMES[direction].items():
                table[(int(channel), direction, opcode)] = name
            for opcode, name in _enum_names(enum_cls).items():
                table[(int(channel), direction, opcode)] = name
    return table


#: Every known message: (channel type, direction, opcode) -> lower-case name.
MESSAGE_NAMES: dict[tuple[int, Direction, int], str] = _build_table()

_CHANNEL_NAMES: dict[int, str] = {int(member): member.name.lower() for member in ChannelType}


def message_name(channel: int, direction: Direction, opcode: int) -> str:
    """Name of message ``opcode`` sent in ``direction`` on a channel of type ``channel``.

    Base opcodes (<= BASE_LAST) name the same on every channel, even a channel type ryll does
    not know, since spice.proto derives every channel from BaseChannel.
    Anything else unknown is ``unknown_<opcode>`` so it still makes a stable gap key.
    """
    name = MESSAGE_NAMES.get((channel, direction, opcode))
    if name is not None:
        return name
    if opcode <= BASE_LAST:
        base = _BASE_NAMES[direction].get(opcode)
        if base is not None:
            return base
    return f"unknown_{opcode}"


def channel_name(channel_type: int) -> str:
    """Lower-case name of a channel type ("display"), or ``channel<n>`` for an unknown one."""
    return _CHANNEL_NAMES.get(channel_type, f"channel{channel_type}")


_CAP_ENUMS: dict[int, type[IntEnum]] = {
    ChannelType.MAIN: MainCap, ChannelType.DISPLAY: DisplayCap, ChannelType.INPUTS: InputsCap,
    ChannelType.PLAYBACK: PlaybackCap, ChannelType.RECORD: RecordCap,
    ChannelType.USBREDIR: SpicevmcCap, ChannelType.PORT: SpicevmcCap,
    ChannelType.WEBDAV: SpicevmcCap,
}
COMMON = -1  # cap_names' channel type for the common capabilities


def cap_names(channel_type: int, caps: Iterable[int], words: bool = False) -> list[str]:
    """Names of capabilities (``MINI_HEADER``, ``CODEC_H264``...), given as bit numbers or,
    with ``words``, as the u32 words of a link message; one the enums do not know is
    ``cap_<n>``. ``channel_type`` COMMON names the common capabilities."""
    enum = CommonCap if channel_type == COMMON else _CAP_ENUMS.get(channel_type)
    if words:
        bits = [i * 32 + b for i, w in enumerate(caps) for b in range(32) if w & (1 << b)]
    else:
        bits = sorted(int(c) for c in caps)
    known = {int(m): m.name for m in enum} if enum is not None else {}
    return [known.get(b, f"cap_{b}") for b in bits]
