"""``session.agent`` (session/agent.py) over a MainChannel driven by a fake guest agent."""

from __future__ import annotations

import asyncio
import struct

import pytest

from ryll.channels.agent import AgentUnavailable
from ryll.channels.context import ChannelContext
from ryll.channels.events import AgentDisconnected, AgentReady, ClipboardChanged, Event
from ryll.channels.main import MainChannel
from ryll.cli.main import parse_resolution
from ryll.errors import UsageError
from ryll.protocol import agent as va
from ryll.protocol.constants import ChannelType, MainClient, MainServer
from ryll.protocol.framing import MessageFramer, MessageWriter
from ryll.session.agent import AgentClient

CAPS = va.build_announce_capabilities(False, [1, 2, 5, 6])


class FakeSession:
    """What AgentClient uses of a Session: channel() and flush()."""

    def __init__(self) -> None:
        self.main: MainChannel | None = None
        self.agent = AgentClient(self)  # type: ignore[arg-type]
        self.written: list[tuple[int, bytes]] = []
        self.events: list[Event] = []

    def channel(self, channel_type: int, channel_id: int = 0) -> MainChannel | None:
        return self.main if channel_type == ChannelType.MAIN else None

    def flush(self, channel: MainChannel) -> None:
        self.written += [(m.type, m.body) for m in MessageFramer(True).feed(channel.data_to_send())]

    def deliver(self, opcode: int, body: bytes = b"") -> None:
        assert self.main is not None
        for event in self.main.receive_data(MessageWriter(True).build(opcode, body)):
            self.agent.handle_event(event)
            self.events.append(event)
        self.flush(self.main)

    def guest(self, msg_type: int, data: bytes) -> None:
        for piece in va.split(va.build_message(msg_type, data)):
            self.deliver(MainServer.AGENT_DATA, piece)

    def agent_out(self) -> list[va.AgentMessage]:
        r = va.Reassembler()
        out = [r.feed(b) for op, b in self.written if op == MainClient.AGENT_DATA]
        return [m for items in out for m in items if isinstance(m, va.AgentMessage)]


def start(agent: int) -> FakeSession:
    s = FakeSession()
    s.main = MainChannel(0, ChannelContext())
    s.deliver(MainServer.INIT, struct.pack("<8I", 1, 1, 3, 1, agent, 10, 0, 0))
    return s


def test_no_agent_degrades_cleanly() -> None:
    s = FakeSession()
    assert s.agent.connected is False and s.agent.caps == frozenset()
    assert s.agent.request_resolution(800, 600) is False  # kept for later
    assert s.agent.as_dict()["resolution_requested"] == "800x600"
    with pytest.raises(AgentUnavailable):
        s.agent.set_clipboard("x")
    with pytest.raises(AgentUnavailable):
        asyncio.run(s.agent.get_clipboard(0.1))
    with pytest.raises(ValueError):
        s.agent.request_resolution(0, 600)


def test_resolution_before_connect_is_sent_after_caps() -> None:
    s = FakeSession()
    s.agent.request_resolution(800, 600)
    s.main = MainChannel(0, ChannelContext())
    s.deliver(MainServer.INIT, struct.pack("<8I", 1, 1, 3, 1, 0, 10, 0, 0))
    s.deliver(MainServer.AGENT_CONNECTED_TOKENS, struct.pack("<I", 10))
    s.guest(va.AgentMsg.ANNOUNCE_CAPABILITIES, CAPS)
    mons = [m for m in s.agent_out() if m.type == va.AgentMsg.MONITORS_CONFIG]
    assert [va.parse_monitors_config(m.data)[1] for m in mons] == [[va.MonitorConfig(800, 600)]]


def test_events_and_clipboard_both_ways() -> None:
    s = start(agent=1)
    s.guest(va.AgentMsg.ANNOUNCE_CAPABILITIES, CAPS)
    assert s.agent.connected and va.AgentCap.CLIPBOARD_SELECTION in s.agent.caps
    assert AgentReady(frozenset({1, 2, 5, 6})) in s.events

    s.agent.set_clipboard("to guest")
    s.guest(va.AgentMsg.CLIPBOARD_REQUEST, va.build_clipboard_request(1, 0))
    assert s.agent_out()[-1] == va.AgentMessage(
        va.AgentMsg.CLIPBOARD, va.build_clipboard(1, b"to guest", 0))

    s.guest(va.AgentMsg.CLIPBOARD_GRAB, va.build_clipboard_grab([1], 0))
    s.guest(va.AgentMsg.CLIPBOARD, va.build_clipboard(1, b"to client", 0))
    assert ClipboardChanged(0, 1, "to client") in s.events
    assert s.agent.guest_clipboard == "to client"

    async def ask() -> str | None:
        task = asyncio.ensure_future(s.agent.get_clipboard(2.0))
        await asyncio.sleep(0)
        assert s.agent_out()[-1].type == va.AgentMsg.CLIPBOARD_REQUEST
        s.guest(va.AgentMsg.CLIPBOARD, va.build_clipboard(1, b"fresh", 0))
        return await task

    assert asyncio.run(ask()) == "fresh"

    async def unanswered() -> None:
        await s.agent.get_clipboard(0.05)

    with pytest.raises(TimeoutError):
        asyncio.run(unanswered())

    async def dropped() -> None:
        task = asyncio.ensure_future(s.agent.get_clipboard(2.0))
        await asyncio.sleep(0)
        s.deliver(MainServer.AGENT_DISCONNECTED, struct.pack("<I", 0))
        await task

    with pytest.raises(AgentUnavailable):
        asyncio.run(dropped())
    assert AgentDisconnected(0) in s.events
    assert not s.agent.connected
    assert s.agent.guest_clipboard == "fresh"


def test_parse_resolution() -> None:
    assert parse_resolution("800x600") == (800, 600)
    assert parse_resolution(" 1024X768 ") == (1024, 768)
    for bad in ("800", "0x600", "800x0", "800x600x2", "-1x5", "99999x10", "axb"):
        with pytest.raises(UsageError):
            parse_resolution(bad)
