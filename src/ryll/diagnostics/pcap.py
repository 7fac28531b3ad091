"""pcap files of SPICE traffic, sans-IO: bytes of one channel's conversation in, pcap bytes out.

The layout is the Rust ryll's (its ``capture.rs``), so tools written for its captures read
ours: a classic little-endian pcap (LINKTYPE_ETHERNET) per channel, each chunk of traffic in a
synthetic Ethernet/IPv4/TCP frame between the client 10.0.0.1 (one port per channel) and the
server 10.0.0.2:5900, sequence and acknowledgement numbers that make one valid TCP stream per
channel, chunks over one segment split across several, times relative to the session's start.
Going beyond it, each conversation opens with a TCP handshake (SYN, SYN-ACK, ACK), so
Wireshark follows the stream from its first byte; the caller writes the link phase as the
first chunks, which lets Wireshark's SPICE dissector decode the messages (all of the server's;
the client's up to the first one it has no decoder for: see pcap_read).

Checksums are real (RFC 791, RFC 9293), so nothing shows as malformed. The link phase must be
written as its separate steps (SpiceLinkMess, SpiceLinkReply, the auth mechanism, the ticket,
the link result): Wireshark's dissector (tshark ``-d tcp.port==5900,spice``) follows the link
step by step, and a mechanism and ticket in one chunk leave it behind.
"""

from __future__ import annotations

import struct

import numpy as np

CLIENT_IP = bytes((10, 0, 0, 1))
SERVER_IP = bytes((10, 0, 0, 2))
SERVER_PORT = 5900
CLIENT_MAC = bytes((0x02, 0, 0, 0, 0, 0x01))
SERVER_MAC = bytes((0x02, 0, 0, 0, 0, 0x02))
# The IPv4 total length is 16 bits: 65535 - 20 (IPv4) - 20 (TCP) bytes of payload a segment.
MAX_SEGMENT = 65495
# Frames are at most 14 + 65535 bytes; the snapshot length keeps every one whole.
SNAPLEN = 262144
LINKTYPE_ETHERNET = 1
# The Rust ryll's initial sequence numbers (client, server).
CLIENT_ISN = 1000
SERVER_ISN = 2000

# Client ports by channel type name, the Rust ryll's for the four it knows; a further channel
# of the same type (display 1, a second port channel...) adds 100 per id.
CHANNEL_PORTS = {
    "main": 10001, "display": 10002, "inputs": 10003, "cursor": 10004, "playback": 10005,
    "record": 10006, "tunnel": 10007, "smartcard": 10008, "usbredir": 10009, "port": 10010,
    "webdav": 10011,
}
OTHER_PORT = 10099

_TCP_ACK, _TCP_PSH, _TCP_SYN = 0x10, 0x08, 0x02


def global_header() -> bytes:
    """The pcap file header: magic, version 2.4, UTC, snaplen, Ethernet."""
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET)


def channel_port(name: str, channel_id: int = 0) -> int:
    """The client port of a channel in its pcap (unique per channel of a session)."""
    return CHANNEL_PORTS.get(name, OTHER_PORT) + 100 * channel_id


def file_name(name: str, channel_id: int = 0) -> str:
    """``display.pcap``, ``display-1.pcap``... (the Rust ryll's names for channel 0)."""
    return f"{name}.pcap" if channel_id == 0 else f"{name}-{channel_id}.pcap"


def sum16(data: bytes | memoryview) -> int:
    """The one's-complement sum of ``data``'s big-endian 16-bit words (an odd last byte
    padded with zero), reduced modulo 0xFFFF (0xFFFF for a non-zero sum that reduces to 0):
    all an Internet checksum depends on. 65536 is 1 modulo 0xFFFF, so a short payload is its
    number modulo 0xFFFF (``int.from_bytes``), and a long one numpy's sum of native
    little-endian words times 256 (a word's two bytes swapped is the word times 256)."""
    if len(data) <= 512:  # headers and short messages: cheaper without numpy's call overhead
        value = int.from_bytes(data, "big")
        if len(data) & 1:
            value <<= 8
    else:
        n = len(data) & ~1
        value = int(np.frombuffer(data, "<u2", n // 2).sum(dtype=np.uint64)) * 256
        if len(data) & 1:
            value += data[-1] << 8
    total = value % 0xFFFF
    return total if total or not value else 0xFFFF


def fold(total: int) -> int:
    """The Internet checksum (RFC 1071) of words that sum to ``total``."""
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): one's complement of the one's-complement sum."""
    return fold(sum16(data))


def frame_header(src: bytes, sport: int, dst: bytes, dport: int, seq: int, ack: int,
                 flags: int, payload: bytes | memoryview, payload_sum: int | None = None
                 ) -> bytes:
    """The Ethernet + IPv4 + TCP headers (54 bytes) of a frame carrying ``payload`` (at most
    MAX_SEGMENT bytes; ``payload_sum``, its sum16, when the caller has it)."""
    if len(payload) > MAX_SEGMENT:
        raise ValueError(f"a segment carries at most {MAX_SEGMENT} bytes")
    ip_len = 20 + 20 + len(payload)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 0, 0x4000, 64, 6, 0, src,
                               dst))
    struct.pack_into("!H", ip, 10, checksum(bytes(ip)))
    tcp = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF,
                                ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0))
    pseudo = src + dst + struct.pack("!BBH", 0, 6, 20 + len(payload))
    # The headers are whole words, so the payload's words sum on their own.
    total = sum16(pseudo + bytes(tcp)) + (sum16(payload) if payload_sum is None else
                                          payload_sum)
    struct.pack_into("!H", tcp, 16, fold(total))
    mac_dst, mac_src = (SERVER_MAC, CLIENT_MAC) if src == CLIENT_IP else (CLIENT_MAC, SERVER_MAC)
    return mac_dst + mac_src + b"\x08\x00" + bytes(ip) + bytes(tcp)


def tcp_frame(src: bytes, sport: int, dst: bytes, dport: int, seq: int, ack: int,
              flags: int, payload: bytes) -> bytes:
    """One Ethernet + IPv4 + TCP frame carrying ``payload`` (at most MAX_SEGMENT bytes)."""
    return frame_header(src, sport, dst, dport, seq, ack, flags, payload) + payload


def record_header(at: float, size: int) -> bytes:
    """A pcap record's header: ``at`` seconds (since the session start), ``size`` bytes."""
    sec, usec = _timestamp(at)
    return struct.pack("<IIII", sec, usec, size, size)


def record(at: float, frame: bytes) -> bytes:
    """A pcap record: ``at`` seconds (since the session start), the frame whole."""
    return record_header(at, len(frame)) + frame


class TcpConversation:
    """One channel's TCP stream as pcap records: ``open`` once, then ``sent`` (client to
    server) and ``received`` chunks in the order they happened."""

    def __init__(self, client_port: int, generation: int = 0) -> None:
        """``generation``: the channel's how-manieth connection in this file (a reconnect);
        each starts at other sequence numbers, so Wireshark tells the conversations apart
        (same ports and sequence numbers read as one stream, retransmitted)."""
        self.client_port = client_port
        self.client_seq = (CLIENT_ISN + generation * 0x10000000) & 0xFFFFFFFF
        self.server_seq = (SERVER_ISN + generation * 0x10000000) & 0xFFFFFFFF
        self.opened = False

    def open(self, at: float) -> bytes:
        """The three-way handshake (SYN and SYN-ACK each take one sequence number)."""
        self.opened = True
        out = [
            record(at, tcp_frame(CLIENT_IP, self.client_port, SERVER_IP, SERVER_PORT,
                                 self.client_seq, 0, _TCP_SYN, b"")),
            record(at, tcp_frame(SERVER_IP, SERVER_PORT, CLIENT_IP, self.client_port,
                                 self.server_seq, self.client_seq + 1, _TCP_SYN | _TCP_ACK,
                                 b"")),
        ]
        self.client_seq += 1
        self.server_seq += 1
        out.append(record(at, tcp_frame(CLIENT_IP, self.client_port, SERVER_IP, SERVER_PORT,
                                        self.client_seq, self.server_seq, _TCP_ACK, b"")))
        return b"".join(out)

    def sent(self, data: bytes, at: float) -> bytes:
        """Bytes the client wrote."""
        return b"".join(self.sent_parts(data, at))

    def received(self, data: bytes, at: float) -> bytes:
        """Bytes the server wrote."""
        return b"".join(self.received_parts(data, at))

    def sent_parts(self, data: bytes, at: float) -> list[bytes | memoryview]:
        """``sent`` as the pieces of its records (headers, and views of ``data``: no copy),
        for ``os.writev``."""
        out = self._segments(True, data, at)
        self.client_seq = (self.client_seq + len(data)) & 0xFFFFFFFF
        return out

    def received_parts(self, data: bytes, at: float) -> list[bytes | memoryview]:
        out = self._segments(False, data, at)
        self.server_seq = (self.server_seq + len(data)) & 0xFFFFFFFF
        return out

    def _segments(self, from_client: bool, data: bytes, at: float) -> list[bytes | memoryview]:
        """The records of ``data``, each a header (record, Ethernet, IPv4, TCP: one
        ``struct.pack`` with the checksums summed from constants) and a view of its segment.
        The same bytes as ``record(at, tcp_frame(...))``, at a few microseconds a chunk."""
        out: list[bytes | memoryview] = []
        view = memoryview(data)
        if from_client:
            prefix, src, dst = _CLIENT_PREFIX, CLIENT_IP, SERVER_IP
            sport, dport, seq, ack = self.client_port, SERVER_PORT, self.client_seq, \
                self.server_seq
        else:
            prefix, src, dst = _SERVER_PREFIX, SERVER_IP, CLIENT_IP
            sport, dport, seq, ack = SERVER_PORT, self.client_port, self.server_seq, \
                self.client_seq
        # The words every segment of this direction shares (RFC 1071 sums).
        addresses = sum(struct.unpack("!4H", src + dst))
        ip_const = 0x4500 + 0x4000 + 0x4006 + addresses
        tcp_const = addresses + 6 + sport + dport + ((5 << 12) | _TCP_ACK | _TCP_PSH) + 65535
        ack &= 0xFFFFFFFF
        ack_words = (ack >> 16) + (ack & 0xFFFF)
        sec, usec = _timestamp(at)
        for offset in range(0, len(data), MAX_SEGMENT):
            chunk = view[offset:offset + MAX_SEGMENT]
            n = len(chunk)
            s_seq = (seq + offset) & 0xFFFFFFFF
            ip_csum = fold(ip_const + 40 + n)
            tcp_csum = fold(tcp_const + 20 + n + (s_seq >> 16) + (s_seq & 0xFFFF) + ack_words
                            + sum16(chunk))
            out.append(_RECORD.pack(sec, usec, 54 + n, 54 + n) + _FRAME.pack(
                prefix, 0x45, 0, 40 + n, 0, 0x4000, 64, 6, ip_csum, src, dst, sport, dport,
                s_seq, ack, 5 << 4, _TCP_ACK | _TCP_PSH, 65535, tcp_csum, 0))
            out.append(chunk)
        return out


def _timestamp(at: float) -> tuple[int, int]:
    at = max(at, 0.0)
    sec = int(at)
    return sec, min(int(round((at - sec) * 1_000_000)), 999_999)


# A record's header (little-endian) and a frame's headers (Ethernet, IPv4, TCP: network order).
_RECORD = struct.Struct("<IIII")
_FRAME = struct.Struct("!14sBBHHHBBH4s4sHHIIBBHHH")
_CLIENT_PREFIX = SERVER_MAC + CLIENT_MAC + b"\x08\x00"
_SERVER_PREFIX = CLIENT_MAC + SERVER_MAC + b"\x08\x00"
