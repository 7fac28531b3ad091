"""What each control method does to the session: one method per verb, each taking the
validated parameters (``protocol.METHODS``) and returning the result object or raising a
``ControlError`` with a stable code. ``hello`` is the server's (it is connection state).

The session's input, cursor and agent pieces are looked up when a verb runs, not when the
server starts, so a verb whose channel went away gets ``no_channel`` (or
``agent_not_connected``) rather than a stale object.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from ryll import __version__
from ryll.channels.agent import AgentUnavailable
from ryll.control import protocol as proto
from ryll.control.protocol import ControlError, ErrorCode, Request
from ryll.input.keys import from_logical, text_to_keystrokes
from ryll.protocol.constants import ChannelType
from ryll.session.input import InputController, InputUnavailable
from ryll.session.screens import Grab
from ryll.session.session import Session

log = logging.getLogger("ryll.control")

if TYPE_CHECKING:
    from ryll.control.server import ControlClient, ControlServer

Handler = Callable[["Commands", Request, "ControlClient"], Awaitable[dict[str, Any]]]


class Commands:
    def __init__(self, session: Session, server: ControlServer) -> None:
        self.session = session
        self.server = server

    async def dispatch(self, request: Request, client: ControlClient) -> dict[str, Any]:
        handler = HANDLERS[request.method]
        return await handler(self, request, client)

    # --- state checks ---------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.server.session_end is not None or self.session.end is not None

    def _require_session(self) -> None:
        if self.ended:
            raise ControlError(ErrorCode.NOT_CONNECTED, "the SPICE session has ended")

    def _input(self) -> InputController:
        self._require_session()
        if self.session.channel(ChannelType.INPUTS) is None:
            raise ControlError(ErrorCode.NO_CHANNEL, "the inputs channel is not linked")
        return self.session.input

    def _agent(self) -> Any:
        self._require_session()
        agent = self.session.agent
        if not agent.connected:
            raise ControlError(ErrorCode.AGENT_NOT_CONNECTED, "no guest agent is connected")
        return agent

    # --- 1.2 ------------------------------------------------------------------------------

    async def status(self, request: Request, client: ControlClient) -> dict[str, Any]:
        return build_status(self.session, self.server)

    async def send_key(self, request: Request, client: ControlClient) -> dict[str, Any]:
        params = request.params
        state = params["state"]
        if state not in proto.KEY_STATES:
            raise ControlError(ErrorCode.BAD_STATE,
                               f"unrecognised state value {state[:32]!r} (down, up or press)")
        code = None
        if params["scancode"] is not None:
            with _input_errors():  # a bad scancode is bad_params whatever is linked
                code = from_logical(params["scancode"])
        controller = self._input()
        with _input_errors():
            if code is not None:
                if state == "down":
                    controller.scancode_down(code)
                elif state == "up":
                    controller.scancode_up(code)
                else:
                    await controller.press_scancode(code)
            elif state == "down":
                controller.key_down(params["key"])
            elif state == "up":
                controller.key_up(params["key"])
            else:
                await controller.press_key(params["key"])
        return {}

    async def paste(self, request: Request, client: ControlClient) -> dict[str, Any]:
        """Answered at once; the typing runs as the client's task and ends in paste_completed
        or paste_failed (with the request's id), or is cancelled if the client goes."""
        controller = self._input()
        text, delay = request.params["text"], request.params["char_delay_ms"]
        client.start_task(self._paste(controller, request.id, text, delay, client))
        return {}

    async def _paste(self, controller: InputController, request_id: Any, text: str,
                     delay: float, client: ControlClient) -> None:
        try:
            text_to_keystrokes(text)  # every character typable, before any is typed
            done = await controller.type_text(text, char_delay_ms=delay)
        except asyncio.CancelledError:
            raise
        except (ValueError, InputUnavailable) as exc:
            client.push_event("paste_failed", {"request_id": request_id, "reason": str(exc)})
            return
        except Exception as exc:  # a bug in ryll: the client still hears how its paste ended
            log.exception("paste %r failed", request_id)
            client.push_event("paste_failed", {"request_id": request_id,
                                               "reason": f"internal error: {exc}"})
            return
        client.push_event("paste_completed", {"request_id": request_id,
                                              "chars_sent": done.characters})

    async def screenshot(self, request: Request, client: ControlClient) -> dict[str, Any]:
        params = request.params
        fmt = params["format"]
        if fmt not in proto.SCREENSHOT_FORMATS:
            raise ControlError(ErrorCode.UNSUPPORTED_FORMAT,
                               f"format {fmt[:32]!r} is not png or rgba")
        grab = await self._grab(params)
        if fmt == "png":
            data = await asyncio.to_thread(grab.png)
        else:  # xRGB surfaces: raw RGBA with alpha 255
            data = grab.rgba().tobytes()
        return {
            "width": grab.width,
            "height": grab.height,
            "format": fmt,
            "data_base64": base64.b64encode(data).decode("ascii"),
            "channel_id": grab.channel_id,
            "surface_id": grab.surface_id,
        }

    async def _grab(self, params: dict[str, Any]) -> Grab:
        if params["display"] is not None:
            if params["surface_id"] is not None or params["channel_id"] is not None:
                raise ControlError(ErrorCode.BAD_PARAMS,
                                   "screenshot: display goes without surface_id and channel_id")
            try:
                return await self.session.grab(params["display"],
                                               with_cursor=params["cursor"])
            except LookupError as exc:
                raise ControlError(ErrorCode.NO_SUCH_SURFACE, str(exc)) from None
        surface_id = params["surface_id"] or 0
        try:
            return await self.session.grab_surface(surface_id, params["channel_id"],
                                                   with_cursor=params["cursor"])
        except LookupError as exc:
            raise ControlError(ErrorCode.NO_SUCH_SURFACE, str(exc)) from None

    async def subscribe(self, request: Request, client: ControlClient) -> dict[str, Any]:
        known = [name for name in request.params["events"] if name in proto.EVENTS]
        client.subscriptions.update(known)
        return {"subscribed": known}

    async def unsubscribe(self, request: Request, client: ControlClient) -> dict[str, Any]:
        removed = [name for name in request.params["events"] if name in client.subscriptions]
        client.subscriptions.difference_update(removed)
        return {"unsubscribed": removed}

    # --- 1.3 ------------------------------------------------------------------------------

    async def type(self, request: Request, client: ControlClient) -> dict[str, Any]:
        controller = self._input()
        with _input_errors():
            done = await controller.type_text(request.params["text"],
                                              char_delay_ms=request.params["char_delay_ms"])
        return {"chars_sent": done.characters, "elapsed_ms": done.elapsed_ms}

    async def mouse_move(self, request: Request, client: ControlClient) -> dict[str, Any]:
        params = request.params
        controller = self._input()
        with _input_errors():
            if params["x"] is not None:
                controller.mouse_move(params["x"], params["y"], params["display"] or 0)
            else:
                controller.mouse_move_relative(params["dx"], params["dy"])
        return {"mouse_mode": self.session.snapshot().mouse_mode}

    async def mouse_click(self, request: Request, client: ControlClient) -> dict[str, Any]:
        params = request.params
        controller = self._input()
        with _input_errors():
            if params["x"] is not None:
                controller.mouse_move(params["x"], params["y"], params["display"] or 0)
            await controller.click(params["button"])
        return {}

    async def mouse_down(self, request: Request, client: ControlClient) -> dict[str, Any]:
        controller = self._input()
        with _input_errors():
            controller.mouse_down(request.params["button"])
        return {}

    async def mouse_up(self, request: Request, client: ControlClient) -> dict[str, Any]:
        controller = self._input()
        with _input_errors():
            controller.mouse_up(request.params["button"])
        return {}

    async def mouse_scroll(self, request: Request, client: ControlClient) -> dict[str, Any]:
        controller = self._input()
        with _input_errors():
            for _ in range(request.params["count"]):
                await controller.click(request.params["direction"])
        return {}

    async def clipboard_set(self, request: Request, client: ControlClient) -> dict[str, Any]:
        agent = self._agent()
        with _input_errors():
            agent.set_clipboard(request.params["text"])
        return {}

    async def clipboard_get(self, request: Request, client: ControlClient) -> dict[str, Any]:
        agent = self._agent()
        try:
            text = await agent.get_clipboard(timeout=request.params["timeout"])
        except TimeoutError:
            raise ControlError(ErrorCode.TIMEOUT,
                               "the guest did not send its clipboard in time") from None
        except AgentUnavailable as exc:  # the agent went (or cannot do clipboards) meanwhile
            raise ControlError(ErrorCode.AGENT_NOT_CONNECTED, str(exc)) from exc
        return {"text": text}

    async def resolution(self, request: Request, client: ControlClient) -> dict[str, Any]:
        self._require_session()
        with _input_errors():
            sent = self.session.agent.request_resolution(request.params["width"],
                                                         request.params["height"])
        # Without an agent the request is kept and sent when one connects (session.agent).
        return {"sent": bool(sent), "agent_connected": self.session.agent.connected}

    async def bug_report(self, request: Request, client: ControlClient) -> dict[str, Any]:
        from ryll.diagnostics.reports import ReportRequest, region_from

        self._require_session()
        reporter = self.session.reports
        if reporter is None:
            raise ControlError(ErrorCode.REPORT_FAILED, "bug reports are off in this session")
        params = request.params
        report = ReportRequest("manual", "display" if params["x"] is not None else "all",
                               description=params["description"], region=region_from(params),
                               triggered_uptime=self.session.uptime)
        try:
            path = await reporter.write(report)
        except (ValueError, LookupError) as exc:  # a region off the display, no display
            raise ControlError(ErrorCode.BAD_PARAMS, f"bug_report: {exc}") from None
        except OSError as exc:
            raise ControlError(ErrorCode.REPORT_FAILED,
                               f"bug_report: cannot write the report: {exc}") from None
        return {"path": str(path.resolve()), "size": path.stat().st_size}

    async def quit(self, request: Request, client: ControlClient) -> dict[str, Any]:
        self._require_session()
        self.session.stop("quit by the control socket")
        return {}


HANDLERS: dict[str, Handler] = {
    name: getattr(Commands, name) for name in proto.METHODS if name != "hello"
}


@contextlib.contextmanager
def _input_errors() -> Iterator[None]:
    """ValueError from the input or agent layer (an unknown key name, a bad button, text no
    US key types) becomes ``bad_params``; a channel or agent that went away meanwhile
    ``no_channel`` / ``agent_not_connected``; other errors pass through."""
    try:
        yield
    except ValueError as exc:
        raise ControlError(ErrorCode.BAD_PARAMS, str(exc)) from exc
    except InputUnavailable as exc:
        raise ControlError(ErrorCode.NO_CHANNEL, str(exc)) from exc
    except AgentUnavailable as exc:
        raise ControlError(ErrorCode.AGENT_NOT_CONNECTED, str(exc)) from exc


# --- status -----------------------------------------------------------------------------------


def build_status(session: Session, server: ControlServer) -> dict[str, Any]:
    """1.2's three members (``spice_connected``, ``agent_connected``, ``surfaces``), then
    everything else ryll knows (1.3: clients ignore members they do not know)."""
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
    connected = ended is None and session.channel(ChannelType.MAIN) is not None
    return {
        "spice_connected": connected,
        "agent_connected": bool(session.agent.connected),
        "surfaces": [{"channel_id": s.channel_id, "surface_id": s.surface["surface_id"],
                      "width": s.surface["width"], "height": s.surface["height"]}
                     for s in snap.surfaces],
        "ryll_version": __version__,
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
        "input_latency": snap.latency,
        "memory": snap.memory,
        "gaps": {"count": len(snap.gaps), "keys": snap.gaps},
    }
