"""--reconnect: a session the server drops links again after the policy's waits, a single-use
ticket is never retried, the attempts are recorded, and stop() ends a pending wait at once.
Against the test SPICE server (tests/session/spice_server.py), with the waits shortened."""

from __future__ import annotations

import asyncio
import time

import pytest
from tests.session.spice_server import Peer, SpiceServer, channels_list, main_init

from ryll.channels.context import ChannelContext
from ryll.channels.events import Event, Reconnected, Reconnecting, SessionEstablished
from ryll.errors import ConnectError
from ryll.session.reconnect import BACKOFF_S, ReconnectLog
from ryll.session.session import Session
from ryll.session.target import Target

FAST = (0.05, 0.1, 0.15)


def test_the_rust_ryll_backoff() -> None:
    assert BACKOFF_S == (1.0, 4.0, 16.0)
    log = ReconnectLog(enabled=True)
    assert log.delays("server_closed") == BACKOFF_S
    assert log.delays("stopped") == ()
    assert log.delays("error") == ()
    assert ReconnectLog(enabled=False).delays("server_closed") == ()
    single = ReconnectLog(enabled=True, single_use=True)
    assert single.delays("server_closed") == ()
    assert single.refused is not None and "single-use" in single.refused


class DropFirst:
    """MAIN: the first ``drops`` connections get INIT and an empty channel list and are then
    closed by the server; later ones stay up."""

    def __init__(self, drops: int = 1) -> None:
        self.drops = drops
        self.connections = 0

    async def __call__(self, peer: Peer) -> None:
        self.connections += 1
        await peer.send(main_init() + channels_list())
        if self.connections <= self.drops:
            await asyncio.sleep(0.1)
            return
        await peer.drain_forever()


async def _collect(session: Session, into: list[Event]) -> None:
    async for event in session.events(Reconnecting, Reconnected, SessionEstablished):
        into.append(event)


def _session(port: int, *, single_use: bool = False, reconnect: bool = True) -> Session:
    session = Session(Target("127.0.0.1", port, single_use=single_use), ChannelContext(),
                      reconnect=reconnect)
    session.reconnects.backoff = FAST
    return session


def test_a_dropped_session_links_again() -> None:
    script = DropFirst(drops=2)

    async def go(port: int) -> None:
        session = _session(port)
        events: list[Event] = []
        watcher = asyncio.ensure_future(_collect(session, events))
        await session.connect()
        waiter = asyncio.ensure_future(session.wait())
        async with asyncio.timeout(10):
            while sum(isinstance(e, SessionEstablished) for e in events) < 3:
                await asyncio.sleep(0.02)
        assert session.snapshot().state == "connected"
        session.stop("test over")
        end = await waiter
        await watcher
        assert end.reason == "stopped"
        kinds = [type(e).__name__ for e in events][:-1]
        assert type(events[-1]).__name__ == "SessionEnded"
        # Each drop starts a fresh budget once a reconnect succeeded: attempt 1 both times.
        assert kinds == ["SessionEstablished", "Reconnecting", "Reconnected",
                         "SessionEstablished", "Reconnecting", "Reconnected",
                         "SessionEstablished"]
        assert [e.attempt for e in events if isinstance(e, Reconnecting)] == [1, 1]
        attempts = session.snapshot().reconnects["attempts"]
        assert isinstance(attempts, list) and [a["ok"] for a in attempts] == [True, True]
        assert "closed the main channel" in attempts[0]["after"]

    with SpiceServer({1: script}) as server:
        asyncio.run(go(server.port))
    assert script.connections == 3


def test_three_failed_attempts_end_the_session() -> None:
    script = DropFirst(drops=1)
    server = SpiceServer({1: script})

    async def go() -> None:
        with server:
            session = _session(server.port)
            session.reconnects.backoff = (0.5, *FAST[1:])
            events: list[Event] = []
            watcher = asyncio.ensure_future(_collect(session, events))
            await session.connect()
            waiter = asyncio.ensure_future(session.wait())
            async with asyncio.timeout(5):
                while not any(isinstance(e, Reconnecting) for e in events):
                    await asyncio.sleep(0.02)
        # The server is gone: every attempt is refused.
        started = time.monotonic()
        end = await asyncio.wait_for(waiter, 10)
        await watcher
        assert time.monotonic() - started >= sum(FAST[1:]) * 0.9
        assert end.reason == "server_closed"
        assert isinstance(end.error, ConnectError)
        assert "3 reconnect attempts failed" in end.message
        attempts = session.reconnects.attempts
        assert [a.number for a in attempts] == [1, 2, 3]
        assert [a.delay_s for a in attempts] == [0.5, *FAST[1:]]
        assert not any(a.ok for a in attempts) and all(a.error for a in attempts)

    asyncio.run(go())


def test_single_use_ticket_is_not_retried() -> None:
    script = DropFirst(drops=5)

    async def go(port: int) -> None:
        session = _session(port, single_use=True)
        await session.connect()
        end = await asyncio.wait_for(session.wait(), 5)
        assert end.reason == "server_closed"
        snap = session.snapshot().reconnects
        assert snap["attempts"] == [] and "single-use" in str(snap["refused"])

    with SpiceServer({1: script}) as server:
        asyncio.run(go(server.port))
    assert script.connections == 1


def test_without_reconnect_a_drop_ends_the_session() -> None:
    script = DropFirst(drops=5)

    async def go(port: int) -> None:
        session = _session(port, reconnect=False)
        await session.connect()
        end = await asyncio.wait_for(session.wait(), 5)
        assert end.reason == "server_closed" and session.reconnects.attempts == []

    with SpiceServer({1: script}) as server:
        asyncio.run(go(server.port))
    assert script.connections == 1


def test_stop_during_the_wait_ends_at_once() -> None:
    script = DropFirst(drops=5)

    async def go(port: int) -> None:
        session = _session(port)
        session.reconnects.backoff = (30.0, 30.0, 30.0)
        events: list[Event] = []
        watcher = asyncio.ensure_future(_collect(session, events))
        await session.connect()
        waiter = asyncio.ensure_future(session.wait())
        async with asyncio.timeout(5):
            while not any(isinstance(e, Reconnecting) for e in events):
                await asyncio.sleep(0.02)
        assert session.snapshot().state == "reconnecting"
        assert session.snapshot().channels == ()
        started = time.monotonic()
        session.stop("interrupted")
        end = await asyncio.wait_for(waiter, 2)
        await watcher
        assert time.monotonic() - started < 1.0
        assert (end.reason, end.message) == ("stopped", "interrupted")
        [attempt] = session.reconnects.attempts
        assert attempt.error == "stopped before the attempt"

    with SpiceServer({1: script}) as server:
        asyncio.run(go(server.port))
    assert script.connections == 1


@pytest.mark.parametrize("limit", [64 << 20])
def test_a_reconnect_starts_with_fresh_caches_and_the_same_limits(limit: int) -> None:
    ctx = ChannelContext()
    ctx.memory.limit = limit
    ctx.display_shared.images.max_bytes = 1 << 20
    ctx.display_shared.glz_max_bytes = 2 << 20
    ctx.gaps.register("x:y", "kept")
    new = ctx.fresh()
    assert new.display_shared is not ctx.display_shared and new.state is not ctx.state
    assert new.memory is not ctx.memory and new.memory.limit == limit
    assert new.display_shared.images.max_bytes == 1 << 20
    assert new.display_shared.glz_max_bytes == 2 << 20
    assert new.gaps is ctx.gaps and new.display is ctx.display
    assert new.display_shared.images.memory is new.memory
