"""Every message parser on captured bodies (and truncations of them), and the builders checked
against the bytes the real client sent in the same session."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable

import pytest
from tests.fixtures.loader import bodies, body

from ryll.errors import ProtocolError
from ryll.protocol.constants import (
    BaseClient,
    BaseServer,
    ChannelType,
    CursorFlags,
    CursorServer,
    DisplayClient,
    DisplayServer,
    InputsServer,
    MainServer,
    NotifySeverity,
    NotifyVisibility,
    SurfaceFlags,
    SurfaceFmt,
)
from ryll.protocol.messages import base, cursor, display, inputs, main

D, M, IN, C = ChannelType.DISPLAY, ChannelType.MAIN, ChannelType.INPUTS, ChannelType.CURSOR

SET_ACK = body(D, BaseServer.SET_ACK)
PING = body(M, BaseServer.PING)
NOTIFY = body(M, BaseServer.NOTIFY)
MAIN_INIT = body(M, MainServer.INIT)
NAME = body(M, MainServer.NAME)
UUID = body(M, MainServer.UUID)
CHANNELS_LIST = body(M, MainServer.CHANNELS_LIST)
SURFACE_CREATE = body(D, DisplayServer.SURFACE_CREATE)
SURFACE_CREATE_2 = body(D, DisplayServer.SURFACE_CREATE, index=1)
SURFACE_DESTROY = body(D, DisplayServer.SURFACE_DESTROY)
MONITORS = body(D, DisplayServer.MONITORS_CONFIG)
MONITORS_2 = body(D, DisplayServer.MONITORS_CONFIG, index=1)
INPUTS_INIT = body(IN, InputsServer.INIT)
KEY_MODIFIERS = body(IN, InputsServer.KEY_MODIFIERS)
CURSOR_INIT = body(C, CursorServer.INIT)
DRAW_COPY = body(D, DisplayServer.DRAW_COPY)


# --- base ---------------------------------------------------------------------------------


def test_set_ack() -> None:
    assert base.parse_set_ack(SET_ACK) == base.SetAck(generation=1, window=20)
    assert base.parse_set_ack(body(C, BaseServer.SET_ACK)) == base.SetAck(1, 20)


def test_ping() -> None:
    ping = base.parse_ping(PING)
    assert ping == base.Ping(id=1, timestamp=0xEA66F2C4, padding=0)


def test_ping_padding_counts_trailing_bytes() -> None:
    # spice-server pads its bandwidth-probe PING (the capture dropped the 250 KB one).
    assert base.parse_ping(PING + bytes(1000)).padding == 1000


def test_every_captured_ping_parses_with_increasing_ids_per_channel() -> None:
    for ch in (M, D, IN, C):
        ids = [base.parse_ping(b).id for b in bodies(ch, BaseServer.PING)]
        assert len(ids) >= 2
        assert ids == sorted(ids)


def test_notify() -> None:
    note = base.parse_notify(NOTIFY)
    assert note.text == "keyboard channel is insecure"
    assert note.severity == NotifySeverity.WARN
    assert note.visibility == NotifyVisibility.HIGH
    assert note.what == 0
    assert note.timestamp == struct.unpack_from("<Q", NOTIFY)[0]


def test_notify_length_beyond_body() -> None:
    raw = bytearray(NOTIFY)
    struct.pack_into("<I", raw, 20, len(NOTIFY))  # message_len, after u64 + 3 x u32
    with pytest.raises(ProtocolError, match="notify: message needs"):
        base.parse_notify(bytes(raw))


def test_notify_text_is_cut_for_logs() -> None:
    text = b"A" * (base.MAX_NOTIFY_TEXT + 100)
    raw = NOTIFY[:20] + struct.pack("<I", len(text)) + text
    assert len(base.parse_notify(raw).text) == base.MAX_NOTIFY_TEXT


def test_disconnecting_round_trip() -> None:
    # spice.proto: message disconnecting { uint64 time_stamp; link_err reason; }
    data = base.build_disconnecting(0x393A36B9817, 8)
    assert len(data) == 12
    assert base.parse_disconnecting(data) == base.Disconnecting(0x393A36B9817, 8)


def test_wait_for_channels() -> None:
    # spice.proto: uint8 wait_count; WaitForChannel { uint8 type; uint8 id; uint64 serial }[].
    data = struct.pack("<B", 2) + struct.pack("<BBQ", 2, 0, 5) + struct.pack("<BBQ", 4, 0, 7)
    assert base.parse_wait_for_channels(data).channels == (
        base.WaitChannel(2, 0, 5),
        base.WaitChannel(4, 0, 7),
    )
    with pytest.raises(ProtocolError, match="wait_list"):
        base.parse_wait_for_channels(data[:-1])


def test_migrate() -> None:
    # spice.proto: message migrate { migrate_flags flags; } (u32).
    assert base.parse_migrate(struct.pack("<I", 3)) == base.Migrate(3)


def test_pong_echoes_the_captured_ping() -> None:
    pings = bodies(M, BaseServer.PING)
    pongs = bodies(M, BaseClient.PONG, "out")
    assert base.build_pong(base.parse_ping(pings[0])) == pongs[0]
    assert base.build_pong(base.parse_ping(pings[1])) == pongs[1]
    assert base.build_pong(base.parse_ping(PING + bytes(64))) == pongs[0]


def test_ack_sync_matches_the_captured_reply() -> None:
    assert base.build_ack_sync(1) == body(D, BaseClient.ACK_SYNC, "out")
    assert base.build_ack_sync(0x01020304) == b"\x04\x03\x02\x01"


# --- main ---------------------------------------------------------------------------------


def test_main_init() -> None:
    init = main.parse_init(MAIN_INIT)
    assert init == main.MainInit(
        session_id=0xE38630B0,
        display_channels_hint=1,
        supported_mouse_modes=1,
        current_mouse_mode=1,
        agent_connected=0,
        agent_tokens=10,
        multi_media_time=0x003C0037,
        ram_hint=0x02FFE000,
    )


def test_name() -> None:
    # make_captures.py ran the bundled test VM, whose QEMU -name is ryll-testvm.
    assert main.parse_name(NAME) == "ryll-testvm"


def test_name_length_beyond_body() -> None:
    with pytest.raises(ProtocolError, match="name"):
        main.parse_name(struct.pack("<I", 17) + NAME[4:])


def test_uuid() -> None:
    assert main.parse_uuid(UUID) == uuid.UUID(int=0)
    assert main.parse_uuid(bytes(range(16))) == uuid.UUID(bytes=bytes(range(16)))


def test_channels_list() -> None:
    lst = main.parse_channels_list(CHANNELS_LIST)
    assert lst.channels == (
        main.ChannelId(ChannelType.DISPLAY, 0),
        main.ChannelId(ChannelType.CURSOR, 0),
        main.ChannelId(ChannelType.INPUTS, 0),
    )


@pytest.mark.parametrize("n", [4, 1024])
def test_channels_list_count_beyond_body(n: int) -> None:
    with pytest.raises(ProtocolError, match="channels"):
        main.parse_channels_list(struct.pack("<I", n) + CHANNELS_LIST[4:])


def test_channels_list_count_over_limit() -> None:
    with pytest.raises(ProtocolError, match="over the limit"):
        main.parse_channels_list(struct.pack("<I", main.MAX_CHANNELS + 1) + CHANNELS_LIST[4:])


def test_mouse_mode() -> None:
    # spice.proto: message mouse_mode { mouse_modes supported_modes; mouse_mode current_mode; }
    # (u16 each); the values are the captured INIT's supported/current modes.
    init = main.parse_init(MAIN_INIT)
    data = struct.pack("<HH", init.supported_mouse_modes | 2, init.current_mouse_mode)
    assert main.parse_mouse_mode(data) == main.MouseModeMsg(supported=3, current=1)
    assert main.build_mouse_mode_request(2) == b"\x02\x00"


def test_parse_u32() -> None:
    # MULTI_MEDIA_TIME is one u32: the captured INIT's multi_media_time field.
    assert main.parse_u32(MAIN_INIT[24:28], "multi_media_time") == 0x003C0037
    with pytest.raises(ProtocolError, match="agent_token"):
        main.parse_u32(b"\x01\x00", "agent_token")


# --- display ------------------------------------------------------------------------------


def test_surface_create() -> None:
    sc = display.parse_surface_create(SURFACE_CREATE)
    assert sc == display.SurfaceCreate(0, 640, 480, SurfaceFmt.FMT_32_xRGB, SurfaceFlags.PRIMARY)
    sc2 = display.parse_surface_create(SURFACE_CREATE_2)
    assert (sc2.width, sc2.height) == (720, 400)


def test_surface_destroy() -> None:
    assert display.parse_surface_destroy(SURFACE_DESTROY) == 0
    assert display.parse_surface_destroy(b"\x07\x00\x00\x00") == 7


def test_monitors_config_head_field_order() -> None:
    cfg = display.parse_monitors_config(MONITORS)
    assert cfg.max_allowed == 1
    assert cfg.heads == (
        display.Head(id=0, surface_id=0, width=640, height=480, x=0, y=0, flags=0),
    )
    assert display.parse_monitors_config(MONITORS_2).heads[0].width == 720


def test_monitors_config_second_head_distinguishes_every_field() -> None:
    # Mutation: count 2 and a second Head appended in spice.proto's order
    # (monitor_id, surface_id, width, height, x, y, flags), every value distinct.
    raw = struct.pack("<HH", 2, 4) + MONITORS[4:] + struct.pack("<7I", 1, 2, 800, 600, 640, 16, 3)
    cfg = display.parse_monitors_config(raw)
    assert cfg.max_allowed == 4
    assert cfg.heads[1] == display.Head(
        id=1, surface_id=2, width=800, height=600, x=640, y=16, flags=3
    )


def test_monitors_config_count_beyond_body() -> None:
    with pytest.raises(ProtocolError, match="heads"):
        display.parse_monitors_config(struct.pack("<H", 2) + MONITORS[2:])


def test_monitors_config_count_over_limit() -> None:
    with pytest.raises(ProtocolError, match="over the limit"):
        display.parse_monitors_config(struct.pack("<H", display.MAX_HEADS + 1) + MONITORS[2:])


def test_mode() -> None:
    # Legacy MODE { uint32 x_res; uint32 y_res; uint32 bits; }: the captured SURFACE_CREATE's
    # width, height and format (32) have exactly that shape.
    assert display.parse_mode(SURFACE_CREATE[4:16]) == display.DisplayMode(640, 480, 32)


def test_display_init_matches_the_captured_client_message() -> None:
    # The session sent: cache id 1, 80 MiB cache in pixels, dictionary 1, GLZ window of half the
    # INIT's ram_hint, in pixels.
    captured = body(D, DisplayClient.INIT, "out")
    ram_hint = main.parse_init(MAIN_INIT).ram_hint
    built = display.build_display_init(1, (80 << 20) // 4, 1, ram_hint // 2 // 4)
    assert len(built) == 14
    assert built == captured
    assert struct.unpack("<BqBi", built) == (1, 20971520, 1, 6290432)


# --- inputs -------------------------------------------------------------------------------


def test_inputs_modifiers() -> None:
    assert inputs.parse_modifiers(INPUTS_INIT, "inputs init") == 0
    assert inputs.parse_modifiers(KEY_MODIFIERS, "key_modifiers") == 0
    # Mutation: CAPS_LOCK (4) | NUM_LOCK (2).
    assert inputs.parse_modifiers(b"\x06\x00", "key_modifiers") == 6


# --- cursor -------------------------------------------------------------------------------


def test_cursor_init() -> None:
    init = cursor.parse_init(CURSOR_INIT)
    assert (init.x, init.y, init.trail_length, init.trail_frequency, init.visible) == (
        0, 0, 0, 0, 1
    )
    assert init.cursor == cursor.CursorShape(CursorFlags.NONE, None, b"")


def test_cursor_set_from_captured_init_fields() -> None:
    # CURSOR_SET = Point16 position, uint8 visible, Cursor: the captured INIT without its trail.
    data = CURSOR_INIT[:4] + CURSOR_INIT[8:]
    cur = cursor.parse_set(data)
    assert (cur.x, cur.y, cur.visible) == (0, 0, 1)
    assert cur.cursor.header is None


def test_cursor_with_header_and_data() -> None:
    # Mutation: flags 0 (a shape follows), then CursorHeader (spice.proto: uint64 unique,
    # uint8 type, uint16 width, height, hot_spot_x, hot_spot_y) and the image bytes.
    header = struct.pack("<QBHHHH", 0xABC, 0, 2, 2, 1, 1)
    pixels = bytes(range(16))
    data = CURSOR_INIT[:9] + struct.pack("<H", 0) + header + pixels
    shape = cursor.parse_init(data).cursor
    assert shape.header == cursor.CursorHeader(0xABC, 0, 2, 2, 1, 1)
    assert shape.data == pixels
    with pytest.raises(ProtocolError, match="cursor init"):
        cursor.parse_init(CURSOR_INIT[:9] + struct.pack("<H", 0) + header[:10])


def test_cursor_move_trail_inval_one() -> None:
    # MOVE is a Point16 and TRAIL {u16 length, u16 frequency}: slices of the captured INIT.
    assert cursor.parse_move(CURSOR_INIT[:4]) == (0, 0)
    assert cursor.parse_move(struct.pack("<hh", -5, 300)) == (-5, 300)
    assert cursor.parse_trail(CURSOR_INIT[4:8]) == cursor.CursorTrail(0, 0)
    # INVAL_ONE is a u64 cache id: the image id of the captured DRAW_COPY (offset 57).
    assert cursor.parse_inval_one(DRAW_COPY[57:65]) == 0x1_0000_0002


# --- truncation: every parser refuses every short body ------------------------------------

PARSERS: list[tuple[str, Callable[[bytes], object], bytes]] = [
    ("set_ack", base.parse_set_ack, SET_ACK),
    ("ping", base.parse_ping, PING),
    ("notify", base.parse_notify, NOTIFY[:-1]),  # the trailing NUL is beyond message_len
    ("disconnecting", base.parse_disconnecting, base.build_disconnecting(1, 2)),
    ("migrate", base.parse_migrate, struct.pack("<I", 1)),
    ("main init", main.parse_init, MAIN_INIT),
    ("name", main.parse_name, NAME),
    ("uuid", main.parse_uuid, UUID),
    ("channels_list", main.parse_channels_list, CHANNELS_LIST),
    ("mouse_mode", main.parse_mouse_mode, struct.pack("<HH", 3, 1)),
    ("surface_create", display.parse_surface_create, SURFACE_CREATE),
    ("surface_destroy", display.parse_surface_destroy, SURFACE_DESTROY),
    ("monitors_config", display.parse_monitors_config, MONITORS),
    ("mode", display.parse_mode, SURFACE_CREATE[4:16]),
    ("inputs init", lambda b: inputs.parse_modifiers(b, "inputs init"), INPUTS_INIT),
    ("cursor init", cursor.parse_init, CURSOR_INIT),
    ("cursor set", cursor.parse_set, CURSOR_INIT[:4] + CURSOR_INIT[8:]),
    ("cursor move", cursor.parse_move, CURSOR_INIT[:4]),
    ("cursor trail", cursor.parse_trail, CURSOR_INIT[4:8]),
    ("cursor inval_one", cursor.parse_inval_one, DRAW_COPY[57:65]),
]


@pytest.mark.parametrize(("what", "parse", "data"), PARSERS, ids=[p[0] for p in PARSERS])
def test_full_body_parses(what: str, parse: Callable[[bytes], object], data: bytes) -> None:
    assert parse(data) is not None


@pytest.mark.parametrize(("what", "parse", "data"), PARSERS, ids=[p[0] for p in PARSERS])
def test_every_truncation_is_a_protocol_error(
    what: str, parse: Callable[[bytes], object], data: bytes
) -> None:
    for n in range(len(data)):
        with pytest.raises(ProtocolError) as info:
            parse(data[:n])
        assert str(info.value).startswith(what), str(info.value)
