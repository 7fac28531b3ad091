"""The main channel's side of the vdagent conversation (channels/agent.py): AGENT_START,
token flow control both ways, capabilities, monitors config, clipboard, named gaps. A fake
guest agent built from our own vd_agent.h builders talks to a MainChannel through frames."""

from __future__ import annotations

import struct

import pytest

from ryll.channels.agent import (
    CLIENT_TOKENS,
    TOKEN_RETURN,
    AgentUnavailable,
)
from ryll.channels.context import ChannelContext
from ryll.channels.events import (
    AgentClipboardGrabbed,
    AgentConnected,
    AgentDisconnected,
    AgentReady,
    ClipboardChanged,
    ClipboardSent,
)
from ryll.channels.main import MainChannel
from ryll.protocol import agent as va
from ryll.protocol.constants import MainClient, MainServer
from ryll.protocol.framing import MessageFramer, MessageWriter

GUEST_CAPS = (
    va.AgentCap.MONITORS_CONFIG,
    va.AgentCap.REPLY,
    va.AgentCap.CLIPBOARD_BY_DEMAND,
    va.AgentCap.CLIPBOARD_SELECTION,
)


def frame(mtype: int, data: bytes = b"") -> bytes:
    return MessageWriter(True).build(mtype, data)


def init_body(agent_connected: int, tokens: int = 10) -> bytes:
    # session_id, display_channels_hint, supported/current mouse modes, agent_connected,
    # agent_tokens, multi_media_time, ram_hint
    return struct.pack("<8I", 1, 1, 3, 1, agent_connected, tokens, 0, 0)


class Wire:
    """What the channel sent, split into main messages and reassembled agent messages."""

    def __init__(self, ch: MainChannel) -> None:
        self.ch = ch
        self.reasm = va.Reassembler()

    def take(self) -> tuple[list[tuple[int, bytes]], list[va.AgentMessage]]:
        msgs = [(m.type, m.body) for m in MessageFramer(True).feed(self.ch.data_to_send())]
        agent: list[va.AgentMessage] = []
        for opcode, body in msgs:
            if opcode == MainClient.AGENT_DATA:
                assert len(body) <= va.MAX_DATA_SIZE
                for item in self.reasm.feed(body):
                    assert isinstance(item, va.AgentMessage)
                    agent.append(item)
        return msgs, agent


def guest_send(ch: MainChannel, msg_type: int, data: bytes = b"") -> list[object]:
    events: list[object] = []
    for piece in va.split(va.build_message(msg_type, data)):
        events.extend(ch.receive_data(frame(MainServer.AGENT_DATA, piece)))
    return events


def connected(tokens: int = 10, caps: tuple[int, ...] = GUEST_CAPS) -> tuple[MainChannel, Wire]:
    ch = MainChannel(0, ChannelContext())
    wire = Wire(ch)
    ch.receive_data(frame(MainServer.INIT, init_body(0, tokens)))
    ch.receive_data(frame(MainServer.AGENT_CONNECTED_TOKENS, struct.pack("<I", tokens)))
    wire.take()
    guest_send(ch, va.AgentMsg.ANNOUNCE_CAPABILITIES, va.build_announce_capabilities(False, caps))
    wire.take()
    return ch, wire


def test_agent_start_and_capability_announcement() -> None:
    ch = MainChannel(0, ChannelContext())
    wire = Wire(ch)
    events = ch.receive_data(frame(MainServer.INIT, init_body(1, 10)))
    msgs, agent = wire.take()
    # spice-gtk order: AGENT_START (granting the server its tokens), our caps, then ATTACH.
    assert msgs[0] == (MainClient.AGENT_START, struct.pack("<I", CLIENT_TOKENS))
    assert msgs[-1] == (MainClient.ATTACH_CHANNELS, b"")
    assert agent == [va.AgentMessage(
        va.AgentMsg.ANNOUNCE_CAPABILITIES,
        va.build_announce_capabilities(True, [1, 2, 5, 6]),
    )]
    assert AgentConnected(10) in events
    assert ch.agent.connected and ch.agent.tokens == 9
    # The guest announces and asks for ours: we answer without asking again.
    events = guest_send(ch, va.AgentMsg.ANNOUNCE_CAPABILITIES,
                        va.build_announce_capabilities(True, GUEST_CAPS))
    assert AgentReady(frozenset(GUEST_CAPS)) in events
    _, agent = wire.take()
    assert va.parse_announce_capabilities(agent[0].data).request is False
    assert ch.state()["agent"]["caps"] == [  # type: ignore[index]
        "monitors_config", "reply", "clipboard_by_demand", "clipboard_selection"]


def test_our_tokens_queue_and_server_grants_release() -> None:
    ch, wire = connected(tokens=1)
    assert ch.agent.tokens == 0  # AGENT_START is free; our announcement took the one token
    ch.agent.set_clipboard("x" * 5000)  # the GRAB: one piece, waiting
    guest_send(ch, va.AgentMsg.CLIPBOARD_REQUEST, va.build_clipboard_request(1, 0))
    msgs, _ = wire.take()
    assert msgs == [] and ch.agent.queued == 4  # and the text: 3 pieces
    ch.receive_data(frame(MainServer.AGENT_TOKEN, struct.pack("<I", 2)))
    msgs, agent = wire.take()
    assert [m[0] for m in msgs] == [MainClient.AGENT_DATA] * 2 and ch.agent.queued == 2
    assert [m.type for m in agent] == [va.AgentMsg.CLIPBOARD_GRAB]
    ch.receive_data(frame(MainServer.AGENT_TOKEN, struct.pack("<I", 5)))
    msgs, agent = wire.take()
    assert len(msgs) == 2 and ch.agent.tokens == 3 and ch.agent.queued == 0
    assert agent == [va.AgentMessage(va.AgentMsg.CLIPBOARD,
                                     va.build_clipboard(1, b"x" * 5000, 0))]


def test_server_tokens_are_given_back() -> None:
    ch, wire = connected()
    for _ in range(TOKEN_RETURN - 2):  # connected() already fed one piece
        guest_send(ch, va.AgentMsg.REPLY, va.build_reply(va.AgentMsg.MONITORS_CONFIG))
    msgs, _ = wire.take()
    assert (MainClient.AGENT_TOKEN, struct.pack("<I", TOKEN_RETURN)) not in msgs
    guest_send(ch, va.AgentMsg.REPLY, va.build_reply(va.AgentMsg.MONITORS_CONFIG))
    msgs, _ = wire.take()
    assert msgs == [(MainClient.AGENT_TOKEN, struct.pack("<I", TOKEN_RETURN))]
    # A message spanning pieces costs the server one token per piece.
    guest_send(ch, va.AgentMsg.CLIPBOARD, va.build_clipboard(0, bytes(5000), 0))
    assert ch.agent._consumed == 3


def test_resolution_waits_for_capabilities() -> None:
    ch = MainChannel(0, ChannelContext())
    wire = Wire(ch)
    assert ch.agent.request_resolution(800, 600) is False  # no agent yet
    ch.receive_data(frame(MainServer.INIT, init_body(1)))
    _, agent = wire.take()
    assert [m.type for m in agent] == [va.AgentMsg.ANNOUNCE_CAPABILITIES]
    guest_send(ch, va.AgentMsg.ANNOUNCE_CAPABILITIES,
               va.build_announce_capabilities(False, GUEST_CAPS))
    _, agent = wire.take()
    assert agent == [va.AgentMessage(
        va.AgentMsg.MONITORS_CONFIG, va.build_monitors_config([va.MonitorConfig(800, 600)])
    )]
    guest_send(ch, va.AgentMsg.REPLY, va.build_reply(va.AgentMsg.MONITORS_CONFIG))
    assert ch.agent.last_reply is not None and ch.agent.last_reply.ok
    # Asked again while connected: sent at once.
    assert ch.agent.request_resolution(1024, 768) is True


def test_resolution_not_sent_to_an_agent_without_monitors_config() -> None:
    ch, wire = connected(caps=(va.AgentCap.CLIPBOARD_BY_DEMAND,))
    assert ch.agent.request_resolution(800, 600) is False
    assert wire.take()[1] == []


def test_clipboard_client_to_guest() -> None:
    ch, wire = connected()
    ch.agent.set_clipboard("hello guest")
    _, agent = wire.take()
    assert agent == [va.AgentMessage(
        va.AgentMsg.CLIPBOARD_GRAB, va.build_clipboard_grab([va.ClipboardType.UTF8_TEXT], 0)
    )]
    events = guest_send(ch, va.AgentMsg.CLIPBOARD_REQUEST, va.build_clipboard_request(1, 0))
    _, agent = wire.take()
    assert agent == [va.AgentMessage(
        va.AgentMsg.CLIPBOARD, va.build_clipboard(1, b"hello guest", 0)
    )]
    assert ClipboardSent(0, len("hello guest")) in events
    # A type we do not have: an empty answer of type NONE (and nothing was pasted).
    events = guest_send(ch, va.AgentMsg.CLIPBOARD_REQUEST,
                        va.build_clipboard_request(va.ClipboardType.IMAGE_PNG, 0))
    assert not any(isinstance(e, ClipboardSent) for e in events)
    assert wire.take()[1] == [va.AgentMessage(va.AgentMsg.CLIPBOARD, va.build_clipboard(0, b"", 0))]


def test_clipboard_guest_to_client_is_fetched_and_kept() -> None:
    ch, wire = connected()
    events = guest_send(ch, va.AgentMsg.CLIPBOARD_GRAB, va.build_clipboard_grab([1], 0))
    assert AgentClipboardGrabbed(0, (1,)) in events
    _, agent = wire.take()
    assert agent == [va.AgentMessage(va.AgentMsg.CLIPBOARD_REQUEST,
                                     va.build_clipboard_request(1, 0))]
    events = guest_send(ch, va.AgentMsg.CLIPBOARD, va.build_clipboard(1, b"from guest\0", 0))
    assert ClipboardChanged(0, 1, "from guest") in events
    assert ch.agent.guest_text[0] == "from guest"
    assert ch.agent.request_clipboard() is True
    guest_send(ch, va.AgentMsg.CLIPBOARD_RELEASE, va.build_clipboard_release(0))
    assert ch.agent.request_clipboard() is False
    assert ch.agent.guest_text[0] == "from guest"  # the last text offered stays


def test_clipboard_without_selection_cap() -> None:
    ch, wire = connected(caps=(va.AgentCap.CLIPBOARD_BY_DEMAND,))
    guest_send(ch, va.AgentMsg.CLIPBOARD_GRAB, va.build_clipboard_grab([1]))
    assert wire.take()[1][0].data == va.build_clipboard_request(1)
    guest_send(ch, va.AgentMsg.CLIPBOARD, va.build_clipboard(1, b"plain"))
    assert ch.agent.guest_text[0] == "plain"
    with pytest.raises(AgentUnavailable):
        ch.agent.set_clipboard("x", selection=va.Selection.PRIMARY)


def test_no_agent_operations_raise() -> None:
    ch = MainChannel(0, ChannelContext())
    ch.receive_data(frame(MainServer.INIT, init_body(0)))
    with pytest.raises(AgentUnavailable):
        ch.agent.set_clipboard("x")
    with pytest.raises(AgentUnavailable):
        ch.agent.request_clipboard()
    assert ch.state()["agent"]["connected"] is False  # type: ignore[index]


def test_malformed_and_oversized_agent_messages_are_named_gaps() -> None:
    ch, wire = connected()
    gaps = ch.ctx.gaps
    guest_send(ch, va.AgentMsg.REPLY, b"\0")  # short
    guest_send(ch, va.AgentMsg.CLIPBOARD_REQUEST, b"\0")  # short, before the prefix ends
    ch.receive_data(frame(MainServer.AGENT_DATA, struct.pack("<IIQI", 9, 1, 0, 0)))
    ch.agent._reassembler.max_size = 64
    guest_send(ch, va.AgentMsg.CLIPBOARD, bytes(3000))
    guest_send(ch, va.AgentMsg.FILE_XFER_STATUS, bytes(8))
    guest_send(ch, 99, b"")
    assert gaps.counts() == {
        "main:agent:bad_protocol": 1,
        "main:agent:oversized": 1,
        "main:agent:short:clipboard_request": 1,
        "main:agent:short:reply": 1,
        "main:agent:unhandled:file_xfer_status": 1,
        "main:agent:unknown_type": 1,
    }
    # The stream is still in step.
    guest_send(ch, va.AgentMsg.CLIPBOARD_GRAB, va.build_clipboard_grab([1], 0))
    assert ch.agent.guest_offers_text()


def test_disconnect_mid_message_is_truncated_and_resets() -> None:
    ch, wire = connected()
    piece = va.split(va.build_message(va.AgentMsg.CLIPBOARD, bytes(3000)))[0]
    ch.receive_data(frame(MainServer.AGENT_DATA, piece))
    ch.agent.set_clipboard("mine")
    events = ch.receive_data(frame(MainServer.AGENT_DISCONNECTED, struct.pack("<I", 0)))
    assert AgentDisconnected(0) in events
    assert not ch.agent.connected and ch.agent.client_clipboard == {}
    assert "main:agent:truncated" in ch.ctx.gaps
    ch.receive_data(frame(MainServer.AGENT_DATA, piece))
    assert "main:agent:data_while_disconnected" in ch.ctx.gaps
    # Reconnect: a fresh start with the new token count.
    wire.take()
    ch.receive_data(frame(MainServer.AGENT_CONNECTED_TOKENS, struct.pack("<I", 10)))
    msgs, agent = wire.take()
    assert msgs[0] == (MainClient.AGENT_START, struct.pack("<I", CLIENT_TOKENS))
    assert [m.type for m in agent] == [va.AgentMsg.ANNOUNCE_CAPABILITIES]
    assert ch.agent.connections == 2 and not ch.agent.caps_received
