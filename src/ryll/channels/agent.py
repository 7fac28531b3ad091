"""The client side of the vdagent conversation, sans-IO: what the main channel does with
AGENT_CONNECTED / AGENT_DATA / AGENT_TOKEN / AGENT_DISCONNECTED.

Flow control (spice-server ``reds_on_main_agent_start`` / ``reds_on_main_agent_tokens``, spice-gtk
``agent_send_msg_queue``): every AGENT_DATA costs its sender one token.

* Ours: the server grants them (INIT ``agent_tokens``, AGENT_CONNECTED_TOKENS, then AGENT_TOKEN
  as the agent consumes); pieces wait in a bounded queue while we have none.
* The server's: AGENT_START grants it ``CLIENT_TOKENS``; once we have handled ``TOKEN_RETURN``
  of its AGENT_DATA we give that many back with AGENT_TOKEN, so it never runs dry. (spice-gtk
  grants ~0, i.e. no flow control; a finite window bounds what a busy agent can queue on us.)

Clipboard (by demand, spice-gtk ``main_agent_handle_msg``): a side that has something grabs
(GRAB with its types); the other side requests a type (REQUEST) and gets it (CLIPBOARD). ryll
asks for the text of every guest grab at once, so the last text the guest offered is always at
hand; it answers the guest's requests with the text given to ``set_clipboard``.
"""

from __future__ import annotations

import logging
import struct
from collections import Counter, deque
from collections.abc import Callable

from ryll.budget import MemoryBudget, OverBudget
from ryll.channels.events import (
    AgentClipboardGrabbed,
    AgentClipboardReleased,
    AgentConnected,
    AgentDisconnected,
    AgentReady,
    AgentReplied,
    ClipboardChanged,
    ClipboardSent,
    Event,
)
from ryll.errors import RyllError
from ryll.gaps import GapRegistry
from ryll.protocol import agent as va
from ryll.protocol.constants import MainClient

# Tokens AGENT_START grants the server, and how many consumed ones we return at a time.
CLIENT_TOKENS = 10
TOKEN_RETURN = 5
# Pieces waiting for tokens: 8192 x 2 KiB = 16 MiB, one maximal clipboard text.
MAX_QUEUED_PIECES = 8192
# Clipboard text ryll sends at most (the queue must hold it, with headers).
MAX_CLIPBOARD_BYTES = va.MAX_MESSAGE_SIZE - 64
# What ryll announces (spice-gtk ``agent_announce_caps`` without the parts ryll does not do).
CLIENT_CAPS = (
    va.AgentCap.MONITORS_CONFIG,
    va.AgentCap.REPLY,
    va.AgentCap.CLIPBOARD_BY_DEMAND,
    va.AgentCap.CLIPBOARD_SELECTION,
)
# Longest clipboard text kept in state dumps and the summary.
TEXT_PREVIEW = 1024


class AgentUnavailable(RyllError):
    """The operation needs a guest agent and there is none (or it cannot do it)."""


class AgentCore:
    """One main channel's agent state. ``send`` queues a main-channel message (the channel's
    ``send``); ``emit`` hands an event to the session."""

    def __init__(
        self,
        send: Callable[[int, bytes], None],
        emit: Callable[[Event], None],
        gaps: GapRegistry,
        channel_state: Callable[[], dict[str, object]] | None = None,
        log: logging.Logger | None = None,
        memory: MemoryBudget | None = None,
    ) -> None:
        self._send = send
        self._emit = emit
        self._gaps = gaps
        self._channel_state = channel_state
        self.log = log or logging.getLogger("ryll.main.agent")
        self.connected = False
        self.tokens = 0  # ours: AGENT_DATA we may send now
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._consumed = 0  # the server's AGENT_DATA handled since we last returned tokens
        # The session's memory budget meters what the agent holds (a record being joined,
        # the pieces waiting for tokens) and is asked before a record's body is taken.
        self._memory = memory
        self._reassembler = va.Reassembler(admit=self._admit if memory is not None else None)
        if memory is not None:
            memory.meter("agent", lambda: self._reassembler.buffered + self._queued_bytes)
        self.caps: frozenset[int] = frozenset()
        self.caps_received = False
        self.client_clipboard: dict[int, str] = {}  # selection -> text we grabbed with
        self.guest_grabs: dict[int, tuple[int, ...]] = {}  # selection -> types the guest has
        self.guest_text: dict[int, str] = {}  # selection -> last text the guest offered
        self.resolution: tuple[int, int] | None = None  # wanted (--resolution)
        self.resolution_sent = False  # for this agent connection
        self.last_reply: va.Reply | None = None
        self.connections = 0
        self.messages_in: Counter[str] = Counter()
        self.messages_out: Counter[str] = Counter()

    # --- main channel messages ------------------------------------------------------------

    def set_tokens(self, tokens: int) -> None:
        self.tokens = tokens

    def start(self, tokens: int | None = None) -> None:
        """The agent is there (INIT agent_connected, AGENT_CONNECTED[_TOKENS]): AGENT_START,
        then our capabilities, asking for the agent's (spice-gtk ``agent_start``)."""
        if self.connected:
            self._drop_connection("agent restarted")
        if tokens is not None:
            self.tokens = tokens
        self.connected = True
        self.connections += 1
        self.caps = frozenset()
        self.caps_received = False
        self.resolution_sent = False
        self._consumed = 0
        self._send(MainClient.AGENT_START, struct.pack("<I", CLIENT_TOKENS))
        self.log.info("main: agent connected (%d tokens)", self.tokens)
        self._emit(AgentConnected(self.tokens))
        self._announce(request=True)

    def stop(self, error: int = 0) -> None:
        if not self.connected:
            return
        self._drop_connection(f"agent disconnected (error {error})")
        self.connected = False
        self.log.info("main: agent disconnected (error %d)", error)
        self._emit(AgentDisconnected(error))

    def _drop_connection(self, why: str) -> None:
        if self._reassembler.partial:
            self._gap("truncated", f"{why} in the middle of a message")
        self._reassembler.reset()
        self._queue.clear()
        self._queued_bytes = 0
        self.client_clipboard.clear()
        self.guest_grabs.clear()

    def add_tokens(self, n: int) -> None:
        self.tokens = min(self.tokens + n, 0xFFFFFFFF)
        self._flush()

    def on_data(self, body: bytes) -> None:
        """One AGENT_DATA: a piece of the agent's message stream."""
        self._consumed += 1
        if self._consumed >= TOKEN_RETURN:
            self._send(MainClient.AGENT_TOKEN, struct.pack("<I", self._consumed))
            self._consumed = 0
        if not self.connected:
            # The server forwards nothing once it said the agent is gone; a stale piece can
            # only be the tail of something we no longer want.
            self._gap("data_while_disconnected", "AGENT_DATA while no agent is connected", body)
            return
        for item in self._reassembler.feed(body):
            if isinstance(item, va.AgentError):
                self._gap(item.reason, str(item), body)
                continue
            try:
                self._handle(item)
            except va.AgentError as exc:
                self._gap(exc.reason, str(exc), item.data)
            except AgentUnavailable as exc:  # our answer did not fit the queue
                self._gap("queue_full", str(exc))

    # --- client operations ----------------------------------------------------------------

    @property
    def with_selection(self) -> bool:
        return va.AgentCap.CLIPBOARD_SELECTION in self.caps

    def _selection_prefix(self, selection: int) -> int | None:
        if self.with_selection:
            return selection
        if selection != va.Selection.CLIPBOARD:
            raise AgentUnavailable("the guest agent only knows the CLIPBOARD selection")
        return None

    def set_clipboard(self, text: str, selection: int = va.Selection.CLIPBOARD) -> None:
        """Own the guest's clipboard with ``text``: GRAB now, the text when the guest asks."""
        self._require(va.AgentCap.CLIPBOARD_BY_DEMAND, "clipboard")
        data = text.encode("utf-8")
        if len(data) > MAX_CLIPBOARD_BYTES:
            raise AgentUnavailable(f"clipboard text over {MAX_CLIPBOARD_BYTES} bytes")
        prefix = self._selection_prefix(selection)
        self.client_clipboard[selection] = text
        self.guest_grabs.pop(selection, None)  # ours now
        self.queue(va.AgentMsg.CLIPBOARD_GRAB,
                   va.build_clipboard_grab([va.ClipboardType.UTF8_TEXT], prefix))

    def guest_offers_text(self, selection: int = va.Selection.CLIPBOARD) -> bool:
        return va.ClipboardType.UTF8_TEXT in self.guest_grabs.get(selection, ())

    def request_clipboard(self, selection: int = va.Selection.CLIPBOARD) -> bool:
        """Ask for the text the guest grabbed with; False if it holds none."""
        self._require(va.AgentCap.CLIPBOARD_BY_DEMAND, "clipboard")
        if not self.guest_offers_text(selection):
            return False
        self.queue(va.AgentMsg.CLIPBOARD_REQUEST,
                   va.build_clipboard_request(va.ClipboardType.UTF8_TEXT,
                                              self._selection_prefix(selection)))
        return True

    def request_resolution(self, width: int, height: int) -> bool:
        """Ask the guest for a WxH display (one monitor). Sent now if the agent is there and
        announced MONITORS_CONFIG, else when it does; True if sent now."""
        if not (0 < width <= 0xFFFF and 0 < height <= 0xFFFF):
            raise ValueError(f"bad resolution {width}x{height}")
        self.resolution = (width, height)
        self.resolution_sent = False
        return self._maybe_send_resolution()

    def _maybe_send_resolution(self) -> bool:
        if self.resolution is None or self.resolution_sent:
            return False
        if not (self.connected and self.caps_received):
            return False
        if va.AgentCap.MONITORS_CONFIG not in self.caps:
            self.log.warning("main: the guest agent does not take monitors configs; "
                             "resolution %dx%d not sent", *self.resolution)
            self.resolution_sent = True
            return False
        w, h = self.resolution
        self.queue(va.AgentMsg.MONITORS_CONFIG,
                   va.build_monitors_config([va.MonitorConfig(w, h)]))
        self.resolution_sent = True
        self.log.info("main: asked the guest agent for %dx%d", w, h)
        return True

    def _require(self, cap: int, what: str) -> None:
        if not self.connected:
            raise AgentUnavailable("no guest agent is connected")
        if self.caps_received and cap not in self.caps:
            raise AgentUnavailable(f"the guest agent does not do {what} "
                                   f"({va.AgentCap(cap).name.lower()})")

    # --- sending --------------------------------------------------------------------------

    def queue(self, msg_type: int, data: bytes) -> None:
        """Queue one agent message, split into AGENT_DATA pieces, and send what tokens allow."""
        if not self.connected:
            raise AgentUnavailable("no guest agent is connected")
        pieces = va.split(va.build_message(msg_type, data))
        if len(self._queue) + len(pieces) > MAX_QUEUED_PIECES:
            raise AgentUnavailable("the agent queue is full (the agent is not reading)")
        size = sum(map(len, pieces))
        if self._memory is not None:
            try:
                self._memory.require("agent_queue", size)
            except OverBudget as exc:
                raise AgentUnavailable(f"the agent queue has no room: {exc}") from None
        self._queue.extend(pieces)
        self._queued_bytes += size
        self.messages_out[va.message_name(msg_type)] += 1
        self._flush()

    def _flush(self) -> None:
        while self.tokens > 0 and self._queue:
            self.tokens -= 1
            piece = self._queue.popleft()
            self._queued_bytes -= len(piece)
            self._send(MainClient.AGENT_DATA, piece)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def _announce(self, request: bool) -> None:
        self.queue(va.AgentMsg.ANNOUNCE_CAPABILITIES,
                   va.build_announce_capabilities(request, CLIENT_CAPS))

    # --- agent messages -------------------------------------------------------------------

    def _handle(self, msg: va.AgentMessage) -> None:
        name = va.message_name(msg.type)
        self.messages_in[name] += 1
        self.log.debug("main: agent %s (%d bytes)", name, len(msg.data))
        t = msg.type
        if t == va.AgentMsg.ANNOUNCE_CAPABILITIES:
            ann = va.parse_announce_capabilities(msg.data)
            self.caps = ann.caps
            self.caps_received = True
            self.log.info("main: agent capabilities: %s", " ".join(va.cap_names(ann.caps)))
            if ann.request:
                self._announce(request=False)
            self._emit(AgentReady(ann.caps))
            self._maybe_send_resolution()
        elif t == va.AgentMsg.CLIPBOARD_GRAB:
            selection, types = va.parse_clipboard_grab(msg.data, self.with_selection)
            self.guest_grabs[selection] = types
            self.client_clipboard.pop(selection, None)  # the guest owns it now
            self._emit(AgentClipboardGrabbed(selection, types))
            if va.ClipboardType.UTF8_TEXT in types:
                prefix = selection if self.with_selection else None
                self.queue(va.AgentMsg.CLIPBOARD_REQUEST,
                           va.build_clipboard_request(va.ClipboardType.UTF8_TEXT, prefix))
        elif t == va.AgentMsg.CLIPBOARD_REQUEST:
            selection, clip_type = va.parse_clipboard_request(msg.data, self.with_selection)
            ours = self.client_clipboard.get(selection)
            prefix = selection if self.with_selection else None
            if ours is not None and clip_type == va.ClipboardType.UTF8_TEXT:
                self.queue(va.AgentMsg.CLIPBOARD,
                           va.build_clipboard(clip_type, ours.encode("utf-8"), prefix))
                self._emit(ClipboardSent(selection, len(ours)))
            else:
                self.queue(va.AgentMsg.CLIPBOARD,
                           va.build_clipboard(va.ClipboardType.NONE, b"", prefix))
        elif t == va.AgentMsg.CLIPBOARD:
            selection, clip_type, payload = va.parse_clipboard(msg.data, self.with_selection)
            text: str | None = None
            if clip_type == va.ClipboardType.UTF8_TEXT:
                text = va.decode_text(payload)
                self.guest_text[selection] = text
            self._emit(ClipboardChanged(selection, clip_type, text))
        elif t == va.AgentMsg.CLIPBOARD_RELEASE:
            selection = va.parse_clipboard_release(msg.data, self.with_selection)
            self.guest_grabs.pop(selection, None)
            self._emit(AgentClipboardReleased(selection))
        elif t == va.AgentMsg.REPLY:
            reply = va.parse_reply(msg.data)
            self.last_reply = reply
            self.log.info("main: agent reply to %s: %s", va.message_name(reply.type),
                          "success" if reply.ok else f"error {reply.error}")
            self._emit(AgentReplied(reply.type, reply.error))
        elif t in va.AgentMsg._value2member_map_:
            self._gap(f"unhandled:{name}", f"agent {name} is not handled", msg.data)
        else:
            self._gap("unknown_type", f"agent message of unknown type {t}", msg.data)

    def _admit(self, size: int) -> tuple[str, str] | None:
        """The reassembler's question before it takes a record of ``size`` bytes."""
        assert self._memory is not None
        try:
            self._memory.require("agent_message", size)
        except OverBudget as exc:
            return "over_budget", str(exc)
        return None

    def _gap(self, reason: str, detail: str, data: bytes | None = None) -> None:
        state = self._channel_state() if self._channel_state is not None else None
        self._gaps.register(f"main:agent:{reason}", detail, data, state)

    # --- reporting ------------------------------------------------------------------------

    def as_dict(self) -> dict[str, object]:
        guest = self.guest_text.get(va.Selection.CLIPBOARD)
        return {
            "connected": self.connected,
            "connections": self.connections,
            "caps": va.cap_names(self.caps),
            "tokens": self.tokens,
            "queued_pieces": len(self._queue),
            "resolution_requested": (
                f"{self.resolution[0]}x{self.resolution[1]}" if self.resolution else None
            ),
            "resolution_sent": self.resolution_sent,
            "last_reply": (
                {"type": va.message_name(self.last_reply.type), "error": self.last_reply.error}
                if self.last_reply else None
            ),
            "guest_clipboard": guest[:TEXT_PREVIEW] if guest is not None else None,
            "guest_grabs": {str(k): list(v) for k, v in sorted(self.guest_grabs.items())},
            "client_grabs": sorted(self.client_clipboard),
            "messages_in": dict(sorted(self.messages_in.items())),
            "messages_out": dict(sorted(self.messages_out.items())),
        }
