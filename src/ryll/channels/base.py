"""The sans-IO channel handler every channel builds on.

A handler takes framed messages in and produces events and bytes to send; it never touches a
socket or the event loop. The base class owns what every SPICE channel shares (spice-gtk
``spice_channel_handle_msg`` / ``spice_channel_recv_msg``): the ACK window, PING -> PONG,
NOTIFY, DISCONNECTING, WAIT_FOR_CHANNELS, LIST sub-messages, MIGRATE (a named gap), per-message
statistics, and the one fallback for an opcode nobody handles: the ``<channel>:hexdump:<opcode>``
gap. Subclasses declare ``handlers``: opcode -> method, one branch per message.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ryll.channels.context import ChannelContext
from ryll.channels.events import Event, ServerDisconnecting, WaitRequested
from ryll.errors import ProtocolError
from ryll.protocol.constants import BASE_LAST, BaseClient, BaseServer, NotifySeverity
from ryll.protocol.framing import Message, MessageFramer, MessageWriter, split_sub_messages
from ryll.protocol.messages import base as msgs
from ryll.protocol.names import Direction, channel_name, message_name

# A handler is an unbound method of a Channel subclass (or a lambda taking the channel).
Handler = Callable[[Any, bytes], None]


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
    ``handlers`` and may override ``start`` to queue their first messages."""

    channel_type: ClassVar[int]
    handlers: ClassVar[dict[int, Handler]] = {}
    # Capabilities this handler implements; the session advertises exactly these.
    channel_caps: ClassVar[tuple[int, ...]] = ()

    def __init__(self, channel_id: int, ctx: ChannelContext, mini_header: bool = True) -> None:
        self.channel_id = channel_id
        self.ctx = ctx
        self.name = channel_name(self.channel_type)
        self.log = logging.getLogger(f"ryll.{self.name}")
        self._framer = MessageFramer(mini_header)
        self._writer = MessageWriter(mini_header)
        self._out: list[bytes] = []
        # Messages are queued by the channel's own handling (which may run in a worker thread
        # for big messages) and by callers on the event loop (a key press, an agent message);
        # the lock keeps serial numbers, queue order and the hand-over to the writer whole.
        self._out_lock = threading.Lock()
        # Held while a message is handled (on the event loop or in a worker thread); readers
        # in other threads (a screenshot) take it to see state between messages only.
        self.lock = threading.RLock()
        self._events: list[Event] = []
        self.stats = ChannelStats()
        self.ack_window = 0
        self._ack_count = 0
        self.ack_generation = 0
        # The serial of the last message handled: the header's with full headers, else a count
        # starting at 1 (spice-gtk in_serial); WAIT_FOR_CHANNELS waits on it.
        self.last_serial = 0
        self.server_caps: tuple[int, ...] = ()
        self.disconnect_reason: int | None = None

    # --- bytes in, bytes out -------------------------------------------------------------

    def start(self) -> None:
        """Queue the messages a channel sends right after linking (display INIT, ...)."""

    def feed(self, data: bytes) -> list[Message]:
        """Frame incoming bytes; raises ProtocolError on an oversized header."""
        self.stats.bytes_in += len(data)
        return self._framer.feed(data)

    def handle(self, message: Message) -> list[Event]:
        """Handle one framed message: its sub-messages first, then the ACK window, then the
        message itself (the order of spice-gtk's spice_channel_recv_msg)."""
        with self.lock:
            return self._handle(message)

    def _handle(self, message: Message) -> list[Event]:
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

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed and handle in one call (tests, and callers that need no per-message pacing)."""
        events: list[Event] = []
        for message in self.feed(data):
            events.extend(self.handle(message))
        return events

    def send(self, opcode: int, body: bytes = b"") -> None:
        if self.ctx.tap is not None:
            self.ctx.tap(self.channel_type, self.channel_id, "out", opcode, body)
        with self._out_lock:
            data = self._writer.build(opcode, body)
            self._out.append(data)
            self.stats.messages_out += 1
            self.stats.bytes_out += len(data)

    def data_to_send(self) -> bytes:
        with self._out_lock:
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
        handler = _BASE_HANDLERS.get(message.type) if message.type <= BASE_LAST else None
        if handler is None:
            handler = self.handlers.get(message.type)
        if handler is None:
            self.ctx.gaps.unknown_message(self.name, message.type, message.body, self.state())
            return
        self.log.debug("%s %s (%d bytes)", self.name, name, len(message.body))
        try:
            handler(self, message.body)
        except ProtocolError as exc:
            # A malformed message is a named gap on this channel; the channel and the session
            # carry on, since the framing (and so the next message) is intact.
            self.ctx.gaps.register(
                f"{self.name}:malformed:{name}", str(exc), message.body, self.state()
            )

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

    def _on_set_ack(self, body: bytes) -> None:
        ack = msgs.parse_set_ack(body)
        self.ack_generation = ack.generation
        self.ack_window = self._ack_count = ack.window
        self.send(BaseClient.ACK_SYNC, msgs.build_ack_sync(ack.generation))

    def _on_ping(self, body: bytes) -> None:
        ping = msgs.parse_ping(body)
        self.send(BaseClient.PONG, msgs.build_pong(ping))
        self.stats.pings += 1

    def _on_notify(self, body: bytes) -> None:
        note = msgs.parse_notify(body)
        level = _NOTIFY_LEVELS.get(note.severity, logging.WARNING)  # type: ignore[call-overload]
        severity = {0: "info", 1: "warn", 2: "error"}.get(note.severity, str(note.severity))
        self.log.log(level, "%s: server notify (%s): %s", self.name, severity, note.text)

    def _on_disconnecting(self, body: bytes) -> None:
        msg = msgs.parse_disconnecting(body)
        self.disconnect_reason = msg.reason
        self.log.info("%s: server is disconnecting (reason %d)", self.name, msg.reason)
        self.emit(ServerDisconnecting(msg.reason))

    def _on_wait_for_channels(self, body: bytes) -> None:
        wait = msgs.parse_wait_for_channels(body)
        if wait.channels:
            self.emit(WaitRequested(wait.channels))

    def _on_migrate(self, body: bytes) -> None:
        self.unimplemented(BaseServer.MIGRATE, body)

    def _on_migrate_data(self, body: bytes) -> None:
        self.unimplemented(BaseServer.MIGRATE_DATA, body)


_BASE_HANDLERS: dict[int, Handler] = {
    BaseServer.SET_ACK: Channel._on_set_ack,
    BaseServer.PING: Channel._on_ping,
    BaseServer.NOTIFY: Channel._on_notify,
    BaseServer.DISCONNECTING: Channel._on_disconnecting,
    BaseServer.WAIT_FOR_CHANNELS: Channel._on_wait_for_channels,
    BaseServer.MIGRATE: Channel._on_migrate,
    BaseServer.MIGRATE_DATA: Channel._on_migrate_data,
}
