"""SPICE LZ4 image payloads (SPICE_IMAGE_TYPE_LZ4).

The payload is top_down u8, SPICE bitmap format u8, then blocks {BE u32 size, LZ4 block} that
form one LZ4 stream: a block may copy from any earlier block's output (spice-server's
lz4_encode uses LZ4_compress_fast_continue; spice-common's canvas_get_lz4 decodes with
LZ4_decompress_safe_continue into one buffer). The block format is decoded by our own compiled
loop (``_lz.lz4_decode_stream``): it needs no library and checks every offset against the
output so far.

Rows are packed (width * bytes per pixel; canvas_fix_alignment re-aligns them). Formats as in
canvas_get_lz4: 16BIT (x1r5g5b5), 24BIT (b, g, r), 32BIT (b, g, r, x), RGBA (b, g, r, a).
Output as ``ryll.codecs.lz``: (H, W, 4) uint8 B, G, R, A, top row first, alpha 255 unless RGBA.
"""

from __future__ import annotations

import numpy as np

from ryll.codecs import _lz  # type: ignore[attr-defined]
from ryll.codecs.lz import (
    MAX_PIXELS,
    OPAQUE,
    LzImage,
    as_bytes,
    check_size,
    output_buffer,
    raise_for,
)
from ryll.errors import DecodeError

# SpiceBitmapFmt values canvas_get_lz4 accepts, and their bytes per pixel
FMT_16BIT = 6
FMT_24BIT = 7
FMT_32BIT = 8
FMT_RGBA = 9
BYTES_PER_PIXEL = {FMT_16BIT: 2, FMT_24BIT: 3, FMT_32BIT: 4, FMT_RGBA: 4}


def decode_lz4(
    data: bytes | bytearray | memoryview | np.ndarray,
    width: int,
    height: int,
    out: np.ndarray | None = None,
    max_pixels: int = MAX_PIXELS,
) -> LzImage:
    """Decodes an LZ4 image of ``width`` x ``height`` (from the SpiceImage descriptor: the
    payload does not repeat them). The result's ``type`` is the SPICE bitmap format.

    ``out``: an optional reusable uint8 buffer (see ``lz.output_buffer``). Raises DecodeError
    (truncated, bad_header, too_large, corrupt).
    """
    buf = as_bytes(data)
    check_size(width, height, max_pixels, "lz4")
    if buf.size < 2:
        raise DecodeError("lz4: missing header", "truncated")
    top_down = buf[0] != 0
    fmt = int(buf[1])
    bpp = BYTES_PER_PIXEL.get(fmt)
    if bpp is None:
        raise DecodeError(f"lz4: unsupported bitmap format {fmt}", "bad_header")
    pixels = output_buffer(out, height, width)
    flat8 = pixels.reshape(-1)
    npix = width * height
    need = npix * bpp
    if bpp == 4:
        target = flat8
    else:
        target = np.empty(need, dtype=np.uint8)
    err, written = _lz.lz4_decode_stream(buf, 2, target)
    if err:
        raise_for(err, "lz4")
    if written != need:
        raise DecodeError(f"lz4: {written} bytes of {need}", "truncated")
    flat32 = flat8.view(np.uint32)
    if fmt == FMT_32BIT:
        _lz.set_alpha(flat32, npix, OPAQUE)
    elif fmt == FMT_24BIT:
        _lz.expand_rgb24(target, flat32, npix)
    elif fmt == FMT_16BIT:
        _lz.expand_rgb16le(target, flat32, npix)
    if not top_down:
        _lz.flip_rows(flat8, height, width * 4)
    return LzImage(fmt, width, height, bool(top_down), pixels)
