"""The control socket's events, translated from the session's (``session.events()``).

Names and members are the control protocol's (docs/control-socket.md). ``surface_drawn`` is
coalesced: at most one event every ``DRAWN_INTERVAL_S``, carrying how many display updates
(draws, copies, stream frames) it stands for. Cursor and mouse-mode events come straight from
the CursorChanged and MouseModeChanged events (nothing is polled).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ryll.channels.events import (
    AgentConnected,
    AgentDisconnected,
    ClipboardChanged,
    CursorChanged,
    DisplayMarked,
    DisplayUpdated,
    Event,
    GapOpened,
    LatencyMeasured,
    MouseModeChanged,
    PasteCompleted,
    SurfaceCreated,
    SurfaceDestroyed,
)

log = logging.getLogger("ryll.control")

Publish = Callable[[str, Mapping[str, Any]], None]

# surface_drawn at most 20 times a second: enough to follow a redraw loop, few enough that a
# video stream cannot flood the client.
DRAWN_INTERVAL_S = 0.05
MOUSE_MODES = {1: "server", 2: "client"}


class EventTranslator:
    def __init__(self, publish: Publish) -> None:
        self.publish = publish
        self.wanted: set[str] = set()
        self._drawn = 0
        self._drawn_flush: asyncio.TimerHandle | None = None

    def close(self) -> None:
        if self._drawn_flush is not None:
            self._drawn_flush.cancel()
            self._drawn_flush = None

    def translate(self, event: Event) -> None:
        try:
            self._translate(event)
        except Exception:  # an event we cannot describe must not stop the others
            log.exception("control: cannot publish %r", event)

    def _translate(self, event: Event) -> None:
        pub = self.publish
        if isinstance(event, SurfaceCreated):
            pub("surface_created", {
                "channel_id": event.channel_id, "surface_id": event.surface_id,
                "width": event.width, "height": event.height, "format": event.format,
                "primary": event.primary,
            })
        elif isinstance(event, SurfaceDestroyed):
            pub("surface_destroyed", {"channel_id": event.channel_id,
                                      "surface_id": event.surface_id})
        elif isinstance(event, DisplayMarked):
            pub("mark", {"channel_id": event.channel_id})
        elif isinstance(event, DisplayUpdated):
            self._display_updated()
        elif isinstance(event, LatencyMeasured):
            pub("latency", {"at": event.at, "latency_ms": event.latency_ms})
        elif isinstance(event, AgentConnected):
            pub("agent_connected", {"connected": True, "tokens": event.tokens})
        elif isinstance(event, AgentDisconnected):
            pub("agent_connected", {"connected": False, "error": event.error})
        elif isinstance(event, ClipboardChanged):
            if event.text is not None:
                pub("clipboard", {"text": event.text, "selection": event.selection})
        elif isinstance(event, PasteCompleted):
            pub("paste_completed", {"chars": event.characters, "elapsed_ms": event.elapsed_ms})
        elif isinstance(event, GapOpened):
            pub("gap", {"key": event.key, "detail": event.detail})
        elif isinstance(event, CursorChanged):
            pub("cursor", {"x": event.x, "y": event.y, "visible": event.visible,
                           "shape_changed": event.shape_changed})
        elif isinstance(event, MouseModeChanged):
            pub("mouse_mode", {"mode": MOUSE_MODES.get(event.mode, str(event.mode))})

    def _display_updated(self) -> None:
        if "surface_drawn" not in self.wanted:
            return
        self._drawn += 1
        if self._drawn_flush is None:
            loop = asyncio.get_running_loop()
            self._drawn_flush = loop.call_later(DRAWN_INTERVAL_S, self._flush_drawn)

    def _flush_drawn(self) -> None:
        self._drawn_flush = None
        count, self._drawn = self._drawn, 0
        if count:
            self.publish("surface_drawn", {"updates": count})
