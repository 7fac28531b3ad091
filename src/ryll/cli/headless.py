"""Headless mode: the CLI's front ends and the options that pick them.

Each front end is a :class:`~ryll.session.runner.FrontEnd` and reads only events, the
snapshot and grabs: the stats line every interval and the end-of-session report
(:class:`Report`), ``--summary-json``, ``--screenshot``, the bug reports, ``--latency-file``,
``--paste-text``, ``--cadence``, ``--resolution`` and the control socket.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ryll.channels.context import AudioOptions, ChannelContext, DisplayOptions
from ryll.channels.events import LatencyMeasured
from ryll.cli.audio import AudioOut
from ryll.cli.inputs import Cadence, Paste
from ryll.cli.ports import PortForward, PortForwarder
from ryll.cli.screenshot import Screenshots
from ryll.cli.summary import Summary
from ryll.diagnostics.capture import Capture
from ryll.diagnostics.reports import BugReports, ReportOptions
from ryll.session.bus import EventStream
from ryll.session.record import AudioSource
from ryll.session.runner import FrontEnd, run_session
from ryll.session.session import Session, SessionEnd
from ryll.session.target import Target
from ryll.viewer.options import WebOptions

STATS_INTERVAL_S = 10.0


@dataclass
class HeadlessOptions:
    duration: float | None = None
    summary_json: Path | None = None
    # Bug reports (diagnostics.reports): --bug-report-dir, --pedantic, --auto-snapshot-*;
    # None: none at all (no traffic ring either).
    reports: ReportOptions | None = None
    stats_interval: float = STATS_INTERVAL_S
    display: DisplayOptions | None = None
    screenshot: Path | None = None
    screenshot_cursor: bool = False
    image_cache_bytes: int | None = None
    # --glz-dictionary-cap-mib: the bound on the GLZ dictionary's decoded pixels.
    glz_dictionary_bytes: int | None = None
    # --max-memory-mib: the session's memory budget (ryll.budget); None keeps the default.
    max_memory_bytes: int | None = None
    # --resolution: asked of the guest agent once it is connected.
    resolution: tuple[int, int] | None = None
    paste_text: str | None = None
    paste_char_delay_ms: float = 16
    cadence: bool = False
    latency_file: Path | None = None
    control_socket: Path | None = None
    # --port NAME=unix:PATH: SPICE ports served on unix sockets (cli.ports).
    ports: tuple[PortForward, ...] = ()
    # --audio-out: what the guest plays, as WAV (cli.audio); --no-opus: AudioOptions.
    audio_out: Path | None = None
    audio: AudioOptions | None = None
    # --audio-in: what the guest's microphone hears (session.record); None: silence.
    audio_in: AudioSource | None = None
    # --reconnect: link again when the server drops the session (session.reconnect).
    reconnect: bool = False
    # --capture: pcaps, metadata.json and the display video (diagnostics.capture).
    capture_dir: Path | None = None
    # --web, or no --headless: the browser viewer (viewer.server).
    web: WebOptions | None = None


def stats_line(session: Session) -> str:
    snap = session.snapshot()
    msgs = sum(c.messages_in for c in snap.channels)
    return (
        f"ryll: t={snap.uptime_s:.0f}s channels={len(snap.channels)} marks={snap.marks} "
        f"messages={msgs} in={snap.bytes_in}B out={snap.bytes_out}B Gaps: {len(snap.gaps)}"
    )


def agent_line(session: Session) -> str:
    agent = session.snapshot().agent
    if not agent.get("connected"):
        return "ryll: agent: not connected"
    caps = agent.get("caps") or []
    assert isinstance(caps, list)
    return f"ryll: agent: connected (caps: {' '.join(caps) or 'none yet'})"


class Report(FrontEnd):
    """The connected line, a stats line every ``interval`` s, and the end-of-session report."""

    name = "headless report"

    def __init__(self, out: TextIO, interval: float) -> None:
        self.out = out
        self.interval = interval

    async def run(self, session: Session, events: EventStream) -> None:
        target = session.target
        print(f"ryll: connected to {target.host}:{target.port or target.tls_port}",
              file=self.out, flush=True)
        async with events:
            while True:
                try:
                    await asyncio.wait_for(events.get(), self.interval)
                except TimeoutError:
                    print(stats_line(session), file=self.out, flush=True)
                except StopAsyncIteration:
                    return

    async def stop(self, session: Session, end: SessionEnd) -> None:
        if not session.ever_connected:
            return  # the CLI prints the one line that says why
        out = self.out
        print(stats_line(session), file=out)
        gaps = session.snapshot().gaps
        print(f"ryll: session ended ({end.reason}): {end.message}", file=out)
        print(agent_line(session), file=out)
        print(f"ryll: gaps seen: {len(gaps)}", file=out)
        for key, count in gaps.items():
            print(f"  {key} x{count}", file=out)
        out.flush()


class Resolution(FrontEnd):
    """``--resolution``: asked of the agent now, and again whenever one connects."""

    name = "--resolution"

    def __init__(self, width: int, height: int) -> None:
        self.size = (width, height)

    async def start(self, session: Session) -> None:
        session.agent.request_resolution(*self.size)


class LatencyFile(FrontEnd):
    """``--latency-file``: one ``time,latency_ms`` CSV line per sample, flushed as written."""

    name = "--latency-file"
    kinds = (LatencyMeasured,)

    def __init__(self, path: Path) -> None:
        self.path = path

    async def run(self, session: Session, events: EventStream) -> None:
        with open(self.path, "w", encoding="utf-8") as f:
            f.write("time,latency_ms\n")
            f.flush()
            async for event in events:
                if isinstance(event, LatencyMeasured):
                    f.write(f"{event.at:.3f},{event.latency_ms:.3f}\n")
                    f.flush()


def front_ends(opts: HeadlessOptions, out: TextIO) -> list[FrontEnd]:
    """The front ends these options ask for, in the order they finish."""
    from ryll.control.server import ControlServer

    chosen: list[FrontEnd] = []
    if opts.control_socket is not None:
        chosen.append(ControlServer(opts.control_socket))
    chosen += [PortForwarder(forward) for forward in opts.ports]
    if opts.audio_out is not None:
        chosen.append(AudioOut(opts.audio_out))
    if opts.web is not None:
        from ryll.viewer.server import Viewer

        chosen.append(Viewer(opts.web, out))
    if opts.capture_dir is not None:
        chosen.append(Capture(opts.capture_dir))
    chosen.append(Report(out, opts.stats_interval))
    if opts.resolution is not None:
        chosen.append(Resolution(*opts.resolution))
    if opts.reports is not None:
        chosen.append(BugReports(opts.reports))
    if opts.latency_file is not None:
        chosen.append(LatencyFile(opts.latency_file))
    if opts.paste_text is not None:
        chosen.append(Paste(opts.paste_text, opts.paste_char_delay_ms, out))
    if opts.cadence:
        chosen.append(Cadence())
    if opts.screenshot is not None:
        chosen.append(Screenshots(opts.screenshot, opts.screenshot_cursor, out))
    if opts.summary_json is not None:
        chosen.append(Summary(opts.summary_json))
    return chosen


async def run_headless(
    target: Target, opts: HeadlessOptions, out: TextIO = sys.stdout
) -> SessionEnd:
    ctx = ChannelContext(display=opts.display or DisplayOptions(),
                         audio=opts.audio or AudioOptions())
    if opts.image_cache_bytes is not None:
        ctx.display_shared.images.max_bytes = opts.image_cache_bytes
    if opts.glz_dictionary_bytes is not None:
        ctx.display_shared.glz_max_bytes = opts.glz_dictionary_bytes
    if opts.max_memory_bytes is not None:
        ctx.memory.limit = opts.max_memory_bytes
    session = Session(target, ctx, reconnect=opts.reconnect)
    if opts.audio_in is not None:
        session.record.source = opts.audio_in
    return await run_session(session, front_ends(opts, out), opts.duration)
