"""Cursor shapes: SpiceCursor images decoded to straight (not premultiplied) RGBA, the cursor
cache, and compositing a cursor over a frame.

Layouts (spice.proto ``cursor_type``; spice-server passes the QXL device's bytes through; the
pixel formats follow spice-gtk ``set_cursor``). ``bpl = (width + 7) // 8`` is the stride of a
1-bit mask row:

    ALPHA    width*height 32-bit little-endian ARGB (bytes B, G, R, A), alpha straight
    MONO     AND mask (bpl*height), then XOR mask (bpl*height)
    COLOR4   4-bit indices, high nibble first, rows of (width+1)//2 bytes; 16 palette entries
             (32-bit xRGB); AND mask
    COLOR8   8-bit indices, rows of width bytes; 256 palette entries; AND mask
    COLOR16  16-bit xRGB 1555, rows of 2*width bytes; AND mask
    COLOR24  24-bit BGR, rows of 3*width bytes; AND mask
    COLOR32  32-bit xRGB, rows of 4*width bytes; AND mask

Colour cursors follow the Windows AND/XOR rule: AND=0 draws the colour; AND=1 with colour 0 is
transparent; AND=1 with white inverts the screen, which an RGBA cursor cannot express, so (as
spice-gtk does) those pixels get a fixed checker of translucent dark and light grey; AND=1 with
any other colour XORs the screen and is drawn transparent. MONO follows spice-gtk's
``spice_mono_edge_highlight``: AND=0 draws black/white, AND=1/XOR=0 is transparent, AND=1/XOR=1
(invert) is white, and when the whole AND mask is set the transparent pixels next to a set XOR
pixel turn black, so an inverting cursor (an I-beam) stays visible on any background.

spice-gtk reads the colour cursors' AND mask as one run of bits without row padding; ryll pads
each mask row to a byte (as MONO and Windows masks are), which is the same for widths that are
multiples of 8 (every real cursor). spice-gtk does not decode COLOR8 and COLOR24 at all.

Every size from the wire is checked before it is used: width and height are 1..``MAX_CURSOR_DIM``
and the data length must equal the layout's size exactly; anything else raises
``CursorDecodeError`` (the channel turns it into ``cursor:decode_failure:<type>:<reason>``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from ryll.errors import DecodeError
from ryll.protocol.constants import CursorType

#: Largest accepted width/height. QXL guests use 32..256 (spice-server's stream device caps
#: cursors at 1024, but nothing real is that big).
MAX_CURSOR_DIM = 512
#: Entries the server assumes the client can hold (spice-server CLIENT_CURSOR_CACHE_SIZE).
CURSOR_CACHE_ENTRIES = 256
#: Byte bound over the decoded RGBA of all entries (256 entries of 64x64 are 4 MiB).
CURSOR_CACHE_BYTES = 32 * 1024 * 1024

_INVERT_DARK = (0x30, 0x30, 0x30, 0xC0)  # spice-gtk get_pix_hack 0xc0303030 (ARGB)
_INVERT_LIGHT = (0x50, 0x50, 0x50, 0x30)  # 0x30505050


class CursorDecodeError(DecodeError):
    """A cursor that cannot be decoded; ``reason`` is a short fixed word for the gap key (a
    DecodeError, so every decoder raises only RyllErrors)."""


def cursor_type_name(cursor_type: int) -> str:
    try:
        return CursorType(cursor_type).name.lower()
    except ValueError:
        return f"type{cursor_type}"


@dataclass(frozen=True, eq=False)
class CursorImage:
    """A decoded cursor: ``rgba`` is (height, width, 4) uint8, straight alpha, read-only."""

    rgba: np.ndarray = field(repr=False)
    hot_x: int
    hot_y: int
    type: int
    unique: int = 0

    @property
    def width(self) -> int:
        return int(self.rgba.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgba.shape[0])

    @property
    def type_name(self) -> str:
        return cursor_type_name(self.type)

    def as_dict(self) -> dict[str, object]:
        return {
            "type": self.type_name,
            "width": self.width,
            "height": self.height,
            "hot_x": self.hot_x,
            "hot_y": self.hot_y,
            "unique": self.unique,
        }


def _mask_bpl(width: int) -> int:
    return (width + 7) // 8


def cursor_data_size(cursor_type: int, width: int, height: int) -> int:
    """Bytes of image data a cursor of this type and size has; raises CursorDecodeError for
    an unknown type."""
    mask = _mask_bpl(width) * height
    n = width * height
    sizes = {
        CursorType.ALPHA: 4 * n,
        CursorType.MONO: 2 * mask,
        CursorType.COLOR4: (width + 1) // 2 * height + 16 * 4 + mask,
        CursorType.COLOR8: n + 256 * 4 + mask,
        CursorType.COLOR16: 2 * n + mask,
        CursorType.COLOR24: 3 * n + mask,
        CursorType.COLOR32: 4 * n + mask,
    }
    size = sizes.get(cursor_type)  # type: ignore[call-overload]
    if size is None:
        raise CursorDecodeError(f"unknown cursor type {cursor_type}", "unknown_type")
    return int(size)


def _bits(buf: np.ndarray, width: int, height: int) -> np.ndarray:
    """(height, width) bool from a 1-bit mask with byte-padded rows, MSB first."""
    rows = buf.reshape(height, _mask_bpl(width))
    return np.unpackbits(rows, axis=1)[:, :width].astype(bool)


def _from_xrgb(xrgb: np.ndarray) -> np.ndarray:
    """(h, w) uint32 0x??RRGGBB -> (h, w, 4) RGBA with alpha 255."""
    out = np.empty((*xrgb.shape, 4), np.uint8)
    out[..., 0] = (xrgb >> 16) & 0xFF
    out[..., 1] = (xrgb >> 8) & 0xFF
    out[..., 2] = xrgb & 0xFF
    out[..., 3] = 255
    return out


def _apply_and_mask(rgba: np.ndarray, white: np.ndarray, and_mask: np.ndarray) -> np.ndarray:
    """AND=1 pixels: transparent, or the invert checker where the colour is white."""
    h, w = and_mask.shape
    rgba[and_mask] = 0
    invert = and_mask & white
    if invert.any():
        yy, xx = np.indices((h, w))
        dark = ((xx ^ yy) & 1).astype(bool)
        rgba[invert & dark] = _INVERT_DARK
        rgba[invert & ~dark] = _INVERT_LIGHT
    return rgba


def _mono(data: np.ndarray, w: int, h: int) -> np.ndarray:
    half = _mask_bpl(w) * h
    and_raw = data[:half]
    and_mask, xor = _bits(and_raw, w, h), _bits(data[half:], w, h)
    rgba = np.zeros((h, w, 4), np.uint8)
    # AND=0: black or white, opaque; AND=1: transparent, or white for XOR=1 (invert).
    rgba[xor] = (255, 255, 255, 255)
    rgba[~and_mask & ~xor] = (0, 0, 0, 255)
    if bool((and_raw == 0xFF).all()) and w > 2 and h > 2:
        # spice-gtk's edge: an interior pixel with XOR=0 and an 8-neighbour with XOR=1.
        p = np.pad(xor, 1)
        near = np.zeros((h, w), bool)
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                if dy != 1 or dx != 1:
                    near |= p[dy:dy + h, dx:dx + w]
        edge = near & ~xor
        edge[0, :] = edge[-1, :] = False
        edge[:, 0] = edge[:, -1] = False
        rgba[edge] = (0, 0, 0, 255)
    return rgba


def _palette(data: np.ndarray, offset: int, count: int) -> np.ndarray:
    return data[offset:offset + 4 * count].view("<u4")


def decode_cursor(
    cursor_type: int, width: int, height: int, hot_x: int, hot_y: int, data: bytes,
    unique: int = 0,
) -> CursorImage:
    """Decode one cursor image. Raises CursorDecodeError (reason: ``unknown_type``,
    ``bad_size``, ``truncated``, ``size_mismatch``)."""
    if not (0 < width <= MAX_CURSOR_DIM and 0 < height <= MAX_CURSOR_DIM):
        raise CursorDecodeError(
            f"cursor size {width}x{height} is outside 1..{MAX_CURSOR_DIM}", "bad_size"
        )
    need = cursor_data_size(cursor_type, width, height)
    if len(data) < need:
        raise CursorDecodeError(
            f"{cursor_type_name(cursor_type)} {width}x{height} needs {need} bytes, got "
            f"{len(data)}", "truncated",
        )
    if len(data) != need:
        raise CursorDecodeError(
            f"{cursor_type_name(cursor_type)} {width}x{height} needs {need} bytes, got "
            f"{len(data)}", "size_mismatch",
        )
    w, h = width, height
    buf = np.frombuffer(data, np.uint8)
    n = w * h
    if cursor_type == CursorType.ALPHA:
        bgra = buf.reshape(h, w, 4)
        rgba = bgra[..., [2, 1, 0, 3]]
    elif cursor_type == CursorType.MONO:
        rgba = _mono(buf, w, h)
    else:
        if cursor_type == CursorType.COLOR4:
            stride = (w + 1) // 2
            idx_bytes = buf[:stride * h].reshape(h, stride)
            idx = np.empty((h, stride * 2), np.uint8)
            idx[:, 0::2] = idx_bytes >> 4
            idx[:, 1::2] = idx_bytes & 0x0F
            pal_off = stride * h
            xrgb = _palette(buf, pal_off, 16)[idx[:, :w]]
            mask_off = pal_off + 64
        elif cursor_type == CursorType.COLOR8:
            xrgb = _palette(buf, n, 256)[buf[:n].reshape(h, w)]
            mask_off = n + 1024
        elif cursor_type == CursorType.COLOR16:
            pix = buf[:2 * n].view("<u2").reshape(h, w).astype(np.uint32)
            # 1555 like spice-gtk: each 5-bit channel shifted up by 3.
            xrgb = ((pix & 0x7C00) << 9) | ((pix & 0x3E0) << 6) | ((pix & 0x1F) << 3)
            white16 = (pix & 0x7FFF) == 0x7FFF
            mask_off = 2 * n
        elif cursor_type == CursorType.COLOR24:
            bgr = buf[:3 * n].reshape(h, w, 3).astype(np.uint32)
            xrgb = (bgr[..., 2] << 16) | (bgr[..., 1] << 8) | bgr[..., 0]
            mask_off = 3 * n
        else:  # COLOR32 (cursor_data_size rejected every other type)
            xrgb = buf[:4 * n].view("<u4").reshape(h, w)
            mask_off = 4 * n
        and_mask = _bits(buf[mask_off:], w, h)
        rgb24 = xrgb & 0xFFFFFF
        white = white16 if cursor_type == CursorType.COLOR16 else rgb24 == 0xFFFFFF
        rgba = _apply_and_mask(_from_xrgb(rgb24), white, and_mask)
    rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
    rgba.setflags(write=False)
    # spice-gtk caps a hotspot outside the image to the image's edge.
    return CursorImage(rgba, min(hot_x, w), min(hot_y, h), cursor_type, unique)


@dataclass
class CursorCache:
    """CACHE_ME / FROM_CACHE / INVAL_ONE / INVAL_ALL. Bounded in entries and in bytes of
    decoded RGBA; when full the least recently used entry goes (a later FROM_CACHE of it is a
    named gap, not unbounded memory)."""

    max_entries: int = CURSOR_CACHE_ENTRIES
    max_bytes: int = CURSOR_CACHE_BYTES
    bytes: int = 0
    evictions: int = 0
    _items: OrderedDict[int, CursorImage] = field(default_factory=OrderedDict)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, unique: int) -> bool:
        return unique in self._items

    def get(self, unique: int) -> CursorImage | None:
        item = self._items.get(unique)
        if item is not None:
            self._items.move_to_end(unique)
        return item

    def put(self, unique: int, image: CursorImage) -> None:
        self.remove(unique)
        size = image.rgba.nbytes
        if size > self.max_bytes or self.max_entries <= 0:
            return
        while self._items and (
            len(self._items) >= self.max_entries or self.bytes + size > self.max_bytes
        ):
            _, old = self._items.popitem(last=False)
            self.bytes -= old.rgba.nbytes
            self.evictions += 1
        self._items[unique] = image
        self.bytes += size

    def remove(self, unique: int) -> bool:
        old = self._items.pop(unique, None)
        if old is None:
            return False
        self.bytes -= old.rgba.nbytes
        return True

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "entries": len(self._items),
            "bytes": self.bytes,
            "evictions": self.evictions,
            "max_entries": self.max_entries,
            "max_bytes": self.max_bytes,
        }


def composite(frame: np.ndarray, image: CursorImage, x: int, y: int) -> np.ndarray:
    """A copy of ``frame`` ((H, W, 3) RGB or (H, W, 4) RGBA, uint8) with ``image`` drawn
    alpha-over (straight alpha) with its hotspot at (x, y); clipped to the frame."""
    out = np.array(frame, dtype=np.uint8, copy=True)
    fh, fw = out.shape[:2]
    left, top = x - image.hot_x, y - image.hot_y
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + image.width, fw), min(top + image.height, fh)
    if x0 >= x1 or y0 >= y1:
        return out
    src = image.rgba[y0 - top:y1 - top, x0 - left:x1 - left].astype(np.uint32)
    dst = out[y0:y1, x0:x1]
    alpha = src[..., 3:4]
    blended = (src[..., :3] * alpha + dst[..., :3].astype(np.uint32) * (255 - alpha) + 127) // 255
    dst[..., :3] = blended.astype(np.uint8)
    if out.shape[2] == 4:
        da = dst[..., 3:4].astype(np.uint32)
        dst[..., 3:4] = (alpha + (da * (255 - alpha) + 127) // 255).astype(np.uint8)
    return out
