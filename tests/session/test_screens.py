"""session.screens: the monitor list and consistent copies of what they show."""

from __future__ import annotations

import threading

import numpy as np

from ryll.channels.context import ChannelContext
from ryll.channels.display import DisplayChannel
from ryll.protocol.constants import SurfaceFlags, SurfaceFmt
from ryll.render.surface import Surface
from ryll.session.screens import Monitor, encode_png, grab


def _monitor(fmt: int = SurfaceFmt.FMT_32_xRGB) -> Monitor:
    surface = Surface(0, 8, 4, fmt, SurfaceFlags.PRIMARY)
    return Monitor(DisplayChannel(0, ChannelContext()), surface, None)


def test_grab_waits_for_the_message_being_handled() -> None:
    """A draw in progress holds the display channel's lock (Channel.handle); a grab from
    another thread sees the picture before or after it, never half of it."""
    monitor = _monitor()
    monitor.surface.pixels[...] = (0, 0, 255, 255)  # red, BGRA
    result: list[np.ndarray] = []
    with monitor.display.lock:
        worker = threading.Thread(target=lambda: result.append(grab(monitor)))
        worker.start()
        worker.join(0.2)
        assert worker.is_alive() and not result  # waiting for the draw
        monitor.surface.pixels[:2] = (255, 0, 0, 255)  # blue, top half...
        monitor.surface.pixels[2:] = (255, 0, 0, 255)  # ...and bottom half
    worker.join(5)
    assert result and (result[0] == (0, 0, 255)).all()


def test_grab_layouts_and_png() -> None:
    rgb = grab(_monitor())
    assert rgb.shape == (4, 8, 3) and rgb.flags.c_contiguous
    argb = _monitor(SurfaceFmt.FMT_32_ARGB)
    argb.surface.pixels[...] = (1, 2, 3, 4)
    rgba = grab(argb)
    assert rgba.shape == (4, 8, 4) and tuple(rgba[0, 0]) == (3, 2, 1, 4)
    assert encode_png(rgba)[:8] == b"\x89PNG\r\n\x1a\n"
