"""Events channel handlers emit for the session and front ends. Plain frozen dataclasses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ryll.protocol.messages.base import WaitChannel
from ryll.protocol.messages.main import ChannelId


@dataclass(frozen=True, slots=True)
class Event:
    """Base of channel events."""


@dataclass(frozen=True, slots=True)
class SessionInitialized(Event):
    session_id: int


@dataclass(frozen=True, slots=True)
class ChannelsListed(Event):
    channels: tuple[ChannelId, ...]


@dataclass(frozen=True, slots=True)
class WaitRequested(Event):
    """WAIT_FOR_CHANNELS: do not handle this channel's next message until each listed channel
    has received the given message serial (spice-gtk ``spice_channel_handle_wait_for_channels``)."""

    channels: tuple[WaitChannel, ...]
    # What to do once the wait is over (INVAL_ALL_PIXMAPS clears the image cache then).
    then: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class DecodeDeferred(Event):
    """A message whose decode must wait for another channel (a GLZ image referring to one not
    delivered yet) was handled on a thread that must not block: call ``run`` in a worker
    thread under ``ryll.render.images.allow_waiting`` before this channel's next message; it
    handles the message again and returns the events that produced."""

    run: Callable[[], list[Event]]


@dataclass(frozen=True, slots=True)
class ServerDisconnecting(Event):
    reason: int


@dataclass(frozen=True, slots=True)
class SurfaceCreated(Event):
    surface_id: int
    width: int
    height: int
    format: int
    primary: bool


@dataclass(frozen=True, slots=True)
class SurfaceDestroyed(Event):
    surface_id: int


@dataclass(frozen=True, slots=True)
class DisplayMarked(Event):
    """MARK: the server finished drawing the initial picture of the primary surface."""


# --- the guest agent (channels/agent.py) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentConnected(Event):
    tokens: int


@dataclass(frozen=True, slots=True)
class AgentDisconnected(Event):
    error: int = 0


@dataclass(frozen=True, slots=True)
class AgentCapsReceived(Event):
    caps: frozenset[int]


@dataclass(frozen=True, slots=True)
class AgentClipboardGrabbed(Event):
    selection: int
    types: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AgentClipboardData(Event):
    """Clipboard data from the guest; ``text`` is None when it sent none (type NONE)."""

    selection: int
    type: int
    text: str | None


@dataclass(frozen=True, slots=True)
class AgentClipboardReleased(Event):
    selection: int


@dataclass(frozen=True, slots=True)
class AgentReplied(Event):
    type: int
    error: int
