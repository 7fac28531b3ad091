"""The sans-IO channel handler every channel builds on.

A handler takes framed messages in and produces events and bytes to send; it never touches a
socket or the event loop. The base class owns what every SPICE channel shares (spice-gtk
``spice_channel_handle_msg`` / ``spice_channel_recv_msg``): the ACK window, PING -> PONG,
NOTIFY, DISCONNECTING, WAIT_FOR_CHANNELS, LIST sub-messages, MIGRATE (a named gap), per-message
statistics, and the one fallback for an opcode nobody handles: the ``<channel>:hexdump:<opcode>``
gap.

Each channel declares one table, ``routes``: opcode -> :class:`Route`, the single list of what
it does with every message it can receive: parse it and hand the result to a handler, name it
as a gap (read, not acted on yet), or ignore it on purpose with the reason. A test walks every
opcode of ``protocol/constants.py`` against these tables, and docs/ARCHITECTURE.md's message
table is generated from them.

Sans-IO: no sockets, no locks, no clocks. The time is passed in with each message
(``handle(message, now)``, as aioquic's ``now``); what the channel wants to send is collected
for ``data_to_send()``; what happened comes back as events.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

from ryll.channels.context import ChannelContext
from ryll.channels.events import (
    Event,
    ServerDisconnecting,
    ServerNotified,
    ServerPinged,
    WaitRequested,
)
from ryll.errors import ProtocolError, RyllError
from ryll.protocol.constants import BASE_LAST, BaseClient, BaseServer, NotifySeverity
from ryll.protocol.framing import Message, MessageFramer, MessageWriter, split_sub_messages
from ryll.protocol.messages import base as msgs
from ryll.protocol.names import Direction, channel_name, message_name

# A handler is an unbound method of a Channel subclass, called with what its parser returned.
Handler = Callable[[Any, Any], None]
Parser = Callable[[bytes], Any]


class RouteKind(Enum):
    HANDLED = "handled"  # parsed and acted on
    GAP = "gap"  # read and named as <channel>:unimpl:<name> until its issue lands
    IGNORED = "ignored"  # read and dropped on purpose; ``reason`` says why


@dataclass(frozen=True, slots=True)
class Route:
    """One row of a channel's message table."""

    kind: RouteKind
    parse: Parser | None = None  # None: the handler takes the raw body
    handler: Handler | None = None
    reason: str = ""


def handled(parse: Parser | None, handler: Handler) -> Route:
    return Route(RouteKind.HANDLED, parse, handler)


def gap(reason: str) -> Route:
    """A message ryll reads but does not act on yet: ``<channel>:unimpl:<name>``."""
    return Route(RouteKind.GAP, reason=reason)


def ignored(reason: str) -> Route:
    """A message ryll deliberately does nothing with (and says why)."""
    return Route(RouteKind.IGNORED, reason=reason)


@dataclass
class ChannelStats:
    messages_in: int = 0
    bytes_in: int = 0
    messages_out: int = 0
    bytes_out: int = 0
    by_message: Counter[str] = field(default_factory=Counter)
    pings: int = 0
    acks_sent: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "messages_in": self.messages_in,
            "bytes_in": self.bytes_in,
            "messages_out": self.messages_out,
            "bytes_out": self.bytes_out,
            "pings_answered": self.pings,
            "acks_sent": self.acks_sent,
            "by_message": dict(sorted(self.by_message.items())),
        }


_NOTIFY_LEVELS = {
    NotifySeverity.INFO: logging.INFO,
    NotifySeverity.WARN: logging.WARNING,
    NotifySeverity.ERROR: logging.ERROR,
}


class Channel:
    """One channel connection's protocol state. Subclasses set ``channel_type`` and
    ``routes`` and may override ``start`` to queue their first messages."""

    channel_type: ClassVar[int]
    # Whether a PING is also an event (ServerPinged): the main channel's are the control
    # socket's latency samples; the other channels' would only be noise.
    reports_pings: ClassVar[bool] = False
    routes: ClassVar[dict[int, Route]] = {}
    # Capabilities this handler implements; the session advertises these (caps_for).
    channel_caps: ClassVar[tuple[int, ...]] = ()

    @classmethod
    def caps_for(cls, ctx: ChannelContext) -> tuple[int, ...]:
        """The capabilities to advertise in a session with ``ctx``'s options."""
        return cls.channel_caps

    def __init__(self, channel_id: int, ctx: ChannelContext, mini_header: bool = True) -> None:
        self.channel_id = channel_id
        self.ctx = ctx
        self.name = channel_name(self.channel_type)
        self.log = logging.getLogger(f"ryll.{self.name}")
        self._framer = MessageFramer(mini_header)
        self._writer = MessageWriter(mini_header)
        self._out: list[bytes] = []
        self._events: list[Event] = []
        # The time the current message is handled at (seconds, monotonic; from handle()), and
        # its body (for the hexdump of a gap a handler finds).
        self.now = 0.0
        self.body = b""
        self.stats = ChannelStats()
        self.ack_window = 0
        self._ack_count = 0
        self.ack_generation = 0
        # The serial of the last message handled: the header's with full headers, else a count
        # starting at 1 (spice-gtk in_serial); WAIT_FOR_CHANNELS waits on it.
        self.last_serial = 0
        self.server_caps: tuple[int, ...] = ()
        self.server_common_caps: tuple[int, ...] = ()  # both as the link reply's u32 words
        self.disconnect_reason: int | None = None

    # --- bytes in, bytes out -------------------------------------------------------------

    def start(self) -> None:
        """Queue the messages a channel sends right after linking (display INIT, ...)."""

    def feed(self, data: bytes) -> list[Message]:
        """Frame incoming bytes; raises ProtocolError on an oversized header."""
        self.stats.bytes_in += len(data)
        return self._framer.feed(data)

    def handle(self, message: Message, now: float = 0.0) -> list[Event]:
        """Handle one framed message at time ``now``: its sub-messages first, then the ACK
        window, then the message itself (the order of spice-gtk's spice_channel_recv_msg)."""
        self.now = now
        self.stats.messages_in += 1
        if self.ctx.tap is not None:
            self.ctx.tap(self.channel_type, self.channel_id, "in", message.type, message.body)
        self.last_serial = message.serial if message.serial else self.last_serial + 1
        try:
            subs = split_sub_messages(message)
        except ProtocolError as exc:
            self.ctx.gaps.register(
                f"{self.name}:malformed:list", str(exc), message.body, self.state()
            )
            subs = []
        for sub in subs:
            self._dispatch(sub)
        if self._ack_count:
            self._ack_count -= 1
            if not self._ack_count:
                self.send(BaseClient.ACK)
                self.stats.acks_sent += 1
                self._ack_count = self.ack_window
        if message.type != BaseServer.LIST:
            self._dispatch(message)
        events, self._events = self._events, []
        return events

    def receive_data(self, data: bytes, now: float = 0.0) -> list[Event]:
        """Feed and handle in one call (tests, and callers that need no per-message pacing)."""
        events: list[Event] = []
        for message in self.feed(data):
            events.extend(self.handle(message, now))
        return events

    def take_events(self) -> list[Event]:
        """Events emitted outside ``handle`` (by ``wait_over``, ``resume``, ``expire``)."""
        events, self._events = self._events, []
        return events

    def wait_over(self) -> None:
        """The session's word that a WaitRequested this channel emitted is over (it waited, or
        gave up). Channels that had something to do after the wait do it here."""

    def send(self, opcode: int, body: bytes = b"") -> None:
        if self.ctx.tap is not None:
            self.ctx.tap(self.channel_type, self.channel_id, "out", opcode, body)
        data = self._writer.build(opcode, body)
        self._out.append(data)
        self.stats.messages_out += 1
        self.stats.bytes_out += len(data)

    def data_to_send(self) -> bytes:
        out, self._out = self._out, []
        return b"".join(out)

    def emit(self, event: Event) -> None:
        self._events.append(event)

    # --- dispatch -------------------------------------------------------------------------

    def message_name(self, opcode: int) -> str:
        return message_name(self.channel_type, Direction.SERVER, opcode)

    def _dispatch(self, message: Message) -> None:
        name = self.message_name(message.type)
        self.stats.by_message[name] += 1
        route = self.route(message.type)
        if route is None:
            self.ctx.gaps.unknown_message(self.name, message.type, message.body, self.state())
            return
        self.log.debug("%s %s (%d bytes)", self.name, name, len(message.body))
        if route.kind is RouteKind.GAP:
            self.unimplemented(message.type, message.body)
            return
        if route.kind is RouteKind.IGNORED or route.handler is None:
            return
        self.body = message.body
        try:
            parsed = message.body if route.parse is None else route.parse(message.body)
            route.handler(self, parsed)
        except ProtocolError as exc:
            # A malformed message is a named gap on this channel; the channel and the session
            # carry on, since the framing (and so the next message) is intact.
            self.ctx.gaps.register(
                f"{self.name}:malformed:{name}", str(exc), message.body, self.state()
            )
        except RyllError as exc:  # a decode or link-level error a handler did not name
            self.ctx.gaps.register(
                f"{self.name}:error:{name}", f"{type(exc).__name__}: {exc}", message.body,
                self.state())
        except Exception as exc:  # a bug in ryll, found by this message: named, logged, and
            # contained to it, since the framing (and so the next message) is intact
            self.log.exception("%s: internal error handling %s", self.name, name)
            self.ctx.gaps.register(
                f"{self.name}:internal:{name}", f"{type(exc).__name__}: {exc}", message.body,
                self.state())

    @classmethod
    def route(cls, opcode: int) -> Route | None:
        """The table row for ``opcode``: the base messages' rows, then this channel's."""
        if opcode <= BASE_LAST:
            base = BASE_ROUTES.get(opcode)
            if base is not None:
                return base
        return cls.routes.get(opcode)

    def gap(self, key: str, detail: str = "") -> None:
        """A gap found while handling the current message: registered with that message's
        hexdump and this channel's state, so every report of it has both."""
        self.ctx.gaps.register(key, detail, self.body, self.state())

    def unimplemented(self, opcode: int, body: bytes) -> None:
        """A message ryll reads but does not act on yet: one named gap per message kind."""
        name = self.message_name(opcode)
        self.ctx.gaps.register(
            f"{self.name}:unimpl:{name}", f"{name} is not handled yet", body, self.state()
        )

    def state(self) -> dict[str, object]:
        """This channel's state as JSON-able data, for --pedantic reports and the summary."""
        return {
            "channel": self.name,
            "channel_id": self.channel_id,
            "ack_window": self.ack_window,
            "ack_generation": self.ack_generation,
            "last_serial": self.last_serial,
            "stats": self.stats.as_dict(),
        }

    # --- base messages --------------------------------------------------------------------

    def _on_set_ack(self, ack: msgs.SetAck) -> None:
        self.ack_generation = ack.generation
        self.ack_window = self._ack_count = ack.window
        self.send(BaseClient.ACK_SYNC, msgs.build_ack_sync(ack.generation))

    def _on_ping(self, ping: msgs.Ping) -> None:
        self.send(BaseClient.PONG, msgs.build_pong(ping))
        self.stats.pings += 1
        if self.reports_pings:
            self.emit(ServerPinged(self.channel_type, self.channel_id, ping.id))

    def _on_notify(self, note: msgs.Notify) -> None:
        level = _NOTIFY_LEVELS.get(note.severity, logging.WARNING)  # type: ignore[call-overload]
        if note.severity == NotifySeverity.WARN and note.text.endswith("channel is insecure"):
            # spice-server says so (as a warning) on every plain inputs link: advice about
            # the deployment, not a fault of this session.
            level = logging.INFO
        severity = {0: "info", 1: "warn", 2: "error"}.get(note.severity, str(note.severity))
        self.log.log(level, "%s: server notify (%s): %s", self.name, severity, note.text)
        self.emit(ServerNotified(self.channel_type, self.channel_id, severity, note.text[:1024]))

    def _on_disconnecting(self, msg: msgs.Disconnecting) -> None:
        self.disconnect_reason = msg.reason
        self.log.info("%s: server is disconnecting (reason %d)", self.name, msg.reason)
        self.emit(ServerDisconnecting(self.channel_type, self.channel_id, msg.reason))

    def _on_wait_for_channels(self, wait: msgs.WaitForChannels) -> None:
        if wait.channels:
            self.emit(WaitRequested(self.channel_type, self.channel_id, wait.channels))


_MIGRATION = "seamless migration is not implemented (spice-gtk's spice_channel_handle_migrate)"

BASE_ROUTES: dict[int, Route] = {
    BaseServer.SET_ACK: handled(msgs.parse_set_ack, Channel._on_set_ack),
    BaseServer.PING: handled(msgs.parse_ping, Channel._on_ping),
    BaseServer.NOTIFY: handled(msgs.parse_notify, Channel._on_notify),
    BaseServer.DISCONNECTING: handled(msgs.parse_disconnecting, Channel._on_disconnecting),
    BaseServer.WAIT_FOR_CHANNELS: handled(msgs.parse_wait_for_channels,
                                          Channel._on_wait_for_channels),
    BaseServer.MIGRATE: gap(_MIGRATION),
    BaseServer.MIGRATE_DATA: gap(_MIGRATION),
    BaseServer.LIST: ignored("a container: handle() splits it and dispatches each sub-message"),
}
