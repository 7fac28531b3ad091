"""The session against a deliberately broken server on 127.0.0.1.

The fake server answers the link with the link reply captured from QEMU (its public key is a
real one; the fake never decrypts the ticket), then misbehaves. Whatever it does, the session
must end with one clear RyllError, never a hang or a crash.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from ryll.channels.context import ChannelContext
from ryll.channels.main import MainChannel
from ryll.errors import ProtocolError, RyllError, ServerClosedError
from ryll.protocol.constants import BaseServer, MainServer
from ryll.protocol.link import build_link_message
from ryll.session import connection
from ryll.session.session import Session
from ryll.session.target import Target

FIXTURES = Path(__file__).parent.parent / "fixtures"
LINK_REPLY = (FIXTURES / "link-reply-main.bin").read_bytes()
LINK_MESS_LEN = len(
    build_link_message(0, 1, 0, connection.COMMON_CAPS, MainChannel.channel_caps)
)

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _accept_link(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readexactly(LINK_MESS_LEN)
    writer.write(LINK_REPLY)
    await reader.readexactly(4 + 128)  # auth mechanism + ticket
    writer.write(struct.pack("<I", 0))


def _mini(opcode: int, body: bytes) -> bytes:
    return struct.pack("<HI", opcode, len(body)) + body


async def _run(behaviour: Behaviour, timeout: float = 10.0) -> RyllError | None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await behaviour(reader, writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    session = Session(Target("127.0.0.1", port), ChannelContext())
    try:
        async with asyncio.timeout(timeout):
            await session.connect()
            end = await session.wait()
            return end.error
    except RyllError as exc:
        return exc
    finally:
        server.close()


def run(behaviour: Behaviour, timeout: float = 10.0) -> RyllError | None:
    return asyncio.run(_run(behaviour, timeout))


def test_oversized_message_header() -> None:
    async def b(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _accept_link(reader, writer)
        writer.write(struct.pack("<HI", MainServer.INIT, 0xFFFFFFF0))
        await asyncio.sleep(1)

    err = run(b)
    assert isinstance(err, ProtocolError)
    assert "over the" in str(err) and "limit" in str(err)
    assert err.exit_code == 6


def test_close_mid_message() -> None:
    async def b(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _accept_link(reader, writer)
        writer.write(struct.pack("<HI", MainServer.INIT, 32) + b"\0" * 10)

    err = run(b)
    assert isinstance(err, ServerClosedError)
    assert str(err) == "the server closed the main channel"
    assert err.exit_code == 7


def test_bad_link_magic() -> None:
    async def b(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(LINK_MESS_LEN)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    err = run(b)
    assert isinstance(err, ProtocolError)
    assert "not a SPICE server" in str(err)


def test_link_never_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection, "LINK_TIMEOUT_S", 0.5)

    async def b(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3)

    err = run(b)
    assert isinstance(err, ProtocolError)
    assert "did not complete the link" in str(err)


def test_malformed_and_unknown_messages_are_gaps_not_errors() -> None:
    """A truncated INIT and an unknown opcode become gaps; the channel keeps going and the
    session ends only when the server closes."""
    gaps: dict[str, int] = {}

    async def b(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _accept_link(reader, writer)
        writer.write(_mini(MainServer.INIT, b"\1\2\3"))  # INIT is 32 bytes
        writer.write(_mini(4242, b"hostile"))
        writer.write(_mini(4242, b"again"))
        # A PING after both must still be answered: read the PONG back.
        writer.write(_mini(BaseServer.PING, struct.pack("<IQ", 7, 99)))
        await writer.drain()
        header = await reader.readexactly(6)
        opcode, size = struct.unpack("<HI", header)
        body = await reader.readexactly(size)
        gaps["pong"] = int(opcode == 3 and body == struct.pack("<IQ", 7, 99))

    async def go() -> RyllError | None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await b(reader, writer)
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        session = Session(Target("127.0.0.1", port), ChannelContext())
        async with asyncio.timeout(10):
            await session.connect()
            end = await session.wait()
        server.close()
        gaps.update(session.ctx.gaps.counts())
        return end.error

    err = asyncio.run(go())
    assert isinstance(err, ServerClosedError)
    assert gaps["pong"] == 1
    assert gaps["main:malformed:init"] == 1
    assert gaps["main:hexdump:4242"] == 2


def test_a_mangled_ticket_key_is_a_clean_protocol_error() -> None:
    async def b(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(LINK_MESS_LEN)
        reply = bytearray(LINK_REPLY)
        reply[20:20 + 162] = b"\x30\x0f" + b"\0" * 160  # SpiceLinkReply.pub_key: not a key
        writer.write(bytes(reply))
        await asyncio.sleep(1)

    err = run(b)
    assert isinstance(err, ProtocolError) and "ticket public key" in str(err)
    assert err.exit_code == 6
