"""Surface formats other than 32-bit (SURFACE_CREATE 16_555, 16_565, 8_A, 1_A): draws store
what spice-gtk's pixman surface of that format stores, and reading the surface back (as a
SURFACE image, a QMask, a screenshot) gives what pixman reads: 5/6-bit channels expanded by bit
replication, alpha only for 8_A, one alpha bit for 1_A. Colours in draws are raw pixels of the
surface's format (spice_pixman_fill_rect). Also: QMasks whose bitmap is a SURFACE."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from tests.render import builders as B
from tests.render import pixman_lib as PL

from ryll.channels.context import ChannelContext
from ryll.channels.display import DisplayChannel
from ryll.protocol.constants import (
    BitmapFlags,
    BitmapFmt,
    DisplayServer,
    ImageType,
    MaskFlags,
    Ropd,
    SurfaceFmt,
)
from ryll.protocol.framing import MessageWriter

W, H = 11, 7


def send(ch: DisplayChannel, opcode: int, body: bytes, surface_id: int | None = None) -> None:
    if surface_id is not None:
        patched = bytearray(body)
        struct.pack_into("<I", patched, 0, surface_id)
        body = bytes(patched)
    ch.receive_data(MessageWriter(True).build(opcode, body))


def make(*formats: int) -> tuple[DisplayChannel, ChannelContext]:
    """Surface i of W x H in formats[i]."""
    ctx = ChannelContext()
    ch = DisplayChannel(0, ctx)
    for sid, fmt in enumerate(formats):
        send(ch, DisplayServer.SURFACE_CREATE, B.surface_create(sid, W, H, fmt, flags=0))
    return ch, ctx


def expand(c: int, bits: int) -> int:
    """pixman's read of a ``bits``-bit channel stored from the 8-bit value ``c``."""
    top = c >> (8 - bits)
    return ((top << (8 - bits)) | (top >> (2 * bits - 8))) & 0xFF


def expected_16(px: np.ndarray, fmt: int) -> np.ndarray:
    g_bits = 6 if fmt == SurfaceFmt.FMT_16_565 else 5
    out = np.empty_like(px)
    for y in range(px.shape[0]):
        for x in range(px.shape[1]):
            b, g, r = (int(v) for v in px[y, x, :3])
            out[y, x] = (expand(b, 5), expand(g, g_bits), expand(r, 5), 255)
    return out


def rgb_image(seed: int, h: int, w: int, alpha: bool = False) -> np.ndarray:
    px = np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)
    if not alpha:
        px[..., 3] = 255
    return px


def test_new_surfaces_read_as_pixman_zeroed_memory() -> None:
    ch, ctx = make(SurfaceFmt.FMT_16_555, SurfaceFmt.FMT_16_565, SurfaceFmt.FMT_8_A,
                   SurfaceFmt.FMT_1_A)
    assert ctx.gaps.counts() == {}
    for sid in (0, 1):
        assert (ch.surfaces[sid].pixels == (0, 0, 0, 255)).all()
    for sid in (2, 3):
        assert (ch.surfaces[sid].pixels == 0).all()


@pytest.mark.parametrize("fmt, color, bgra", [
    (SurfaceFmt.FMT_16_565, 0xF81F, (255, 0, 255, 255)),
    (SurfaceFmt.FMT_16_565, 0x07E0, (0, 255, 0, 255)),
    # r = 2, g = 0x11, b = 0x14: (2 << 3 | 2 >> 2, 0x11 << 2 | 0x11 >> 4, 0x14 << 3 | 0x14 >> 2)
    (SurfaceFmt.FMT_16_565, 0xABCD1234, (165, 69, 16, 255)),
    # x1r5g5b5 0x7FFF white; the top bit (x) ignored; 0x0421: r = g = b = 1 -> 8
    (SurfaceFmt.FMT_16_555, 0xFFFF, (255, 255, 255, 255)),
    (SurfaceFmt.FMT_16_555, 0x0421, (8, 8, 8, 255)),
    (SurfaceFmt.FMT_8_A, 0x123456C3, (0, 0, 0, 0xC3)),
    (SurfaceFmt.FMT_1_A, 0x1, (0, 0, 0, 255)),
    (SurfaceFmt.FMT_1_A, 0xFE, (0, 0, 0, 0)),
])
def test_solid_fill_colour_is_a_raw_pixel_of_the_format(fmt: int, color: int,
                                                        bgra: tuple[int, ...]) -> None:
    ch, ctx = make(fmt)
    send(ch, DisplayServer.DRAW_FILL, B.draw_fill((1, 2, 5, 9), Ropd.OP_PUT, color=color))
    assert ctx.gaps.counts() == {}
    px = ch.surfaces[0].pixels
    assert (px[1:5, 2:9] == bgra).all()
    untouched = (0, 0, 0, 255) if fmt in (SurfaceFmt.FMT_16_555, SurfaceFmt.FMT_16_565) else 0
    assert (px[0] == untouched).all() and (px[:, 9:] == untouched).all()


@pytest.mark.parametrize("fmt", [SurfaceFmt.FMT_16_555, SurfaceFmt.FMT_16_565])
def test_copy_onto_a_16_bit_surface_truncates_and_reads_back_replicated(fmt: int) -> None:
    ch, ctx = make(fmt)
    img = rgb_image(1, H, W, alpha=True)
    send(ch, DisplayServer.DRAW_COPY, B.draw_copy(
        (0, 0, H, W), B.Image(img, fmt=BitmapFmt.FMT_RGBA), (0, 0, H, W), Ropd.OP_PUT))
    assert ctx.gaps.counts() == {}
    assert (ch.surfaces[0].pixels == expected_16(img, fmt)).all()


def test_invert_on_a_16_bit_surface_inverts_the_stored_bits() -> None:
    ch, _ = make(SurfaceFmt.FMT_16_565)
    send(ch, DisplayServer.DRAW_FILL, B.draw_fill((0, 0, H, W), Ropd.OP_PUT, color=0x1234))
    send(ch, DisplayServer.DRAW_INVERS, B.draw_mask_only((0, 0, H, W)))
    # ~0x1234 & 0xFFFF = 0xEDCB: r = 29, g = 0x2E, b = 0x0B
    want = ((0x0B << 3) | (0x0B >> 2), (0x2E << 2) | (0x2E >> 4), (29 << 3) | (29 >> 2), 255)
    assert (ch.surfaces[0].pixels == want).all()


def test_a_16_bit_surface_as_a_source_reads_back_expanded() -> None:
    ch, ctx = make(SurfaceFmt.FMT_32_xRGB, SurfaceFmt.FMT_16_555)
    img = rgb_image(2, H, W)
    send(ch, DisplayServer.DRAW_COPY, B.draw_copy((0, 0, H, W), B.Image(img), (0, 0, H, W),
                                                  Ropd.OP_PUT), surface_id=1)
    src = B.Image(type=ImageType.SURFACE, surface_id=1, width=W, height=H)
    send(ch, DisplayServer.DRAW_COPY, B.draw_copy((0, 0, H, W), src, (0, 0, H, W),
                                                  Ropd.OP_PUT))
    assert ctx.gaps.counts() == {}
    assert (ch.surfaces[0].pixels == expected_16(img, SurfaceFmt.FMT_16_555)).all()


def test_alpha_blend_on_16_bit_keeps_the_source_alpha_then_quantises() -> None:
    # canvas_draw_alpha_blend asks for the original image (want_original TRUE): an a8r8g8b8
    # source composited OVER the r5g6b5 canvas (the real pixman is the oracle).
    ch, ctx = make(SurfaceFmt.FMT_16_565)
    send(ch, DisplayServer.DRAW_FILL, B.draw_fill((0, 0, H, W), Ropd.OP_PUT, color=0x8410))
    a = np.random.default_rng(3).integers(0, 256, (H, W), dtype=np.int64)
    src = np.concatenate([(np.random.default_rng(4).integers(0, 256, (H, W, 3)) * a[..., None]
                           ) // 255, a[..., None]], axis=2).astype(np.uint8)
    before = ch.surfaces[0].pixels.copy()
    send(ch, DisplayServer.DRAW_ALPHA_BLEND, B.draw_alpha_blend(
        (0, 0, H, W), B.Image(src, fmt=BitmapFmt.FMT_RGBA), (0, 0, H, W), 255,
        flags=1))  # SRC_SURFACE_HAS_ALPHA
    assert ctx.gaps.counts() == {}
    PL.require()
    with PL.create(PL.A8R8G8B8, PL.pack(src, PL.A8R8G8B8), W) as s, \
            PL.create(PL.R5G6B5, PL.pack(before, PL.R5G6B5), W) as d:
        PL.composite(3, s, None, d, (0, 0), (0, 0), W, H)  # OVER
        want = PL.read_back(d)
    assert (ch.surfaces[0].pixels == want).all()
    assert (want == expected_16(want, SurfaceFmt.FMT_16_565)).all()


def test_a8_surface_keeps_alpha_only() -> None:
    ch, ctx = make(SurfaceFmt.FMT_8_A)
    img = rgb_image(5, H, W, alpha=True)
    send(ch, DisplayServer.DRAW_COPY, B.draw_copy((0, 0, 3, W), B.Image(img[:3],
                                                                         fmt=BitmapFmt.FMT_RGBA),
                                                  (0, 0, 3, W), Ropd.OP_PUT))
    # A bitmap without alpha is x8r8g8b8: stored in a8 as 0xFF.
    send(ch, DisplayServer.DRAW_COPY, B.draw_copy((3, 0, H, W), B.Image(img[3:]),
                                                  (0, 0, H - 3, W), Ropd.OP_PUT))
    assert ctx.gaps.counts() == {}
    px = ch.surfaces[0].pixels
    assert (px[..., :3] == 0).all()
    assert (px[:3, :, 3] == img[:3, :, 3]).all()
    assert (px[3:, :, 3] == 255).all()


def test_a1_surface_keeps_the_alpha_top_bit() -> None:
    ch, ctx = make(SurfaceFmt.FMT_1_A)
    img = rgb_image(6, H, W, alpha=True)
    send(ch, DisplayServer.DRAW_COPY, B.draw_copy((0, 0, H, W), B.Image(img,
                                                                         fmt=BitmapFmt.FMT_RGBA),
                                                  (0, 0, H, W), Ropd.OP_PUT))
    assert ctx.gaps.counts() == {}
    px = ch.surfaces[0].pixels
    assert (px[..., :3] == 0).all()
    assert (px[..., 3] == np.where(img[..., 3] >= 128, 255, 0)).all()


def test_an_a8_bitmap_on_a_colour_surface_is_opaque_black() -> None:
    # canvas_get_target_format: an a8 image is not "alpha" (only a8r8g8b8 is), so it is
    # converted to x8r8g8b8 for a colour canvas: black, alpha 0xFF.
    ch, ctx = make(SurfaceFmt.FMT_32_ARGB)
    # An 8BIT_A bitmap (spice.proto Bitmap, laid out as builders.Image.encode): one alpha
    # byte per pixel.
    b = B.Body()
    B.base(b, (0, 0, 3, 4))
    img = struct.pack("<QBBII", 0, ImageType.BITMAP, 0, 4, 3) + struct.pack(
        "<BBIIII", BitmapFmt.FMT_8BIT_A, BitmapFlags.TOP_DOWN, 4, 3, 4, 0) + bytes([77] * 12)
    b.pointer(img)
    B.rect(b, (0, 0, 3, 4))
    b.pack("HB", Ropd.OP_PUT, 1)
    B.qmask(b)
    send(ch, DisplayServer.DRAW_COPY, b.build())
    assert ctx.gaps.counts() == {}
    assert (ch.surfaces[0].pixels[:3, :4] == (0, 0, 0, 255)).all()


def test_quantising_never_touches_pixels_outside_the_box() -> None:
    ch, _ = make(SurfaceFmt.FMT_16_565)
    ch.surfaces[0].pixels[...] = 0x37  # not representable: only a draw would quantise it
    send(ch, DisplayServer.DRAW_FILL, B.draw_fill((2, 2, 4, 4), Ropd.OP_PUT, color=0))
    px = ch.surfaces[0].pixels
    assert (px[2:4, 2:4] == (0, 0, 0, 255)).all()
    assert (px[0] == 0x37).all()


# --- QMasks from surfaces ---------------------------------------------------------------


def test_qmask_from_a_1_a_surface_uses_its_alpha_bits() -> None:
    ch, ctx = make(SurfaceFmt.FMT_32_xRGB, SurfaceFmt.FMT_1_A)
    ch.surfaces[0].pixels[...] = (10, 20, 30, 255)
    bits = np.random.default_rng(7).integers(0, 2, (H, W)).astype(bool)
    ch.surfaces[1].pixels[..., 3] = np.where(bits, 255, 0)
    mask = B.Image(type=ImageType.SURFACE, surface_id=1, width=W, height=H)
    box, pos = (1, 2, 6, 10), (1, 0)
    for invers in (False, True):
        ch.surfaces[0].pixels[...] = (10, 20, 30, 255)
        send(ch, DisplayServer.DRAW_WHITENESS, B.draw_mask_only(
            box, mask=mask, mask_pos=pos, mask_flags=MaskFlags.INVERS if invers else 0))
        assert ctx.gaps.counts() == {}
        px = ch.surfaces[0].pixels
        for y in range(H):
            for x in range(W):
                inside = box[0] <= y < box[2] and box[1] <= x < box[3]
                mx, my = x - box[1] + pos[0], y - box[0] + pos[1]
                on = inside and 0 <= mx < W and 0 <= my < H and bool(bits[my, mx]) != invers
                assert tuple(px[y, x]) == ((255, 255, 255, 255) if on else (10, 20, 30, 255))


def test_qmask_from_a_32_bit_surface_reads_its_bytes_as_a1() -> None:
    # canvas_mask_pixman wraps the surface's memory as PIXMAN_a1: pixel x of a row is bit
    # (x & 7) of byte x >> 3 of that row; bytes 0..3 are pixel 0's B, G, R, A.
    ch, ctx = make(SurfaceFmt.FMT_32_xRGB, SurfaceFmt.FMT_32_ARGB)
    ch.surfaces[1].pixels[...] = 0
    ch.surfaces[1].pixels[0, 0] = (0b00000101, 0b00000100, 0, 0)  # bits 0, 2; 8 + 2
    ch.surfaces[0].pixels[...] = (9, 9, 9, 255)
    send(ch, DisplayServer.DRAW_BLACKNESS, B.draw_mask_only(
        (0, 0, 1, W), mask=B.Image(type=ImageType.SURFACE, surface_id=1, width=W, height=H)))
    assert ctx.gaps.counts() == {}
    black = (ch.surfaces[0].pixels[0, :, :3] == 0).all(axis=1)
    assert list(np.flatnonzero(black)) == [0, 2, 10]


def test_qmask_from_an_a8_surface_reads_alpha_bytes_as_a1() -> None:
    ch, ctx = make(SurfaceFmt.FMT_32_xRGB, SurfaceFmt.FMT_8_A)
    ch.surfaces[0].pixels[...] = (1, 2, 3, 255)
    ch.surfaces[1].pixels[0, 0, 3] = 0b00010010  # byte 0: pixels 1 and 4 of row 0
    send(ch, DisplayServer.DRAW_WHITENESS, B.draw_mask_only(
        (0, 0, 1, W), mask=B.Image(type=ImageType.SURFACE, surface_id=1, width=W, height=H)))
    assert ctx.gaps.counts() == {}
    white = (ch.surfaces[0].pixels[0] == 255).all(axis=1)
    assert list(np.flatnonzero(white)) == [1, 4]
