"""A whole session against a small SPICE server on 127.0.0.1 that links every channel: two
display channels, one of which gets a GLZ draw whose reference the other has not delivered.

While that display channel is parked, nothing else waits: the control socket's status and
screenshot answer within 100 ms, the main channel's PINGs are answered, the other display
keeps drawing; when the image lands the parked draw is applied, and when it never does the
gap says so. The server also lists the channel types ryll does not link, each of which must be
the gap ``main:unlinked_channel:<name>``.

No QEMU can be made to send a cross-channel GLZ reference on demand, so this server is
hand-written: it answers each link with the link reply captured from QEMU (tests/fixtures) and
sends real SPICE messages built by the project's own encoders.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import struct
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.codecs.test_glz_wait import SIDE, cross_ref_image, glz_copy, picture
from tests.render import builders as B

from ryll.channels import display as display_mod
from ryll.channels.context import ChannelContext
from ryll.channels.events import DecodeParked, DisplayUpdated, Event, GapOpened
from ryll.codecs import _lz_enc
from ryll.codecs import lz as L
from ryll.control.server import ControlServer
from ryll.protocol.constants import BaseServer, ChannelType, DisplayServer, MainServer, SurfaceFmt
from ryll.protocol.link import LINK_HEADER_SIZE
from ryll.protocol.messages.draw import Rect
from ryll.session.session import Session
from ryll.session.target import Target

FIXTURES = Path(__file__).parent.parent / "fixtures"
LINK_REPLY = (FIXTURES / "link-reply-main.bin").read_bytes()
UNLINKED = {ChannelType.SMARTCARD: "smartcard", ChannelType.USBREDIR: "usbredir",
            ChannelType.WEBDAV: "webdav"}


def mini(opcode: int, body: bytes = b"") -> bytes:
    return struct.pack("<HI", opcode, len(body)) + body


class Server:
    """Links any channel; main lists two displays and the unlinked types; each display gets
    a primary surface and a MARK; display 1 then gets a draw that refers to GLZ image 1,
    which display 0 sends only when ``release`` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.pongs: list[float] = []
        self.main_writer: asyncio.StreamWriter | None = None
        self.image = picture(7)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            header = await reader.readexactly(LINK_HEADER_SIZE)
            size = struct.unpack("<I", header[12:16])[0]
            mess = await reader.readexactly(size)
            channel_type, channel_id = mess[4], mess[5]
            writer.write(LINK_REPLY)
            await reader.readexactly(4 + 128)  # auth mechanism + ticket
            writer.write(struct.pack("<I", 0))
            if channel_type == ChannelType.MAIN:
                await self.main(reader, writer)
            elif channel_type == ChannelType.DISPLAY:
                await self.display(channel_id, reader, writer)
            else:
                await reader.read()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def main(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.main_writer = writer
        writer.write(mini(MainServer.INIT, struct.pack("<8I", 7, 2, 1, 1, 0, 10, 0, 0)))
        listed = [(ChannelType.DISPLAY, 0), (ChannelType.DISPLAY, 1),
                  *((t, 0) for t in UNLINKED)]
        writer.write(mini(MainServer.CHANNELS_LIST, struct.pack("<I", len(listed)) + b"".join(
            struct.pack("<BB", t, i) for t, i in listed)))
        await writer.drain()
        while True:  # PONGs to the PINGs the test sends through ping()
            head = await reader.readexactly(6)
            opcode, size = struct.unpack("<HI", head)
            await reader.readexactly(size)
            if opcode == 3:  # SPICE_MSGC_PONG
                self.pongs.append(time.monotonic())

    async def ping(self) -> None:
        assert self.main_writer is not None
        self.main_writer.write(mini(BaseServer.PING, struct.pack("<IQ", 1, 2)))
        await self.main_writer.drain()

    async def display(self, channel_id: int, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        drain = asyncio.ensure_future(reader.read())  # INIT and PONGs: not looked at
        writer.write(mini(DisplayServer.SURFACE_CREATE,
                          B.surface_create(0, SIDE, SIDE, SurfaceFmt.FMT_32_xRGB)))
        writer.write(mini(DisplayServer.MARK))
        if channel_id == 1:
            writer.write(mini(DisplayServer.DRAW_COPY,
                              glz_copy(cross_ref_image(2, 1, SIDE * SIDE, SIDE, SIDE))))
        await writer.drain()
        if channel_id == 0:
            await self.release.wait()
            writer.write(mini(DisplayServer.DRAW_COPY,
                              glz_copy(_lz_enc.encode_glz(L.RGB32, self.image, 1))))
            await writer.drain()
        await drain


@pytest.fixture
def sockdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="ryllpark-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


async def _timed_requests(path: Path, requests: list[dict[str, object]]
                          ) -> list[tuple[dict[str, object], float]]:
    """Each request on one control connection: its reply and how long it took."""
    async with asyncio.timeout(5):  # the socket appears once the session is established
        while not path.exists():
            await asyncio.sleep(0.005)
    reader, writer = await asyncio.open_unix_connection(str(path), limit=16 << 20)
    out = []
    try:
        writer.write(json.dumps({"id": 0, "method": "hello",
                                 "params": {"protocol_version": "1.3"}}).encode() + b"\n")
        assert json.loads(await reader.readline())["ok"]
        for i, request in enumerate(requests, 1):
            started = time.monotonic()
            writer.write(json.dumps({"id": i, **request}).encode() + b"\n")
            await writer.drain()
            reply = json.loads(await reader.readline())
            out.append((reply, time.monotonic() - started))
        return out
    finally:
        writer.close()


async def _scenario(sock: Path, release: bool) -> tuple[Session, list[Event], Server]:
    server = Server()
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    session = Session(Target("127.0.0.1", port), ChannelContext())
    control = ControlServer(sock)
    await control.start(session)
    control_events = session.events()
    control_task = asyncio.ensure_future(control.run(session, control_events))
    seen: list[Event] = []
    events = session.events()
    try:
        await session.connect()
        waiter = asyncio.ensure_future(session.wait())
        async with asyncio.timeout(10):
            async for event in events:
                seen.append(event)
                if isinstance(event, DecodeParked):
                    break
        # Display 1 is parked on image 1. Nothing else waits for it.
        requests: list[dict[str, object]] = [
            {"method": "status"}, {"method": "screenshot", "params": {"display": 1}},
            {"method": "screenshot", "params": {"display": 0}}]
        for request, (reply, took) in zip(requests, await _timed_requests(sock, requests),
                                          strict=True):
            assert reply["ok"], reply
            assert took < 0.1, (request, took)
        asked = time.monotonic()
        await server.ping()
        async with asyncio.timeout(5):
            while not server.pongs:
                await asyncio.sleep(0.005)
        assert server.pongs[0] - asked < 0.1
        parked = session.snapshot().channels
        assert {c.name for c in parked} == {"main", "display"}
        if release:
            server.release.set()
        async with asyncio.timeout(10):
            async for event in events:
                seen.append(event)
                if isinstance(event, GapOpened) and "wait_expired" in event.key:
                    break
                if isinstance(event, DisplayUpdated) and event.channel_id == 1:
                    break
        session.stop()
        await waiter
    finally:
        events.close()
        control_events.close()
        await control_task
        await control.stop(session)
        srv.close()
    return session, seen, server


def test_a_parked_display_stalls_nothing_and_resumes_when_the_image_lands(
    sockdir: Path,
) -> None:
    session, seen, server = asyncio.run(_scenario(sockdir / "c.sock", release=True))
    assert DecodeParked(1, 1) in seen
    after = seen[seen.index(DecodeParked(1, 1)):]
    assert DisplayUpdated(1, 0, Rect(0, 0, SIDE, SIDE)) in after
    shots = {d.channel_id: d for d in session.display_channels()}
    assert np.array_equal(shots[1].surfaces[0].pixels, server.image)
    gaps = session.ctx.gaps.counts()
    assert not [k for k in gaps if "glz" in k], gaps
    assert {f"main:unlinked_channel:{n}" for n in UNLINKED.values()} <= set(gaps)


def test_a_reference_that_never_comes_is_a_named_gap(
    sockdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(display_mod, "GLZ_WAIT_TIMEOUT_S", 0.5)
    session, seen, _ = asyncio.run(_scenario(sockdir / "c.sock", release=False))
    gaps = session.ctx.gaps.counts()
    assert gaps.get("display:decode_failure:glz_rgb:wait_expired") == 1, gaps
    after = seen[seen.index(DecodeParked(1, 1)):]
    assert not any(isinstance(e, DisplayUpdated) and e.channel_id == 1 for e in after)
