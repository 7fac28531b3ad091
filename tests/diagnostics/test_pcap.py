"""The pcap writer: file and record headers, segmenting, sequence and acknowledgement numbers,
checksums, and, with tshark (installed by scripts/setup.sh), a SPICE conversation that
Wireshark's dissector decodes from its link phase on, nothing malformed."""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from ryll.diagnostics import pcap
from ryll.protocol.constants import ChannelType, CommonCap, MainClient, MainServer
from ryll.protocol.link import build_link_message
from tests.session.spice_server import LINK_REPLY, main_init, mini


def parse(data: bytes) -> list[tuple[float, bytes]]:
    """(time, frame) records of a pcap file, checking the file header."""
    magic, major, minor, _, _, snaplen, link = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor, snaplen, link) == (0xA1B2C3D4, 2, 4, pcap.SNAPLEN, 1)
    out, pos = [], 24
    while pos < len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, pos)
        assert incl == orig <= pcap.SNAPLEN
        out.append((sec + usec / 1e6, data[pos + 16:pos + 16 + incl]))
        pos += 16 + incl
    assert pos == len(data)
    return out


def tcp_of(frame: bytes) -> tuple[str, int, int, int, int, bytes]:
    """(direction, seq, ack, flags, window, payload) of one frame, its checksums verified."""
    assert frame[12:14] == b"\x08\x00"
    ip = frame[14:34]
    assert pcap.checksum(ip) == 0
    total = struct.unpack_from("!H", ip, 2)[0]
    assert len(frame) == 14 + total
    src, dst = ip[12:16], ip[16:20]
    tcp = frame[34:54]
    payload = frame[54:]
    pseudo = src + dst + struct.pack("!BBH", 0, 6, 20 + len(payload))
    assert pcap.checksum(pseudo + tcp + payload) == 0
    sport, dport, seq, ack, _, flags, window = struct.unpack_from("!HHIIBBH", tcp)
    direction = "out" if (src, dport) == (pcap.CLIENT_IP, pcap.SERVER_PORT) else "in"
    if direction == "in":
        assert (src, sport, dst) == (pcap.SERVER_IP, pcap.SERVER_PORT, pcap.CLIENT_IP)
    return direction, seq, ack, flags, window, payload


def test_handshake_then_sequence_numbers_follow_the_bytes() -> None:
    conv = pcap.TcpConversation(pcap.channel_port("main"))
    data = conv.open(0.0) + conv.sent(b"a" * 10, 0.1) + conv.received(b"b" * 7, 0.2)
    data += conv.sent(b"c" * 3, 0.3)
    frames = [tcp_of(f) for _, f in parse(pcap.global_header() + data)]
    assert [(d, s, a, fl) for d, s, a, fl, _, _ in frames] == [
        ("out", 1000, 0, 0x02),
        ("in", 2000, 1001, 0x12),
        ("out", 1001, 2001, 0x10),
        ("out", 1001, 2001, 0x18),
        ("in", 2001, 1011, 0x18),
        ("out", 1011, 2008, 0x18),
    ]
    assert [p for *_, p in frames] == [b"", b"", b"", b"a" * 10, b"b" * 7, b"c" * 3]


def test_a_chunk_over_one_segment_is_split() -> None:
    conv = pcap.TcpConversation(10002)
    conv.open(0.0)
    body = bytes(range(256)) * 600  # 153,600 bytes
    frames = [tcp_of(f) for _, f in parse(pcap.global_header() + conv.received(body, 1.5))]
    assert [len(p) for *_, p in frames] == [65495, 65495, 153600 - 2 * 65495]
    assert [s for _, s, *_ in frames] == [2001, 2001 + 65495, 2001 + 2 * 65495]
    assert b"".join(p for *_, p in frames) == body
    assert conv.server_seq == 2001 + len(body)
    with pytest.raises(ValueError):
        pcap.tcp_frame(pcap.CLIENT_IP, 1, pcap.SERVER_IP, 2, 0, 0, 0x10, b"x" * 65496)


def test_sequence_numbers_wrap_at_32_bits() -> None:
    conv = pcap.TcpConversation(10003)
    conv.open(0.0)
    conv.client_seq = 0xFFFFFFF0
    frames = [tcp_of(f) for _, f in parse(pcap.global_header() + conv.sent(b"x" * 32, 0))]
    assert frames[0][1] == 0xFFFFFFF0 and conv.client_seq == 0x10


def test_times_are_relative_and_never_negative() -> None:
    conv = pcap.TcpConversation(10004)
    data = conv.open(0.0) + conv.sent(b"x", 12.25) + conv.sent(b"y", -1.0)
    data += conv.sent(b"z", 3.9999999)  # rounds within the second, never to 1,000,000 us
    times = [t for t, _ in parse(pcap.global_header() + data)]
    assert times[3:] == [12.25, 0.0, pytest.approx(3.999999, abs=1e-9)]


def test_ports_and_names_are_unique_per_channel() -> None:
    assert pcap.channel_port("main") == 10001 and pcap.channel_port("display") == 10002
    assert pcap.channel_port("inputs") == 10003 and pcap.channel_port("cursor") == 10004
    assert pcap.channel_port("display", 1) == 10102
    names = ["main", "display", "inputs", "cursor", "playback", "record", "usbredir", "port"]
    ports = {pcap.channel_port(n, i) for n in names for i in range(3)}
    assert len(ports) == len(names) * 3
    assert pcap.file_name("display") == "display.pcap"
    assert pcap.file_name("display", 1) == "display-1.pcap"


def test_checksum_known_value() -> None:
    # RFC 1071's example words 0001 f203 f4f5 f6f7 sum to ddf2; the checksum is its complement.
    assert pcap.checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2
    assert pcap.checksum(b"\x01") == 0xFEFF  # an odd byte is padded with zero



def _reference_checksum(data: bytes) -> int:
    """RFC 1071 word by word, end-around carry at each step: what sum16 shortcuts."""
    padded = data + b"\0" * (len(data) & 1)
    total = 0
    for i in range(0, len(padded), 2):
        total += (padded[i] << 8) | padded[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


_RANDOM = random.Random(1071)


@pytest.mark.parametrize("data", [
    b"", b"\0" * 7, b"\xff\xff", b"\xff\xff" * 3 + b"\xff", b"\x00\xff\xff\x00",
    bytes(range(256)) * 2, bytes(range(256)) * 2 + b"\x80",  # either side of the numpy switch
    b"\xff" * 65495, _RANDOM.randbytes(1460), _RANDOM.randbytes(65495), _RANDOM.randbytes(513),
])
def test_sum16_gives_the_word_by_word_checksum(data: bytes) -> None:
    # Both of sum16's ways (a number modulo 0xFFFF, numpy's byte-swapped sum) and the
    # sums that reduce to 0 (all-ones words: one's-complement "minus zero").
    assert pcap.checksum(data) == _reference_checksum(data)

@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (see README)")
def test_tshark_decodes_a_main_channel_conversation(tmp_path: Path) -> None:
    conv = pcap.TcpConversation(pcap.channel_port("main"))
    link = build_link_message(0, ChannelType.MAIN, 0,
                              (CommonCap.PROTOCOL_AUTH_SELECTION, CommonCap.AUTH_SPICE,
                               CommonCap.MINI_HEADER), ())
    data = conv.open(0.0)
    data += conv.sent(link, 0.001)
    data += conv.received(LINK_REPLY, 0.002)
    # The auth mechanism and the (zeroed) ticket as the two writes they are: the dissector
    # reads them as two steps of the link.
    data += conv.sent(struct.pack("<I", 1), 0.003)
    data += conv.sent(bytes(128), 0.003)
    data += conv.received(struct.pack("<I", 0), 0.004)
    data += conv.received(main_init() + mini(MainServer.MULTI_MEDIA_TIME,
                                             struct.pack("<I", 5)), 0.005)
    data += conv.sent(mini(MainClient.ATTACH_CHANNELS), 0.006)
    path = tmp_path / "main.pcap"
    path.write_bytes(pcap.global_header() + data)
    def tshark(*args: str) -> list[str]:
        out = subprocess.run(["tshark", "-r", str(path), "-d", "tcp.port==5900,spice", *args],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    # Nothing malformed, no expert warning or error (the SYN notes are "chat" level).
    assert tshark("-Y", "_ws.malformed or _ws.expert.severity >= 0x600000") == []
    types = [t for line in tshark("-T", "fields", "-e", "spice.message_type")
             for t in line.split(",") if t]
    assert types == [str(int(MainServer.INIT)), str(int(MainServer.MULTI_MEDIA_TIME)),
                     str(int(MainClient.ATTACH_CHANNELS))]


@pytest.mark.parametrize("size", [0, 1, 2, 3, 37, 256, 257, 1000, 65494, 65495, 65496, 140001])
def test_the_fast_path_is_the_generic_frame_byte_for_byte(size: int) -> None:
    """TcpConversation builds its headers from constant sums; they must equal tcp_frame's."""
    data = bytes((i * 7 + size) & 0xFF for i in range(size))
    for client_seq, server_seq in ((1000, 2000), (0xFFFFFF00, 0xFFFFFFF0)):
        for sent in (True, False):
            conv = pcap.TcpConversation(10102)
            conv.client_seq, conv.server_seq = client_seq, server_seq
            got = conv.sent(data, 2.5) if sent else conv.received(data, 2.5)
            seq, ack = (client_seq, server_seq) if sent else (server_seq, client_seq)
            want = b""
            for off in range(0, size, pcap.MAX_SEGMENT):
                chunk = data[off:off + pcap.MAX_SEGMENT]
                ends = ((pcap.CLIENT_IP, 10102, pcap.SERVER_IP, pcap.SERVER_PORT) if sent else
                        (pcap.SERVER_IP, pcap.SERVER_PORT, pcap.CLIENT_IP, 10102))
                want += pcap.record(2.5, pcap.tcp_frame(*ends, seq + off, ack, 0x18, chunk))
            assert got == want


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (see README)")
def test_a_reconnect_is_a_second_conversation_wireshark_decodes(tmp_path: Path) -> None:
    data = pcap.global_header()
    for generation in (0, 1):
        conv = pcap.TcpConversation(pcap.channel_port("main"), generation)
        at = 5.0 * generation
        data += conv.open(at) + conv.sent(build_link_message(
            0, ChannelType.MAIN, 0, (CommonCap.PROTOCOL_AUTH_SELECTION, CommonCap.AUTH_SPICE,
                                     CommonCap.MINI_HEADER), ()), at)
        data += conv.received(LINK_REPLY, at) + conv.sent(struct.pack("<I", 1), at)
        data += conv.sent(bytes(128), at) + conv.received(struct.pack("<I", 0), at)
        data += conv.received(main_init(), at + 0.1)
    path = tmp_path / "main.pcap"
    path.write_bytes(data)
    out = subprocess.run(["tshark", "-r", str(path), "-d", "tcp.port==5900,spice", "-T",
                          "fields", "-e", "tcp.stream", "-e", "spice.message_type"],
                         capture_output=True, text=True, timeout=60).stdout.splitlines()
    decoded = [line.split("\t") for line in out if line.split("\t")[1]]
    assert decoded == [["0", str(int(MainServer.INIT))], ["1", str(int(MainServer.INIT))]]
