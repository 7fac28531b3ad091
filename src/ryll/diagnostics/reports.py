"""Bug-report zips: everything a maintainer needs about one moment of a session, in the Rust
ryll's layout, so reports from either client read the same.

A zip holds ``metadata.json`` (version, platform, report type, channel, description, region,
times, target, uptime), ``session.json`` (the session snapshot), ``channel-state.json`` (the
channel's state, or every channel's for reports about the whole session), ``traffic.pcap``
(the traffic ring: diagnostics.ring), ``screenshot.png`` and ``screenshot-region.png`` (for a
region), ``notifications.json`` (the server's NOTIFYs and the connection's events, with
times), ``runtime-metrics.json`` (diagnostics.metrics), and for the kinds that have them
``disconnect-cause.json`` and ``hexdump.txt``.

Kinds and where they go:

- ``manual``: the control protocol's ``bug_report`` (and ``vm.bug_report()``), into the
  report directory (``--bug-report-dir``, default ``./ryll-bug-reports/``);
- ``pedantic``: ``--pedantic``, the first time each gap key is seen, into ``--pedantic-dir``
  (at most MAX_PEDANTIC a session);
- ``disconnect``: a channel the server dropped, ``ryll-disconnect-<channel>-<time>.zip``, at
  most one per DISCONNECT_COOLDOWN_S;
- ``auto_snapshot``: every ``--auto-snapshot-interval`` seconds into
  ``<dir>/auto-snapshots/``, the oldest deleted past ``--auto-snapshot-cap`` files or
  AUTO_SNAPSHOT_BUDGET bytes.

Nothing secret goes in: the target is ``Target.describe()`` (no password, no proxy
credentials), the traffic's tickets are zeros (session.traffic), and nothing else holds one.
The pieces are gathered on the event loop (a snapshot, a copy of the ring, a grab) and the
slow parts (PNG, pcap, metrics, the zip) run in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import platform
import sys
import time
import zipfile
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ryll import __version__
from ryll.channels.events import (
    AgentConnected,
    AgentDisconnected,
    ChannelClosed,
    ChannelLinked,
    Event,
    GapOpened,
    MonitorsChanged,
    Reconnected,
    Reconnecting,
    ServerDisconnecting,
    ServerNotified,
    SessionEnded,
    SessionEstablished,
)
from ryll.diagnostics import metrics
from ryll.diagnostics.ring import TrafficRing
from ryll.gaps import Gap
from ryll.protocol.messages.draw import Rect
from ryll.protocol.names import channel_name
from ryll.session.bus import EventStream
from ryll.session.runner import FrontEnd
from ryll.session.screens import encode_png
from ryll.session.session import Session, SessionEnd

log = logging.getLogger("ryll.reports")

DEFAULT_DIR = Path("ryll-bug-reports")
DEFAULT_PEDANTIC_DIR = Path("ryll-pedantic-reports")
MAX_PEDANTIC = 50
DISCONNECT_COOLDOWN_S = 60.0
AUTO_SNAPSHOT_CAP = 20
AUTO_SNAPSHOT_BUDGET = 512 * 1024 * 1024
MAX_NOTIFICATIONS = 1000
MAX_DESCRIPTION = 4096
# How long the end of a session waits for reports still being written.
FINISH_TIMEOUT_S = 30.0

KINDS = ("manual", "pedantic", "disconnect", "auto_snapshot")


def stamp(when: datetime) -> str:
    """``2026-05-18T20-37-42Z``: the Rust ryll's file-name time (no colons, for Windows)."""
    return when.strftime("%Y-%m-%dT%H-%M-%SZ")


def unique(path: Path) -> Path:
    """``path``, or ``path`` with ``-2``, ``-3``... before the suffix: never overwrite a
    report written in the same second."""
    if not path.exists():
        return path
    for n in range(2, 10_000):
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise OSError(f"too many reports named {path.name}")


@dataclass
class Region:
    """A rectangle of one display, in its pixels."""

    display: int
    x: int
    y: int
    width: int
    height: int

    def rect(self) -> Rect:
        return Rect(self.y, self.x, self.y + self.height, self.x + self.width)

    def as_dict(self) -> dict[str, int]:
        return {"display": self.display, "x": self.x, "y": self.y, "width": self.width,
                "height": self.height}


class NotificationLog:
    """The server's NOTIFYs and the connection's events, with times (bounded)."""

    KINDS: tuple[type[Event], ...] = (
        ServerNotified, ChannelLinked, ChannelClosed, SessionEstablished, Reconnecting,
        Reconnected, ServerDisconnecting, GapOpened, AgentConnected, AgentDisconnected,
        MonitorsChanged, SessionEnded)

    def __init__(self) -> None:
        self.entries: deque[dict[str, object]] = deque(maxlen=MAX_NOTIFICATIONS)
        self.dropped = 0

    def add(self, event: Event, uptime: float) -> None:
        if not isinstance(event, self.KINDS):
            return
        if len(self.entries) == self.entries.maxlen:
            self.dropped += 1
        entry: dict[str, object] = {
            "time": datetime.now(UTC).isoformat(), "uptime_s": round(uptime, 3),
            "kind": _snake(type(event).__name__)}
        for name in getattr(event, "__slots__", ()):
            value = getattr(event, name)
            if name == "hexdump":
                continue
            entry[name] = value if isinstance(value, str | int | float | bool | None) else (
                repr(value))
        if hasattr(event, "channel_type"):
            entry["channel"] = channel_name(event.channel_type)  # type: ignore[attr-defined]
        self.entries.append(entry)

    def as_list(self) -> list[dict[str, object]]:
        return list(self.entries)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


@dataclass
class ReportRequest:
    """What to report. ``description`` is cut to MAX_DESCRIPTION characters."""

    kind: str
    channel: str = "all"  # a channel name ("display"), "display:1", or "all"
    description: str = ""
    region: Region | None = None
    gap: Gap | None = None
    cause: dict[str, object] | None = None
    display: int = 0  # the screenshot's display (a region's own display wins)
    triggered_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    triggered_uptime: float = 0.0

    def __post_init__(self) -> None:
        self.description = self.description[:MAX_DESCRIPTION]


def _json(value: object) -> bytes:
    return (json.dumps(value, indent=2, default=str) + "\n").encode("utf-8")


def channel_states(session: Session) -> dict[str, object]:
    return {f"{info.channel.name}:{cid}": info.channel.state()
            for (_ctype, cid), info in sorted(session.channels.items())}


def state_of(session: Session, channel: str) -> object:
    """``channel-state.json``: one channel's state, every display's for ``display``, or every
    channel's for ``all``."""
    states = channel_states(session)
    if channel == "all":
        return states
    if ":" in channel:
        return states.get(channel, {})
    matching = {k: v for k, v in states.items() if k.split(":")[0] == channel}
    if len(matching) == 1:
        return next(iter(matching.values()))
    return matching


class Reporter:
    """Writes one session's bug reports (any kind) and remembers what it wrote."""

    def __init__(self, session: Session, directory: Path, ring: TrafficRing,
                 notes: NotificationLog, pedantic_dir: Path | None = None,
                 metrics_window_s: float = metrics.SAMPLE_S) -> None:
        self.session = session
        self.directory = directory
        self.pedantic_dir = pedantic_dir
        self.ring = ring
        self.notes = notes
        self.metrics_window_s = metrics_window_s
        self.written: list[Path] = []
        self.failed = 0
        self.pedantic_written = 0
        self.pedantic_skipped = 0

    def file_for(self, request: ReportRequest) -> Path:
        when = stamp(request.triggered_at)
        if request.kind == "pedantic":
            assert self.pedantic_dir is not None and request.gap is not None
            key = request.gap.key.replace(":", "-")
            return self.pedantic_dir / f"ryll-pedantic-{key}-{when}.zip"
        if request.kind == "disconnect":
            channel = request.channel.replace(":", "-")
            return self.directory / f"ryll-disconnect-{channel}-{when}.zip"
        if request.kind == "auto_snapshot":
            return (self.directory / "auto-snapshots" /
                    f"ryll-auto-snapshot-{when}-T+{request.triggered_uptime:.1f}s.zip")
        return self.directory / f"ryll-bugreport-{when}.zip"

    async def write(self, request: ReportRequest) -> Path:
        """Gather on the loop, then build and write the zip in a worker thread. Raises
        OSError when it cannot be written."""
        session = self.session
        now = datetime.now(UTC)
        snapshot = session.snapshot().as_dict()
        state = state_of(session, request.channel)
        ring = self.ring.copy()
        notes = self.notes.as_list()
        shot, region_shot = await self._screenshots(request)
        metadata: dict[str, object] = {
            "ryll_version": __version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "report_type": request.kind,
            "channel": request.channel,
            "description": request.description,
            "region": request.region.as_dict() if request.region is not None else None,
            "timestamp": now.isoformat(),
            "triggered_at": request.triggered_at.isoformat(),
            "session_uptime_secs": round(session.uptime, 3),
            "triggered_uptime_secs": round(request.triggered_uptime, 3),
            "target": session.target.describe(),
            "traffic": ring.summary(),
        }
        if request.gap is not None:
            metadata["gap_key"] = request.gap.key
            metadata["gap_detail"] = request.gap.detail
            metadata["gap_count"] = request.gap.count
            if request.gap.channel_state is not None:
                state = request.gap.channel_state
        path = unique(self.file_for(request))
        window = self.metrics_window_s

        def build() -> Path:
            files: dict[str, bytes] = {
                "metadata.json": _json(metadata),
                "session.json": _json(snapshot),
                "channel-state.json": _json(state),
                "traffic.pcap": ring.pcap(),
                "notifications.json": _json(notes),
                "runtime-metrics.json": _json(metrics.sample(window) if window > 0 else {
                    "available": False, "reason": "not sampled for this report"}),
            }
            if shot is not None:
                files["screenshot.png"] = encode_png(shot)
            if region_shot is not None:
                files["screenshot-region.png"] = encode_png(region_shot)
            if request.cause is not None:
                files["disconnect-cause.json"] = _json(request.cause)
            if request.gap is not None and request.gap.hexdump is not None:
                files["hexdump.txt"] = (request.gap.hexdump + "\n").encode("utf-8")
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".part")
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                for name, data in files.items():
                    # The pcap and PNGs barely compress; storing them saves the time.
                    kind = zipfile.ZIP_STORED if name.endswith((".pcap", ".png")) else (
                        zipfile.ZIP_DEFLATED)
                    zf.writestr(name, data, compress_type=kind)
            tmp.replace(path)
            return path

        try:
            written = await asyncio.to_thread(build)
        except OSError:
            self.failed += 1
            raise
        self.written.append(written)
        log.info("bug report (%s) written: %s", request.kind, written)
        return written

    async def _screenshots(self, request: ReportRequest) -> tuple[Any, Any]:
        display = request.region.display if request.region is not None else request.display
        try:
            grab = await self.session.grab(display)
        except LookupError:
            if request.region is not None:
                raise
            return None, None
        region = None
        if request.region is not None:
            r = request.region
            if r.width <= 0 or r.height <= 0 or r.x < 0 or r.y < 0 or \
                    r.x + r.width > grab.width or r.y + r.height > grab.height:
                raise ValueError(f"the region {r.width}x{r.height}+{r.x}+{r.y} is not within "
                                 f"display {r.display} ({grab.width}x{grab.height})")
            region = grab.pixels[r.y:r.y + r.height, r.x:r.x + r.width].copy()
        return grab.pixels, region


def prune(directory: Path, cap: int, budget: int) -> int:
    """Delete the oldest auto-snapshots until at most ``cap`` files and ``budget`` bytes
    remain, but never the newest (the state just recorded); returns how many were deleted.
    Names sort by time (``stamp``)."""
    files = sorted(directory.glob("ryll-auto-snapshot-*.zip"))
    sizes = {f: f.stat().st_size for f in files}
    total = sum(sizes.values())
    deleted = 0
    while len(files) > 1 and (len(files) > cap or total > budget):
        victim = files.pop(0)
        total -= sizes[victim]
        with contextlib.suppress(FileNotFoundError):
            victim.unlink()
        deleted += 1
    return deleted


@dataclass
class ReportOptions:
    directory: Path = DEFAULT_DIR
    pedantic_dir: Path | None = None  # --pedantic
    disconnect: bool = True
    auto_snapshot_interval: float | None = None
    auto_snapshot_cap: int = AUTO_SNAPSHOT_CAP
    auto_snapshot_budget: int = AUTO_SNAPSHOT_BUDGET
    ring_bytes: int | None = None  # None: the ring's default total
    metrics_window_s: float = metrics.SAMPLE_S


class BugReports(FrontEnd):
    """The traffic ring, the notification log, and every kind of report but manual ones,
    which ``session.reports`` (this front end's Reporter) writes on request."""

    name = "bug reports"
    kinds = (*NotificationLog.KINDS, SessionEnded)

    def __init__(self, options: ReportOptions) -> None:
        self.options = options
        ring_args = {} if options.ring_bytes is None else {"total_bytes": options.ring_bytes}
        self.ring = TrafficRing(**ring_args)
        self.notes = NotificationLog()
        self.reporter: Reporter | None = None
        self._pending: set[asyncio.Task[Path | None]] = set()
        self._last_disconnect = -DISCONNECT_COOLDOWN_S
        self._auto_write: asyncio.Future[Path] | None = None
        self.auto_pruned = 0

    async def start(self, session: Session) -> None:
        self.reporter = Reporter(session, self.options.directory, self.ring, self.notes,
                                 self.options.pedantic_dir, self.options.metrics_window_s)
        session.reports = self.reporter
        session.traffic.add(self.ring)

    def _spawn(self, request: ReportRequest) -> None:
        task = asyncio.ensure_future(self._write(request))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, request: ReportRequest) -> Path | None:
        assert self.reporter is not None
        try:
            return await self.reporter.write(request)
        except (OSError, LookupError) as exc:
            log.warning("bug report (%s) not written: %s", request.kind, exc)
            return None

    async def run(self, session: Session, events: EventStream) -> None:
        auto = None
        if self.options.auto_snapshot_interval is not None:
            auto = asyncio.ensure_future(self._auto(session, self.options.auto_snapshot_interval))
        try:
            async with events:
                async for event in events:
                    self.notes.add(event, session.uptime)
                    if isinstance(event, GapOpened):
                        self._pedantic(session, event)
                    elif isinstance(event, ChannelClosed):
                        self._disconnect(session, event)
        finally:
            if auto is not None:
                auto.cancel()
                await asyncio.gather(auto, return_exceptions=True)

    def _pedantic(self, session: Session, event: GapOpened) -> None:
        if self.options.pedantic_dir is None or self.reporter is None:
            return
        gap = session.ctx.gaps.get(event.key)
        if gap is None:
            return
        if self.reporter.pedantic_written >= MAX_PEDANTIC:
            self.reporter.pedantic_skipped += 1
            if self.reporter.pedantic_skipped == 1:
                log.warning("pedantic: %d reports written, not writing more", MAX_PEDANTIC)
            return
        self.reporter.pedantic_written += 1
        channel = event.key.split(":", 1)[0]
        self._spawn(ReportRequest("pedantic", channel, gap=gap,
                                  triggered_uptime=session.uptime))

    def _disconnect(self, session: Session, event: ChannelClosed) -> None:
        if not self.options.disconnect:
            return
        now = time.monotonic()
        if now - self._last_disconnect < DISCONNECT_COOLDOWN_S:
            log.info("disconnect report for %s skipped (one a minute at most)", event.name)
            return
        self._last_disconnect = now
        channel = f"{event.name}:{event.channel_id}"
        cause = {
            "channel": channel,
            "channel_type": event.channel_type,
            "reason": event.reason,
            "time": datetime.now(UTC).isoformat(),
            "session_uptime_secs": round(session.uptime, 3),
            "server_disconnect_reason": _disconnect_reason(session, event),
            "channels": self.ring.last_traffic(session.uptime),
        }
        self._spawn(ReportRequest("disconnect", channel, cause=cause,
                                  triggered_uptime=session.uptime))

    async def _auto(self, session: Session, interval: float) -> None:
        assert self.reporter is not None
        loop = asyncio.get_running_loop()
        next_at = loop.time() + interval
        while True:
            # A fixed cadence: a report that took longer than the interval (the metrics
            # sample alone is 2 s) is followed by the next one at once.
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at = max(next_at + interval, loop.time())
            if not session.established:
                continue
            request = ReportRequest("auto_snapshot", "all", triggered_uptime=session.uptime)
            # A task of its own: when the session ends meanwhile, this loop is cancelled but
            # the write finishes, and stop() prunes after it.
            self._auto_write = asyncio.ensure_future(self.reporter.write(request))
            try:
                await asyncio.shield(self._auto_write)
            except (OSError, LookupError) as exc:
                log.warning("auto-snapshot not written: %s", exc)
                continue
            await self._prune()

    async def _prune(self) -> None:
        self.auto_pruned += await asyncio.to_thread(
            prune, self.options.directory / "auto-snapshots", self.options.auto_snapshot_cap,
            self.options.auto_snapshot_budget)

    async def stop(self, session: Session, end: SessionEnd) -> None:
        waiting: set[asyncio.Future[Any]] = set(self._pending)
        if self._auto_write is not None:
            waiting.add(self._auto_write)
        if waiting:
            await asyncio.wait(waiting, timeout=FINISH_TIMEOUT_S)
        if self._auto_write is not None:
            if self._auto_write.done() and not self._auto_write.cancelled():
                self._auto_write.exception()  # retrieved: a failure was logged, or is moot
            await self._prune()  # the last snapshot may have landed after the loop's prune
        session.traffic.remove(self.ring)


def _disconnect_reason(session: Session, event: ChannelClosed) -> int | None:
    channel = session.channel(event.channel_type, event.channel_id)
    return getattr(channel, "disconnect_reason", None)


def region_from(params: dict[str, Any]) -> Region | None:
    """A Region from ``x``/``y``/``width``/``height``/``display`` parameters, or None."""
    if params.get("x") is None:
        return None
    return Region(int(params.get("display") or 0), int(params["x"]), int(params["y"]),
                  int(params["width"]), int(params["height"]))
