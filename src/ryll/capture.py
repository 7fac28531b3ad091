"""A compact capture format for SPICE messages, used for test fixtures and bug reports.

A capture file is a sequence of records: u8 channel type, u8 channel id, u8 direction (0 in,
1 out), u16 opcode, u32 body size, body (all little-endian). It holds framed messages, not raw
TCP, so it is independent of the header kind the session negotiated.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ryll.errors import ProtocolError

_REC = struct.Struct("<BBBHI")


@dataclass(frozen=True, slots=True)
class Record:
    channel_type: int
    channel_id: int
    direction: str  # "in" (server to client) or "out"
    opcode: int
    body: bytes


class CaptureWriter:
    """A tap (see ChannelContext.tap) that appends records to a file."""

    def __init__(self, path: Path, max_body: int | None = None) -> None:
        self._f = path.open("wb")
        self.max_body = max_body

    def __call__(self, ctype: int, cid: int, direction: str, opcode: int, body: bytes) -> None:
        if self.max_body is not None and len(body) > self.max_body:
            return
        self._f.write(_REC.pack(ctype, cid, 0 if direction == "in" else 1, opcode, len(body)))
        self._f.write(body)

    def close(self) -> None:
        self._f.close()


def read_capture(path: Path) -> Iterator[Record]:
    data = path.read_bytes()
    pos = 0
    while pos < len(data):
        if pos + _REC.size > len(data):
            raise ProtocolError(f"{path}: truncated record header at {pos}")
        ctype, cid, direction, opcode, size = _REC.unpack_from(data, pos)
        pos += _REC.size
        if pos + size > len(data):
            raise ProtocolError(f"{path}: truncated record body at {pos}")
        yield Record(ctype, cid, "in" if direction == 0 else "out", opcode, data[pos : pos + size])
        pos += size
