"""One open page: the pixels it has not been sent yet going out, its input coming in.

Out: damage accumulates (viewer/damage.py) while the previous update is on the wire, then
goes as one batch of rectangles, each grabbed between two display messages (``Session.grab``)
and encoded as ``Encoding`` says (viewer/encode.py). A slow page therefore gets fewer, larger
updates and never a queue; the WebSocket's send waits when the socket is full, which is the
page's back-pressure. JSON messages (layout, cursor, status) go through a bounded queue.

In: the page's JSON messages (``{"t": kind, ...}``) become session input: ``key`` (a
``KeyboardEvent.code``, viewer/keymap.py), ``release`` (everything held, when the page loses
focus), ``move`` (client mouse mode: a position on a display), ``rel`` (server mode, under
Pointer Lock), ``button``, ``wheel``, ``cad`` (ctrl-alt-delete), ``paste`` (text typed as
keystrokes), ``clipboard`` (the page's clipboard for the guest), ``size`` (the page's size,
asked of the guest agent), ``focus`` (this page now drives input: only the focused page's
input reaches the guest; while no page has asked, the first one to send input has it),
``report`` (a bug report with an optional region) and ``refresh``. A message that is not
understood is logged and ignored; the page stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from ryll.channels.events import CursorChanged
from ryll.errors import RyllError
from ryll.protocol.messages.draw import Rect
from ryll.viewer import wire
from ryll.viewer.damage import Damage
from ryll.viewer.encode import choose_encoding, encode_rect
from ryll.viewer.keymap import scancode

if TYPE_CHECKING:
    from aiohttp import web

    from ryll.session.session import Session
    from ryll.viewer.server import Viewer

log = logging.getLogger("ryll.viewer")

# JSON messages waiting for a slow page: beyond this the oldest status is dropped first.
MAX_TEXT_QUEUE = 256
# Browser MouseEvent.button -> SPICE button: left, middle, right, back (side), forward (extra).
BUTTONS = {0: 1, 1: 2, 2: 3, 3: 6, 4: 7}
# A resolution asked of the agent waits this long for the page's size to settle.
RESIZE_SETTLE_S = 0.5


class PageLink:
    def __init__(self, viewer: Viewer, session: Session, ws: web.WebSocketResponse,
                 loopback: bool) -> None:
        self.viewer = viewer
        self.session = session
        self.ws = ws
        self.loopback = loopback
        self.damage = Damage()
        self.layout: list[dict[str, int]] = []
        self._wake = asyncio.Event()
        self._texts: list[str] = []
        self._status: str | None = None
        self._resize: asyncio.TimerHandle | None = None
        self._busy: set[str] = set()  # "paste", "report": one of each at a time
        self.updates = 0  # batches of rectangles sent
        self.bytes_sent = 0
        self.closed = False

    # --- out -------------------------------------------------------------------------------

    def send_text(self, message: str) -> None:
        if len(self._texts) >= MAX_TEXT_QUEUE:
            log.warning("viewer: a page is not reading; dropping its oldest message")
            del self._texts[0]
        self._texts.append(message)
        self._wake.set()

    def send_status(self, message: str) -> None:
        self._status = message  # only the newest status matters
        self._wake.set()

    def damaged(self, display: int, rect: Rect) -> None:
        self.damage.add(display, rect)
        self._wake.set()

    def relayout(self, layout: list[dict[str, int]]) -> None:
        """The monitors changed (or events were lost): the new layout, then every display
        whole."""
        self.layout = layout
        self.send_text(wire.text("layout", displays=layout))
        for d in layout:
            self.damage.whole(d["display"])
        self._wake.set()

    def cursor(self, event: CursorChanged, shape: bool = False) -> None:
        """The pointer's position and visibility; its shape too when it changed (or
        ``shape``: a page that has none yet)."""
        if (event.shape_changed or shape) and event.shape is not None:
            import base64

            from ryll.session.screens import encode_png

            image = event.shape
            png = base64.b64encode(encode_png(image.rgba)).decode("ascii")
            self.send_text(wire.text("cursor_shape", png=png, hot_x=image.hot_x,
                                     hot_y=image.hot_y, width=image.width,
                                     height=image.height))
        self.send_text(wire.text("cursor", x=event.x, y=event.y, visible=event.visible,
                                 display=self.viewer.cursor_display(event.channel_id)))

    async def _send_loop(self) -> None:
        while not self.closed:
            await self._wake.wait()
            self._wake.clear()
            texts, self._texts = self._texts, []
            if self._status is not None:
                texts.append(self._status)
                self._status = None
            for message in texts:
                await self.ws.send_str(message)
            if self.damage:
                await self._send_pixels()

    async def _send_pixels(self) -> None:
        whole, rects = self.damage.take()
        sizes = {d["display"]: (d["width"], d["height"]) for d in self.layout}
        for display in sorted(whole | rects.keys()):
            if display not in sizes:
                continue
            width, height = sizes[display]
            todo = ([Rect(0, 0, height, width)] if display in whole
                    else rects.get(display, []))
            for rect in todo:
                try:
                    grab = await self.session.grab(display, rect, rgba=True)
                except (LookupError, ValueError):
                    continue  # the display went away, or the rect is off it (a mode change)
                encoding = choose_encoding(self.loopback, grab.width * grab.height)
                payload = encode_rect(grab.pixels, encoding)
                r = grab.rect
                try:
                    parts = wire.rect_message(display, r.left, r.top, r.width, r.height,
                                              encoding, payload)
                except ValueError as exc:  # beyond what the page's header can say
                    log.warning("viewer: not sent: %s", exc)
                    continue
                message = b"".join(parts)
                await self.ws.send_bytes(message)
                self.bytes_sent += len(message)
        self.updates += 1

    # --- in --------------------------------------------------------------------------------

    async def serve(self) -> None:
        """Until the page goes or the session ends: send the layout and the whole picture,
        then read its messages."""
        from aiohttp import WSMsgType

        sender = asyncio.ensure_future(self._send_loop())
        self.send_text(wire.text("hello", version=1))
        self.send_status(self.viewer.status())
        self.relayout(self.viewer.displays())
        if self.viewer.cursor_shape is not None:
            self.cursor(self.viewer.cursor_shape, shape=True)
        if self.viewer.cursor_at is not None:
            self.cursor(self.viewer.cursor_at)
        clipboard = self.session.agent.guest_clipboard
        if clipboard is not None:  # what the guest copied before this page opened
            self.send_text(wire.text("clipboard", text=clipboard))
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    await self._handle_text(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
                if sender.done():
                    break
        finally:
            self.closed = True
            self._wake.set()
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
            if self.viewer.focused is self:
                self._release_all()

    async def close(self) -> None:
        from aiohttp import WSCloseCode

        self.closed = True
        with contextlib.suppress(Exception):
            # What is queued first (the "ended" message), then the close.
            for message in self._texts:
                await self.ws.send_str(message)
            self._texts = []
            await self.ws.close(code=WSCloseCode.GOING_AWAY, message=b"session ended")

    async def _handle_text(self, data: str) -> None:
        try:
            message = json.loads(data)
            if not isinstance(message, dict) or not isinstance(message.get("t"), str):
                raise ValueError("not an object with a kind")
            await self._handle(message)
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            log.warning("viewer: a page sent a message ryll does not understand (%s): %.80s",
                        exc, data)
        except RyllError as exc:  # no inputs channel yet, no agent: the page is told
            self.send_text(wire.text("error", message=str(exc)))

    async def _handle(self, m: dict[str, Any]) -> None:
        kind = m["t"]
        if kind == "focus":
            if self.viewer.focused is not None and self.viewer.focused is not self:
                self.viewer.focused._release_all()
                self.viewer.focused.send_text(wire.text("unfocused"))
            self.viewer.focused = self
            return
        if kind == "refresh":
            for d in self.layout:
                self.damage.whole(d["display"])
            self._wake.set()
            return
        if kind == "size":
            self._ask_size(int(m["width"]), int(m["height"]))
            return
        if kind == "report":
            if self._one_at_a_time("report"):
                asyncio.ensure_future(self._done_after("report", self._report(m)))
            return
        if kind == "clipboard":
            self.session.agent.set_clipboard(str(m["text"]))
            return
        if self.viewer.focused is None:
            self.viewer.focused = self  # the only page, or the first one used
        elif self.viewer.focused is not self:
            return  # input comes from the page that has focus
        inp = self.session.input
        if kind == "key":
            code = scancode(str(m["code"]))
            if code is None:
                return
            if m["down"]:
                inp.scancode_down(code)
            elif code in inp.held:
                inp.scancode_up(code)
        elif kind == "release":
            self._release_all()
        elif kind == "move":
            display = int(m["display"])
            channel = self._channel_of(display)
            inp.mouse_move(int(m["x"]), int(m["y"]), channel)
        elif kind == "rel":
            inp.mouse_move_relative(int(m["dx"]), int(m["dy"]))
        elif kind == "button":
            button = BUTTONS.get(int(m["button"]))
            if button is None:
                return
            if "x" in m and inp.client_mouse:
                inp.mouse_move(int(m["x"]), int(m["y"]), self._channel_of(int(m["display"])))
            if m["down"]:
                inp.mouse_down(button)
            else:
                inp.mouse_up(button)
        elif kind == "wheel":
            notches = max(-10, min(10, int(m["notches"])))
            for _ in range(abs(notches)):
                button = 5 if notches > 0 else 4
                inp.mouse_down(button)
                inp.mouse_up(button)
        elif kind == "cad":
            await inp.press_key("ctrl-alt-delete")
        elif kind == "paste":
            if self._one_at_a_time("paste"):
                asyncio.ensure_future(self._done_after("paste", self._paste(str(m["text"]))))
        else:
            raise ValueError(f"unknown kind {kind!r}")

    def _one_at_a_time(self, what: str) -> bool:
        """Whether ``what`` may start now: a page that asks again before the last one is done
        is told so (a hostile page cannot pile up typing tasks or zips)."""
        if what in self._busy:
            self.send_text(wire.text("error", message=f"{what}: the last one is not done yet"))
            return False
        self._busy.add(what)
        return True

    async def _done_after(self, what: str, work: Any) -> None:
        try:
            await work
        finally:
            self._busy.discard(what)

    def _channel_of(self, display: int) -> int:
        for d in self.layout:
            if d["display"] == display:
                return d["channel"]
        return 0

    def _release_all(self) -> None:
        inp = self.session.input
        with contextlib.suppress(RyllError):
            for code in reversed(inp.held):
                inp.scancode_up(code)
            for button in (1, 2, 3):
                inp.mouse_up(button)

    async def _paste(self, text: str) -> None:
        try:
            done = await self.session.input.type_text(text)
        except (RyllError, ValueError) as exc:
            self.send_text(wire.text("error", message=f"paste: {exc}"))
            return
        self.send_text(wire.text("pasted", characters=done.characters))

    def _ask_size(self, width: int, height: int) -> None:
        """The page's size for the guest, once it has settled (a window drag sends many)."""
        if not self.viewer.options.resize_guest or self.viewer.focused is not self:
            return
        if self._resize is not None:
            self._resize.cancel()
        width, height = max(320, min(width, 8192)) & ~7, max(200, min(height, 8192))

        def ask() -> None:
            with contextlib.suppress(RyllError):
                self.session.agent.request_resolution(width, height)

        self._resize = asyncio.get_running_loop().call_later(RESIZE_SETTLE_S, ask)

    async def _report(self, m: dict[str, Any]) -> None:
        from ryll.diagnostics.reports import Region, ReportRequest

        reporter = self.session.reports
        if reporter is None:
            self.send_text(wire.text("report", error="bug reports are off in this session"))
            return
        region = None
        if m.get("region"):
            x, y, w, h = (int(v) for v in m["region"])
            region = Region(int(m.get("display", 0)), x, y, w, h)
        request = ReportRequest("manual", "display" if region else "all",
                                description=str(m.get("description", "")), region=region,
                                display=int(m.get("display", 0)),
                                triggered_uptime=self.session.uptime)
        started = time.monotonic()
        try:
            path = await reporter.write(request)
        except (ValueError, LookupError, OSError) as exc:
            self.send_text(wire.text("report", error=str(exc)))
            return
        log.info("viewer: bug report %s (%.1f s)", path, time.monotonic() - started)
        self.send_text(wire.text("report", path=str(path.resolve())))
