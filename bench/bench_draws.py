"""Draw-operation throughput: each message handled by the display channel end to end (parse,
decode the images it carries, draw) on a 1024x768 xRGB primary surface, plus cursor decoding.

Run: ``.venv/bin/python bench/bench_draws.py [--repeat N] [--quick]``. The best of N counts.
Messages come from the render tests' encoders (tests/render/builders.py, the DRAW_STROKE
encoder of tests/channels/test_display_stroke.py, the cursor encoders of
tests/render/test_cursor.py), which lay them out per spice.proto. Images are plain BITMAPs
without CACHE_ME, so every repeat decodes them again.

Columns: ``area`` is the destination area in pixels (the box; for DRAW_STROKE the pixels the
stroke draws, for cursors the image), ``changed`` the pixels the first draw changed (every case
must change some), ``Mpx/s`` is ``area`` over the best time, ``msg/s`` messages (or cursors)
per second, ``items/s`` glyphs (DRAW_TEXT) or line segments (DRAW_STROKE; each bezier
counts as one) per second.

``--quick`` is a smoke run (one repeat of every case on a 256x192 surface): it checks the
cases work, its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.*
from tests.channels.test_display_stroke import draw_stroke  # noqa: E402
from tests.render import builders as B  # noqa: E402
from tests.render.test_cursor import enc_alpha, enc_mono  # noqa: E402

from ryll.channels.context import ChannelContext  # noqa: E402
from ryll.channels.display import DisplayChannel  # noqa: E402
from ryll.protocol.constants import (  # noqa: E402
    BitmapFmt,
    CompositeFlags,
    CursorType,
    DisplayServer,
    ImageType,
    PathFlags,
    Ropd,
    StringFlags,
    SurfaceFmt,
)
from ryll.protocol.framing import Message, MessageWriter  # noqa: E402
from ryll.render.cursor import decode_cursor  # noqa: E402

OVER, MULTIPLY = 0x03, 0x30  # pixman_op_t
BILINEAR = 4  # SpiceImageScaleMode / pixman filter in the composite flags
FIX = 16  # 28.4 fixed point of stroke paths


@dataclass
class Case:
    name: str
    area: int
    run: Callable[[], object]
    changed: Callable[[], int]  # called after the first run (untimed): the pixels it changed
    items: int = 0
    unit: str = ""


def primary(w: int, h: int, seed: int = 1) -> tuple[DisplayChannel, ChannelContext]:
    ctx = ChannelContext()
    ch = DisplayChannel(0, ctx)
    ch.receive_data(MessageWriter(True).build(
        DisplayServer.SURFACE_CREATE, B.surface_create(0, w, h, SurfaceFmt.FMT_32_xRGB)))
    px = np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)
    px[..., 3] = 255
    ch.surfaces[0].pixels[...] = px
    return ch, ctx


def image(rng: np.random.Generator, h: int, w: int, alpha: bool = False) -> np.ndarray:
    """BGRA; with ``alpha`` premultiplied (as pixman expects), else alpha 255."""
    px = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    if alpha:
        px[..., :3] = np.minimum(px[..., :3], px[..., 3:4])
    else:
        px[..., 3] = 255
    return px


def display_case(name: str, w: int, h: int, opcode: int, body: bytes, area: int,
                 items: int = 0, unit: str = "",
                 setup: Callable[[DisplayChannel], None] | None = None,
                 area_from_changed: bool = False) -> Case:
    ch, ctx = primary(w, h)
    if setup is not None:
        setup(ch)
    before = ch.surfaces[0].pixels.copy()
    msg = Message(opcode, body)
    state: dict[str, int] = {}

    def changed() -> int:
        if "changed" not in state:
            assert not ctx.gaps.counts(), (name, ctx.gaps.counts())
            state["changed"] = int((ch.surfaces[0].pixels != before).any(axis=2).sum())
        return state["changed"]

    case = Case(name, area, lambda: ch.handle(msg), changed, items, unit)
    if area_from_changed:  # a stroke's area is what it draws: draw once to count it
        case.run()
        case.area = changed()
    return case


def cursor_case(name: str, cursor_type: int, data: bytes, size: int) -> Case:
    def run() -> np.ndarray:
        return decode_cursor(cursor_type, size, size, 3, 4, data).rgba

    return Case(name, size * size, run, lambda: int((run()[..., 3] != 0).sum()))


def cases(w: int, h: int) -> list[Case]:
    rng = np.random.default_rng(7)
    full = (0, 0, h, w)
    area = w * h
    src = image(rng, h, w)
    src_a = image(rng, h, w, alpha=True)
    half_a = image(rng, h // 2, w // 2, alpha=True)
    tile = image(rng, 8, 8)
    out: list[Case] = []

    def add(name: str, opcode: int, body: bytes, area: int = area, items: int = 0,
            unit: str = "", setup: Callable[[DisplayChannel], None] | None = None,
            area_from_changed: bool = False) -> None:
        out.append(display_case(name, w, h, opcode, body, area, items, unit, setup,
                                area_from_changed))

    add("FILL solid", DisplayServer.DRAW_FILL, B.draw_fill(full, Ropd.OP_PUT, color=0x336699))
    add("FILL pattern 8x8", DisplayServer.DRAW_FILL,
        B.draw_fill(full, Ropd.OP_PUT, pattern=B.Image(tile), pattern_pos=(3, 5)))
    # ROP3 codes that use all of P, S and D (rop3.c has formulas only for those).
    add("ROP3 0xB8 solid", DisplayServer.DRAW_ROP3,
        B.draw_rop3(full, B.Image(src), full, 0xB8, color=0x00A5C3E1))
    add("ROP3 0x96 pattern", DisplayServer.DRAW_ROP3,
        B.draw_rop3(full, B.Image(src), full, 0x96, pattern=B.Image(tile)))
    add("ROP3 0xCA pattern", DisplayServer.DRAW_ROP3,
        B.draw_rop3(full, B.Image(src), full, 0xCA, pattern=B.Image(tile)))
    keyed = src.copy()
    key = 0x00102030
    keyed[rng.random((h, w)) < 0.5] = (0x30, 0x20, 0x10, 0xFF)  # half the pixels keyed out
    add("TRANSPARENT", DisplayServer.DRAW_TRANSPARENT,
        B.draw_transparent(full, B.Image(keyed), full, key, key))
    add("ALPHA_BLEND const 128", DisplayServer.DRAW_ALPHA_BLEND,
        B.draw_alpha_blend(full, B.Image(src), full, 128))
    add("ALPHA_BLEND src alpha", DisplayServer.DRAW_ALPHA_BLEND,
        B.draw_alpha_blend(full, B.Image(src_a, fmt=BitmapFmt.FMT_RGBA), full, 255))
    add("ALPHA_BLEND scaled 2x", DisplayServer.DRAW_ALPHA_BLEND,
        B.draw_alpha_blend(full, B.Image(half_a, fmt=BitmapFmt.FMT_RGBA),
                           (0, 0, h // 2, w // 2), 200))
    add("BLEND rop XOR|INVERS_SRC", DisplayServer.DRAW_BLEND,
        B.draw_copy(full, B.Image(src), full, Ropd.OP_XOR | Ropd.INVERS_SRC))

    # DRAW_TEXT: one line of 8x16 glyphs across the surface, the box its bounding box.
    n_glyphs = w // 8
    top = h // 2
    for bpp, flag in ((8, StringFlags.RASTER_A8), (1, StringFlags.RASTER_A1)):
        hi = 256 if bpp == 8 else 2
        glyphs = [B.glyph((8 * i, top + 12), (0, -12), rng.integers(0, hi, (16, 8)), bpp)
                  for i in range(n_glyphs)]
        box = (top, 0, top + 16, 8 * n_glyphs)
        add(f"TEXT {n_glyphs} glyphs {bpp}bpp", DisplayServer.DRAW_TEXT,
            B.draw_text(box, flag, glyphs, (0, 0, 0, 0), fore_color=0x00FFEEDD),
            area=16 * 8 * n_glyphs, items=n_glyphs, unit="glyph/s")

    # DRAW_STROKE: a zigzag polyline from edge to edge (thin, solid and dashed), and a chain
    # of bezier curves across the surface.
    rows = 64
    zig = [((0 if i % 2 == 0 else w - 1) * FIX, (i * (h - 1) // rows) * FIX)
           for i in range(rows + 1)]
    line = [(PathFlags.BEGIN | PathFlags.END, zig)]
    add("STROKE thin polyline", DisplayServer.DRAW_STROKE, draw_stroke(line, full, 0xFF8800),
        items=rows, unit="seg/s", area_from_changed=True)
    add("STROKE dashed 6-3", DisplayServer.DRAW_STROKE,
        draw_stroke(line, full, 0x0088FF, style=[6 * FIX, 3 * FIX]),
        items=rows, unit="seg/s", area_from_changed=True)
    curves = 16
    pts = [(0, h // 2 * FIX)]
    for i in range(curves):
        x0, x1 = i * (w - 1) // curves, (i + 1) * (w - 1) // curves
        pts += [((x0 + (x1 - x0) // 3) * FIX, 0), ((x0 + 2 * (x1 - x0) // 3) * FIX,
                                                    (h - 1) * FIX), (x1 * FIX, h // 2 * FIX)]
    add("STROKE bezier x16", DisplayServer.DRAW_STROKE,
        draw_stroke([(PathFlags.BEGIN | PathFlags.END | PathFlags.BEZIER, pts)], full,
                    0x22FF22), items=curves, unit="seg/s", area_from_changed=True)

    # DRAW_COMPOSITE (flags: op in bits 0-7, src filter 8-10, mask filter 11-13, ...).
    rgba = BitmapFmt.FMT_RGBA
    add("COMPOSITE OVER", DisplayServer.DRAW_COMPOSITE,
        B.draw_composite(full, OVER, B.Image(src_a, fmt=rgba)))
    mask_a8 = rng.integers(0, 256, (h, w), dtype=np.uint8)

    def a8_mask_surface(ch: DisplayChannel) -> None:
        ch.receive_data(MessageWriter(True).build(
            DisplayServer.SURFACE_CREATE, B.surface_create(1, w, h, SurfaceFmt.FMT_8_A, 0)))
        ch.surfaces[1].pixels[..., 3] = mask_a8  # an A8 surface keeps its values in alpha

    add("COMPOSITE OVER a8 mask", DisplayServer.DRAW_COMPOSITE,
        B.draw_composite(full, OVER | CompositeFlags.HAS_MASK, B.Image(src_a, fmt=rgba),
                         B.Image(type=ImageType.SURFACE, surface_id=1, width=w, height=h)),
        setup=a8_mask_surface)
    # a glyph-sized composite, as the Xorg QXL driver sends one per antialiased glyph: a
    # 16x16 source through 16x16 of the a8 mask surface (the per-message overhead)
    g = 16
    glyph_box = (h // 2, w // 2, h // 2 + g, w // 2 + g)
    add("COMPOSITE OVER 16x16 a8 mask", DisplayServer.DRAW_COMPOSITE,
        B.draw_composite(glyph_box, OVER | CompositeFlags.HAS_MASK,
                         B.Image(image(rng, g, g, True), fmt=rgba),
                         B.Image(type=ImageType.SURFACE, surface_id=1, width=w, height=h),
                         mask_origin=(w // 3, h // 3)),
        area=g * g, setup=a8_mask_surface)
    add("COMPOSITE OVER comp. alpha", DisplayServer.DRAW_COMPOSITE,
        B.draw_composite(full, OVER | CompositeFlags.HAS_MASK | CompositeFlags.COMPONENT_ALPHA,
                         B.Image(src_a, fmt=rgba), B.Image(image(rng, h, w, True), fmt=rgba)))
    half = 1 << 15  # 0.5 in 16.16: destination (x, y) samples the source at (x/2, y/2)
    add("COMPOSITE OVER bilinear 2x", DisplayServer.DRAW_COMPOSITE,
        B.draw_composite(full, OVER | BILINEAR << 8 | CompositeFlags.HAS_SRC_TRANSFORM,
                         B.Image(half_a, fmt=rgba), src_transform=(half, 0, 0, 0, half, 0)))
    add("COMPOSITE MULTIPLY", DisplayServer.DRAW_COMPOSITE,
        B.draw_composite(full, MULTIPLY, B.Image(src_a, fmt=rgba)))

    copy_bits = B.Body()
    B.base(copy_bits, (8, 8, h, w))
    copy_bits.pack("2i", 0, 0)  # spice.proto CopyBits: DisplayBase, Point src_pos
    add("COPY_BITS overlap (+8,+8)", DisplayServer.COPY_BITS, copy_bits.build(),
        area=(h - 8) * (w - 8))

    size = 64
    out.append(cursor_case("cursor ALPHA 64x64", CursorType.ALPHA,
                           enc_alpha(rng.integers(0, 256, (size, size, 4), dtype=np.uint8)),
                           size))
    out.append(cursor_case("cursor MONO 64x64", CursorType.MONO,
                           enc_mono(rng.random((size, size)) < 0.5,
                                    rng.random((size, size)) < 0.5), size))
    return out


def fmt_rate(v: float) -> str:
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:.1f}{suffix}"
    return f"{v:.0f}"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: one repeat on a 256x192 surface")
    args = p.parse_args(argv)
    w, h, repeat = (256, 192, 1) if args.quick else (1024, 768, max(1, args.repeat))
    print(f"{w}x{h}, best of {repeat}")
    print(f"{'case':<28} {'area':>8} {'changed':>8} {'ms':>8} {'Mpx/s':>8} {'msg/s':>8} "
          f"{'items/s':>14}")
    for case in cases(w, h):
        best = float("inf")
        for i in range(repeat):
            t0 = time.perf_counter()
            case.run()
            best = min(best, time.perf_counter() - t0)
            if i == 0:
                changed = case.changed()
        items = f"{fmt_rate(case.items / best)} {case.unit}" if case.items else "-"
        print(f"{case.name:<28} {case.area:>8} {changed:>8} {best * 1e3:8.2f} "
              f"{case.area / best / 1e6:8.1f} {1 / best:8.0f} {items:>14}", flush=True)


if __name__ == "__main__":
    main()
