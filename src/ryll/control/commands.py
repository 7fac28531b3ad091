"""What each control command does to the session: one method per command, each taking the
validated arguments (``protocol.COMMANDS``) and returning the result object or raising a
``ControlError`` with a stable code.

The session's input, cursor and agent pieces are looked up when a command runs, not when the
server starts, so a command issued before a channel is linked gets ``no_channel`` (or
``no_agent``) and the same command works once it is.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ryll import __version__
from ryll.channels.agent import AgentUnavailable
from ryll.channels.cursor import CursorChannel
from ryll.channels.display import DisplayChannel
from ryll.control.protocol import ControlError, ErrorCode, Request
from ryll.protocol.constants import ChannelType
from ryll.session.input import InputController, InputUnavailable
from ryll.session.screens import encode_png, grab, monitors
from ryll.session.session import Session

if TYPE_CHECKING:
    from ryll.control.server import ControlClient, ControlServer

Handler = Callable[["Commands", dict[str, Any], "ControlClient"], Awaitable[dict[str, Any]]]

MOUSE_MODES = {1: "server", 2: "client"}


class Commands:
    def __init__(self, session: Session, server: ControlServer) -> None:
        self.session = session
        self.server = server

    async def dispatch(self, request: Request, client: ControlClient) -> dict[str, Any]:
        handler = HANDLERS[request.command]
        return await handler(self, request.args, client)

    # --- state checks ---------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.server.session_end is not None or self.session.end is not None

    def _require_session(self) -> None:
        if self.ended:
            raise ControlError(ErrorCode.NOT_CONNECTED, "the SPICE session has ended")
        if self.session.channel(ChannelType.MAIN) is None:
            raise ControlError(ErrorCode.NOT_CONNECTED, "the SPICE session is not connected yet")

    def _input(self) -> InputController:
        self._require_session()
        if self.session.channel(ChannelType.INPUTS) is None:
            raise ControlError(ErrorCode.NO_CHANNEL, "the inputs channel is not linked")
        return self.session.input

    def _agent(self) -> Any:
        self._require_session()
        agent = self.session.agent
        if not agent.connected:
            raise ControlError(ErrorCode.NO_AGENT, "no guest agent is connected")
        return agent

    # --- commands -------------------------------------------------------------------------

    async def status(self, args: dict[str, Any], client: ControlClient) -> dict[str, Any]:
        return build_status(self.session, self.server)

    async def send_key(self, args: dict[str, Any], client: ControlClient) -> dict[str, Any]:
        controller = self._input()
        key, action = args["key"], args["action"]
        with _bad_argument():
            if action == "down":
                controller.key_down(key)
            elif action == "up":
                controller.key_up(key)
            else:
                await controller.press_key(key)
        return {}

    async def type(self, args: dict[str, Any], client: ControlClient) -> dict[str, Any]:
        controller = self._input()
        text = args["text"]
        result: dict[str, Any] = {}

        def done(characters: int, elapsed_ms: float) -> None:
            result.update(chars=characters, elapsed_ms=round(elapsed_ms, 1))

        controller.paste_observers.append(done)
        try:
            with _bad_argument():
                await controller.type_text(text, char_delay_ms=args["char_delay_ms"])
        finally:
            controller.paste_observers.remove(done)
        return result

    async def mouse_move(self, args: dict[str, Any], client: ControlClient) -> dict[str, Any]:
        controller = self._input()
        with _bad_argument():
            if args["x"] is not None:
                controller.mouse_move(args["x"], args["y"], args["display"] or 0)
            else:
                controller.mouse_move_relative(args["dx"], args["dy"])
        return {"mouse_mode": _mouse_mode(self.session)}

    async def mouse_click(self, args: dict[str, Any], client: ControlClient) -> dict[str, Any]:
        controller = self._input()
        with _bad_argument():
            if args["x"] is not None:
                controller.mouse_move(args["x"], args["y"], args["display"] or 0)
            await controller.click(args["button"])
        return {}

    async def mouse_down(self, args: dict[str, Any], client: ControlClient) -> dict[str, Any]:
        controller = self._input()
        with _bad_argument():
            controller.mouse_down(args["button"])
        return {}

    async def mouse_up(self, args: dict[str, Any], client: ControlClient) -> dict[str, Any]:
        controller = self._input()
        with _bad_argument():
            controller.mouse_up(args["button"])
        return {}

    async def screenshot(self, args: dict[str, Any], client: ControlClient) -> dict[str, Any]:
        screens = monitors(self.session)
        if not screens:
            raise ControlError(ErrorCode.NO_CHANNEL, "no display surface yet")
        index = args["display"]
        if index >= len(screens):
            raise ControlError(ErrorCode.BAD_ARGUMENT,
                               f"screenshot: no display {index} (displays: {len(screens)})")
        monitor = screens[index]
        surface = monitor.surface
        # In a worker: the copy may wait for the display channel's current message.
        pixels = await asyncio.to_thread(grab, monitor, args["cursor"])
        fmt = args["format"]
        if fmt == "png":
            data = await asyncio.to_thread(encode_png, pixels)
        elif pixels.shape[2] == 4:
            data = pixels.tobytes()
        else:  # xRGB surfaces: raw RGBA with alpha 255
            data = np.dstack([pixels, np.full(pixels.shape[:2], 255, np.uint8)]).tobytes()
        return {
            "format": fmt,
            "display": index,
            "width": surface.width,
            "height": surface.height,
            "data": base64.b64encode(data).decode("ascii"),
        }

    async def clipboard_set(self, args: dict[str, Any], client: ControlClient) -> dict[str, Any]:
        agent = self._agent()
        agent.set_clipboard(args["text"])
        return {}

    async def clipboard_get(self, args: dict[str, Any], client: ControlClient) -> dict[str, Any]:
        agent = self._agent()
        try:
            text = await agent.get_clipboard(timeout=args["timeout"])
        except TimeoutError:
            raise ControlError(ErrorCode.TIMEOUT,
                               "the guest did not send its clipboard in time") from None
        return {"text": text}

    async def resolution(self, args: dict[str, Any], client: ControlClient) -> dict[str, Any]:
        self._require_session()
        with _bad_argument():
            sent = self.session.agent.request_resolution(args["width"], args["height"])
        # Without an agent the request is kept and sent when one connects (session.agent).
        return {"sent": bool(sent), "agent_connected": self.session.agent.connected}

    async def subscribe(self, args: dict[str, Any], client: ControlClient) -> dict[str, Any]:
        client.subscriptions.update(args["events"])
        self.server.events.subscriptions_changed(client.subscriptions)
        return {"events": sorted(client.subscriptions)}

    async def unsubscribe(self, args: dict[str, Any], client: ControlClient) -> dict[str, Any]:
        if args["events"] is None:
            client.subscriptions.clear()
        else:
            client.subscriptions.difference_update(args["events"])
        self.server.events.subscriptions_changed(client.subscriptions)
        return {"events": sorted(client.subscriptions)}


HANDLERS: dict[str, Handler] = {
    "status": Commands.status,
    "send_key": Commands.send_key,
    "type": Commands.type,
    "mouse_move": Commands.mouse_move,
    "mouse_click": Commands.mouse_click,
    "mouse_down": Commands.mouse_down,
    "mouse_up": Commands.mouse_up,
    "screenshot": Commands.screenshot,
    "clipboard_set": Commands.clipboard_set,
    "clipboard_get": Commands.clipboard_get,
    "resolution": Commands.resolution,
    "subscribe": Commands.subscribe,
    "unsubscribe": Commands.unsubscribe,
}


@contextlib.contextmanager
def _bad_argument() -> Iterator[None]:
    """ValueError from the input or agent layer (an unknown key name, a bad button, text no
    US key types) becomes ``bad_argument``; a channel or agent that went away meanwhile
    ``no_channel`` / ``no_agent``; other errors pass through."""
    try:
        yield
    except ValueError as exc:
        raise ControlError(ErrorCode.BAD_ARGUMENT, str(exc)) from exc
    except InputUnavailable as exc:
        raise ControlError(ErrorCode.NO_CHANNEL, str(exc)) from exc
    except AgentUnavailable as exc:
        raise ControlError(ErrorCode.NO_AGENT, str(exc)) from exc


# --- pictures ---------------------------------------------------------------------------------


# --- status -----------------------------------------------------------------------------------


def _mouse_mode(session: Session) -> str:
    mode = session.ctx.state.current_mouse_mode
    return MOUSE_MODES.get(mode, str(mode))


def build_status(session: Session, server: ControlServer) -> dict[str, Any]:
    ended = server.session_end or session.end
    if ended is not None:
        state = "ended"
    elif session.channel(ChannelType.MAIN) is not None:
        state = "connected"
    else:
        state = "connecting"
    channels = []
    for (_ctype, cid), info in sorted(session.channels.items()):
        stats = info.channel.stats.as_dict()
        stats.pop("by_message", None)
        channels.append({"name": info.channel.name, "id": cid, "tls": info.tls, **stats})
    displays = []
    for index, monitor in enumerate(monitors(session)):
        displays.append({"display": index, "channel_id": monitor.channel_id,
                         **monitor.surface.as_dict()})
    display_channels: list[DisplayChannel] = session.display_channels()
    bytes_in, bytes_out = session.totals()
    gaps = session.ctx.gaps.counts()
    return {
        "ryll": __version__,
        "session": {
            "state": state,
            "target": session.target.describe(),
            "uptime_s": round(session.uptime, 3),
            "mouse_mode": _mouse_mode(session),
            **session.ctx.state.as_dict(),
            "end": None if ended is None else {
                "reason": ended.reason, "message": ended.message, "exit_code": ended.exit_code,
            },
        },
        "channels": channels,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "displays": displays,
        "marks": sum(d.marks for d in display_channels),
        "cursor": _cursor_status(session),
        "agent": session.agent.as_dict(),
        "latency": session.latency.summary(),
        "gaps": {"count": len(gaps), "keys": gaps},
    }


def _cursor_status(session: Session) -> dict[str, Any] | None:
    cursor = session.channel(ChannelType.CURSOR)
    if not isinstance(cursor, CursorChannel):
        return None
    state = cursor.cursor_state()
    state.pop("cache", None)
    return state
