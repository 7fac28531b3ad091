"""The control socket's events, translated from the session's (``session.events()``).

Names and data are the control protocol's (docs/control-socket.md): 1.2's as the Rust ryll
sends them, 1.3's ryll's own. The edge owns the clocks, so the times are taken here:
``surface_drawn`` carries the session time and the wall clock of the moment it is translated
(one event per display message that changed pixels, as the Rust ryll sends one per draw), and
``latency`` is the interval between two consecutive PINGs of the main channel as they reach
this translator (what the Rust ryll measures: the server's ping cadence plus the path).
``paste_completed`` and ``paste_failed`` are the ``paste`` verb's own (they carry its id).
"""

from __future__ import annotations

import logging
import time
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
    Reconnected,
    Reconnecting,
    ServerPinged,
    SessionEnded,
    SurfaceCreated,
    SurfaceDestroyed,
)
from ryll.protocol.constants import ChannelType

log = logging.getLogger("ryll.control")

Publish = Callable[[str, Mapping[str, Any]], None]

MOUSE_MODES = {1: "server", 2: "client"}


def wallclock_us() -> int:
    return time.time_ns() // 1000


class EventTranslator:
    """Session events in, ``publish(name, data)`` out. ``session_time`` is the session's
    monotonic uptime in seconds (``surface_drawn``'s ``produced_at_secs``)."""

    def __init__(self, publish: Publish, session_time: Callable[[], float],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.publish = publish
        self.session_time = session_time
        self.monotonic = monotonic
        self._last_ping: float | None = None
        # The agent state last published: agent_connected fires on transitions only.
        self._agent_connected: bool | None = None

    def translate(self, event: Event) -> None:
        try:
            self._translate(event)
        except Exception:  # an event we cannot describe must not stop the others
            log.exception("control: cannot publish %r", event)

    def _translate(self, event: Event) -> None:
        pub = self.publish
        if isinstance(event, DisplayUpdated):
            pub("surface_drawn", {
                "display_channel_id": event.channel_id, "surface_id": event.surface_id,
                "produced_at_secs": round(self.session_time(), 6),
                "wallclock_us": wallclock_us(),
                "rect": {"top": event.rect.top, "left": event.rect.left,
                         "bottom": event.rect.bottom, "right": event.rect.right},
            })
        elif isinstance(event, ServerPinged):
            if event.channel_type == ChannelType.MAIN:
                now = self.monotonic()
                if self._last_ping is not None:
                    pub("latency", {"sample_ms": round((now - self._last_ping) * 1000, 3),
                                    "wallclock_us": wallclock_us()})
                self._last_ping = now
        elif isinstance(event, AgentConnected):
            # An agent that restarts is announced again with no disconnect between: that is no
            # transition, and the specification's agent_connected "fires on transitions only".
            if self._agent_connected is not True:
                self._agent_connected = True
                pub("agent_connected", {"connected": True, "tokens": event.tokens})
        elif isinstance(event, Reconnecting):
            # The dropped connection took the agent with it (nothing else will say so), and
            # the next PING interval would span the outage.
            self._last_ping = None
            if self._agent_connected:
                self._agent_connected = False
                pub("agent_connected", {"connected": False, "error": 0})
            pub("reconnecting", {"attempt": event.attempt, "delay_s": event.delay_s,
                                 "reason": event.reason})
        elif isinstance(event, Reconnected):
            pub("reconnected", {"attempt": event.attempt})
        elif isinstance(event, AgentDisconnected):
            if self._agent_connected is not False:
                self._agent_connected = False
                pub("agent_connected", {"connected": False, "error": event.error})
        elif isinstance(event, SurfaceCreated):
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
        elif isinstance(event, LatencyMeasured):
            pub("input_latency", {"at": event.at, "latency_ms": event.latency_ms})
        elif isinstance(event, ClipboardChanged):
            if event.text is not None:
                pub("clipboard", {"text": event.text, "selection": event.selection})
        elif isinstance(event, GapOpened):
            pub("gap", {"key": event.key, "detail": event.detail})
        elif isinstance(event, CursorChanged):
            pub("cursor", {"x": event.x, "y": event.y, "visible": event.visible,
                           "shape_changed": event.shape_changed})
        elif isinstance(event, MouseModeChanged):
            pub("mouse_mode", {"mode": MOUSE_MODES.get(event.mode, str(event.mode))})
        elif isinstance(event, SessionEnded):
            pass  # the server announces the end itself (session_ended), once
