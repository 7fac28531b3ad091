"""The bug reports' traffic ring: the last few megabytes of every channel, ready to become the
report's ``traffic.pcap`` (the same pcap form as ``--capture``). Sans-IO: a traffic sink fed
by the session (session.traffic) with the times it gives.

Caps are the Rust ryll's, weighted per channel of a 50 MiB total: display 32 MiB, main,
cursor, playback and usbredir 4 MiB, inputs 2 MiB; any other channel 2 MiB. The chunks kept
are the very ``bytes`` the session read and wrote (no copy). Each channel also keeps its link
phase (a few hundred bytes, bounded), so the exported conversation starts with it and
Wireshark's SPICE dissector decodes what follows.

Old traffic is dropped chunk by chunk, and a pcap of the rest must still start each direction
at a message boundary: the ring follows the message framing of both directions (headers only)
as chunks arrive and notes where the first message starts in each chunk; the export starts
each direction at the first kept chunk with a boundary and leaves out the bytes before it.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field

from ryll.diagnostics import pcap
from ryll.session.traffic import ChannelKey

MIB = 1024 * 1024
TOTAL_BYTES = 50 * MIB
WEIGHTS = {"display": 16, "main": 2, "cursor": 2, "playback": 2, "usbredir": 2, "inputs": 1}
OTHER_WEIGHT = 1
# The link phase is four short messages; a server's link reply is a few hundred bytes.
MAX_LINK_BYTES = 64 * 1024

_MINI = struct.Struct("<HI")  # type, size
_FULL = struct.Struct("<QHII")  # serial, type, size, sub_list


def channel_cap(name: str, total: int = TOTAL_BYTES) -> int:
    """The bytes ring keeps for a channel of this name."""
    return total * WEIGHTS.get(name, OTHER_WEIGHT) // sum(WEIGHTS.values())


class Boundaries:
    """Follows one direction's message framing (header sizes) across chunks."""

    def __init__(self, mini_header: bool) -> None:
        self.header = _MINI if mini_header else _FULL
        self.size_at = 2 if mini_header else 10
        self.skip = 0  # body bytes still to come
        self.partial = b""  # a header split across chunks

    def first_start(self, data: bytes) -> int:
        """Feed a chunk; returns the offset of the first message that starts in it, or -1."""
        pos, first, n = 0, -1, len(data)
        hsize = self.header.size
        while pos < n:
            if self.skip:
                step = min(self.skip, n - pos)
                pos += step
                self.skip -= step
                continue
            if not self.partial and first < 0:
                first = pos
            need = hsize - len(self.partial)
            head = self.partial + data[pos:pos + need]
            if len(head) < hsize:
                self.partial = head
                break
            pos += need
            self.partial = b""
            (self.skip,) = struct.unpack_from("<I", head, self.size_at)
        return first


@dataclass
class _Chunk:
    at: float
    sent: bool  # client to server
    data: bytes
    start: int  # where the first message of its direction starts in it, or -1


@dataclass
class ChannelRing:
    key: ChannelKey
    cap: int
    link: list[_Chunk] = field(default_factory=list)
    link_bytes: int = 0
    chunks: deque[_Chunk] = field(default_factory=deque)
    size: int = 0  # bytes of the chunks kept
    dropped_bytes: int = 0
    linked: bool = False
    opened_at: float = 0.0
    framing: dict[bool, Boundaries] = field(default_factory=dict)

    def add(self, at: float, sent: bool, data: bytes) -> None:
        if not self.linked:
            if self.link_bytes + len(data) <= MAX_LINK_BYTES:
                self.link.append(_Chunk(at, sent, data, 0))
                self.link_bytes += len(data)
            return
        start = self.framing[sent].first_start(data)
        self.chunks.append(_Chunk(at, sent, data, start))
        self.size += len(data)
        while self.size > self.cap and self.chunks:
            old = self.chunks.popleft()
            self.size -= len(old.data)
            self.dropped_bytes += len(old.data)

    def records(self) -> list[tuple[float, bytes]]:
        """This channel's conversation as (time, pcap records): handshake, link phase, then
        each direction from its first kept message boundary."""
        conversation = pcap.TcpConversation(pcap.channel_port(self.key.name, self.key.id))
        out = [(self.opened_at, conversation.open(self.opened_at))]
        for chunk in self.link:
            data = conversation.sent(chunk.data, chunk.at) if chunk.sent else (
                conversation.received(chunk.data, chunk.at))
            out.append((chunk.at, data))
        started = {True: False, False: False}
        for chunk in list(self.chunks):
            payload = chunk.data
            if not started[chunk.sent]:
                if chunk.start < 0:
                    continue
                started[chunk.sent] = True
                payload = payload[chunk.start:]
            data = conversation.sent(payload, chunk.at) if chunk.sent else (
                conversation.received(payload, chunk.at))
            out.append((chunk.at, data))
        return out


class TrafficRing:
    """A traffic sink keeping each channel's recent traffic within its cap."""

    def __init__(self, total_bytes: int = TOTAL_BYTES) -> None:
        self.total_bytes = total_bytes
        self.channels: dict[tuple[int, int], ChannelRing] = {}

    def opened(self, channel: ChannelKey, at: float) -> None:
        # A new connection (a reconnect, or the switch to TLS) starts the channel's ring over:
        # its conversation begins again with a link phase.
        self.channels[(channel.type, channel.id)] = ChannelRing(
            channel, channel_cap(channel.name, self.total_bytes), opened_at=at)

    def linked(self, channel: ChannelKey, mini_header: bool, at: float) -> None:
        ring = self.channels.get((channel.type, channel.id))
        if ring is not None:
            ring.linked = True
            ring.framing = {True: Boundaries(mini_header), False: Boundaries(mini_header)}

    def sent(self, channel: ChannelKey, data: bytes, at: float) -> None:
        ring = self.channels.get((channel.type, channel.id))
        if ring is not None:
            ring.add(at, True, data)

    def received(self, channel: ChannelKey, data: bytes, at: float) -> None:
        ring = self.channels.get((channel.type, channel.id))
        if ring is not None:
            ring.add(at, False, data)

    @property
    def held(self) -> int:
        """Bytes the ring holds now, link phases included."""
        return sum(r.size + r.link_bytes for r in self.channels.values())

    def pcap(self, only: tuple[int, int] | None = None) -> bytes:
        """One pcap of every channel's kept traffic (or only channel ``only``'s), records in
        time order (each channel's its own TCP conversation, told apart by client port)."""
        records: list[tuple[float, bytes]] = []
        for where, ring in sorted(self.channels.items()):
            if only is None or where == only:
                records += [(at, data) for at, data in ring.records() if data]
        # A stable sort: a channel's own records keep their order even at equal times.
        records.sort(key=lambda r: r[0])
        return pcap.global_header() + b"".join(data for _, data in records)

    def copy(self) -> TrafficRing:
        """A copy that the session's later traffic does not change (the chunks themselves
        are shared: bytes never change), cheap enough to take on the event loop, to export
        in a worker thread."""
        out = TrafficRing(self.total_bytes)
        for where, r in self.channels.items():
            out.channels[where] = ChannelRing(
                r.key, r.cap, list(r.link), r.link_bytes, deque(r.chunks), r.size,
                r.dropped_bytes, r.linked, r.opened_at)
        return out

    def last_traffic(self, now: float) -> dict[str, object]:
        """Per channel: when it last sent and received (seconds ago) and what it holds; what a
        disconnect report compares the dropped channel against."""
        out: dict[str, object] = {}
        for r in self.channels.values():
            last: dict[bool, float] = {}
            for chunk in reversed(r.chunks):
                last.setdefault(chunk.sent, chunk.at)
                if len(last) == 2:
                    break
            received, sent = last.get(False), last.get(True)
            out[f"{r.key.name}:{r.key.id}"] = {
                "last_received_s_ago": None if received is None else round(now - received, 3),
                "last_sent_s_ago": None if sent is None else round(now - sent, 3),
                "connected_s": round(now - r.opened_at, 3),
                "ring_bytes": r.size,
            }
        return out

    def summary(self) -> dict[str, object]:
        return {
            f"{r.key.name}:{r.key.id}": {"bytes": r.size, "cap": r.cap,
                                         "dropped_bytes": r.dropped_bytes,
                                         "chunks": len(r.chunks)}
            for r in self.channels.values()
        }
