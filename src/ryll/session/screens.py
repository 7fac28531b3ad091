"""What a session shows: one entry per monitor, and a consistent copy of its pixels.

``--screenshot`` and the control socket's ``screenshot`` both go through here, so they agree
on the monitor order (display channel id, then surface id), on where the cursor belongs (the
cursor channel with the display channel's id, drawn on that channel's first primary surface)
and on the pixels: ``Session.grab`` runs :func:`grab_monitor` through the session's render work,
between two display messages, so a copy never catches a draw half done.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ryll.channels.cursor import CursorChannel
from ryll.channels.display import DisplayChannel
from ryll.protocol.messages.draw import Rect
from ryll.render import _pixels  # type: ignore[attr-defined]
from ryll.render.cursor import composite
from ryll.render.surface import Surface

if TYPE_CHECKING:
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
        primary = sorted(
            (s for s in list(display.surfaces.values()) if s.primary), key=lambda s: s.surface_id
        )
        for i, surface in enumerate(primary):
            out.append(Monitor(display, surface, cursors.get(display.channel_id) if i == 0
                               else None))
    return out


def surface_monitors(session: Session, surface_id: int, channel_id: int | None = None
                     ) -> list[Monitor]:
    """Surface ``surface_id`` of each display channel that has it (only ``channel_id``'s when
    given), lowest channel first, as Monitors: the cursor goes with a channel's first primary
    surface, as in :func:`monitors`."""
    shown = {(m.channel_id, m.surface.surface_id): m for m in monitors(session)}
    out: list[Monitor] = []
    for display in sorted(session.display_channels(), key=lambda d: d.channel_id):
        if channel_id is not None and display.channel_id != channel_id:
            continue
        surface = display.surfaces.get(surface_id)
        if surface is not None:
            out.append(shown.get((display.channel_id, surface_id),
                                 Monitor(display, surface, None)))
    return out


@dataclass(frozen=True)
class Grab:
    """A copy of a monitor's pixels: ``pixels`` is (H, W, 4) RGBA for surfaces with alpha,
    else (H, W, 3) RGB; ``rect`` is where on the surface it was taken from."""

    pixels: np.ndarray
    channel_id: int
    surface_id: int
    rect: Rect

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    def png(self) -> bytes:
        return encode_png(self.pixels)

    def rgba(self) -> np.ndarray:
        if self.pixels.shape[2] == 4:
            return self.pixels
        alpha = np.full(self.pixels.shape[:2] + (1,), 255, np.uint8)
        return np.concatenate([self.pixels, alpha], axis=2)

    def image(self) -> object:
        """A Pillow image of the pixels."""
        from PIL import Image  # Pillow is loaded by the first picture asked for, not the session

        return Image.fromarray(self.pixels, "RGBA" if self.pixels.shape[2] == 4 else "RGB")


def grab_monitor(monitor: Monitor, rect: Rect | None = None, with_cursor: bool = False,
                 rgba: bool = False) -> Grab:
    """Copy the monitor's pixels (``rect`` of them, clipped to the surface); with
    ``with_cursor``, the cursor is drawn alpha-over with its hotspot at the cursor position
    when it is visible; with ``rgba``, always four bytes a pixel, alpha 255 on a surface
    without one (a browser's ImageData). Run between display messages (``Session.grab``)."""
    surface = monitor.surface
    full = Rect(0, 0, surface.height, surface.width)
    r = full if rect is None else Rect(max(rect.top, 0), max(rect.left, 0),
                                       min(rect.bottom, surface.height),
                                       min(rect.right, surface.width))
    if r.top >= r.bottom or r.left >= r.right:
        raise ValueError(f"rectangle {rect} is not on the {surface.width}x{surface.height} "
                         "surface")
    view = surface.pixels[r.top:r.bottom, r.left:r.right]
    pixels = _pixels.to_rgb(view, surface.has_alpha, rgba)
    cursor = monitor.cursor
    if with_cursor and cursor is not None and cursor.visible and cursor.shape is not None:
        pixels = composite(pixels, cursor.shape, cursor.x - r.left, cursor.y - r.top)
    return Grab(np.ascontiguousarray(pixels), monitor.channel_id, surface.surface_id, r)


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of a ``grab`` result (RGB or RGBA by its last axis)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels, "RGBA" if pixels.shape[2] == 4 else "RGB").save(buf, format="PNG")
    return buf.getvalue()
