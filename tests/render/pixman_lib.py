"""ctypes binding of the system pixman (libpixman-1.so.0), the library spice-gtk's sw_canvas
links: the oracle for render.composite. Images wrap numpy buffers the caller owns (kept alive
by :class:`Image`). :func:`library` returns None when the library cannot be loaded;
:func:`require` skips the calling test then."""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

# PIXMAN_FORMAT(bpp, type, a, r, g, b); type ARGB = 2, A = 1.
A8R8G8B8 = 0x20028888
X8R8G8B8 = 0x20020888
R5G6B5 = 0x10020565
X1R5G5B5 = 0x10020555
A8 = 0x08018000
A1 = 0x01011000
FORMATS = {"a8r8g8b8": A8R8G8B8, "x8r8g8b8": X8R8G8B8, "r5g6b5": R5G6B5,
           "x1r5g5b5": X1R5G5B5, "a8": A8, "a1": A1}
BPP = {A8R8G8B8: 32, X8R8G8B8: 32, R5G6B5: 16, X1R5G5B5: 16, A8: 8, A1: 1}


class _Transform(ctypes.Structure):
    _fields_ = [("matrix", (ctypes.c_int32 * 3) * 3)]


_lib: ctypes.CDLL | None = None
_error: str | None = None


def library() -> ctypes.CDLL | None:
    """The loaded libpixman-1 with argument types set, or None (see :data:`_error`)."""
    global _lib, _error
    if _lib is not None or _error is not None:
        return _lib
    name = ctypes.util.find_library("pixman-1") or "libpixman-1.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        try:
            lib = ctypes.CDLL("libpixman-1.so.0")
        except OSError:
            _error = f"libpixman-1 not loadable: {exc}"
            return None
    vp, i32, u32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32
    lib.pixman_image_create_bits.restype = vp
    lib.pixman_image_create_bits.argtypes = [u32, i32, i32, vp, i32]
    lib.pixman_image_unref.restype = i32
    lib.pixman_image_unref.argtypes = [vp]
    lib.pixman_image_set_transform.restype = i32
    lib.pixman_image_set_transform.argtypes = [vp, ctypes.POINTER(_Transform)]
    lib.pixman_image_set_filter.restype = i32
    lib.pixman_image_set_filter.argtypes = [vp, i32, vp, i32]
    lib.pixman_image_set_repeat.restype = None
    lib.pixman_image_set_repeat.argtypes = [vp, i32]
    lib.pixman_image_set_component_alpha.restype = None
    lib.pixman_image_set_component_alpha.argtypes = [vp, i32]
    lib.pixman_image_composite32.restype = None
    composite_args: list[Any] = [i32, vp, vp, vp, *[ctypes.c_int32] * 8]
    lib.pixman_image_composite32.argtypes = composite_args
    lib.pixman_version_string.restype = ctypes.c_char_p
    lib.pixman_version_string.argtypes = []
    _lib = lib
    return lib


def require() -> ctypes.CDLL:
    lib = library()
    if lib is None:
        pytest.skip(_error or "libpixman-1 not available")
    return lib


def version() -> str:
    return require().pixman_version_string().decode()


def stride(fmt: int, width: int) -> int:
    """pixman's rowstride for a format: whole uint32s."""
    return ((width * BPP[fmt] + 31) // 32) * 4


@dataclass
class Image:
    """A pixman bits image over ``data`` (uint8, (height, stride)), freed by :meth:`close`."""

    fmt: int
    width: int
    height: int
    data: np.ndarray
    ptr: int = field(default=0)

    def close(self) -> None:
        if self.ptr:
            require().pixman_image_unref(self.ptr)
            self.ptr = 0

    def __enter__(self) -> Image:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create(fmt: int, data: np.ndarray, width: int, transform: tuple[int, ...] | None = None,
           filter_: int = 3, repeat: int = 0, component_alpha: bool = False) -> Image:
    """An image of ``fmt`` over the rows of ``data`` (uint8 (h, stride(fmt, width)), kept
    alive and written by pixman in place). ``transform`` is the top two rows of the 16.16
    matrix (the third is 0 0 1), as SPICE carries it."""
    lib = require()
    data = np.ascontiguousarray(data, dtype=np.uint8)
    h = data.shape[0]
    assert data.shape[1] == stride(fmt, width), (data.shape, stride(fmt, width))
    ptr = lib.pixman_image_create_bits(fmt, width, h, data.ctypes.data if h else None,
                                       data.shape[1])
    if not ptr:
        raise RuntimeError("pixman_image_create_bits failed")
    img = Image(fmt, width, h, data, ptr)
    if transform is not None:
        t = _Transform()
        rows = (transform[0:3], transform[3:6], (0, 0, 65536))
        for i, row in enumerate(rows):
            for j, v in enumerate(row):
                t.matrix[i][j] = int(v)
        if not lib.pixman_image_set_transform(ptr, ctypes.byref(t)):
            img.close()
            raise RuntimeError("pixman_image_set_transform failed")
    lib.pixman_image_set_filter(ptr, filter_, None, 0)
    lib.pixman_image_set_repeat(ptr, repeat)
    lib.pixman_image_set_component_alpha(ptr, int(component_alpha))
    return img


def composite(op: int, src: Image, mask: Image | None, dest: Image, src_xy: tuple[int, int],
              mask_xy: tuple[int, int], width: int, height: int,
              dest_xy: tuple[int, int] = (0, 0)) -> None:
    require().pixman_image_composite32(op, src.ptr, mask.ptr if mask is not None else None,
                                       dest.ptr, src_xy[0], src_xy[1], mask_xy[0], mask_xy[1],
                                       dest_xy[0], dest_xy[1], width, height)


# --- packing BGRA arrays into a format's memory and reading them back -------------------


def pack(bgra: np.ndarray, fmt: int) -> np.ndarray:
    """(h, w, 4) uint8 BGRA -> (h, stride) bytes of ``fmt`` holding the channels' top bits
    (x bits, and x8r8g8b8's alpha byte, keep whatever ``bgra`` has there)."""
    h, w = bgra.shape[:2]
    px = bgra.astype(np.uint32)
    b, g, r, a = px[..., 0], px[..., 1], px[..., 2], px[..., 3]
    out = np.zeros((h, stride(fmt, w)), np.uint8)
    if fmt in (A8R8G8B8, X8R8G8B8):
        out[:, :w * 4] = bgra.reshape(h, w * 4)
    elif fmt == R5G6B5:
        v = ((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3)
        out[:, :w * 2] = v.astype("<u2").view(np.uint8).reshape(h, w * 2)
    elif fmt == X1R5G5B5:
        v = ((a >> 7) << 15) | ((r >> 3) << 10) | ((g >> 3) << 5) | (b >> 3)
        out[:, :w * 2] = v.astype("<u2").view(np.uint8).reshape(h, w * 2)
    elif fmt == A8:
        out[:, :w] = a.astype(np.uint8)
    elif fmt == A1:
        # pixman's a1 is little-endian bit order on x86: pixel x is bit (x & 31) of the
        # uint32 (x >> 5).
        bits = (a >> 7).astype(np.uint8)
        packed = np.packbits(bits, axis=1, bitorder="little")
        out[:, :packed.shape[1]] = packed
    else:
        raise AssertionError(fmt)
    return out


def read_back(img: Image) -> np.ndarray:
    """The image's memory as pixman reads it, as (h, w, 4) BGRA: a SRC composite of a plain
    image over the same memory (no transform, filter or repeat) into an a8r8g8b8 image."""
    out = np.zeros((img.height, img.width * 4), np.uint8)
    if img.height and img.width:
        with create(img.fmt, img.data, img.width) as plain, \
                create(A8R8G8B8, out, img.width) as dst:
            composite(1, plain, None, dst, (0, 0), (0, 0), img.width, img.height)
    return out.reshape(img.height, img.width, 4)


def stored(bgra: np.ndarray, fmt: int) -> np.ndarray:
    """BGRA as an image of ``fmt`` holds it: stored by :func:`pack`, read back by pixman."""
    h, w = bgra.shape[:2]
    with create(fmt, pack(np.asarray(bgra, np.uint8), fmt), w) as img:
        return read_back(img)


def composite_pictures(op: int, src: Any, mask: Any | None, component_alpha: bool,
                       dest: np.ndarray, dest_fmt: int = A8R8G8B8) -> np.ndarray:
    """pixman_image_composite32(op, src, mask, dest, src.origin, mask.origin, 0, 0, w, h)
    over the whole of ``dest`` with images made from render.composite.Picture-like records
    (pixels as BGRA memory of ``fmt``, transform, filter, repeat, origin); returns the dest
    as pixman reads it back (BGRA)."""
    h, w = dest.shape[:2]
    images: list[Image] = []
    try:
        s = create(src.fmt, pack(src.pixels, src.fmt), src.pixels.shape[1], src.transform,
                   src.filter, src.repeat)
        images.append(s)
        m = None
        if mask is not None:
            m = create(mask.fmt, pack(mask.pixels, mask.fmt), mask.pixels.shape[1],
                       mask.transform, mask.filter, mask.repeat, component_alpha)
            images.append(m)
        d = create(dest_fmt, pack(dest, dest_fmt), w)
        images.append(d)
        composite(op, s, m, d, src.origin, mask.origin if mask is not None else (0, 0), w, h)
        return read_back(d)
    finally:
        for img in images:
            img.close()
