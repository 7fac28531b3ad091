"""What travels on the viewer's WebSocket (sans-IO: bytes and dicts, no sockets).

Page to ryll: JSON text messages, one object each, ``{"t": KIND, ...}`` (see ``Inputs`` in
viewer/session_link.py for the kinds). ryll to page: JSON text messages for everything but
pixels, and binary messages for pixels, each a rectangle of one display::

    u8 kind (1: rectangle)  u8 display  u16 x  u16 y  u16 width  u16 height  u8 encoding
    payload

little-endian, then the payload in that encoding: RAW, the rectangle's RGBA bytes row by row
(what ImageData holds); PNG; JPEG (lossy, only while an area is moving; a lossless copy
follows once it rests). The page draws each one at (x, y) of that display's canvas.
"""

from __future__ import annotations

import json
import struct
from enum import IntEnum
from typing import Any

RECT = 1
RECT_HEADER = struct.Struct("<BBHHHHB")


class Encoding(IntEnum):
    RAW = 0
    PNG = 1
    JPEG = 2


def rect_message(display: int, x: int, y: int, width: int, height: int, encoding: Encoding,
                 payload: bytes | memoryview) -> list[bytes | memoryview]:
    """A rectangle message as its two parts (header, payload): the caller joins them once.
    ValueError for a display or position the header cannot hold (display 0..255, the rest
    0..65535)."""
    if not 0 <= display <= 0xFF or not all(0 <= v <= 0xFFFF for v in (x, y, width, height)):
        raise ValueError(f"display {display} rectangle {width}x{height}+{x}+{y} does not "
                         "fit the page's header")
    return [RECT_HEADER.pack(RECT, display, x, y, width, height, encoding), payload]


def parse_rect(message: bytes) -> tuple[int, int, int, int, int, Encoding, bytes]:
    """(display, x, y, width, height, encoding, payload) of a rectangle message (for tests
    and tools; the page has its own reader)."""
    if len(message) < RECT_HEADER.size:
        raise ValueError(f"a rectangle message of {len(message)} bytes")
    kind, display, x, y, width, height, encoding = RECT_HEADER.unpack_from(message)
    if kind != RECT:
        raise ValueError(f"message kind {kind} is not a rectangle")
    return display, x, y, width, height, Encoding(encoding), message[RECT_HEADER.size:]


def text(kind: str, **fields: Any) -> str:
    """A JSON text message."""
    return json.dumps({"t": kind, **fields}, separators=(",", ":"))
