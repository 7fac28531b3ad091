"""SPICE's QUIC image codec: bytes in, BGRA pixels out.

The bitstream is spice-common's (``common/quic.c``, ``quic_tmpl.c``, ``quic_family_tmpl.c``);
the hot loops live in the compiled ``_quic`` module, which also documents the algorithm.

Output: ``QuicImage.pixels`` is an (H, W, 4) uint8 array in BGRA memory order, the byte order
of a SPICE 32-bit little-endian xRGB/ARGB surface.
- RGB32 / RGB24: the decoded B, G, R and alpha 255 (spice-common's canvas decodes both as
  ``QUIC_IMAGE_TYPE_RGB32`` into ``PIXMAN_LE_x8r8g8b8``; quic.c writes pad 0 there, we write
  255 so the array is a valid opaque BGRA image).
- RGBA: B, G, R and the decoded alpha plane.
- RGB16: each 5-bit channel expanded as ``(c << 3) | (c >> 2)``, alpha 255. quic.c can write
  either 16-bit pixels (``QUIC_RGB16``) or 32-bit ones; spice-common's ``canvas_get_quic``
  asks for the 32-bit form (``QUIC_RGB16_TO_32``, whose ``SET_r`` is that expansion) whenever
  the canvas is 32-bit, which is ryll's only surface layout, so we follow that.
- GRAY: B = G = R = the value, alpha 255 (the server never sends GRAY; canvas_get_quic
  rejects it, we decode it anyway).
Rows are top-down: quic_decode writes row 0 first at the buffer start and canvas_get_quic uses
the result unflipped.

Errors: every malformed, truncated or hostile payload raises ``DecodeError`` whose ``reason``
is one of ``truncated``, ``bad_magic``, ``bad_version``, ``bad_type``, ``bad_size``,
``too_large``, ``corrupt``. Decoding always terminates: every loop is bounded by the image
size, and the reader feeds zeros (and reports ``truncated``) past the end of the data.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np

from ryll.codecs import _quic  # type: ignore[attr-defined]
from ryll.errors import DecodeError

QUIC_MAGIC = 0x43495551  # ASCII "QUIC" as a little-endian u32 (quic.c QUIC_MAGIC)
QUIC_VERSION = 0  # (QUIC_VERSION_MAJOR << 16) | QUIC_VERSION_MINOR, both 0

# QuicImageType (spice-common common/quic.h)
GRAY = 1
RGB16 = 2
RGB24 = 3
RGB32 = 4
RGBA = 5
TYPE_NAMES = {GRAY: "GRAY", RGB16: "RGB16", RGB24: "RGB24", RGB32: "RGB32", RGBA: "RGBA"}

# The default pixel limit: 8192 x 4096, a generous bound on a SPICE surface (QXL's largest
# modes are 8192 wide; 4096 rows covers stacked multi-monitor layouts). quic.c's own limit,
# SPICE_MAX_IMAGE_SIZE, is 512 Mi - 1 pixels, i.e. 2 GiB of BGRA: too much to allocate on
# behalf of a remote peer.
DEFAULT_MAX_PIXELS = 8192 * 4096
HEADER_SIZE = 20  # magic, version, type, width, height: five LE u32
_HEADER = struct.Struct("<5I")


class QuicImage(NamedTuple):
    type: int  # QuicImageType: GRAY 1, RGB16 2, RGB24 3, RGB32 4, RGBA 5
    width: int
    height: int
    pixels: np.ndarray  # (height, width, 4) uint8, BGRA, a view into the output buffer


def read_header(data: bytes | bytearray | memoryview) -> tuple[int, int, int]:
    """Validates the QUIC header; returns (type, width, height). Raises DecodeError."""
    if len(data) < HEADER_SIZE:
        raise DecodeError(f"QUIC: {len(data)} bytes, shorter than the header", "truncated")
    magic, version, qtype, width, height = _HEADER.unpack_from(data, 0)
    if magic != QUIC_MAGIC:
        raise DecodeError(f"QUIC: bad magic {magic:#010x}", "bad_magic")
    if version != QUIC_VERSION:
        raise DecodeError(f"QUIC: unsupported version {version:#x}", "bad_version")
    if qtype not in TYPE_NAMES:
        raise DecodeError(f"QUIC: unknown image type {qtype}", "bad_type")
    # quic_decode_begin reads width and height into ints and rejects <= 0
    if not (0 < width < 2**31 and 0 < height < 2**31):
        raise DecodeError(f"QUIC: invalid size {width}x{height}", "bad_size")
    return qtype, width, height


def decode_quic(
    data: bytes | bytearray | memoryview,
    out: np.ndarray | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> QuicImage:
    """Decodes one QUIC payload (a SpiceImage's ``data``, without its ``data_size``).

    ``out``: an optional reusable 1-D, C-contiguous, writeable uint8 buffer. When it holds at
    least ``width * height * 4`` bytes the pixels are decoded into its start and the returned
    ``pixels`` is a view of it, so decoding frame after frame allocates nothing. When it is too
    small (or None) a new 1-D buffer is allocated instead (never an error: image sizes vary);
    that buffer is ``result.pixels.base``, which a caller can keep as the next ``out``.
    A buffer of the wrong dtype, shape or layout raises ValueError (a caller bug).

    ``max_pixels`` is checked against width * height before anything is allocated.
    Raises DecodeError for any malformed input (see the module docstring for the reasons).
    """
    mv = memoryview(data)
    if not mv.c_contiguous:
        mv = memoryview(mv.tobytes())
    if mv.ndim != 1 or mv.format != "B":
        mv = mv.cast("B")  # bytes of any contiguous buffer (signed chars, u32 words...)
    qtype, width, height = read_header(mv)
    npix = width * height
    if npix > max_pixels:
        raise DecodeError(
            f"QUIC: {width}x{height} is {npix} pixels, over the limit of {max_pixels}",
            "too_large",
        )
    # A cheap lower bound on the stream length before allocating: every value of row 0 and
    # the first three pixels of every later row are Golomb codes of at least one bit (runs
    # only start at pixel 3). quic.c would also run out of words on such a stream.
    nch = 1 if qtype == GRAY else (4 if qtype == RGBA else 3)
    min_bits = nch * (width + (height - 1) * min(width, 3))
    if (len(mv) // 4 - 5) * 32 < min_bits:
        raise DecodeError(
            f"QUIC: {len(mv)} bytes cannot hold a {width}x{height} image", "truncated"
        )
    need = npix * 4
    if out is not None:
        if out.dtype != np.uint8 or out.ndim != 1 or not out.flags.c_contiguous:
            raise ValueError("out must be a 1-D C-contiguous uint8 array")
        if not out.flags.writeable:
            raise ValueError("out must be writeable")
    buf = out if out is not None and out.shape[0] >= need else np.empty(need, np.uint8)
    rc = _quic.decode(mv, buf, qtype, width, height)
    if rc == _quic.ERR_TRUNCATED:
        raise DecodeError(f"QUIC: {TYPE_NAMES[qtype]} {width}x{height}: data ends early",
                          "truncated")
    if rc == _quic.ERR_RLE:
        raise DecodeError(f"QUIC: {TYPE_NAMES[qtype]} {width}x{height}: run past the row end",
                          "corrupt")
    pixels = buf[:need].reshape(height, width, 4)
    return QuicImage(qtype, width, height, pixels)


def encode_quic(pixels: np.ndarray, qtype: int) -> bytes:
    """Encodes an image as spice-server would (quic.c ``quic_encode``), for tests/benchmarks.

    ``pixels``: (H, W, 4) uint8 BGRA, or (H, W) uint8 for GRAY. What is coded per type:
    RGB32/RGB24 the B, G, R bytes (the two differ only in the header's type); RGBA those and
    alpha; RGB16 the top 5 bits of B, G, R (``c >> 3``, as quic.c's RGB16_TO_32 reads a 32-bit
    pixel), so decoding returns ``(c5 << 3) | (c5 >> 2)``; GRAY byte B (or the 2-D array).
    """
    if qtype not in TYPE_NAMES:
        raise ValueError(f"unknown QUIC image type {qtype}")
    arr = np.asarray(pixels, dtype=np.uint8)
    if arr.ndim == 2 and qtype == GRAY:
        raw = np.zeros((*arr.shape, 4), np.uint8)
        raw[..., 0] = arr
    elif arr.ndim == 3 and arr.shape[2] == 4:
        raw = np.array(arr, dtype=np.uint8, order="C", copy=True)
        if qtype == RGB16:
            raw[..., :3] >>= 3
    else:
        raise ValueError("pixels must be (H, W, 4) BGRA (or (H, W) for GRAY)")
    height, width = raw.shape[:2]
    return bytes(_quic.encode(raw.reshape(-1), qtype, width, height))
