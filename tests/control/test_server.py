"""The control server (protocol 1.2 plus ryll's 1.3) over a real unix socket, bound to a real
Session that is not connected to any SPICE server: channels are linked by hand, their
outgoing messages read from the session's traffic tap (the SPICE side is exercised in
tests/e2e/test_control.py).

Covered: the socket file (checked at start, created 0600 once the session is established,
removed at the end, never over something else), the hello rules, one client at a time,
malformed and oversized input, events (subscriptions, the bounded queue and ``dropped``),
status, each verb's mapping onto the session and its error codes, and what happens to a
client's background work when it goes."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import shutil
import socket
import stat
import struct
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ryll import __version__
from ryll.channels.display import DisplayChannel
from ryll.channels.events import (
    DisplayUpdated,
    GapOpened,
    MouseModeChanged,
    ServerPinged,
    SessionEstablished,
    SurfaceCreated,
)
from ryll.channels.inputs import InputsChannel
from ryll.channels.main import MainChannel
from ryll.control import protocol as proto
from ryll.control import server as server_mod
from ryll.control.server import ControlClient, ControlServer, check_socket_path, create_socket
from ryll.errors import UsageError
from ryll.input.keys import EXTENDED
from ryll.protocol import agent as va
from ryll.protocol.constants import (
    ChannelType,
    InputsClient,
    MainServer,
    MouseMode,
    SurfaceFlags,
    SurfaceFmt,
)
from ryll.protocol.framing import MessageWriter
from ryll.protocol.messages import inputs as im
from ryll.protocol.messages.draw import Rect
from ryll.render.surface import Surface
from ryll.session.session import LinkedInfo, Session, SessionEnd
from ryll.session.target import Target

HELLO_VERSION = "1.2"


@pytest.fixture
def sockdir() -> Iterator[Path]:
    # Short: a unix socket path must fit in 108 bytes, pytest's tmp_path may not.
    d = Path(tempfile.mkdtemp(prefix="ryllctl-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _session() -> Session:
    return Session(Target("127.0.0.1", 1))


def run(coro_fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
    async def guarded() -> None:
        await asyncio.wait_for(coro_fn(), 20)

    asyncio.run(guarded())


async def wait_until(pred: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


class Conn:
    """A test client: raw lines, or requests with automatic ids."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.events: list[dict[str, Any]] = []  # events call() read past
        self._next_id = 100

    async def line(self, timeout: float = 5.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.reader.readline(), timeout)
        assert raw.endswith(b"\n"), raw[:200]
        obj = json.loads(raw)
        assert isinstance(obj, dict)
        return obj

    async def eof(self, timeout: float = 5.0) -> bool:
        try:
            return await asyncio.wait_for(self.reader.read(), timeout) == b""
        except TimeoutError:  # an OSError since 3.11: catch it first
            return False
        except (ConnectionError, OSError):
            return True

    async def send(self, data: bytes | dict[str, Any]) -> None:
        if isinstance(data, dict):
            data = json.dumps(data).encode() + b"\n"
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self) -> dict[str, Any]:
        """The next line that is not an event (events on the way are kept in ``events``)."""
        while True:
            obj = await self.line()
            if "event" not in obj:
                return obj
            self.events.append(obj)

    async def call(self, method: str, params: dict[str, Any] | None = None,
                   rid: Any = None) -> dict[str, Any]:
        if rid is None:
            self._next_id += 1
            rid = self._next_id
        await self.send({"id": rid, "method": method, "params": params or {}})
        reply = await self.reply()
        assert reply.get("id") == rid, reply
        assert isinstance(reply["ok"], bool)
        return reply

    async def result(self, method: str, params: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
        reply = await self.call(method, params)
        assert reply["ok"] is True and "error" not in reply, reply
        result = reply["result"]
        assert isinstance(result, dict)
        return result

    async def error(self, method: str, params: dict[str, Any] | None = None) -> str:
        """The error code of a request that must fail."""
        reply = await self.call(method, params)
        assert reply["ok"] is False and "result" not in reply, reply
        assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
        code = reply["error"]["code"]
        assert code in proto.ERROR_CODES
        return str(code)

    async def hello(self, version: str = HELLO_VERSION) -> dict[str, Any]:
        return await self.result("hello", {"protocol_version": version,
                                           "client_name": "pytest"})

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def connect(path: Path, hello: bool = True) -> Conn:
    reader, writer = await asyncio.open_unix_connection(str(path), limit=64 << 20)
    conn = Conn(reader, writer)
    if hello:
        await conn.hello()
    return conn


async def connect_when_free(srv: ControlServer, path: Path) -> Conn:
    """Connect once ryll has let go of the previous client (it answers busy until then)."""
    await wait_until(lambda: srv._client is None)
    return await connect(path)


@asynccontextmanager
async def serving(path: Path, session: Session | None = None,
                  established: bool = True) -> AsyncIterator[ControlServer]:
    """The control socket as the runner drives it: start, run on its own subscription to the
    session's events (the session established, so the socket exists), stop."""
    session = session or _session()
    srv = ControlServer(path)
    await srv.start(session)
    events = session.events(*srv.kinds)
    task = asyncio.ensure_future(srv.run(session, events))
    try:
        if established:
            session.publish(SessionEstablished(len(session.channels)))
            await wait_until(lambda: srv.listening)
        yield srv
    finally:
        events.close()
        await task
        await srv.stop(session, None)


def _link(session: Session, channel: Any) -> None:
    session.channels[(channel.channel_type, channel.channel_id)] = LinkedInfo(channel, False, 0.0)


def _add_surface(session: Session, w: int, h: int, primary: bool = True,
                 fmt: int = SurfaceFmt.FMT_32_xRGB) -> Surface:
    display = session.channel(ChannelType.DISPLAY)
    if display is None:
        display = DisplayChannel(0, session.ctx)
        _link(session, display)
    assert isinstance(display, DisplayChannel)
    surface = Surface(len(display.surfaces), w, h, fmt,
                      SurfaceFlags.PRIMARY if primary else 0)
    rng = np.random.default_rng(w * h)
    surface.pixels[..., :3] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    display.surfaces[surface.surface_id] = surface
    return surface


def _tap_inputs(session: Session) -> list[tuple[int, bytes]]:
    """What the inputs channel queues for the server: (opcode, body), in order."""
    sent: list[tuple[int, bytes]] = []

    def tap(ct: int, cid: int, way: str, op: int, body: bytes) -> None:
        if way == "out" and ct == ChannelType.INPUTS:
            sent.append((op, body))

    session.ctx.tap = tap
    return sent


def _keys(sent: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    return [m for m in sent if m[0] in (InputsClient.KEY_DOWN, InputsClient.KEY_UP)]


def _press(code: int) -> list[tuple[int, bytes]]:
    return [(InputsClient.KEY_DOWN, im.build_key_down(code)),
            (InputsClient.KEY_UP, im.build_key_up(code))]


def _inputs_session(client_mouse: bool = True) -> tuple[Session, list[tuple[int, bytes]]]:
    session = _session()
    sent = _tap_inputs(session)
    _link(session, MainChannel(0, session.ctx))
    _link(session, InputsChannel(0, session.ctx))
    if client_mouse:
        session.ctx.state.current_mouse_mode = MouseMode.CLIENT
    return session, sent


# --- the socket file ----------------------------------------------------------------------


def test_start_checks_the_path_and_the_socket_appears_once_established(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session = _session()

    async def body() -> None:
        srv = ControlServer(path)
        await srv.start(session)
        assert not os.path.lexists(path)  # start only checks
        events = session.events(*srv.kinds)
        task = asyncio.ensure_future(srv.run(session, events))
        try:
            session.publish(GapOpened("display:unimpl:test", "x", None))
            session.publish(SurfaceCreated(0, 0, 640, 480, 32, True))
            await asyncio.sleep(0.05)
            assert not os.path.lexists(path) and not srv.listening
            with pytest.raises((FileNotFoundError, ConnectionRefusedError)):
                await asyncio.open_unix_connection(str(path))
            session.publish(SessionEstablished(1))
            await wait_until(lambda: os.path.lexists(path))
            st = os.lstat(path)
            assert stat.S_ISSOCK(st.st_mode)
            assert stat.S_IMODE(st.st_mode) == 0o600
            assert srv.listening
            conn = await connect(path)
            assert (await conn.result("status"))["spice_connected"] is False
            session.publish(SessionEstablished(1))  # a second one changes nothing
            assert (await conn.result("status"))["ryll_version"] == __version__
            await conn.close()
        finally:
            events.close()
            await task
            await srv.stop(session, None)
        assert not os.path.lexists(path)
        assert not srv.listening

    run(body)


def test_socket_is_created_at_once_when_already_established(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session = _session()
    session.established = True

    async def body() -> None:
        async with serving(path, session, established=False) as srv:
            await wait_until(lambda: srv.listening)
            assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
            conn = await connect(path)
            await conn.close()
        assert not os.path.lexists(path)

    run(body)


def test_start_raises_a_usage_error_for_a_bad_path(sockdir: Path) -> None:
    async def body() -> None:
        with pytest.raises(UsageError, match="no such directory"):
            await ControlServer(sockdir / "no" / "c.sock").start(_session())
        (sockdir / "f").write_text("precious")
        with pytest.raises(UsageError, match="not a socket"):
            await ControlServer(sockdir / "f").start(_session())
        assert (sockdir / "f").read_text() == "precious"

    run(body)


def test_check_socket_path_accepts_a_free_path_and_a_stale_socket(sockdir: Path) -> None:
    check_socket_path(sockdir / "free.sock")
    assert not os.path.lexists(sockdir / "free.sock")  # checking creates nothing
    stale = sockdir / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()  # the file stays, nobody listens: what a killed ryll leaves
    check_socket_path(stale)
    assert stat.S_ISSOCK(os.lstat(stale).st_mode)  # and removes nothing


def test_check_socket_path_refusals(sockdir: Path) -> None:
    with pytest.raises(UsageError, match="no such directory"):
        check_socket_path(sockdir / "no" / "such" / "c.sock")
    (sockdir / "notadir").write_text("x")
    with pytest.raises(UsageError, match="no such directory"):
        check_socket_path(sockdir / "notadir" / "c.sock")
    (sockdir / "d").mkdir()
    with pytest.raises(UsageError, match="not a socket"):
        check_socket_path(sockdir / "d")
    (sockdir / "file").write_text("precious")
    with pytest.raises(UsageError, match="not a socket"):
        check_socket_path(sockdir / "file")
    assert (sockdir / "file").read_text() == "precious"
    (sockdir / "link").symlink_to(sockdir / "file")
    with pytest.raises(UsageError, match="not a socket"):
        check_socket_path(sockdir / "link")
    (sockdir / "dangling").symlink_to(sockdir / "nothing-here")
    with pytest.raises(UsageError, match="not a socket"):
        check_socket_path(sockdir / "dangling")
    with pytest.raises(UsageError, match="too long"):
        check_socket_path(sockdir / ("x" * 120))
    live = sockdir / "live.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(live))
    s.listen(1)
    try:
        with pytest.raises(UsageError, match="in use"):
            check_socket_path(live)
    finally:
        s.close()


def test_check_socket_path_relative(sockdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(sockdir)
    check_socket_path(Path("rel.sock"))
    with pytest.raises(UsageError, match="no such directory"):
        check_socket_path(Path("missing/rel.sock"))


def test_create_socket_refuses_what_is_not_a_stale_socket(sockdir: Path) -> None:
    path = sockdir / "file"
    path.write_text("precious")
    with pytest.raises(UsageError, match="not a socket"):
        create_socket(path)
    assert path.read_text() == "precious"
    (sockdir / "d").mkdir()
    with pytest.raises(UsageError, match="not a socket"):
        create_socket(sockdir / "d")
    (sockdir / "link").symlink_to(path)
    with pytest.raises(UsageError, match="not a socket"):
        create_socket(sockdir / "link")
    assert path.read_text() == "precious"
    with pytest.raises(UsageError, match="cannot create"):
        create_socket(sockdir / "no" / "such" / "dir.sock")
    with pytest.raises(UsageError, match="too long"):
        create_socket(sockdir / ("x" * 120))
    live = sockdir / "live.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(live))
    s.listen(1)
    try:
        with pytest.raises(UsageError, match="in use"):
            create_socket(live)
    finally:
        s.close()


def test_create_socket_replaces_a_stale_socket(sockdir: Path) -> None:
    path = sockdir / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()
    os.chmod(path, 0o755)
    sock = create_socket(path)
    try:
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        probe = socket.socket(socket.AF_UNIX)
        probe.connect(str(path))  # it listens
        probe.close()
    finally:
        sock.close()


def test_a_path_taken_after_start_is_not_clobbered(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session = _session()

    async def body() -> None:
        session._done = asyncio.get_running_loop().create_future()
        async with serving(path, session, established=False) as srv:
            path.write_text("someone else's")
            session.publish(SessionEstablished(1))
            await wait_until(lambda: session._done is not None and session._done.done())
            assert not srv.listening
            end = session._done.result()
            assert end.reason == "stopped" and "not a socket" in end.message
            # The run's exit code says it (runner._with_failures): a usage error, 2.
            assert isinstance(srv.failure, UsageError) and "not a socket" in str(srv.failure)
            assert srv.failure.exit_code == 2
        assert path.read_text() == "someone else's"

    run(body)


def test_stop_leaves_a_replaced_file_alone(sockdir: Path) -> None:
    path = sockdir / "c.sock"

    async def body() -> None:
        async with serving(path):
            path.unlink()
            path.write_text("someone else's")
        assert path.read_text() == "someone else's"

    run(body)


# --- hello --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2", "1.3", "1.99"])
def test_hello_accepts_any_minor_version(sockdir: Path, version: str) -> None:
    path = sockdir / "c.sock"

    async def body() -> None:
        async with serving(path) as srv:
            conn = await connect(path, hello=False)
            await conn.send({"id": "h", "method": "hello",
                             "params": {"client_name": "my-loadtest",
                                        "protocol_version": version}})
            reply = await conn.line()
            assert reply == {"id": "h", "ok": True, "result": {
                "server_name": "ryll",
                "protocol_version": "1.3",
                "supported_methods": list(proto.METHODS),
                "supported_events": list(proto.EVENTS),
                "ryll_version": __version__,
                "max_line_bytes": proto.MAX_LINE_BYTES,
            }}
            assert srv._client is not None and srv._client.client_name == "my-loadtest"
            assert srv._client.greeted
            assert (await conn.result("status"))["spice_connected"] is False
            await conn.close()

    run(body)


def test_requests_before_hello_get_no_hello_yet_and_the_connection_stays(sockdir: Path
                                                                        ) -> None:
    path = sockdir / "c.sock"

    async def body() -> None:
        async with serving(path):
            conn = await connect(path, hello=False)
            for method, params in (("status", {}), ("subscribe", {"events": ["gap"]}),
                                   ("quit", {})):
                reply = await conn.call(method, params, rid=f"early-{method}")
                assert reply == {"id": f"early-{method}", "ok": False, "error": {
                    "code": "no_hello_yet", "message": "first request must be hello"}}
            # the hello rule comes before the method and its params (the specification): a
            # line that is no request is still bad_request
            await conn.send(b"garbage\n")
            assert (await conn.line())["error"]["code"] == "bad_request"
            assert await conn.error("frobnicate") == "no_hello_yet"
            assert await conn.error("send_key", {}) == "no_hello_yet"
            # hello itself can be wrong and retried
            assert await conn.error("hello", {}) == "bad_params"
            assert await conn.error("hello", {"protocol_version": "1"}) == "bad_params"
            assert await conn.error("hello", {"protocol_version": "one.two"}) == "bad_params"
            assert await conn.error("status") == "no_hello_yet"
            await conn.hello("1.0")
            assert "spice_connected" in await conn.result("status")
            # a second hello is answered too
            assert (await conn.hello("1.3"))["server_name"] == "ryll"
            await conn.close()

    run(body)


@pytest.mark.parametrize("version", ["2.0", "0.9", "10.2"])
def test_hello_major_mismatch_is_refused_and_closed(sockdir: Path, version: str) -> None:
    path = sockdir / "c.sock"

    async def body() -> None:
        async with serving(path) as srv:
            conn = await connect(path, hello=False)
            reply = await conn.call("hello", {"protocol_version": version}, rid=1)
            major = version.split(".")[0]
            assert reply == {"id": 1, "ok": False, "error": {
                "code": "protocol_version_mismatch",
                "message": f"server speaks major version 1; client requested major version "
                           f"{int(major)}"}}
            assert await conn.eof()
            await conn.close()
            # the next client is served
            again = await connect_when_free(srv, path)
            assert (await again.result("status"))["spice_connected"] is False
            await again.close()
            assert srv.clients_served == 2

    run(body)


def test_mismatch_after_a_good_hello_also_closes(sockdir: Path) -> None:
    path = sockdir / "c.sock"

    async def body() -> None:
        async with serving(path):
            conn = await connect(path)
            assert await conn.error("hello", {"protocol_version": "2.0"}) == (
                "protocol_version_mismatch")
            assert await conn.eof()
            await conn.close()

    run(body)


# --- one client at a time, malformed input ------------------------------------------------


def test_second_client_is_busy_then_first_leaves(sockdir: Path) -> None:
    path = sockdir / "c.sock"

    async def body() -> None:
        async with serving(path) as srv:
            first = await connect(path)
            second = await connect(path, hello=False)
            assert await second.line() == {
                "ok": False, "error": {"code": "busy", "message": "another client is connected"}}
            assert await second.eof()  # closed by ryll, without reading anything
            await second.close()
            # the first client is unaffected
            assert "surfaces" in await first.result("status")
            await first.close()
            third = await connect_when_free(srv, path)
            assert "surfaces" in await third.result("status")
            await third.close()
            assert srv.clients_refused == 1 and srv.clients_served == 2

    run(body)


def test_requests_are_answered_in_order_one_at_a_time(sockdir: Path) -> None:
    """A request in progress does not make the next one busy: requests on one connection are
    handled one after the other; only a second connection is busy meanwhile."""
    path = sockdir / "c.sock"
    session, sent = _inputs_session()

    async def body() -> None:
        async with serving(path, session) as srv:
            conn = await connect(path)
            started = time.monotonic()
            await conn.send(
                b'{"id":1,"method":"type","params":{"text":"aaaa","char_delay_ms":60}}\n'
                b'{"id":2,"method":"status","params":{}}\n'
            )
            await asyncio.sleep(0.05)
            other = await connect(path, hello=False)
            busy = await other.line()
            assert busy["error"]["code"] == "busy" and "id" not in busy
            assert await other.eof()
            await other.close()
            first = await conn.line()
            assert first["id"] == 1 and first["ok"] is True
            assert first["result"]["chars_sent"] == 4
            assert first["result"]["elapsed_ms"] >= 200
            assert time.monotonic() - started >= 0.2
            second = await conn.line()
            assert second["id"] == 2 and second["ok"] is True
            assert len(_keys(sent)) == 8
            await conn.close()
            assert srv.clients_refused == 1

    run(body)


def test_malformed_lines_get_errors_and_the_connection_survives(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    no_id = [
        b"garbage",
        b"\xff\xfe",
        b"[1,2]",
        b'"status"',
        b'{"method":"status"}',
        b'{"id":1.5,"method":"status"}',
        b'{"id":"' + b"x" * 257 + b'","method":"status"}',
        b"[" * 200_000,
        b'{"id":1,"method":"status","params":{"x":NaN}}',
    ]
    with_id = [
        (b'{"id":1}', 1, "bad_request"),
        (b'{"id":"m","method":5}', "m", "bad_request"),
        (b'{"id":2,"method":"frobnicate","params":{}}', 2, "unknown_method"),
        (b'{"id":3,"method":"status","params":[]}', 3, "bad_params"),
        (b'{"id":4,"method":"send_key","params":{"key":7}}', 4, "bad_params"),
        (b'{"id":5,"method":"send_key","params":{"scancode":28,"state":"sideways"}}', 5,
         "bad_state"),
        (b'{"id":6,"method":"screenshot","params":{"format":"jpeg"}}', 6,
         "unsupported_format"),
        (b'{"id":7,"method":"screenshot","params":{}}', 7, "no_such_surface"),
        (b'{"id":8,"method":"send_key","params":{"scancode":28,"state":"up"}}', 8,
         "no_channel"),
        (b'{"id":9,"method":"clipboard_get","params":{}}', 9, "agent_not_connected"),
    ]

    async def body() -> None:
        async with serving(path):
            conn = await connect(path)
            for line in no_id:
                await conn.send(line + b"\n")
                reply = await conn.line()
                assert reply["ok"] is False and "id" not in reply, (line[:40], reply)
                assert reply["error"]["code"] == "bad_request", (line[:40], reply)
            for line, rid, code in with_id:
                await conn.send(line + b"\n")
                reply = await conn.line()
                assert reply["id"] == rid and reply["ok"] is False, (line, reply)
                assert reply["error"]["code"] == code, (line, reply)
            # blank lines are ignored, CRLF is fine, several requests in one write
            await conn.send(b'\n\r\n  \n{"id":"a","method":"status"}\r\n'
                            b'{"id":"b","method":"status","params":null}\n')
            assert (await conn.line())["id"] == "a"
            assert (await conn.line())["id"] == "b"
            # one request split over many writes
            for b in b'{"id":"c","method":"status"}\n':
                conn.writer.write(bytes([b]))
            await conn.writer.drain()
            assert (await conn.line())["id"] == "c"
            await conn.close()

    run(body)


def test_unknown_params_are_reported_in_the_reply(sockdir: Path) -> None:
    path = sockdir / "c.sock"

    async def body() -> None:
        async with serving(path):
            conn = await connect(path)
            result = await conn.result("status", {"verbose": True})
            assert result["ignored_params"] == ["verbose"]
            assert "ignored_params" not in await conn.result("status")
            sub = await conn.result("subscribe", {"events": ["gap"], "since": 0})
            assert sub == {"subscribed": ["gap"], "ignored_params": ["since"]}
            await conn.close()

    run(body)


def test_too_large_line_is_refused_and_closed(sockdir: Path) -> None:
    path = sockdir / "c.sock"

    async def body() -> None:
        async with serving(path) as srv:
            conn = await connect(path)
            # a request of exactly the limit is fine
            head = b'{"id":1,"method":"status","params":{"pad":"'
            tail = b'"}}'
            exact = head + b"p" * (proto.MAX_LINE_BYTES - len(head) - len(tail)) + tail
            assert len(exact) == proto.MAX_LINE_BYTES
            await conn.send(exact + b"\r\n")
            reply = await conn.line()
            assert reply["ok"] is True and reply["result"]["ignored_params"] == ["pad"]
            try:
                conn.writer.write(b'{"id":2,"method":"paste","params":{"text":"'
                                  + b"a" * (2 << 20))
                await conn.writer.drain()
            except (ConnectionError, OSError):
                pass  # ryll may close before it has read everything
            reply = await conn.line()
            assert reply["ok"] is False and "id" not in reply
            assert reply["error"]["code"] == "too_large"
            assert str(proto.MAX_LINE_BYTES) in reply["error"]["message"]
            assert await conn.eof()
            await conn.close()
            # the server still serves
            again = await connect_when_free(srv, path)
            assert "surfaces" in await again.result("status")
            assert srv.clients_served == 2
            await again.close()

    run(body)


def test_garbage_flood_without_reading_stays_bounded(sockdir: Path) -> None:
    """Error replies are back-pressured like results: a client that floods bad lines and never
    reads cannot make ryll queue without bound."""
    path = sockdir / "c.sock"

    async def body() -> None:
        async with serving(path) as srv:
            reader, writer = await asyncio.open_unix_connection(str(path))
            writer.write(b"x\n" * 200_000)  # 200k bad_request errors, ~16 MiB of replies
            await wait_until(lambda: srv._client is not None)
            client = srv._client
            assert client is not None
            # ryll stops reading once the replies wait to be written...
            await wait_until(lambda: len(client._replies) == server_mod.MAX_PENDING_REPLIES)
            await asyncio.sleep(0.2)
            # ...and stays there: nothing grows while the client does not read
            assert len(client._replies) == server_mod.MAX_PENDING_REPLIES
            assert client.writer.transport.get_write_buffer_size() < 1 << 20
            writer.transport.abort()
            await wait_until(lambda: srv._client is None)

    run(body)


def test_client_that_vanishes_mid_reply(sockdir: Path) -> None:
    """A client sends requests with big replies and disconnects without reading: ryll neither
    crashes nor stops serving."""
    path = sockdir / "c.sock"
    session = _session()
    _add_surface(session, 1024, 768)

    async def body() -> None:
        async with serving(path, session) as srv:
            conn = await connect(path)
            for i in range(5):
                await conn.send({"id": i, "method": "screenshot",
                                 "params": {"format": "rgba"}})
            conn.writer.transport.abort()
            again = await connect_when_free(srv, path)
            assert "surfaces" in await again.result("status")
            await again.close()

    run(body)


def test_client_that_never_reads_is_dropped(sockdir: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    path = sockdir / "c.sock"
    monkeypatch.setattr(server_mod, "WRITE_TIMEOUT_S", 0.3)
    session = _session()
    _add_surface(session, 1024, 768)

    async def body() -> None:
        async with serving(path, session) as srv:
            reader, writer = await asyncio.open_unix_connection(str(path))
            writer.write(b'{"id":0,"method":"hello","params":{"protocol_version":"1.2"}}\n')
            for i in range(3):  # ~12 MiB of replies nobody reads
                writer.write(b'{"id":%d,"method":"screenshot","params":{"format":"rgba"}}\n'
                             % (i + 1))
            await writer.drain()
            await wait_until(lambda: srv._client is not None)
            await wait_until(lambda: srv._client is None, timeout=5)
            writer.close()

    run(body)


# --- events -------------------------------------------------------------------------------


def test_subscribe_unsubscribe_and_event_envelopes(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session = _session()

    async def body() -> None:
        async with serving(path, session) as srv:
            conn = await connect(path)
            session.publish(GapOpened("display:unimpl:test_one", "x", None))  # not subscribed
            sub = await conn.result("subscribe", {"events": ["gap", "nope", "surface_created",
                                                             "digest_updated"]})
            assert sub == {"subscribed": ["gap", "surface_created"]}
            assert srv._client is not None
            assert srv._client.subscriptions == {"gap", "surface_created"}
            session.publish(GapOpened("display:unimpl:test_two", "y", None))
            assert await conn.line() == {"event": "gap", "data": {
                "key": "display:unimpl:test_two", "detail": "y"}}
            # every session event reaches the control socket through its subscription
            session.publish(SurfaceCreated(0, 0, 640, 480, 32, True))
            assert await conn.line() == {"event": "surface_created", "data": {
                "channel_id": 0, "surface_id": 0, "width": 640, "height": 480, "format": 32,
                "primary": True}}
            # subscribing again is a no-op that still reports the name
            assert await conn.result("subscribe", {"events": ["gap"]}) == {
                "subscribed": ["gap"]}
            unsub = await conn.result("unsubscribe", {"events": ["gap", "nope", "latency"]})
            assert unsub == {"unsubscribed": ["gap"]}
            assert await conn.result("unsubscribe", {"events": ["gap"]}) == {
                "unsubscribed": []}
            session.publish(GapOpened("display:unimpl:test_three", "z", None))
            session.publish(SurfaceCreated(0, 1, 8, 8, 32, False))
            ev = await conn.line()  # the gap was not sent
            assert ev["event"] == "surface_created" and ev["data"]["surface_id"] == 1
            assert conn.events == []
            await conn.close()
            # subscriptions belong to the connection
            again = await connect_when_free(srv, path)
            session.publish(GapOpened("display:unimpl:test_four", "w", None))
            assert "surfaces" in await again.result("status")
            assert again.events == []
            await again.close()

    run(body)


def test_translated_events(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session = _session()

    async def body() -> None:
        async with serving(path, session):
            conn = await connect(path)
            await conn.result("subscribe", {"events": ["latency", "surface_drawn",
                                                       "mouse_mode"]})
            before = time.time_ns() // 1000
            session.publish(ServerPinged(ChannelType.MAIN, 0, 1))  # the first starts the clock
            session.publish(ServerPinged(ChannelType.DISPLAY, 0, 1))  # not main's: ignored
            await asyncio.sleep(0.05)
            session.publish(ServerPinged(ChannelType.MAIN, 0, 2))
            ev = await conn.line()
            assert ev["event"] == "latency" and set(ev["data"]) == {"sample_ms", "wallclock_us"}
            assert 25 <= ev["data"]["sample_ms"] < 5000
            assert before <= ev["data"]["wallclock_us"] <= time.time_ns() // 1000
            session.publish(DisplayUpdated(0, 0, Rect(1, 2, 3, 4)))
            ev = await conn.line()
            assert ev["event"] == "surface_drawn"
            data = ev["data"]
            assert (data["display_channel_id"], data["surface_id"]) == (0, 0)
            assert data["rect"] == {"top": 1, "left": 2, "bottom": 3, "right": 4}
            assert 0 <= data["produced_at_secs"] <= session.uptime
            assert before <= data["wallclock_us"] <= time.time_ns() // 1000
            session.publish(MouseModeChanged(MouseMode.CLIENT, 3))
            assert await conn.line() == {"event": "mouse_mode", "data": {"mode": "client"}}
            await conn.close()

    run(body)


def test_full_event_queue_drops_the_oldest_and_says_so(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    total = server_mod.MAX_QUEUED_EVENTS + 44

    async def body() -> None:
        async with serving(path) as srv:
            conn = await connect(path)
            await conn.result("subscribe", {"events": ["gap"]})  # not "dropped"
            client = srv._client
            assert client is not None
            # published faster than anything can be written (no await in between)
            for i in range(total):
                srv.publish("gap", {"key": f"k{i}", "detail": ""})
            assert len(client._events) == server_mod.MAX_QUEUED_EVENTS
            assert client.dropped_events == 44
            keys = []
            for _ in range(server_mod.MAX_QUEUED_EVENTS):
                ev = await conn.line()
                assert ev["event"] == "gap"
                keys.append(ev["data"]["key"])
            assert keys == [f"k{i}" for i in range(44, total)]  # the oldest went
            assert await conn.line() == {"event": "dropped", "data": {"count": 44}}
            # replies are never dropped, and the count starts again
            for i in range(total):
                srv.publish("gap", {"key": f"again{i}", "detail": ""})
            reply = await conn.call("status", rid="s")
            assert reply["ok"] is True
            assert len(conn.events) < server_mod.MAX_QUEUED_EVENTS  # not behind the queue
            lines = list(conn.events)
            while len(lines) < server_mod.MAX_QUEUED_EVENTS + 1:
                lines.append(await conn.line())
            assert [x["data"]["key"] for x in lines[:-1]] == [
                f"again{i}" for i in range(44, total)]
            assert lines[-1] == {"event": "dropped", "data": {"count": 44}}
            assert client.dropped_events == 88
            await conn.close()

    run(body)


def test_dropped_is_sent_under_steady_pressure(sockdir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = sockdir / "c.sock"
    monkeypatch.setattr(server_mod, "MAX_QUEUED_EVENTS", 8)
    monkeypatch.setattr(server_mod, "DROPPED_MAX_DELAY_S", 0.0)

    async def body() -> None:
        async with serving(path) as srv:
            conn = await connect(path)
            await conn.result("subscribe", {"events": ["gap"]})
            for i in range(20):
                srv.publish("gap", {"key": f"k{i}", "detail": ""})
            # the count did not wait for the queue to drain
            assert await conn.line() == {"event": "dropped", "data": {"count": 12}}
            keys = [(await conn.line())["data"]["key"] for _ in range(8)]
            assert keys == [f"k{i}" for i in range(12, 20)]
            await conn.close()

    run(body)


def test_session_ended_event_then_eof_and_not_connected(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session = _session()
    _link(session, MainChannel(0, session.ctx))

    async def body() -> None:
        async with serving(path, session) as srv:
            conn = await connect(path)
            assert (await conn.result("status"))["spice_connected"] is True
            await conn.result("subscribe", {"events": ["session_ended"]})
            srv.session_ended(SessionEnd("stopped", "duration elapsed"))
            assert await conn.line() == {"event": "session_ended", "data": {
                "reason": "stopped", "message": "duration elapsed", "exit_code": 0}}
            for method, params in (
                ("send_key", {"key": "a", "state": "press"}), ("paste", {"text": "a"}),
                ("type", {"text": "a"}),
                ("mouse_move", {"x": 1, "y": 1}), ("mouse_click", {}), ("mouse_down", {}),
                ("mouse_up", {}), ("mouse_scroll", {"direction": "up"}),
                ("clipboard_set", {"text": "a"}), ("clipboard_get", {}),
                ("resolution", {"width": 8, "height": 8}), ("quit", {}),
            ):
                assert await conn.error(method, params) == "not_connected", method
            status = await conn.result("status")
            assert status["spice_connected"] is False
            assert status["session"]["state"] == "ended"
            assert status["session"]["end"] == {"reason": "stopped",
                                                "message": "duration elapsed", "exit_code": 0}
            # stop() does not announce the end twice, closes the client, removes the socket
            await srv.stop(session, SessionEnd("stopped", "again"))
            assert await conn.eof()
            assert conn.events == []
            assert not os.path.lexists(path)
            await conn.close()

    run(body)


def test_stop_announces_the_end_and_cancels_the_clients_work(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session, sent = _inputs_session()

    async def body() -> None:
        async with serving(path, session) as srv:
            conn = await connect(path)
            await conn.result("subscribe", {"events": ["session_ended", "paste_completed",
                                                       "paste_failed"]})
            assert await conn.result("paste", {"text": "a" * 50, "char_delay_ms": 100}) == {}
            client = srv._client
            assert client is not None and len(client._tasks) == 1
            [task] = client._tasks
            await wait_until(lambda: len(_keys(sent)) >= 2)
            await srv.stop(session, SessionEnd("server_closed", "the server went away"))
            assert await conn.line() == {"event": "session_ended", "data": {
                "reason": "server_closed", "message": "the server went away", "exit_code": 0}}
            assert await conn.eof()
            assert task.cancelled()
            assert not client._tasks and not srv._client_tasks
            assert not os.path.lexists(path) and not srv.listening
            typed = len(_keys(sent))
            await asyncio.sleep(0.25)
            assert len(_keys(sent)) == typed < 100  # no key after the end
            await conn.close()

    run(body)


# --- status -------------------------------------------------------------------------------


def test_status_of_a_session_not_connected_yet(sockdir: Path) -> None:
    path = sockdir / "c.sock"

    async def body() -> None:
        async with serving(path):
            conn = await connect(path)
            status = await conn.result("status")
            # 1.2's three members first
            assert list(status)[:3] == ["spice_connected", "agent_connected", "surfaces"]
            assert status["spice_connected"] is False
            assert status["agent_connected"] is False
            assert status["surfaces"] == []
            assert status["ryll_version"] == __version__
            assert status["session"]["state"] == "connecting"
            assert status["session"]["target"]["host"] == "127.0.0.1"
            assert status["session"]["target"]["port"] == 1
            assert status["session"]["end"] is None
            assert status["channels"] == [] and status["displays"] == []
            assert status["cursor"] is None and status["agent"]["connected"] is False
            assert status["gaps"] == {"count": 0, "keys": {}}
            assert status["bytes_in"] == status["bytes_out"] == 0
            assert {"uptime_s", "mouse_mode", "session_id"} <= set(status["session"])
            assert {"marks", "input_latency", "memory"} <= set(status)
            await conn.close()

    run(body)


def test_status_of_a_connected_session(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session = _session()
    _link(session, MainChannel(0, session.ctx))
    _add_surface(session, 64, 48)
    _add_surface(session, 16, 8, primary=False)
    session.ctx.gaps.register("display:unimpl:test", "a test gap")

    async def body() -> None:
        async with serving(path, session):
            conn = await connect(path)
            status = await conn.result("status")
            assert status["spice_connected"] is True
            assert status["surfaces"] == [
                {"channel_id": 0, "surface_id": 0, "width": 64, "height": 48},
                {"channel_id": 0, "surface_id": 1, "width": 16, "height": 8},
            ]
            assert [(d["display"], d["channel_id"], d["width"], d["height"])
                    for d in status["displays"]] == [(0, 0, 64, 48)]
            assert status["session"]["state"] == "connected"
            assert sorted(c["name"] for c in status["channels"]) == ["display", "main"]
            assert status["gaps"]["count"] == 1
            assert "display:unimpl:test" in status["gaps"]["keys"]
            await conn.close()

    run(body)


# --- the verbs ----------------------------------------------------------------------------


def test_screenshot_png_and_rgba(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session = _session()
    surface = _add_surface(session, 64, 48)
    other = _add_surface(session, 16, 8, primary=False)

    async def body() -> None:
        async with serving(path, session):
            conn = await connect(path)
            shot = await conn.result("screenshot")
            assert set(shot) == {"width", "height", "format", "data_base64", "channel_id",
                                 "surface_id"}
            assert (shot["format"], shot["width"], shot["height"]) == ("png", 64, 48)
            assert (shot["channel_id"], shot["surface_id"]) == (0, 0)
            img = Image.open(io.BytesIO(base64.b64decode(shot["data_base64"], validate=True)))
            assert img.format == "PNG" and img.mode == "RGB"
            assert np.array_equal(np.asarray(img), surface.rgb())
            raw = await conn.result("screenshot", {"format": "rgba", "surface_id": 0})
            rgba = np.frombuffer(base64.b64decode(raw["data_base64"]), np.uint8)
            rgba = rgba.reshape(48, 64, 4)
            assert np.array_equal(rgba[..., :3], surface.rgb())
            assert (rgba[..., 3] == 255).all()
            # any surface by id (1.2), off-screen ones included; the channel may be named
            off = await conn.result("screenshot", {"surface_id": 1, "format": "rgba",
                                                   "channel_id": 0})
            assert (off["width"], off["height"], off["surface_id"]) == (16, 8, 1)
            pix = np.frombuffer(base64.b64decode(off["data_base64"]), np.uint8)
            assert np.array_equal(pix.reshape(8, 16, 4)[..., :3], other.rgb())
            # or a display (1.3)
            disp = await conn.result("screenshot", {"display": 0, "format": "rgba"})
            assert base64.b64decode(disp["data_base64"]) == rgba.tobytes()
            assert await conn.error("screenshot", {"format": "jpeg"}) == "unsupported_format"
            assert await conn.error("screenshot", {"format": "PNG"}) == "unsupported_format"
            assert await conn.error("screenshot", {"surface_id": 5}) == "no_such_surface"
            assert await conn.error("screenshot", {"channel_id": 1}) == "no_such_surface"
            assert await conn.error("screenshot", {"display": 1}) == "no_such_surface"
            assert await conn.error("screenshot", {"display": 0, "surface_id": 0}) == (
                "bad_params")
            assert await conn.error("screenshot", {"display": 0, "channel_id": 0}) == (
                "bad_params")
            await conn.close()

    run(body)


def test_screenshot_without_a_display_channel(sockdir: Path) -> None:
    path = sockdir / "c.sock"

    async def body() -> None:
        async with serving(path):
            conn = await connect(path)
            assert await conn.error("screenshot") == "no_such_surface"
            assert await conn.error("screenshot", {"display": 0}) == "no_such_surface"
            await conn.close()

    run(body)


def test_send_key_by_scancode_and_by_name(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session, sent = _inputs_session()
    a, shift, left = 0x1E, 0x2A, EXTENDED | 0x4B

    async def body() -> None:
        async with serving(path, session):
            conn = await connect(path)
            for params in (
                {"scancode": 0x1E, "state": "press"},
                {"scancode": 0x1E, "state": "press"},
                {"scancode": 0xE04B, "state": "down"},  # 0xE0 prefix in the high byte
                {"scancode": 0xE0CB, "state": "up"},  # the break bit is ignored
                {"key": "a", "state": "press"},
                {"key": "shift", "state": "down"},
                {"key": "shift", "state": "up"},
            ):
                assert await conn.result("send_key", params) == {}, params
            assert _keys(sent) == [
                *_press(a), *_press(a),
                (InputsClient.KEY_DOWN, im.build_key_down(left)),
                (InputsClient.KEY_UP, im.build_key_up(left)),
                *_press(a),
                (InputsClient.KEY_DOWN, im.build_key_down(shift)),
                (InputsClient.KEY_UP, im.build_key_up(shift)),
            ]
            before = len(sent)
            for scancode in (0, 0x80, 0x4BE0, 0xE000, 0x1234):
                assert await conn.error("send_key", {"scancode": scancode,
                                                     "state": "press"}) == "bad_params"
            assert await conn.error("send_key", {"key": "nosuchkey",
                                                 "state": "press"}) == "bad_params"
            assert await conn.error("send_key", {"scancode": 0x1E}) == "bad_params"  # no state
            for state in ("sideways", "", "DOWN"):
                assert await conn.error("send_key", {"scancode": 28, "state": state}) == (
                    "bad_state")
            reply = await conn.call("send_key", {"key": "nosuchkey", "state": "up"}, rid="k")
            assert reply["id"] == "k" and "nosuchkey" in reply["error"]["message"]
            assert len(sent) == before  # nothing went out for the refused ones
            await conn.close()

    run(body)


def test_send_key_state_is_checked_before_the_channel(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session = _session()

    async def body() -> None:
        async with serving(path, session):
            conn = await connect(path)
            assert await conn.error("send_key", {"scancode": 28, "state": "x"}) == "bad_state"
            assert await conn.error("send_key", {"scancode": 28, "state": "up"}) == "no_channel"
            # a scancode that is no key is bad_params whether or not a channel is linked
            assert await conn.error("send_key", {"scancode": 0x7F00,
                                                 "state": "up"}) == "bad_params"
            assert await conn.error("type", {"text": "a"}) == "no_channel"
            assert await conn.error("paste", {"text": "a"}) == "no_channel"
            assert await conn.error("mouse_click", {}) == "no_channel"
            await conn.close()

    run(body)


def test_paste_answers_at_once_then_reports(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session, sent = _inputs_session()
    h, i = 0x23, 0x17

    async def body() -> None:
        async with serving(path, session):
            conn = await connect(path)
            await conn.result("subscribe", {"events": ["paste_completed", "paste_failed"]})
            reply = await conn.call("paste", {"text": "hi", "char_delay_ms": 0}, rid="p1")
            assert reply == {"id": "p1", "ok": True, "result": {}}
            assert await conn.line() == {"event": "paste_completed", "data": {
                "request_id": "p1", "chars_sent": 2}}
            assert _keys(sent) == [*_press(h), *_press(i)]
            # a character no US key types: answered, then paste_failed, nothing typed
            reply = await conn.call("paste", {"text": "a\u20acb"}, rid=7)
            assert reply == {"id": 7, "ok": True, "result": {}}
            ev = await conn.line()
            assert ev["event"] == "paste_failed" and ev["data"]["request_id"] == 7
            assert "\u20ac" in ev["data"]["reason"]
            assert len(_keys(sent)) == 4
            # the default delay (10 ms) between characters
            started = time.monotonic()
            await conn.result("paste", {"text": "hihihi"})
            ev = await conn.line()
            assert ev["event"] == "paste_completed" and ev["data"]["chars_sent"] == 6
            assert time.monotonic() - started >= 0.055
            await conn.close()

    run(body)


def test_paste_is_cancelled_when_the_client_goes(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session, sent = _inputs_session()

    async def body() -> None:
        async with serving(path, session) as srv:
            conn = await connect(path)
            client: ControlClient | None = srv._client
            assert client is not None
            await conn.result("paste", {"text": "a" * 40, "char_delay_ms": 100})
            [task] = client._tasks
            await wait_until(lambda: len(_keys(sent)) >= 2)
            await conn.close()
            await wait_until(lambda: srv._client is None)
            assert task.cancelled() and not client._tasks
            typed = len(_keys(sent))
            await asyncio.sleep(0.25)
            assert len(_keys(sent)) == typed < 80
            # the next client is served normally
            again = await connect_when_free(srv, path)
            assert "surfaces" in await again.result("status")
            await again.close()

    run(body)


def test_type_answers_when_typed(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session, sent = _inputs_session()

    async def body() -> None:
        async with serving(path, session):
            conn = await connect(path)
            result = await conn.result("type", {"text": "Hi", "char_delay_ms": 0})
            assert result["chars_sent"] == 2 and result["elapsed_ms"] >= 0
            assert _keys(sent) == [
                (InputsClient.KEY_DOWN, im.build_key_down(0x2A)),
                (InputsClient.KEY_DOWN, im.build_key_down(0x23)),
                (InputsClient.KEY_UP, im.build_key_up(0x23)),
                (InputsClient.KEY_UP, im.build_key_up(0x2A)),
                *_press(0x17),
            ]
            assert await conn.error("type", {"text": "\u20ac"}) == "bad_params"
            assert len(_keys(sent)) == 6
            await conn.close()

    run(body)


def test_pointer_verbs_drive_the_real_controller(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session, sent = _inputs_session(client_mouse=True)

    async def body() -> None:
        async with serving(path, session):
            conn = await connect(path)
            assert await conn.result("mouse_move", {"x": 5, "y": 6}) == {
                "mouse_mode": "client"}
            await conn.result("mouse_move", {"x": 7, "y": 8, "display": 1})
            await conn.result("mouse_move", {"dx": 3, "dy": -2})
            await conn.result("mouse_down", {"button": "middle"})
            await conn.result("mouse_up", {"button": "middle"})
            await conn.result("mouse_click", {"button": "right", "x": 1, "y": 2})
            await conn.result("mouse_scroll", {"direction": "down", "count": 2})
            assert sent == [
                (InputsClient.MOUSE_POSITION, im.build_mouse_position(5, 6, 0, 0)),
                (InputsClient.MOUSE_POSITION, im.build_mouse_position(7, 8, 0, 1)),
                (InputsClient.MOUSE_POSITION, im.build_mouse_position(10, 6, 0, 1)),
                (InputsClient.MOUSE_PRESS, im.build_mouse_button(2, 2)),
                (InputsClient.MOUSE_RELEASE, im.build_mouse_button(2, 0)),
                (InputsClient.MOUSE_POSITION, im.build_mouse_position(1, 2, 0, 0)),
                (InputsClient.MOUSE_PRESS, im.build_mouse_button(3, 4)),
                (InputsClient.MOUSE_RELEASE, im.build_mouse_button(3, 0)),
                (InputsClient.MOUSE_PRESS, im.build_mouse_button(5, 0)),  # no wheel mask
                (InputsClient.MOUSE_RELEASE, im.build_mouse_button(5, 0)),
                (InputsClient.MOUSE_PRESS, im.build_mouse_button(5, 0)),  # no wheel mask
                (InputsClient.MOUSE_RELEASE, im.build_mouse_button(5, 0)),
            ]
            await conn.close()

    run(body)


def test_mouse_move_in_server_mode_sends_motion(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session, sent = _inputs_session(client_mouse=False)
    session.ctx.state.current_mouse_mode = MouseMode.SERVER

    async def body() -> None:
        async with serving(path, session):
            conn = await connect(path)
            assert await conn.result("mouse_move", {"dx": 4, "dy": -3}) == {
                "mouse_mode": "server"}
            assert sent == [(InputsClient.MOUSE_MOTION, im.build_mouse_motion(4, -3, 0))]
            await conn.close()

    run(body)


def test_an_internal_error_is_reported_and_the_connection_survives(
    sockdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = sockdir / "c.sock"
    session, _ = _inputs_session()

    async def broken_click(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(session.input, "click", broken_click)

    async def body() -> None:
        async with serving(path, session):
            conn = await connect(path)
            reply = await conn.call("mouse_click", {"button": "left"}, rid=3)
            assert reply["id"] == 3 and reply["error"]["code"] == "internal_error"
            assert "boom" in reply["error"]["message"]
            assert "mouse_click" in reply["error"]["message"]
            assert "surfaces" in await conn.result("status")
            await conn.close()

    run(body)


def _frame(mtype: int, data: bytes = b"") -> bytes:
    return MessageWriter(True).build(mtype, data)


def _agent_main(session: Session) -> MainChannel:
    """A main channel whose guest agent is connected (INIT, then its capabilities)."""
    main = MainChannel(0, session.ctx)
    main.receive_data(_frame(MainServer.INIT, struct.pack("<8I", 1, 1, 3, 1, 1, 10, 0, 0)))
    caps = (va.AgentCap.MONITORS_CONFIG, va.AgentCap.REPLY, va.AgentCap.CLIPBOARD_BY_DEMAND,
            va.AgentCap.CLIPBOARD_SELECTION)
    _guest_send(main, va.AgentMsg.ANNOUNCE_CAPABILITIES,
                va.build_announce_capabilities(False, caps))
    main.data_to_send()
    assert main.agent.connected
    return main


def _guest_send(main: MainChannel, msg_type: int, data: bytes) -> None:
    for piece in va.split(va.build_message(msg_type, data)):
        main.receive_data(_frame(MainServer.AGENT_DATA, piece))


def test_agent_verbs_without_an_agent(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session = _session()

    async def body() -> None:
        async with serving(path, session):
            conn = await connect(path)
            assert await conn.error("clipboard_set", {"text": "x"}) == "agent_not_connected"
            assert await conn.error("clipboard_get") == "agent_not_connected"
            # a resolution waits for an agent
            assert await conn.result("resolution", {"width": 1024, "height": 768}) == {
                "sent": False, "agent_connected": False}
            status = await conn.result("status")
            assert status["agent"]["resolution_requested"] == "1024x768"
            await conn.close()

    run(body)


def test_agent_verbs_with_an_agent(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session = _session()
    main = _agent_main(session)
    _link(session, main)

    async def body() -> None:
        async with serving(path, session):
            conn = await connect(path)
            status = await conn.result("status")
            assert status["agent_connected"] is True
            assert await conn.result("clipboard_set", {"text": "hello guest"}) == {}
            # the guest holds no text: nothing to wait for
            assert await conn.result("clipboard_get", {"timeout": 0.1}) == {"text": None}
            # the guest offers text and never sends it
            _guest_send(main, va.AgentMsg.CLIPBOARD_GRAB, va.build_clipboard_grab([1], 0))
            started = time.monotonic()
            assert await conn.error("clipboard_get", {"timeout": 0.1}) == "timeout"
            assert time.monotonic() - started >= 0.09
            result = await conn.result("resolution", {"width": 800, "height": 600})
            assert result["agent_connected"] is True and isinstance(result["sent"], bool)
            await conn.close()

    run(body)


def test_quit_ends_the_session(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    session = _session()

    async def body() -> None:
        session._done = asyncio.get_running_loop().create_future()
        async with serving(path, session):
            conn = await connect(path)
            assert await conn.result("quit") == {}
            assert session._done.done()
            end = session._done.result()
            assert (end.reason, end.message) == ("stopped", "quit by the control socket")
            await conn.close()

    run(body)


def test_a_paste_that_fails_unexpectedly_still_reports(
    sockdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = sockdir / "c.sock"
    session, _ = _inputs_session()

    async def broken_type(*args: object, **kwargs: object) -> None:
        raise RuntimeError("kaput")

    monkeypatch.setattr(session.input, "type_text", broken_type)

    async def body() -> None:
        async with serving(path, session):
            conn = await connect(path)
            await conn.result("subscribe", {"events": ["paste_failed"]})
            await conn.call("paste", {"text": "hi"}, rid="p9")
            ev = await conn.line()
            assert ev == {"event": "paste_failed", "data": {
                "request_id": "p9", "reason": "internal error: kaput"}}
            assert "surfaces" in await conn.result("status")
            await conn.close()

    run(body)
