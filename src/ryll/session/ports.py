"""The session's SPICE ports: who holds each one, and the bytes between them and the channel.

A port (channels.port) is held by at most one local peer at a time: an asyncio stream pair.
``--port NAME=unix:PATH`` (cli.ports) accepts connections on a unix socket and attaches each;
``vm.port(name)`` attaches one end of a socket pair and hands the caller the other. Holding a
port changes nothing on the wire: QEMU's end of the chardev is open for as long as the port's
channel is linked (spice-gtk works the same way), so a monitor session over a port lasts as
long as the SPICE session, whoever holds the port meanwhile.

Flow control both ways, with bounded buffers: the server's bytes go to the peer as they come,
and the port channel's loop waits for the peer's writer to drain (so a slow reader holds the
server back over TCP); the peer's bytes are read a chunk at a time, each chunk waits for the
SPICE socket to drain before the next is read, and only while the guest's end is open
(spice-gtk refuses to write otherwise; spice-server would hold the bytes and then stop reading
the channel). Bytes that arrive while nobody holds the port (QEMU's monitor greets as the
channel links) wait in the channel for the next holder (up to INBOUND_LIMIT, then the channel
stops reading). When the connection drops the peers are let go: a reconnected session's ports
start unheld, as a new client's would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ryll.channels.port import MAX_DATA_CHUNK, PortChannel
from ryll.errors import PortError

if TYPE_CHECKING:
    from ryll.session.session import Session

log = logging.getLogger("ryll.ports")


@dataclass
class _Peer:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    what: str
    pump: asyncio.Task[None] | None = None


@dataclass
class PortHub:
    session: Session
    # Names something will hold (--port): the summary lists those the server did not offer.
    requested: set[str] = field(default_factory=set)
    _channels: dict[str, PortChannel] = field(default_factory=dict)
    _peers: dict[str, _Peer] = field(default_factory=dict)
    _blocked: set[str] = field(default_factory=set)  # pumps waiting for the guest's end
    _changed: asyncio.Condition | None = None

    @property
    def _cond(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    # --- from the session ------------------------------------------------------------------

    async def ready(self, channel: PortChannel) -> None:
        """A port channel said its name (PORT INIT)."""
        name = channel.port_name
        assert name is not None
        old = self._channels.get(name)
        if old is not None and old is not channel and old.channel_id != channel.channel_id:
            log.warning("port %s: offered twice (channels %d and %d); the first is used",
                        name, old.channel_id, channel.channel_id)
            return
        self._channels[name] = channel
        await self._notify()

    async def deliver(self, channel: PortChannel) -> None:
        """After each message of a port channel: hand its bytes to the peer (and wait for
        the peer's writer to drain), or, with nobody attached and the buffer full, wait for
        a peer. Runs in the channel's own loop, so waiting holds only this port."""
        name = channel.port_name
        if name in self._blocked and channel.device_open:
            await self._notify()
        while name is not None:
            peer = self._peers.get(name)
            if peer is not None:
                data = channel.take_data()
                if data:
                    try:
                        peer.writer.write(data)
                        await peer.writer.drain()
                    except (ConnectionError, OSError) as exc:
                        log.info("port %s: %s went away (%s)", name, peer.what, exc)
                        await self.detach(name, peer)
                return
            if not channel.backed_up:
                return
            async with self._cond:
                await self._cond.wait_for(lambda: name in self._peers)

    # --- holding a port --------------------------------------------------------------------

    def offered(self) -> dict[str, PortChannel]:
        return dict(self._channels)

    async def wait_offered(self, name: str, timeout: float) -> PortChannel:
        """The channel of port ``name`` once the server has named it; PortError after
        ``timeout`` seconds (the names it did offer are in the message)."""
        channel = self._channels.get(name)
        if channel is not None:
            return channel

        async def named() -> None:
            async with self._cond:
                await self._cond.wait_for(lambda: name in self._channels)
        try:
            await asyncio.wait_for(named(), timeout)
        except TimeoutError:
            offered = ", ".join(sorted(self._channels)) or "none"
            raise PortError(f"the server offers no port {name!r} (ports offered: {offered})",
                            ) from None
        return self._channels[name]

    async def attach(self, name: str, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter, what: str, timeout: float = 10.0) -> None:
        """Make (reader, writer) the holder of port ``name`` until the reader ends or
        :meth:`detach`; PortError if the port is not offered or already held."""
        if name in self._peers:
            raise PortError(f"port {name!r} is already open ({self._peers[name].what})")
        channel = await self.wait_offered(name, timeout)
        if name in self._peers:  # someone else attached while we waited
            raise PortError(f"port {name!r} is already open ({self._peers[name].what})")
        peer = _Peer(reader, writer, what)
        self._peers[name] = peer
        early = channel.take_data()  # what came while nobody held it (a monitor's greeting)
        if early:
            writer.write(early)
        log.info("port %s: opened for %s", name, what)
        peer.pump = asyncio.ensure_future(self._pump(name, peer))
        await self._notify()

    async def _writable(self, name: str) -> PortChannel | None:
        """The port's channel once the guest's end is open (None: the connection is gone)."""
        channel = self._channels.get(name)
        if channel is None or channel.device_open:
            return channel
        self._blocked.add(name)
        try:
            async with self._cond:
                await self._cond.wait_for(lambda: name not in self._channels
                                          or self._channels[name].device_open)
        finally:
            self._blocked.discard(name)
        return self._channels.get(name)

    async def wait_detached(self, name: str) -> None:
        """Until nothing holds port ``name``."""
        async with self._cond:
            await self._cond.wait_for(lambda: name not in self._peers)

    async def _pump(self, name: str, peer: _Peer) -> None:
        """The peer's bytes to the port, a chunk at a time, each after the last has gone."""
        try:
            while True:
                data = await peer.reader.read(MAX_DATA_CHUNK)
                if not data:
                    break
                channel = await self._writable(name)
                if channel is None:
                    break
                channel.write(data)
                await self.session.send_now(channel)
        except (ConnectionError, OSError) as exc:
            log.info("port %s: %s: %s", name, peer.what, exc)
        finally:
            await self.detach(name, peer, pumping=True)

    async def detach(self, name: str, peer: _Peer | None = None, pumping: bool = False) -> None:
        """Let port ``name``'s peer go (its bytes wait in the channel for the next)."""
        current = self._peers.get(name)
        if current is None or (peer is not None and current is not peer):
            return
        del self._peers[name]
        log.info("port %s: let go (%s)", name, current.what)
        if current.pump is not None and not pumping:
            current.pump.cancel()
        with contextlib.suppress(Exception):
            current.writer.close()
        await self._notify()

    async def open_socket(self, name: str, timeout: float = 10.0) -> socket.socket:
        """One end of a socket pair whose other end holds port ``name``: the bytes read from
        it came from the port, those written go to it; closing it closes the port."""
        ours, theirs = socket.socketpair()
        try:
            reader, writer = await asyncio.open_connection(sock=ours)
        except BaseException:
            ours.close()
            theirs.close()
            raise
        try:
            await self.attach(name, reader, writer, "the Python API", timeout)
        except BaseException:
            writer.close()
            theirs.close()
            raise
        return theirs

    async def open_pair(self, name: str, timeout: float = 10.0
                        ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """``vm.port(name)``: :meth:`open_socket` as an asyncio stream pair."""
        return await asyncio.open_connection(sock=await self.open_socket(name, timeout))

    def connection_lost(self, forget: bool = True) -> None:
        """The session's connection is gone (a drop before a reconnect, or the end): every
        peer is let go (a --port listener stays, and attaches its next connection to the new
        channel); ``forget``: the channels too (the end keeps them for the summary)."""
        for name, peer in list(self._peers.items()):
            log.info("port %s: let go (%s): the session's connection ended", name, peer.what)
            if peer.pump is not None:
                peer.pump.cancel()
            with contextlib.suppress(Exception):
                peer.writer.close()
        self._peers.clear()
        if forget:
            self._channels.clear()
        with contextlib.suppress(RuntimeError):  # wake wait_detached (no loop: no waiters)
            asyncio.get_running_loop().create_task(self._notify())

    def as_dict(self) -> dict[str, object]:
        """Per port: its channel's state, who holds it; and the requested ports not offered."""
        ports: dict[str, object] = {}
        for name, channel in sorted(self._channels.items()):
            peer = self._peers.get(name)
            ports[name] = {**channel.port_state(), "channel_id": channel.channel_id,
                           "held_by": peer.what if peer is not None else None}
        return {"offered": ports,
                "requested_not_offered": sorted(self.requested - set(self._channels))}
