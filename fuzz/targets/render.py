"""Harnesses of the render layer's own decoders: BITMAP images with palettes, and cursor
shapes (with the cursor cache and compositing over a frame).

Contract: a bitmap decodes to (H, W, 4) or raises a RyllError; a cursor decodes or raises
``CursorDecodeError`` (its documented error: the cursor channel turns it into the gap
``cursor:decode_failure:<type>:<reason>``).
"""

from __future__ import annotations

import struct

import numpy as np

from fuzz import seeds as S
from fuzz.contract import ContractViolation
from fuzz.target import Target
from ryll.errors import RyllError
from ryll.protocol.constants import BitmapFlags, CursorServer
from ryll.protocol.messages import cursor as cmsg
from ryll.protocol.messages.draw import MAX_PALETTE, BitmapData
from ryll.render import cursor as C
from ryll.render.bitmap import decode_bitmap

# --- BITMAP: [format u8][flags u8][width u16][height u16][stride u32][entries u16]
# [entries x u32 palette][data] --------------------------------------------------------------

BITMAP_HEAD = struct.Struct("<BBHHIH")


def bitmap_one_input(data: bytes) -> None:
    if len(data) < BITMAP_HEAD.size:
        return
    fmt, flags, width, height, stride, npal = BITMAP_HEAD.unpack_from(data)
    pos = BITMAP_HEAD.size
    # The wire allows at most MAX_PALETTE entries (draw._palette refuses more), so a
    # decoder never sees a longer palette.
    npal = min(npal, MAX_PALETTE, (len(data) - pos) // 4)
    palette = struct.unpack_from(f"<{npal}I", data, pos) if npal else None
    pos += 4 * npal
    bmp = BitmapData(fmt, flags, width, height, stride, None, None, data[pos:])
    try:
        out = decode_bitmap(bmp, palette)
    except RyllError:
        return
    if out.shape != (height, width, 4) or out.dtype != np.uint8:
        raise ContractViolation(f"bitmap: {out.shape} {out.dtype} for {width}x{height}")


def bitmap_input(fmt: int, width: int, height: int, stride: int, data: bytes,
                 palette: list[int] | None, top_down: bool = True) -> bytes:
    pal = palette or []
    flags = BitmapFlags.TOP_DOWN if top_down else 0
    return (BITMAP_HEAD.pack(fmt, flags, width, height, stride, len(pal))
            + struct.pack(f"<{len(pal)}I", *pal) + data)


def bitmap_seeds() -> list[bytes]:
    out = []
    for i, (fmt, w, h, stride, data, palette) in enumerate(S.bitmap_samples()):
        out.append(bitmap_input(fmt, w, h, stride, data, palette, top_down=i % 2 == 0))
        if palette:  # a palette shorter than the indices reach
            out.append(bitmap_input(fmt, w, h, stride, data, palette[:1]))
    return out


# --- cursor: [unique u64][type u8][width u16][height u16][hot_x u16][hot_y u16][data]
# (SpiceCursorHeader, then the image bytes) ---------------------------------------------------

CURSOR_HEAD = struct.Struct("<QBHHHH")
_FRAME = np.zeros((24, 32, 4), np.uint8)


def cursor_one_input(data: bytes) -> None:
    if len(data) < CURSOR_HEAD.size:
        return
    unique, ctype, width, height, hot_x, hot_y = CURSOR_HEAD.unpack_from(data)
    try:
        image = C.decode_cursor(ctype, width, height, hot_x, hot_y, data[CURSOR_HEAD.size:],
                                unique)
    except (C.CursorDecodeError, RyllError):
        return
    if image.rgba.shape != (height, width, 4) or image.rgba.dtype != np.uint8:
        raise ContractViolation(f"cursor: {image.rgba.shape} for {width}x{height}")
    cache = C.CursorCache(max_entries=2, max_bytes=64 * 64 * 4)
    cache.put(unique, image)
    cache.put(unique ^ 1, image)
    cache.put(unique ^ 2, image)
    if cache.bytes > cache.max_bytes or len(cache) > cache.max_entries:
        raise ContractViolation(f"cursor cache over its bounds: {cache.as_dict()}")
    C.composite(_FRAME, image, hot_x % 40 - 4, hot_y % 32 - 4)
    C.composite(_FRAME[..., :3], image, 0, 0)


def cursor_seeds() -> list[bytes]:
    out = []
    for opcode, body in S.cursor_fixture_messages():
        if opcode == CursorServer.SET:
            shape = cmsg.parse_set(body).cursor
            if shape.header is not None:
                hd = shape.header
                out.append(CURSOR_HEAD.pack(hd.unique, hd.type, hd.width, hd.height, hd.hot_x,
                                            hd.hot_y) + shape.data)
    r = S.rng(9)
    for ctype in range(7):
        for w, h in ((8, 8), (5, 3)):
            need = C.cursor_data_size(ctype, w, h)
            body = r.integers(0, 256, need, dtype=np.uint8).tobytes()
            out.append(CURSOR_HEAD.pack(ctype, ctype, w, h, 1, 2) + body)
    mono = C.cursor_data_size(1, 8, 8)
    out.append(CURSOR_HEAD.pack(7, 1, 8, 8, 3, 3) + b"\xff" * (mono // 2) + b"\x18" * (mono // 2))
    return out


TARGETS = {
    "bitmap": Target(bitmap_one_input, bitmap_seeds, "ryll.render.bitmap.decode_bitmap, every "
                     "format, with palettes"),
    "cursor": Target(cursor_one_input, cursor_seeds, "ryll.render.cursor.decode_cursor, the "
                     "cursor cache and composite"),
}
