"""SPICE BITMAP images to BGRA pixels, vectorised with numpy (spice-common canvas_base.c
``canvas_bitmap_to_surface`` and its per-format converters)."""

from __future__ import annotations

import numpy as np

from ryll.codecs.lz import MAX_PIXELS, check_size
from ryll.errors import DecodeError
from ryll.protocol.constants import BitmapFmt
from ryll.protocol.messages.draw import BitmapData


def _rows(bmp: BitmapData, row_bytes: int) -> np.ndarray:
    if bmp.stride < row_bytes:
        raise DecodeError(f"bitmap stride {bmp.stride} < row size {row_bytes}")
    if len(bmp.data) < bmp.stride * bmp.height:
        raise DecodeError("bitmap data shorter than stride x height")
    rows = np.frombuffer(bmp.data, np.uint8, bmp.stride * bmp.height)
    rows = rows.reshape(bmp.height, bmp.stride)[:, :row_bytes]
    return rows if bmp.top_down else rows[::-1]


def _palette_lookup(indices: np.ndarray, palette: tuple[int, ...] | None) -> np.ndarray:
    if not palette:
        raise DecodeError("indexed bitmap without a palette")
    lut = np.zeros(256, dtype="<u4")
    lut[: len(palette)] = palette
    out = lut[indices].view(np.uint8).reshape(*indices.shape, 4).copy()
    out[..., 3] = 255
    return out


def decode_bitmap(bmp: BitmapData, palette: tuple[int, ...] | None = None) -> np.ndarray:
    """(H, W, 4) BGRA. ``palette`` is the resolved palette for indexed formats (the message's
    own or one from the palette cache)."""
    w, h, fmt = bmp.width, bmp.height, bmp.format
    if w == 0 or h == 0:
        raise DecodeError(f"empty bitmap {w}x{h}")
    # Sizes first, allocations after: an indexed or 1-bit bitmap expands up to 32x into BGRA.
    check_size(w, h, MAX_PIXELS, "bitmap")
    if fmt in (BitmapFmt.FMT_32BIT, BitmapFmt.FMT_RGBA):
        out = _rows(bmp, w * 4).reshape(h, w, 4).copy()
        if fmt == BitmapFmt.FMT_32BIT:
            out[..., 3] = 255
        return out
    if fmt == BitmapFmt.FMT_24BIT:
        rows = _rows(bmp, w * 3)
        out = np.empty((h, w, 4), np.uint8)
        out[..., :3] = rows.reshape(h, w, 3)
        out[..., 3] = 255
        return out
    if fmt == BitmapFmt.FMT_16BIT:
        px = _rows(bmp, w * 2).copy().view("<u2").reshape(h, w)
        out = np.empty((h, w, 4), np.uint8)
        for shift, ch in ((0, 0), (5, 1), (10, 2)):  # x555: B low bits, G, R
            c = ((px >> shift) & 0x1F).astype(np.uint8)
            out[..., ch] = (c << 3) | (c >> 2)
        out[..., 3] = 255
        return out
    if fmt == BitmapFmt.FMT_8BIT_A:
        a = _rows(bmp, w)  # checked before the output is allocated
        out = np.zeros((h, w, 4), np.uint8)
        out[..., 3] = a
        return out
    if fmt == BitmapFmt.FMT_8BIT:
        return _palette_lookup(_rows(bmp, w), palette)
    if fmt in (BitmapFmt.FMT_4BIT_LE, BitmapFmt.FMT_4BIT_BE):
        packed = _rows(bmp, (w + 1) // 2)
        hi, lo = packed >> 4, packed & 0x0F
        # 4BIT_BE: the first pixel is the high nibble (spice-common pixman_utils.c
        # bitmap_4be_32_to_32). spice-common rejects the _LE variants for images; ryll decodes
        # them by their name (low nibble / low bit first) rather than drop the draw.
        first, second = (hi, lo) if fmt == BitmapFmt.FMT_4BIT_BE else (lo, hi)
        idx = np.stack([first, second], axis=-1).reshape(h, -1)[:, :w]
        return _palette_lookup(idx, palette)
    if fmt in (BitmapFmt.FMT_1BIT_LE, BitmapFmt.FMT_1BIT_BE):
        packed = _rows(bmp, (w + 7) // 8)
        if fmt == BitmapFmt.FMT_1BIT_BE:
            idx = np.unpackbits(packed, axis=1, bitorder="big")[:, :w]
        else:
            idx = np.unpackbits(packed, axis=1, bitorder="little")[:, :w]
        return _palette_lookup(idx, palette)
    raise DecodeError(f"unknown bitmap format {fmt}")
