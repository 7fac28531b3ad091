"""The ``--summary-json`` document: what a script needs to judge a session after the fact."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ryll import __version__
from ryll.session.session import Session, SessionEnd

SUMMARY_VERSION = 1


def build_summary(session: Session, end: SessionEnd) -> dict[str, object]:
    channels = []
    surfaces = []
    for (ctype, cid), info in sorted(session.channels.items()):
        ch = info.channel
        channels.append(
            {
                "type": ctype,
                "name": ch.name,
                "id": cid,
                "tls": info.tls,
                **ch.stats.as_dict(),
            }
        )
    for display in session.display_channels():
        for s in display.surfaces.values():
            surfaces.append({"channel_id": display.channel_id, **s.as_dict()})
    bytes_in, bytes_out = session.totals()
    return {
        "summary_version": SUMMARY_VERSION,
        "ryll_version": __version__,
        "target": session.target.describe(),
        "started_at": session.started_at,
        "ended_at": time.time(),
        "duration_s": round(session.uptime, 3),
        "session": session.ctx.state.as_dict(),
        "channels": channels,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "display_marks": sum(d.marks for d in session.display_channels()),
        "surfaces": surfaces,
        "gaps": session.ctx.gaps.counts(),
        "end": {"reason": end.reason, "message": end.message, "exit_code": end.exit_code},
    }


def write_summary(path: Path, summary: dict[str, object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
