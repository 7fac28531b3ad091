"""The port channel: INIT, EVENT and DATA as QEMU sends them (the INIT below is the 32-byte
body QEMU 7.2 sent for its QMP monitor on -chardev spiceport,name=org.qemu.monitor.qmp.0),
our EVENT and DATA, the bounded inbound buffer, and named gaps for malformed messages."""

from __future__ import annotations

import struct

import pytest
from tests.channels.test_channels import frame

from ryll.channels.context import ChannelContext
from ryll.channels.events import PortClosed, PortOpened, PortReady
from ryll.channels.port import INBOUND_LIMIT, MAX_DATA_CHUNK, PortChannel
from ryll.errors import ProtocolError
from ryll.protocol.constants import PortClient, PortServer
from ryll.protocol.framing import MessageFramer
from ryll.protocol.messages.port import parse_port_init

QMP = b"org.qemu.monitor.qmp.0"
# name_size (with the NUL), the name's offset, opened; then the name.
QMP_INIT = struct.pack("<IIB", len(QMP) + 1, 9, 1) + QMP + b"\0"
GREETING = (b'{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, '
            b'"package": "Debian 1:7.2+dfsg-7+deb12u7"}, "capabilities": ["oob"]}}\r\n')


def chan() -> tuple[PortChannel, ChannelContext]:
    ctx = ChannelContext()
    return PortChannel(0, ctx), ctx


def sent(ch: PortChannel) -> list[tuple[int, bytes]]:
    return [(m.type, m.body) for m in MessageFramer(True).feed(ch.data_to_send())]


def test_qemu_init_names_the_port() -> None:
    assert len(QMP_INIT) == 32
    ch, ctx = chan()
    events = ch.receive_data(frame(PortServer.INIT, QMP_INIT))
    assert events == [PortReady(0, "org.qemu.monitor.qmp.0", True)]
    assert ch.port_name == "org.qemu.monitor.qmp.0" and ch.device_open
    assert not ctx.gaps.counts()


@pytest.mark.parametrize(("body", "why"), [
    (struct.pack("<IIB", 0, 9, 1), "name of 0 bytes"),
    (struct.pack("<IIB", 5000, 9, 1) + b"x" * 5000, "name of 5000 bytes"),
    (struct.pack("<IIB", 4, 9, 1) + b"abcd", "not NUL-terminated"),
    (struct.pack("<IIB", 4, 90, 1) + b"abc\0", "outside body"),
    (struct.pack("<IIB", 4, 9, 1) + b"a\xffc\0", "not UTF-8"),
    (struct.pack("<IIB", 4, 9, 1) + b"a\0c\0", "NUL inside"),
    (struct.pack("<IIB", 1, 9, 1) + b"\0", "empty name"),
    (struct.pack("<II", 4, 9), "needs 9 bytes"),
])
def test_malformed_init_is_refused(body: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        parse_port_init(body)
    ch, ctx = chan()
    assert ch.receive_data(frame(PortServer.INIT, body)) == []
    assert ctx.gaps.counts() == {"port:malformed:init": 1}
    assert ch.port_name is None


def test_data_waits_in_the_channel_until_taken() -> None:
    ch, _ = chan()
    ch.receive_data(frame(PortServer.INIT, QMP_INIT))
    ch.receive_data(frame(PortServer.DATA, GREETING[:40]) + frame(PortServer.DATA, GREETING[40:]))
    assert ch.buffered == len(GREETING) and ch.data_in == len(GREETING)
    assert ch.take_data() == GREETING
    assert ch.buffered == 0 and ch.take_data() == b""


def test_a_full_buffer_asks_the_session_to_stop_reading() -> None:
    ch, _ = chan()
    chunk = bytes(64 * 1024)
    while not ch.backed_up:
        ch.receive_data(frame(PortServer.DATA, chunk))
    assert ch.buffered == INBOUND_LIMIT  # nothing dropped, nothing beyond the bound
    ch.take_data()
    assert not ch.backed_up


def test_write_and_break_send_port_messages() -> None:
    """Our end is open while the channel is linked: EVENT goes out only for a BREAK (spice-gtk
    refuses OPENED/CLOSED; QEMU's vmc_event ignores them)."""
    ch, _ = chan()
    ch.write(b'{"execute":"qmp_capabilities"}\n')
    ch.send_break()
    assert sent(ch) == [
        (PortClient.DATA, b'{"execute":"qmp_capabilities"}\n'),
        (PortClient.EVENT, b"\x02"),
    ]
    assert ch.data_out == 31


def test_big_writes_are_split() -> None:
    ch, _ = chan()
    data = bytes(range(256)) * ((2 * MAX_DATA_CHUNK + 100) // 256 + 1)
    ch.write(data)
    msgs = sent(ch)
    tail = len(data) - 2 * MAX_DATA_CHUNK
    assert [len(b) for _, b in msgs] == [MAX_DATA_CHUNK, MAX_DATA_CHUNK, tail]
    assert b"".join(b for _, b in msgs) == data


def test_device_events() -> None:
    ch, ctx = chan()
    ch.receive_data(frame(PortServer.INIT, struct.pack("<IIB", 4, 9, 0) + b"abc\0"))
    assert not ch.device_open
    assert ch.receive_data(frame(PortServer.EVENT, b"\x00")) == [PortOpened(0, "abc")]
    assert ch.device_open
    assert ch.receive_data(frame(PortServer.EVENT, b"\x02")) == []  # BREAK: logged only
    assert ch.receive_data(frame(PortServer.EVENT, b"\x01")) == [PortClosed(0, "abc")]
    assert not ch.device_open
    ch.receive_data(frame(PortServer.EVENT, b"\x07") + frame(PortServer.EVENT, b""))
    assert ctx.gaps.counts() == {"port:malformed:event": 2}  # an unknown one, a short one
    assert ch.events_in == 4


def test_a_renamed_port_and_compressed_data_are_gaps() -> None:
    ch, ctx = chan()
    ch.receive_data(frame(PortServer.INIT, QMP_INIT))
    ch.receive_data(frame(PortServer.INIT, struct.pack("<IIB", 4, 9, 0) + b"abc\0"))
    assert ch.port_name == "org.qemu.monitor.qmp.0"
    ch.receive_data(frame(PortServer.COMPRESSED_DATA, b"\x01\x10\x00\x00\x00xx"))
    assert ctx.gaps.counts() == {"port:malformed:init_renamed": 1,
                                 "port:unimpl:compressed_data": 1}
    assert ch.buffered == 0


def test_the_state_says_what_the_port_did() -> None:
    ch, _ = chan()
    ch.receive_data(frame(PortServer.INIT, QMP_INIT) + frame(PortServer.DATA, GREETING))
    ch.write(b"x")
    state = ch.state()
    assert state["name"] == "org.qemu.monitor.qmp.0"
    assert (state["bytes_in"], state["bytes_out"], state["buffered"]) == (
        len(GREETING), 1, len(GREETING))
    assert state["device_open"]


def test_data_says_the_guest_end_is_open() -> None:
    """spice-gtk port_handle_msg: any data means the other end is open."""
    ch, _ = chan()
    ch.receive_data(frame(PortServer.INIT, struct.pack("<IIB", 4, 9, 0) + b"abc\0"))
    assert not ch.device_open
    ch.receive_data(frame(PortServer.DATA, b"hi"))
    assert ch.device_open
