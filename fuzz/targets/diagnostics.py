"""Harnesses of what ryll reads back from files people send: the pcap reader of captures and
bug reports (``ryll report``).

Contract: bytes in, conversations (or a ProtocolError) out; every message read fits the data
it came from.
"""

from __future__ import annotations

import struct
from pathlib import Path

from fuzz.contract import ContractViolation
from fuzz.target import Target
from ryll.diagnostics import pcap
from ryll.diagnostics.pcap_read import read_conversations
from ryll.errors import ProtocolError
from ryll.protocol.constants import ChannelType, CommonCap
from ryll.protocol.link import build_link_message

LINK_REPLY = (Path(__file__).resolve().parents[2] / "tests" / "fixtures" /
              "link-reply-main.bin").read_bytes()
CAPS = (CommonCap.PROTOCOL_AUTH_SELECTION, CommonCap.AUTH_SPICE, CommonCap.MINI_HEADER)


def pcap_one_input(data: bytes) -> None:
    try:
        convs = read_conversations(data)
    except ProtocolError:
        return
    for conv in convs:
        if sum(m.size for m in conv.messages) > len(data):
            raise ContractViolation("messages bigger than the pcap they came from")


def _conversation(channel: int, messages: list[tuple[bool, int, bytes]]) -> bytes:
    conv = pcap.TcpConversation(pcap.channel_port("main") + channel)
    out = conv.open(0.0)
    out += conv.sent(build_link_message(0, channel, 0, CAPS, ()), 0.0)
    out += conv.received(LINK_REPLY, 0.0) + conv.sent(struct.pack("<I", 1), 0.0)
    out += conv.sent(bytes(128), 0.0) + conv.received(struct.pack("<I", 0), 0.0)
    for i, (sent, opcode, body) in enumerate(messages):
        wire = struct.pack("<HI", opcode, len(body)) + body
        out += conv.sent(wire, i / 10) if sent else conv.received(wire, i / 10)
    return out


def pcap_seeds() -> list[bytes]:
    small = [(False, 103, bytes(32)), (True, 3, bytes(12)), (False, 4, bytes(12))]
    big = [(False, 302, bytes(70_000))]
    return [
        pcap.global_header() + _conversation(ChannelType.MAIN, small),
        pcap.global_header() + _conversation(ChannelType.DISPLAY, big + small),
        pcap.global_header() + _conversation(ChannelType.MAIN, small)
        + _conversation(ChannelType.INPUTS, small[:1]),
    ]


TARGETS = {
    "pcap_read": Target(pcap_one_input, pcap_seeds, "the pcap reader of captures and bug "
                        "reports (read_conversations: records, TCP frames, link phase, "
                        "framing)"),
}
