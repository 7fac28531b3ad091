"""Events: the one way a session tells anything what happened.

Every event is a frozen, data-only dataclass (no callables, nothing to call back into), so an
event can be queued, copied to several subscribers, logged or serialised without touching the
session. Channel handlers emit them (``Channel.emit``); the session publishes every one to
each ``session.events()`` subscriber, with its own (gaps, latency, paste, linked and closed
channels, the end), and acts on the few that are requests to it (``SessionRequest``: link the
listed channels, wait for other channels, resume a parked message).

The public name of this module is ``ryll.events``.

Events a front end sees carry the ids it needs to tell displays apart (``channel_id`` is the
display channel's id: one per monitor with spice-server's one-channel-per-head QXL setup).
"""

from __future__ import annotations

from dataclasses import dataclass

from ryll.protocol.messages.base import WaitChannel
from ryll.protocol.messages.draw import Rect
from ryll.protocol.messages.main import ChannelId
from ryll.render.cursor import CursorImage


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event."""


# --- requests to the session (acted on by the session, then published like the rest) ------


@dataclass(frozen=True, slots=True)
class SessionRequest(Event):
    """An event the session must act on before the channel's next message."""


@dataclass(frozen=True, slots=True)
class ChannelsListed(SessionRequest):
    channels: tuple[ChannelId, ...]


@dataclass(frozen=True, slots=True)
class WaitRequested(SessionRequest):
    """WAIT_FOR_CHANNELS (or INVAL_ALL_PIXMAPS' wait): do not handle this channel's next message
    until each listed channel has received the given message serial (spice-gtk
    ``spice_channel_handle_wait_for_channels``); then call ``channel.wait_over()``."""

    channel_type: int
    channel_id: int
    channels: tuple[WaitChannel, ...]


@dataclass(frozen=True, slots=True)
class DecodeParked(SessionRequest):
    """A display message waits for GLZ image ``image_id``, which another display channel has
    not delivered yet (spice-gtk blocks the channel's coroutine on the same condition,
    decode-glz.c ``glz_decoder_window_bits``). The channel holds the message; the session
    calls ``channel.resume(now)`` once the image is in the shared dictionary, or
    ``channel.expire(now)`` when the wait runs out, before the channel's next message."""

    channel_id: int
    image_id: int


# --- session lifecycle -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionInitialized(Event):
    session_id: int


@dataclass(frozen=True, slots=True)
class ChannelLinked(Event):
    channel_type: int
    channel_id: int
    name: str
    tls: bool


@dataclass(frozen=True, slots=True)
class ChannelClosed(Event):
    channel_type: int
    channel_id: int
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class ServerNotified(Event):
    """A NOTIFY from the server (logged too; bug reports keep them in notifications.json)."""

    channel_type: int
    channel_id: int
    severity: str  # "info", "warn", "error" (or the number the server sent)
    text: str


@dataclass(frozen=True, slots=True)
class ServerDisconnecting(Event):
    channel_type: int
    channel_id: int
    reason: int


@dataclass(frozen=True, slots=True)
class SessionEstablished(Event):
    """The session is up: the main channel is linked and every channel of its list that ryll
    speaks has linked (or failed to). Published once, by the session; the control socket
    appears only after it."""

    channels: int  # channels linked, main included


@dataclass(frozen=True, slots=True)
class Reconnecting(Event):
    """The server dropped the session and ``--reconnect`` links again after ``delay_s``
    (attempt ``attempt`` of this disconnect). The channels and surfaces are gone until then."""

    attempt: int
    delay_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class Reconnected(Event):
    """A reconnect attempt linked the main channel: the session goes on (SessionEstablished
    follows once the listed channels have linked)."""

    attempt: int


@dataclass(frozen=True, slots=True)
class ServerPinged(Event):
    """The server sent a PING (answered with a PONG before this is seen). The control
    socket's ``latency`` samples are the intervals between the main channel's."""

    channel_type: int
    channel_id: int
    ping_id: int


@dataclass(frozen=True, slots=True)
class SessionEnded(Event):
    """The last event of every session: why it ended and the exit code the CLI uses."""

    reason: str  # "stopped", "server_closed", "error"
    message: str
    exit_code: int


@dataclass(frozen=True, slots=True)
class EventsDropped(Event):
    """This subscriber fell behind and ``count`` events were dropped for it (the session never
    waits for a subscriber)."""

    count: int


@dataclass(frozen=True, slots=True)
class GapOpened(Event):
    """A gap key seen for the first time (later occurrences are counted in the snapshot)."""

    key: str
    detail: str
    hexdump: str | None


# --- display ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SurfaceCreated(Event):
    channel_id: int
    surface_id: int
    width: int
    height: int
    format: int
    primary: bool


@dataclass(frozen=True, slots=True)
class SurfaceDestroyed(Event):
    channel_id: int
    surface_id: int


@dataclass(frozen=True, slots=True)
class DisplayUpdated(Event):
    """Pixels of a surface changed: ``rect`` holds every pixel one display message changed
    (the union of its draws on that surface)."""

    channel_id: int
    surface_id: int
    rect: Rect


@dataclass(frozen=True, slots=True)
class DisplayMarked(Event):
    """MARK: the server finished drawing the initial picture of the primary surface."""

    channel_id: int


@dataclass(frozen=True, slots=True)
class DisplayReset(Event):
    """RESET: the primary surface's contents are void until the server draws again."""

    channel_id: int


@dataclass(frozen=True, slots=True)
class MonitorsChanged(Event):
    channel_id: int
    # (id, surface_id, x, y, width, height) per head
    heads: tuple[tuple[int, int, int, int, int, int], ...]


@dataclass(frozen=True, slots=True)
class StreamCreated(Event):
    channel_id: int
    stream_id: int
    codec: str
    surface_id: int
    dest: Rect
    supported: bool


@dataclass(frozen=True, slots=True)
class StreamDestroyed(Event):
    channel_id: int
    stream_id: int


# --- cursor and mouse ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CursorChanged(Event):
    """The pointer the server draws: hotspot position, visibility and shape (a
    ``render.cursor.CursorImage`` or None). ``shape_changed`` says whether ``shape`` is new."""

    channel_id: int
    x: int
    y: int
    visible: bool
    shape: CursorImage | None
    shape_changed: bool


@dataclass(frozen=True, slots=True)
class MouseModeChanged(Event):
    mode: int  # SpiceMouseMode: 1 server, 2 client
    supported: int


# --- audio -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AudioStarted(Event):
    """PLAYBACK START: the guest began playing (``codec``: "raw" or "opus")."""

    channels: int
    frequency: int
    codec: str


@dataclass(frozen=True, slots=True)
class AudioPlayed(Event):
    """What the guest played: usually 10 ms, as S16 little-endian interleaved samples, stamped
    with the server's multimedia time (ms, wrapping u32) of the frame's production."""

    mm_time: int
    pcm: bytes
    channels: int
    frequency: int


@dataclass(frozen=True, slots=True)
class AudioStopped(Event):
    """PLAYBACK STOP: the guest stopped playing."""


@dataclass(frozen=True, slots=True)
class AudioVolumeChanged(Event):
    """PLAYBACK VOLUME or MUTE: ``volume`` per channel, 0..65535."""

    volume: tuple[int, ...]
    mute: bool


@dataclass(frozen=True, slots=True)
class RecordStarted(Event):
    """RECORD START: the guest opened its microphone; ryll sends ``codec`` frames."""

    channels: int
    frequency: int
    codec: str


@dataclass(frozen=True, slots=True)
class RecordStopped(Event):
    """RECORD STOP: the guest closed its microphone."""


# --- ports -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortReady(Event):
    """A port channel said which port it is (PORT INIT): its name and whether the chardev end
    is open."""

    channel_id: int
    name: str
    device_open: bool


@dataclass(frozen=True, slots=True)
class PortOpened(Event):
    """The chardev end of a port opened (PORT EVENT OPENED)."""

    channel_id: int
    name: str


@dataclass(frozen=True, slots=True)
class PortClosed(Event):
    """The chardev end of a port closed (PORT EVENT CLOSED)."""

    channel_id: int
    name: str


# --- input -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatencyMeasured(Event):
    """Input-to-display latency: a key sent, then the first display update after it."""

    at: float  # wall-clock time of the display update
    latency_ms: float


@dataclass(frozen=True, slots=True)
class PasteCompleted(Event):
    """Typing a text finished (``type_text``, ``--paste-text``, the control socket)."""

    characters: int
    elapsed_ms: float


# --- the guest agent (channels/agent.py) -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentConnected(Event):
    tokens: int


@dataclass(frozen=True, slots=True)
class AgentReady(Event):
    """The agent announced its capabilities (VD_AGENT_CAP_* numbers): it can be used now."""

    caps: frozenset[int]


@dataclass(frozen=True, slots=True)
class AgentDisconnected(Event):
    error: int = 0


@dataclass(frozen=True, slots=True)
class AgentClipboardGrabbed(Event):
    selection: int
    types: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ClipboardChanged(Event):
    """Clipboard data from the guest; ``text`` is None when it sent none (type NONE)."""

    selection: int
    type: int
    text: str | None


@dataclass(frozen=True, slots=True)
class ClipboardSent(Event):
    """The guest asked for the clipboard ryll holds (``set_clipboard``) and was sent it: the
    guest pasted. ``characters`` of text, not the text itself."""

    selection: int
    characters: int


@dataclass(frozen=True, slots=True)
class AgentClipboardReleased(Event):
    selection: int


@dataclass(frozen=True, slots=True)
class AgentReplied(Event):
    type: int
    error: int
