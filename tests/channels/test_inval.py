"""Cache invalidation messages (spice.proto inval_list, inval_all_pixmaps, inval_palette),
built per spice.proto since the test VM's server sends them only under cache pressure."""

from __future__ import annotations

import struct

import numpy as np

from ryll.channels.context import ChannelContext
from ryll.channels.display import DisplayChannel
from ryll.channels.events import WaitRequested
from ryll.protocol.constants import ChannelType, DisplayServer


def _frame(opcode: int, body: bytes) -> bytes:
    return struct.pack("<HI", opcode, len(body)) + body


def _display() -> tuple[DisplayChannel, ChannelContext]:
    ctx = ChannelContext()
    ch = DisplayChannel(0, ctx)
    for i in (1, 2, 3):
        ctx.display_shared.images.put(i, np.zeros((2, 2, 4), np.uint8))
    ctx.display_shared.palettes.put(0xAB, (1, 2))
    return ch, ctx


def test_inval_list_removes_named_pixmaps() -> None:
    ch, ctx = _display()
    body = struct.pack("<H", 2) + struct.pack("<BQ", 1, 1) + struct.pack("<BQ", 1, 3)
    ch.receive_data(_frame(DisplayServer.INVAL_LIST, body))
    assert ctx.display_shared.images.get(2) is not None
    assert ctx.display_shared.images.get(1) is None and ctx.display_shared.images.get(3) is None
    assert ctx.gaps.counts() == {}


def test_inval_list_truncated_is_a_gap() -> None:
    ch, ctx = _display()
    ch.receive_data(_frame(DisplayServer.INVAL_LIST, struct.pack("<H", 5) + b"\1" * 9))
    assert ctx.gaps.counts() == {"display:malformed:inval_list": 1}
    assert len(ctx.display_shared.images) == 3


def test_inval_all_pixmaps_waits_then_clears() -> None:
    ch, ctx = _display()
    body = struct.pack("<B", 1) + struct.pack("<BBQ", ChannelType.DISPLAY, 1, 42)
    [event] = ch.receive_data(_frame(DisplayServer.INVAL_ALL_PIXMAPS, body))
    assert isinstance(event, WaitRequested)
    assert event.channels[0].message_serial == 42
    assert len(ctx.display_shared.images) == 3  # not before the wait is over
    assert (event.channel_type, event.channel_id) == (ChannelType.DISPLAY, 0)
    ch.wait_over()  # the session says the wait is over
    assert len(ctx.display_shared.images) == 0


def test_inval_all_pixmaps_without_waits_clears_at_once() -> None:
    ch, ctx = _display()
    assert ch.receive_data(_frame(DisplayServer.INVAL_ALL_PIXMAPS, b"\0")) == []
    assert len(ctx.display_shared.images) == 0


def test_inval_palette() -> None:
    ch, ctx = _display()
    ch.receive_data(_frame(DisplayServer.INVAL_PALETTE, struct.pack("<Q", 0xAB)))
    assert ctx.display_shared.palettes.get(0xAB) is None
