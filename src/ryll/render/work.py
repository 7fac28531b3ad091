"""The work budget of one message: no draw holds its display channel for much more than
MESSAGE_WORK_NS on the reference machine (issue 10).

Most draws are bounded by the surface alone: a fill, a copy, COPY_BITS, a blackness, a clip of
any number of rects (one sweep, render.raster.draw_region), a mask, text (glyph counts are
capped by the parser) cost about 3 ns a pixel or less, under 100 ms on the largest surface
ryll accepts (8192x4096). DRAW_STROKE is charged for its box (the hit counts, the selection
and the brush, once or, for the rops that must not touch a pixel twice, twice) and carries
its own step budget for its path (render.stroke.WORK_BUDGET). The kinds of work that cost
more per pixel are charged by the canvas *before* any of it is done: the pixels it covers
times the sum of its kinds' costs, nanoseconds of this machine as bench/bench_work.py
measured them (the slowest variant, rounded up). Over the budget the draw is the gap
``display:over_work:<draw>`` and nothing of it is drawn.

Pure: a table and a comparison. The README's table shows what each kind costs here.
"""

from __future__ import annotations

from ryll.errors import RyllError

# About 100 ms of this machine, per message.
MESSAGE_WORK_NS = 100_000_000

SCALED = "scaled"  # a source sampled to another size (nearest or bilinear), or transformed
ROP3 = "rop3"  # a ternary raster op over source, pattern and dest
BLEND = "blend"  # OVER through a solid alpha (ALPHA_BLEND)
COLORKEY = "colorkey"  # TRANSPARENT's select
COMPOSITE = "composite"  # DRAW_COMPOSITE through the 8-bit combiners (render._composite)
COMPOSITE_FLOAT = "composite_float"  # DRAW_COMPOSITE through pixman's float path
STROKE = "stroke"  # DRAW_STROKE's hit counts, selection and brush over its box
CAREFUL_STROKE = "careful_stroke"  # and the second pass of a rop that must not repeat a pixel

# Nanoseconds per pixel of each kind (bench/bench_work.py, rounded up).
PIXEL_NS = {SCALED: 12, ROP3: 14, BLEND: 20, COLORKEY: 8, COMPOSITE: 16, COMPOSITE_FLOAT: 600,
            STROKE: 2, CAREFUL_STROKE: 5}


class OverWork(RyllError):
    """A draw whose work would hold the channel past the message budget."""

    def __init__(self, pixels: int, kinds: tuple[str, ...]) -> None:
        super().__init__(f"{pixels} pixels of {'+'.join(kinds)} work is about "
                         f"{cost_ns(pixels, *kinds) / 1e6:.0f} ms, over the budget of "
                         f"{MESSAGE_WORK_NS / 1e6:.0f} ms a message")
        self.pixels = pixels
        self.kinds = kinds


def cost_ns(pixels: int, *kinds: str) -> int:
    """What ``pixels`` pixels of each of ``kinds`` cost, in nanoseconds of this machine."""
    return pixels * sum(PIXEL_NS[k] for k in kinds)


def charge(pixels: int, *kinds: str) -> None:
    """Raise OverWork unless ``pixels`` pixels of ``kinds`` fit one message."""
    if cost_ns(pixels, *kinds) > MESSAGE_WORK_NS:
        raise OverWork(pixels, kinds)
