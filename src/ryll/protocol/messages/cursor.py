"""Cursor channel messages (spice.proto ``channel CursorChannel``). The cursor image itself is
decoded by the render layer; here are the fixed parts."""

from __future__ import annotations

from dataclasses import dataclass

from ryll.protocol.reader import Reader


@dataclass(frozen=True, slots=True)
class CursorHeader:
    unique: int
    type: int
    width: int
    height: int
    hot_x: int
    hot_y: int


@dataclass(frozen=True, slots=True)
class CursorShape:
    """SpiceCursor: flags, and when not NONE a header and the image bytes."""

    flags: int
    header: CursorHeader | None
    data: bytes


@dataclass(frozen=True, slots=True)
class CursorInit:
    x: int
    y: int
    trail_length: int
    trail_frequency: int
    visible: int
    cursor: CursorShape


@dataclass(frozen=True, slots=True)
class CursorSet:
    x: int
    y: int
    visible: int
    cursor: CursorShape


@dataclass(frozen=True, slots=True)
class CursorTrail:
    length: int
    frequency: int


_FLAG_NONE = 1  # SPICE_CURSOR_FLAGS_NONE


def _cursor(r: Reader) -> CursorShape:
    flags = r.u16()
    if flags & _FLAG_NONE:
        return CursorShape(flags, None, b"")
    header = CursorHeader(r.u64(), r.u8(), r.u16(), r.u16(), r.u16(), r.u16())
    return CursorShape(flags, header, r.rest())


def parse_init(body: bytes) -> CursorInit:
    r = Reader(body, what="cursor init")
    x, y = r.i16(), r.i16()  # Point16
    trail_length, trail_frequency, visible = r.u16(), r.u16(), r.u8()
    return CursorInit(x, y, trail_length, trail_frequency, visible, _cursor(r))


def parse_set(body: bytes) -> CursorSet:
    r = Reader(body, what="cursor set")
    x, y, visible = r.i16(), r.i16(), r.u8()
    return CursorSet(x, y, visible, _cursor(r))


def parse_move(body: bytes) -> tuple[int, int]:
    r = Reader(body, what="cursor move")
    return r.i16(), r.i16()


def parse_trail(body: bytes) -> CursorTrail:
    r = Reader(body, what="cursor trail")
    return CursorTrail(r.u16(), r.u16())


def parse_inval_one(body: bytes) -> int:
    return Reader(body, what="cursor inval_one").u64()
