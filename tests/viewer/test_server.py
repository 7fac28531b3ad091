"""The viewer's HTTP side with a real aiohttp client: who gets in, what is served, and what a
hostile page can do (nothing but get an error). The session is a real one that has not
connected; the browser-side behaviour is tested in Chromium (tests/e2e/test_viewer.py)."""

from __future__ import annotations

import asyncio
import io
import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ryll.channels.context import ChannelContext
from ryll.diagnostics.reports import BugReports, ReportOptions
from ryll.errors import UsageError
from ryll.session.session import Session, SessionEnd
from ryll.session.target import Target
from ryll.viewer.auth import COOKIE
from ryll.viewer.options import WebOptions
from ryll.viewer.server import MAX_PAGE_MESSAGE, Viewer


def with_viewer(body: Callable[[Viewer, str], Awaitable[None]],
                reports: Path | None = None) -> None:
    async def main() -> None:
        session = Session(Target("127.0.0.1", 1), ChannelContext())
        if reports is not None:  # the real bug reports, as the ryll command has them
            await BugReports(ReportOptions(directory=reports)).start(session)
        viewer = Viewer(WebOptions(), io.StringIO())
        await viewer.start(session)
        assert viewer.url is not None
        try:
            await body(viewer, viewer.url)
        finally:
            await viewer.stop(session, SessionEnd("stopped", "test over"))

    asyncio.run(main())


async def logged_in(url: str) -> aiohttp.ClientSession:
    # unsafe: keep cookies of an IP address (the viewer's 127.0.0.1), as browsers do.
    client = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with client.get(url, allow_redirects=False) as r:
        assert r.status == 303 and r.headers["Location"] == "/"
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    return client


def test_nothing_without_the_token() -> None:
    async def body(viewer: Viewer, url: str) -> None:
        base = viewer.base_url
        async with aiohttp.ClientSession() as anon:
            for path in ("/", "/static/viewer.js", "/ws", "/screenshot.png", "/nope",
                         "/?token=wrong"):
                async with anon.get(base + path) as r:
                    assert r.status == 403, path
                    assert r.headers["Cache-Control"] == "no-store"
        client = await logged_in(url)
        async with client:
            async with client.get(base + "/") as r:
                assert r.status == 200 and "text/html" in r.headers["Content-Type"]
                assert "default-src 'self'" in r.headers["Content-Security-Policy"]
                assert "/static/viewer.js" in await r.text()
            for name, kind in (("viewer.js", "javascript"), ("viewer.css", "css")):
                async with client.get(f"{base}/static/{name}") as r:
                    assert r.status == 200 and kind in r.headers["Content-Type"]
            for path in ("/static/index.html", "/static/..%2Fserver.py", "/static/x.js"):
                async with client.get(base + path) as r:
                    assert r.status == 404, path
            async with client.get(base + "/screenshot.png") as r:
                assert r.status == 404  # no display yet: said, not crashed
        # The link is spent.
        async with aiohttp.ClientSession() as other, other.get(url, allow_redirects=False) as r:
            assert r.status == 403
        # A new one from the viewer works once.
        client = await logged_in(viewer.new_url())
        await client.close()

    with_viewer(body)


def test_a_websocket_from_another_origin_is_refused() -> None:
    async def body(viewer: Viewer, url: str) -> None:
        client = await logged_in(url)
        async with client:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect(viewer.base_url + "/ws",
                                        headers={"Origin": "http://evil.example"})
            assert refused.value.status == 403

    with_viewer(body)


async def _texts(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[dict[str, Any]]:
    out = []
    while len(out) < n:
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        out.append(json.loads(msg.data))
    return out


def test_a_hostile_page_gets_errors_and_the_viewer_stays(tmp_path: Path) -> None:
    async def body(viewer: Viewer, url: str) -> None:
        client = await logged_in(url)
        async with client:
            ws = await client.ws_connect(viewer.base_url + "/ws",
                                         headers={"Origin": viewer.base_url})
            kinds = [m["t"] for m in await _texts(ws, 3)]
            assert kinds == ["hello", "layout", "status"]
            for junk in ("not json", "[1, 2]", '{"t": 5}', '{"t": "nope"}',
                         '{"t": "key"}', '{"t": "move", "x": "a"}',
                         '{"t": "size", "width": 1e400, "height": 1}'):
                await ws.send_str(junk)  # logged and ignored
            await ws.send_str('{"t": "focus"}')
            await ws.send_str('{"t": "key", "code": "KeyA", "down": true}')
            [error] = await _texts(ws, 1)  # no inputs channel: said to the page
            assert error["t"] == "error" and "inputs" in error["message"]
            # A second report while the first is being written (its runtime metrics alone
            # take 2 s) is refused, not queued.
            await ws.send_str('{"t": "report", "description": "one"}')
            await ws.send_str('{"t": "report", "description": "two"}')
            [refused] = await _texts(ws, 1)
            assert refused["t"] == "error" and "not done yet" in refused["message"]
            msg = await asyncio.wait_for(ws.receive(), 15)
            written = json.loads(msg.data)
            assert written["t"] == "report" and Path(written["path"]).is_file(), written
            # Over the size limit: that socket is closed, the viewer carries on.
            await ws.send_str("x" * (MAX_PAGE_MESSAGE + 1))
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            again = await client.ws_connect(viewer.base_url + "/ws",
                                            headers={"Origin": viewer.base_url})
            assert (await _texts(again, 1))[0]["t"] == "hello"
            await again.close()

    with_viewer(body, reports=tmp_path)


def test_the_end_of_the_session_closes_the_pages() -> None:
    async def main() -> None:
        session = Session(Target("127.0.0.1", 1), ChannelContext())
        viewer = Viewer(WebOptions(), io.StringIO())
        await viewer.start(session)
        assert viewer.url is not None
        client = await logged_in(viewer.url)
        async with client:
            ws = await client.ws_connect(viewer.base_url + "/ws",
                                         headers={"Origin": viewer.base_url})
            await _texts(ws, 3)
            await viewer.stop(session, SessionEnd("server", "the server went away"))
            [ended] = await _texts(ws, 1)
            assert ended == {"t": "ended", "reason": "server",
                             "message": "the server went away"}
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001
        async with aiohttp.ClientSession() as anon:
            with pytest.raises(aiohttp.ClientConnectionError):
                await anon.get(viewer.base_url + "/")

    asyncio.run(main())


def test_a_port_in_use_is_a_usage_error() -> None:
    async def main() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            viewer = Viewer(WebOptions(port=port), io.StringIO())
            with pytest.raises(UsageError, match=f"--web: cannot listen on 127.0.0.1:{port}"):
                await viewer.start(Session(Target("127.0.0.1", 1), ChannelContext()))

    asyncio.run(main())


def test_the_url_is_printed_once_and_names_the_cookie_nowhere() -> None:
    async def main() -> None:
        out = io.StringIO()
        session = Session(Target("127.0.0.1", 1), ChannelContext())
        viewer = Viewer(WebOptions(), out)
        await viewer.start(session)
        await viewer.stop(session, SessionEnd("stopped", "x"))
        [line] = out.getvalue().splitlines()
        assert line == f"ryll: viewer at {viewer.url}" and COOKIE not in line

    asyncio.run(main())
