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
from ryll.errors import RyllError, StoppedError
from ryll.session.bus import EventStream
from ryll.session.session import Session, SessionEnd

log = logging.getLogger("ryll.runner")

# How long a front end may take to read the rest of its events after the session ended.
DRAIN_TIMEOUT_S = 5.0


# The signals that end a session cleanly (the summary written, the control socket removed).
STOP_SIGNALS = ((signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated"),
                (signal.SIGHUP, "hung up"))


# How long the end of a --duration may wait for front ends that still need something (the
# first picture for --screenshot): bounded, so a server that never draws cannot hold ryll.
READY_TIMEOUT_S = 10.0


class FrontEnd:
    """Override what you need. ``start`` runs before connecting (a front end that cannot
    start, e.g. a control socket path in use, raises a UsageError and nothing connects);
    ``run`` consumes the front end's events until the session ends; ``ready_to_end`` is
    awaited (bounded by READY_TIMEOUT_S) when ``--duration`` runs out, before the session is
    stopped; ``stop`` runs after the end, front ends in the order they were given (reports
    before files), also when the session never connected. A front end that could not produce
    what it was asked for sets ``failure``: the run's exit code says so."""

    name = "front end"
    # The event classes this front end reads (its subscription's filter); SessionEnded always
    # arrives, so the default reads nothing else.
    kinds: tuple[type[Event], ...] = (SessionEnded,)
    failure: RyllError | None = None

    async def start(self, session: Session) -> None:
        """Before the session connects."""

    async def run(self, session: Session, events: EventStream) -> None:
        """While the session runs; return (or be cancelled) when it ends."""
        async for _ in events:
            pass

    async def ready_to_end(self, session: Session) -> None:
        """The duration is over: return once this front end has what it needs."""

    async def stop(self, session: Session, end: SessionEnd) -> None:
        """After the session ended (``session.established`` says whether it ever connected
        fully; ``end.error`` why it ended)."""


def _install_signals(session: Session) -> list[int]:
    loop = asyncio.get_running_loop()
    installed: list[int] = []
    for sig, why in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, session.stop, why)
            installed.append(sig)
    return installed


def _remove_signals(installed: list[int]) -> None:
    loop = asyncio.get_running_loop()
    for sig in installed:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(sig)


async def _end_after(session: Session, front_ends: Sequence[FrontEnd], duration: float) -> None:
    """``--duration``: wait, let the front ends finish what they need (bounded), stop."""
    await asyncio.sleep(duration)
    waits = [asyncio.ensure_future(fe.ready_to_end(session)) for fe in front_ends]
    if waits:
        _, pending = await asyncio.wait(waits, timeout=READY_TIMEOUT_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    session.stop("duration elapsed")


class FrontEnds:
    """Front ends around one session, for whoever drives it (``run_session``, ``ryll.connect``):
    ``start`` them (and subscribe each) before connecting, ``launch`` their ``run`` once
    connected, and ``finish`` after the session ended: their runs drain (bounded), each one
    stops in order, and the end carries the first front end's failure."""

    def __init__(self, session: Session, front_ends: Sequence[FrontEnd]) -> None:
        self.session = session
        self.front_ends = front_ends
        self.started: list[FrontEnd] = []
        self.streams: list[EventStream] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start each front end; raises the first one's error (those started stay started,
        for ``finish``)."""
        for fe in self.front_ends:
            await fe.start(self.session)
            self.started.append(fe)
        self.streams = [self.session.events(*fe.kinds) for fe in self.started]

    def launch(self) -> None:
        self.tasks = [asyncio.ensure_future(_guarded(fe, self.session, stream))
                      for fe, stream in zip(self.started, self.streams, strict=True)]

    async def finish(self, end: SessionEnd) -> SessionEnd:
        # Each front end reads to SessionEnded; one that does not finish is cancelled.
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=DRAIN_TIMEOUT_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        for stream in self.streams:
            stream.close()
        for fe in self.started:
            try:
                await fe.stop(self.session, end)
            except Exception:  # one front end's failure must not lose the others' results
                log.exception("%s: failed at the end of the session", fe.name)
        if end.error is not None:
            return end
        for fe in self.started:
            if fe.failure is not None:
                return SessionEnd(end.reason, end.message, fe.failure)
        return end


async def run_session(session: Session, front_ends: Sequence[FrontEnd],
                      duration: float | None = None) -> SessionEnd:
    """Start the front ends, connect, run until the session ends (the server, ``duration``,
    SIGINT/SIGTERM/SIGHUP, at any moment, or ``session.stop()``), then stop the front ends.
    A failed connect (or a stop while connecting) is the returned end's error, after every
    started front end has been stopped with it (so the summary says why)."""
    fes = FrontEnds(session, front_ends)
    installed = _install_signals(session)
    timer = None
    try:
        await fes.start()
        if duration:
            timer = asyncio.ensure_future(_end_after(session, fes.started, duration))
        await session.connect()
    except RyllError as exc:
        _remove_signals(installed)
        if timer is not None:
            timer.cancel()
        reason = "stopped" if isinstance(exc, StoppedError) else "error"
        end = SessionEnd(reason, str(exc), exc)
        session.end = end
        return await fes.finish(end)
    except BaseException:
        _remove_signals(installed)
        if timer is not None:
            timer.cancel()
        for stream in fes.streams:
            stream.close()
        raise
    fes.launch()
    try:
        end = await session.wait()
    except BaseException:
        for task in fes.tasks:
            task.cancel()
        raise
    finally:
        if timer is not None:
            timer.cancel()
        _remove_signals(installed)
    return await fes.finish(end)


async def _guarded(fe: FrontEnd, session: Session, events: EventStream) -> None:
    try:
        await fe.run(session, events)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s failed; the session carries on without it", fe.name)
