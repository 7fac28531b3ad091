"""The ``--summary-json`` document: the session's snapshot at its end, written atomically."""

from __future__ import annotations

from pathlib import Path

from ryll.diagnostics.capture import write_json_atomically
from ryll.session.runner import FrontEnd
from ryll.session.session import Session, SessionEnd


def write_summary(path: Path, summary: dict[str, object]) -> None:
    write_json_atomically(path, summary)


class Summary(FrontEnd):
    name = "--summary-json"

    def __init__(self, path: Path) -> None:
        self.path = path

    async def stop(self, session: Session, end: SessionEnd) -> None:
        # Written however the session ended, a failed connect included (its end says why).
        write_summary(self.path, session.snapshot().as_dict())
