"""Headless mode: run a session without a window, print a stats line every interval, and at the
end the gap keys seen; optionally the summary JSON and --pedantic reports."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ryll.channels.context import ChannelContext, DisplayOptions
from ryll.cli.inputs import cadence, paste_text
from ryll.cli.pedantic import PedanticReporter
from ryll.cli.screenshot import write_screenshots
from ryll.cli.summary import build_summary, write_summary
from ryll.control.server import ControlServer
from ryll.session.latency import LatencyCSV
from ryll.session.session import Session, SessionEnd
from ryll.session.target import Target

STATS_INTERVAL_S = 10.0


@dataclass
class HeadlessOptions:
    duration: float | None = None
    summary_json: Path | None = None
    pedantic_dir: Path | None = None
    stats_interval: float = STATS_INTERVAL_S
    display: DisplayOptions | None = None
    screenshot: Path | None = None
    screenshot_cursor: bool = False
    image_cache_bytes: int | None = None
    # --resolution: asked of the guest agent once it is connected.
    resolution: tuple[int, int] | None = None
    paste_text: str | None = None
    paste_char_delay_ms: float = 16
    cadence: bool = False
    latency_file: Path | None = None
    control_socket: Path | None = None


def stats_line(session: Session) -> str:
    bytes_in, bytes_out = session.totals()
    marks = sum(d.marks for d in session.display_channels())
    msgs = sum(i.channel.stats.messages_in for i in session.channels.values())
    return (
        f"ryll: t={session.uptime:.0f}s channels={len(session.channels)} marks={marks} "
        f"messages={msgs} in={bytes_in}B out={bytes_out}B Gaps: {len(session.ctx.gaps)}"
    )


async def run_headless(
    target: Target, opts: HeadlessOptions, out: TextIO = sys.stdout
) -> SessionEnd:
    ctx = ChannelContext(display=opts.display or DisplayOptions())
    if opts.image_cache_bytes is not None:
        ctx.display_shared.images.max_bytes = opts.image_cache_bytes
    session = Session(target, ctx)
    if opts.resolution is not None:
        session.agent.request_resolution(*opts.resolution)
    if opts.pedantic_dir is not None:
        ctx.gaps.add_observer(PedanticReporter(opts.pedantic_dir, target.describe(),
                                               lambda: session.uptime))
    # --control-socket: up before connecting (a path it cannot use is a usage error, and a
    # script may connect early and wait); removed however the run ends.
    control = ControlServer(session, opts.control_socket) if opts.control_socket else None
    if control is not None:
        await control.start()
    try:
        await session.connect()  # link errors propagate: nothing ran, nothing to summarise
    except BaseException:
        if control is not None:
            await control.stop()
        raise
    print(f"ryll: connected to {target.host}:{target.port or target.tls_port}", file=out,
          flush=True)

    loop = asyncio.get_running_loop()
    for sig, why in ((signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, session.stop, why)
    timers: list[asyncio.TimerHandle] = []
    if opts.duration is not None:
        timers.append(loop.call_later(opts.duration, session.stop, "duration elapsed"))

    async def ticker() -> None:
        while True:
            await asyncio.sleep(opts.stats_interval)
            print(stats_line(session), file=out, flush=True)

    tick = asyncio.ensure_future(ticker())
    drivers = input_drivers(session, opts, out)
    try:
        end = await session.wait()
    finally:
        if control is not None:
            await control.stop(session.end)  # pushes session_ended first
        tick.cancel()
        for task in drivers:
            task.cancel()
        await asyncio.gather(*drivers, return_exceptions=True)
        for t in timers:
            t.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    report_end(session, end, opts, out)
    return end


def input_drivers(session: Session, opts: HeadlessOptions, out: TextIO) -> list[asyncio.Task[None]]:
    """Start --paste-text and --cadence; --latency-file records every latency sample."""
    tasks: list[asyncio.Task[None]] = []
    if opts.latency_file is not None:
        writer = LatencyCSV(str(opts.latency_file))
        session.latency.add_observer(writer)
        tasks.append(asyncio.ensure_future(_close_when_cancelled(writer.close)))
    if opts.paste_text is not None:
        tasks.append(asyncio.ensure_future(
            paste_text(session, opts.paste_text, opts.paste_char_delay_ms, out)))
    if opts.cadence:
        tasks.append(asyncio.ensure_future(cadence(session)))
    for task in tasks:
        task.add_done_callback(_report_failure)
    return tasks


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger("ryll.input").error("input: %s", task.exception())


async def _close_when_cancelled(close: Callable[[], None]) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        close()


def agent_line(session: Session) -> str:
    agent = session.agent
    if not agent.connected:
        return "ryll: agent: not connected"
    caps = agent.as_dict().get("caps") or []
    assert isinstance(caps, list)
    return f"ryll: agent: connected (caps: {' '.join(caps) or 'none yet'})"


def report_end(session: Session, end: SessionEnd, opts: HeadlessOptions, out: TextIO) -> None:
    print(stats_line(session), file=out)
    gaps = session.ctx.gaps.counts()
    print(f"ryll: session ended ({end.reason}): {end.message}", file=out)
    print(agent_line(session), file=out)
    print(f"ryll: gaps seen: {len(gaps)}", file=out)
    for key, count in gaps.items():
        print(f"  {key} x{count}", file=out)
    out.flush()
    if opts.screenshot is not None:
        for path in write_screenshots(session, opts.screenshot, opts.screenshot_cursor):
            print(f"ryll: screenshot {path}", file=out)
    if opts.summary_json is not None:
        write_summary(opts.summary_json, build_summary(session, end))
