"""Every opcode a SPICE server can send on a channel ryll links is in that channel's one table
(``routes``): handled, a named gap, or ignored with a reason; and docs/ARCHITECTURE.md's
message table is generated from those tables."""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path

import pytest

from ryll.channels import table
from ryll.channels.base import BASE_ROUTES, Channel, RouteKind
from ryll.channels.context import ChannelContext
from ryll.protocol import constants as c
from ryll.protocol.framing import MessageWriter
from ryll.protocol.names import Direction, message_name

SERVER_ENUMS: dict[type[Channel], type[IntEnum]] = {
    cls: getattr(c, cls.__name__.removesuffix("Channel") + "Server") for cls in table.LINKED
}


def test_the_linked_channels_are_the_session_s() -> None:
    from ryll.session.session import CHANNEL_CLASSES

    assert set(CHANNEL_CLASSES.values()) == set(table.LINKED)


def test_every_base_opcode_is_routed() -> None:
    assert {int(op) for op in c.BaseServer} == set(BASE_ROUTES)


@pytest.mark.parametrize("cls", table.LINKED, ids=lambda cls: cls.__name__)
def test_every_server_opcode_of_the_channel_is_routed(cls: type[Channel]) -> None:
    opcodes = {int(op) for op in SERVER_ENUMS[cls]}
    assert opcodes == set(cls.routes), (
        f"not routed: {sorted(opcodes - set(cls.routes))}, "
        f"routed but no such message: {sorted(set(cls.routes) - opcodes)}")
    for op in opcodes | set(BASE_ROUTES):
        route = cls.route(op)
        assert route is not None
        if route.kind is RouteKind.HANDLED:
            assert callable(route.handler)
            assert route.parse is None or callable(route.parse)
        else:
            assert route.handler is None and len(route.reason) > 10, (op, route)
        assert not message_name(cls.channel_type, Direction.SERVER, op).startswith("unknown_")


@pytest.mark.parametrize("cls", table.LINKED, ids=lambda cls: cls.__name__)
def test_what_each_kind_of_route_does(cls: type[Channel]) -> None:
    """A gap route names ``<channel>:unimpl:<message>``; an ignored one says nothing; an
    opcode no table has is ``<channel>:hexdump:<opcode>``; the channel carries on."""
    ctx = ChannelContext()
    ch = cls(0, ctx)
    writer = MessageWriter(True)
    for op, route in sorted({**BASE_ROUTES, **cls.routes}.items()):
        if route.kind is RouteKind.HANDLED or op == c.BaseServer.LIST:
            continue
        ch.receive_data(writer.build(op, b"\0" * 8))
        name = message_name(cls.channel_type, Direction.SERVER, op)
        key = f"{ch.name}:unimpl:{name}"
        assert (key in ctx.gaps) == (route.kind is RouteKind.GAP), key
    ch.receive_data(writer.build(999, b"\1\2"))
    assert f"{ch.name}:hexdump:999" in ctx.gaps
    ch.receive_data(writer.build(c.BaseServer.PING, b"\0" * 12))
    assert ch.stats.pings == 1


def test_the_architecture_document_has_the_table_the_code_has() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "ARCHITECTURE.md"
    text = doc.read_text()
    assert table.BEGIN in text and table.END in text
    assert table.replace_in(text) == text, (
        "docs/ARCHITECTURE.md's message table is stale: run "
        "python -m ryll.channels.table --write")


def test_the_table_lists_every_routed_message() -> None:
    rows = table.rows()
    assert len(rows) == len(BASE_ROUTES) + sum(len(cls.routes) for cls in table.LINKED)
    assert ("display", 126, "stream_destroy_all", "handled",
            "`DisplayChannel._on_stream_destroy_all` (raw body)") in rows
    assert any(r[:4] == ("display", 304, "draw_copy", "handled") and "Canvas.draw_copy" in r[4]
               for r in rows)
