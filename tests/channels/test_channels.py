"""The sans-IO channel handlers, driven by the server messages of a real session.

Each channel's server-to-client messages from ``seabios-qxl.spicecap`` are re-framed and fed
to a fresh handler; what it sends back is compared with what the real client sent in the same
session, message by message.
"""

from __future__ import annotations

import logging
import struct
import uuid

import pytest
from tests.fixtures.loader import body, channel_records, records, server_records
from tests.fixtures.records import Record

from ryll.channels.base import Channel
from ryll.channels.context import ChannelContext
from ryll.channels.cursor import CursorChannel
from ryll.channels.display import DisplayChannel
from ryll.channels.events import (
    ChannelsListed,
    DisplayMarked,
    DisplayReset,
    DisplayUpdated,
    Event,
    MonitorsChanged,
    MouseModeChanged,
    ServerDisconnecting,
    ServerNotified,
    ServerPinged,
    SessionInitialized,
    SurfaceCreated,
    SurfaceDestroyed,
    WaitRequested,
)
from ryll.channels.inputs import InputsChannel
from ryll.channels.main import MainChannel
from ryll.protocol.constants import (
    BaseClient,
    BaseServer,
    ChannelType,
    DisplayClient,
    DisplayServer,
    InputsServer,
    MainClient,
    MainServer,
    SurfaceFmt,
)
from ryll.protocol.framing import MessageFramer, MessageWriter
from ryll.protocol.messages.base import WaitChannel, parse_ping
from ryll.protocol.messages.draw import Rect
from ryll.protocol.messages.main import ChannelId

D, M, IN, C = ChannelType.DISPLAY, ChannelType.MAIN, ChannelType.INPUTS, ChannelType.CURSOR

SURFACE_CREATE = body(D, DisplayServer.SURFACE_CREATE)
MONITORS = body(D, DisplayServer.MONITORS_CONFIG)
DISPLAY_PING = body(D, BaseServer.PING)
MAIN_PING = body(M, BaseServer.PING)
NOTIFY = body(M, BaseServer.NOTIFY)
# An opcode spice.proto reserves on the display channel (gap 127-301): nothing defines it.
UNKNOWN_OPCODE = 200


def frame(mtype: int, data: bytes = b"", mini: bool = True) -> bytes:
    return MessageWriter(mini).build(mtype, data)


def replay(ch: Channel, recs: list[Record]) -> list[Event]:
    events: list[Event] = []
    for r in recs:
        events.extend(ch.receive_data(frame(r.opcode, r.body)))
    return events


def sent(ch: Channel) -> list[tuple[int, bytes]]:
    """What the handler queued, parsed back from the bytes it would write."""
    return [(m.type, m.body) for m in MessageFramer(True).feed(ch.data_to_send())]


def captured_out(channel_type: int) -> list[tuple[int, bytes]]:
    return [(r.opcode, r.body) for r in channel_records(channel_type, "out")]


def _is_protocol_fault(key: str) -> bool:
    return any(kind in key for kind in (":hexdump", ":malformed:", ":orphan:"))


def main_replayed(ctx: ChannelContext) -> tuple[MainChannel, list[Event]]:
    ch = MainChannel(0, ctx)
    return ch, replay(ch, server_records(M))


# --- main ---------------------------------------------------------------------------------


def test_main_replies_match_the_real_client() -> None:
    ch, _ = main_replayed(ChannelContext())
    out = sent(ch)
    expected = captured_out(M)
    # The capture left out the ~250 KB bandwidth-probe PING (id 3, over its 64 KiB limit) but
    # kept our PONG to it; every other reply must be identical and in the same order.
    probe_pong = [p for p in expected if p[0] == BaseClient.PONG and p[1][:4] == b"\x03\0\0\0"]
    assert len(probe_pong) == 1
    expected.remove(probe_pong[0])
    assert out == expected
    assert out[0] == (MainClient.ATTACH_CHANNELS, b"")


def test_main_state_and_events() -> None:
    ctx = ChannelContext()
    ch, events = main_replayed(ctx)
    st = ctx.state
    assert st.session_id == 0xE38630B0
    assert st.name == "ryll-testvm"
    assert st.uuid == uuid.UUID(int=0)
    assert st.ram_hint == 0x02FFE000
    assert ch.agent.connected is False and ch.agent.tokens == 10
    assert (st.supported_mouse_modes, st.current_mouse_mode) == (1, 1)
    assert st.mm_time == 0x003C0037
    listed = ChannelsListed((ChannelId(D, 0), ChannelId(C, 0), ChannelId(IN, 0)))
    pings = [e for e in events if isinstance(e, ServerPinged)]
    notes = [e for e in events if isinstance(e, ServerNotified)]
    rest = [e for e in events if not isinstance(e, ServerPinged | ServerNotified)]
    assert rest == [SessionInitialized(0xE38630B0), MouseModeChanged(1, 1), listed]
    assert [(n.channel_type, n.severity) for n in notes] == [(ChannelType.MAIN, "warn")]
    assert notes[0].text.endswith("channel is insecure")
    assert ch.channels == listed.channels
    assert ch.state()["channels_listed"] == [[2, 0], [4, 0], [3, 0]]
    assert ch.stats.pings == 4
    assert [p.channel_type for p in pings] == [ChannelType.MAIN] * 4  # each PING, in order
    assert len(ctx.gaps) == 0


def test_pong_per_ping_echoes_id_and_time() -> None:
    ch = MainChannel(0, ChannelContext())
    pings = [r.body for r in server_records(M) if r.opcode == BaseServer.PING]
    for p in pings:
        ch.receive_data(frame(BaseServer.PING, p + bytes(32)))  # padded, as the probe is
    out = sent(ch)
    assert [o[0] for o in out] == [BaseClient.PONG] * len(pings)
    for p, (_, pong) in zip(pings, out, strict=True):
        ping = parse_ping(p)
        assert struct.unpack("<IQ", pong) == (ping.id, ping.timestamp)


def test_notify_is_logged_with_its_severity(caplog: pytest.LogCaptureFixture) -> None:
    ch = MainChannel(0, ChannelContext())
    with caplog.at_level(logging.INFO, logger="ryll.main"):
        ch.receive_data(frame(BaseServer.NOTIFY, NOTIFY))
        # Mutations of the severity field (after the u64 time): ERROR 2, INFO 0.
        ch.receive_data(frame(BaseServer.NOTIFY, NOTIFY[:8] + b"\x02" + NOTIFY[9:]))
        ch.receive_data(frame(BaseServer.NOTIFY, NOTIFY[:8] + b"\x00" + NOTIFY[9:]))
    recs = [r for r in caplog.records if r.name == "ryll.main"]
    # spice-server's WARN "keyboard channel is insecure" (every plain link) is advice: INFO.
    assert [r.levelno for r in recs] == [logging.INFO, logging.ERROR, logging.INFO]
    assert "(warn): keyboard channel is insecure" in recs[0].getMessage()
    assert "(error)" in recs[1].getMessage()
    assert "(info)" in recs[2].getMessage()


def test_unknown_base_opcode_on_main() -> None:
    ctx = ChannelContext()
    ch = MainChannel(0, ctx)
    ch.receive_data(frame(50, b"\x01\x02"))
    assert ctx.gaps.counts() == {"main:hexdump:50": 1}


def test_main_unimplemented_message_is_a_named_gap() -> None:
    ctx = ChannelContext()
    ch = MainChannel(0, ctx)
    ch.receive_data(frame(MainServer.MIGRATE_CANCEL, b""))
    assert ctx.gaps.counts() == {"main:unimpl:migrate_cancel": 1}


# --- display ------------------------------------------------------------------------------


def display_after_main() -> tuple[DisplayChannel, ChannelContext]:
    ctx = ChannelContext()
    main_replayed(ctx)
    return DisplayChannel(0, ctx), ctx


def test_display_init_on_start() -> None:
    ch, _ = display_after_main()
    ch.start()
    ((opcode, data),) = sent(ch)
    assert opcode == DisplayClient.INIT
    assert len(data) == 14
    # Derived from MAIN_INIT's ram_hint exactly as the real session derived it.
    assert data == body(D, DisplayClient.INIT, "out")


def test_display_replies_match_the_real_client() -> None:
    ch, _ = display_after_main()
    ch.start()
    replay(ch, server_records(D))
    assert sent(ch) == captured_out(D)


def test_ack_sync_after_set_ack_and_one_ack_per_window() -> None:
    ch = DisplayChannel(0, ChannelContext())
    recs = server_records(D)
    assert recs[0].opcode == BaseServer.SET_ACK
    replay(ch, recs[:1])
    assert sent(ch) == [(BaseClient.ACK_SYNC, b"\x01\0\0\0")]
    assert (ch.ack_generation, ch.ack_window) == (1, 20)
    acks_at = []
    for i, r in enumerate(recs[1:], start=1):
        ch.receive_data(frame(r.opcode, r.body))
        if (BaseClient.ACK, b"") in sent(ch):
            acks_at.append(i)
    after = len(recs) - 1
    assert after >= 100
    assert acks_at == [20 * k for k in range(1, after // 20 + 1)]
    assert ch.stats.acks_sent == after // 20


def test_display_state_events_and_gaps() -> None:
    ch, ctx = display_after_main()
    events = replay(ch, server_records(D))
    structural = [e for e in events if isinstance(e, SurfaceCreated | SurfaceDestroyed)]
    assert structural == [
        SurfaceCreated(0, 0, 640, 480, SurfaceFmt.FMT_32_xRGB, True),
        SurfaceDestroyed(0, 0),
        SurfaceCreated(0, 0, 720, 400, SurfaceFmt.FMT_32_xRGB, True),
    ]
    assert events.count(DisplayMarked(0)) == 2
    assert ch.marks == 2
    assert list(ch.surfaces) == [0]
    surface = ch.surfaces[0]
    assert (surface.width, surface.height, surface.primary) == (720, 400, True)
    assert ch.monitors is not None and ch.monitors.heads[0].width == 720
    # Draws belong to the render layer (its own tests); whatever it names, nothing in this
    # real session may be unknown, malformed or orphaned.
    assert not [k for k in ctx.gaps.counts() if _is_protocol_fault(k)]
    state = ch.state()
    assert state["marks"] == 2
    assert state["surfaces"][0]["format_name"] == "FMT_32_xRGB"  # type: ignore[index]
    assert state["monitors"][0]["height"] == 400  # type: ignore[index]


def test_unknown_opcode_is_one_gap_and_the_channel_keeps_working() -> None:
    ctx = ChannelContext()
    ch = DisplayChannel(0, ctx)
    ch.receive_data(frame(UNKNOWN_OPCODE, MONITORS))
    key = f"display:hexdump:{UNKNOWN_OPCODE}"
    assert [g.key for g in ctx.gaps.take_new()] == [key]
    gap = ctx.gaps.get(key)
    assert gap is not None and gap.count == 1
    assert gap.channel_state is not None and gap.channel_state["channel"] == "display"
    ch.receive_data(frame(UNKNOWN_OPCODE, b""))
    assert gap.count == 2
    assert ctx.gaps.take_new() == []  # a key is new once
    # Still working: PING answered, surface created.
    events = ch.receive_data(frame(BaseServer.PING, DISPLAY_PING) + frame(
        DisplayServer.SURFACE_CREATE, SURFACE_CREATE))
    assert sent(ch) == [(BaseClient.PONG, DISPLAY_PING)]
    assert events == [SurfaceCreated(0, 0, 640, 480, 32, True),
                      DisplayUpdated(0, 0, Rect(0, 0, 480, 640))]  # the new surface, black


def test_reset_clears_the_primary_and_the_palettes_and_unmarks() -> None:
    """spice-gtk display_handle_reset: the primary canvas cleared (black on xRGB), the palette
    cache emptied, mark FALSE; the server draws again after it."""
    ctx = ChannelContext()
    ch = DisplayChannel(0, ctx)
    ch.receive_data(frame(DisplayServer.SURFACE_CREATE, SURFACE_CREATE) +
                    frame(DisplayServer.MARK))
    assert ch.marked
    ch.surfaces[0].pixels[...] = 200
    ctx.display_shared.palettes.put(7, (1, 2, 3))
    events = ch.receive_data(frame(DisplayServer.RESET))
    assert events == [DisplayUpdated(0, 0, Rect(0, 0, 480, 640)), DisplayReset(0)]
    assert not ch.marked and ch.resets == 1
    assert (ch.surfaces[0].pixels[..., :3] == 0).all()
    assert (ch.surfaces[0].pixels[..., 3] == 255).all()
    assert ctx.display_shared.palettes.get(7) is None
    assert list(ch.surfaces) == [0] and len(ctx.gaps) == 0  # the surface stays
    assert ch.receive_data(frame(DisplayServer.MARK)) == [DisplayMarked(0)]
    assert ch.marked


def test_truncated_surface_create_is_a_malformed_gap() -> None:
    ctx = ChannelContext()
    ch = DisplayChannel(0, ctx)
    events = ch.receive_data(frame(DisplayServer.SURFACE_CREATE, SURFACE_CREATE[:10]))
    assert events == []
    assert ch.surfaces == {}
    gap = ctx.gaps.get("display:malformed:surface_create")
    assert gap is not None and "surface_create" in gap.detail
    # The next message is handled normally.
    assert ch.receive_data(frame(DisplayServer.SURFACE_CREATE, SURFACE_CREATE))[0] == \
        SurfaceCreated(0, 0, 640, 480, 32, True)


def test_orphan_surface_destroy() -> None:
    ctx = ChannelContext()
    DisplayChannel(0, ctx).receive_data(frame(DisplayServer.SURFACE_DESTROY, b"\x05\0\0\0"))
    assert "display:orphan:surface_destroy" in ctx.gaps


def _list_body(subs: list[tuple[int, bytes]]) -> bytes:
    # spice.proto / protocol.h: SpiceSubMessageList (u16 size, u32 offsets[]) then
    # SpiceSubMessage records (u16 type, u32 size, body).
    pos = 2 + 4 * len(subs)
    offsets, blobs = [], b""
    for mtype, data in subs:
        offsets.append(pos + len(blobs))
        blobs += struct.pack("<HI", mtype, len(data)) + data
    return struct.pack(f"<H{len(subs)}I", len(subs), *offsets) + blobs


def test_list_sub_messages_are_handled_in_order() -> None:
    ctx = ChannelContext()
    ch = DisplayChannel(0, ctx)
    data = _list_body([
        (DisplayServer.SURFACE_CREATE, SURFACE_CREATE),
        (DisplayServer.MARK, b""),
        (DisplayServer.SURFACE_DESTROY, b"\0\0\0\0"),
        (DisplayServer.MONITORS_CONFIG, MONITORS),
        (BaseServer.PING, DISPLAY_PING),
    ])
    events = ch.receive_data(frame(BaseServer.LIST, data))
    assert events == [SurfaceCreated(0, 0, 640, 480, 32, True),
                      DisplayUpdated(0, 0, Rect(0, 0, 480, 640)), DisplayMarked(0),
                      SurfaceDestroyed(0, 0), MonitorsChanged(0, ((0, 0, 0, 0, 640, 480),))]
    assert ch.monitors is not None and ch.monitors.heads[0].width == 640
    assert sent(ch) == [(BaseClient.PONG, DISPLAY_PING)]
    assert len(ctx.gaps) == 0
    assert ch.stats.messages_in == 1


def test_malformed_list_is_a_gap() -> None:
    ctx = ChannelContext()
    ch = DisplayChannel(0, ctx)
    data = _list_body([(DisplayServer.SURFACE_CREATE, SURFACE_CREATE)])
    assert ch.receive_data(frame(BaseServer.LIST, data[:-1])) == []
    assert "display:malformed:list" in ctx.gaps


def test_full_header_display_channel() -> None:
    ctx = ChannelContext()
    main_replayed(ctx)
    ch = DisplayChannel(0, ctx, mini_header=False)
    writer = MessageWriter(False)
    recs = server_records(D)[:6]
    events: list[Event] = []
    for r in recs:
        events.extend(ch.receive_data(writer.build(r.opcode, r.body)))
    assert ch.last_serial == 6
    assert SurfaceCreated(0, 0, 640, 480, 32, True) in events
    out = MessageFramer(False).feed(ch.data_to_send())
    assert [(m.type, m.body) for m in out] == [(BaseClient.ACK_SYNC, b"\x01\0\0\0")]
    assert [m.serial for m in out] == [1]


def test_wait_for_channels_and_disconnecting_events() -> None:
    ch = DisplayChannel(0, ChannelContext())
    # spice.proto layouts: WAIT_FOR_CHANNELS u8 count + {u8 type, u8 id, u64 serial};
    # DISCONNECTING u64 time + u32 reason.
    wait = struct.pack("<BBBQ", 1, ChannelType.CURSOR, 0, 3)
    assert ch.receive_data(frame(BaseServer.WAIT_FOR_CHANNELS, wait)) == [
        WaitRequested(ChannelType.DISPLAY, 0, (WaitChannel(4, 0, 3),))
    ]
    assert ch.receive_data(frame(BaseServer.DISCONNECTING, struct.pack("<QI", 1, 2))) == [
        ServerDisconnecting(ChannelType.DISPLAY, 0, 2)
    ]
    assert ch.disconnect_reason == 2


def test_tap_sees_both_directions() -> None:
    seen: list[tuple[int, int, str, int, bytes]] = []
    ctx = ChannelContext(tap=lambda *a: seen.append(a))
    ch = DisplayChannel(0, ctx)
    ch.receive_data(frame(BaseServer.PING, DISPLAY_PING))
    assert seen == [
        (D, 0, "in", BaseServer.PING, DISPLAY_PING),
        (D, 0, "out", BaseClient.PONG, DISPLAY_PING),
    ]


# --- inputs and cursor --------------------------------------------------------------------


def test_inputs_replay() -> None:
    ctx = ChannelContext()
    ch = InputsChannel(0, ctx)
    replay(ch, server_records(IN))
    assert sent(ch) == captured_out(IN)
    assert ch.modifiers == 0
    ch.receive_data(frame(InputsServer.KEY_MODIFIERS, b"\x04\x00"))
    ch.receive_data(frame(InputsServer.MOUSE_MOTION_ACK))
    assert (ch.modifiers, ch.motion_acks) == (4, 1)
    assert ch.state()["modifiers"] == 4
    assert len(ctx.gaps) == 0


def test_cursor_replay() -> None:
    ctx = ChannelContext()
    ch = CursorChannel(0, ctx)
    replay(ch, server_records(C))
    assert sent(ch) == captured_out(C)
    assert sent(ch) == []  # drained
    # SeaBIOS has no hardware cursor: INIT carries the NONE flag, so no shape and hidden.
    assert (ch.x, ch.y, ch.visible, ch.trail) == (0, 0, False, (0, 0))
    assert ch.shape is None
    assert len(ctx.gaps) == 0


def test_cursor_reset_hides() -> None:
    ch = CursorChannel(0, ChannelContext())
    recs = server_records(C)
    reset_at = next(i for i, r in enumerate(recs) if r.opcode == 102)  # CURSOR_RESET
    replay(ch, recs[: reset_at + 1])
    assert ch.visible is False and ch.shape is None


def test_one_context_shared_by_all_four_channels() -> None:
    ctx = ChannelContext()
    chans: dict[int, Channel] = {
        M: MainChannel(0, ctx), D: DisplayChannel(0, ctx),
        IN: InputsChannel(0, ctx), C: CursorChannel(0, ctx),
    }
    started = False
    for r in records():
        if r.channel_type == D and not started:
            # The session links (and starts) the display after MAIN_INIT, as in the capture.
            chans[D].start()
            started = True
        if r.direction == "in":
            chans[r.channel_type].receive_data(frame(r.opcode, r.body))
    assert ctx.state.session_id == 0xE38630B0
    # Every message of the real session is handled and every image decoded: no gap at all.
    assert ctx.gaps.counts() == {}
    display = chans[D]
    assert isinstance(display, DisplayChannel)
    primary = [s for s in display.surfaces.values() if s.primary]
    assert primary and primary[0].pixels[..., :3].any()  # the SeaBIOS text was drawn
    for ctype in (D, IN, C):
        assert sent(chans[ctype]) == captured_out(ctype)
