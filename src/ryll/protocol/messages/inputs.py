"""Inputs channel messages (spice.proto ``channel InputsChannel``)."""

from __future__ import annotations

import struct

from ryll.protocol.reader import Reader

#: A set-1 scancode with the 0xE0 prefix is written as 0x100 | code (spice-gtk's convention for
#: ``spice_inputs_channel_key_press``); KEY_DOWN / KEY_UP put the prefix byte on the wire.
EXTENDED = 0x100


def parse_modifiers(body: bytes, what: str) -> int:
    """INIT and KEY_MODIFIERS both carry the u16 keyboard modifier state."""
    return Reader(body, what=what).u16()


def make_scancode(scancode: int, release: bool) -> int:
    """The ``code`` of KEY_DOWN / KEY_UP for a set-1 scancode (0x100 | code for 0xE0 keys):
    spice-gtk ``spice_make_scancode``. A plain key is its code (| 0x80 on release); an extended
    key is the byte sequence E0, code (| 0x80 on release) read as a little-endian integer."""
    scancode &= 0x37F
    if release:
        scancode |= 0x80
    if scancode < 0x100:
        return scancode
    return 0xE0 | ((scancode - 0x100) & 0xFF) << 8


def build_key_down(scancode: int) -> bytes:
    return struct.pack("<I", make_scancode(scancode, False))


def build_key_up(scancode: int) -> bytes:
    return struct.pack("<I", make_scancode(scancode, True))


def build_key_modifiers(modifiers: int) -> bytes:
    """Client KEY_MODIFIERS: the keyboard lock state (SpiceKeyboardModifierFlags) to set."""
    return struct.pack("<H", modifiers & 0xFFFF)


def build_mouse_motion(dx: int, dy: int, buttons: int) -> bytes:
    """MOUSE_MOTION (server mouse mode): int32 dx, int32 dy, u16 buttons_state."""
    return struct.pack("<iiH", dx, dy, buttons & 0xFFFF)


def build_mouse_position(x: int, y: int, buttons: int, display_id: int) -> bytes:
    """MOUSE_POSITION (client mouse mode): u32 x, u32 y, u16 buttons_state, u8 display_id."""
    return struct.pack("<IIHB", x, y, buttons & 0xFFFF, display_id)


def build_mouse_button(button: int, buttons: int) -> bytes:
    """MOUSE_PRESS and MOUSE_RELEASE: u8 button (SpiceMouseButton), u16 buttons_state."""
    return struct.pack("<BH", button, buttons & 0xFFFF)
