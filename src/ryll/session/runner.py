"""The runner: one session and the front ends the options ask for.

A front end is anything that watches or drives a session from outside: the headless stats
and end report, ``--summary-json``, ``--screenshot``, ``--pedantic``, ``--latency-file``,
``--paste-text``, ``--cadence``, the control socket (and next the web viewer). Each one is a
:class:`FrontEnd`; the runner gives each its own event subscription (taken before the session
connects, so nothing is missed), runs them side by side, and lets each finish in order once
the session has ended. A new front end plugs in by being added to the list the CLI builds;
no other front end changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence

from ryll.channels.events import Event, SessionEnded
from ryll.session.bus import EventStream
from ryll.session.session import Session, SessionEnd

log = logging.getLogger("ryll.runner")

# How long a front end may take to read the rest of its events after the session ended.
DRAIN_TIMEOUT_S = 5.0


# The signals that end a session cleanly (the summary written, the control socket removed).
STOP_SIGNALS = ((signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated"),
                (signal.SIGHUP, "hung up"))


class FrontEnd:
    """Override what you need. ``start`` runs before connecting (a front end that cannot
    start, e.g. a control socket path in use, raises a UsageError and nothing connects);
    ``run`` consumes the front end's events until the session ends; ``stop`` runs after the
    end, front ends in the order they were given (reports before files)."""

    name = "front end"
    # The event classes this front end reads (its subscription's filter); SessionEnded always
    # arrives, so the default reads nothing else.
    kinds: tuple[type[Event], ...] = (SessionEnded,)

    async def start(self, session: Session) -> None:
        """Before the session connects."""

    async def run(self, session: Session, events: EventStream) -> None:
        """While the session runs; return (or be cancelled) when it ends."""
        async for _ in events:
            pass

    async def stop(self, session: Session, end: SessionEnd | None) -> None:
        """After the session ended (``end`` is None when it never connected)."""


async def run_session(session: Session, front_ends: Sequence[FrontEnd],
                      duration: float | None = None) -> SessionEnd:
    """Start the front ends, connect, run until the session ends (the server, ``duration``,
    SIGINT/SIGTERM/SIGHUP or ``session.stop()``), then stop the front ends. Link errors propagate
    (after every started front end has been stopped)."""
    started: list[FrontEnd] = []
    streams: list[EventStream] = []
    try:
        for fe in front_ends:
            await fe.start(session)
            started.append(fe)
        streams = [session.events(*fe.kinds) for fe in started]
        await session.connect()
    except BaseException:
        for stream in streams:
            stream.close()
        for fe in reversed(started):
            with contextlib.suppress(Exception):
                await fe.stop(session, None)
        raise
    loop = asyncio.get_running_loop()
    for sig, why in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, session.stop, why)
    timer = loop.call_later(duration, session.stop, "duration elapsed") if duration else None
    tasks = [asyncio.ensure_future(_guarded(fe, session, stream))
             for fe, stream in zip(started, streams, strict=True)]
    try:
        end = await session.wait()
    finally:
        if timer is not None:
            timer.cancel()
        for sig, _ in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        # Each front end reads to SessionEnded; one that does not finish is cancelled.
        _, pending = await asyncio.wait(tasks, timeout=DRAIN_TIMEOUT_S) if tasks else ((), ())
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for stream in streams:
            stream.close()
    for fe in started:
        try:
            await fe.stop(session, end)
        except Exception:  # one front end's failure must not lose the others' results
            log.exception("%s: failed at the end of the session", fe.name)
    return end


async def _guarded(fe: FrontEnd, session: Session, events: EventStream) -> None:
    try:
        await fe.run(session, events)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s failed; the session carries on without it", fe.name)
