"""``--screenshot``: the primary surface of each monitor as PNG, optionally with the cursor
drawn in (``--screenshot-cursor``); the pixels come from ``session.screens``."""

from __future__ import annotations

from pathlib import Path

from ryll.session.screens import encode_png, grab, monitors
from ryll.session.session import Session


def screenshot_paths(path: Path, count: int) -> list[Path]:
    """``PATH`` for one monitor; ``PATH-1``, ``PATH-2``... (before the suffix) for several."""
    if count == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{i}{path.suffix}") for i in range(1, count + 1)]


def write_screenshots(session: Session, path: Path, with_cursor: bool = False) -> list[Path]:
    """One PNG per monitor; with ``with_cursor``, each display channel's first primary surface
    gets the cursor of the cursor channel with the same id."""
    screens = monitors(session)
    paths = screenshot_paths(path, len(screens))
    for monitor, out in zip(screens, paths, strict=True):
        out.write_bytes(encode_png(grab(monitor, with_cursor)))
    return paths
