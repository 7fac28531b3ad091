"""Reading ryll's pcaps back (``--capture``'s files, a report's ``traffic.pcap``): the SPICE
messages of every conversation, both ways, with their times. ``ryll report`` prints the last
ones; the tests check a capture against what the session handled.

Wireshark's own SPICE dissector reads these files too, with one known limit: for a client
message it has no decoder for (display STREAM_REPORT and PREFERRED_COMPRESSION, inputs
KEY_SCANCODE, main AGENT_TOKEN and others) it does not skip the body, reads the body as the
next header and stalls that direction (packet-spice.c's ``dissect_spice_data_client_pdu``
lacks the size correction its server side has). This reader frames by the headers' sizes,
as the channels do, so it reads every message.

The input is untrusted (a zip someone sent): record sizes are checked before slicing and
message sizes are bounded by the framer; anything else is a ProtocolError.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field

from ryll.diagnostics.pcap import SERVER_PORT
from ryll.errors import ProtocolError, RyllError
from ryll.protocol import link
from ryll.protocol.constants import (
    LINK_AUTH_MECHANISM_SIZE,
    LINK_HEADER_SIZE,
    TICKET_ENCRYPTED_BYTES,
    CommonCap,
)
from ryll.protocol.framing import Message, MessageFramer
from ryll.protocol.link import has_cap
from ryll.protocol.names import Direction, channel_name, message_name

_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
_MESS = struct.Struct("<IBBIII")  # connection_id, type, id, n_common, n_channel, caps_offset
MAX_RECORD = 1 << 20


@dataclass(frozen=True, slots=True)
class Captured:
    at: float
    sent: bool  # client to server
    type: int
    size: int


@dataclass
class _Direction:
    data: bytearray = field(default_factory=bytearray)
    times: list[tuple[int, float]] = field(default_factory=list)  # (offset, time)


@dataclass
class Conversation:
    """One channel connection in a pcap."""

    client_port: int
    channel_type: int | None = None
    channel_id: int | None = None
    messages: list[Captured] = field(default_factory=list)
    link_error: int | None = None
    problem: str | None = None  # why the reading stopped early, if it did

    @property
    def name(self) -> str:
        return channel_name(self.channel_type) if self.channel_type is not None else "?"

    def message_names(self) -> list[tuple[Captured, str]]:
        out = []
        for m in self.messages:
            direction = Direction.CLIENT if m.sent else Direction.SERVER
            name = message_name(self.channel_type or 0, direction, m.type)
            out.append((m, name))
        return out


def tcp_payloads(data: bytes) -> list[tuple[float, int, int, bool, bytes]]:
    """(time, client port, flags, from client, payload) of each TCP frame of a pcap that
    ryll wrote (Ethernet, IPv4 without options, TCP without options)."""
    if len(data) < _GLOBAL.size:
        raise ProtocolError("not a pcap file: too short")
    magic, major, _minor, _, _, _snaplen, linktype = _GLOBAL.unpack_from(data)
    if magic != 0xA1B2C3D4 or major != 2 or linktype != 1:
        raise ProtocolError("not a pcap file ryll wrote (little-endian, Ethernet)")
    out = []
    pos = _GLOBAL.size
    while pos < len(data):
        if pos + _RECORD.size > len(data):
            raise ProtocolError(f"pcap record header cut short at byte {pos}")
        sec, usec, incl, _orig = _RECORD.unpack_from(data, pos)
        pos += _RECORD.size
        if incl > MAX_RECORD or pos + incl > len(data):
            raise ProtocolError(f"pcap record of {incl} bytes at byte {pos} is cut short")
        frame = data[pos:pos + incl]
        pos += incl
        if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
            continue  # not IPv4/TCP: nothing of ours
        ihl = (frame[14] & 0x0F) * 4
        total = struct.unpack_from("!H", frame, 16)[0]
        tcp = 14 + ihl
        if len(frame) < tcp + 20:
            continue
        sport, dport = struct.unpack_from("!HH", frame, tcp)
        offset = (frame[tcp + 12] >> 4) * 4
        flags = frame[tcp + 13]
        payload = frame[tcp + offset:14 + total]
        from_client = dport == SERVER_PORT
        out.append((sec + usec / 1e6, dport if not from_client else sport, flags,
                    from_client, payload))
    return out


def read_conversations(data: bytes, max_messages: int | None = None) -> list[Conversation]:
    """Every conversation of a pcap (a SYN from the client starts one; a reconnect reuses
    its port), its link phase read and every message framed. ``max_messages`` keeps only
    the last ones of each."""
    convs: list[tuple[Conversation, dict[bool, _Direction]]] = []
    current: dict[int, tuple[Conversation, dict[bool, _Direction]]] = {}
    for at, port, flags, from_client, payload in tcp_payloads(data):
        if flags & 0x02 and from_client:
            entry = (Conversation(port), {True: _Direction(), False: _Direction()})
            convs.append(entry)
            current[port] = entry
            continue
        if port not in current or not payload:
            continue
        stream = current[port][1][from_client]
        stream.times.append((len(stream.data), at))
        stream.data += payload
    out = []
    for conv, streams in convs:
        try:
            _parse(conv, streams)
        except ProtocolError as exc:
            conv.problem = str(exc)
        conv.messages.sort(key=lambda m: m.at)
        if max_messages is not None:
            conv.messages = conv.messages[-max_messages:]
        out.append(conv)
    return out


def _time_at(stream: _Direction, starts: list[int], offset: int) -> float:
    """The time of the record that carried byte ``offset`` of the stream."""
    i = bisect.bisect_right(starts, offset) - 1
    return stream.times[max(i, 0)][1] if stream.times else 0.0


def _caps(blob: bytes, base: int, n_common: int, offset: int) -> tuple[int, ...]:
    start = base + offset
    if n_common > 64 or start + 4 * n_common > len(blob):
        raise ProtocolError("link capabilities out of bounds")
    return struct.unpack_from(f"<{n_common}I", blob, start)


def _parse(conv: Conversation, streams: dict[bool, _Direction]) -> None:
    client, server = bytes(streams[True].data), bytes(streams[False].data)
    if len(client) < LINK_HEADER_SIZE + _MESS.size or len(server) < LINK_HEADER_SIZE + 4:
        raise ProtocolError("the link phase is incomplete")
    size = struct.unpack_from("<I", client, 12)[0]
    _cid, ctype, chid, n_common, _n_channel, caps_offset = _MESS.unpack_from(
        client, LINK_HEADER_SIZE)
    conv.channel_type, conv.channel_id = ctype, chid
    client_common = _caps(client, LINK_HEADER_SIZE, n_common, caps_offset)
    cpos = LINK_HEADER_SIZE + size
    # The server's side is the link reply the session itself parses (protocol.link).
    try:
        reply_size = link.parse_link_header(server[:LINK_HEADER_SIZE])
        spos = LINK_HEADER_SIZE + reply_size
        reply = link.parse_link_reply(server[LINK_HEADER_SIZE:spos])
    except RyllError as exc:
        raise ProtocolError(f"the link reply: {exc}") from None
    if reply.error != 0:
        conv.link_error = reply.error
        return
    server_common = reply.common_caps
    if has_cap(client_common, CommonCap.PROTOCOL_AUTH_SELECTION) and has_cap(
            server_common, CommonCap.PROTOCOL_AUTH_SELECTION):
        cpos += LINK_AUTH_MECHANISM_SIZE
    cpos += TICKET_ENCRYPTED_BYTES
    if len(server) < spos + 4:
        raise ProtocolError("no link result")
    if struct.unpack_from("<I", server, spos)[0] != 0:
        conv.link_error = struct.unpack_from("<I", server, spos)[0]
        return
    spos += 4
    mini = has_cap(client_common, CommonCap.MINI_HEADER) and has_cap(
        server_common, CommonCap.MINI_HEADER)
    for sent, blob, pos in ((True, client, cpos), (False, server, spos)):
        framer = MessageFramer(mini)
        stream = streams[sent]
        starts = [start for start, _ in stream.times]
        offset = pos
        header = framer.header_size
        messages: list[Message] = framer.feed(blob[pos:])
        for message in messages:
            conv.messages.append(Captured(_time_at(stream, starts, offset), sent, message.type,
                                          len(message.body)))
            offset += header + len(message.body)
