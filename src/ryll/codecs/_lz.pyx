# cython: language_level=3
"""Compiled cores of SPICE's LZ-family image decoders: LZ, GLZ and the LZ4 block format.

The Python modules ``lz.py``, ``glz.py`` and ``lz4.py`` parse headers, check sizes and own the
buffers; this module only runs the token loops, without the GIL. The loops work on raw pointers
for speed, so every read of the input and every write or reference into the output is checked
by hand against its buffer's end before it happens (the equivalent of the build's boundscheck):
each function returns an error code instead of touching memory outside what it was given.

Pixels are uint32 values, little-endian ``0xAARRGGBB``: the byte order B, G, R, A of a SPICE
32-bit xRGB surface (spice-common's rgb32_pixel_t is {b, g, r, pad}).

The token formats mirror spice-common common/lz_decompress_tmpl.c (LZ) and spice-gtk
src/decode-glz-tmpl.c (GLZ); LZ4 is the LZ4 block format decoded as one stream across blocks,
as canvas_get_lz4 does with LZ4_decompress_safe_continue.
"""

from libc.stdint cimport int64_t, intptr_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

# Error codes (the Python wrappers turn them into DecodeError reasons).
OK = 0
E_TRUNCATED = 1      # the input ended inside a token
E_OVERRUN = 2        # a literal run or a match would write past the image
E_BAD_REF = 3        # a match reaches before the image start or past a referenced image
E_MISSING = 4        # GLZ: the referenced image is not in the dictionary
E_PALETTE = 5        # a palette index past the palette
E_EMPTY_BLOCK = 6    # LZ4: a block that produced nothing (LZ4_decompress_safe returns <= 0)

cdef enum:
    _OK = 0
    _E_TRUNCATED = 1
    _E_OVERRUN = 2
    _E_BAD_REF = 3
    _E_MISSING = 4
    _E_PALETTE = 5
    _E_EMPTY_BLOCK = 6

# Pixel kinds: how a literal unit becomes pixels and how a match copies them.
K_RGB = 0        # 3 bytes b, g, r (LZ RGB24/RGB32, GLZ RGB24/RGB32, first pass of RGBA)
K_RGB16 = 1      # 2 bytes big-endian x1r5g5b5
K_ALPHA = 2      # 1 byte into the alpha byte only; matches copy alpha only (RGBA 2nd pass, XXXA)
K_A8 = 3         # 1 byte alpha, b = g = r = 0 (lz_a8_to_rgb32)
K_PLT8 = 4
K_PLT4_LE = 5
K_PLT4_BE = 6
K_PLT1_LE = 7
K_PLT1_BE = 8

cdef enum:
    _K_RGB = 0
    _K_RGB16 = 1
    _K_ALPHA = 2
    _K_A8 = 3
    _K_PLT8 = 4
    _K_PLT4_LE = 5
    _K_PLT4_BE = 6
    _K_PLT1_LE = 7
    _K_PLT1_BE = 8

# spice-common lz.c: MAX_DISTANCE, the bias of LZ's 16-bit "far" offsets.
cdef uint32_t LZ_MAX_DISTANCE = 8191

cdef struct Refs:
    const uint64_t *ids      # sorted ascending
    const intptr_t *ptrs     # uint32_t* of each image's pixels (stream order)
    const int64_t *npix
    const uint8_t *alpha     # 1 if the image carries real alpha (RGBA)
    Py_ssize_t n


cdef inline const uint32_t *find_image(const Refs *r, uint64_t image_id, int64_t *npix,
                                       int *alpha) noexcept nogil:
    cdef Py_ssize_t lo = 0, hi = r.n, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if r.ids[mid] < image_id:
            lo = mid + 1
        else:
            hi = mid
    if lo < r.n and r.ids[lo] == image_id:
        npix[0] = r.npix[lo]
        alpha[0] = r.alpha[lo]
        return <const uint32_t *>r.ptrs[lo]
    return NULL


cdef inline uint32_t rgb16_to_32(uint32_t hi, uint32_t lo) noexcept nogil:
    # x1r5g5b5 big-endian to 8 bits a channel by bit replication (v << 3 | v >> 2), which is
    # exactly what lz_rgb16_to_rgb32's COPY_COMP_PIXEL computes with its shifts and masks.
    cdef uint32_t r = (hi >> 2) & 31
    cdef uint32_t g = ((hi & 3) << 3) | (lo >> 5)
    cdef uint32_t b = lo & 31
    r = (r << 3) | (r >> 2)
    g = (g << 3) | (g >> 2)
    b = (b << 3) | (b >> 2)
    return 0xFF000000u | (r << 16) | (g << 8) | b


cdef inline void copy_match(uint32_t *out, size_t op, size_t ofs, size_t length) noexcept nogil:
    """out[op + i] = out[op + i - ofs] for i in range(length), forward (LZ77 overlap)."""
    cdef uint32_t *dst = out + op
    cdef const uint32_t *src = out + op - ofs
    cdef uint32_t v
    cdef size_t i, chunk, done
    if ofs == 1:
        v = src[0]
        for i in range(length):
            dst[i] = v
    elif ofs >= length:
        memcpy(dst, src, length * 4)
    else:
        # The source repeats with period ofs: copy it in chunks that never overlap, each as
        # long as everything already written since src.
        done = 0
        while done < length:
            chunk = ofs + done
            if chunk > length - done:
                chunk = length - done
            memcpy(dst + done, src, chunk * 4)
            done += chunk


cdef int lz_core(const uint8_t *ip, const uint8_t *iend, size_t *consumed,
                 uint32_t *out, size_t npix, int kind, bint glz,
                 const uint32_t *pal, size_t pal_n, uint32_t amask,
                 const Refs *refs, uint64_t image_id, uint64_t *missing) noexcept nogil:
    cdef const uint8_t *istart = ip
    cdef uint8_t *out8 = <uint8_t *>out
    cdef const uint8_t *src8
    cdef const uint32_t *rsrc
    cdef size_t op = 0, n, i, j, length, ofs, ppb = 1, bias
    cdef uint32_t ctrl, code, b, v, fore, back
    cdef uint32_t pixel_flag, image_flag
    cdef uint64_t image_dist
    cdef int64_t rnpix
    cdef int ralpha

    if kind == _K_PLT4_LE or kind == _K_PLT4_BE:
        ppb = 2
    elif kind == _K_PLT1_LE or kind == _K_PLT1_BE:
        ppb = 8
    # Match lengths: LZ stores len - bias with bias 1 (RGB), 2 (RGB16), 3 (1-byte units) after
    # its own "len--"; GLZ stores len - 0/1/2. Both come to (ctrl >> 5) + extension + this.
    if kind == _K_RGB:
        bias = 0
    elif kind == _K_RGB16:
        bias = 1
    else:
        bias = 2
    fore = 0
    back = 0
    if kind == _K_PLT1_LE or kind == _K_PLT1_BE:
        back = pal[0]
        fore = pal[1]

    while op < npix:
        if ip >= iend:
            return _E_TRUNCATED
        ctrl = ip[0]
        ip += 1
        if ctrl < 32:
            # literal run of ctrl + 1 units
            n = ctrl + 1
            if n * ppb > npix - op:
                return _E_OVERRUN
            if kind == _K_RGB:
                if <size_t>(iend - ip) < 3 * n:
                    return _E_TRUNCATED
                for i in range(n):
                    out[op + i] = amask | (<uint32_t>ip[2] << 16) | (<uint32_t>ip[1] << 8) | ip[0]
                    ip += 3
            elif kind == _K_RGB16:
                if <size_t>(iend - ip) < 2 * n:
                    return _E_TRUNCATED
                for i in range(n):
                    out[op + i] = rgb16_to_32(ip[0], ip[1])
                    ip += 2
            else:
                if <size_t>(iend - ip) < n:
                    return _E_TRUNCATED
                if kind == _K_ALPHA:
                    for i in range(n):
                        out8[(op + i) * 4 + 3] = ip[i]
                elif kind == _K_A8:
                    for i in range(n):
                        out[op + i] = <uint32_t>ip[i] << 24
                elif kind == _K_PLT8:
                    for i in range(n):
                        if ip[i] >= pal_n:
                            return _E_PALETTE
                        out[op + i] = pal[ip[i]]
                elif kind == _K_PLT4_LE:
                    for i in range(n):
                        b = ip[i]
                        out[op + 2 * i] = pal[(b & 15) % pal_n]
                        out[op + 2 * i + 1] = pal[(b >> 4) % pal_n]
                elif kind == _K_PLT4_BE:
                    for i in range(n):
                        b = ip[i]
                        out[op + 2 * i] = pal[(b >> 4) % pal_n]
                        out[op + 2 * i + 1] = pal[(b & 15) % pal_n]
                elif kind == _K_PLT1_LE:
                    for i in range(n):
                        b = ip[i]
                        for j in range(8):
                            out[op + 8 * i + j] = fore if (b >> j) & 1 else back
                else:  # PLT1_BE
                    for i in range(n):
                        b = ip[i]
                        for j in range(8):
                            out[op + 8 * i + j] = fore if (b >> (7 - j)) & 1 else back
                ip += n
            op += n * ppb
            continue

        # a match
        length = ctrl >> 5
        if length == 7:
            while True:
                if ip >= iend:
                    return _E_TRUNCATED
                code = ip[0]
                ip += 1
                length += code
                if code != 255:
                    break
        image_dist = 0
        if not glz:
            if ip >= iend:
                return _E_TRUNCATED
            code = ip[0]
            ip += 1
            ofs = ((ctrl & 31) << 8) + code
            if code == 255 and (ctrl & 31) == 31:
                # 16-bit far offset (lz_decompress_tmpl.c "match from 16-bit distance")
                if iend - ip < 2:
                    return _E_TRUNCATED
                ofs = ((<size_t>ip[0] << 8) | ip[1]) + LZ_MAX_DISTANCE
                ip += 2
            ofs += 1
        else:
            pixel_flag = (ctrl >> 4) & 1
            if iend - ip < 2:
                return _E_TRUNCATED
            ofs = (ctrl & 15) + (<size_t>ip[0] << 4)
            code = ip[1]
            ip += 2
            image_flag = (code >> 6) & 3
            if iend - ip < image_flag:
                return _E_TRUNCATED
            if not pixel_flag:
                image_dist = code & 0x3f
                for i in range(image_flag):
                    image_dist += <uint64_t>ip[i] << (6 + 8 * i)
                ip += image_flag
            else:
                pixel_flag = (code >> 5) & 1
                ofs += <size_t>(code & 0x1f) << 12
                for i in range(image_flag):
                    image_dist += <uint64_t>ip[i] << (8 * i)
                ip += image_flag
                if pixel_flag:
                    if ip >= iend:
                        return _E_TRUNCATED
                    ofs += <size_t>ip[0] << 17
                    ip += 1
            if image_dist == 0:
                ofs += 1
        length += bias
        length *= ppb
        ofs *= ppb
        if length > npix - op:
            return _E_OVERRUN
        if image_dist == 0:
            if ofs > op:
                return _E_BAD_REF
            if kind == _K_ALPHA:
                for i in range(length):
                    out8[(op + i) * 4 + 3] = out8[(op + i - ofs) * 4 + 3]
            else:
                copy_match(out, op, ofs, length)
        else:
            if image_dist > image_id:
                return _E_BAD_REF
            rsrc = NULL
            if refs != NULL:
                rsrc = find_image(refs, image_id - image_dist, &rnpix, &ralpha)
            if rsrc == NULL:
                missing[0] = image_id - image_dist
                return _E_MISSING
            if ofs > <size_t>rnpix or length > <size_t>rnpix - ofs:
                return _E_BAD_REF
            if kind == _K_ALPHA:
                src8 = <const uint8_t *>(rsrc + ofs)
                for i in range(length):
                    out8[(op + i) * 4 + 3] = src8[i * 4 + 3]
            elif ralpha and amask:
                # an RGB image copying from an RGBA one keeps its own alpha of 255
                for i in range(length):
                    out[op + i] = rsrc[ofs + i] | amask
            else:
                memcpy(out + op, rsrc + ofs, length * 4)
        op += length

    consumed[0] = <size_t>(ip - istart)
    return _OK


def lz_decode(const uint8_t[::1] src, Py_ssize_t pos, uint32_t[::1] dst, Py_ssize_t npix,
              int kind, bint glz, const uint32_t[::1] palette, uint32_t amask,
              const uint64_t[::1] ref_ids=None, const intptr_t[::1] ref_ptrs=None,
              const int64_t[::1] ref_npix=None, const uint8_t[::1] ref_alpha=None,
              uint64_t image_id=0):
    """Runs one LZ or GLZ pass over ``src[pos:]`` into ``dst[:npix]``.

    Returns (error code, position after the pass, missing image id).
    """
    cdef Refs refs
    cdef Refs *prefs = NULL
    cdef size_t consumed = 0
    cdef uint64_t missing = 0
    cdef int err
    cdef const uint32_t *pal = NULL
    cdef size_t pal_n = 0
    cdef const uint8_t *ip
    cdef const uint8_t *iend
    if npix < 0 or npix > dst.shape[0]:
        raise ValueError("npix larger than the output")
    if pos < 0 or pos > src.shape[0]:
        raise ValueError("pos outside the input")
    if kind < _K_RGB or kind > _K_PLT1_BE:
        raise ValueError("bad kind")
    if palette is not None and palette.shape[0] > 0:
        pal = &palette[0]
        pal_n = palette.shape[0]
    if kind >= _K_PLT8 and pal_n < (2 if kind >= _K_PLT1_LE else 1):
        raise ValueError("palette too small")
    if ref_ids is not None and ref_ids.shape[0] > 0:
        if (ref_ptrs is None or ref_npix is None or ref_alpha is None
                or ref_ptrs.shape[0] != ref_ids.shape[0]
                or ref_npix.shape[0] != ref_ids.shape[0]
                or ref_alpha.shape[0] != ref_ids.shape[0]):
            raise ValueError("inconsistent reference arrays")
        refs.ids = &ref_ids[0]
        refs.ptrs = &ref_ptrs[0]
        refs.npix = &ref_npix[0]
        refs.alpha = &ref_alpha[0]
        refs.n = ref_ids.shape[0]
        prefs = &refs
    if npix == 0:
        return _OK, pos, 0
    if src.shape[0] == 0:
        return _E_TRUNCATED, pos, 0
    ip = &src[0] + pos
    iend = &src[0] + src.shape[0]
    with nogil:
        err = lz_core(ip, iend, &consumed, &dst[0], <size_t>npix, kind, glz, pal, pal_n,
                      amask, prefs, image_id, &missing)
    return err, pos + <Py_ssize_t>consumed, missing


# -- LZ4 ------------------------------------------------------------------------------------

cdef int lz4_block(const uint8_t *ip, const uint8_t *iend, uint8_t *base, size_t *pos,
                   size_t cap) noexcept nogil:
    """Decodes one LZ4 block appended at base + pos; matches may reach back into earlier
    blocks (the whole output so far is the stream's history, as with
    LZ4_decompress_safe_continue into one contiguous buffer)."""
    cdef size_t op = pos[0], start = pos[0], lit, mlen, off, done, chunk, i
    cdef uint32_t token, b
    cdef uint8_t *dst
    cdef const uint8_t *src
    while True:
        if ip >= iend:
            return _E_TRUNCATED
        token = ip[0]
        ip += 1
        lit = token >> 4
        if lit == 15:
            while True:
                if ip >= iend:
                    return _E_TRUNCATED
                b = ip[0]
                ip += 1
                lit += b
                if b != 255:
                    break
        if lit > <size_t>(iend - ip):
            return _E_TRUNCATED
        if lit > cap - op:
            return _E_OVERRUN
        memcpy(base + op, ip, lit)
        op += lit
        ip += lit
        if ip == iend:
            break  # the last sequence has literals only
        if iend - ip < 2:
            return _E_TRUNCATED
        off = ip[0] | (<size_t>ip[1] << 8)
        ip += 2
        if off == 0 or off > op:
            return _E_BAD_REF
        mlen = token & 15
        if mlen == 15:
            while True:
                if ip >= iend:
                    return _E_TRUNCATED
                b = ip[0]
                ip += 1
                mlen += b
                if b != 255:
                    break
        mlen += 4  # LZ4's minimum match
        if mlen > cap - op:
            return _E_OVERRUN
        dst = base + op
        src = base + op - off
        if off >= mlen:
            memcpy(dst, src, mlen)
        elif off == 1:
            for i in range(mlen):
                dst[i] = src[0]
        else:
            done = 0
            while done < mlen:
                chunk = off + done
                if chunk > mlen - done:
                    chunk = mlen - done
                memcpy(dst + done, src, chunk)
                done += chunk
        op += mlen
    if op == start:
        return _E_EMPTY_BLOCK
    pos[0] = op
    return _OK


def lz4_decode_stream(const uint8_t[::1] src, Py_ssize_t pos, uint8_t[::1] dst):
    """Decodes the blocks {BE u32 size, LZ4 block} of ``src[pos:]`` as one stream into ``dst``.

    Returns (error code, bytes written). Stops at the end of the input (canvas_get_lz4 loops
    while data < data_end); the caller checks the total.
    """
    cdef size_t n = src.shape[0], p = <size_t>pos, out = 0, cap = dst.shape[0], size
    cdef const uint8_t *base
    cdef uint8_t *obase
    cdef int err = _OK
    if pos < 0 or p > n:
        raise ValueError("pos outside the input")
    if p >= n:
        return _E_TRUNCATED, 0
    if cap == 0:
        return _E_OVERRUN, 0
    base = &src[0]
    obase = &dst[0]
    with nogil:
        while True:
            if n - p < 4:
                err = _E_TRUNCATED
                break
            size = ((<size_t>base[p] << 24) | (<size_t>base[p + 1] << 16)
                    | (<size_t>base[p + 2] << 8) | base[p + 3])
            p += 4
            if size > n - p:
                err = _E_TRUNCATED
                break
            err = lz4_block(base + p, base + p + size, obase, &out, cap)
            if err != _OK:
                break
            p += size
            if p >= n:
                break
    return err, out


# -- pixel helpers ----------------------------------------------------------------------------

def set_alpha(uint32_t[::1] px, Py_ssize_t npix, uint32_t value=0xFF000000u):
    """px[i] |= value for the first npix pixels (forces alpha 255 by default)."""
    cdef size_t i
    if npix < 0 or npix > px.shape[0]:
        raise ValueError("npix")
    if npix == 0:
        return
    cdef uint32_t *p = &px[0]
    with nogil:
        for i in range(<size_t>npix):
            p[i] |= value


def flip_rows(uint8_t[::1] buf, Py_ssize_t height, Py_ssize_t row_bytes):
    """Reverses the order of ``height`` rows of ``row_bytes`` bytes at the start of buf."""
    cdef Py_ssize_t top, bottom
    cdef uint8_t *tmp
    cdef uint8_t *p
    if height < 0 or row_bytes < 0 or height * row_bytes > buf.shape[0]:
        raise ValueError("rows outside the buffer")
    if height < 2 or row_bytes == 0:
        return
    tmp = <uint8_t *>malloc(row_bytes)
    if tmp == NULL:
        raise MemoryError()
    p = &buf[0]
    with nogil:
        top = 0
        bottom = height - 1
        while top < bottom:
            memcpy(tmp, p + top * row_bytes, row_bytes)
            memcpy(p + top * row_bytes, p + bottom * row_bytes, row_bytes)
            memcpy(p + bottom * row_bytes, tmp, row_bytes)
            top += 1
            bottom -= 1
    free(tmp)


def expand_rgb24(const uint8_t[::1] src, uint32_t[::1] dst, Py_ssize_t npix):
    """Packed b, g, r bytes to 0xFFRRGGBB pixels."""
    cdef size_t i
    if npix < 0 or npix > dst.shape[0] or 3 * npix > src.shape[0]:
        raise ValueError("sizes")
    if npix == 0:
        return
    cdef const uint8_t *s = &src[0]
    cdef uint32_t *d = &dst[0]
    with nogil:
        for i in range(<size_t>npix):
            d[i] = 0xFF000000u | (<uint32_t>s[3 * i + 2] << 16) | (<uint32_t>s[3 * i + 1] << 8) \
                | s[3 * i]
    return


def expand_rgb16le(const uint8_t[::1] src, uint32_t[::1] dst, Py_ssize_t npix):
    """Little-endian x1r5g5b5 (pixman's x1r5g5b5 in memory) to 0xFFRRGGBB pixels."""
    cdef size_t i
    if npix < 0 or npix > dst.shape[0] or 2 * npix > src.shape[0]:
        raise ValueError("sizes")
    if npix == 0:
        return
    cdef const uint8_t *s = &src[0]
    cdef uint32_t *d = &dst[0]
    with nogil:
        for i in range(<size_t>npix):
            d[i] = rgb16_to_32(s[2 * i + 1], s[2 * i])
