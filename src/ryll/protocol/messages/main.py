"""Main channel messages (spice.proto ``channel MainChannel``)."""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from ryll.protocol.reader import Reader

# NAME is a VM name; libvirt caps domain names well below this.
MAX_NAME = 1024
# CHANNELS_LIST: a server has a handful of channels; 1024 is far above any real one.
MAX_CHANNELS = 1024


@dataclass(frozen=True, slots=True)
class MainInit:
    session_id: int
    display_channels_hint: int
    supported_mouse_modes: int
    current_mouse_mode: int
    agent_connected: int
    agent_tokens: int
    multi_media_time: int
    ram_hint: int


@dataclass(frozen=True, slots=True)
class ChannelId:
    type: int
    id: int


@dataclass(frozen=True, slots=True)
class ChannelsList:
    channels: tuple[ChannelId, ...]


@dataclass(frozen=True, slots=True)
class MouseModeMsg:
    supported: int
    current: int


def parse_init(body: bytes) -> MainInit:
    r = Reader(body, what="main init")
    return MainInit(*(r.u32() for _ in range(8)))


def parse_channels_list(body: bytes) -> ChannelsList:
    r = Reader(body, what="channels_list")
    n = r.u32()
    if n > MAX_CHANNELS:
        from ryll.errors import ProtocolError

        raise ProtocolError(f"channels_list: {n} channels is over the limit of {MAX_CHANNELS}")
    r.count(n, 2, "channels")
    return ChannelsList(tuple(ChannelId(r.u8(), r.u8()) for _ in range(n)))


def parse_mouse_mode(body: bytes) -> MouseModeMsg:
    r = Reader(body, what="mouse_mode")
    return MouseModeMsg(r.u16(), r.u16())


def parse_u32(body: bytes, what: str) -> int:
    """The many main messages whose body is one u32 (multi_media_time, agent_token, ...)."""
    return Reader(body, what=what).u32()


def parse_name(body: bytes) -> str:
    r = Reader(body, what="name")
    n = r.u32()
    raw = r.bytes(n, "name")
    return raw.split(b"\0", 1)[0][:MAX_NAME].decode("utf-8", "replace")


def parse_uuid(body: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=Reader(body, what="uuid").bytes(16, "uuid"))


def build_mouse_mode_request(mode: int) -> bytes:
    return struct.pack("<H", mode)
