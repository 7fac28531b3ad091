"""``session.events()``: the one way to receive a session's events.

Each subscriber has its own bounded queue. Publishing never waits: when a subscriber's queue
is full the event is dropped for that subscriber only and counted, and the next thing it
reads is an ``EventsDropped`` with the count, so a slow front end learns it missed something
and the session (and every other subscriber) is never held up. After ``SessionEnded`` a
subscription ends its iteration.

    async with session.events() as events:
        async for event in events:
            if isinstance(event, DisplayUpdated):
                ...

A subscription may filter by event class (``session.events(DisplayUpdated, GapOpened)``), so
a front end that wants a few kinds does not pay for the flood of the others.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType

from ryll.channels.events import Event, EventsDropped, SessionEnded

# Events a subscriber may fall behind by before it loses some: about 10 s of a busy 20 fps
# stream's display updates, cursor moves and latency samples together.
DEFAULT_QUEUE = 4096


class EventStream:
    """One subscription: an async iterator of events (and an async context manager that ends
    the subscription on exit)."""

    def __init__(self, bus: EventBus, kinds: tuple[type[Event], ...], maxsize: int) -> None:
        if maxsize <= 0:
            raise ValueError("maxsize must be positive")
        self._bus = bus
        self.kinds = kinds
        self.maxsize = maxsize
        self._queue: deque[Event] = deque()
        self._wake = asyncio.Event()
        self.dropped = 0  # lost since the last EventsDropped was queued
        self.dropped_total = 0
        self.closed = False
        self._ended = False

    def _offer(self, event: Event) -> None:
        if self.closed:
            return
        if isinstance(event, SessionEnded):
            self._ended = True
            self._note_dropped()
            self._queue.append(event)  # always delivered, even over the bound
        elif self.kinds and not isinstance(event, self.kinds):
            return
        elif len(self._queue) + bool(self.dropped) >= self.maxsize:
            self.dropped += 1
            self.dropped_total += 1
            return
        else:
            self._note_dropped()
            self._queue.append(event)
        self._wake.set()

    def _note_dropped(self) -> None:
        """The events lost since the queue was last full sit where they were lost."""
        if self.dropped:
            self._queue.append(EventsDropped(self.dropped))
            self.dropped = 0

    def get_nowait(self) -> Event | None:
        """The next event if one is queued, else None."""
        if not self._queue:
            self._note_dropped()
        if self._queue:
            return self._queue.popleft()
        return None

    async def get(self) -> Event:
        """The next event; raises StopAsyncIteration once the session has ended and everything
        before SessionEnded was read, or the subscription was closed."""
        while True:
            event = self.get_nowait()
            if event is not None:
                return event
            if self.closed or self._ended:
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    def close(self) -> None:
        """Stop receiving; a pending ``get`` ends."""
        if not self.closed:
            self.closed = True
            self._bus.unsubscribe(self)
            self._wake.set()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()


class EventBus:
    """The session's subscribers. ``publish`` runs on the event loop's thread."""

    def __init__(self) -> None:
        self._streams: list[EventStream] = []
        self.published = 0
        self.ended: SessionEnded | None = None

    def subscribe(self, *kinds: type[Event], maxsize: int = DEFAULT_QUEUE) -> EventStream:
        stream = EventStream(self, kinds, maxsize)
        if self.ended is not None:
            stream._offer(self.ended)
        else:
            self._streams.append(stream)
        return stream

    def unsubscribe(self, stream: EventStream) -> None:
        if stream in self._streams:
            self._streams.remove(stream)

    def publish(self, event: Event) -> None:
        self.published += 1
        if isinstance(event, SessionEnded):
            self.ended = event
        for stream in self._streams:
            stream._offer(event)

    @property
    def subscribers(self) -> int:
        return len(self._streams)
