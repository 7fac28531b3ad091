"""SPICE LZ image payloads (SPICE_IMAGE_TYPE_LZ_RGB / LZ_PLT, and the alpha of JPEG_ALPHA).

Owns the LZ header, the size checks and the output buffer; the token loop is compiled
(``_lz.lz_decode``). The format is spice-common's common/lz.c (lz_decode_begin, lz_decode) and
lz_decompress_tmpl.c; what each type becomes follows canvas_get_lz in common/canvas_base.c.

Output: numpy uint8 (H, W, 4) in B, G, R, A memory order (a SPICE 32-bit little-endian xRGB
surface's byte order), top row first. Alpha is 255 unless the type carries alpha (RGBA; A8 and
XXXA give b = g = r = 0 with the alpha, as lz_a8_to_rgb32 does).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np

from ryll.codecs import _lz  # type: ignore[attr-defined]
from ryll.errors import DecodeError

# common/lz_common.h
LZ_MAGIC = 0x20205A4C  # "LZ  " read as a big-endian u32
LZ_VERSION = 0x00010001  # LZ_VERSION_MAJOR 1, LZ_VERSION_MINOR 1

PLT1_LE = 1
PLT1_BE = 2
PLT4_LE = 3
PLT4_BE = 4
PLT8 = 5
RGB16 = 6
RGB24 = 7
RGB32 = 8
RGBA = 9
XXXA = 10
A8 = 11

TYPE_NAMES = {
    PLT1_LE: "PLT1_LE", PLT1_BE: "PLT1_BE", PLT4_LE: "PLT4_LE", PLT4_BE: "PLT4_BE",
    PLT8: "PLT8", RGB16: "RGB16", RGB24: "RGB24", RGB32: "RGB32", RGBA: "RGBA", XXXA: "XXXA",
    A8: "A8",
}
# lz_common.h PLT_PIXELS_PER_BYTE / RGB_BYTES_PER_PIXEL
PLT_PIXELS_PER_BYTE = {PLT1_LE: 8, PLT1_BE: 8, PLT4_LE: 2, PLT4_BE: 2, PLT8: 1}
RGB_BYTES_PER_PIXEL = {RGB16: 2, RGB24: 3, RGB32: 4, RGBA: 4, XXXA: 4, A8: 1}

KIND = {
    PLT1_LE: _lz.K_PLT1_LE, PLT1_BE: _lz.K_PLT1_BE, PLT4_LE: _lz.K_PLT4_LE,
    PLT4_BE: _lz.K_PLT4_BE, PLT8: _lz.K_PLT8, RGB16: _lz.K_RGB16, RGB24: _lz.K_RGB,
    RGB32: _lz.K_RGB, RGBA: _lz.K_RGB, XXXA: _lz.K_ALPHA, A8: _lz.K_A8,
}

# The default pixel cap: 8192 x 4096, the largest surface spice-gtk's canvas accepts is far
# beyond any monitor SPICE drives (spice-server limits a monitor to 8192 wide); an image above
# it is hostile. Callers pass their own.
MAX_PIXELS = 8192 * 4096

HEADER = struct.Struct(">7I")
OPAQUE = 0xFF000000

ERROR_REASONS = {
    _lz.E_TRUNCATED: ("truncated", "the data ends inside the image"),
    _lz.E_OVERRUN: ("corrupt", "a run or match goes past the end of the image"),
    _lz.E_BAD_REF: ("corrupt", "a match refers outside the image"),
    _lz.E_MISSING: ("missing_ref", "a match refers to an image not in the dictionary"),
    _lz.E_PALETTE: ("corrupt", "a palette index past the palette"),
    _lz.E_EMPTY_BLOCK: ("corrupt", "an empty block"),
}


class LzImage(NamedTuple):
    type: int  # the LZ image type (RGB32...); for LZ4 the SPICE bitmap format
    width: int
    height: int
    top_down: bool
    pixels: np.ndarray  # (H, W, 4) uint8 BGRA, top row first


class LzHeader(NamedTuple):
    type: int
    width: int
    height: int
    stride: int
    top_down: bool


def raise_for(err: int, codec: str) -> None:
    reason, text = ERROR_REASONS.get(err, ("corrupt", f"error {err}"))
    raise DecodeError(f"{codec}: {text}", reason)


def as_bytes(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """A read-only uint8 view of any bytes-like input, without a copy."""
    arr = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    if arr.dtype != np.uint8 or arr.ndim != 1 or not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr, dtype=np.uint8).reshape(-1)
    return arr


def output_buffer(out: np.ndarray | None, height: int, width: int) -> np.ndarray:
    """(H, W, 4) uint8 in ``out``'s memory (any C-contiguous writable uint8 array of at least
    H * W * 4 bytes, so one buffer serves images of any size) or a new array."""
    n = height * width * 4
    if out is None:
        return np.empty((height, width, 4), dtype=np.uint8)
    if out.dtype != np.uint8 or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be a C-contiguous writable uint8 array")
    if out.size < n:
        raise ValueError(f"out holds {out.size} bytes, the image needs {n}")
    return out.reshape(-1)[:n].reshape(height, width, 4)


def check_size(width: int, height: int, max_pixels: int, codec: str) -> None:
    if width <= 0 or height <= 0:
        raise DecodeError(f"{codec}: empty image {width}x{height}", "bad_header")
    if width * height > max_pixels:
        raise DecodeError(
            f"{codec}: {width}x{height} is over the limit of {max_pixels} pixels", "too_large"
        )


def parse_header(buf: np.ndarray) -> LzHeader:
    """lz_decode_begin: magic, version, type, width, height, stride, top_down (BE u32s), and
    lz_set_sizes' checks."""
    if buf.size < HEADER.size:
        raise DecodeError(f"lz: {buf.size} bytes is shorter than the header", "truncated")
    magic, version, typ, width, height, stride, top_down = HEADER.unpack_from(buf.data, 0)
    if magic != LZ_MAGIC:
        raise DecodeError(f"lz: bad magic {magic:#010x}", "bad_header")
    if version != LZ_VERSION:
        raise DecodeError(f"lz: unsupported version {version:#x}", "bad_header")
    if typ not in TYPE_NAMES:
        raise DecodeError(f"lz: invalid image type {typ}", "bad_header")
    # lz.c reads them as int: a value with the top bit set is negative, an error there.
    if width >= 1 << 31 or height >= 1 << 31 or stride >= 1 << 31:
        raise DecodeError(f"lz: negative size {width}x{height} stride {stride}", "bad_header")
    if typ in PLT_PIXELS_PER_BYTE:
        ppb = PLT_PIXELS_PER_BYTE[typ]
        # lz_set_sizes allows one byte of padding when the width is not a whole byte; we also
        # refuse a stride too short for the width (lz.c does not check, and would leave the
        # end of each row unset).
        if stride * ppb < width or (
            stride > width // ppb and (width % ppb == 0 or stride - width // ppb > 1)
        ):
            raise DecodeError(f"lz: stride {stride} does not fit width {width}", "bad_header")
    elif stride != width * RGB_BYTES_PER_PIXEL[typ]:
        raise DecodeError(f"lz: stride {stride} != width {width} * bytes per pixel", "bad_header")
    return LzHeader(typ, width, height, stride, top_down != 0)


def _palette_array(palette: np.ndarray | None, typ: int) -> np.ndarray:
    if palette is None:
        raise DecodeError(f"lz: {TYPE_NAMES[typ]} image without a palette", "missing_palette")
    pal = np.asarray(palette).astype(np.uint32, copy=False).reshape(-1)
    need = 2 if typ in (PLT1_LE, PLT1_BE) else 1
    if pal.size < need:
        raise DecodeError(f"lz: {pal.size} palette entries for {TYPE_NAMES[typ]}", "corrupt")
    # COPY_PLT_ENTRY takes b, g, r from the entry and sets pad 0; our alpha is 255.
    return np.ascontiguousarray((pal & 0x00FFFFFF) | OPAQUE, dtype=np.uint32)


def decode_lz(
    data: bytes | bytearray | memoryview | np.ndarray,
    palette: np.ndarray | None = None,
    out: np.ndarray | None = None,
    max_pixels: int = MAX_PIXELS,
) -> LzImage:
    """Decodes one LZ image (the data of an LZ_RGB or LZ_PLT image, or an LZ alpha plane).

    ``palette``: the uint32 xRGB entries, needed by the PLT types. ``out``: an optional reusable
    uint8 buffer (see ``output_buffer``); the result's pixels are a view into it.
    Raises DecodeError (reasons: truncated, bad_header, too_large, corrupt, missing_palette).
    """
    buf = as_bytes(data)
    hdr = parse_header(buf)
    check_size(hdr.width, hdr.height, max_pixels, "lz")
    typ, width, height = hdr.type, hdr.width, hdr.height
    pixels = output_buffer(out, height, width)
    flat = pixels.reshape(-1).view(np.uint32)
    pos = HEADER.size
    if typ in PLT_PIXELS_PER_BYTE:
        pal = _palette_array(palette, typ)
        # The stream covers whole bytes of each row (stride * pixels-per-byte pixels); decode
        # at that width and keep the first ``width`` pixels of each row.
        gross_w = hdr.stride * PLT_PIXELS_PER_BYTE[typ]
        # The working buffer holds whole bytes of each row (up to 7 pixels more than the
        # width): bound it by the pixel cap too, before it is allocated (a 1-pixel-wide
        # PLT1 image would otherwise cost 8 times the cap).
        if gross_w * height > max_pixels + 8 * height:
            raise DecodeError(f"lz: {gross_w}x{height} working rows are over the limit of "
                              f"{max_pixels} pixels", "too_large")
        gross = np.empty(gross_w * height, dtype=np.uint32) if gross_w != width else flat
        err, pos, _ = _lz.lz_decode(buf, pos, gross, gross.size, KIND[typ], False, pal, OPAQUE)
        if err:
            raise_for(err, "lz")
        if gross is not flat:
            flat.reshape(height, width)[:] = gross.reshape(height, gross_w)[:, :width]
    else:
        npix = width * height
        if typ == XXXA:
            flat[:npix] = 0
        err, pos, _ = _lz.lz_decode(buf, pos, flat, npix, KIND[typ], False, None, OPAQUE)
        if err:
            raise_for(err, "lz")
        if typ == RGBA:
            # lz_decode: the RGB pass, then an alpha pass over the same pixels
            err, pos, _ = _lz.lz_decode(buf, pos, flat, npix, _lz.K_ALPHA, False, None, 0)
            if err:
                raise_for(err, "lz")
    if pos != buf.size:
        # lz_decode asserts is_io_to_decode_end: the image must use all of its data.
        raise DecodeError(f"lz: {buf.size - pos} bytes after the image", "corrupt")
    if not hdr.top_down:
        _lz.flip_rows(pixels.reshape(-1), height, width * 4)
    return LzImage(typ, width, height, hdr.top_down, pixels)


def apply_lz_alpha(data: bytes | bytearray | memoryview | np.ndarray, pixels: np.ndarray) -> None:
    """Decodes an LZ XXXA alpha plane into the alpha bytes of ``pixels`` ((H, W, 4) uint8,
    C-contiguous, top row first), leaving b, g, r alone: the second half of a JPEG_ALPHA image
    (canvas_get_jpeg_alpha). A bottom-up plane's first row is the image's last.

    On a DecodeError the alpha may be partly written.
    """
    buf = as_bytes(data)
    hdr = parse_header(buf)
    if hdr.type != XXXA:
        raise DecodeError(f"lz alpha: type {TYPE_NAMES[hdr.type]}, not XXXA", "bad_header")
    if (
        pixels.dtype != np.uint8
        or pixels.ndim != 3
        or pixels.shape[2] != 4
        or not pixels.flags.c_contiguous
        or not pixels.flags.writeable
    ):
        raise ValueError("pixels must be a writable C-contiguous (H, W, 4) uint8 array")
    if pixels.shape[:2] != (hdr.height, hdr.width):
        raise DecodeError(
            f"lz alpha: {hdr.width}x{hdr.height} plane for a "
            f"{pixels.shape[1]}x{pixels.shape[0]} image",
            "bad_header",
        )
    check_size(hdr.width, hdr.height, pixels.shape[0] * pixels.shape[1], "lz alpha")
    flat = pixels.reshape(-1)
    npix = hdr.width * hdr.height
    if not hdr.top_down:
        _lz.flip_rows(flat, hdr.height, hdr.width * 4)
    try:
        err, pos, _ = _lz.lz_decode(buf, HEADER.size, flat.view(np.uint32), npix, _lz.K_ALPHA,
                                    False, None, 0)
    finally:
        if not hdr.top_down:
            _lz.flip_rows(flat, hdr.height, hdr.width * 4)
    if err:
        raise_for(err, "lz alpha")
    if pos != buf.size:
        raise DecodeError(f"lz alpha: {buf.size - pos} bytes after the image", "corrupt")
