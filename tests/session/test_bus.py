"""session.events(): one bounded queue per subscriber; a slow one loses events and reads an
EventsDropped with the count where they went missing, never holding up the others; kinds
filter; SessionEnded always arrives and ends the iteration."""

from __future__ import annotations

import asyncio

import pytest

from ryll.channels.events import DisplayMarked, EventsDropped, GapOpened, SessionEnded
from ryll.session.bus import EventBus


def test_a_full_queue_drops_and_says_how_many_in_place() -> None:
    bus = EventBus()
    slow = bus.subscribe(maxsize=3)
    fast = bus.subscribe()
    for i in range(10):
        bus.publish(DisplayMarked(i))
    got = [slow.get_nowait() for _ in range(5)]
    # Three fit; the seven after them are counted, and the count is read where they were lost.
    assert got == [DisplayMarked(0), DisplayMarked(1), DisplayMarked(2), EventsDropped(7), None]
    assert slow.dropped_total == 7
    assert [fast.get_nowait() for _ in range(10)] == [DisplayMarked(i) for i in range(10)]
    bus.publish(DisplayMarked(99))  # room again: delivered after the marker
    assert slow.get_nowait() == DisplayMarked(99)


def test_kinds_filter_and_the_end() -> None:
    async def scenario() -> list[object]:
        bus = EventBus()
        gaps = bus.subscribe(GapOpened, maxsize=1)
        bus.publish(DisplayMarked(0))  # not of its kinds: neither queued nor counted
        bus.publish(GapOpened("display:x", "", None))
        bus.publish(GapOpened("display:y", "", None))  # queue full: dropped
        bus.publish(SessionEnded("stopped", "bye", 0))  # always delivered
        out: list[object] = []
        async with gaps:
            async for event in gaps:
                out.append(event)
        late = bus.subscribe()  # after the end: just the end
        out.append(await late.get())
        with pytest.raises(StopAsyncIteration):
            await late.get()
        return out

    assert asyncio.run(scenario()) == [
        GapOpened("display:x", "", None), EventsDropped(1), SessionEnded("stopped", "bye", 0),
        SessionEnded("stopped", "bye", 0)]


def test_a_closed_subscription_ends_a_pending_get() -> None:
    async def scenario() -> None:
        bus = EventBus()
        stream = bus.subscribe()
        pending = asyncio.ensure_future(stream.get())
        await asyncio.sleep(0)
        stream.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(pending, 1)
        assert bus.subscribers == 0

    asyncio.run(scenario())
