"""``--pedantic``: one bug-report zip the first time each gap key is seen.

Each zip holds ``metadata.json`` (ryll version, platform, target, gap key, time, session uptime),
``hexdump.txt`` (the first 64 bytes of the message that opened the gap, when there was one) and
``channel-state.json``. Capped per session so a noisy server cannot fill a disk. A front end:
it reads ``GapOpened`` events and writes each zip in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import platform
import sys
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ryll import __version__
from ryll.channels.events import GapOpened
from ryll.gaps import Gap
from ryll.session.bus import EventStream
from ryll.session.runner import FrontEnd
from ryll.session.session import Session

log = logging.getLogger("ryll.pedantic")

# The Rust ryll's cap: enough for every distinct gap a real session shows, bounded on disk.
MAX_REPORTS = 50
DEFAULT_DIR = Path("ryll-pedantic-reports")


class Pedantic(FrontEnd):
    """``--pedantic``: one zip per new gap key, from the session's GapOpened events."""

    name = "--pedantic"
    kinds = (GapOpened,)

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def run(self, session: Session, events: EventStream) -> None:
        reporter = PedanticReporter(self.directory, session.target.describe(),
                                    lambda: session.uptime)
        async with events:
            async for event in events:
                if isinstance(event, GapOpened):
                    gap = session.ctx.gaps.get(event.key)
                    if gap is not None:
                        await asyncio.to_thread(reporter, gap)


class PedanticReporter:
    def __init__(
        self, directory: Path, target: dict[str, object], uptime: Callable[[], float]
    ) -> None:
        self.directory = directory
        self.target = target
        self.uptime = uptime
        self.written: list[Path] = []
        self.skipped = 0

    def __call__(self, gap: Gap) -> None:
        if len(self.written) >= MAX_REPORTS:
            self.skipped += 1
            if self.skipped == 1:
                log.warning("pedantic: %d reports written, not writing more", MAX_REPORTS)
            return
        now = datetime.now(UTC)
        stamp = now.strftime("%Y%m%dT%H%M%S.%fZ")
        name = f"ryll-pedantic-{gap.key.replace(':', '-')}-{stamp}.zip"
        metadata = {
            "ryll_version": __version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "target_host": self.target.get("host"),
            "target_port": self.target.get("port"),
            "target_tls_port": self.target.get("tls_port"),
            "gap_key": gap.key,
            "gap_detail": gap.detail,
            "time": now.isoformat(),
            "session_uptime_s": round(self.uptime(), 3),
        }
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / name
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("metadata.json", json.dumps(metadata, indent=2) + "\n")
                if gap.hexdump is not None:
                    zf.writestr("hexdump.txt", gap.hexdump + "\n")
                zf.writestr(
                    "channel-state.json",
                    json.dumps(gap.channel_state or {}, indent=2, default=str) + "\n",
                )
        except OSError as exc:
            log.error("pedantic: cannot write %s: %s", name, exc)
            return
        self.written.append(path)
        log.info("pedantic: wrote %s", path)
