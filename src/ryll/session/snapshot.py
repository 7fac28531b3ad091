"""``session.snapshot()``: everything about a session at one moment, as one frozen value.

``--summary-json`` writes it (``as_dict()``), the control socket's ``status`` answers from it,
the Python API reads it. Front ends never read a channel's fields; what they need is here.
It holds no password or ticket (``Target.describe``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ryll import __version__

if TYPE_CHECKING:
    from ryll.session.session import Session

SUMMARY_VERSION = 1


@dataclass(frozen=True)
class ChannelInfo:
    type: int
    name: str
    id: int
    tls: bool
    messages_in: int
    bytes_in: int
    messages_out: int
    bytes_out: int
    pings_answered: int
    acks_sent: int
    by_message: dict[str, int]


@dataclass(frozen=True)
class SurfaceInfo:
    channel_id: int
    surface: dict[str, Any]


@dataclass(frozen=True)
class MonitorInfo:
    display: int
    channel_id: int
    surface_id: int
    width: int
    height: int


@dataclass(frozen=True)
class SessionSnapshot:
    state: str  # "connecting", "connected", "ended"
    ryll_version: str
    target: dict[str, object]
    started_at: float
    taken_at: float
    uptime_s: float
    mouse_mode: str
    session: dict[str, object]
    channels: tuple[ChannelInfo, ...]
    surfaces: tuple[SurfaceInfo, ...]
    monitors: tuple[MonitorInfo, ...]
    marks: int
    streams: dict[str, object]
    cursor: dict[str, object] | None
    agent: dict[str, object]
    latency: dict[str, object]
    gaps: dict[str, int]
    bytes_in: int
    bytes_out: int
    end: dict[str, object] | None
    memory: dict[str, object]  # the session's memory budget (ryll.budget): limit, use, refusals
    reconnects: dict[str, object]  # --reconnect: the policy and each attempt
    ports: dict[str, object]  # SPICE ports: each offered one's state and holder (session.ports)
    audio: dict[str, object]  # playback and record: codec, frames, underruns (None: not linked)

    def as_dict(self) -> dict[str, object]:
        """The ``--summary-json`` document."""
        return {
            "summary_version": SUMMARY_VERSION,
            "ryll_version": self.ryll_version,
            "state": self.state,
            "target": self.target,
            "started_at": self.started_at,
            "ended_at": self.taken_at,
            "duration_s": self.uptime_s,
            "mouse_mode": self.mouse_mode,
            "session": self.session,
            "channels": [asdict(c) for c in self.channels],
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "display_marks": self.marks,
            "surfaces": [{"channel_id": s.channel_id, **s.surface} for s in self.surfaces],
            "monitors": [asdict(m) for m in self.monitors],
            "streams": self.streams,
            "cursor": self.cursor,
            "latency": self.latency,
            "agent": self.agent,
            "gaps": self.gaps,
            "memory": self.memory,
            "reconnects": self.reconnects,
            "ports": self.ports,
            "audio": self.audio,
            "end": self.end,
        }


MOUSE_MODES = {1: "server", 2: "client"}


def take_snapshot(session: Session) -> SessionSnapshot:
    from ryll.protocol.constants import ChannelType
    from ryll.session.screens import monitors

    end = session.end
    if end is not None:
        state = "ended"
    elif session.reconnecting:
        state = "reconnecting"
    elif session.channel(ChannelType.MAIN) is not None:
        state = "connected"
    else:
        state = "connecting"
    channels = []
    for (ctype, cid), info in sorted(list(session.channels.items())):
        st = info.channel.stats.as_dict()
        channels.append(ChannelInfo(ctype, info.channel.name, cid, info.tls, **st))  # type: ignore[arg-type]
    displays = sorted(session.display_channels(), key=lambda d: d.channel_id)
    surfaces = tuple(SurfaceInfo(d.channel_id, s.as_dict())
                     for d in displays for s in list(d.surfaces.values()))
    mons = tuple(MonitorInfo(i, m.channel_id, m.surface.surface_id, m.surface.width,
                             m.surface.height) for i, m in enumerate(monitors(session)))
    cursors = session.cursor_channels()
    bytes_in = sum(c.bytes_in for c in channels)
    bytes_out = sum(c.bytes_out for c in channels)
    mode = session.ctx.state.current_mouse_mode
    return SessionSnapshot(
        state=state,
        ryll_version=__version__,
        target=session.target.describe(),
        started_at=session.started_at,
        taken_at=time.time(),
        uptime_s=round(session.uptime, 3),
        mouse_mode=MOUSE_MODES.get(mode, str(mode)),
        session=session.ctx.state.as_dict(),
        channels=tuple(channels),
        surfaces=surfaces,
        monitors=mons,
        marks=sum(d.marks for d in displays),
        streams=_streams(displays),
        cursor=cursors[0].cursor_state() if cursors else None,
        agent=session.agent.as_dict(),
        latency=session.latency.summary(),
        gaps=session.ctx.gaps.counts(),
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        end=None if end is None else {"reason": end.reason, "message": end.message,
                                      "exit_code": end.exit_code},
        memory=session.ctx.memory.as_dict(),
        reconnects=session.reconnects.as_dict(),
        ports=session.ports.as_dict(),
        audio=_audio(session),
    )


def _audio(session: Session) -> dict[str, object]:
    from ryll.protocol.constants import ChannelType

    out: dict[str, object] = {}
    for ctype, key in ((ChannelType.PLAYBACK, "playback"), (ChannelType.RECORD, "record")):
        channel = session.channel(ctype)
        state = getattr(channel, "audio_state", None)
        out[key] = state() if state is not None else None
    return out


def _streams(displays: list[Any]) -> dict[str, object]:
    total: dict[str, Any] = {
        "created": 0, "destroyed": 0, "destroy_all": 0, "orphans": 0, "live": 0,
        "frames_decoded": {}, "frames_failed": {},
    }
    for display in displays:
        for key, value in display.streams.summary().items():
            if isinstance(value, dict):
                bucket = total[key]
                for codec, n in value.items():
                    bucket[codec] = bucket.get(codec, 0) + n
            else:
                total[key] += value
    return total
