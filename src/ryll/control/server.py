"""The control socket: an asyncio unix-socket server bound to one ``Session``.

It owns the socket file (created mode 0600, never over something that is not a stale socket,
removed at exit), one client at a time (a second one gets a ``busy`` error line and is closed),
the per-client read loop (requests are handled one at a time, in order) and the per-client
write queue. Parsing and encoding are ``protocol``'s; what each command does is ``commands``'.

Slow clients: replies are never dropped, but a client that stops reading stops being read
(at most ``MAX_PENDING_REPLIES`` replies wait, then the next request waits for them to be
written). Events are dropped instead: at most ``MAX_QUEUED_EVENTS`` wait, later ones are
counted and reported in one ``events_dropped`` event once the queue has room. A client whose
socket accepts nothing for ``WRITE_TIMEOUT_S`` while ryll has something to write is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ryll import __version__
from ryll.control import protocol as proto
from ryll.control.commands import Commands
from ryll.control.events import EventTranslator
from ryll.errors import UsageError
from ryll.session.bus import EventStream
from ryll.session.runner import FrontEnd
from ryll.session.session import Session, SessionEnd

log = logging.getLogger("ryll.control")

READ_CHUNK = 64 * 1024
# Events waiting for a slow client before newer ones are dropped: a few seconds of the
# busiest stream (surface_drawn is coalesced to 20 a second per surface) at ~200 bytes each.
MAX_QUEUED_EVENTS = 512
# Replies written out before the next request is read: a client pipelining screenshots without
# reading them holds at most this many (each up to ~45 MiB of base64 for an 8192x4096 RGBA).
MAX_PENDING_REPLIES = 2
# A client that accepts no bytes for this long while ryll has some to write is dropped.
WRITE_TIMEOUT_S = 10.0
# How long stop() gives a client to receive its last lines.
CLOSE_TIMEOUT_S = 1.0
# After too_large: how long (and how much) ryll keeps reading and discarding the rest of the
# client's input so the error line is not lost to a connection reset.
LINGER_S = 1.0
LINGER_BYTES = 16 << 20


class ControlServer(FrontEnd):
    """A front end: ``start`` creates the socket, ``run`` turns the session's events into
    control events, ``stop`` announces the end and removes the socket."""

    name = "--control-socket"
    kinds = ()  # every event: the client picks with subscribe

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.session_end: SessionEnd | None = None
        self.events = EventTranslator(self.publish)
        self._server: asyncio.AbstractServer | None = None
        self._sock_id: tuple[int, int] | None = None
        self._client: ControlClient | None = None
        self._client_tasks: set[asyncio.Task[None]] = set()
        self.clients_served = 0
        self.clients_refused = 0

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, session: Session) -> None:
        """Create the socket and listen. UsageError if the path cannot be used."""
        self.session = session
        self.commands = Commands(session, self)
        sock = create_socket(self.path)
        st = os.stat(self.path)
        self._sock_id = (st.st_dev, st.st_ino)
        self._server = await asyncio.start_unix_server(self._on_connect, sock=sock)
        log.info("control socket listening on %s", self.path)

    async def run(self, session: Session, events: EventStream) -> None:
        async with events:
            async for event in events:
                self.events.translate(event)

    async def stop(self, session: Session | None = None, end: SessionEnd | None = None) -> None:
        """Close the client (after ``session_ended`` when ``end`` is given and was not
        announced yet), stop listening, remove the socket file."""
        if end is not None and self.session_end is None:
            self.session_ended(end)
        self.events.close()
        if self._server is not None:
            self._server.close()
        client = self._client
        if client is not None:
            await client.close(flush=True)
        for task in list(self._client_tasks):
            task.cancel()
        for task in list(self._client_tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), CLOSE_TIMEOUT_S)
            self._server = None
        self._unlink()

    def _unlink(self) -> None:
        """Remove the socket file, but only if it is still ours (same device and inode)."""
        if self._sock_id is None:
            return
        try:
            st = os.lstat(self.path)
            if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == self._sock_id:
                os.unlink(self.path)
        except OSError:
            pass
        self._sock_id = None

    def session_ended(self, end: SessionEnd) -> None:
        """The headless runner's word that the session is over (pushed as ``session_ended``)."""
        self.session_end = end
        self.publish("session_ended", {"reason": end.reason, "message": end.message,
                                       "exit_code": end.exit_code})

    # --- events ---------------------------------------------------------------------------

    def publish(self, name: str, data: Mapping[str, Any]) -> None:
        """Send event ``name`` to the client if it subscribed (on the event loop)."""
        client = self._client
        if client is not None and name in client.subscriptions:
            client.push_event(name, data)

    # --- clients --------------------------------------------------------------------------

    async def _on_connect(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._client_tasks.add(task)
        try:
            if self._client is not None:
                self.clients_refused += 1
                await _refuse(writer)
                return
            client = ControlClient(self, reader, writer)
            self._client = client
            self.clients_served += 1
            try:
                await client.run()
            finally:
                self._client = None
                self.events.wanted = set()
        finally:
            if task is not None:
                self._client_tasks.discard(task)


async def _refuse(writer: asyncio.StreamWriter) -> None:
    line = proto.encode(proto.error(proto.ErrorCode.BUSY,
                                    "another client is connected to this control socket"))
    with contextlib.suppress(Exception):
        writer.write(line)
        await asyncio.wait_for(writer.drain(), CLOSE_TIMEOUT_S)
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT_S)


class ControlClient:
    """One connected client: its subscriptions, its read loop and its write queue."""

    def __init__(self, server: ControlServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.subscriptions: set[str] = set()
        self._queue: deque[tuple[bool, bytes]] = deque()  # (is_event, line)
        self._queued_events = 0
        self._queued_replies = 0
        self.dropped_events = 0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False
        self._writer_task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        self._writer_task = asyncio.ensure_future(self._write_loop())
        self._send(proto.hello(__version__))
        lines = proto.LineBuffer()
        try:
            while not self._closed:
                try:
                    data = await self.reader.read(READ_CHUNK)
                except (ConnectionError, OSError):
                    break
                if not data:
                    break
                try:
                    batch = lines.feed(data)
                except proto.LineTooLong:
                    self._send(proto.error(
                        proto.ErrorCode.TOO_LARGE,
                        f"request line longer than {proto.MAX_LINE_BYTES} bytes; closing",
                    ))
                    await self._lingering_close()
                    break
                for line in batch:
                    await self._handle_line(line)
                    if self._closed:
                        break
        finally:
            await self.close(flush=True)

    async def _lingering_close(self) -> None:
        """Send what is queued, then read and discard for a moment before closing: closing a
        socket with unread input makes the kernel reset it, and the client would lose the
        error line explaining why (the lingering close of HTTP servers)."""
        await self.close_writing()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINGER_S
        discarded = 0
        with contextlib.suppress(Exception):
            while discarded < LINGER_BYTES:
                left = deadline - loop.time()
                if left <= 0:
                    break
                data = await asyncio.wait_for(self.reader.read(READ_CHUNK), left)
                if not data:
                    break
                discarded += len(data)

    async def close_writing(self) -> None:
        """Flush the queue and half-close (the client reads EOF after the last line)."""
        await self._flush(CLOSE_TIMEOUT_S)
        with contextlib.suppress(Exception):
            if self.writer.can_write_eof():
                self.writer.write_eof()

    async def _flush(self, timeout: float) -> None:
        task = self._writer_task
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._queue and task is not None and not task.done() and loop.time() < deadline:
            await asyncio.sleep(0.005)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.drain(), max(0.0, deadline - loop.time()))

    async def _handle_line(self, line: bytes) -> None:
        try:
            request = proto.parse_request(line)
        except proto.ControlError as exc:
            self._send(proto.error_for(exc))
            await self._wait_for_room()
            return
        try:
            value = await self.server.commands.dispatch(request, self)
            reply = proto.result(request, value)
        except proto.ControlError as exc:
            reply = proto.error(exc.code, exc.message, request.id, request.has_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("control: %s failed", request.command)
            reply = proto.error(proto.ErrorCode.INTERNAL,
                                f"{request.command} failed: {type(exc).__name__}: {exc}",
                                request.id, request.has_id)
        try:
            line_out = proto.encode(reply)
        except Exception as exc:  # a result that cannot be encoded is a bug, not a crash
            log.exception("control: cannot encode the %s reply", request.command)
            line_out = proto.encode(proto.error(proto.ErrorCode.INTERNAL, str(exc),
                                                request.id, request.has_id))
        self._queue_line(False, line_out)
        await self._wait_for_room()

    async def _wait_for_room(self) -> None:
        """Back-pressure: a client that sends requests (or garbage) without reading the
        replies is not read from until they are written."""
        while self._queued_replies >= MAX_PENDING_REPLIES and not self._closed:
            self._room.clear()
            await self._room.wait()

    # --- writing --------------------------------------------------------------------------

    def _send(self, obj: Mapping[str, Any]) -> None:
        self._queue_line(False, proto.encode(obj))

    def push_event(self, name: str, data: Mapping[str, Any]) -> None:
        if self._closed:
            return
        if self._queued_events >= MAX_QUEUED_EVENTS:
            self.dropped_events += 1
            return
        try:
            line = proto.encode(proto.event(name, data))
        except Exception:
            log.exception("control: cannot encode event %s", name)
            return
        self._queue_line(True, line)

    def _queue_line(self, is_event: bool, line: bytes) -> None:
        if self._closed:
            return
        self._queue.append((is_event, line))
        if is_event:
            self._queued_events += 1
        else:
            self._queued_replies += 1
        self._wake.set()

    async def _write_loop(self) -> None:
        dropped_reported = 0
        try:
            while True:
                while not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                is_event, line = self._queue.popleft()
                if is_event:
                    self._queued_events -= 1
                else:
                    self._queued_replies -= 1
                    self._room.set()
                self.writer.write(line)
                await self._drain()
                if self.dropped_events > dropped_reported and not self._queue:
                    # Only once the backlog is gone, so the notice follows the last event
                    # that made it.
                    n = self.dropped_events - dropped_reported
                    dropped_reported = self.dropped_events
                    self.writer.write(proto.encode(proto.event("events_dropped",
                                                               {"count": n})))
                    await self._drain()
        except TimeoutError:
            log.warning("control: client read nothing for %.0f s; closing it", WRITE_TIMEOUT_S)
        except (ConnectionError, OSError):
            pass  # the client went away mid-write
        finally:
            self._closed = True
            self._room.set()
            self._wake.set()
            self.writer.close()

    async def _drain(self) -> None:
        """Wait until the transport's buffer is low again; TimeoutError if the client took
        nothing at all for WRITE_TIMEOUT_S (a slow but reading client is waited for)."""
        transport = self.writer.transport
        while True:
            size = transport.get_write_buffer_size()
            try:
                await asyncio.wait_for(self.writer.drain(), WRITE_TIMEOUT_S)
                return
            except TimeoutError:
                if transport.is_closing() or transport.get_write_buffer_size() >= size:
                    raise

    async def close(self, flush: bool = False) -> None:
        """Stop reading; with ``flush``, give the queued lines a moment to go out first."""
        task = self._writer_task
        if flush and task is not None and not task.done():
            await self._flush(CLOSE_TIMEOUT_S)
        self._closed = True
        self._wake.set()
        self._room.set()
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), CLOSE_TIMEOUT_S)


# --- the socket file ------------------------------------------------------------------------


def create_socket(path: Path) -> socket.socket:
    """A listening unix socket at ``path``, mode 0600 from birth.

    An existing path is replaced only if it is a socket nobody answers on (a stale one left by
    a ryll that died); a live socket, a regular file, a directory or a symlink is refused with
    a UsageError, so ``--control-socket`` can never clobber a file.
    """
    path_str = os.fspath(path)
    if len(os.fsencode(path_str)) >= 108:  # sun_path is 108 bytes on Linux, NUL included
        raise UsageError(f"--control-socket: path too long for a unix socket: {path}")
    try:
        st = os.lstat(path_str)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise UsageError(f"--control-socket: cannot use {path}: {exc.strerror}") from None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise UsageError(f"--control-socket: {path} exists and is not a socket; "
                             "refusing to replace it")
        if _socket_is_live(path_str):
            raise UsageError(f"--control-socket: {path} is in use by another process")
        try:
            os.unlink(path_str)
        except OSError as exc:
            raise UsageError(f"--control-socket: cannot remove the stale socket {path}: "
                             f"{exc.strerror}") from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # The umask makes bind() create the file 0600, so there is no moment in which another
    # user could connect; the chmod is for file systems that ignore it.
    old = os.umask(0o177)
    try:
        sock.bind(path_str)
    except OSError as exc:
        sock.close()
        raise UsageError(f"--control-socket: cannot create {path}: {exc.strerror}") from None
    finally:
        os.umask(old)
    try:
        os.chmod(path_str, 0o600)
        sock.listen(4)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(path_str)
        raise UsageError(f"--control-socket: cannot listen on {path}: {exc.strerror}") from None
    return sock


def _socket_is_live(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False
        # EACCES and the like: someone else's socket; do not touch it.
        return True
    finally:
        probe.close()
    return True
