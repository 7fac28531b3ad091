"""``--screenshot``: the primary surface of each monitor as PNG, optionally with the cursor
drawn in (``--screenshot-cursor``); the pixels come from ``session.grab``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TextIO

from ryll.channels.events import DisplayUpdated, SessionEnded
from ryll.errors import DisplayTimeout
from ryll.session.bus import EventStream
from ryll.session.runner import READY_TIMEOUT_S, FrontEnd
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
    """At the end, one PNG per monitor. When ``--duration`` runs out before the first picture
    has arrived, the end waits for it (the runner bounds that wait); a session that ends
    without any picture writes nothing, says so, and exits with DisplayTimeout's code."""

    name = "--screenshot"
    kinds = (DisplayUpdated, SessionEnded)

    def __init__(self, path: Path, with_cursor: bool, out: TextIO) -> None:
        self.path = path
        self.with_cursor = with_cursor
        self.out = out
        self._drawn = asyncio.Event()

    async def run(self, session: Session, events: EventStream) -> None:
        async for event in events:
            if isinstance(event, DisplayUpdated):
                self._drawn.set()

    async def ready_to_end(self, session: Session) -> None:
        await self._drawn.wait()

    async def stop(self, session: Session, end: SessionEnd) -> None:
        if not session.ever_connected:
            return  # the connect error is the one line
        if not self._drawn.is_set() or not session.snapshot().monitors:
            self.failure = DisplayTimeout(
                f"--screenshot: no picture arrived from the server (waited up to "
                f"{READY_TIMEOUT_S:.0f} s past the duration); nothing written")
            return
        for path in await write_screenshots(session, self.path, self.with_cursor):
            print(f"ryll: screenshot {path}", file=self.out)
