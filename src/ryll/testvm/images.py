"""Pixel files without Pillow: read and write binary PPM (P6), write PNG (for looking at)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from ryll.testvm.errors import TestVMError

_WHITESPACE = b" \t\r\n\v\f"


def parse_ppm(data: bytes) -> np.ndarray:
    """A binary PPM (P6) as an (H, W, 3) uint8 RGB array.

    Header comments are skipped; a maxval above 255 (two bytes a sample) is scaled to 8 bits.
    """
    if data[:2] != b"P6":
        raise TestVMError(f"not a binary PPM (magic {data[:2]!r})")
    pos = 2
    fields: list[int] = []
    while len(fields) < 3:
        # Whitespace and comments before each field.
        while pos < len(data):
            if data[pos] in _WHITESPACE:
                pos += 1
            elif data[pos] == ord("#"):
                end = data.find(b"\n", pos)
                pos = len(data) if end < 0 else end + 1
            else:
                break
        start = pos
        while pos < len(data) and data[pos : pos + 1].isdigit():
            pos += 1
        if start == pos:
            raise TestVMError(f"bad PPM header at byte {start}")
        fields.append(int(data[start:pos]))
    if pos >= len(data) or data[pos] not in _WHITESPACE:
        raise TestVMError("bad PPM header: no whitespace after maxval")
    pos += 1  # exactly one whitespace byte before the raster
    width, height, maxval = fields
    if width <= 0 or height <= 0 or not 0 < maxval < 65536:
        raise TestVMError(f"bad PPM header: {width}x{height} maxval {maxval}")
    sample = 1 if maxval < 256 else 2
    need = width * height * 3 * sample
    raster = data[pos : pos + need]
    if len(raster) < need:
        raise TestVMError(f"truncated PPM: {len(raster)} of {need} raster bytes")
    if sample == 1:
        arr = np.frombuffer(raster, dtype=np.uint8).reshape(height, width, 3)
        if maxval != 255:
            arr = (arr.astype(np.uint32) * 255 // maxval).astype(np.uint8)
        return arr.copy()
    wide = np.frombuffer(raster, dtype=">u2").reshape(height, width, 3).astype(np.uint32)
    return (wide * 255 // maxval).astype(np.uint8)


def read_ppm(path: str | Path) -> np.ndarray:
    return parse_ppm(Path(path).read_bytes())


def encode_ppm(image: np.ndarray) -> bytes:
    img = _rgb(image)
    h, w, _ = img.shape
    return b"P6\n%d %d\n255\n" % (w, h) + img.tobytes()


def write_ppm(path: str | Path, image: np.ndarray) -> None:
    Path(path).write_bytes(encode_ppm(image))


def encode_png(image: np.ndarray) -> bytes:
    """A minimal 8-bit RGB PNG (filter 0 on every row)."""
    img = _rgb(image)
    h, w, _ = img.shape
    rows = np.zeros((h, 1 + w * 3), dtype=np.uint8)
    rows[:, 1:] = img.reshape(h, w * 3)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def write_png(path: str | Path, image: np.ndarray) -> None:
    Path(path).write_bytes(encode_png(image))


def write_image(path: str | Path, image: np.ndarray) -> None:
    """PNG if the name ends in .png, else PPM."""
    if str(path).lower().endswith(".png"):
        write_png(path, image)
    else:
        write_ppm(path, image)


def _rgb(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"want an (H, W, 3) uint8 array, got {img.shape} {img.dtype}")
    return np.ascontiguousarray(img)
