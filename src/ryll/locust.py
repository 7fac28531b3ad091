"""Load tests on Locust: ``SpiceUser``, a Locust user whose tasks drive a SPICE session.

    from locust import task
    from ryll.locust import SpiceUser

    class Desk(SpiceUser):
        @task
        def look(self) -> None:
            self.keystroke_latency("space")
            self.screenshot()

    $ locust -f locustfile.py --host 127.0.0.1:5900 --headless -u 20 -r 5 -t 5m
    $ locust -f locustfile.py --master ...   /   locust -f locustfile.py --worker ...

Each user is one session (``ryll.connect``, the public API); each step (connect, wait for
the display, type, key, expect, screenshot, keystroke-to-display latency) is reported to
Locust as a request of type ``SPICE`` with its time in milliseconds and its failure, so
Locust's statistics, charts, CSV and master/worker aggregation work unchanged. docs/
load-testing.md has the tour.

Locust runs users as gevent greenlets and monkey-patches the standard library; ryll's
sessions are asyncio. All sessions of a Locust process share one asyncio event loop, a
SelectorEventLoop on gevent's selector, itself running in a greenlet: a step hands its
coroutine to that loop (``call_soon_threadsafe``, which also wakes the loop's select) and the
user's greenlet waits on a gevent Event the task's done-callback sets. Everything stays in
one OS thread, cooperative: no lock is shared between the two schedulers. (asyncio-gevent
offers the same loop; its ``future_to_greenlet`` schedules without waking the selector, so
a step could wait for the loop's next timer.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import gevent
import gevent.event
import gevent.selectors
from locust import User
from locust.exception import LocustError

from ryll.api import VM, Box, Reference, connect
from ryll.channels.events import LatencyMeasured
from ryll.errors import RyllError

__all__ = ["SpiceUser", "run"]

T = TypeVar("T")
REQUEST_TYPE = "SPICE"

_loop: asyncio.AbstractEventLoop | None = None


def _the_loop() -> asyncio.AbstractEventLoop:
    """This process's asyncio loop for every SpiceUser's session, started on first use."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.SelectorEventLoop(gevent.selectors.DefaultSelector())
        gevent.spawn(_loop.run_forever)
    return _loop


def run(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` on the shared loop and wait for it in this greenlet (only this one
    blocks). A greenlet killed while waiting (Locust stopping the user) cancels the task."""
    loop = _the_loop()
    done = gevent.event.Event()
    tasks: list[asyncio.Future[T]] = []

    def start() -> None:
        task = asyncio.ensure_future(awaitable, loop=loop)
        task.add_done_callback(lambda _: done.set())
        tasks.append(task)

    loop.call_soon_threadsafe(start)
    try:
        done.wait()
    except BaseException:
        if tasks:
            loop.call_soon_threadsafe(tasks[0].cancel)
        elif asyncio.iscoroutine(awaitable):
            awaitable.close()
        raise
    return tasks[0].result()


class SpiceUser(User):
    """A Locust user with one SPICE session. ``host`` (Locust's ``--host`` or the class
    attribute) is what ``ryll.connect`` takes: ``HOST:PORT[:TLS_PORT]``, a .vv file or an
    http(s) URL of one; ``password`` the ticket. The session connects in ``on_start`` and
    closes in ``on_stop``; a step run while it is down connects again first.

    Every step returns what the API returns and reports one Locust request named after it
    (``name=`` overrides): a RyllError or a timeout is that request's failure, and does not
    stop the user (the step returns None then).
    """

    abstract = True
    password: str | None = None
    connect_timeout: float = 30.0

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.vm: VM | None = None

    # --- Locust's hooks -------------------------------------------------------------------

    def on_start(self) -> None:
        self.connect()

    def on_stop(self) -> None:
        vm, self.vm = self.vm, None
        if vm is not None:
            with contextlib.suppress(RyllError, OSError):  # stopping: nothing left to report
                run(vm.close())

    # --- reporting ------------------------------------------------------------------------

    def report(self, name: str, elapsed_ms: float, exception: BaseException | None = None,
               length: int = 0) -> None:
        """One request in Locust's statistics (for custom steps of a subclass too)."""
        self.environment.events.request.fire(
            request_type=REQUEST_TYPE, name=name, response_time=elapsed_ms,
            response_length=length, exception=exception, context={"host": self.host})

    def step(self, name: str, make: Callable[[VM], Awaitable[T]],
             length: Callable[[T], int] | None = None,
             elapsed: Callable[[T], float] | None = None) -> T | None:
        """Run ``make(vm)`` on the session (connecting first if it is down), reported as
        ``name``: its wall time, or ``elapsed(result)`` ms when the result carries its own
        measure; ``length(result)`` as the response length."""
        vm = self.vm if self.vm is not None and not self.vm.closed else self.connect()
        if vm is None:
            return None
        return self._timed(name, make(vm), length, elapsed)

    def _timed(self, name: str, awaitable: Awaitable[T],
               length: Callable[[T], int] | None = None,
               elapsed: Callable[[T], float] | None = None) -> T | None:
        started = time.perf_counter()
        try:
            result = run(awaitable)
        except (RyllError, TimeoutError, OSError) as exc:
            self.report(name, (time.perf_counter() - started) * 1000.0, exc)
            return None
        wall = (time.perf_counter() - started) * 1000.0
        self.report(name, elapsed(result) if elapsed is not None else wall,
                    length=length(result) if length is not None else 0)
        return result

    # --- steps ----------------------------------------------------------------------------

    def connect(self, name: str = "connect") -> VM | None:
        """Link every channel (the request's time is the whole link); None on failure."""
        if not self.host:
            raise LocustError(f"{type(self).__name__} needs a host: --host HOST:PORT, a .vv "
                              "file or its URL, or a host attribute")
        self.vm = self._timed(name, connect(self.host, self.password,
                                            timeout=self.connect_timeout))
        return self.vm

    def wait_for_display(self, display: int = 0, timeout: float = 30.0,
                         name: str = "wait_for_display") -> Any:
        return self.step(name, lambda vm: vm.wait_for_display(display, timeout))

    def type(self, text: str, delay_ms: float = 16, name: str = "type") -> Any:
        return self.step(name, lambda vm: vm.type(text, delay_ms))

    def key(self, key: str, name: str = "key") -> None:
        self.step(name, lambda vm: vm.key(key))

    def expect(self, reference: Reference, region: Box | None = None, max_diff: int = 0,
               timeout: float = 30.0, display: int = 0, name: str = "expect") -> Any:
        return self.step(name, lambda vm: vm.expect(reference, region, max_diff, timeout,
                                                    display))

    def screenshot(self, display: int = 0, name: str = "screenshot") -> bytes | None:
        """The display as PNG bytes (the request's length is theirs)."""
        return self.step(name, lambda vm: vm.screenshot("png", display=display),
                         length=len)

    def keystroke_latency(self, key: str = "space", timeout: float = 10.0,
                          name: str = "keystroke_latency") -> float | None:
        """Press ``key`` and report the time to the first display update after it (the
        session's input-to-display latency, as ``--cadence`` measures it) as the request's
        time; the guest must draw something for the key. The latency in ms, or None."""

        async def measure(vm: VM) -> float:
            waiting = vm.wait_for(lambda e: True, LatencyMeasured, timeout=timeout)
            await vm.key(key)
            sample = await waiting
            assert isinstance(sample, LatencyMeasured)
            return sample.latency_ms

        return self.step(name, measure, elapsed=float)
