"""The work budget of one message (render.work, issue 10 item 2): the draws that cost more
than a few nanoseconds a pixel are charged before any of their work, and over the budget the
message is the gap ``display:over_work:<draw>`` with the surface untouched."""

from __future__ import annotations

import numpy as np
import pytest

from ryll.channels.context import ChannelContext
from ryll.channels.display import DisplayChannel
from ryll.protocol.constants import DisplayServer, ImageType, Ropd, SurfaceFmt
from ryll.render import work
from tests.render import builders as B
from tests.test_hostile_inputs import WRITER, display, send


def with_source(side: int, source: int = 256) -> tuple[DisplayChannel, ChannelContext]:
    """A side x side target of grey and a source x source surface 1 of noise."""
    ch, ctx = display(side, side)
    ch.surfaces[0].pixels[...] = 0x80
    ch.receive_data(WRITER.build(DisplayServer.SURFACE_CREATE,
                                 B.surface_create(1, source, source, SurfaceFmt.FMT_32_ARGB, 0)))
    ch.surfaces[1].pixels[...] = np.random.default_rng(side).integers(
        0, 256, (source, source, 4), np.uint8)
    return ch, ctx


def surface_image(side: int) -> B.Image:
    return B.Image(type=ImageType.SURFACE, surface_id=1, width=side, height=side)


def test_the_budget_is_about_100_ms_and_every_kind_has_a_cost() -> None:
    assert work.MESSAGE_WORK_NS == 100_000_000
    assert set(work.PIXEL_NS) == {work.SCALED, work.ROP3, work.BLEND, work.COLORKEY,
                                  work.COMPOSITE, work.COMPOSITE_FLOAT, work.STROKE,
                                  work.CAREFUL_STROKE}
    assert all(ns > 0 for ns in work.PIXEL_NS.values())


def test_the_benchmark_measures_every_charged_kind() -> None:
    from bench.bench_work import cases

    assert {kind for _, kinds, _, _ in cases() for kind in kinds} == set(work.PIXEL_NS)


def test_a_bilinear_copy_that_fits_is_drawn_and_one_too_big_is_a_gap() -> None:
    fits = 2048  # 4 Mpx of scaling: well inside
    assert work.cost_ns(fits * fits, work.SCALED) < work.MESSAGE_WORK_NS
    ch, ctx = with_source(fits)
    send(ch, DisplayServer.DRAW_COPY, B.draw_copy((0, 0, fits, fits), surface_image(256),
                                                  (0, 0, 256, 256), Ropd.OP_PUT, scale_mode=0))
    assert ctx.gaps.counts() == {} and ch.surfaces[0].pixels[..., :3].any()

    big = 4096  # 16.7 Mpx: over
    assert work.cost_ns(big * big, work.SCALED) > work.MESSAGE_WORK_NS
    ch, ctx = with_source(big)
    before = ch.surfaces[0].pixels.copy()
    send(ch, DisplayServer.DRAW_COPY, B.draw_copy((0, 0, big, big), surface_image(256),
                                                  (0, 0, 256, 256), Ropd.OP_PUT, scale_mode=0))
    assert ctx.gaps.counts() == {"display:over_work:draw_copy": 1}
    assert np.array_equal(ch.surfaces[0].pixels, before)


def test_an_unscaled_copy_of_the_same_size_is_not_charged() -> None:
    ch, ctx = with_source(4096, 4096)
    send(ch, DisplayServer.DRAW_COPY, B.draw_copy((0, 0, 4096, 4096), surface_image(4096),
                                                  (0, 0, 4096, 4096), Ropd.OP_PUT))
    assert ctx.gaps.counts() == {}
    assert np.array_equal(ch.surfaces[0].pixels[..., :3], ch.surfaces[1].pixels[..., :3])


@pytest.mark.parametrize(("op", "side", "gap"), [
    (0x0D, 2048, True),  # SATURATE: the float path, 4 Mpx is seconds of it
    (0x3B, 256, False),  # HSL_HUE at 256x256: 65 kpx of the float path fits
    (0x03, 2048, False),  # OVER: the 8-bit combiner, 4 Mpx fits
])
def test_a_composite_is_charged_by_its_path(op: int, side: int, gap: bool) -> None:
    ch, ctx = with_source(side, side)
    before = ch.surfaces[0].pixels.copy()
    send(ch, DisplayServer.DRAW_COMPOSITE,
         B.draw_composite((0, 0, side, side), op, surface_image(side)))
    if gap:
        assert ctx.gaps.counts() == {"display:over_work:draw_composite": 1}
        assert np.array_equal(ch.surfaces[0].pixels, before)
    else:
        assert ctx.gaps.counts() == {}
        assert not np.array_equal(ch.surfaces[0].pixels, before)


def test_the_gap_says_what_the_work_would_cost() -> None:
    ms = round(4096 * 4096 * (work.PIXEL_NS[work.ROP3] + work.PIXEL_NS[work.SCALED]) / 1e6)
    with pytest.raises(work.OverWork, match=rf"16777216 pixels of rop3\+scaled work is about "
                                            rf"{ms} ms, over the budget of 100 ms"):
        work.charge(4096 * 4096, work.ROP3, work.SCALED)


@pytest.mark.parametrize(("fore", "gap"), [
    (Ropd.OP_PUT, False),  # one pass over the box: 16.7 Mpx x 2 ns fits
    (Ropd.OP_XOR, True),  # a careful rop: parity and a second pass, over the budget
])
def test_a_stroke_is_charged_for_its_box(fore: int, gap: bool) -> None:
    from tests.test_hostile_inputs import _stroke_body

    side = 4096
    ch, ctx = display(side, side)
    before = ch.surfaces[0].pixels.copy()
    send(ch, DisplayServer.DRAW_STROKE, _stroke_body(3, side, styled=False, fore=fore))
    if gap:
        assert ctx.gaps.counts() == {"display:over_work:draw_stroke": 1}
        assert np.array_equal(ch.surfaces[0].pixels, before)
    else:
        assert ctx.gaps.counts() == {}
        assert ch.surfaces[0].pixels[side // 2, side // 2, :3].all()  # on the diagonal
