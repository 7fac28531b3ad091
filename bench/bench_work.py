"""How long one message of each region-sized kind holds its display channel, per destination
pixel, on the largest surface ryll accepts (8192x4096, render.surface.MAX_SURFACE_PIXELS):
the measurement behind the work budget of render.work (issue 10: no single message should
hold a channel for more than about 100 ms on this machine).

Each message covers the whole surface; the time is one DisplayChannel.handle (the median of
``--repeat`` runs), the sources are other surfaces (so no image decoding is counted). The
``budget`` column says what render.work does with it: ``drawn`` when its pixels times the
kind's charge fit render.work.MESSAGE_WORK_NS, else the gap it names; ``uncharged`` kinds
are bounded by the surface size alone.

Run: ``.venv/bin/python bench/bench_work.py [--repeat N] [--side-mib]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.render import builders as B  # noqa: E402
from tests.test_hostile_inputs import _stroke_body  # noqa: E402

from ryll.channels.context import ChannelContext  # noqa: E402
from ryll.channels.display import DisplayChannel  # noqa: E402
from ryll.protocol.constants import DisplayServer, ImageType, Ropd, SurfaceFmt  # noqa: E402
from ryll.protocol.framing import MessageWriter  # noqa: E402
from ryll.render import work  # noqa: E402

W = MessageWriter(True)
WIDTH, HEIGHT = 8192, 4096
SMALL = 1024  # the side of the scaled sources


def surface(sid: int, width: int, height: int, fmt: int = SurfaceFmt.FMT_32_xRGB) -> bytes:
    return W.build(DisplayServer.SURFACE_CREATE, B.surface_create(sid, width, height, fmt,
                                                                  1 if sid == 0 else 0))


def from_surface(sid: int, width: int, height: int) -> B.Image:
    return B.Image(type=ImageType.SURFACE, surface_id=sid, width=width, height=height)


def composite(op: int, extra: int = 0) -> bytes:
    # src surface 2 (ARGB, as big as the target), no mask, op in the flags' low byte
    return B.draw_composite((0, 0, HEIGHT, WIDTH), op | extra,
                            from_surface(2, WIDTH, HEIGHT))


def cases() -> list[tuple[str, tuple[str, ...], int, Callable[[], bytes]]]:
    """(name, the work kinds render.work charges (none: bounded by the surface), opcode,
    body builder)."""
    box = (0, 0, HEIGHT, WIDTH)
    pattern = B.Image(pixels=np.random.default_rng(2).integers(0, 256, (8, 8, 4), np.uint8))
    full = from_surface(1, WIDTH, HEIGHT)
    small = from_surface(3, SMALL, SMALL)
    clip = [(i % 7, i % 5, HEIGHT, WIDTH) for i in range(20_000)]
    careful = (work.STROKE, work.CAREFUL_STROKE)
    return [
        ("FILL solid", (), DisplayServer.DRAW_FILL,
         lambda: B.draw_fill(box, Ropd.OP_PUT, 0x123456)),
        ("FILL 8x8 pattern, XOR", (), DisplayServer.DRAW_FILL,
         lambda: B.draw_fill(box, Ropd.OP_XOR, pattern=pattern)),
        ("FILL, 20,000 clip rects", (), DisplayServer.DRAW_FILL,
         lambda: B.draw_fill(box, Ropd.OP_PUT, 0x10, clip=clip)),
        ("COPY from a surface", (), DisplayServer.DRAW_COPY,
         lambda: B.draw_copy(box, full, box, Ropd.OP_PUT)),
        ("COPY_BITS", (), DisplayServer.COPY_BITS,
         lambda: _copy_bits(box)),
        ("ROP3 0xCA with a pattern", (work.ROP3,), DisplayServer.DRAW_ROP3,
         lambda: B.draw_rop3(box, full, box, 0xCA, pattern=pattern)),
        ("TRANSPARENT", (work.COLORKEY,), DisplayServer.DRAW_TRANSPARENT,
         lambda: B.draw_transparent(box, full, box, 0x000000, 0)),
        ("ALPHA_BLEND 128", (work.BLEND,), DisplayServer.DRAW_ALPHA_BLEND,
         lambda: B.draw_alpha_blend(box, full, box, 128)),
        ("COPY scaled, nearest", (work.SCALED,), DisplayServer.DRAW_COPY,
         lambda: B.draw_copy(box, small, (0, 0, SMALL, SMALL), Ropd.OP_PUT, scale_mode=1)),
        ("COPY scaled, bilinear", (work.SCALED,), DisplayServer.DRAW_COPY,
         lambda: B.draw_copy(box, small, (0, 0, SMALL, SMALL), Ropd.OP_PUT, scale_mode=0)),
        ("STROKE solid, 3 polylines", (work.STROKE,), DisplayServer.DRAW_STROKE,
         lambda: _stroke_body(3, HEIGHT, styled=False, width=WIDTH, fore=Ropd.OP_PUT)),
        ("STROKE solid XOR, 3 polylines", careful,
         DisplayServer.DRAW_STROKE,
         lambda: _stroke_body(3, HEIGHT, styled=False, width=WIDTH)),
        ("STROKE solid, 2000 polylines", (work.STROKE,), DisplayServer.DRAW_STROKE,
         lambda: _stroke_body(2000, HEIGHT, styled=False, width=WIDTH, fore=Ropd.OP_PUT)),
        ("STROKE dashed XOR, 2000 polylines", careful,
         DisplayServer.DRAW_STROKE,
         lambda: _stroke_body(2000, HEIGHT, width=WIDTH)),
        ("COMPOSITE OVER", (work.COMPOSITE,), DisplayServer.DRAW_COMPOSITE,
         lambda: composite(3)),
        ("COMPOSITE MULTIPLY", (work.COMPOSITE,), DisplayServer.DRAW_COMPOSITE,
         lambda: composite(0x30)),
        ("COMPOSITE SATURATE (float)", (work.COMPOSITE_FLOAT,), DisplayServer.DRAW_COMPOSITE,
         lambda: composite(0x0D)),
        ("COMPOSITE DISJOINT_OVER (float)", (work.COMPOSITE_FLOAT,),
         DisplayServer.DRAW_COMPOSITE, lambda: composite(0x13)),
        ("COMPOSITE HSL_HUE (float)", (work.COMPOSITE_FLOAT,), DisplayServer.DRAW_COMPOSITE,
         lambda: composite(0x3B)),
    ]


def _copy_bits(box: tuple[int, int, int, int]) -> bytes:
    b = B.Body()
    B.base(b, box)
    b.pack("ii", 1, 1)  # the source point: one pixel down and right
    return b.build()


def channel() -> DisplayChannel:
    ch = DisplayChannel(0, ChannelContext())
    rng = np.random.default_rng(1)
    for sid, (w, h, fmt) in {0: (WIDTH, HEIGHT, SurfaceFmt.FMT_32_xRGB),
                             1: (WIDTH, HEIGHT, SurfaceFmt.FMT_32_xRGB),
                             2: (WIDTH, HEIGHT, SurfaceFmt.FMT_32_ARGB),
                             3: (SMALL, SMALL, SurfaceFmt.FMT_32_xRGB)}.items():
        ch.receive_data(surface(sid, w, h, fmt))
        ch.surfaces[sid].pixels[...] = rng.integers(0, 256, (h, w, 4), np.uint8)
    return ch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ch = channel()
    pixels = WIDTH * HEIGHT
    budget = work.MESSAGE_WORK_NS
    print(f"one message over {WIDTH}x{HEIGHT}, the work budget lifted to measure it; "
          f"the budget is {budget / 1e6:.0f} ms")
    print(f"{'message':34} {'ms':>8} {'ns/px':>7} {'charge':>7} {'fits Mpx':>9}  gaps")
    work.MESSAGE_WORK_NS = 1 << 62
    try:
        for name, kinds, opcode, body in cases():
            message = W.build(opcode, body())
            times = []
            before = dict(ch.ctx.gaps.counts())
            for _ in range(args.repeat):
                started = time.perf_counter()
                ch.receive_data(message)
                times.append(time.perf_counter() - started)
            after = ch.ctx.gaps.counts()
            new = [k.split(":", 1)[1] for k in after if after[k] != before.get(k, 0)]
            took = statistics.median(times)
            ns = work.cost_ns(1, *kinds)
            charge = f"{ns:>7}" if kinds else "      -"
            fits = f"{budget / ns / 1e6:9.1f}" if kinds else "      all"
            print(f"{name:34} {took * 1000:8.1f} {took * 1e9 / pixels:7.1f} {charge} {fits}  "
                  f"{','.join(new) or '-'}")
    finally:
        work.MESSAGE_WORK_NS = budget


if __name__ == "__main__":
    main()
