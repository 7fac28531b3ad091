"""The bug reports' traffic ring and the pcap reader: caps per channel, message boundaries
followed across chunks, old traffic dropped whole chunks at a time while the exported pcap
still starts each direction at a message, the link phase kept; the reader frames every
message back, including ones Wireshark's dissector stalls on; hostile pcaps are errors."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from ryll.diagnostics import pcap, ring
from ryll.diagnostics.pcap_read import read_conversations
from ryll.errors import ProtocolError
from ryll.protocol.constants import (
    ChannelType,
    CommonCap,
    DisplayClient,
    MainServer,
)
from ryll.protocol.link import build_link_message
from ryll.session.traffic import ChannelKey
from tests.session.spice_server import LINK_REPLY, main_init, mini

MAIN = ChannelKey(ChannelType.MAIN, 0, "main")
DISPLAY = ChannelKey(ChannelType.DISPLAY, 0, "display")
CAPS = (CommonCap.PROTOCOL_AUTH_SELECTION, CommonCap.AUTH_SPICE, CommonCap.MINI_HEADER)


def link(sink: ring.TrafficRing | object, key: ChannelKey, at: float = 0.0) -> None:
    """The link phase as the session shows it: message, reply, mechanism, zeroed ticket,
    result."""
    sink.opened(key, at)  # type: ignore[attr-defined]
    sink.sent(key, build_link_message(0, key.type, key.id, CAPS, ()), at)  # type: ignore
    sink.received(key, LINK_REPLY, at)  # type: ignore[attr-defined]
    sink.sent(key, struct.pack("<I", 1), at)  # type: ignore[attr-defined]
    sink.sent(key, bytes(128), at)  # type: ignore[attr-defined]
    sink.received(key, struct.pack("<I", 0), at)  # type: ignore[attr-defined]
    sink.linked(key, True, at)  # type: ignore[attr-defined]


def test_caps_are_weighted_like_the_rust_ryll() -> None:
    assert ring.channel_cap("display") == 32 * ring.MIB
    assert ring.channel_cap("main") == ring.channel_cap("cursor") == 4 * ring.MIB
    assert ring.channel_cap("inputs") == ring.channel_cap("webdav") == 2 * ring.MIB


def test_boundaries_follow_headers_split_anywhere() -> None:
    stream = mini(7, b"abc") + mini(8, b"") + mini(9, bytes(100))
    starts = [0, 9, 15]
    for cut in range(1, len(stream)):
        b = ring.Boundaries(mini_header=True)
        first, second = b.first_start(stream[:cut]), b.first_start(stream[cut:])
        assert first == 0
        later = [s - cut for s in starts if s >= cut]
        # A header cut in two starts in the first chunk; the second chunk's first start is
        # the first header that begins in it.
        assert second == (later[0] if later else -1), cut


def test_the_ring_drops_old_chunks_and_exports_from_a_boundary() -> None:
    r = ring.TrafficRing(total_bytes=25 * 1000)  # display cap 16,000 bytes
    link(r, DISPLAY)
    body = bytes(range(256)) * 4  # 1024 bytes
    messages = [mini(300 + i % 10, body) for i in range(60)]
    stream = b"".join(messages)
    # Chunks that cut messages anywhere, as reads do.
    pos, at = 0, 1.0
    while pos < len(stream):
        r.received(DISPLAY, stream[pos:pos + 1500], at)
        r.sent(DISPLAY, mini(DisplayClient.INIT, bytes(14)) if pos == 0 else mini(2), at)
        pos += 1500
        at += 0.01
    kept = r.channels[(ChannelType.DISPLAY, 0)]
    assert kept.size <= kept.cap == 16000 and kept.dropped_bytes > 0
    [conv] = read_conversations(r.pcap())
    assert conv.problem is None and conv.channel_type == ChannelType.DISPLAY
    got = [m.type for m in conv.messages if not m.sent]
    # The last messages, whole: the export starts at the first boundary it kept.
    assert 8 <= len(got) < 60
    assert got == [300 + i % 10 for i in range(60 - len(got), 60)]
    assert all(m.size == 1024 for m in conv.messages if not m.sent)
    times = [m.at for m in conv.messages]
    assert times == sorted(times)


def test_a_reconnect_starts_the_channel_over_and_the_pcap_holds_every_channel() -> None:
    r = ring.TrafficRing()
    link(r, MAIN, 0.0)
    r.received(MAIN, main_init(), 0.1)
    link(r, MAIN, 5.0)  # the reconnect
    r.received(MAIN, mini(MainServer.MULTI_MEDIA_TIME, struct.pack("<I", 9)), 5.1)
    link(r, DISPLAY, 5.2)
    r.sent(DISPLAY, mini(DisplayClient.INIT, bytes(14)), 5.3)
    convs = read_conversations(r.pcap())
    assert [(c.name, [m.type for m in c.messages]) for c in convs] == [
        ("main", [MainServer.MULTI_MEDIA_TIME]), ("display", [DisplayClient.INIT])]
    [only] = read_conversations(r.pcap(only=(ChannelType.DISPLAY, 0)))
    assert only.name == "display"
    assert r.summary()["main:0"]["chunks"] == 1  # type: ignore[index]


def test_the_link_phase_is_bounded() -> None:
    r = ring.TrafficRing()
    r.opened(MAIN, 0.0)
    for _ in range(100):
        r.received(MAIN, bytes(4096), 0.0)  # a server that never ends its link reply
    assert r.channels[(ChannelType.MAIN, 0)].link_bytes <= ring.MAX_LINK_BYTES


def test_the_reader_frames_what_wireshark_stalls_on(tmp_path: Path) -> None:
    conv = pcap.TcpConversation(pcap.channel_port("display"))
    data = pcap.global_header() + conv.open(0.0)
    data += conv.sent(build_link_message(0, ChannelType.DISPLAY, 0, CAPS, ()), 0.0)
    data += conv.received(LINK_REPLY, 0.0) + conv.sent(struct.pack("<I", 1), 0.0)
    data += conv.sent(bytes(128), 0.0) + conv.received(struct.pack("<I", 0), 0.0)
    report = struct.pack("<IIIIIIiI", 1, 0x12345678, 0, 0, 5, 0, -1, 0)
    data += conv.sent(mini(DisplayClient.STREAM_REPORT, report) + mini(2), 0.5)
    data += conv.sent(mini(2), 0.6)
    [read] = read_conversations(data)
    assert [(m.sent, m.type, m.size, m.at) for m in read.messages] == [
        (True, DisplayClient.STREAM_REPORT, 32, 0.5), (True, 2, 0, 0.5), (True, 2, 0, 0.6)]
    if shutil.which("tshark"):
        path = tmp_path / "display.pcap"
        path.write_bytes(data)
        out = subprocess.run(["tshark", "-r", str(path), "-d", "tcp.port==5900,spice", "-T",
                              "fields", "-e", "spice.message_type"],
                             capture_output=True, text=True, timeout=60).stdout.split()
        # The dissector's limit, documented in pcap_read: it decodes the report's header and
        # then reads its body as a header (when a newer Wireshark fixes this, all three show).
        assert out[0].split(",")[0] == str(int(DisplayClient.STREAM_REPORT))


@pytest.mark.parametrize("data", [
    b"", b"\xd4\xc3\xb2\xa1" + bytes(20),
    pcap.global_header() + struct.pack("<IIII", 0, 0, 1 << 30, 1 << 30),
    pcap.global_header() + struct.pack("<IIII", 0, 0, 100, 100) + bytes(10),
])
def test_hostile_pcaps_are_protocol_errors(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        read_conversations(data)


def test_a_cut_link_phase_is_a_named_problem() -> None:
    conv = pcap.TcpConversation(pcap.channel_port("main"))
    data = pcap.global_header() + conv.open(0.0) + conv.sent(b"REDQ", 0.0)
    [read] = read_conversations(data)
    assert read.problem == "the link phase is incomplete" and read.messages == []


def test_a_sink_that_raises_is_dropped_and_the_others_go_on(caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    from ryll.session.traffic import Traffic

    class Broken:
        def opened(self, channel: ChannelKey, at: float) -> None:
            raise OSError("disk full")

    good = ring.TrafficRing()
    broken = Broken()
    traffic = Traffic()
    traffic.add(broken)  # type: ignore[arg-type]
    traffic.add(good)
    traffic.opened(MAIN, 0.0)
    traffic.received(MAIN, b"x", 0.1)
    assert traffic.sinks == (good,) and traffic.failed == [broken]
    assert (ChannelType.MAIN, 0) in good.channels
    assert "disk full" in caplog.text


def test_the_pcap_recorder_writes_what_the_conversation_says(tmp_path: Path) -> None:
    from ryll.diagnostics.capture import PcapRecorder

    rec = PcapRecorder(tmp_path)
    link(rec, DISPLAY, 0.5)
    for i in range(300):  # many small writes, batched by the writer thread
        rec.sent(DISPLAY, mini(2), 1.0 + i / 1000)
    rec.received(DISPLAY, mini(300, bytes(150_000)), 2.0)
    rec.close()
    data = (tmp_path / "display.pcap").read_bytes()
    [conv] = read_conversations(data)
    assert [m.type for m in conv.messages if m.sent] == [2] * 300
    assert [(m.type, m.size) for m in conv.messages if not m.sent] == [(300, 150_000)]
    assert rec.bytes_written == len(data)


def test_the_pcap_recorder_reports_a_write_error(tmp_path: Path) -> None:
    from ryll.diagnostics.capture import PcapRecorder

    rec = PcapRecorder(tmp_path)
    rec.opened(MAIN, 0.0)
    rec._files[(ChannelType.MAIN, 0)] = os.open(os.devnull, os.O_RDONLY)  # writes fail
    rec.received(MAIN, b"x", 0.1)  # no loop: written at once, and failing
    with pytest.raises(OSError):
        rec.sent(MAIN, b"x", 0.1)  # the session drops the sink on this
    with pytest.raises(OSError):
        rec.close()


@pytest.mark.parametrize(("reply", "problem"), [
    (b"REDQ" + struct.pack("<III", 9, 2, 4) + bytes(4), "protocol 9.2"),
    (b"XXXX" + bytes(16), "not a SPICE server"),
    (b"REDQ" + struct.pack("<III", 2, 2, 999) + bytes(999), "caps_offset"),
])
def test_a_hostile_link_reply_is_a_named_problem(reply: bytes, problem: str) -> None:
    conv = pcap.TcpConversation(pcap.channel_port("main"))
    data = pcap.global_header() + conv.open(0.0)
    data += conv.sent(build_link_message(0, ChannelType.MAIN, 0, CAPS, ()), 0.0)
    data += conv.received(reply, 0.0)
    [read] = read_conversations(data)
    assert read.problem is not None and problem in read.problem and read.messages == []
