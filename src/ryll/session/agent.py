"""``session.agent``: the guest agent as front ends (the headless runner, the control socket)
use it. A thin asyncio layer over the main channel's sans-IO ``AgentCore``: it finds the main
channel, writes what the core queued (``Session.flush``) and waits for clipboard answers.

    session.agent.connected               # the server says an agent is attached
    session.agent.caps                    # what it announced (VD_AGENT_CAP_* numbers)
    session.agent.set_clipboard("text")   # own the guest clipboard; answered on demand
    await session.agent.get_clipboard()   # the text the guest's clipboard holds, or None
    session.agent.request_resolution(800, 600)

What the agent does is published as events (AgentConnected, AgentReady, AgentDisconnected,
ClipboardChanged) like everything else. Everything also works (and does nothing harmful)
with no agent: the operations that need one
raise ``AgentUnavailable``; ``request_resolution`` is kept until an agent turns up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ryll.channels.agent import (
    AgentCore,
    AgentUnavailable,
)
from ryll.channels.events import (
    AgentDisconnected,
    ClipboardChanged,
    Event,
    SessionInitialized,
)
from ryll.channels.main import MainChannel
from ryll.protocol.agent import Selection
from ryll.protocol.constants import ChannelType

if TYPE_CHECKING:
    from ryll.session.session import Session

log = logging.getLogger("ryll.agent")

__all__ = ["AgentClient", "AgentUnavailable"]


class AgentClient:
    def __init__(self, session: Session) -> None:
        self._session = session
        self._waiters: list[asyncio.Future[str | None]] = []
        self._resolution: tuple[int, int] | None = None
        self._noted_absent = False

    # --- state ----------------------------------------------------------------------------

    def _main(self) -> MainChannel | None:
        ch = self._session.channel(ChannelType.MAIN, 0)
        return ch if isinstance(ch, MainChannel) else None

    def _core(self) -> AgentCore | None:
        main = self._main()
        return main.agent if main is not None else None

    @property
    def connected(self) -> bool:
        core = self._core()
        return core is not None and core.connected

    @property
    def caps(self) -> frozenset[int]:
        core = self._core()
        return core.caps if core is not None and core.connected else frozenset()

    @property
    def guest_clipboard(self) -> str | None:
        """The last text the guest put on its clipboard (kept after the agent leaves)."""
        core = self._core()
        return core.guest_text.get(Selection.CLIPBOARD) if core is not None else None

    def as_dict(self) -> dict[str, object]:
        core = self._core()
        if core is not None:
            return core.as_dict()
        return {"connected": False, "caps": [], "resolution_requested": (
            f"{self._resolution[0]}x{self._resolution[1]}" if self._resolution else None)}

    # --- operations -----------------------------------------------------------------------

    def set_clipboard(self, text: str) -> None:
        """Put ``text`` on the guest's clipboard: grab now, send the text when the guest asks.
        Raises AgentUnavailable without an agent (or one that has no clipboard)."""
        main, core = self._require()
        core.set_clipboard(text)
        self._session.flush(main)

    async def get_clipboard(self, timeout: float = 5.0) -> str | None:
        """The text on the guest's clipboard, asked for afresh; None if the guest holds no
        text. Raises AgentUnavailable without an agent, TimeoutError if it does not answer."""
        main, core = self._require()
        if not core.guest_offers_text():
            return None
        fut: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            core.request_clipboard()
            self._session.flush(main)
            return await asyncio.wait_for(fut, timeout)
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)

    def request_resolution(self, width: int, height: int) -> bool:
        """Ask the guest (through its agent) for a WxH display. Kept and sent when an agent
        connects if none is there yet; True if it went out now."""
        if not (0 < width <= 0xFFFF and 0 < height <= 0xFFFF):
            raise ValueError(f"bad resolution {width}x{height}")
        self._resolution = (width, height)
        main = self._main()
        if main is None:
            return False
        sent = main.agent.request_resolution(width, height)
        self._session.flush(main)
        return sent

    def _require(self) -> tuple[MainChannel, AgentCore]:
        main = self._main()
        if main is None or not main.agent.connected:
            raise AgentUnavailable("no guest agent is connected")
        return main, main.agent

    # --- events from the main channel -----------------------------------------------------

    def handle_event(self, event: Event) -> None:
        """Called by the session for every main-channel event."""
        if isinstance(event, SessionInitialized):
            self._on_initialized()
        elif isinstance(event, AgentDisconnected):
            for fut in self._waiters:
                if not fut.done():
                    fut.set_exception(AgentUnavailable("the guest agent disconnected"))
        elif isinstance(event, ClipboardChanged):
            if event.selection == Selection.CLIPBOARD:
                for fut in self._waiters:
                    if not fut.done():
                        fut.set_result(event.text)
            if event.text is not None:
                log.info("agent: guest clipboard text (%d chars)", len(event.text))

    def _on_initialized(self) -> None:
        main = self._main()
        if main is None:
            return
        if self._resolution is not None:
            main.agent.request_resolution(*self._resolution)
            self._session.flush(main)
        if not main.agent.connected and self._resolution is not None and not self._noted_absent:
            self._noted_absent = True
            log.info("agent: no guest agent connected; --resolution %dx%d waits for one",
                     *self._resolution)
