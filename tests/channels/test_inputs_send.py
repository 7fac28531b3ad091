"""The inputs channel's client side: message bytes, keys, lock state, motion flow control; and
the main channel's mouse-mode requests."""

from __future__ import annotations

import struct

import pytest

from ryll.channels.context import ChannelContext
from ryll.channels.inputs import MOTION_WINDOW, InputsChannel
from ryll.channels.main import MainChannel
from ryll.protocol.constants import (
    INPUT_MOTION_ACK_BUNCH,
    InputsClient,
    InputsServer,
    MainClient,
    MainServer,
)
from ryll.protocol.framing import MessageFramer, MessageWriter
from ryll.protocol.messages import inputs as msgs


def frame(mtype: int, data: bytes = b"") -> bytes:
    return MessageWriter(True).build(mtype, data)


def sent(ch: InputsChannel | MainChannel) -> list[tuple[int, bytes]]:
    return [(m.type, m.body) for m in MessageFramer(True).feed(ch.data_to_send())]


# --- message builders (spice.proto InputsChannel client messages) --------------------------


def test_make_scancode_follows_spice_gtk() -> None:
    # spice_make_scancode: plain keys are the code, | 0x80 on release; 0xE0 keys are the bytes
    # E0, code read little-endian.
    assert msgs.make_scancode(0x1E, False) == 0x1E
    assert msgs.make_scancode(0x1E, True) == 0x9E
    assert msgs.make_scancode(0x148, False) == 0x48E0
    assert msgs.make_scancode(0x148, True) == 0xC8E0
    assert msgs.make_scancode(0x11C, True) == 0x9CE0


def test_key_messages() -> None:
    assert msgs.build_key_down(0x1E) == b"\x1e\0\0\0"
    assert msgs.build_key_up(0x1E) == b"\x9e\0\0\0"
    assert msgs.build_key_down(0x15B) == b"\xe0\x5b\0\0"  # Super_L
    assert msgs.build_key_up(0x15B) == b"\xe0\xdb\0\0"
    assert msgs.build_key_modifiers(0x5) == b"\x05\0"


def test_mouse_messages() -> None:
    assert msgs.build_mouse_motion(-5, 7, 1) == struct.pack("<iiH", -5, 7, 1)
    assert msgs.build_mouse_motion(-5, 7, 1) == b"\xfb\xff\xff\xff\x07\0\0\0\x01\0"
    assert msgs.build_mouse_position(640, 480, 4, 1) == b"\x80\x02\0\0\xe0\x01\0\0\x04\0\x01"
    assert msgs.build_mouse_button(3, 4) == b"\x03\x04\0"


# --- keys and lock state -------------------------------------------------------------------


def test_keys_go_out_as_key_down_and_up() -> None:
    ch = InputsChannel(0, ChannelContext())
    ch.key_down(0x1D)
    ch.key_down(0x153)
    ch.key_up(0x153)
    ch.key_up(0x1D)
    assert sent(ch) == [
        (InputsClient.KEY_DOWN, b"\x1d\0\0\0"), (InputsClient.KEY_DOWN, b"\xe0\x53\0\0"),
        (InputsClient.KEY_UP, b"\xe0\xd3\0\0"), (InputsClient.KEY_UP, b"\x9d\0\0\0"),
    ]
    assert ch.keys_sent == 2


@pytest.mark.parametrize("code", [0, 0x80, 0xFF, 0x100, 0x180, 0x200, -1])
def test_bad_scancodes_are_refused(code: int) -> None:
    ch = InputsChannel(0, ChannelContext())
    with pytest.raises(ValueError):
        ch.key_down(code)
    assert sent(ch) == []


def test_lock_state_follows_server_and_lock_keys() -> None:
    ch = InputsChannel(0, ChannelContext())
    ch.receive_data(frame(InputsServer.INIT, b"\x02\0"))  # num lock
    assert ch.modifiers == 2
    ch.key_down(0x3A)  # Caps Lock toggles our copy at once
    ch.key_up(0x3A)
    assert ch.modifiers == 6
    ch.receive_data(frame(InputsServer.KEY_MODIFIERS, b"\x04\0"))  # the guest's word wins
    assert ch.modifiers == 4
    ch.data_to_send()
    ch.set_key_locks(0x1 | 0x8)
    assert sent(ch) == [(InputsClient.KEY_MODIFIERS, b"\x01\0")]
    assert ch.modifiers == 1


@pytest.mark.parametrize("opcode", [InputsServer.INIT, InputsServer.KEY_MODIFIERS])
def test_malformed_modifiers_are_named_gaps(opcode: int) -> None:
    ctx = ChannelContext()
    ch = InputsChannel(0, ctx)
    ch.receive_data(frame(opcode, b"\x01"))
    ch.receive_data(frame(opcode, b""))
    name = "init" if opcode == InputsServer.INIT else "key_modifiers"
    assert ctx.gaps.counts() == {f"inputs:malformed:{name}": 2}
    assert ch.modifiers == 0


# --- pointer and flow control --------------------------------------------------------------


def test_motion_window_and_coalescing() -> None:
    ch = InputsChannel(0, ChannelContext())
    assert MOTION_WINDOW == 2 * INPUT_MOTION_ACK_BUNCH
    for _ in range(MOTION_WINDOW):
        ch.motion(1, 2)
    assert len(sent(ch)) == MOTION_WINDOW
    for _ in range(5):  # window full: summed, nothing sent
        ch.motion(3, -1)
    assert sent(ch) == []
    ch.receive_data(frame(InputsServer.MOUSE_MOTION_ACK))
    assert sent(ch) == [(InputsClient.MOUSE_MOTION, msgs.build_mouse_motion(15, -5, 0))]
    assert ch.motion_count == MOTION_WINDOW - INPUT_MOTION_ACK_BUNCH + 1
    ch.motion(0, 0)  # no motion, no message
    ch.motion(1, 1)
    assert len(sent(ch)) == 1
    assert ch.motions_coalesced == 5


def test_positions_keep_only_the_latest_while_the_window_is_full() -> None:
    ch = InputsChannel(0, ChannelContext())
    for i in range(MOTION_WINDOW):
        ch.position(i, i)
    assert len(sent(ch)) == MOTION_WINDOW
    ch.position(10, 10)
    ch.position(20, 30, 1)
    assert sent(ch) == []
    ch.receive_data(frame(InputsServer.MOUSE_MOTION_ACK))
    assert sent(ch) == [(InputsClient.MOUSE_POSITION, msgs.build_mouse_position(20, 30, 0, 1))]
    ch.receive_data(frame(InputsServer.MOUSE_MOTION_ACK))
    ch.receive_data(frame(InputsServer.MOUSE_MOTION_ACK))
    assert ch.motion_count == 0 and sent(ch) == []  # never below zero


def test_button_press_sends_what_is_pending_first() -> None:
    ch = InputsChannel(0, ChannelContext())
    for _ in range(MOTION_WINDOW):
        ch.motion(1, 0)
    ch.data_to_send()
    ch.motion(4, 4)
    ch.button_press(1)
    ch.button_press(3)
    ch.button_release(1)
    assert sent(ch) == [
        (InputsClient.MOUSE_MOTION, msgs.build_mouse_motion(4, 4, 1)),
        (InputsClient.MOUSE_PRESS, b"\x01\x01\0"),
        (InputsClient.MOUSE_PRESS, b"\x03\x05\0"),
        (InputsClient.MOUSE_RELEASE, b"\x01\x04\0"),
    ]
    ch.button_press(4)  # the wheel is an event, not a held button (spice-gtk)
    assert sent(ch) == [(InputsClient.MOUSE_PRESS, b"\x04\x04\0")]
    with pytest.raises(ValueError):
        ch.button_press(8)
    with pytest.raises(ValueError):
        ch.position(-1, 0)


def test_inputs_state_reports_flow_control() -> None:
    ch = InputsChannel(0, ChannelContext())
    ch.motion(1, 1)
    st = ch.state()
    assert st["motion_count"] == 1 and st["motions_sent"] == 1 and st["buttons"] == 0


# --- mouse mode (spice-gtk channel-main.c set_mouse_mode) ----------------------------------


def main_init(supported: int, current: int) -> bytes:
    return struct.pack("<8I", 0x1234, 1, supported, current, 0, 10, 0, 0x1000000)


def mouse_mode(supported: int, current: int) -> bytes:
    return struct.pack("<HH", supported, current)


def test_client_mode_is_requested_when_offered() -> None:
    ch = MainChannel(0, ChannelContext())
    ch.receive_data(frame(MainServer.INIT, main_init(3, 1)))
    assert sent(ch) == [(MainClient.MOUSE_MODE_REQUEST, b"\x02\0"),
                        (MainClient.ATTACH_CHANNELS, b"")]
    ch.receive_data(frame(MainServer.MOUSE_MODE, mouse_mode(3, 2)))  # granted
    assert sent(ch) == []
    assert ch.ctx.state.current_mouse_mode == 2
    # The server falls back to server mode while client mode is still offered: ask again.
    ch.receive_data(frame(MainServer.MOUSE_MODE, mouse_mode(3, 1)))
    assert sent(ch) == [(MainClient.MOUSE_MODE_REQUEST, b"\x02\0")]
    # Client mode withdrawn (no absolute pointer): nothing to ask for.
    ch.receive_data(frame(MainServer.MOUSE_MODE, mouse_mode(1, 1)))
    assert sent(ch) == []
    assert ch.mouse_mode_requests == 2


def test_no_request_without_client_mode_or_when_already_in_it() -> None:
    ch = MainChannel(0, ChannelContext())
    ch.receive_data(frame(MainServer.INIT, main_init(1, 1)))
    assert sent(ch) == [(MainClient.ATTACH_CHANNELS, b"")]
    ch2 = MainChannel(0, ChannelContext())
    ch2.receive_data(frame(MainServer.INIT, main_init(3, 2)))
    assert sent(ch2) == [(MainClient.ATTACH_CHANNELS, b"")]


def test_requested_server_mode_is_kept() -> None:
    ch = MainChannel(0, ChannelContext())
    ch.receive_data(frame(MainServer.INIT, main_init(3, 2)))
    ch.data_to_send()
    ch.request_mouse_mode(1)
    assert sent(ch) == [(MainClient.MOUSE_MODE_REQUEST, b"\x01\0")]
    ch.receive_data(frame(MainServer.MOUSE_MODE, mouse_mode(3, 2)))
    assert sent(ch) == [(MainClient.MOUSE_MODE_REQUEST, b"\x01\0")]


def test_malformed_mouse_mode_is_a_named_gap() -> None:
    ctx = ChannelContext()
    ch = MainChannel(0, ctx)
    ch.receive_data(frame(MainServer.MOUSE_MODE, b"\x03"))
    assert ctx.gaps.counts() == {"main:malformed:mouse_mode": 1}
    assert sent(ch) == []
