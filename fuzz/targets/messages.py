"""Harnesses of the message parsers, one per module of ryll.protocol.messages. The first
input byte picks the parser (modulo their number), the rest is the message body.

Contract: a parser returns its dataclass or raises ProtocolError (a RyllError), whatever the
body holds.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from fuzz import seeds as S
from fuzz.target import Target
from ryll.errors import RyllError
from ryll.protocol.constants import ChannelType, CursorServer
from ryll.protocol.messages import audio, base, cursor, display, draw, inputs, main, port, stream

Parsers = list[tuple[str, Callable[[bytes], object]]]


def selector(parsers: Parsers) -> Callable[[bytes], None]:
    def one_input(data: bytes) -> None:
        if not data:
            return
        _, parse = parsers[data[0] % len(parsers)]
        try:
            parse(data[1:])
        except RyllError:
            return

    return one_input


def select(parsers: Parsers, name: str, body: bytes) -> bytes:
    index = [n for n, _ in parsers].index(name)
    return bytes([index]) + body


ALL_CHANNELS = (ChannelType.MAIN, ChannelType.DISPLAY, ChannelType.INPUTS, ChannelType.CURSOR)

# --- base -----------------------------------------------------------------------------------

BASE: Parsers = [
    ("set_ack", base.parse_set_ack), ("ping", base.parse_ping), ("notify", base.parse_notify),
    ("disconnecting", base.parse_disconnecting),
    ("wait_for_channels", base.parse_wait_for_channels), ("migrate", base.parse_migrate),
]


def base_seeds() -> list[bytes]:
    out = []
    for name, opcode in (("set_ack", 3), ("ping", 4), ("notify", 7)):
        for ch in ALL_CHANNELS:
            out += [select(BASE, name, b) for b in S.bodies(ch, opcode, limit=1)]
    out.append(select(BASE, "notify", struct.pack("<QIIII", 1, 2, 0, 3, 6) + b"hello\0"))
    out.append(select(BASE, "disconnecting", struct.pack("<QI", 5, 1)))
    out.append(select(BASE, "wait_for_channels",
                      struct.pack("<B", 2) + struct.pack("<BBQ", 2, 0, 9) * 2))
    out.append(select(BASE, "migrate", struct.pack("<I", 3)))
    return out


# --- main -----------------------------------------------------------------------------------

MAIN: Parsers = [
    ("init", main.parse_init), ("channels_list", main.parse_channels_list),
    ("mouse_mode", main.parse_mouse_mode), ("u32", lambda b: main.parse_u32(b, "u32")),
    ("name", main.parse_name), ("uuid", main.parse_uuid),
]


def main_seeds() -> list[bytes]:
    out = []
    for name, opcode in (("init", 103), ("channels_list", 104), ("name", 113), ("uuid", 114),
                         ("mouse_mode", 105), ("u32", 106)):
        out += [select(MAIN, name, b) for b in S.bodies(ChannelType.MAIN, opcode, limit=2)]
    out.append(select(MAIN, "mouse_mode", struct.pack("<HH", 3, 2)))
    out.append(select(MAIN, "u32", struct.pack("<I", 123456)))
    out.append(select(MAIN, "name", struct.pack("<I", 4) + b"vm\0\0"))
    return out


# --- display ----------------------------------------------------------------------------------

DISPLAY: Parsers = [
    ("surface_create", display.parse_surface_create),
    ("surface_destroy", display.parse_surface_destroy),
    ("monitors_config", display.parse_monitors_config), ("mode", display.parse_mode),
    ("inval_list", display.parse_inval_list), ("inval_palette", display.parse_inval_palette),
]


def display_seeds() -> list[bytes]:
    out = []
    for name, opcode in (("surface_create", 314), ("surface_destroy", 315),
                         ("monitors_config", 317)):
        out += [select(DISPLAY, name, b) for b in S.bodies(ChannelType.DISPLAY, opcode, limit=2)]
    out.append(select(DISPLAY, "mode", struct.pack("<III", 640, 480, 32)))
    out.append(select(DISPLAY, "inval_list",
                      struct.pack("<H", 2) + struct.pack("<BQ", 1, 7) + struct.pack("<BQ", 0, 8)))
    out.append(select(DISPLAY, "inval_palette", struct.pack("<Q", 99)))
    out.append(select(DISPLAY, "monitors_config",
                      struct.pack("<HH", 2, 4) + struct.pack("<7I", 0, 0, 640, 480, 0, 0, 0)
                      + struct.pack("<7I", 1, 0, 320, 200, 640, 0, 0)))
    return out


# --- stream -----------------------------------------------------------------------------------

STREAM: Parsers = [
    ("stream_create", stream.parse_stream_create), ("stream_data", stream.parse_stream_data),
    ("stream_data_sized", stream.parse_stream_data_sized),
    ("stream_clip", stream.parse_stream_clip), ("stream_destroy", stream.parse_stream_destroy),
    ("stream_activate_report", stream.parse_stream_activate_report),
]


def sized_from_data(body: bytes) -> bytes:
    """A STREAM_DATA_SIZED body from a STREAM_DATA one (spice.proto's layout)."""
    sid, mm_time, size = struct.unpack_from("<III", body)
    return struct.pack("<IIII4iI", sid, mm_time, 32, 48, 10, 20, 58, 52, size) + body[12:]


def stream_seeds() -> list[bytes]:
    out = []
    for name, opcode in (("stream_create", 122), ("stream_data", 123), ("stream_clip", 124),
                         ("stream_destroy", 125), ("stream_activate_report", 319)):
        out += [select(STREAM, name, b) for b in S.bodies(ChannelType.DISPLAY, opcode, limit=3)]
    for b in S.bodies(ChannelType.DISPLAY, 123, limit=1):
        out.append(select(STREAM, "stream_data_sized", sized_from_data(b)))
    return out


# --- cursor -----------------------------------------------------------------------------------

CURSOR: Parsers = [
    ("init", cursor.parse_init), ("set", cursor.parse_set), ("move", cursor.parse_move),
    ("trail", cursor.parse_trail), ("inval_one", cursor.parse_inval_one),
]


def cursor_seeds() -> list[bytes]:
    names = {CursorServer.INIT: "init", CursorServer.SET: "set", CursorServer.MOVE: "move"}
    seen: dict[bytes, None] = {}
    for opcode, body in S.cursor_fixture_messages():
        if opcode in names:
            seen[select(CURSOR, names[CursorServer(opcode)], body)] = None
    out = list(seen)
    out.append(select(CURSOR, "trail", struct.pack("<HH", 4, 10)))
    out.append(select(CURSOR, "inval_one", struct.pack("<Q", 5)))
    out.append(select(CURSOR, "set", struct.pack("<hhBHQBHHHH", 3, 4, 1, 2, 9, 0, 1, 1, 0, 0)
                      + b"\x01\x02\x03\x04"))
    return out


# --- inputs -----------------------------------------------------------------------------------

INPUTS: Parsers = [("modifiers", lambda b: inputs.parse_modifiers(b, "modifiers"))]


def inputs_seeds() -> list[bytes]:
    out = [select(INPUTS, "modifiers", b)
           for op in (101, 102) for b in S.bodies(ChannelType.INPUTS, op, limit=1)]
    return out + [b"\0\x07\x00"]


# --- draw -------------------------------------------------------------------------------------

DRAW: Parsers = [
    ("draw_copy", draw.parse_draw_copy), ("draw_fill", draw.parse_draw_fill),
    ("draw_opaque", draw.parse_draw_opaque), ("copy_bits", draw.parse_copy_bits),
    ("draw_mask_only", lambda b: draw.parse_mask_only(b, "draw_blackness")),
    ("draw_rop3", draw.parse_draw_rop3), ("draw_transparent", draw.parse_draw_transparent),
    ("draw_alpha_blend", draw.parse_draw_alpha_blend), ("draw_stroke", draw.parse_draw_stroke),
    ("draw_text", draw.parse_draw_text), ("draw_composite", draw.parse_draw_composite),
]
DRAW_OPCODES = {304: "draw_copy", 305: "draw_copy", 302: "draw_fill", 303: "draw_opaque",
                104: "copy_bits", 306: "draw_mask_only", 307: "draw_mask_only",
                308: "draw_mask_only", 309: "draw_rop3", 312: "draw_transparent",
                313: "draw_alpha_blend", 310: "draw_stroke", 311: "draw_text",
                318: "draw_composite"}


def draw_seeds() -> list[bytes]:
    out = [select(DRAW, "draw_copy", b)
           for b in sorted(S.bodies(ChannelType.DISPLAY, 304, limit=200), key=len)[:3]]
    out += [select(DRAW, DRAW_OPCODES[op], body) for op, body in S.synthetic_draws()]
    return out


# --- audio and port ----------------------------------------------------------------------------

AUDIO: Parsers = [
    ("mode", audio.parse_mode), ("playback_start", audio.parse_playback_start),
    ("record_start", audio.parse_record_start), ("data", audio.parse_data),
    ("volume", audio.parse_volume), ("mute", audio.parse_mute),
    ("latency", audio.parse_latency),
]


def audio_seeds() -> list[bytes]:
    return [
        select(AUDIO, "mode", struct.pack("<IH", 5, 3)),
        select(AUDIO, "playback_start", struct.pack("<IHII", 2, 1, 48000, 77)),
        select(AUDIO, "record_start", struct.pack("<IHI", 2, 1, 48000)),
        select(AUDIO, "data", struct.pack("<I", 9) + bytes(range(256)) * 7 + bytes(128)),
        select(AUDIO, "volume", struct.pack("<BHH", 2, 100, 65535)),
        select(AUDIO, "mute", b"\x01"),
        select(AUDIO, "latency", struct.pack("<I", 200)),
    ]


PORT: Parsers = [("init", port.parse_port_init), ("event", port.parse_port_event)]


def port_seeds() -> list[bytes]:
    name = b"org.qemu.monitor.qmp.0\0"
    return [select(PORT, "init", struct.pack("<IIB", len(name), 9, 1) + name),
            select(PORT, "event", b"\x00")]


TARGETS = {
    "msg_audio": Target(selector(AUDIO), audio_seeds, "ryll.protocol.messages.audio parse_*"),
    "msg_port": Target(selector(PORT), port_seeds, "ryll.protocol.messages.port parse_*"),
    "msg_base": Target(selector(BASE), base_seeds, "ryll.protocol.messages.base parse_*"),
    "msg_main": Target(selector(MAIN), main_seeds, "ryll.protocol.messages.main parse_*"),
    "msg_display": Target(selector(DISPLAY), display_seeds,
                          "ryll.protocol.messages.display parse_*"),
    "msg_stream": Target(selector(STREAM), stream_seeds, "ryll.protocol.messages.stream parse_*"),
    "msg_cursor": Target(selector(CURSOR), cursor_seeds, "ryll.protocol.messages.cursor parse_*"),
    "msg_inputs": Target(selector(INPUTS), inputs_seeds,
                         "ryll.protocol.messages.inputs parse_modifiers"),
    "msg_draw": Target(selector(DRAW), draw_seeds, "ryll.protocol.messages.draw parse_* (every "
                       "draw, every SpiceImage type, brushes, masks, paths, strings)"),
}
