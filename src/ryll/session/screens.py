"""What a session shows: one entry per monitor, and a consistent copy of its pixels.

``--screenshot`` and the control socket's ``screenshot`` both go through here, so they agree
on the monitor order (display channel id, then surface id), on where the cursor belongs (the
cursor channel with the display channel's id, drawn on that channel's first primary surface)
and on the pixels: ``grab`` copies a surface while holding its display channel's lock, so a
copy never catches a draw half done in a worker thread.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ryll.channels.cursor import CursorChannel
from ryll.channels.display import DisplayChannel
from ryll.render.cursor import composite
from ryll.render.surface import Surface
from ryll.session.session import Session


@dataclass(frozen=True)
class Monitor:
    """One primary surface of one display channel, and the cursor drawn over it (if any)."""

    display: DisplayChannel
    surface: Surface
    cursor: CursorChannel | None

    @property
    def channel_id(self) -> int:
        return self.display.channel_id


def monitors(session: Session) -> list[Monitor]:
    """The session's monitors in screenshot order: display channel id, then surface id."""
    cursors = {
        info.channel.channel_id: info.channel
        for info in session.channels.values()
        if isinstance(info.channel, CursorChannel)
    }
    out: list[Monitor] = []
    for display in sorted(session.display_channels(), key=lambda d: d.channel_id):
        with display.lock:
            primary = sorted(
                (s for s in display.surfaces.values() if s.primary), key=lambda s: s.surface_id
            )
        for i, surface in enumerate(primary):
            out.append(Monitor(display, surface, cursors.get(display.channel_id) if i == 0
                               else None))
    return out


def grab(monitor: Monitor, with_cursor: bool = False) -> np.ndarray:
    """A copy of the monitor's pixels: (H, W, 4) RGBA for surfaces with alpha, else (H, W, 3)
    RGB; with ``with_cursor``, the cursor is drawn alpha-over with its hotspot at the cursor
    position when it is visible. May wait for the display channel's current message."""
    surface = monitor.surface
    with monitor.display.lock:
        pixels = surface.pixels[..., [2, 1, 0, 3]] if surface.has_alpha else surface.rgb()
    cursor = monitor.cursor
    if with_cursor and cursor is not None and cursor.visible and cursor.shape is not None:
        pixels = composite(pixels, cursor.shape, cursor.x, cursor.y)
    return np.ascontiguousarray(pixels)


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of a ``grab`` result (RGB or RGBA by its last axis)."""
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGBA" if pixels.shape[2] == 4 else "RGB").save(buf, format="PNG")
    return buf.getvalue()
