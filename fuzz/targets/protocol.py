"""Harnesses of the wire layer: the message framer and sub-message lists, the link reply
(header, reply, capabilities, the ticket key, the link result), and vdagent reassembly with
every agent message parser.

Contract: bytes in, messages (or a ProtocolError / LinkError) out; the framer accounts for
every byte it was fed; the reassembler never hands out a record over its size bound.
"""

from __future__ import annotations

import random
import struct

from fuzz import seeds as S
from fuzz.contract import ContractViolation
from fuzz.target import Target
from ryll.errors import RyllError
from ryll.protocol import agent as va
from ryll.protocol import link
from ryll.protocol.constants import (
    DATA_HEADER_SIZE,
    LINK_MAGIC,
    MINI_DATA_HEADER_SIZE,
    VERSION_MAJOR,
    VERSION_MINOR,
    ChannelType,
)
from ryll.protocol.framing import MessageFramer, split_sub_messages

# --- framer: [mode u8][stream]; mode bit 0: mini headers; mode seeds the chunk sizes ----------

CHUNKS = (1, 2, 3, 5, 6, 17, 64, 1024, 1 << 30)


def framer_one_input(data: bytes) -> None:
    if not data:
        return
    mode, stream = data[0], data[1:]
    framer = MessageFramer(mini_header=bool(mode & 1))
    header = MINI_DATA_HEADER_SIZE if mode & 1 else DATA_HEADER_SIZE
    chunks = random.Random(mode)
    pos = framed = 0
    try:
        while pos < len(stream):
            k = chunks.choice(CHUNKS)
            for msg in framer.feed(stream[pos:pos + k]):
                framed += header + len(msg.body)
                try:
                    for sub in split_sub_messages(msg):
                        if len(sub.body) > len(msg.body):
                            raise ContractViolation("a sub-message larger than its message")
                except RyllError:
                    pass
            pos += k
    except RyllError:
        return
    unaccounted = len(stream) - framed - framer.buffered
    if unaccounted not in (0, header):
        raise ContractViolation(f"framer: fed {len(stream)} bytes, framed {framed}, buffers "
                                f"{framer.buffered}")


def list_body(subs: list[tuple[int, bytes]], lead: bytes = b"") -> tuple[bytes, int]:
    """A SpiceSubMessageList after ``lead`` bytes: (body, offset of the list)."""
    at = len(lead)
    table = 2 + 4 * len(subs)
    records, offsets = b"", []
    for op, body in subs:
        offsets.append(at + table + len(records))
        records += struct.pack("<HI", op, len(body)) + body
    return lead + struct.pack(f"<H{len(subs)}I", len(subs), *offsets) + records, at


def framer_seeds() -> list[bytes]:
    out = []
    for ch in (ChannelType.MAIN, ChannelType.DISPLAY, ChannelType.CURSOR, ChannelType.INPUTS):
        msgs = [(r.opcode, r.body) for r in S.server_records(S.SESSION, ch)][:12]
        if msgs:
            out.append(b"\x01" + S.wire(msgs, True))
            out.append(b"\x02" + S.wire(msgs, False))
    subs = [(4, struct.pack("<IQ", 1, 2)), (3, struct.pack("<II", 1, 10))]
    body, _ = list_body(subs)
    out.append(b"\x03" + S.wire([(8, body), (102, b"")], True))
    body, at = list_body(subs, lead=struct.pack("<I", 7))
    out.append(b"\x04" + struct.pack("<QHII", 1, 107, len(body), at) + body)
    return out


# --- link reply: [SpiceLinkHeader][SpiceLinkReply][optional u32 link result] --------------------


def link_one_input(data: bytes) -> None:
    try:
        size = link.parse_link_header(data[:16])
    except RyllError:
        return
    body = data[16:16 + size]
    if len(body) < size:
        return  # the connection would still be reading
    try:
        reply = link.parse_link_reply(body)
        link.words_to_caps(reply.common_caps + reply.channel_caps)
        link.check_link_result(reply.error, ChannelType.MAIN)
        link.choose_auth_mechanism(reply)
        link.encrypt_ticket(reply.pub_key, "secret")
    except RyllError:
        pass
    tail = data[16 + size:]
    if tail:
        try:
            link.check_link_result(link.parse_link_result(tail[:4]), ChannelType.DISPLAY, 1)
        except RyllError:
            pass


def link_seeds() -> list[bytes]:
    raw = (S.FIXTURES / "link-reply-main.bin").read_bytes()
    denied = (S.FIXTURES / "link-result-denied.bin").read_bytes()
    short = struct.pack("<IIIII", LINK_MAGIC, VERSION_MAJOR, VERSION_MINOR, 4, 5)
    return [raw, raw + denied, raw + b"\0\0\0\0", short]


# --- agent: [flags u8][cut u8][stream of VDAgentMessage records]; flags bit 0: selection
# prefixes, bit 1: a 4 KiB reassembly bound; ``cut`` seeds the piece sizes --------------------

PIECES = (1, 3, 7, 20, 64, 513, va.MAX_DATA_SIZE)
SMALL_BOUND = 4096


def handle_agent_message(msg: va.AgentMessage, with_selection: bool) -> None:
    """What AgentCore._handle parses, for every message type it takes."""
    t, d = msg.type, msg.data
    if t == va.AgentMsg.ANNOUNCE_CAPABILITIES:
        va.cap_names(va.parse_announce_capabilities(d).caps)
    elif t == va.AgentMsg.MONITORS_CONFIG:
        va.parse_monitors_config(d)
    elif t == va.AgentMsg.REPLY:
        va.parse_reply(d)
    elif t == va.AgentMsg.CLIPBOARD_GRAB:
        va.parse_clipboard_grab(d, with_selection)
    elif t == va.AgentMsg.CLIPBOARD_REQUEST:
        va.parse_clipboard_request(d, with_selection)
    elif t == va.AgentMsg.CLIPBOARD:
        va.decode_text(va.parse_clipboard(d, with_selection)[2])
    elif t == va.AgentMsg.CLIPBOARD_RELEASE:
        va.parse_clipboard_release(d, with_selection)
    else:
        va.message_name(t)


def agent_pieces(cut: int, stream: bytes) -> list[bytes]:
    sizes = random.Random(cut)
    out, pos = [], 0
    while pos < len(stream):
        k = sizes.choice(PIECES)
        out.append(stream[pos:pos + k])
        pos += k
    return out


def agent_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    flags, cut = data[0], data[1]
    with_selection = bool(flags & 1)
    reassembler = va.Reassembler(SMALL_BOUND if flags & 2 else va.MAX_MESSAGE_SIZE)
    for piece in agent_pieces(cut, data[2:]):
        try:
            items = reassembler.feed(piece)
        except RyllError:
            continue
        for item in items:
            if isinstance(item, va.AgentError):
                continue
            if len(item.data) > reassembler.max_size:
                raise ContractViolation(f"agent record of {len(item.data)} bytes, over the "
                                        f"bound of {reassembler.max_size}")
            try:
                handle_agent_message(item, with_selection)
            except RyllError:
                pass


def agent_records(selection: int | None) -> list[bytes]:
    """One record of every agent message ryll parses."""
    m = va.build_message
    return [
        m(va.AgentMsg.ANNOUNCE_CAPABILITIES, va.build_announce_capabilities(True, [0, 1, 3, 5, 6])),
        m(va.AgentMsg.MONITORS_CONFIG, va.build_monitors_config(
            [va.MonitorConfig(640, 480), va.MonitorConfig(800, 600, 640, 0)], 1)),
        m(va.AgentMsg.REPLY, va.build_reply(va.AgentMsg.MONITORS_CONFIG)),
        m(va.AgentMsg.CLIPBOARD_GRAB, va.build_clipboard_grab([1, 2], selection)),
        m(va.AgentMsg.CLIPBOARD_REQUEST, va.build_clipboard_request(1, selection)),
        m(va.AgentMsg.CLIPBOARD, va.build_clipboard(1, "héllo\0".encode(), selection)),
        m(va.AgentMsg.CLIPBOARD_RELEASE, va.build_clipboard_release(selection)),
        m(va.AgentMsg.FILE_XFER_START, b"x" * 8, opaque=3),
    ]


def agent_seeds() -> list[bytes]:
    plain, prefixed = agent_records(None), agent_records(0)
    out = [bytes([0, i]) + r for i, r in enumerate(plain)]
    out += [bytes([1, 9]) + b"".join(prefixed), bytes([0, 4]) + b"".join(plain)]
    big = va.build_message(va.AgentMsg.CLIPBOARD, struct.pack("<I", 1) + b"a" * 5000)
    out.append(bytes([2, 5]) + big + plain[2])
    out.append(bytes([0, 1]) + struct.pack("<IIQI", 2, 1, 0, 4) + b"abcd" + plain[2])
    return out


TARGETS = {
    "framer": Target(framer_one_input, framer_seeds, "MessageFramer.feed in chunks, mini and "
                     "full headers, and split_sub_messages"),
    "link_reply": Target(link_one_input, link_seeds, "parse_link_header, parse_link_reply, "
                         "check_link_result, choose_auth_mechanism, encrypt_ticket, "
                         "parse_link_result"),
    "agent": Target(agent_one_input, agent_seeds, "vdagent Reassembler (pieces, size bound) and "
                    "every agent message parser"),
}
