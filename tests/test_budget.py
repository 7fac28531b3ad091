"""The session's memory budget (ryll.budget): what is kept is metered, what a message needs is
asked for before it is allocated, and over the budget the message is the gap
``display:over_budget:<what>`` while the session carries on with what it has."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from ryll.budget import MemoryBudget, OverBudget
from ryll.channels.context import ChannelContext
from ryll.channels.display import DisplayChannel
from ryll.cli.main import main
from ryll.protocol.constants import DisplayServer, ImageFlags, Ropd, SurfaceFmt
from ryll.protocol.framing import MessageWriter
from tests.channels.test_streams import CREATES, FRAME, SID, retarget
from tests.render import builders as B
from tests.test_hostile_inputs import MIB, peak_below

WRITER = MessageWriter(True)


def channel(limit_mib: int) -> tuple[DisplayChannel, ChannelContext]:
    ctx = ChannelContext()
    ctx.memory.limit = limit_mib * MIB
    return DisplayChannel(0, ctx), ctx


def send(ch: DisplayChannel, opcode: int, body: bytes) -> None:
    ch.receive_data(WRITER.build(opcode, body))


def create(ch: DisplayChannel, sid: int, w: int, h: int, flags: int = 0) -> None:
    send(ch, DisplayServer.SURFACE_CREATE, B.surface_create(sid, w, h, SurfaceFmt.FMT_32_xRGB,
                                                            flags))


def test_meters_fits_require_and_the_report() -> None:
    held = {"a": 10, "b": 5}
    budget = MemoryBudget(100)
    budget.meter("a", lambda: held["a"])
    budget.meter("b", lambda: held["b"])
    budget.meter("a", lambda: 1)
    assert budget.used() == 16 and budget.by_kind() == {"a": 11, "b": 5}
    assert budget.fits(84) and not budget.fits(85) and budget.fits(85, freed=1)
    budget.require("x", 84)
    with pytest.raises(OverBudget) as info:
        budget.require("surface_create", 85)
    assert info.value.what == "surface_create" and "exceed the memory budget" in str(info.value)
    held["a"] = 0  # a holder gave memory back: the meter says so, nothing to release by hand
    budget.require("x", 85)
    assert budget.as_dict() == {"limit_bytes": 100, "used_bytes": 6, "peak_bytes": 100,
                                "by_kind": {"a": 1, "b": 5}, "refused": {"surface_create": 1}}
    with pytest.raises(ValueError):
        MemoryBudget(0)


def test_a_request_that_does_not_fit_asks_the_reclaimers_first() -> None:
    cache = {"held": 60}
    budget = MemoryBudget(100)
    budget.meter("cache", lambda: cache["held"])
    asked: list[int] = []

    def free(n: int) -> None:
        asked.append(n)
        cache["held"] = max(0, cache["held"] - n)

    budget.reclaimer(free)
    budget.require("surface_create", 30)  # fits: nothing asked
    budget.require("surface_create", 70)  # 30 over: the cache gives back 30
    assert asked == [30] and cache["held"] == 30
    with pytest.raises(OverBudget):
        budget.require("image", 101)  # more than everything: refused after reclaiming
    assert cache["held"] == 0


def test_surfaces_past_the_budget_are_refused_and_the_rest_work() -> None:
    ch, ctx = channel(64)
    for sid in range(16):  # 16 MiB each: 4 fit in 64 MiB
        create(ch, sid, 2048, 2048, flags=1 if sid == 0 else 0)
    assert sorted(ch.surfaces) == [0, 1, 2, 3]
    assert ctx.gaps.counts() == {"display:over_budget:surface_create": 12}
    assert ctx.memory.used() == 64 * MIB and ctx.memory.refused["surface_create"] == 12
    # Re-creating a surface gives its memory back first; destroying one makes room.
    create(ch, 3, 2048, 2048)
    send(ch, DisplayServer.SURFACE_DESTROY, struct.pack("<I", 2))
    create(ch, 9, 2048, 2048)
    assert sorted(ch.surfaces) == [0, 1, 3, 9]
    assert ctx.gaps.counts()["display:over_budget:surface_create"] == 12
    # A draw on a refused surface is an orphan, not a crash.
    send(ch, DisplayServer.DRAW_FILL, _fill_on(5))
    assert "display:orphan:draw" in ctx.gaps


def _fill_on(surface_id: int) -> bytes:
    b = B.Body()
    B.base(b, (0, 0, 8, 8), None, surface_id)
    B.brush(b, 0x10)
    b.pack("H", Ropd.OP_PUT)
    B.qmask(b)
    return b.build()


def test_an_image_over_the_budget_is_not_decoded() -> None:
    ch, ctx = channel(8)
    create(ch, 0, 64, 64, flags=1)
    px = np.full((1024, 1024, 4), 7, np.uint8)  # 4 MiB decoded
    ctx.memory.limit = 2 * MIB
    send(ch, DisplayServer.DRAW_COPY, B.draw_copy((0, 0, 64, 64), B.Image(pixels=px),
                                                  (0, 0, 64, 64), Ropd.OP_PUT))
    assert ctx.gaps.counts() == {"display:over_budget:image": 1}
    assert (ch.surfaces[0].pixels[..., :3] == 0).all()


def test_the_image_cache_makes_room_in_the_budget() -> None:
    ch, ctx = channel(12)
    create(ch, 0, 64, 64, flags=1)
    for i in range(8):  # eight cached 1 MiB images in a 12 MiB budget that the cache shares
        img = B.Image(pixels=np.full((512, 512, 4), i, np.uint8), image_id=100 + i,
                      flags=ImageFlags.CACHE_ME)
        send(ch, DisplayServer.DRAW_COPY, B.draw_copy((0, 0, 64, 64), img, (0, 0, 64, 64),
                                                      Ropd.OP_PUT))
        assert ctx.memory.used() <= ctx.memory.limit
    images = ctx.display_shared.images
    assert len(images) >= 5 and ctx.gaps.counts() == {}
    ctx.memory.limit = ctx.memory.used() + MIB // 2  # now no room for even one more
    img = B.Image(pixels=np.full((512, 512, 4), 9, np.uint8), image_id=200,
                  flags=ImageFlags.CACHE_ME)
    before = images.evictions
    send(ch, DisplayServer.DRAW_COPY, B.draw_copy((0, 0, 64, 64), img, (0, 0, 64, 64),
                                                  Ropd.OP_PUT))
    assert images.evictions > before  # older images went to make room for the new one
    assert images.get(200) is not None and ctx.memory.used() <= ctx.memory.limit
    assert ctx.gaps.counts() == {}
    # A surface needs more than is free: the cache gives it what it holds.
    ctx.memory.limit = ctx.memory.used() + 256 * 1024
    create(ch, 1, 512, 1024)  # 2 MiB
    assert 1 in ch.surfaces and ctx.gaps.counts() == {}
    assert ctx.memory.used() <= ctx.memory.limit


def _stream_create(sid: int, width: int, height: int, dest: tuple[int, int, int, int]) -> bytes:
    body = bytearray(CREATES[SID])
    body[4:8] = struct.pack("<I", sid)
    body[18:34] = struct.pack("<IIII", width, height, width, height)
    body[34:50] = struct.pack("<iiii", *dest)  # top, left, bottom, right
    return bytes(body)


def test_a_stream_frame_over_the_budget_is_a_gap() -> None:
    ch, ctx = channel(64)
    create(ch, 0, 64, 64, flags=1)
    send(ch, DisplayServer.STREAM_CREATE, _stream_create(3, 8192, 4096, (0, 0, 64, 64)))
    send(ch, DisplayServer.STREAM_DATA, retarget(FRAME, 3))
    assert ctx.gaps.counts() == {"display:over_budget:stream_frame": 1}


def test_a_stream_destination_far_off_the_surface_costs_only_the_surface() -> None:
    ch, ctx = channel(1024)
    create(ch, 0, 64, 64, flags=1)
    send(ch, DisplayServer.STREAM_CREATE, _stream_create(4, 32, 48, (0, 0, 16000, 16000)))
    with peak_below(8 * MIB):  # scaled whole, the destination would be 1 GB
        send(ch, DisplayServer.STREAM_DATA, retarget(FRAME, 4))
    assert ctx.gaps.counts() == {}
    assert ch.surfaces[0].pixels[..., :3].any()  # the visible corner was drawn


def test_the_budget_flag_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--direct", "h:1", "--headless", "--max-memory-mib", "0"]) == 2
    assert "--max-memory-mib must be positive" in capsys.readouterr().err


def test_agent_records_are_admitted_by_the_budget_and_the_stream_stays_in_step() -> None:
    """A record the budget has no room for is skipped as ``main:agent:over_budget`` (its data
    dropped as it arrives, never held); the records after it still decode, and what the agent
    holds meanwhile (a record being joined) is metered as ``agent``."""
    from ryll.protocol import agent as va
    from ryll.protocol.constants import MainServer
    from tests.channels.test_agent_channel import connected, frame

    ch, wire = connected()
    ch.ctx.memory.limit = 4 * MIB
    big = va.build_message(va.AgentMsg.CLIPBOARD, struct.pack("<I", 1) + b"x" * (8 * MIB))
    pieces = va.split(big)
    for piece in pieces[:10]:
        ch.receive_data(frame(MainServer.AGENT_DATA, piece))
    assert ch.ctx.gaps.counts().get("main:agent:over_budget") == 1
    assert ch.ctx.memory.by_kind()["agent"] == 0  # skipped, not held
    for piece in pieces[10:]:
        ch.receive_data(frame(MainServer.AGENT_DATA, piece))
    # a record that fits is held while it is joined, and decodes after the skipped one
    small = va.build_message(va.AgentMsg.CLIPBOARD_RELEASE, struct.pack("<I", 0))
    ch.receive_data(frame(MainServer.AGENT_DATA, small[:va.HEADER_SIZE + 2]))
    assert ch.ctx.memory.by_kind()["agent"] == len(small) - va.HEADER_SIZE
    events = ch.receive_data(frame(MainServer.AGENT_DATA, small[va.HEADER_SIZE + 2:]))
    assert ch.ctx.memory.by_kind()["agent"] == 0
    assert any(type(e).__name__ == "AgentClipboardReleased" for e in events)
    assert ch.ctx.memory.refused["agent_message"] == 1
    wire.take()


def test_the_agent_queue_is_metered_and_refused_over_the_budget() -> None:
    from ryll.channels.agent import AgentUnavailable
    from ryll.protocol import agent as va
    from tests.channels.test_agent_channel import connected

    ch, wire = connected(tokens=0)  # nothing leaves: every piece waits in the queue
    ch.agent.queue(va.AgentMsg.CLIPBOARD, struct.pack("<I", 1) + b"y" * 100_000)
    assert ch.ctx.memory.by_kind()["agent"] > 100_000
    ch.ctx.memory.limit = ch.ctx.memory.used() + 1000
    with pytest.raises(AgentUnavailable, match="memory budget"):
        ch.agent.queue(va.AgentMsg.CLIPBOARD, struct.pack("<I", 1) + b"z" * 100_000)
    ch.agent.add_tokens(10_000)  # the agent reads: the queue drains and gives its bytes back
    assert ch.ctx.memory.by_kind()["agent"] == 0
    wire.take()
