"""Where control-socket events come from: the session's channel events (``on_event``), its
display-update observers, the latency tracker, the agent, the gap registry, and state the
server samples (cursor, mouse mode) while someone listens.

Everything funnels into one ``publish(name, data)`` (``ControlServer.publish``), which drops
what the client did not subscribe to and is safe to call from a decode worker thread.
``surface_drawn`` is coalesced: at most one event every ``DRAWN_INTERVAL_S``, carrying how
many display updates (draws, copies, stream frames) it stands for.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ryll.channels.base import Channel
from ryll.channels.cursor import CursorChannel
from ryll.channels.events import DisplayMarked, Event, SurfaceCreated, SurfaceDestroyed
from ryll.gaps import Gap
from ryll.protocol.constants import ChannelType
from ryll.session.session import Session

log = logging.getLogger("ryll.control")

Publish = Callable[[str, Mapping[str, Any]], None]

# surface_drawn at most 20 times a second per surface: enough to follow a redraw loop, few
# enough that a video stream cannot flood the client.
DRAWN_INTERVAL_S = 0.05
# Cursor and mouse-mode sampling period while a client listens for them.
POLL_INTERVAL_S = 0.05


def plain(value: Any) -> Any:
    """JSON-able data from an observer's sample (a dataclass, a mapping, or anything else)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class EventSources:
    def __init__(self, session: Session, publish: Publish) -> None:
        self.session = session
        self.publish = publish
        self._attached = False
        self._poller: asyncio.Task[None] | None = None
        self._wanted: set[str] = set()
        # surface_drawn coalescing: display updates since the last event.
        self._drawn = 0
        self._drawn_flush: asyncio.TimerHandle | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def attach(self) -> None:
        if self._attached:
            return
        self._attached = True
        self.session.event_observers.append(self._on_channel_event)
        self.session.ctx.gaps.add_observer(self._on_gap)
        self.session.display_observers.append(self._on_display_update)
        self.session.latency.add_observer(self._on_latency)
        self.session.agent.add_observer(self._on_agent)
        self.session.input.paste_observers.append(self._on_paste)

    def detach(self) -> None:
        if not self._attached:
            return
        self._attached = False
        if self._on_channel_event in self.session.event_observers:
            self.session.event_observers.remove(self._on_channel_event)
        if self._on_display_update in self.session.display_observers:
            self.session.display_observers.remove(self._on_display_update)
        self.session.ctx.gaps.remove_observer(self._on_gap)
        self.session.agent.remove_observer(self._on_agent)
        self.session.latency.remove_observer(self._on_latency)
        if self._on_paste in self.session.input.paste_observers:
            self.session.input.paste_observers.remove(self._on_paste)
        self.subscriptions_changed(set())
        if self._drawn_flush is not None:
            self._drawn_flush.cancel()
            self._drawn_flush = None

    def subscriptions_changed(self, wanted: set[str]) -> None:
        """Start or stop the sampling task as clients (un)subscribe."""
        self._wanted = set(wanted)
        need_poll = self._attached and bool(self._wanted & {"cursor", "mouse_mode"})
        if need_poll and self._poller is None:
            self._poller = asyncio.ensure_future(self._poll())
        elif not need_poll and self._poller is not None:
            self._poller.cancel()
            self._poller = None

    # --- sources --------------------------------------------------------------------------

    def _on_channel_event(self, channel: Channel, event: Event) -> None:
        if not self._attached:
            return
        try:
            self._translate(channel, event)
        except Exception:  # an event we cannot describe must not take the channel down
            log.exception("control: cannot publish %r", event)

    def _translate(self, channel: Channel, event: Event) -> None:
        cid = channel.channel_id
        if isinstance(event, SurfaceCreated):
            self.publish("surface_created", {
                "channel_id": cid, "surface_id": event.surface_id, "width": event.width,
                "height": event.height, "format": event.format, "primary": event.primary,
            })
        elif isinstance(event, SurfaceDestroyed):
            self.publish("surface_destroyed", {"channel_id": cid, "surface_id": event.surface_id})
        elif isinstance(event, DisplayMarked):
            self.publish("mark", {"channel_id": cid})

    def _on_display_update(self) -> None:
        """A display message that changes pixels was handled (on the loop thread)."""
        if not self._attached or "surface_drawn" not in self._wanted:
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

    def _on_latency(self, sample: Any) -> None:
        if self._attached:
            self.publish("latency", plain(sample))

    def _on_agent(self, name: str, data: Mapping[str, object]) -> None:
        if not self._attached:
            return
        if name == "agent_connected":
            self.publish("agent_connected", {"connected": True, **plain(data)})
        elif name == "agent_disconnected":
            self.publish("agent_connected", {"connected": False, **plain(data)})
        elif name == "clipboard":
            self.publish("clipboard", plain(data))

    def _on_paste(self, characters: int, elapsed_ms: float) -> None:
        """Typing finished: the control socket's ``type`` or ``--paste-text``."""
        if self._attached:
            self.publish("paste_completed", {"chars": characters,
                                             "elapsed_ms": round(elapsed_ms, 1)})

    def _on_gap(self, gap: Gap) -> None:
        if self._attached:
            self.publish("gap", {"key": gap.key, "detail": gap.detail})

    async def _poll(self) -> None:
        last_cursor: tuple[Any, ...] | None = None
        last_mode: int | None = self.session.ctx.state.current_mouse_mode
        while True:
            await asyncio.sleep(POLL_INTERVAL_S)
            with contextlib.suppress(Exception):
                cursor = self.session.channel(ChannelType.CURSOR)
                if isinstance(cursor, CursorChannel):
                    now = (cursor.x, cursor.y, cursor.visible, id(getattr(cursor, "shape", None)))
                    if now != last_cursor and last_cursor is not None:
                        self.publish("cursor", {"x": cursor.x, "y": cursor.y,
                                                "visible": cursor.visible,
                                                "shape_changed": now[3] != last_cursor[3]})
                    last_cursor = now
                mode = self.session.ctx.state.current_mouse_mode
                if mode != last_mode:
                    last_mode = mode
                    self.publish("mouse_mode", {
                        "mode": {1: "server", 2: "client"}.get(mode, str(mode)),
                    })
