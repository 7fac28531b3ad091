"""The control server over a real unix socket, bound to a Session that is not connected to
any SPICE server (the SPICE side is exercised in tests/e2e/test_control.py): the socket file's
safety rules, hello, one client at a time, malformed input, oversized lines, slow clients,
and the commands' mapping onto the session (with a stand-in input controller)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ryll.channels.display import DisplayChannel
from ryll.channels.events import GapOpened, SurfaceCreated
from ryll.channels.main import MainChannel
from ryll.control import server as server_mod
from ryll.control.server import ControlServer, create_socket
from ryll.errors import UsageError
from ryll.protocol.constants import ChannelType, SurfaceFlags, SurfaceFmt
from ryll.render.surface import Surface
from ryll.session.session import LinkedInfo, Session, SessionEnd
from ryll.session.target import Target


@pytest.fixture
def sockdir() -> Iterator[Path]:
    # Short: a unix socket path must fit in 108 bytes, pytest's tmp_path may not.
    d = Path(tempfile.mkdtemp(prefix="ryllctl-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _session() -> Session:
    return Session(Target("127.0.0.1", 1))


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.events: list[dict[str, Any]] = []  # events call() read past

    async def line(self, timeout: float = 5.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.reader.readline(), timeout)
        assert raw.endswith(b"\n"), raw
        return json.loads(raw)

    async def send(self, data: bytes | dict[str, Any]) -> None:
        if isinstance(data, dict):
            data = json.dumps(data).encode() + b"\n"
        self.writer.write(data)
        await self.writer.drain()

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        await self.send(request)
        while True:
            reply = await self.line()
            if "event" not in reply:
                return reply
            self.events.append(reply["event"])

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


@asynccontextmanager
async def serving(path: Path, session: Session | None = None) -> AsyncIterator[ControlServer]:
    """The control socket as the runner starts it: start, run on its own subscription to the
    session's events, stop."""
    session = session or _session()
    srv = ControlServer(path)
    await srv.start(session)
    events = session.events(*srv.kinds)
    task = asyncio.ensure_future(srv.run(session, events))
    try:
        yield srv
    finally:
        events.close()
        await task
        await srv.stop(session)


async def connect(path: Path, hello: bool = True) -> Conn:
    reader, writer = await asyncio.open_unix_connection(str(path), limit=64 << 20)
    conn = Conn(reader, writer)
    if hello:
        assert "hello" in await conn.line()
    return conn


async def connect_when_free(path: Path) -> Conn:
    """Connect once ryll has let go of the previous client (it answers busy until then)."""
    for _ in range(200):
        conn = await connect(path, hello=False)
        first = await conn.line()
        if "hello" in first:
            return conn
        assert first["error"]["code"] == "busy"
        await conn.close()
        await asyncio.sleep(0.02)
    raise AssertionError("the control socket stayed busy")


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro_fn(), 30))  # type: ignore[arg-type]


# --- the socket file ----------------------------------------------------------------------


def test_socket_is_0600_and_removed_at_stop(sockdir: Path) -> None:
    path = sockdir / "c.sock"

    async def body() -> None:
        async with serving(path):
            st = os.lstat(path)
            assert stat.S_ISSOCK(st.st_mode)
            assert stat.S_IMODE(st.st_mode) == 0o600
        assert not path.exists()

    run(body)


def test_refuses_to_replace_a_regular_file(sockdir: Path) -> None:
    path = sockdir / "file"
    path.write_text("precious")
    with pytest.raises(UsageError, match="not a socket"):
        create_socket(path)
    assert path.read_text() == "precious"


def test_refuses_a_directory_and_a_symlink(sockdir: Path) -> None:
    (sockdir / "d").mkdir()
    with pytest.raises(UsageError, match="not a socket"):
        create_socket(sockdir / "d")
    target = sockdir / "target"
    target.write_text("x")
    (sockdir / "link").symlink_to(target)
    with pytest.raises(UsageError, match="not a socket"):
        create_socket(sockdir / "link")
    assert target.read_text() == "x"


def test_replaces_a_stale_socket(sockdir: Path) -> None:
    path = sockdir / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # the file stays, nobody listens: what a killed ryll leaves
    sock = create_socket(path)
    try:
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    finally:
        sock.close()


def test_refuses_a_live_socket(sockdir: Path) -> None:
    path = sockdir / "live.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.listen(1)
    try:
        with pytest.raises(UsageError, match="in use"):
            create_socket(path)
    finally:
        s.close()


def test_missing_directory_is_a_usage_error(sockdir: Path) -> None:
    with pytest.raises(UsageError, match="cannot create"):
        create_socket(sockdir / "no" / "such" / "dir.sock")


def test_too_long_path(sockdir: Path) -> None:
    with pytest.raises(UsageError, match="too long"):
        create_socket(sockdir / ("x" * 120))


def test_stop_leaves_a_replaced_file_alone(sockdir: Path) -> None:
    path = sockdir / "c.sock"

    async def body() -> None:
        async with serving(path):
            path.unlink()
            path.write_text("someone else's")
        assert path.read_text() == "someone else's"

    run(body)


# --- connection handling ------------------------------------------------------------------


def test_hello_and_status_before_connecting(sockdir: Path) -> None:
    path = sockdir / "c.sock"

    async def body() -> None:
        async with serving(path):
            conn = await connect(path, hello=False)
            hello = (await conn.line())["hello"]
            assert hello["protocol"] == "ryll-control" and hello["version"] == 1
            assert "screenshot" in hello["commands"]
            reply = await conn.call({"id": "s1", "cmd": "status"})
            assert reply["id"] == "s1"
            status = reply["result"]
            assert status["session"]["state"] == "connecting"
            assert status["channels"] == [] and status["displays"] == []
            assert status["cursor"] is None and status["agent"]["connected"] is False
            assert status["gaps"] == {"count": 0, "keys": {}}
            await conn.close()

    run(body)


def test_second_client_is_busy_then_first_leaves(sockdir: Path) -> None:
    path = sockdir / "c.sock"

    async def body() -> None:
        async with serving(path) as srv:
            first = await connect(path)
            second = await connect(path, hello=False)
            err = await second.line()
            assert err["error"]["code"] == "busy"
            assert await second.reader.read() == b""  # closed by ryll
            # the first client is unaffected
            assert "result" in await first.call({"cmd": "status"})
            await first.close()
            third = await connect_when_free(path)
            assert "result" in await third.call({"cmd": "status"})
            await third.close()
            assert srv.clients_refused >= 1

    run(body)


def test_malformed_lines_get_errors_and_the_connection_survives(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    bad = [
        (b"garbage\n", "bad_json"),
        (b"\xff\xfe\n", "bad_json"),
        (b"[1,2]\n", "bad_request"),
        (b'"status"\n', "bad_request"),
        (b'{"id":1}\n', "bad_request"),
        (b'{"id":2,"cmd":"frobnicate"}\n', "unknown_command"),
        (b'{"id":3,"cmd":"status","extra":1}\n', "bad_argument"),
        (b'{"id":4,"cmd":"send_key","key":7}\n', "bad_argument"),
        (b"[" * 200_000 + b"\n", "bad_json"),
        (b'{"id":5,"cmd":"send_key","key":"a"}\n', "not_connected"),
        (b'{"id":6,"cmd":"clipboard_get"}\n', "not_connected"),
        (b'{"id":7,"cmd":"screenshot"}\n', "no_channel"),
    ]

    async def body() -> None:
        async with serving(path):
            conn = await connect(path)
            for line, code in bad:
                await conn.send(line)
                reply = await conn.line()
                assert reply["error"]["code"] == code, (line[:40], reply)
            # blank lines are ignored, CRLF is fine, several requests in one write
            await conn.send(b'\n\r\n{"id":"a","cmd":"status"}\r\n{"id":"b","cmd":"status"}\n')
            assert (await conn.line())["id"] == "a"
            assert (await conn.line())["id"] == "b"
            await conn.close()

    run(body)


def test_too_large_line_is_refused_and_closed(sockdir: Path) -> None:
    path = sockdir / "c.sock"

    async def body() -> None:
        async with serving(path) as srv:
            conn = await connect(path)
            try:
                conn.writer.write(b'{"cmd":"type","text":"' + b"a" * (2 << 20))
                await conn.writer.drain()
            except (ConnectionError, OSError):
                pass  # ryll may close before it has read everything
            reply = await conn.line()
            assert reply["error"]["code"] == "too_large"
            assert await conn.reader.read() == b""
            await conn.close()
            # the server still serves
            again = await connect_when_free(path)
            assert "result" in await again.call({"cmd": "status"})
            assert srv.clients_served == 2
            await again.close()

    run(body)


def test_client_that_vanishes_mid_reply(sockdir: Path) -> None:
    """A client sends requests with big replies and disconnects without reading: ryll neither
    crashes nor stops serving."""
    path = sockdir / "c.sock"
    session = _session()
    _add_display(session, 1024, 768)

    async def body() -> None:
        async with serving(path, session):
            conn = await connect(path)
            for _ in range(5):
                await conn.send({"cmd": "screenshot", "format": "rgba"})
            conn.writer.transport.abort()
            await asyncio.sleep(0.3)
            again = await connect_when_free(path)
            assert "result" in await again.call({"cmd": "status"})
            await again.close()

    run(body)


def test_slow_client_drops_events_not_replies(sockdir: Path, monkeypatch: Any) -> None:
    path = sockdir / "c.sock"
    monkeypatch.setattr(server_mod, "MAX_QUEUED_EVENTS", 5)

    async def body() -> None:
        async with serving(path) as srv:
            conn = await connect(path)
            assert (await conn.call({"cmd": "subscribe", "events": ["gap"]}))["result"] == {
                "events": ["gap"]
            }
            for i in range(50):
                srv.publish("gap", {"key": f"k{i}", "detail": ""})
            reply = await conn.call({"id": 9, "cmd": "status"})
            assert reply["id"] == 9
            lines = []
            while True:
                line = await conn.line()
                lines.append(line)
                if line.get("event", {}).get("name") == "events_dropped":
                    break
            gaps = [x for x in lines if x["event"]["name"] == "gap"]
            assert lines[-1]["event"]["count"] + len(gaps) + 5 >= 50
            await conn.close()

    run(body)


def test_client_that_never_reads_is_dropped(sockdir: Path, monkeypatch: Any) -> None:
    path = sockdir / "c.sock"
    monkeypatch.setattr(server_mod, "WRITE_TIMEOUT_S", 0.5)
    session = _session()
    _add_display(session, 1024, 768)

    async def body() -> None:
        async with serving(path, session) as srv:
            reader, writer = await asyncio.open_unix_connection(str(path))
            for _ in range(3):  # ~12 MiB of replies nobody reads
                writer.write(b'{"cmd":"screenshot","format":"rgba"}\n')
            await writer.drain()
            for _ in range(300):
                if srv._client is None:
                    break
                await asyncio.sleep(0.02)
            assert srv._client is None
            writer.close()

    run(body)


def test_events_only_when_subscribed(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session = _session()

    async def body() -> None:
        async with serving(path, session) as srv:
            conn = await connect(path)
            session.publish(GapOpened("display:unimpl:test_one", "x", None))
            await conn.call({"cmd": "subscribe", "events": ["gap", "surface_created"]})
            session.publish(GapOpened("display:unimpl:test_two", "y", None))
            ev = await conn.line()
            assert ev == {"event": {"name": "gap", "key": "display:unimpl:test_two",
                                    "detail": "y"}}
            # every session event reaches the control socket through its subscription
            session.publish(SurfaceCreated(0, 0, 640, 480, 32, True))
            ev = await conn.line()
            assert ev["event"]["name"] == "surface_created"
            assert ev["event"]["width"] == 640 and ev["event"]["primary"] is True
            reply = await conn.call({"cmd": "unsubscribe"})
            assert reply["result"] == {"events": []}
            session.publish(GapOpened("display:unimpl:test_three", "z", None))
            srv.session_ended(SessionEnd("stopped", "bye"))
            assert "result" in await conn.call({"cmd": "status"})
            await conn.close()

    run(body)


def test_session_ended_event_and_not_connected(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session = _session()
    _link(session, MainChannel(0, session.ctx))

    async def body() -> None:
        async with serving(path, session) as srv:
            conn = await connect(path)
            await conn.call({"cmd": "subscribe", "events": ["session_ended"]})
            srv.session_ended(SessionEnd("stopped", "duration elapsed"))
            ev = await conn.line()
            assert ev["event"] == {"name": "session_ended", "reason": "stopped",
                                   "message": "duration elapsed", "exit_code": 0}
            reply = await conn.call({"cmd": "send_key", "key": "a"})
            assert reply["error"]["code"] == "not_connected"
            status = (await conn.call({"cmd": "status"}))["result"]
            assert status["session"]["state"] == "ended"
            assert status["session"]["end"]["reason"] == "stopped"
            await conn.close()

    run(body)


# --- commands against a hand-built session -------------------------------------------------


def _link(session: Session, channel: Any) -> None:
    session.channels[(channel.channel_type, channel.channel_id)] = LinkedInfo(channel, False, 0.0)


def _add_display(session: Session, w: int, h: int, fmt: int = SurfaceFmt.FMT_32_xRGB) -> Surface:
    display = session.channel(ChannelType.DISPLAY)
    if display is None:
        display = DisplayChannel(0, session.ctx)
        _link(session, display)
    assert isinstance(display, DisplayChannel)
    surface = Surface(len(display.surfaces), w, h, fmt, SurfaceFlags.PRIMARY)
    rng = np.random.default_rng(w * h)
    surface.pixels[..., :3] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    display.surfaces[surface.surface_id] = surface
    return surface


def test_screenshot_png_and_rgba(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session = _session()
    surface = _add_display(session, 64, 48)

    async def body() -> None:
        async with serving(path, session):
            conn = await connect(path)
            shot = (await conn.call({"cmd": "screenshot"}))["result"]
            assert (shot["format"], shot["width"], shot["height"]) == ("png", 64, 48)
            img = Image.open(io.BytesIO(base64.b64decode(shot["data"])))
            assert img.mode == "RGB"
            assert np.array_equal(np.asarray(img), surface.rgb())
            raw = (await conn.call({"cmd": "screenshot", "format": "rgba"}))["result"]
            rgba = np.frombuffer(base64.b64decode(raw["data"]), np.uint8).reshape(48, 64, 4)
            assert np.array_equal(rgba[..., :3], surface.rgb())
            assert (rgba[..., 3] == 255).all()
            err = await conn.call({"cmd": "screenshot", "display": 1})
            assert err["error"]["code"] == "bad_argument"
            status = (await conn.call({"cmd": "status"}))["result"]
            assert [(d["display"], d["width"], d["height"]) for d in status["displays"]] == [
                (0, 64, 48)
            ]
            await conn.close()

    run(body)


def test_input_commands_drive_the_real_controller(
    sockdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each input command becomes the inputs-channel messages the InputController builds; the
    traffic tap sees them as they would go to the server."""
    from ryll.channels.inputs import InputsChannel
    from ryll.protocol.constants import InputsClient, MouseMode
    from ryll.protocol.messages import inputs as im

    path = sockdir / "c.sock"
    session = _session()
    sent: list[tuple[int, bytes]] = []
    session.ctx.tap = lambda ct, cid, way, op, body: (
        sent.append((op, body)) if way == "out" and ct == ChannelType.INPUTS else None
    )
    a, shift = 0x1E, 0x2A  # set-1 scancodes

    async def body() -> None:
        async with serving(path, session):
            conn = await connect(path)
            _link(session, MainChannel(0, session.ctx))
            reply = await conn.call({"id": 1, "cmd": "send_key", "key": "a"})
            assert reply["error"]["code"] == "no_channel"
            _link(session, InputsChannel(0, session.ctx))
            session.ctx.state.current_mouse_mode = MouseMode.CLIENT
            await conn.call({"cmd": "subscribe", "events": ["paste_completed"]})
            for req in (
                {"cmd": "send_key", "key": "a"},
                {"cmd": "send_key", "key": "shift", "action": "down"},
                {"cmd": "send_key", "key": "shift", "action": "up"},
                {"cmd": "type", "text": "hi", "char_delay_ms": 0},
                {"cmd": "mouse_move", "x": 5, "y": 6},
                {"cmd": "mouse_move", "x": 7, "y": 8, "display": 1},
                {"cmd": "mouse_down", "button": "middle"},
                {"cmd": "mouse_up", "button": "middle"},
                {"cmd": "mouse_click", "button": "right", "x": 1, "y": 2},
            ):
                reply = await conn.call(req)
                assert "result" in reply, (req, reply)
            [ev] = conn.events
            assert ev["name"] == "paste_completed" and ev["chars"] == 2
            h, i = 0x23, 0x17
            assert sent == [
                (InputsClient.KEY_DOWN, im.build_key_down(a)),
                (InputsClient.KEY_UP, im.build_key_up(a)),
                (InputsClient.KEY_DOWN, im.build_key_down(shift)),
                (InputsClient.KEY_UP, im.build_key_up(shift)),
                (InputsClient.KEY_DOWN, im.build_key_down(h)),
                (InputsClient.KEY_UP, im.build_key_up(h)),
                (InputsClient.KEY_DOWN, im.build_key_down(i)),
                (InputsClient.KEY_UP, im.build_key_up(i)),
                (InputsClient.MOUSE_POSITION, im.build_mouse_position(5, 6, 0, 0)),
                (InputsClient.MOUSE_POSITION, im.build_mouse_position(7, 8, 0, 1)),
                (InputsClient.MOUSE_PRESS, im.build_mouse_button(2, 2)),
                (InputsClient.MOUSE_RELEASE, im.build_mouse_button(2, 0)),
                (InputsClient.MOUSE_POSITION, im.build_mouse_position(1, 2, 0, 0)),
                (InputsClient.MOUSE_PRESS, im.build_mouse_button(3, 4)),
                (InputsClient.MOUSE_RELEASE, im.build_mouse_button(3, 0)),
            ]
            reply = await conn.call({"id": 2, "cmd": "send_key", "key": "nosuchkey"})
            assert reply["id"] == 2 and reply["error"]["code"] == "bad_argument"
            assert "nosuchkey" in reply["error"]["message"]

            async def broken_click(*args: object, **kwargs: object) -> None:
                raise RuntimeError("boom")

            monkeypatch.setattr(session.input, "click", broken_click)
            reply = await conn.call({"id": 3, "cmd": "mouse_click", "button": "left"})
            assert reply["error"]["code"] == "internal" and "boom" in reply["error"]["message"]
            # and the connection still works after an internal error
            assert "result" in await conn.call({"cmd": "status"})
            reply = await conn.call({"cmd": "clipboard_set", "text": "x"})
            assert reply["error"]["code"] == "no_agent"
            await conn.close()

    run(body)


def test_garbage_flood_without_reading_stays_bounded(sockdir: Path) -> None:
    """Error replies are back-pressured like results: a client that floods bad lines and never
    reads cannot make ryll queue without bound."""
    path = sockdir / "c.sock"

    async def body() -> None:
        async with serving(path) as srv:
            reader, writer = await asyncio.open_unix_connection(str(path))
            writer.write(b"x\n" * 200_000)  # 200k bad_json errors, ~16 MiB of replies
            await asyncio.sleep(0.5)
            client = srv._client
            assert client is not None
            assert len(client._queue) <= server_mod.MAX_PENDING_REPLIES + 1
            writer.transport.abort()

    run(body)
