"""Message framing: the mini and full data headers, and sub-message lists.

``MessageFramer`` is incremental and sans-IO: feed it bytes as they arrive, get whole messages
back. It never buffers more than one message plus one header, and refuses a declared size above
``MAX_MESSAGE_SIZE`` before reading the body, so a hostile size cannot make ryll allocate
gigabytes. ``split_sub_messages`` mirrors spice-gtk's ``spice_channel_recv_msg``: for
``SPICE_MSG_LIST`` (or a full header's non-zero ``sub_list``), the body holds a
``SpiceSubMessageList`` (u16 count, u32 offsets) pointing at ``SpiceSubMessage`` (u16 type,
u32 size, body) records, handled before the outer message.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ryll.errors import ProtocolError
from ryll.protocol.constants import (
    DATA_HEADER_SIZE,
    MINI_DATA_HEADER_SIZE,
    SUB_MESSAGE_SIZE,
    BaseServer,
)
from ryll.protocol.reader import Reader

# The largest body ryll accepts. The biggest legitimate messages are uncompressed BITMAP draws:
# a 32-bpp 8192x4096 image is 128 MiB, and ryll's surface limit (render layer) is the same
# 8192x4096, so nothing a server may send for a surface we accept is larger. spice-gtk itself
# has no limit (g_malloc0 of whatever the header says), which is exactly what we must not copy.
MAX_MESSAGE_SIZE = 128 * 1024 * 1024 + 4096

_MINI = struct.Struct("<HI")
_FULL = struct.Struct("<QHII")


@dataclass(frozen=True, slots=True)
class Message:
    """One framed message: its opcode and body. ``serial`` is only known with full headers."""

    type: int
    body: bytes
    serial: int = 0
    sub_list: int = 0


class MessageFramer:
    """Splits an incoming byte stream into messages (server to client)."""

    def __init__(self, mini_header: bool, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self.mini_header = mini_header
        self.header_size = MINI_DATA_HEADER_SIZE if mini_header else DATA_HEADER_SIZE
        self.max_size = max_size
        self._buf = bytearray()
        self._pending: tuple[int, int, int, int] | None = None  # type, size, serial, sub_list

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Message]:
        self._buf += data
        out: list[Message] = []
        while True:
            if self._pending is None:
                if len(self._buf) < self.header_size:
                    return out
                if self.mini_header:
                    mtype, size = _MINI.unpack_from(self._buf)
                    serial = sub_list = 0
                else:
                    serial, mtype, size, sub_list = _FULL.unpack_from(self._buf)
                if size > self.max_size:
                    raise ProtocolError(
                        f"message type {mtype} declares {size} bytes, "
                        f"over the {self.max_size}-byte limit"
                    )
                del self._buf[: self.header_size]
                self._pending = (mtype, size, serial, sub_list)
            mtype, size, serial, sub_list = self._pending
            if len(self._buf) < size:
                return out
            with memoryview(self._buf) as view:  # one copy of the body, not two
                body = bytes(view[:size])
            del self._buf[:size]
            self._pending = None
            out.append(Message(mtype, body, serial, sub_list))


class MessageWriter:
    """Builds outgoing (client to server) messages with the negotiated header."""

    def __init__(self, mini_header: bool) -> None:
        self.mini_header = mini_header
        self._serial = 0

    def build(self, mtype: int, body: bytes = b"") -> bytes:
        if self.mini_header:
            return _MINI.pack(mtype, len(body)) + body
        self._serial += 1
        return _FULL.pack(self._serial, mtype, len(body), 0) + body


def split_sub_messages(message: Message) -> list[Message]:
    """The sub-messages a LIST (or a full-header sub_list) carries, in order.

    Offsets and sizes are checked against the body; a bad one raises ``ProtocolError``.
    """
    if message.type != BaseServer.LIST and not message.sub_list:
        return []
    r = Reader(message.body, what="sub-message list")
    lst = r.at(message.sub_list, "sub_list") if message.sub_list else r
    count = lst.u16()
    lst.count(count, 4, "sub_messages")
    offsets = [lst.u32() for _ in range(count)]
    subs: list[Message] = []
    for off in offsets:
        if off + SUB_MESSAGE_SIZE > len(message.body):
            raise ProtocolError(f"sub-message offset {off} outside body of {len(message.body)}")
        sub = Reader(message.body, off, what="sub-message")
        stype = sub.u16()
        ssize = sub.u32()
        subs.append(Message(stype, sub.bytes(ssize, "sub-message body")))
    return subs
