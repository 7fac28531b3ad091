# cython: language_level=3
"""A simple LZ / GLZ encoder: the server side of SPICE's LZ family, for tests and benchmarks.

spice-server never sends some LZ types to our test VM (PLT, A8, RGB16, RGBA, XXXA), so the
tests make them here, and the benchmark makes its 1024x768 images. It writes the token format
of spice-common's common/lz_compress_tmpl.c (LZ) and spice-server's server/glz-encode.tmpl.c
(GLZ, references within the image only); the match search is a plain greedy hash of three
units, not the servers' (the decoder accepts any valid token stream). Not used by the client.
"""

import struct

import numpy as np

from libc.stdint cimport uint8_t, uint32_t

# unit kinds: how one unit is written as literal bytes (and the match length bias)
U_RGB = 0     # 3 bytes b, g, r of 0x..RRGGBB; bias 0
U_RGB16 = 1   # 2 bytes big-endian; bias 1
U_BYTE = 2    # 1 byte; bias 2

DEF_HASH_BITS = 16
LZ_MAGIC = 0x20205A4C
LZ_VERSION = 0x00010001


cdef inline size_t put(uint8_t[::1] o, size_t n, uint32_t v):
    o[n] = <uint8_t>v
    return n + 1


def encode_units(const uint32_t[::1] units, int kind, bint glz):
    """The token stream (no header) for ``units``."""
    cdef Py_ssize_t n = units.shape[0]
    cdef Py_ssize_t cap = 64 + n * 4 + n // 8
    out_arr = np.empty(cap, dtype=np.uint8)
    cdef uint8_t[::1] o = out_arr
    cdef size_t op = 0
    cdef Py_ssize_t i = 0, lit_start = 0, j, k, length, best_len, best_ofs, ofs, bias
    cdef Py_ssize_t min_len, o1, L, r
    cdef uint32_t mask = 0xFFFFFF if kind == U_RGB else 0xFFFFFFFF
    cdef uint32_t h, v
    cdef Py_ssize_t hsize = 1 << DEF_HASH_BITS
    table_arr = np.full(hsize, -1, dtype=np.int64)
    cdef long long[::1] table = table_arr
    cdef Py_ssize_t max_ofs
    bias = 0 if kind == U_RGB else (1 if kind == U_RGB16 else 2)
    min_len = bias + 1
    if min_len < 2:
        min_len = 2
    max_ofs = (1 << 25) if glz else (65535 + 8191 + 1)

    while i < n:
        best_len = 0
        best_ofs = 0
        # a run of the previous unit
        if i > 0 and (units[i] & mask) == (units[i - 1] & mask):
            k = 0
            while i + k < n and (units[i + k] & mask) == (units[i - 1] & mask):
                k += 1
            best_len = k
            best_ofs = 1
        if i + 2 < n:
            h = ((units[i] & mask) * 2654435761u) ^ ((units[i + 1] & mask) * 40503u) \
                ^ ((units[i + 2] & mask) * 2246822519u)
            h = (h ^ (h >> 15)) & (hsize - 1)
            j = table[h]
            table[h] = i
            if j >= 0 and i - j <= max_ofs:
                k = 0
                while i + k < n and (units[j + k] & mask) == (units[i + k] & mask):
                    k += 1
                if k > best_len + 1:
                    best_len = k
                    best_ofs = i - j
        if best_len < min_len:
            i += 1
            continue
        # flush literals [lit_start, i)
        while lit_start < i:
            k = i - lit_start
            if k > 32:
                k = 32
            op = put(o, op, k - 1)
            for j in range(lit_start, lit_start + k):
                v = units[j]
                if kind == U_RGB:
                    op = put(o, op, v & 255)
                    op = put(o, op, (v >> 8) & 255)
                    op = put(o, op, (v >> 16) & 255)
                elif kind == U_RGB16:
                    op = put(o, op, (v >> 8) & 255)
                    op = put(o, op, v & 255)
                else:
                    op = put(o, op, v & 255)
            lit_start += k
        # the match
        L = best_len - bias
        o1 = best_ofs - 1
        if not glz:
            if o1 < 8191:
                op = put(o, op, ((L if L < 7 else 7) << 5) | (o1 >> 8))
            else:
                op = put(o, op, ((L if L < 7 else 7) << 5) | 31)
        else:
            op = put(o, op, ((L if L < 7 else 7) << 5) | ((1 if o1 >= 4096 else 0) << 4)
                     | (o1 & 15))
        if L >= 7:
            r = L - 7
            while r >= 255:
                op = put(o, op, 255)
                r -= 255
            op = put(o, op, r)
        if not glz:
            if o1 < 8191:
                op = put(o, op, o1 & 255)
            else:
                op = put(o, op, 255)
                op = put(o, op, ((o1 - 8191) >> 8) & 255)
                op = put(o, op, (o1 - 8191) & 255)
        else:
            op = put(o, op, (o1 >> 4) & 255)
            if o1 < 4096:
                op = put(o, op, 0)  # image_flag 0, image distance 0
            else:
                op = put(o, op, ((1 if o1 >= (1 << 17) else 0) << 5) | ((o1 >> 12) & 31))
                if o1 >= (1 << 17):
                    op = put(o, op, (o1 >> 17) & 255)
        i += best_len
        lit_start = i
    while lit_start < n:
        k = n - lit_start
        if k > 32:
            k = 32
        op = put(o, op, k - 1)
        for j in range(lit_start, lit_start + k):
            v = units[j]
            if kind == U_RGB:
                op = put(o, op, v & 255)
                op = put(o, op, (v >> 8) & 255)
                op = put(o, op, (v >> 16) & 255)
            elif kind == U_RGB16:
                op = put(o, op, (v >> 8) & 255)
                op = put(o, op, v & 255)
            else:
                op = put(o, op, v & 255)
        lit_start += k
    return out_arr[:op].tobytes()


# -- whole images ---------------------------------------------------------------------------

def _units(typ, img):
    """img: (H, W, 4) BGRA uint8 for RGB types, (H, W) uint8 for A8, XXXA alpha taken from
    BGRA's A; (H, W) uint16 for RGB16; (H, stride) packed uint8 for PLT types."""
    if typ in (7, 8, 9):  # RGB24, RGB32, RGBA: the colour pass
        return np.ascontiguousarray(img).reshape(-1).view(np.uint32), U_RGB
    if typ == 6:
        return np.ascontiguousarray(img, dtype=np.uint16).reshape(-1).astype(np.uint32), U_RGB16
    return np.ascontiguousarray(img, dtype=np.uint8).reshape(-1).astype(np.uint32), U_BYTE


def encode_lz(int typ, img, bint top_down=True, int width=-1):
    """An LZ image payload (header + tokens) of LZ type ``typ`` (see ryll.codecs.lz).

    ``img`` rows are in stream order (for a bottom-up image pass them bottom row first).
    For PLT types ``img`` is the packed (H, stride) bytes and ``width`` the pixel width.
    """
    img = np.asarray(img)
    height = img.shape[0]
    bpp = {6: 2, 7: 3, 8: 4, 9: 4, 10: 4, 11: 1}
    if typ <= 5:
        stride = img.shape[1]
    else:
        width = img.shape[1]
        stride = width * bpp[typ]
    head = struct.pack(">7I", LZ_MAGIC, LZ_VERSION, typ, width, height, stride,
                       1 if top_down else 0)
    if typ == 10:  # XXXA: the alpha pass only
        return head + encode_units(np.ascontiguousarray(img[..., 3]).reshape(-1).astype(
            np.uint32), U_BYTE, False)
    units, kind = _units(typ, img)
    body = encode_units(units, kind, False)
    if typ == 9:
        body += encode_units(np.ascontiguousarray(img[..., 3]).reshape(-1).astype(np.uint32),
                             U_BYTE, False)
    return head + body


def encode_glz(int typ, img, unsigned long long image_id, unsigned int win_head_dist=0,
               bint top_down=True):
    """A GLZ image payload (RGB16, RGB24, RGB32 or RGBA) whose matches stay in the image."""
    img = np.asarray(img)
    height, width = img.shape[0], img.shape[1]
    bpp = {6: 2, 7: 3, 8: 4, 9: 4}[typ]
    head = struct.pack(">IIBIIIQI", LZ_MAGIC, LZ_VERSION, typ | (16 if top_down else 0),
                       width, height, width * bpp, image_id, win_head_dist)
    units, kind = _units(typ, img)
    body = encode_units(units, kind, True)
    if typ == 9:
        body += encode_units(np.ascontiguousarray(img[..., 3]).reshape(-1).astype(np.uint32),
                             U_BYTE, True)
    return head + body
