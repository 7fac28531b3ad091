"""The control socket: an asyncio unix-socket server bound to one ``Session``.

It owns the socket file (checked when ryll starts, created mode 0600 only once the SPICE
session is established, never over something that is not a stale socket, removed when the
session ends), one client at a time (a second one gets a ``busy`` line and is closed), the
hello rule (``no_hello_yet`` before it), the per-client read loop (requests handled one at a
time, in order) and the per-client write queues. Parsing and encoding are ``protocol``'s; what
each verb does is ``commands``'.

Slow clients: replies are never dropped, but a client that stops reading stops being read
(at most ``MAX_PENDING_REPLIES`` replies wait, then the next request waits for them to be
written). Events are dropped instead, never the SPICE session's work: at most
``MAX_QUEUED_EVENTS`` wait (the Rust ryll's 256); the oldest go first, counted, and one
``dropped`` event says how many once the queue has drained (or after
``DROPPED_MAX_DELAY_S`` under steady pressure). A client whose socket accepts nothing for
``WRITE_TIMEOUT_S`` while ryll has something to write is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
import time
from collections import deque
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

from ryll import __version__
from ryll.channels.events import SessionEstablished
from ryll.control import protocol as proto
from ryll.control.commands import Commands
from ryll.control.events import EventTranslator
from ryll.errors import UsageError
from ryll.session.bus import EventStream
from ryll.session.runner import FrontEnd
from ryll.session.session import Session, SessionEnd

log = logging.getLogger("ryll.control")

READ_CHUNK = 64 * 1024
# Events waiting for a slow client before the oldest are dropped (the Rust ryll's capacity).
MAX_QUEUED_EVENTS = 256
# How long a drop count may wait for the queue to drain before ``dropped`` is sent anyway.
DROPPED_MAX_DELAY_S = 1.0
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
    """A front end: ``start`` checks the socket path (before connecting, so a bad one is a
    usage error and nothing connects), ``run`` creates the socket once the session is
    established and turns the session's events into control events, ``stop`` announces the
    end, closes the client (it reads EOF) and removes the socket."""

    name = "--control-socket"
    kinds = ()  # every event: the client picks with subscribe

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.session_end: SessionEnd | None = None
        self.events: EventTranslator | None = None
        self._server: asyncio.AbstractServer | None = None
        self._sock_id: tuple[int, int] | None = None
        self._client: ControlClient | None = None
        self._client_tasks: set[asyncio.Task[None]] = set()
        self.clients_served = 0
        self.clients_refused = 0

    @property
    def listening(self) -> bool:
        return self._server is not None

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, session: Session) -> None:
        """Check the path now (UsageError if it cannot be used); the socket comes later."""
        self.session = session
        self.commands = Commands(session, self)
        self.events = EventTranslator(self.publish, lambda: session.uptime)
        check_socket_path(self.path)

    async def run(self, session: Session, events: EventStream) -> None:
        assert self.events is not None
        async with events:
            if session.established:
                await self._listen()
            async for event in events:
                if isinstance(event, SessionEstablished) and not self.listening:
                    await self._listen()
                self.events.translate(event)

    async def _listen(self) -> None:
        """Create the socket: from now on "the socket exists" means "connected"."""
        try:
            sock = create_socket(self.path)
        except UsageError as exc:  # the path changed since start(): nothing to serve on
            # The run's exit code says so (FrontEnd.failure); the one line is the CLI's.
            self.failure = exc
            self.session.stop(str(exc))
            return
        st = os.stat(self.path)
        self._sock_id = (st.st_dev, st.st_ino)
        self._server = await asyncio.start_unix_server(self._on_connect, sock=sock)
        log.info("control socket listening on %s", self.path)

    async def stop(self, session: Session | None = None, end: SessionEnd | None = None) -> None:
        """Close the client (after ``session_ended`` when ``end`` is given and was not
        announced yet), stop listening, remove the socket file."""
        if end is not None and self.session_end is None:
            self.session_ended(end)
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
        """The session is over (pushed as ``session_ended``, once)."""
        self.session_end = end
        self.publish("session_ended", {"reason": end.reason, "message": end.message,
                                       "exit_code": end.exit_code})

    # --- events ---------------------------------------------------------------------------

    def publish(self, name: str, data: Mapping[str, Any]) -> None:
        """Send event ``name`` to the client if it subscribed (on the event loop)."""
        client = self._client
        if client is not None:
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
        finally:
            if task is not None:
                self._client_tasks.discard(task)


async def _refuse(writer: asyncio.StreamWriter) -> None:
    line = proto.encode(proto.error(proto.ErrorCode.BUSY, "another client is connected"))
    with contextlib.suppress(Exception):
        writer.write(line)
        await asyncio.wait_for(writer.drain(), CLOSE_TIMEOUT_S)
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT_S)


class ControlClient:
    """One connected client: its hello, subscriptions, background tasks (pastes), read loop
    and write queues."""

    def __init__(self, server: ControlServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.greeted = False  # a successful hello was answered
        self.client_name = ""
        self.subscriptions: set[str] = set()
        self._replies: deque[bytes] = deque()
        self._events: deque[bytes] = deque()
        self.dropped_events = 0
        self._dropped_unreported = 0
        self._dropped_since = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False
        self._close_after_reply = False
        self._writer_task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        self._writer_task = asyncio.ensure_future(self._write_loop())
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
                    if self._closed or self._close_after_reply:
                        break
                if self._close_after_reply:
                    await self.close_writing()
                    break
        finally:
            await self.close(flush=True)

    def start_task(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` for this client; cancelled when the client goes."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("control: a background task failed", exc_info=task.exception())

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
        while ((self._replies or self._events) and task is not None and not task.done()
               and loop.time() < deadline):
            await asyncio.sleep(0.005)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.drain(), max(0.0, deadline - loop.time()))

    async def _handle_line(self, line: bytes) -> None:
        early = None if self.greeted else proto.before_hello(line)
        if early is not None:
            self._send(proto.error_for(early))
            await self._wait_for_room()
            return
        try:
            request = proto.parse_request(line)
        except proto.ControlError as exc:
            self._send(proto.error_for(exc))
            await self._wait_for_room()
            return
        try:
            value = await self._answer(request)
            reply = proto.result(request, value)
        except proto.ControlError as exc:
            reply = proto.error(exc.code, exc.message, request.id, True)
            if exc.close:
                self._close_after_reply = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("control: %s failed", request.method)
            reply = proto.error(proto.ErrorCode.INTERNAL_ERROR,
                                f"{request.method} failed: {type(exc).__name__}: {exc}",
                                request.id, True)
        try:
            line_out = proto.encode(reply)
        except Exception as exc:  # a result that cannot be encoded is a bug, not a crash
            log.exception("control: cannot encode the %s reply", request.method)
            line_out = proto.encode(proto.error(proto.ErrorCode.INTERNAL_ERROR, str(exc),
                                                request.id, True))
        self._queue_reply(line_out)
        await self._wait_for_room()

    async def _answer(self, request: proto.Request) -> dict[str, Any]:
        if request.method == "hello":
            return self._hello(request)
        if not self.greeted:
            raise proto.ControlError(proto.ErrorCode.NO_HELLO_YET,
                                     "first request must be hello")
        return await self.server.commands.dispatch(request, self)

    def _hello(self, request: proto.Request) -> dict[str, Any]:
        try:
            major, _minor = proto.parse_version(request.params["protocol_version"])
        except ValueError as exc:
            raise proto.ControlError(proto.ErrorCode.BAD_PARAMS, f"hello: {exc}") from None
        if major != proto.MAJOR_VERSION:
            raise proto.ControlError(
                proto.ErrorCode.PROTOCOL_VERSION_MISMATCH,
                f"server speaks major version {proto.MAJOR_VERSION}; client requested major "
                f"version {major}", close=True)
        self.greeted = True
        self.client_name = request.params["client_name"]
        log.info("control: client %r said hello (protocol %s)", self.client_name[:64],
                 request.params["protocol_version"])
        return proto.hello_result(__version__)

    async def _wait_for_room(self) -> None:
        """Back-pressure: a client that sends requests (or garbage) without reading the
        replies is not read from until they are written."""
        while len(self._replies) >= MAX_PENDING_REPLIES and not self._closed:
            self._room.clear()
            await self._room.wait()

    # --- writing --------------------------------------------------------------------------

    def _send(self, obj: Mapping[str, Any]) -> None:
        self._queue_reply(proto.encode(obj))

    def _queue_reply(self, line: bytes) -> None:
        if self._closed:
            return
        self._replies.append(line)
        self._wake.set()

    def push_event(self, name: str, data: Mapping[str, Any]) -> None:
        """Queue event ``name`` if subscribed; a full queue drops its oldest event."""
        if self._closed or name not in self.subscriptions:
            return
        try:
            line = proto.encode(proto.event(name, data))
        except Exception:
            log.exception("control: cannot encode event %s", name)
            return
        if len(self._events) >= MAX_QUEUED_EVENTS:
            self._events.popleft()
            self.dropped_events += 1
            if not self._dropped_unreported:
                self._dropped_since = time.monotonic()
            self._dropped_unreported += 1
        self._events.append(line)
        self._wake.set()

    def _dropped_line(self) -> bytes | None:
        """The ``dropped`` event, when it is due: the queue drained, or the count has waited
        DROPPED_MAX_DELAY_S. It is never itself dropped (it is not in the queue)."""
        if not self._dropped_unreported:
            return None
        if self._events and time.monotonic() - self._dropped_since < DROPPED_MAX_DELAY_S:
            return None
        count, self._dropped_unreported = self._dropped_unreported, 0
        return proto.encode(proto.event("dropped", {"count": count}))

    async def _write_loop(self) -> None:
        try:
            while True:
                while not self._replies and not self._events and not self._dropped_unreported:
                    self._wake.clear()
                    await self._wake.wait()
                dropped = self._dropped_line()
                if dropped is not None:
                    self.writer.write(dropped)
                elif self._replies:
                    self.writer.write(self._replies.popleft())
                    self._room.set()
                elif self._events:
                    self.writer.write(self._events.popleft())
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
        """Stop reading and cancel the client's pastes; with ``flush``, give the queued lines
        a moment to go out first."""
        for pending in list(self._tasks):
            pending.cancel()
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


def check_socket_path(path: Path, flag: str = "--control-socket") -> None:
    """UsageError unless a socket can be created at ``path``: short enough, in an existing
    directory, and either free or a stale socket (nobody answers on it)."""
    path_str = os.fspath(path)
    if len(os.fsencode(path_str)) >= 108:  # sun_path is 108 bytes on Linux, NUL included
        raise UsageError(f"{flag}: path too long for a unix socket: {path}")
    parent = os.path.dirname(path_str) or "."
    if not os.path.isdir(parent):
        raise UsageError(f"{flag}: cannot create {path}: no such directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag}: cannot create {path}: permission denied")
    try:
        st = os.lstat(path_str)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(f"{flag}: cannot use {path}: {exc.strerror}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise UsageError(f"{flag}: {path} exists and is not a socket; "
                         "refusing to replace it")
    if _socket_is_live(path_str):
        raise UsageError(f"{flag}: {path} is in use by another process")


def create_socket(path: Path, flag: str = "--control-socket") -> socket.socket:
    """A listening unix socket at ``path``, mode 0600 from birth.

    An existing path is replaced only if it is a socket nobody answers on (a stale one left by
    a ryll that died); a live socket, a regular file, a directory or a symlink is refused with
    a UsageError, so ``--control-socket`` (or a ``--port`` forward) can never clobber a file.
    """
    check_socket_path(path, flag)
    path_str = os.fspath(path)
    if os.path.lexists(path_str):  # a stale socket: check_socket_path refused anything else
        try:
            os.unlink(path_str)
        except OSError as exc:
            raise UsageError(f"{flag}: cannot remove the stale socket {path}: "
                             f"{exc.strerror}") from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # The umask makes bind() create the file 0600, so there is no moment in which another
    # user could connect; the chmod is for file systems that ignore it.
    old = os.umask(0o177)
    try:
        sock.bind(path_str)
    except OSError as exc:
        sock.close()
        raise UsageError(f"{flag}: cannot create {path}: {exc.strerror}") from None
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
        raise UsageError(f"{flag}: cannot listen on {path}: {exc.strerror}") from None
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
