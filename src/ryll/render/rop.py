"""Raster operations: the ROP descriptor of FILL/OPAQUE/COPY/BLEND turned into one of the 16
binary ops, and the 256 ternary ops of DRAW_ROP3, vectorised over numpy arrays.

Binary ops mirror spice-common ``canvas_base.c`` ``ropd_descriptor_to_rop`` and the
``RASTER_OP`` table of ``pixman_utils.c`` (``SpiceROP``). spice-common applies them to whole
32-bit pixel words; since every op is bitwise, applying them byte by byte to BGRA arrays is the
same thing, the alpha/x byte included.

Ternary ops mirror ``rop3.c``. Instead of 218 hand-written formulas (rop3.c leaves the 38 codes
that do not use all three inputs to a ``spice_critical``), ryll evaluates any code from its
truth table, the standard way: result bit = (code >> ((P << 2) | (S << 1) | D)) & 1, i.e. the
OR of the minterms the code selects; the compiled kernel (``_pixels.rop3``) computes it per
32-bit pixel word, branch-free, as a Shannon expansion on P, S and D.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum

import numpy as np

from ryll.protocol.constants import Ropd
from ryll.render import _pixels, raster  # type: ignore[attr-defined]


class SpiceRop(IntEnum):
    """pixman_utils.h ``SpiceROP``: the result for (src, dst)."""

    CLEAR = 0x0  # 0
    AND = 0x1  # src & dst
    AND_REVERSE = 0x2  # src & ~dst
    COPY = 0x3  # src
    AND_INVERTED = 0x4  # ~src & dst
    NOOP = 0x5  # dst
    XOR = 0x6  # src ^ dst
    OR = 0x7  # src | dst
    NOR = 0x8  # ~src & ~dst
    EQUIV = 0x9  # ~src ^ dst
    INVERT = 0xA  # ~dst
    OR_REVERSE = 0xB  # src | ~dst
    COPY_INVERTED = 0xC  # ~src
    OR_INVERTED = 0xD  # ~src | dst
    NAND = 0xE  # ~src | ~dst
    SET = 0xF  # all ones


class RopInput(IntEnum):
    """canvas_base.c ``ROPInput``: which draw input plays the rop's src or dest role."""

    SRC = 0
    BRUSH = 1
    DEST = 2


_INVERT_FLAG = {RopInput.SRC: Ropd.INVERS_SRC, RopInput.BRUSH: Ropd.INVERS_BRUSH,
                RopInput.DEST: Ropd.INVERS_DEST}

_OPS: dict[Ropd, Callable[[int, int], int]] = {
    Ropd.OP_OR: lambda s, d: s | d,
    Ropd.OP_AND: lambda s, d: s & d,
    Ropd.OP_XOR: lambda s, d: s ^ d,
}

# Each SpiceROP's equation (pixman_utils.c RASTER_OP), used to build its 1-bit truth table.
_EQUATIONS: dict[SpiceRop, Callable[[int, int], int]] = {
    SpiceRop.CLEAR: lambda s, d: 0, SpiceRop.AND: lambda s, d: s & d,
    SpiceRop.AND_REVERSE: lambda s, d: s & ~d, SpiceRop.COPY: lambda s, d: s,
    SpiceRop.AND_INVERTED: lambda s, d: ~s & d, SpiceRop.NOOP: lambda s, d: d,
    SpiceRop.XOR: lambda s, d: s ^ d, SpiceRop.OR: lambda s, d: s | d,
    SpiceRop.NOR: lambda s, d: ~s & ~d, SpiceRop.EQUIV: lambda s, d: ~s ^ d,
    SpiceRop.INVERT: lambda s, d: ~d, SpiceRop.OR_REVERSE: lambda s, d: s | ~d,
    SpiceRop.COPY_INVERTED: lambda s, d: ~s, SpiceRop.OR_INVERTED: lambda s, d: ~s | d,
    SpiceRop.NAND: lambda s, d: ~s | ~d, SpiceRop.SET: lambda s, d: 1,
}


def _truth(fn: Callable[[int, int], int]) -> int:
    """Bit (s << 1 | d) is fn(s, d) & 1."""
    return sum(1 << (s << 1 | d) for s in (0, 1) for d in (0, 1) if fn(s, d) & 1)


_ROP_BY_TRUTH = {_truth(eq): op for op, eq in _EQUATIONS.items()}


def ropd_to_rop(desc: int, src_input: RopInput, dest_input: RopInput) -> SpiceRop:
    """canvas_base.c ``ropd_descriptor_to_rop``: the descriptor's inversion flags are first
    re-aimed at the inputs playing src and dest, then OP_* (first set one wins, in the order
    PUT, OR, AND, XOR, BLACKNESS, WHITENESS, INVERS) with INVERS_RES picks the SpiceROP.
    No op flag at all means COPY."""
    inv_src = bool(desc & _INVERT_FLAG[src_input])
    inv_dst = bool(desc & _INVERT_FLAG[dest_input])
    inv_res = bool(desc & Ropd.INVERS_RES)
    if desc & Ropd.OP_PUT:
        return SpiceRop.COPY_INVERTED if inv_src != inv_res else SpiceRop.COPY
    for flag, op in _OPS.items():
        if desc & flag:

            def inverted(s: int, d: int, op: Callable[[int, int], int] = op) -> int:
                return op(s ^ inv_src, d ^ inv_dst) ^ inv_res

            return _ROP_BY_TRUTH[_truth(inverted)]
    if desc & Ropd.OP_BLACKNESS:
        return SpiceRop.CLEAR
    if desc & Ropd.OP_WHITENESS:
        return SpiceRop.SET
    if desc & Ropd.OP_INVERS:
        return SpiceRop.INVERT
    return SpiceRop.COPY


def rop2(rop: SpiceRop, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """A new uint8 array: ``rop`` of ``src`` (broadcastable, e.g. one BGRA colour) and ``dst``."""
    if (dst.dtype == np.uint8 and dst.ndim > 1 and dst.shape[-1] == 4
            and src.shape in ((4,), dst.shape)):
        # BGRA pixels as one word each (every rop is bitwise, so the same bytes): a quarter
        # of the operations, and ten times faster than broadcasting one colour's four bytes
        return raster.word_bytes(rop2(rop, raster.words(src), raster.words(dst)))
    s = np.broadcast_to(src, dst.shape)
    if rop == SpiceRop.CLEAR:
        return np.zeros_like(dst)
    if rop == SpiceRop.AND:
        return s & dst
    if rop == SpiceRop.AND_REVERSE:
        return s & ~dst
    if rop == SpiceRop.COPY:
        return s.copy()
    if rop == SpiceRop.AND_INVERTED:
        return ~s & dst
    if rop == SpiceRop.NOOP:
        return dst.copy()
    if rop == SpiceRop.XOR:
        return s ^ dst
    if rop == SpiceRop.OR:
        return s | dst
    if rop == SpiceRop.NOR:
        return ~(s | dst)
    if rop == SpiceRop.EQUIV:
        return ~s ^ dst
    if rop == SpiceRop.INVERT:
        return ~dst
    if rop == SpiceRop.OR_REVERSE:
        return s | ~dst
    if rop == SpiceRop.COPY_INVERTED:
        return ~s
    if rop == SpiceRop.OR_INVERTED:
        return ~s | dst
    if rop == SpiceRop.NAND:
        return ~(s & dst)
    return ~np.zeros_like(dst)  # SET: every bit, bytes or words


def rop3(code: int, src: np.ndarray, pat: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Ternary raster op ``code`` (0..255) over (h, w, 4) uint8 BGRA arrays src (S),
    pattern/brush (P) and dest (D), src and pat broadcastable to ``dst``'s shape (e.g. one
    BGRA colour). Bit (P<<2 | S<<1 | D) of ``code`` is the result for that combination of
    input bits (Microsoft's ternary ROP numbering, rop3.c's). One pass over 32-bit words
    (the kernel _pixels.rop3)."""
    d = raster.words(dst)
    s = np.broadcast_to(raster.words(src), d.shape)
    p = np.broadcast_to(raster.words(pat), d.shape)
    return raster.word_bytes(_pixels.rop3(code & 0xFF, s, p, d))
