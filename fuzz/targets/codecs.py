"""Harnesses of the image and video codecs: QUIC, LZ (and the LZ alpha plane), GLZ and
ZLIB_GLZ against one dictionary, LZ4, MJPEG.

Contract: any payload decodes or raises a RyllError (DecodeError); a decoded image has the
size its header declared.
"""

from __future__ import annotations

import struct

import numpy as np

from fuzz import seeds as S
from fuzz.contract import ContractViolation
from fuzz.target import Target
from ryll.codecs import lz as L
from ryll.codecs.glz import GlzDictionary, decode_glz, decode_zlib_glz
from ryll.codecs.lz4 import decode_lz4
from ryll.codecs.quic import decode_quic
from ryll.errors import RyllError
from ryll.video.mjpeg import decode_mjpeg_frame


def _expect_shape(pixels: np.ndarray, height: int, width: int, what: str) -> None:
    if pixels.shape != (height, width, 4) or pixels.dtype != np.uint8:
        raise ContractViolation(f"{what}: pixels {pixels.shape} {pixels.dtype} for a "
                                f"{width}x{height} image")


# --- QUIC: the payload as is; odd lengths decode into a reused buffer ----------------------

_QUIC_OUT = np.empty(64 * 1024, np.uint8)


def quic_one_input(data: bytes) -> None:
    try:
        img = decode_quic(data, out=_QUIC_OUT if len(data) % 2 else None)
    except RyllError:
        return
    _expect_shape(img.pixels, img.height, img.width, "quic")


def quic_seeds() -> list[bytes]:
    return list(S.quic_payloads())


# --- LZ: [mode u8][palette entries u8][payload]; mode bit 0: apply_lz_alpha ----------------

MAX_ALPHA_PIXELS = 1 << 22


def lz_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    mode, npal, payload = data[0], data[1], data[2:]
    palette = None if npal == 0 else (np.arange(npal, dtype=np.uint32) * 0x00010203)
    try:
        if mode & 1:
            hdr = L.parse_header(L.as_bytes(payload))
            if hdr.width * hdr.height > MAX_ALPHA_PIXELS:
                return  # the caller's image (a decoded JPEG) is bounded before this
            L.apply_lz_alpha(payload, np.zeros((hdr.height, hdr.width, 4), np.uint8))
        else:
            img = L.decode_lz(payload, palette=palette)
            _expect_shape(img.pixels, img.height, img.width, "lz")
    except RyllError:
        return


def lz_seeds() -> list[bytes]:
    out = []
    for typ, payload in S.lz_synthetic():
        npal = {L.PLT1_LE: 2, L.PLT1_BE: 2, L.PLT4_LE: 16, L.PLT4_BE: 16, L.PLT8: 200}.get(typ, 0)
        out.append(bytes([0, npal]) + payload)
        if typ == L.XXXA:
            out.append(bytes([1, 0]) + payload)
    meta, (big,) = S.lz_family("lz")[0]
    out.append(bytes([0, 0]) + big)
    return out


# --- GLZ / ZLIB_GLZ: records [kind u8][glz_data_size u32][size u32][payload] into one small
# dictionary (so references, misses and evictions all happen) --------------------------------

GLZ_WINDOW_PIXELS = 1 << 16
GLZ_MAX_BYTES = 1 << 22
GLZ_RECORD = struct.Struct("<BII")


def glz_one_input(data: bytes) -> None:
    dictionary = GlzDictionary(GLZ_WINDOW_PIXELS, GLZ_MAX_BYTES)
    pos = 0
    for _ in range(32):
        if pos + GLZ_RECORD.size > len(data):
            break
        kind, glz_size, size = GLZ_RECORD.unpack_from(data, pos)
        pos += GLZ_RECORD.size
        payload = data[pos:pos + size]
        pos += size
        try:
            if kind & 1:
                img = decode_zlib_glz(payload, glz_size, dictionary)
            else:
                img = decode_glz(payload, dictionary)
        except RyllError:
            continue
        _expect_shape(img.pixels, img.height, img.width, "glz")
    if dictionary.total_pixels > dictionary.cap_pixels or len(dictionary) != len(dictionary.ids()):
        raise ContractViolation(f"glz dictionary holds {dictionary.total_pixels} pixels in "
                                f"{len(dictionary)} images, cap {dictionary.cap_pixels}")


def glz_record(payload: bytes, glz_size: int = 0, zlib: bool = False) -> bytes:
    return GLZ_RECORD.pack(1 if zlib else 0, glz_size, len(payload)) + payload


def glz_seeds() -> list[bytes]:
    out = [b"".join(glz_record(p) for p in S.glz_synthetic())]
    glz = [(m, p) for m, (p,) in S.lz_family("glz") if int(m[0]) == 102]
    for start in (0, 40, 200):
        out.append(b"".join(glz_record(p) for _, p in glz[start:start + 6]))
    zglz = [(m, p) for m, (p,) in S.lz_family("zlib_glz") if int(m[0]) in (102, 107)]
    out.append(b"".join(glz_record(p, int(m[4]), int(m[0]) == 107) for m, p in zglz[:6]))
    return out


# --- LZ4: [width u16][height u16][payload] --------------------------------------------------

LZ4_HEAD = struct.Struct("<HH")


def lz4_one_input(data: bytes) -> None:
    if len(data) < LZ4_HEAD.size:
        return
    width, height = LZ4_HEAD.unpack_from(data)
    try:
        img = decode_lz4(data[LZ4_HEAD.size:], width, height)
    except RyllError:
        return
    _expect_shape(img.pixels, height, width, "lz4")


def lz4_seeds() -> list[bytes]:
    out = []
    img = S.bgra(5, 7, alpha=True)
    for fmt, px in ((8, img), (9, img), (7, np.ascontiguousarray(img[..., :3])),
                    (6, S.rng(4).integers(0, 1 << 15, (5, 7)).astype("<u2"))):
        out.append(LZ4_HEAD.pack(7, 5) + S.lz4_payload(fmt, px))
        out.append(LZ4_HEAD.pack(7, 5) + S.lz4_payload(fmt, px, top_down=False, blocks=3))
    for m, (p,) in [e for e in S.lz_family("lz4") if int(e[0][0]) == 109][1:5]:
        out.append(LZ4_HEAD.pack(int(m[2]), int(m[3])) + p)
    return out


# --- MJPEG: one JPEG frame -----------------------------------------------------------------


def mjpeg_one_input(data: bytes) -> None:
    try:
        pixels = decode_mjpeg_frame(data)
    except RyllError:
        return
    if pixels.ndim != 3 or pixels.shape[2] != 4 or pixels.dtype != np.uint8:
        raise ContractViolation(f"mjpeg: pixels {pixels.shape} {pixels.dtype}")


def mjpeg_seeds() -> list[bytes]:
    return list(S.jpegs())


TARGETS = {
    "quic": Target(quic_one_input, quic_seeds, "ryll.codecs.quic.decode_quic"),
    "lz": Target(lz_one_input, lz_seeds, "ryll.codecs.lz.decode_lz (palettes) and "
                 "apply_lz_alpha"),
    "glz": Target(glz_one_input, glz_seeds, "decode_glz / decode_zlib_glz, a chain of images "
                  "against one GlzDictionary"),
    "lz4": Target(lz4_one_input, lz4_seeds, "ryll.codecs.lz4.decode_lz4"),
    "mjpeg": Target(mjpeg_one_input, mjpeg_seeds, "ryll.video.mjpeg.decode_mjpeg_frame"),
}
