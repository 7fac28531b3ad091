"""session.screens: the monitor list and consistent copies of what they show."""

from __future__ import annotations

import asyncio
import threading

from ryll.channels.context import ChannelContext
from ryll.channels.display import DisplayChannel
from ryll.protocol.constants import SurfaceFlags, SurfaceFmt
from ryll.render.surface import Surface
from ryll.session.render_work import RenderWork
from ryll.session.screens import Grab, Monitor, encode_png, grab_monitor


def _monitor(fmt: int = SurfaceFmt.FMT_32_xRGB) -> Monitor:
    surface = Surface(0, 8, 4, fmt, SurfaceFlags.PRIMARY)
    return Monitor(DisplayChannel(0, ChannelContext()), surface, None)


def test_grab_waits_its_turn_behind_display_work_without_blocking_the_loop() -> None:
    """A draw in the render worker and a grab asked for meanwhile: the grab sees the picture
    after the draw, never half of it, and the event loop keeps running while both wait."""
    monitor = _monitor()
    monitor.surface.pixels[...] = (0, 0, 255, 255)  # red, BGRA
    release = threading.Event()

    def slow_draw() -> None:
        release.wait(5)
        monitor.surface.pixels[:2] = (255, 0, 0, 255)  # blue, top half...
        monitor.surface.pixels[2:] = (255, 0, 0, 255)  # ...and bottom half

    async def scenario() -> tuple[Grab, int]:
        work = RenderWork()
        try:
            draw = asyncio.ensure_future(work.run(slow_draw, big=True))
            await asyncio.sleep(0)
            copy = asyncio.ensure_future(work.run(grab_monitor, monitor))  # small: queues
            ticks = 0
            for _ in range(10):  # the loop is free while the worker holds the draw
                await asyncio.sleep(0.01)
                ticks += 1
            assert not copy.done()
            release.set()
            await draw
            return await copy, ticks
        finally:
            work.close()

    grabbed, ticks = asyncio.run(scenario())
    assert ticks == 10
    assert (grabbed.pixels == (0, 0, 255)).all()


def test_grab_layouts_and_png() -> None:
    rgb = grab_monitor(_monitor()).pixels
    assert rgb.shape == (4, 8, 3) and rgb.flags.c_contiguous
    argb = _monitor(SurfaceFmt.FMT_32_ARGB)
    argb.surface.pixels[...] = (1, 2, 3, 4)
    rgba = grab_monitor(argb).pixels
    assert rgba.shape == (4, 8, 4) and tuple(rgba[0, 0]) == (3, 2, 1, 4)
    assert encode_png(rgba)[:8] == b"\x89PNG\r\n\x1a\n"
