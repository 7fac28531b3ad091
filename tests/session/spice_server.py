"""A small SPICE server for tests: it links any channel ryll asks for (answering with the link
reply captured from QEMU, whose public key is real; the ticket is never decrypted) and then runs
a script per channel type, written with the project's own message builders.

It runs on its own event loop in a thread, so a ryll subprocess (the real CLI) can talk to it
while the test watches. Hostile scripts live in the tests that use it.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

from ryll.protocol.constants import ChannelType, MainServer
from ryll.protocol.link import LINK_HEADER_SIZE

FIXTURES = Path(__file__).parent.parent / "fixtures"
LINK_REPLY = (FIXTURES / "link-reply-main.bin").read_bytes()

Script = Callable[["Peer"], Awaitable[None]]


def mini(opcode: int, body: bytes = b"") -> bytes:
    """A message with the mini header (the link reply's caps include it)."""
    return struct.pack("<HI", opcode, len(body)) + body


def main_init(session_id: int = 7, displays: int = 1) -> bytes:
    # session_id, display_channels_hint, supported / current mouse mode, agent_connected,
    # agent_tokens, multi_media_time, ram_hint
    return mini(MainServer.INIT, struct.pack("<8I", session_id, displays, 1, 1, 0, 10, 0, 0))


def channels_list(*channels: tuple[int, int]) -> bytes:
    return mini(MainServer.CHANNELS_LIST, struct.pack("<I", len(channels)) + b"".join(
        struct.pack("<BB", t, i) for t, i in channels))


class Peer:
    """One linked channel connection, as the script sees it."""

    def __init__(self, channel_type: int, channel_id: int, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.channel_type = channel_type
        self.channel_id = channel_id
        self.reader = reader
        self.writer = writer
        self.received: list[tuple[int, bytes]] = []
        self.ticket = b""  # the encrypted ticket the client sent (never decrypted here)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_message(self) -> tuple[int, bytes]:
        opcode, size = struct.unpack("<HI", await self.reader.readexactly(6))
        body = await self.reader.readexactly(size)
        self.received.append((opcode, body))
        return opcode, body

    async def read_until(self, opcode: int) -> bytes:
        while True:
            op, body = await self.read_message()
            if op == opcode:
                return body

    async def drain_forever(self) -> None:
        """Read (and keep) what the client sends until it goes away."""
        while True:
            await self.read_message()


class SpiceServer:
    def __init__(self, scripts: dict[int, Script]) -> None:
        self.scripts = scripts
        self.peers: list[Peer] = []
        self.errors: list[BaseException] = []
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spice-server", daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()
        server.close()

    def __enter__(self) -> SpiceServer:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def run(self, coro: Awaitable[object], timeout: float = 30) -> object:
        """Run a coroutine on the server's loop (to poke a peer from the test)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def peer(self, channel_type: int, channel_id: int = 0) -> Peer | None:
        return next((p for p in self.peers if (p.channel_type, p.channel_id) ==
                     (channel_type, channel_id)), None)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            header = await reader.readexactly(LINK_HEADER_SIZE)
            size = struct.unpack("<I", header[12:16])[0]
            mess = await reader.readexactly(size)
            peer = Peer(mess[4], mess[5], reader, writer)
            writer.write(LINK_REPLY)
            peer.ticket = (await reader.readexactly(4 + 128))[4:]  # auth mechanism + ticket
            writer.write(struct.pack("<I", 0))
            await writer.drain()
            self.peers.append(peer)
            script = self.scripts.get(peer.channel_type, Peer.drain_forever)
            await script(peer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except BaseException as exc:  # a broken script: the test reads this
            self.errors.append(exc)
        finally:
            writer.close()


async def main_script(peer: Peer, channels: tuple[tuple[int, int], ...] = (
        (ChannelType.DISPLAY, 0),)) -> None:
    """MAIN: INIT, the channel list, then answer nothing and read everything."""
    await peer.send(main_init() + channels_list(*channels))
    await peer.drain_forever()
