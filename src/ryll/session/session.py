"""One SPICE session: the main channel, then one connection per listed channel, each with its
own asyncio task, all sharing a ``ChannelContext`` (gaps, session state, options).

A channel task reads bytes, lets the sans-IO handler frame and handle them one message at a
time (passing it the time), and writes the handler's replies right after each message, so a
PING is answered before the next message is even looked at. Display work goes through
``RenderWork`` (one at a time, big messages in a worker thread). Any channel that fails
(closed, reset, protocol error) ends the session with that error; ``stop()`` ends it cleanly.

What front ends get from a session, and nothing else:

- ``session.events(*kinds)``: every event (channels.events), per subscriber, bounded;
- ``session.snapshot()``: one typed snapshot of everything (session.snapshot);
- ``await session.grab(display, rect)``: a consistent copy of a monitor's pixels;
- ``session.input`` and ``session.agent``: what to send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ryll.channels.base import Channel
from ryll.channels.context import ChannelContext
from ryll.channels.cursor import CursorChannel
from ryll.channels.display import DisplayChannel
from ryll.channels.events import (
    ChannelClosed,
    ChannelLinked,
    ChannelsListed,
    DisplayUpdated,
    Event,
    GapOpened,
    PortOpened,
    PortReady,
    Reconnected,
    Reconnecting,
    RecordStarted,
    RecordStopped,
    SessionEnded,
    SessionEstablished,
    WaitRequested,
)
from ryll.channels.inputs import InputsChannel
from ryll.channels.main import MainChannel
from ryll.channels.playback import PlaybackChannel
from ryll.channels.port import PortChannel
from ryll.channels.record import RecordChannel
from ryll.errors import LinkError, ProtocolError, RyllError, ServerClosedError, StoppedError
from ryll.protocol.constants import ChannelType, LinkResult
from ryll.protocol.link import NeedSecured
from ryll.protocol.messages.draw import Rect
from ryll.protocol.names import channel_name
from ryll.session.agent import AgentClient
from ryll.session.bus import DEFAULT_QUEUE, EventBus, EventStream
from ryll.session.connection import LinkedChannel, LinkObserver, link_channel
from ryll.session.input import InputController
from ryll.session.latency import LatencyTracker
from ryll.session.ports import PortHub
from ryll.session.reconnect import Attempt, ReconnectLog
from ryll.session.record import RecordPacer
from ryll.session.render_work import OFFLOAD_BYTES, RenderWork
from ryll.session.screens import Grab, grab_monitor, monitors, surface_monitors
from ryll.session.snapshot import SessionSnapshot, take_snapshot
from ryll.session.target import Target
from ryll.session.traffic import ChannelKey, Traffic

if TYPE_CHECKING:
    from ryll.diagnostics.reports import Reporter

log = logging.getLogger("ryll.session")

CHANNEL_CLASSES: dict[int, type[Channel]] = {
    ChannelType.MAIN: MainChannel,
    ChannelType.DISPLAY: DisplayChannel,
    ChannelType.INPUTS: InputsChannel,
    ChannelType.CURSOR: CursorChannel,
    ChannelType.PLAYBACK: PlaybackChannel,
    ChannelType.RECORD: RecordChannel,
    ChannelType.PORT: PortChannel,
}
READ_CHUNK = 256 * 1024
# How long WAIT_FOR_CHANNELS may hold a channel. spice-gtk waits forever; a bounded wait turns a
# server bug (or a channel we never linked) into a named gap instead of a frozen display.
WAIT_FOR_CHANNELS_TIMEOUT_S = 10.0
# Channels one session links at most: a CHANNELS_LIST can list at most 1024 (protocol layer);
# QEMU lists about 4-10. Beyond this we stop linking and register a gap.
MAX_LINKED_CHANNELS = 64


@dataclass
class LinkedInfo:
    channel: Channel
    tls: bool
    linked_at: float


@dataclass
class SessionEnd:
    reason: str  # "stopped", "server_closed", "error"
    message: str
    error: RyllError | None = None

    @property
    def exit_code(self) -> int:
        return self.error.exit_code if self.error is not None else 0


@dataclass
class Session:
    target: Target
    ctx: ChannelContext = field(default_factory=ChannelContext)
    # Link again when the server drops the session (session.reconnect; --reconnect).
    reconnect: bool = False

    def __post_init__(self) -> None:
        self.reconnects = ReconnectLog(enabled=self.reconnect, single_use=self.target.single_use)
        self._stop_requested: SessionEnd | None = None
        self._stop_event = asyncio.Event()
        # Between a drop and the next attempt's link (--reconnect).
        self.reconnecting = False
        # The main channel linked at least once (a failed connect leaves this False).
        self.ever_connected = False
        self._attempt: Attempt | None = None  # the reconnect attempt now linking
        self.channels: dict[tuple[int, int], LinkedInfo] = {}
        self.started_at = time.time()
        self._started_mono = time.monotonic()
        self.end: SessionEnd | None = None
        # Main linked and every listed channel ryll speaks linked (SessionEstablished).
        self.established = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._writer_of: dict[int, asyncio.StreamWriter] = {}  # id(channel) -> its writer
        self._key_of: dict[int, ChannelKey] = {}  # id(channel) -> its traffic key
        self._done: asyncio.Future[SessionEnd] | None = None
        self._progress = asyncio.Event()
        self._waiters = 0
        self._bus = EventBus()
        self.render = RenderWork()
        # Whoever records the raw traffic (--capture, the bug reports' ring): session.traffic.
        self.traffic = Traffic()
        # What writes bug reports on request (the control verb, vm.bug_report()), when a
        # diagnostics.reports.BugReports front end runs.
        self.reports: Reporter | None = None
        # The guest agent (clipboard, resolution): see session/agent.py.
        self.agent = AgentClient(self)
        # Input-to-display latency: keys from session.input, updates from DisplayUpdated.
        self.latency = LatencyTracker()
        # SPICE ports (QEMU's monitor, guest serial ports): who holds each (session/ports.py).
        self.ports = PortHub(self)
        # What the guest's microphone hears, paced in real time (session/record.py).
        self.record = RecordPacer(self)
        self._input: InputController | None = None

    @property
    def input(self) -> InputController:
        """Keys, text and pointer for this session (created on first use)."""
        if self._input is None:
            self._input = InputController(self)
        return self._input

    @property
    def uptime(self) -> float:
        return time.monotonic() - self._started_mono

    # --- what front ends use --------------------------------------------------------------

    def events(self, *kinds: type[Event], maxsize: int = DEFAULT_QUEUE) -> EventStream:
        """Subscribe to the session's events (all, or only instances of ``kinds``). Subscribe
        before ``connect()`` to see every event; the stream ends after SessionEnded."""
        return self._bus.subscribe(*kinds, maxsize=maxsize)

    def publish(self, event: Event) -> None:
        """Hand an event to every subscriber (the session's parts use this; call it on the
        event loop's thread)."""
        self._bus.publish(event)

    def snapshot(self) -> SessionSnapshot:
        """Everything about the session now, as one frozen, JSON-able value."""
        return take_snapshot(self)

    async def grab(self, display: int = 0, rect: Rect | None = None,
                   with_cursor: bool = False, rgba: bool = False) -> Grab:
        """A copy of monitor ``display``'s pixels (the whole surface, or ``rect`` of it), taken
        between two display messages so it never shows a draw half done. Never blocks the
        event loop: while a decode runs in the render worker, the copy waits its turn there.
        RGB, or RGBA when the surface has alpha; ``rgba``: RGBA always (alpha 255 where the
        surface has none). Raises LookupError when there is no such monitor."""
        screens = monitors(self)
        if not 0 <= display < len(screens):
            raise LookupError(f"no display {display} (displays: {len(screens)})")
        monitor = screens[display]
        return await self.render.run(grab_monitor, monitor, rect, with_cursor, rgba)

    def display_size(self, display: int = 0) -> tuple[int, int] | None:
        """(width, height) of monitor ``display``, or None when there is no such monitor."""
        screens = monitors(self)
        if not 0 <= display < len(screens):
            return None
        return screens[display].surface.width, screens[display].surface.height

    async def grab_surface(self, surface_id: int, channel_id: int | None = None,
                           with_cursor: bool = False) -> Grab:
        """A copy of one surface's pixels, as ``grab`` takes it: ``surface_id`` of display
        channel ``channel_id`` (default: the lowest-numbered display channel that has it).
        Raises LookupError when there is no such surface."""
        for monitor in surface_monitors(self, surface_id, channel_id):
            return await self.render.run(grab_monitor, monitor, None, with_cursor)
        where = "" if channel_id is None else f" on display channel {channel_id}"
        raise LookupError(f"no surface {surface_id}{where}")

    # --- lifecycle ------------------------------------------------------------------------

    async def connect(self) -> None:
        """Link the main channel; raises the link's error (auth, TLS, connect) directly, and
        StoppedError when ``stop()`` comes first (a signal while connecting)."""
        self._done = asyncio.get_running_loop().create_future()
        if self._stop_requested is not None:
            raise StoppedError(f"stopped before connecting ({self._stop_requested.message})")
        link = asyncio.ensure_future(self._link(ChannelType.MAIN, 0, connection_id=0))
        stop = asyncio.ensure_future(self._stop_event.wait())
        try:
            await asyncio.wait({link, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not link.done():
                link.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await link
        if link.cancelled():
            assert self._stop_requested is not None
            await self._close_all()
            raise StoppedError(f"stopped while connecting ({self._stop_requested.message})")
        link.result()

    async def wait(self) -> SessionEnd:
        assert self._done is not None, "connect() first"
        try:
            end = await self._done
            while True:
                await self._close_all()
                outcome = await self._reconnect(end)
                if isinstance(outcome, SessionEnd):
                    end = outcome
                    break
                end = await outcome
        finally:
            await self._close_all()
            self.ports.connection_lost(forget=False)
        self.end = end
        self._drain_gaps()
        self.publish(SessionEnded(end.reason, end.message, end.exit_code))
        return end

    async def run(self) -> SessionEnd:
        await self.connect()
        return await self.wait()

    def stop(self, message: str = "stopped") -> None:
        end = SessionEnd("stopped", message)
        if self._stop_requested is None:
            self._stop_requested = end
            self._stop_event.set()
        self._finish(end)

    def _finish(self, end: SessionEnd) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(end)

    async def _reconnect(self, end: SessionEnd) -> SessionEnd | asyncio.Future[SessionEnd]:
        """After ``end``: link again as the reconnect policy says. Returns the new
        connection's end to wait for, or the session's final end: ``end`` itself, the stop
        that came during a wait, or ``end`` with the failed attempts' last error."""
        last: RyllError | None = None
        tried = 0
        for number, delay in enumerate(self.reconnects.delays(end.reason), 1):
            tried = number
            attempt = Attempt(number, delay, end.message)
            self.reconnects.attempts.append(attempt)
            self._new_connection()
            self.reconnecting = True
            log.info("reconnect %d/%d in %.0f s (%s)", number, len(self.reconnects.backoff), delay,
                     end.message)
            self.publish(Reconnecting(number, delay, end.message))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), delay)
            if self._stop_requested is not None:
                self.reconnecting = False
                attempt.error = "stopped before the attempt"
                return self._stop_requested
            self._attempt = attempt
            try:
                await self.connect()
            except RyllError as exc:
                self._attempt = None
                self.reconnecting = number < len(self.reconnects.backoff)
                last = exc
                attempt.at, attempt.error = time.time(), str(exc)
                log.warning("reconnect %d failed: %s", number, exc)
                await self._close_all()
                continue
            # _start_channel marked the attempt good and published Reconnected as main linked.
            assert self._done is not None
            if self._stop_requested is not None:
                self._finish(self._stop_requested)
            return self._done
        if last is not None:
            return SessionEnd(
                end.reason, f"{end.message}; {tried} reconnect attempts failed, the last: {last}",
                last)
        return end

    def _new_connection(self) -> None:
        """Forget the dropped connection's channels and server state (a reconnect)."""
        self.channels = {}
        self._writers = []
        self._writer_of = {}
        self._key_of = {}
        self.established = False
        self.ctx = self.ctx.fresh()
        self.ports.connection_lost()

    async def _close_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
        self.render.close()

    # --- linking --------------------------------------------------------------------------

    def _link_observer(self, key: ChannelKey) -> LinkObserver | None:
        """What hands a link's steps to the traffic sinks (None when nobody records)."""
        if not self.traffic:
            return None
        traffic = self.traffic

        def observe(kind: str, data: bytes) -> None:
            at = self.uptime
            if kind == "open":
                traffic.opened(key, at)
            elif kind == "out":
                traffic.sent(key, data, at)
            else:
                traffic.received(key, data, at)

        return observe

    async def _link(self, channel_type: int, channel_id: int, connection_id: int) -> None:
        cls = CHANNEL_CLASSES[channel_type]
        use_tls = self.target.uses_tls(channel_name(channel_type))
        observe = self._link_observer(ChannelKey(channel_type, channel_id,
                                                 channel_name(channel_type)))
        try:
            linked = await link_channel(
                self.target, use_tls, connection_id, channel_type, channel_id,
                cls.caps_for(self.ctx), observe
            )
        except NeedSecured:
            if self.target.tls_port is None:
                raise LinkError(
                    f"the server requires TLS for the {channel_name(channel_type)} channel "
                    "but no TLS port was given",
                    LinkResult.NEED_SECURED,
                ) from None
            log.info("%s channel: server requires TLS, switching to port %d",
                     channel_name(channel_type), self.target.tls_port)
            linked = await link_channel(
                self.target, True, connection_id, channel_type, channel_id,
                cls.caps_for(self.ctx), observe
            )
        self._start_channel(cls, channel_id, linked)

    def _start_channel(self, cls: type[Channel], channel_id: int, linked: LinkedChannel) -> None:
        channel = cls(channel_id, self.ctx, linked.mini_header)
        if cls.channel_type == ChannelType.MAIN:
            self.ever_connected = True
            if self._attempt is not None:
                # Before the channel's loop runs: Reconnected precedes SessionEstablished.
                self._attempt.at, self._attempt.ok = time.time(), True
                self.reconnecting = False
                self.publish(Reconnected(self._attempt.number))
                self._attempt = None
        channel.server_caps = linked.reply.channel_caps
        channel.server_common_caps = linked.reply.common_caps
        self.channels[(cls.channel_type, channel_id)] = LinkedInfo(channel, linked.tls, time.time())
        self._writers.append(linked.writer)
        self._writer_of[id(channel)] = linked.writer
        self._key_of[id(channel)] = key = ChannelKey(cls.channel_type, channel_id, channel.name)
        if self.traffic:
            self.traffic.linked(key, linked.mini_header, self.uptime)
        log.info("linked %s channel %d%s", channel.name, channel_id, " (TLS)" if linked.tls else "")
        channel.start()
        self._write(channel, linked.writer)
        self.publish(ChannelLinked(cls.channel_type, channel_id, channel.name, linked.tls))
        self._spawn(self._channel_loop(channel, linked.reader, linked.writer))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if isinstance(exc, RyllError):
            reason = "server_closed" if isinstance(exc, ServerClosedError) else "error"
            self._finish(SessionEnd(reason, str(exc), exc))
        else:
            log.error("internal error", exc_info=exc)
            err = ProtocolError(f"internal error: {type(exc).__name__}: {exc}")
            self._finish(SessionEnd("error", str(err), err))

    def flush(self, channel: Channel) -> None:
        """Write what ``channel`` queued outside its own loop (a key press, an agent message).
        Call from the event loop thread; the channel's loop drains the writer."""
        writer = self._writer_of.get(id(channel))
        if writer is not None and not writer.is_closing():
            self._write(channel, writer)

    async def send_now(self, channel: Channel) -> None:
        """Write what ``channel`` queued and wait until the socket has taken it (flow
        control for a producer outside the channel's loop: a port's peer)."""
        writer = self._writer_of.get(id(channel))
        if writer is None or writer.is_closing():
            raise ConnectionResetError(f"the {channel.name} channel is closed")
        self._write(channel, writer)
        await writer.drain()

    def _write(self, channel: Channel, writer: asyncio.StreamWriter) -> None:
        """Write what ``channel`` has queued (and show it to the traffic sinks)."""
        out = channel.data_to_send()
        if out:
            writer.write(out)
            if self.traffic:
                self.traffic.sent(self._key_of[id(channel)], out, self.uptime)

    def channel(self, channel_type: int, channel_id: int = 0) -> Channel | None:
        """The linked channel of that type and id, if any."""
        info = self.channels.get((channel_type, channel_id))
        return info.channel if info is not None else None

    # --- the per-channel loop -------------------------------------------------------------

    async def _channel_loop(
        self, channel: Channel, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            await self._serve(channel, reader, writer)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.publish(ChannelClosed(channel.channel_type, channel.channel_id, channel.name,
                                       str(exc)))
            raise

    async def _serve(
        self, channel: Channel, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        what = f"{channel.name} channel"
        display = isinstance(channel, DisplayChannel)
        port = channel if isinstance(channel, PortChannel) else None
        key = self._key_of[id(channel)]
        while True:
            try:
                data = await reader.read(READ_CHUNK)
            except (ConnectionError, ssl.SSLError, OSError) as exc:
                raise ServerClosedError(f"the server reset the {what}: {exc}") from None
            if not data:
                if channel.disconnect_reason is not None:
                    raise ServerClosedError(
                        f"the server disconnected the {what} (reason {channel.disconnect_reason})"
                    )
                raise ServerClosedError(f"the server closed the {what}")
            if self.traffic:
                self.traffic.received(key, data, self.uptime)
            for message in channel.feed(data):
                now = time.monotonic()
                if display:
                    # Display work is serialised (the channels share caches); a big message
                    # is decoded in the render worker, so this loop stays free for PINGs.
                    events = await self.render.run(channel.handle, message, now,
                                                   big=len(message.body) >= OFFLOAD_BYTES)
                else:
                    events = channel.handle(message, now)
                self._write(channel, writer)
                await self._after(channel, events)
                while isinstance(channel, DisplayChannel) and channel.parked is not None:
                    await self._unpark(channel)
                    self._write(channel, writer)
                if port is not None:
                    await self.ports.deliver(port)
                if self._waiters:
                    self._progress.set()
            try:
                await writer.drain()
            except (ConnectionError, OSError) as exc:
                raise ServerClosedError(f"the server reset the {what}: {exc}") from None

    async def _after(self, channel: Channel, events: list[Event]) -> None:
        """Act on what a channel reported, then publish it: gaps first (they happened during
        the message), then the events in order."""
        self._drain_gaps()
        for event in events:
            await self._on_event(channel, event)

    def _drain_gaps(self) -> None:
        for gap in self.ctx.gaps.take_new():
            self.publish(GapOpened(gap.key, gap.detail, gap.hexdump))

    async def _on_event(self, channel: Channel, event: Event) -> None:
        """Publish one channel event, then act on it (requests: link, wait; latency; the
        agent's asyncio face)."""
        self.publish(event)
        if isinstance(event, ChannelsListed):
            self._link_listed(event)
        elif isinstance(event, WaitRequested):
            await self._wait_for(channel, event)
            channel.wait_over()
            await self._after(channel, channel.take_events())
        elif isinstance(event, DisplayUpdated):
            sample = self.latency.display_updated()
            if sample is not None:
                self.publish(sample)
        elif isinstance(event, PortReady | PortOpened) and isinstance(channel, PortChannel):
            await self.ports.ready(channel)
        elif isinstance(event, RecordStarted) and isinstance(channel, RecordChannel):
            self.record.started(channel)
        elif isinstance(event, RecordStopped):
            self.record.stopped()
        elif isinstance(channel, MainChannel):
            self.agent.handle_event(event)

    async def _unpark(self, channel: DisplayChannel) -> None:
        """A draw of ``channel`` waits for a GLZ image another display channel delivers: wait
        (on the loop, without blocking it) until the image is there or the wait runs out."""
        deadline = channel.parked_deadline()
        assert deadline is not None
        if not await self._wait_until(channel.parked_ready, deadline):
            channel.expire(time.monotonic())
        else:
            await self.render.run(channel.resume, time.monotonic(), big=True)
        await self._after(channel, channel.take_events())

    async def _wait_until(self, ready: Callable[[], bool], deadline: float) -> bool:
        """Re-check ``ready`` after every message any channel handles, until it holds (True)
        or the monotonic ``deadline`` passes (False)."""
        self._waiters += 1
        try:
            while not ready():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._progress.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._progress.wait(), left)
            return True
        finally:
            self._waiters -= 1

    def _link_listed(self, event: ChannelsListed) -> None:
        session_id = self.ctx.state.session_id
        assert session_id is not None  # CHANNELS_LIST only follows INIT, which sets it
        links: list[asyncio.Task[None]] = []
        for cid in event.channels:
            key = (cid.type, cid.id)
            if key in self.channels:
                continue
            if cid.type not in CHANNEL_CLASSES:
                self.ctx.gaps.register(
                    f"main:unlinked_channel:{channel_name(cid.type)}",
                    f"ryll does not speak the {channel_name(cid.type)} channel yet; not linked",
                )
                continue
            if len(self.channels) >= MAX_LINKED_CHANNELS:
                self.ctx.gaps.register("main:channel_cap", "too many channels listed")
                break
            links.append(self._spawn(self._link(cid.type, cid.id, session_id)))
        self._drain_gaps()
        if not self.established:
            self._spawn(self._establish(links))

    async def _establish(self, links: list[asyncio.Task[None]]) -> None:
        """Once every listed channel has linked (or failed to: its error ends the session
        or names a gap), the session is established: SessionEstablished, once."""
        await asyncio.gather(*links, return_exceptions=True)
        if not self.established and self._done is not None and not self._done.done():
            self.established = True
            self.publish(SessionEstablished(len(self.channels)))

    async def _wait_for(self, channel: Channel, event: WaitRequested) -> None:
        """Hold this channel until the named channels have handled the given serials."""

        def pending() -> list[str]:
            out = []
            for w in event.channels:
                info = self.channels.get((w.channel_type, w.channel_id))
                if info is not None and info.channel.last_serial < w.message_serial:
                    out.append(f"{info.channel.name}:{w.channel_id}")
            return out

        deadline = time.monotonic() + WAIT_FOR_CHANNELS_TIMEOUT_S
        if not await self._wait_until(lambda: not pending(), deadline):
            self.ctx.gaps.register(
                f"{channel.name}:wait_for_channels:timeout",
                f"gave up waiting for {', '.join(pending())}",
            )
            self._drain_gaps()

    # --- reporting ------------------------------------------------------------------------

    def display_channels(self) -> list[DisplayChannel]:
        return [
            i.channel for i in self.channels.values() if isinstance(i.channel, DisplayChannel)
        ]

    def cursor_channels(self) -> list[CursorChannel]:
        return sorted((i.channel for i in self.channels.values()
                       if isinstance(i.channel, CursorChannel)), key=lambda c: c.channel_id)

    def totals(self) -> tuple[int, int]:
        bytes_in = sum(i.channel.stats.bytes_in for i in self.channels.values())
        bytes_out = sum(i.channel.stats.bytes_out for i in self.channels.values())
        return bytes_in, bytes_out
