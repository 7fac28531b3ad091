"""``--screenshot``: the primary surface of each monitor as PNG (Pillow writes it), optionally
with the cursor drawn in (``--screenshot-cursor``)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from ryll.channels.cursor import CursorChannel
from ryll.render.cursor import CursorImage, composite
from ryll.render.surface import Surface
from ryll.session.session import Session


class CursorStateLike(Protocol):
    """What ``composite_cursor`` reads: a ``CursorChannel`` has these."""

    x: int
    y: int
    visible: bool
    shape: CursorImage | None


def composite_cursor(frame_rgba: np.ndarray, cursor_state: CursorStateLike | None) -> np.ndarray:
    """``frame_rgba`` ((H, W, 4) RGBA or (H, W, 3) RGB uint8) with the cursor drawn alpha-over
    with its top-left at (x - hot_x, y - hot_y), when it is visible and has a shape; a copy
    either way, the input is not changed."""
    if cursor_state is None or not cursor_state.visible or cursor_state.shape is None:
        return np.array(frame_rgba, dtype=np.uint8, copy=True)
    return composite(frame_rgba, cursor_state.shape, cursor_state.x, cursor_state.y)


def cursor_channels(session: Session) -> dict[int, CursorChannel]:
    """The session's cursor channels by channel id (cursor channel N goes with display N)."""
    return {
        ch.channel_id: ch for info in session.channels.values()
        if isinstance(ch := info.channel, CursorChannel)
    }


def screenshot_paths(path: Path, count: int) -> list[Path]:
    """``PATH`` for one monitor; ``PATH-1``, ``PATH-2``... (before the suffix) for several."""
    if count == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{i}{path.suffix}") for i in range(1, count + 1)]


def write_screenshots(session: Session, path: Path, with_cursor: bool = False) -> list[Path]:
    """With ``with_cursor``, each display channel's first primary surface gets the cursor of
    the cursor channel with the same id."""
    surfaces: list[tuple[Surface, CursorChannel | None]] = []
    cursors = cursor_channels(session) if with_cursor else {}
    for display in sorted(session.display_channels(), key=lambda d: d.channel_id):
        primary = sorted((s for s in display.surfaces.values() if s.primary),
                         key=lambda s: s.surface_id)
        surfaces.extend((s, cursors.get(display.channel_id) if i == 0 else None)
                        for i, s in enumerate(primary))
    paths = screenshot_paths(path, len(surfaces))
    for (surface, cursor), out in zip(surfaces, paths, strict=True):
        if surface.has_alpha:
            pixels, mode = surface.pixels[..., [2, 1, 0, 3]], "RGBA"
        else:
            pixels, mode = surface.rgb(), "RGB"
        if cursor is not None:
            pixels = composite_cursor(pixels, cursor)
        Image.fromarray(pixels, mode).save(out, format="PNG")
    return paths
