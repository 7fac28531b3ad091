# cython: language_level=3
"""pixman's 8-bit arithmetic on 32-bit pixel words (B in bits 0-7 .. alpha in 24-31), two
channels a word at a time (pixman-combine32.h), shared by the kernels of render._pixels and
render._composite (``cimport``). Each gives every channel exactly the UN8 result: a product
``t = x * a + 0x80; (t + (t >> 8)) >> 8``, a sum saturating at 255."""

from libc.stdint cimport uint32_t

cdef enum:
    RB = 0x00FF00FF
    RB_HALF = 0x00800080
    RB_CARRY = 0x00010001


cdef inline uint32_t _mul(uint32_t x, uint32_t a) noexcept nogil:
    """Each byte of x times a / 255, rounded (pixman UN8x4_MUL_UN8)."""
    cdef uint32_t rb = (x & RB) * a + RB_HALF
    cdef uint32_t ag = ((x >> 8) & RB) * a + RB_HALF
    rb = ((rb + ((rb >> 8) & RB)) >> 8) & RB
    ag = ((ag + ((ag >> 8) & RB)) >> 8) & RB
    return rb | (ag << 8)


cdef inline uint32_t _mul4(uint32_t x, uint32_t a) noexcept nogil:
    """Each byte of x times the same byte of a / 255, rounded (pixman UN8x4_MUL_UN8x4)."""
    cdef uint32_t rb = (x & 0xFF) * (a & 0xFF) | (x & 0xFF0000) * ((a >> 16) & 0xFF)
    cdef uint32_t ag = ((x >> 8) & 0xFF) * ((a >> 8) & 0xFF) | (
        ((x >> 8) & 0xFF0000) * ((a >> 24) & 0xFF))
    rb += RB_HALF
    ag += RB_HALF
    rb = ((rb + ((rb >> 8) & RB)) >> 8) & RB
    ag = ((ag + ((ag >> 8) & RB)) >> 8) & RB
    return rb | (ag << 8)


cdef inline uint32_t _add_sat(uint32_t x, uint32_t y) noexcept nogil:
    """Byte-wise x + y, each byte saturating at 255 (pixman UN8x4_ADD_UN8x4)."""
    cdef uint32_t rb = (x & RB) + (y & RB)
    cdef uint32_t ag = ((x >> 8) & RB) + ((y >> 8) & RB)
    rb = (rb | (((rb >> 8) & RB_CARRY) * 0xFF)) & RB
    ag = (ag | (((ag >> 8) & RB_CARRY) * 0xFF)) & RB
    return rb | (ag << 8)
