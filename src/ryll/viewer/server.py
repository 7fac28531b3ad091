"""The browser viewer (``--web``, and ``ryll`` without ``--headless``): a page ryll serves itself.

An aiohttp application, started before the session connects (a port in use is a usage error
and nothing connects), serving the page (``viewer/page``: plain HTML, CSS and JavaScript, no
network fetch), a WebSocket per open page (viewer/page_link.py), and ``/screenshot.png``. It
is a front end like any other: it reads the session's events, grabs pixels and drives input
through the public session API, and closes every page cleanly when the session ends.
Access: viewer/auth.py (a one-time URL token for a cookie; Origin checked on WebSockets).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import webbrowser
from importlib import resources
from typing import TYPE_CHECKING, Any, TextIO

from ryll.channels.events import (
    ChannelClosed,
    ClipboardChanged,
    CursorChanged,
    DisplayReset,
    DisplayUpdated,
    EventsDropped,
    GapOpened,
    LatencyMeasured,
    MonitorsChanged,
    MouseModeChanged,
    Reconnected,
    Reconnecting,
    SessionEnded,
    SessionEstablished,
    StreamCreated,
    StreamDestroyed,
    SurfaceCreated,
    SurfaceDestroyed,
)
from ryll.errors import UsageError
from ryll.session.bus import EventStream
from ryll.session.runner import FrontEnd
from ryll.session.screens import monitors
from ryll.viewer.auth import COOKIE, Access
from ryll.viewer.options import WebOptions, tls_context
from ryll.viewer.page_link import PageLink

if TYPE_CHECKING:
    from aiohttp import web

    from ryll.session.session import Session, SessionEnd

log = logging.getLogger("ryll.viewer")

# The page's files: name -> content type. Nothing else is served from the package.
PAGE_FILES = {
    "index.html": "text/html; charset=utf-8",
    "viewer.js": "text/javascript; charset=utf-8",
    "viewer.css": "text/css; charset=utf-8",
}
# The page talks only to the viewer: no other origin for scripts, styles, images or sockets.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
STATUS_INTERVAL_S = 1.0
# A page's JSON messages are small (a paste is the largest): bigger ones close its socket.
MAX_PAGE_MESSAGE = 1 << 20


def _url_host(host: str) -> str:
    """How the URL names the host: a listen-everywhere address as loopback (the person's own
    browser), an IPv6 address in brackets."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host


class Viewer(FrontEnd):
    name = "--web"
    kinds = (SessionEstablished, SessionEnded, DisplayUpdated, DisplayReset, MonitorsChanged,
             SurfaceCreated, SurfaceDestroyed, CursorChanged, MouseModeChanged, GapOpened,
             Reconnecting, Reconnected, ChannelClosed, ClipboardChanged, StreamCreated,
             StreamDestroyed, LatencyMeasured, EventsDropped)

    def __init__(self, options: WebOptions, out: TextIO) -> None:
        self.options = options
        self.out = out
        self.access = Access()
        self.pages: set[PageLink] = set()
        self.focused: PageLink | None = None
        self.url: str | None = None
        self.state = "connecting"
        self.streams = 0
        self.latency_ms: float | None = None
        # The newest cursor shape and position, for a page that opens later.
        self.cursor_shape: CursorChanged | None = None
        self.cursor_at: CursorChanged | None = None
        self._runner: Any = None
        if (options.tls_cert is None) != (options.tls_key is None):
            raise UsageError("--web-tls-cert and --web-tls-key go together")
        self._tls = (tls_context(options.tls_cert, options.tls_key)
                     if options.tls_cert is not None and options.tls_key is not None else None)
        self._session: Session | None = None
        self._displays: dict[tuple[int, int], int] = {}  # (channel, surface) -> display

    # --- serving ---------------------------------------------------------------------------

    async def start(self, session: Session) -> None:
        from aiohttp import web

        self._session = session
        @web.middleware
        async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
            return await self._guard_outer(request, handler)

        app = web.Application(middlewares=[guard], client_max_size=MAX_PAGE_MESSAGE)
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/screenshot.png", self._screenshot)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.options.host, self.options.port,
                           ssl_context=self._tls)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise UsageError(f"--web: cannot listen on {self.options.host}:"
                             f"{self.options.port}: {exc.strerror or exc}") from None
        port = self._runner.addresses[0][1]
        scheme = "https" if self._tls is not None else "http"
        self.base_url = f"{scheme}://{_url_host(self.options.host)}:{port}"
        self.url = f"{self.base_url}/?token={self.access.token}"
        print(f"ryll: viewer at {self.url}", file=self.out, flush=True)
        if self.options.open_browser:
            asyncio.get_running_loop().run_in_executor(None, self._open_browser, self.url)

    def new_url(self) -> str:
        """Another one-time URL (a second browser)."""
        return f"{self.base_url}/?token={self.access.mint()}"

    @staticmethod
    def _open_browser(url: str) -> None:
        try:
            opened = webbrowser.open(url)
        except Exception as exc:  # a broken $BROWSER must not end the session
            log.warning("viewer: cannot open a browser: %s", exc)
            opened = False
        if not opened:
            log.warning("viewer: no browser could be opened; open the URL above by hand")

    def _headers(self, response: web.StreamResponse) -> web.StreamResponse:
        response.headers.update(SECURITY_HEADERS)
        return response

    async def _guard_inner(self, request: web.Request, handler: Any) -> web.StreamResponse:
        from aiohttp import web

        if request.path == "/" and "token" in request.query:
            cookie = self.access.exchange(request.query["token"])
            if cookie is None:
                return web.Response(status=403, text="This viewer link is wrong or was already "
                                    "used: ask ryll for a new one.\n")
            response = web.Response(status=303, headers={"Location": "/"})
            response.set_cookie(COOKIE, cookie, httponly=True, samesite="Strict", path="/",
                                secure=self._tls is not None)
            return response
        if not self.access.admits(request.cookies.get(COOKIE)):
            return web.Response(status=403, text="Open the viewer with the link ryll printed.\n")
        if request.path == "/ws":
            origin = request.headers.get("Origin")
            if origin is not None and origin != f"{request.scheme}://{request.host}":
                return web.Response(status=403, text="Cross-origin WebSocket refused.\n")
        result: web.StreamResponse = await handler(request)
        return result

    async def _guard_outer(self, request: web.Request, handler: Any) -> web.StreamResponse:
        from aiohttp import web

        try:
            response = await self._guard_inner(request, handler)
        except web.HTTPException as exc:  # the router's 404 and 405: as plain responses
            response = web.Response(status=exc.status, text=exc.text)
        if not response.prepared:
            self._headers(response)
        return response

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return self._file("index.html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        name = request.match_info["name"]
        if name not in PAGE_FILES or name == "index.html":
            return web.Response(status=404, text="Not found.\n")
        return self._file(name)

    def _file(self, name: str) -> web.StreamResponse:
        from aiohttp import web

        body = resources.files("ryll.viewer").joinpath("page", name).read_bytes()
        return web.Response(body=body, headers={"Content-Type": PAGE_FILES[name]})

    async def _screenshot(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        assert self._session is not None
        try:
            display = int(request.query.get("display", "0"))
            grab = await self._session.grab(display)
        except (ValueError, LookupError) as exc:
            return web.Response(status=404, text=f"{exc}\n")
        png = await asyncio.get_running_loop().run_in_executor(None, grab.png)
        return web.Response(body=png, headers={
            "Content-Type": "image/png",
            "Content-Disposition": f'attachment; filename="ryll-display-{display}.png"'})

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        assert self._session is not None
        ws = web.WebSocketResponse(max_msg_size=MAX_PAGE_MESSAGE, heartbeat=20.0,
                                   compress=False)
        await ws.prepare(request)
        peer = request.remote or ""
        page = PageLink(self, self._session, ws, loopback=_is_loopback(peer))
        self.pages.add(page)
        log.info("viewer: a page connected (%s; %d open)", peer or "?", len(self.pages))
        try:
            await page.serve()
        finally:
            self.pages.discard(page)
            if self.focused is page:
                self.focused = None
            log.info("viewer: a page left (%d open)", len(self.pages))
        return ws

    # --- the session's events --------------------------------------------------------------

    def display_of(self, channel_id: int, surface_id: int) -> int | None:
        return self._displays.get((channel_id, surface_id))

    def cursor_display(self, channel_id: int) -> int:
        """The display a cursor channel's pointer is on: its display channel's first."""
        found = [d for (c, _s), d in self._displays.items() if c == channel_id]
        return min(found) if found else 0

    def displays(self) -> list[dict[str, int]]:
        """The monitors as the page lays them out: index, size, and the display id input
        positions carry (the display channel's id)."""
        assert self._session is not None
        out = []
        self._displays = {}
        for i, m in enumerate(monitors(self._session)):
            self._displays[(m.channel_id, m.surface.surface_id)] = i
            out.append({"display": i, "width": m.surface.width, "height": m.surface.height,
                        "channel": m.channel_id})
        return out

    def broadcast(self, message: str) -> None:
        for page in list(self.pages):
            page.send_text(message)

    async def run(self, session: Session, events: EventStream) -> None:
        from ryll.viewer import wire

        ticker = asyncio.ensure_future(self._status_ticker())
        try:
            async with events:
                async for event in events:
                    if isinstance(event, DisplayUpdated):
                        display = self.display_of(event.channel_id, event.surface_id)
                        if display is not None:
                            for page in self.pages:
                                page.damaged(display, event.rect)
                    elif isinstance(event, (MonitorsChanged, SurfaceCreated, SurfaceDestroyed,
                                            DisplayReset, EventsDropped)):
                        layout = self.displays()
                        for page in list(self.pages):
                            page.relayout(layout)
                    elif isinstance(event, CursorChanged):
                        if event.shape_changed:
                            self.cursor_shape = event
                        self.cursor_at = event
                        for page in list(self.pages):
                            page.cursor(event)
                    elif isinstance(event, MouseModeChanged):
                        self.broadcast(wire.text("mouse", mode=_mouse_mode(event.mode)))
                    elif isinstance(event, SessionEstablished):
                        self.state = "connected"
                        self.broadcast(self.status())
                    elif isinstance(event, Reconnecting):
                        self.state = "reconnecting"
                        self.broadcast(self.status())
                    elif isinstance(event, Reconnected):
                        self.state = "connected"
                        layout = self.displays()
                        for page in list(self.pages):
                            page.relayout(layout)
                    elif isinstance(event, ClipboardChanged) and event.text is not None:
                        self.broadcast(wire.text("clipboard", text=event.text))
                    elif isinstance(event, StreamCreated):
                        self.streams += 1
                    elif isinstance(event, StreamDestroyed):
                        self.streams = max(0, self.streams - 1)
                    elif isinstance(event, LatencyMeasured):
                        self.latency_ms = event.latency_ms
                    elif isinstance(event, GapOpened):
                        self.broadcast(self.status())
        finally:
            ticker.cancel()

    def status(self) -> str:
        from ryll.viewer import wire

        assert self._session is not None
        snap = self._session.snapshot()
        return wire.text("status", state=self.state, bytes_in=snap.bytes_in,
                         bytes_out=snap.bytes_out, latency_ms=self.latency_ms,
                         gaps=snap.gaps, streams=self.streams, mouse=snap.mouse_mode,
                         uptime_s=round(snap.uptime_s, 1))

    async def _status_ticker(self) -> None:
        while True:
            await asyncio.sleep(STATUS_INTERVAL_S)
            if self.pages:
                message = self.status()
                for page in list(self.pages):
                    page.send_status(message)

    async def stop(self, session: Session, end: SessionEnd) -> None:
        from ryll.viewer import wire

        self.state = "ended"
        for page in list(self.pages):
            page.send_text(wire.text("ended", reason=end.reason, message=end.message))
            await page.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _mouse_mode(mode: int) -> str:
    return "client" if mode == 2 else "server"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("localhost", "")
