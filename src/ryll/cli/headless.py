"""Headless mode: run a session without a window, print a stats line every interval, and at the
end the gap keys seen; optionally the summary JSON and --pedantic reports."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ryll.channels.context import ChannelContext, DisplayOptions
from ryll.cli.pedantic import PedanticReporter
from ryll.cli.screenshot import write_screenshots
from ryll.cli.summary import build_summary, write_summary
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
    image_cache_bytes: int | None = None


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
    if opts.pedantic_dir is not None:
        ctx.gaps.add_observer(PedanticReporter(opts.pedantic_dir, target.describe(),
                                               lambda: session.uptime))
    await session.connect()  # link errors propagate: nothing ran, nothing to summarise
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
    try:
        end = await session.wait()
    finally:
        tick.cancel()
        for t in timers:
            t.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    report_end(session, end, opts, out)
    return end


def report_end(session: Session, end: SessionEnd, opts: HeadlessOptions, out: TextIO) -> None:
    print(stats_line(session), file=out)
    gaps = session.ctx.gaps.counts()
    print(f"ryll: session ended ({end.reason}): {end.message}", file=out)
    print(f"ryll: gaps seen: {len(gaps)}", file=out)
    for key, count in gaps.items():
        print(f"  {key} x{count}", file=out)
    out.flush()
    if opts.screenshot is not None:
        for path in write_screenshots(session, opts.screenshot):
            print(f"ryll: screenshot {path}", file=out)
    if opts.summary_json is not None:
        write_summary(opts.summary_json, build_summary(session, end))
