"""The vdagent wire format (protocol/agent.py), checked against the layouts of vd_agent.h."""

from __future__ import annotations

import struct

import pytest

from ryll.protocol import agent as va


def test_header_layout() -> None:
    rec = va.build_message(va.AgentMsg.CLIPBOARD, b"abc", opaque=7)
    # VDAgentMessage: u32 protocol, u32 type, u64 opaque, u32 size, then the data (packed).
    assert rec == struct.pack("<IIQI", 1, 4, 7, 3) + b"abc"
    assert va.HEADER_SIZE == 20


def test_split_at_max_data_size() -> None:
    rec = va.build_message(va.AgentMsg.CLIPBOARD, bytes(5000))
    pieces = va.split(rec)
    assert [len(p) for p in pieces] == [2048, 2048, 5020 - 4096]
    assert b"".join(pieces) == rec
    assert va.split(va.build_message(va.AgentMsg.CLIENT_DISCONNECTED)) == [
        struct.pack("<IIQI", 1, 13, 0, 0)
    ]


def test_reassembly_of_a_message_spanning_pieces() -> None:
    data = bytes(range(256)) * 20
    r = va.Reassembler()
    pieces = va.split(va.build_message(va.AgentMsg.CLIPBOARD, data))
    out = [r.feed(p) for p in pieces]
    assert out[:-1] == [[]] * (len(pieces) - 1)
    assert out[-1] == [va.AgentMessage(va.AgentMsg.CLIPBOARD, data)]
    assert not r.partial


def test_reassembly_header_split_and_two_records_in_one_piece() -> None:
    a = va.build_message(va.AgentMsg.REPLY, va.build_reply(va.AgentMsg.MONITORS_CONFIG))
    b = va.build_message(va.AgentMsg.CLIPBOARD_RELEASE)  # empty body
    c = va.build_message(va.AgentMsg.CLIPBOARD, b"xyz")
    stream = a + b + c
    r = va.Reassembler()
    got = []
    # Cuts inside headers and bodies, and a piece holding the ends and starts of records.
    pieces = [stream[:5], stream[5:19], stream[19:30], stream[30:48], stream[48:]]
    for p in pieces:
        got.extend(r.feed(p))
    assert got == [
        va.AgentMessage(va.AgentMsg.REPLY, va.build_reply(va.AgentMsg.MONITORS_CONFIG)),
        va.AgentMessage(va.AgentMsg.CLIPBOARD_RELEASE, b""),
        va.AgentMessage(va.AgentMsg.CLIPBOARD, b"xyz"),
    ]
    # A zero-size record ending a piece comes out with that piece.
    assert r.feed(b) == [va.AgentMessage(va.AgentMsg.CLIPBOARD_RELEASE, b"")]


def test_oversized_record_is_skipped_and_the_stream_stays_in_step() -> None:
    r = va.Reassembler(max_size=100)
    big = va.build_message(va.AgentMsg.CLIPBOARD, bytes(300))
    small = va.build_message(va.AgentMsg.CLIPBOARD, b"ok")
    items = r.feed_all(va.split(big + small, 64))
    assert isinstance(items[0], va.AgentError) and items[0].reason == "oversized"
    assert items[1:] == [va.AgentMessage(va.AgentMsg.CLIPBOARD, b"ok")]


def test_bad_protocol_resets() -> None:
    r = va.Reassembler()
    bad = struct.pack("<IIQI", 2, 4, 0, 3) + b"abc"
    items = r.feed(bad)
    assert len(items) == 1 and isinstance(items[0], va.AgentError)
    assert items[0].reason == "bad_protocol"
    assert not r.partial
    assert r.feed(va.build_message(4, b"x")) == [va.AgentMessage(4, b"x")]


def test_truncated_record_is_partial() -> None:
    r = va.Reassembler()
    rec = va.build_message(va.AgentMsg.CLIPBOARD, bytes(100))
    assert r.feed(rec[:50]) == []
    assert r.partial
    r.reset()
    assert not r.partial


def test_capability_encoding() -> None:
    caps = [va.AgentCap.MONITORS_CONFIG, va.AgentCap.REPLY, va.AgentCap.CLIPBOARD_SELECTION]
    body = va.build_announce_capabilities(True, caps)
    # VDAgentAnnounceCapabilities: u32 request, then VD_AGENT_CAPS_SIZE (1) u32 words.
    assert body == struct.pack("<II", 1, (1 << 1) | (1 << 2) | (1 << 6))
    ann = va.parse_announce_capabilities(body)
    assert ann.request is True and ann.caps == frozenset(caps)
    # More words than we know: bits beyond 31 still read.
    ann = va.parse_announce_capabilities(struct.pack("<III", 0, 0, 1))
    assert ann == va.AnnounceCapabilities(False, frozenset({32}))
    with pytest.raises(va.AgentError):
        va.parse_announce_capabilities(b"\0\0")
    assert va.cap_names([6, 1, 40]) == ["monitors_config", "clipboard_selection", "cap_40"]


def test_monitors_config_bytes() -> None:
    body = va.build_monitors_config([va.MonitorConfig(800, 600)])
    # num_of_monitors, flags, then VDAgentMonConfig: height, width, depth, x, y.
    assert body == struct.pack("<II", 1, 0) + struct.pack("<IIIii", 600, 800, 32, 0, 0)
    assert va.parse_monitors_config(body) == (0, [va.MonitorConfig(800, 600)])
    with pytest.raises(va.AgentError):
        va.parse_monitors_config(struct.pack("<II", 2, 0) + bytes(20))
    with pytest.raises(ValueError):
        va.build_monitors_config([])


def test_clipboard_messages_with_and_without_selection() -> None:
    grab = va.build_clipboard_grab([va.ClipboardType.UTF8_TEXT], va.Selection.PRIMARY)
    assert grab == b"\x01\0\0\0" + struct.pack("<I", 1)
    assert va.parse_clipboard_grab(grab, True) == (1, (1,))
    assert va.build_clipboard_grab([1, 2]) == struct.pack("<II", 1, 2)
    assert va.parse_clipboard_grab(struct.pack("<II", 1, 2), False) == (0, (1, 2))
    req = va.build_clipboard_request(1, 0)
    assert req == bytes(4) + struct.pack("<I", 1)
    assert va.parse_clipboard_request(req, True) == (0, 1)
    clip = va.build_clipboard(1, "héllo".encode(), 0)
    sel, typ, payload = va.parse_clipboard(clip, True)
    assert (sel, typ, va.decode_text(payload)) == (0, 1, "héllo")
    assert va.decode_text(b"abc\0junk") == "abc"
    assert va.build_clipboard_release(2) == b"\x02\0\0\0"
    assert va.parse_clipboard_release(b"", False) == 0
    for parse in (va.parse_clipboard_request, va.parse_clipboard):
        with pytest.raises(va.AgentError):
            parse(b"\0\0", True)  # type: ignore[operator]


def test_reply() -> None:
    body = va.build_reply(va.AgentMsg.MONITORS_CONFIG)
    assert body == struct.pack("<II", 2, 1)
    assert va.parse_reply(body).ok
    with pytest.raises(va.AgentError):
        va.parse_reply(b"\0")


def test_reassembly_under_random_cuts() -> None:
    import random

    rng = random.Random(5)
    records = [va.AgentMessage(rng.randrange(1, 17), rng.randbytes(rng.randrange(0, 5000)))
               for _ in range(40)]
    stream = b"".join(va.build_message(m.type, m.data) for m in records)
    for _ in range(20):
        r = va.Reassembler()
        got: list[va.AgentMessage | va.AgentError] = []
        pos = 0
        while pos < len(stream):
            n = rng.randrange(1, 3000)
            got.extend(r.feed(stream[pos : pos + n]))
            pos += n
        assert got == records and not r.partial
