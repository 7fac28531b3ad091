"""``--pedantic``: one bug-report zip the first time each gap key is seen.

Each zip holds ``metadata.json`` (ryll version, platform, target, gap key, time, session uptime),
``hexdump.txt`` (the first 64 bytes of the message that opened the gap, when there was one) and
``channel-state.json``. Capped per session so a noisy server cannot fill a disk.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ryll import __version__
from ryll.gaps import Gap

log = logging.getLogger("ryll.pedantic")

# The Rust ryll's cap: enough for every distinct gap a real session shows, bounded on disk.
MAX_REPORTS = 50
DEFAULT_DIR = Path("ryll-pedantic-reports")


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
