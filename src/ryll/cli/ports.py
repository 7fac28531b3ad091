"""``--port NAME=unix:PATH``: a SPICE port served on a unix socket.

ryll listens on PATH (mode 0600, created once the session is up, removed at the end; a stale
socket is replaced, anything else refused) and attaches each connection to port NAME in turn
(session.ports): ``socat - UNIX-CONNECT:PATH`` then talks to QEMU's QMP monitor or the guest's
serial port. One connection holds the port at a time; another one arriving meanwhile is told
so in one line and closed. A port the server does not offer within PORT_WAIT_S of the session
being established ends the run with PortError (exit code 11).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ryll.channels.events import SessionEstablished
from ryll.control.server import check_socket_path, create_socket
from ryll.errors import PortError, UsageError
from ryll.session.bus import EventStream
from ryll.session.runner import FrontEnd
from ryll.session.session import Session, SessionEnd

log = logging.getLogger("ryll.ports")

# How long after the session is established the server may take to name a requested port.
PORT_WAIT_S = 10.0


@dataclass(frozen=True)
class PortForward:
    name: str
    path: Path


def parse_port_spec(text: str) -> PortForward:
    """``NAME=unix:PATH`` (UsageError otherwise; the path is checked by the front end)."""
    name, sep, where = text.partition("=")
    if not sep or not name or not where:
        raise UsageError(f"--port {text!r}: expected NAME=unix:PATH")
    scheme, sep, path = where.partition(":")
    if not sep or scheme != "unix":
        raise UsageError(f"--port {text!r}: only unix:PATH is supported")
    if not path:
        raise UsageError(f"--port {text!r}: the unix socket path is empty")
    return PortForward(name, Path(path))


def check_forwards(forwards: list[PortForward]) -> None:
    """Each name and each path once, and each path usable, before anything connects."""
    names = [f.name for f in forwards]
    paths = [os.path.abspath(f.path) for f in forwards]
    for seen, what in ((names, "port"), (paths, "socket path")):
        dup = next((x for x in seen if seen.count(x) > 1), None)
        if dup is not None:
            raise UsageError(f"--port: {what} {dup} given twice")
    for forward in forwards:
        check_socket_path(forward.path, f"--port {forward.name}")


class PortForwarder(FrontEnd):
    name = "--port"
    kinds = (SessionEstablished,)

    def __init__(self, forward: PortForward) -> None:
        self.forward = forward
        self._server: asyncio.AbstractServer | None = None
        self._sock_id: tuple[int, int] | None = None
        self._held = False

    async def start(self, session: Session) -> None:
        self.session = session
        session.ports.requested.add(self.forward.name)
        check_socket_path(self.forward.path, self._flag)

    @property
    def _flag(self) -> str:
        return f"--port {self.forward.name}"

    async def run(self, session: Session, events: EventStream) -> None:
        async with events:
            async for event in events:
                if isinstance(event, SessionEstablished) and self._server is None:
                    await self._listen()

    async def _listen(self) -> None:
        name = self.forward.name
        try:
            await self.session.ports.wait_offered(name, PORT_WAIT_S)
            sock = create_socket(self.forward.path, self._flag)
        except (PortError, UsageError) as exc:
            self.failure = exc
            self.session.stop(str(exc))
            return
        st = os.stat(self.forward.path)
        self._sock_id = (st.st_dev, st.st_ino)
        self._server = await asyncio.start_unix_server(self._on_connect, sock=sock)
        log.info("port %s: listening on %s", name, self.forward.path)

    async def _on_connect(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        name = self.forward.name
        if self._held:
            writer.write(f"ryll: port {name} is held by another connection\n".encode())
            with contextlib.suppress(Exception):
                await writer.drain()
            writer.close()
            return
        self._held = True
        try:
            await self.session.ports.attach(name, reader, writer, f"unix:{self.forward.path}",
                                            timeout=0)
            await self.session.ports.wait_detached(name)
        except PortError as exc:
            log.warning("%s", exc)
            writer.close()
        finally:
            self._held = False

    async def stop(self, session: Session, end: SessionEnd) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        if self._sock_id is not None:
            with contextlib.suppress(OSError):
                st = os.stat(self.forward.path)
                if (st.st_dev, st.st_ino) == self._sock_id:
                    os.unlink(self.forward.path)
            self._sock_id = None
