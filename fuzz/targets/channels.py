"""Harnesses of the channel handlers on whole (mutated) sessions: the display channel fed the
captured sessions of tests/fixtures and hand-built draws of every kind, the cursor channel, and
the main channel with its vdagent conversation.

Contract: a channel handler never raises (a framing error of the byte stream, a
ProtocolError, ends the channel: the session closes it) and never registers a
``<channel>:internal:<message>`` gap, which is what an unexpected exception becomes.
"""

from __future__ import annotations

import struct

from fuzz import seeds as S
from fuzz.contract import check_gaps
from fuzz.target import Target
from fuzz.targets.protocol import agent_pieces, agent_records
from ryll.channels.base import Channel
from ryll.channels.context import ChannelContext
from ryll.channels.cursor import CursorChannel
from ryll.channels.display import DisplayChannel
from ryll.channels.main import MainChannel
from ryll.channels.playback import PlaybackChannel
from ryll.channels.port import PortChannel
from ryll.channels.record import RecordChannel
from ryll.errors import RyllError
from ryll.protocol import agent as va
from ryll.protocol.constants import (
    MINI_DATA_HEADER_SIZE,
    ChannelType,
    CursorServer,
    DisplayServer,
    MainServer,
    PlaybackServer,
    PortServer,
    RecordCap,
    RecordServer,
)
from ryll.protocol.framing import Message
from ryll.render import cursor as C


def feed(ch: Channel, data: bytes) -> None:
    try:
        ch.receive_data(data, now=1.0)
    except RyllError:
        pass  # the framer refused a header: the session closes the channel


# --- display: the channel fed a server byte stream (mini headers) ----------------------------


def display_one_input(data: bytes) -> None:
    ctx = ChannelContext()
    ch = DisplayChannel(0, ctx)
    feed(ch, data)
    if ch.parked is not None:
        ch.resume(2.0)
        ch.expire(20.0)
    ch.state()
    ch.data_to_send()
    check_gaps(ctx.gaps)


def lenient_messages(data: bytes) -> list[Message]:
    """Mini-header messages whose declared size is cut to what is there, so a mutated size
    shortens one body instead of swallowing the rest of the stream."""
    out, pos = [], 0
    while pos + MINI_DATA_HEADER_SIZE <= len(data):
        opcode, size = struct.unpack_from("<HI", data, pos)
        pos += MINI_DATA_HEADER_SIZE
        out.append(Message(opcode, data[pos:pos + size]))
        pos += size
    return out


def display_messages_one_input(data: bytes) -> None:
    ctx = ChannelContext()
    ch = DisplayChannel(0, ctx)
    for now, message in enumerate(lenient_messages(data)):
        if ch.parked is not None and now % 2:
            ch.resume(float(now))
        ch.handle(message, float(now))
    if ch.parked is not None:
        ch.expire(1e6)
    ch.state()
    check_gaps(ctx.gaps)


def surface_create(sid: int = 0, w: int = 64, h: int = 48, fmt: int = 32, flags: int = 1
                   ) -> tuple[int, bytes]:
    return DisplayServer.SURFACE_CREATE, struct.pack("<5I", sid, w, h, fmt, flags)


def display_seeds() -> list[bytes]:
    out = []
    # hand-built draws of every kind, one per seed, on a 64x48 xRGB primary surface
    draws = list(S.synthetic_draws())
    for op, body in draws:
        out.append(S.wire([surface_create(), (op, body)]))
    # other surface formats, and draws onto a second surface
    for fmt in (8, 16, 80, 96, 1):
        out.append(S.wire([surface_create(), surface_create(1, 16, 12, fmt, 0),
                           *[(op, b[:0] + struct.pack("<I", 1) + b[4:]) for op, b in draws[::5]]]))
    out.append(S.wire([surface_create(), *draws]))  # FROM_CACHE finds the cached image
    out.append(S.wire([surface_create(), (DisplayServer.MARK, b""), (DisplayServer.RESET, b""),
                       (DisplayServer.INVAL_ALL_PALETTES, b""),
                       (DisplayServer.INVAL_LIST, struct.pack("<HBQ", 1, 1, 42)),
                       (DisplayServer.INVAL_ALL_PIXMAPS, struct.pack("<BBBQ", 1, 2, 0, 5)),
                       (DisplayServer.SURFACE_DESTROY, struct.pack("<I", 0))]))
    # the captured sessions: short windows after their SURFACE_CREATE, then whole
    for path in S.all_captures():
        msgs = [(r.opcode, r.body) for r in S.server_records(path, ChannelType.DISPLAY)]
        creates = [m for m in msgs if m[0] == DisplayServer.SURFACE_CREATE][:1]
        rest = [m for m in msgs if m[0] != DisplayServer.SURFACE_CREATE]
        step = 12 if path == S.SESSION else 24
        for i in range(0, min(len(rest), 96), step):
            out.append(S.wire(creates + rest[i:i + step]))
        out.append(S.wire(msgs))
    return out


# --- cursor -----------------------------------------------------------------------------------


def cursor_one_input(data: bytes) -> None:
    ctx = ChannelContext()
    ch = CursorChannel(0, ctx)
    feed(ch, data)
    ch.state()
    check_gaps(ctx.gaps)


def cursor_shape(flags: int, unique: int, ctype: int, w: int, h: int) -> bytes:
    if flags & 1:
        return struct.pack("<H", flags)
    head = struct.pack("<HQBHHHH", flags, unique, ctype, w, h, 1, 1)
    if flags & 4:
        return head
    return head + bytes(range(256)) * (C.cursor_data_size(ctype, w, h) // 256) + bytes(
        C.cursor_data_size(ctype, w, h) % 256)


def cursor_seeds() -> list[bytes]:
    out = [S.wire(S.cursor_fixture_messages())]
    msgs = [(CursorServer.INIT, struct.pack("<hhHHB", 5, 5, 0, 0, 1) + cursor_shape(1, 0, 0, 0, 0))]
    for ctype in range(7):
        msgs.append((CursorServer.SET, struct.pack("<hhB", 1, 2, 1)
                     + cursor_shape(2, 100 + ctype, ctype, 8, 4)))
    msgs += [(CursorServer.SET, struct.pack("<hhB", 3, 3, 1) + cursor_shape(4, 103, 3, 0, 0)),
             (CursorServer.MOVE, struct.pack("<hh", 9, 9)), (CursorServer.HIDE, b""),
             (CursorServer.TRAIL, struct.pack("<HH", 2, 3)),
             (CursorServer.INVAL_ONE, struct.pack("<Q", 101)), (CursorServer.INVAL_ALL, b""),
             (CursorServer.RESET, b"")]
    out.append(S.wire(msgs))
    return out


# --- main (and the vdagent behind it) -------------------------------------------------------


def main_one_input(data: bytes) -> None:
    ctx = ChannelContext()
    ch = MainChannel(0, ctx)
    feed(ch, data)
    ch.state()
    ch.data_to_send()
    check_gaps(ctx.gaps)


def main_init(agent: int = 1, tokens: int = 10) -> tuple[int, bytes]:
    return MainServer.INIT, struct.pack("<8I", 0x1234, 1, 3, 2, agent, tokens, 1000, 64 << 20)


def agent_data(records: list[bytes], cut: int) -> list[tuple[int, bytes]]:
    return [(MainServer.AGENT_DATA, p) for p in agent_pieces(cut, b"".join(records))]


def main_seeds() -> list[bytes]:
    out = [S.wire([(r.opcode, r.body) for r in S.server_records(S.SESSION, ChannelType.MAIN)])]
    caps_plain = va.build_message(va.AgentMsg.ANNOUNCE_CAPABILITIES,
                                  va.build_announce_capabilities(True, [0, 1, 2, 3, 5]))
    caps_sel = va.build_message(va.AgentMsg.ANNOUNCE_CAPABILITIES,
                                va.build_announce_capabilities(False, [0, 1, 2, 3, 5, 6]))
    out.append(S.wire([main_init(), *agent_data([caps_plain, *agent_records(None)[1:]], 3),
                       (MainServer.AGENT_TOKEN, struct.pack("<I", 5))]))
    out.append(S.wire([main_init(0, 0),
                       (MainServer.AGENT_CONNECTED_TOKENS, struct.pack("<I", 4)),
                       *agent_data([caps_sel, *agent_records(0)[1:]], 7),
                       (MainServer.AGENT_DISCONNECTED, struct.pack("<I", 0)),
                       (MainServer.AGENT_CONNECTED, b""),
                       (MainServer.MOUSE_MODE, struct.pack("<HH", 3, 1)),
                       (MainServer.MULTI_MEDIA_TIME, struct.pack("<I", 99))]))
    return out


# --- audio and ports: playback, record (with frames sent), port ----------------------------


def audio_one_input(data: bytes) -> None:
    """The first byte picks playback, record or port; the rest is that channel's stream."""
    if not data:
        return
    ctx = ChannelContext()
    kind = data[0] % 3
    ch: Channel
    if kind == 0:
        ch = PlaybackChannel(0, ctx)
    elif kind == 1:
        rec = RecordChannel(0, ctx)
        rec.server_caps = (1 << RecordCap.OPUS,) if data[0] & 4 else ()
        ch = rec
    else:
        ch = PortChannel(0, ctx)
    feed(ch, data[1:])
    if isinstance(ch, RecordChannel) and ch.recording:
        ch.send_frame(bytes(ch.frame_samples * ch.channels * 2))
    if isinstance(ch, PortChannel):
        ch.take_data()
        ch.write(data[:100])
    ch.state()
    ch.data_to_send()
    check_gaps(ctx.gaps)


def audio_seeds() -> list[bytes]:
    from ryll.audio import OpusEncoder

    start = struct.pack("<IHII", 2, 1, 48000, 0)
    pcm = bytes(range(256)) * 7 + bytes(128)
    opus = OpusEncoder().encode(pcm)[0]
    name = b"org.qemu.monitor.qmp.0\0"
    return [
        b"\x00" + S.wire([(PlaybackServer.MODE, struct.pack("<IH", 0, 1)),
                          (PlaybackServer.START, start),
                          *[(PlaybackServer.DATA, struct.pack("<I", 10 * i) + pcm)
                            for i in range(3)],
                          (PlaybackServer.VOLUME, struct.pack("<BHH", 2, 9, 9)),
                          (PlaybackServer.MUTE, b"\x01"), (PlaybackServer.STOP, b"")]),
        b"\x00" + S.wire([(PlaybackServer.MODE, struct.pack("<IH", 0, 3)),
                          (PlaybackServer.START, start),
                          *[(PlaybackServer.DATA, struct.pack("<I", 10 * i) + opus)
                            for i in range(3)],
                          (PlaybackServer.LATENCY, struct.pack("<I", 100))]),
        b"\x05" + S.wire([(RecordServer.START, struct.pack("<IHI", 2, 1, 48000)),
                          (RecordServer.VOLUME, struct.pack("<BHH", 2, 30000, 30000))]),
        b"\x02" + S.wire([(PortServer.INIT, struct.pack("<IIB", len(name), 9, 1) + name),
                          (PortServer.DATA, b'{"QMP": {}}\r\n'), (PortServer.EVENT, b"\x01")]),
    ]


TARGETS = {
    "audio_port_channels": Target(audio_one_input, audio_seeds, "PlaybackChannel (raw and Opus "
                                  "frames), RecordChannel (frames sent after START), "
                                  "PortChannel"),
    "display_channel": Target(display_one_input, display_seeds, "DisplayChannel on captured "
                              "sessions and hand-built draws (the whole canvas: every draw, "
                              "image decode, cache, stream)"),
    "display_messages": Target(display_messages_one_input, display_seeds, "DisplayChannel."
                               "handle message by message (sizes cut to the input, so a "
                               "mutated size shortens one body), parked draws resumed"),
    "cursor_channel": Target(cursor_one_input, cursor_seeds, "CursorChannel: shapes, cache, "
                             "moves"),
    "main_channel": Target(main_one_input, main_seeds, "MainChannel: INIT, lists, the agent "
                           "conversation through AGENT_DATA"),
}
