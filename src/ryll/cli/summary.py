"""The ``--summary-json`` document: what a script needs to judge a session after the fact."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ryll import __version__
from ryll.channels.cursor import CursorChannel
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
        "streams": _streams(session),
        "cursor": _cursor(session),
        "latency": session.latency.summary(),
        "agent": session.agent.as_dict(),
        "gaps": session.ctx.gaps.counts(),
        "end": {"reason": end.reason, "message": end.message, "exit_code": end.exit_code},
    }


def _streams(session: Session) -> dict[str, object]:
    total: dict[str, object] = {
        "created": 0, "destroyed": 0, "destroy_all": 0, "orphans": 0, "live": 0,
        "frames_decoded": {}, "frames_failed": {},
    }
    for display in session.display_channels():
        for key, value in display.streams.summary().items():
            if isinstance(value, dict):
                bucket = total[key]
                assert isinstance(bucket, dict)
                for codec, n in value.items():
                    bucket[codec] = bucket.get(codec, 0) + n
            else:
                current = total[key]
                assert isinstance(current, int) and isinstance(value, int)
                total[key] = current + value
    return total


def _cursor(session: Session) -> dict[str, object] | None:
    """The first cursor channel's position, visibility, shape and cache (None: no channel)."""
    cursors = sorted((i.channel for i in session.channels.values()
                      if isinstance(i.channel, CursorChannel)), key=lambda c: c.channel_id)
    return cursors[0].cursor_state() if cursors else None


def write_summary(path: Path, summary: dict[str, object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
