"""Messages every channel shares (spice.proto ``channel BaseChannel``)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ryll.protocol.reader import Reader

# NOTIFY's text: spice-server sends short strings ("keyboard channel is insecure"); a longer
# claim than this is read but cut for logs, so a hostile length cannot flood them.
MAX_NOTIFY_TEXT = 4096


@dataclass(frozen=True, slots=True)
class SetAck:
    generation: int
    window: int


@dataclass(frozen=True, slots=True)
class Ping:
    id: int
    timestamp: int
    padding: int  # bytes of padding the server added (its bandwidth probe)


@dataclass(frozen=True, slots=True)
class Notify:
    timestamp: int
    severity: int
    visibility: int
    what: int
    text: str


@dataclass(frozen=True, slots=True)
class Disconnecting:
    timestamp: int
    reason: int


@dataclass(frozen=True, slots=True)
class WaitChannel:
    channel_type: int
    channel_id: int
    message_serial: int


@dataclass(frozen=True, slots=True)
class WaitForChannels:
    channels: tuple[WaitChannel, ...]


@dataclass(frozen=True, slots=True)
class Migrate:
    flags: int


def parse_set_ack(body: bytes) -> SetAck:
    r = Reader(body, what="set_ack")
    return SetAck(r.u32(), r.u32())


def parse_ping(body: bytes) -> Ping:
    r = Reader(body, what="ping")
    return Ping(r.u32(), r.u64(), r.remaining)


def parse_notify(body: bytes) -> Notify:
    r = Reader(body, what="notify")
    ts, severity, visibility, what, length = r.u64(), r.u32(), r.u32(), r.u32(), r.u32()
    raw = r.bytes(length, "message")
    text = raw.split(b"\0", 1)[0][:MAX_NOTIFY_TEXT].decode("utf-8", "replace")
    return Notify(ts, severity, visibility, what, text)


def parse_disconnecting(body: bytes) -> Disconnecting:
    r = Reader(body, what="disconnecting")
    return Disconnecting(r.u64(), r.u32())


def parse_wait_for_channels(body: bytes) -> WaitForChannels:
    r = Reader(body, what="wait_for_channels")
    count = r.count(r.u8(), 10, "wait_list")
    return WaitForChannels(tuple(WaitChannel(r.u8(), r.u8(), r.u64()) for _ in range(count)))


def parse_migrate(body: bytes) -> Migrate:
    return Migrate(Reader(body, what="migrate").u32())


def build_ack_sync(generation: int) -> bytes:
    return struct.pack("<I", generation)


def build_pong(ping: Ping) -> bytes:
    return struct.pack("<IQ", ping.id, ping.timestamp)


def build_disconnecting(timestamp: int, reason: int) -> bytes:
    return struct.pack("<QI", timestamp, reason)
