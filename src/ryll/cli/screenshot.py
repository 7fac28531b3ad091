"""``--screenshot``: the primary surface of each monitor as PNG, optionally with the cursor
drawn in (``--screenshot-cursor``); the pixels come from ``session.grab``."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from ryll.session.runner import FrontEnd
from ryll.session.session import Session, SessionEnd


def screenshot_paths(path: Path, count: int) -> list[Path]:
    """``PATH`` for one monitor; ``PATH-1``, ``PATH-2``... (before the suffix) for several."""
    if count == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{i}{path.suffix}") for i in range(1, count + 1)]


async def write_screenshots(session: Session, path: Path, with_cursor: bool = False
                            ) -> list[Path]:
    """One PNG per monitor; with ``with_cursor``, each display channel's first primary surface
    gets the cursor of the cursor channel with the same id."""
    count = len(session.snapshot().monitors)
    paths = screenshot_paths(path, count)
    for display, out in enumerate(paths):
        grab = await session.grab(display, with_cursor=with_cursor)
        out.write_bytes(grab.png())
    return paths


class Screenshots(FrontEnd):
    name = "--screenshot"

    def __init__(self, path: Path, with_cursor: bool, out: TextIO) -> None:
        self.path = path
        self.with_cursor = with_cursor
        self.out = out

    async def stop(self, session: Session, end: SessionEnd | None) -> None:
        if end is None:
            return
        for path in await write_screenshots(session, self.path, self.with_cursor):
            print(f"ryll: screenshot {path}", file=self.out)
