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

from ryll import __version__
from ryll.channels.agent import AgentUnavailable
from ryll.control.protocol import ControlError, ErrorCode, Request
from ryll.protocol.constants import ChannelType
from ryll.session.input import InputController, InputUnavailable
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
        with _bad_argument():
            done = await controller.type_text(args["text"], char_delay_ms=args["char_delay_ms"])
        return {"chars": done.characters, "elapsed_ms": done.elapsed_ms}

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
        count = len(self.session.snapshot().monitors)
        if not count:
            raise ControlError(ErrorCode.NO_CHANNEL, "no display surface yet")
        index = args["display"]
        if index >= count:
            raise ControlError(ErrorCode.BAD_ARGUMENT,
                               f"screenshot: no display {index} (displays: {count})")
        grab = await self.session.grab(index, with_cursor=args["cursor"])
        fmt = args["format"]
        if fmt == "png":
            data = await asyncio.to_thread(grab.png)
        else:  # xRGB surfaces: raw RGBA with alpha 255
            data = grab.rgba().tobytes()
        return {
            "format": fmt,
            "display": index,
            "width": grab.width,
            "height": grab.height,
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
        self.server.events.wanted = set(client.subscriptions)
        return {"events": sorted(client.subscriptions)}

    async def unsubscribe(self, args: dict[str, Any], client: ControlClient) -> dict[str, Any]:
        if args["events"] is None:
            client.subscriptions.clear()
        else:
            client.subscriptions.difference_update(args["events"])
        self.server.events.wanted = set(client.subscriptions)
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
    return session.snapshot().mouse_mode


def build_status(session: Session, server: ControlServer) -> dict[str, Any]:
    snap = session.snapshot()
    ended = server.session_end or session.end
    state = "ended" if ended is not None else snap.state
    channels = [{"name": c.name, "id": c.id, "tls": c.tls, "messages_in": c.messages_in,
                 "bytes_in": c.bytes_in, "messages_out": c.messages_out,
                 "bytes_out": c.bytes_out, "pings_answered": c.pings_answered,
                 "acks_sent": c.acks_sent} for c in snap.channels]
    surfaces = {(s.channel_id, s.surface["surface_id"]): s.surface for s in snap.surfaces}
    displays = [{"display": m.display, "channel_id": m.channel_id,
                 **surfaces.get((m.channel_id, m.surface_id), {})} for m in snap.monitors]
    cursor = dict(snap.cursor) if snap.cursor is not None else None
    if cursor is not None:
        cursor.pop("cache", None)
    return {
        "ryll": __version__,
        "session": {
            "state": state,
            "target": snap.target,
            "uptime_s": snap.uptime_s,
            "mouse_mode": snap.mouse_mode,
            **snap.session,
            "end": None if ended is None else {
                "reason": ended.reason, "message": ended.message, "exit_code": ended.exit_code,
            },
        },
        "channels": channels,
        "bytes_in": snap.bytes_in,
        "bytes_out": snap.bytes_out,
        "displays": displays,
        "marks": snap.marks,
        "cursor": cursor,
        "agent": snap.agent,
        "latency": snap.latency,
        "memory": snap.memory,
        "gaps": {"count": len(snap.gaps), "keys": snap.gaps},
    }
