"""ROP descriptors and ternary ROPs against references computed differently from the product."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from ryll.protocol.constants import Ropd
from ryll.render.rop import RopInput, SpiceRop, rop2, rop3, ropd_to_rop

RNG = np.random.default_rng(7)
M32 = 0xFFFFFFFF


def c_ropd_descriptor_to_rop(desc: int, src_input: int, dest_input: int) -> SpiceRop:
    """canvas_base.c ropd_descriptor_to_rop, transcribed branch by branch."""
    masks = [Ropd.INVERS_SRC, Ropd.INVERS_BRUSH, Ropd.INVERS_DEST]
    old = desc
    desc &= ~(Ropd.INVERS_SRC | Ropd.INVERS_DEST)
    if old & masks[src_input]:
        desc |= Ropd.INVERS_SRC
    if old & masks[dest_input]:
        desc |= Ropd.INVERS_DEST
    S, D, R = desc & Ropd.INVERS_SRC, desc & Ropd.INVERS_DEST, desc & Ropd.INVERS_RES
    R_ = SpiceRop
    if desc & Ropd.OP_PUT:
        if S:
            return R_.COPY if R else R_.COPY_INVERTED
        return R_.COPY_INVERTED if R else R_.COPY
    if desc & Ropd.OP_OR:
        if R:
            if S:
                return R_.AND if D else R_.AND_REVERSE
            return R_.AND_INVERTED if D else R_.NOR
        if S:
            return R_.NAND if D else R_.OR_INVERTED
        return R_.OR_REVERSE if D else R_.OR
    if desc & Ropd.OP_AND:
        if R:
            if S:
                return R_.OR if D else R_.OR_REVERSE
            return R_.OR_INVERTED if D else R_.NAND
        if S:
            return R_.NOR if D else R_.AND_INVERTED
        return R_.AND_REVERSE if D else R_.AND
    if desc & Ropd.OP_XOR:
        if R:
            if S:
                return R_.EQUIV if D else R_.XOR
            return R_.XOR if D else R_.EQUIV
        if S:
            return R_.XOR if D else R_.EQUIV
        return R_.EQUIV if D else R_.XOR
    if desc & Ropd.OP_BLACKNESS:
        return R_.CLEAR
    if desc & Ropd.OP_WHITENESS:
        return R_.SET
    if desc & Ropd.OP_INVERS:
        return R_.INVERT
    return R_.COPY


INPUT_PAIRS = [(RopInput.SRC, RopInput.DEST), (RopInput.BRUSH, RopInput.DEST),
               (RopInput.BRUSH, RopInput.SRC)]


@pytest.mark.parametrize(("src_in", "dest_in"), INPUT_PAIRS)
def test_every_rop_descriptor_maps_as_canvas_base(src_in: RopInput, dest_in: RopInput) -> None:
    # All 2^11 descriptors: every flag combination, including several OP_* at once.
    for desc in range(1 << 11):
        assert ropd_to_rop(desc, src_in, dest_in) == c_ropd_descriptor_to_rop(
            desc, src_in, dest_in), hex(desc)


def gx_reference(rop: int, s: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The result of a SpiceROP from its number alone. SpiceROP numbers the 16 binary ops as
    X11 does (GXclear 0x0 ... GXset 0xf, pixman_utils.h), and an X11 function code *is* its
    truth table: the result bit for source bit s and destination bit d is bit
    ``3 - (s << 1 | d)`` of the code. Computed bit by bit over 32-bit words, independently of
    the product's equations."""
    out = np.zeros_like(d)
    for bit in range(32):
        sb = (s >> bit) & 1
        db = (d >> bit) & 1
        out |= ((rop >> (3 - ((sb << 1) | db))) & 1) << bit
    return out


def _gx_word(rop: int, s: int, d: int) -> int:
    """gx_reference on one 32-bit word (for tests that compute pixels one by one)."""
    out = 0
    for bit in range(32):
        out |= ((rop >> (3 - ((((s >> bit) & 1) << 1) | ((d >> bit) & 1)))) & 1) << bit
    return out


# Each SpiceROP as a function of two 32-bit words, from the X11 table above.
EQUATIONS = {rop: (lambda s, d, rop=int(rop): _gx_word(rop, s & M32, d & M32)) for rop in SpiceRop}


def test_the_gx_reference_is_the_x11_table() -> None:
    # Spot checks against X11's documented functions: GXand 0x1, GXcopy 0x3, GXxor 0x6,
    # GXnor 0x8, GXcopyInverted 0xc, GXset 0xf.
    s, d = np.array([0b1100], np.uint64), np.array([0b1010], np.uint64)
    for rop, want in ((0x1, 0b1000), (0x3, 0b1100), (0x6, 0b0110), (0x8, 0xFFFFFFF1),
                      (0xC, 0xFFFFFFF3), (0xF, 0xFFFFFFFF)):
        assert int(gx_reference(rop, s, d)[0]) == want, hex(rop)


@pytest.mark.parametrize("rop", list(SpiceRop))
def test_binary_rops_on_pixel_words(rop: SpiceRop) -> None:
    s = RNG.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    d = RNG.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    got = rop2(rop, s, d).view("<u4")[..., 0]
    sw, dw = (a.view("<u4")[..., 0].astype(np.uint64) for a in (s, d))
    assert (got == gx_reference(int(rop), sw, dw)).all()
    # A single colour broadcasts over the destination, as fill_solid_rects_rop's value.
    color = np.array([1, 2, 3, 4], np.uint8)
    assert (rop2(rop, color, d) == rop2(rop, np.broadcast_to(color, d.shape).copy(), d)).all()


def reference_rop3(code: int, s: np.ndarray, p: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Bit by bit from the truth table: bit (P<<2 | S<<1 | D) of the code."""
    out = np.zeros_like(d)
    for idx in np.ndindex(d.shape):
        v = 0
        for bit in range(8):
            pb, sb = (int(p[idx]) >> bit) & 1, (int(s[idx]) >> bit) & 1
            db = (int(d[idx]) >> bit) & 1
            v |= ((code >> ((pb << 2) | (sb << 1) | db)) & 1) << bit
        out[idx] = v
    return out


def test_all_256_rop3_codes_against_the_truth_table() -> None:
    s = RNG.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    p = RNG.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    d = RNG.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    # Make sure every (P, S, D) bit combination occurs in every bit position.
    s[0, 0], p[0, 0], d[0, 0] = [0xF0, 0xCC, 0xAA, 0], [0x0F, 0x33, 0x55, 0xFF], [0, 0xFF, 0x96, 1]
    for code in range(256):
        assert (rop3(code, s, p, d) == reference_rop3(code, s, p, d)).all(), hex(code)


def _rop3_c_formulas() -> dict[int, str]:
    text = (Path(__file__).parent / "rop3_formulas.txt").read_text()
    found = {}
    for m in re.finditer(r"^ROP3_HANDLERS\(\w+, (.*), (0x[0-9a-f]{2})\);$", text, re.M):
        found[int(m.group(2), 16)] = m.group(1)
    return found


def test_rop3_matches_every_formula_of_rop3_c() -> None:
    formulas = _rop3_c_formulas()
    assert len(formulas) == 218
    s = RNG.integers(0, 256, (4, 5, 4), dtype=np.uint8)
    p = RNG.integers(0, 256, (4, 5, 4), dtype=np.uint8)
    d = RNG.integers(0, 256, (4, 5, 4), dtype=np.uint8)
    sw, pw, dw = (a.view("<u4")[..., 0].astype(np.int64) for a in (s, p, d))
    for code, formula in formulas.items():
        expr = formula.replace("*src", "S").replace("*pat", "P").replace("*dest", "D")
        want = eval(expr, {"S": sw, "P": pw, "D": dw}) & M32  # noqa: S307 - fixed fixture text
        got = rop3(code, s, p, d).view("<u4")[..., 0]
        assert (got == want).all(), (hex(code), formula)


def test_rop3_with_a_solid_brush_broadcasts() -> None:
    s = RNG.integers(0, 256, (2, 3, 4), dtype=np.uint8)
    d = RNG.integers(0, 256, (2, 3, 4), dtype=np.uint8)
    color = np.array([0x12, 0x34, 0x56, 0x78], np.uint8)
    full = np.broadcast_to(color, d.shape).copy()
    for code in (0x00, 0x5A, 0xB8, 0xE2, 0xF0, 0xFF):
        assert (rop3(code, s, color, d) == rop3(code, s, full, d)).all()
