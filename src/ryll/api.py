"""The public Python API: connect to a SPICE server, drive the VM, wait for what it shows.

    import ryll

    async with ryll.connect("127.0.0.1:5900") as vm:
        await vm.wait_for_display()
        await vm.type("root\\n")
        (await vm.screenshot()).save("screen.png")

and for plain scripts, the same verbs without ``await``::

    with ryll.connect_sync("127.0.0.1:5900") as vm:
        vm.wait_for_display()
        vm.key("ctrl-alt-delete")

A :class:`VM` is a front end like the CLI's: it reads the session's events, snapshot and grabs
and sends through ``session.input`` and ``session.agent``; nothing here reaches into a channel.
Every wait has a timeout and raises a :class:`~ryll.errors.WaitTimeout` subclass naming what
did not happen; a wait the session's end cuts short raises that end's error (or
:class:`~ryll.errors.SessionClosedError`). Regions are Pillow boxes, ``(left, top, right,
bottom)`` in pixels of the display. docs/api.md has the whole tour; its examples run as tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import numpy as np

from ryll.channels.context import AudioOptions, ChannelContext, DisplayOptions
from ryll.channels.events import (
    ChannelLinked,
    ChannelsListed,
    DisplayMarked,
    DisplayUpdated,
    Event,
    PasteCompleted,
    SessionEnded,
    SurfaceCreated,
)
from ryll.errors import (
    DisplayTimeout,
    EventTimeout,
    ExpectTimeout,
    IdleTimeout,
    RyllError,
    SessionClosedError,
    UsageError,
)
from ryll.protocol.messages.draw import Rect
from ryll.session.bus import EventStream
from ryll.session.record import AudioSource, parse_audio_in
from ryll.session.runner import FrontEnd, FrontEnds
from ryll.session.screens import Grab, monitors
from ryll.session.session import CHANNEL_CLASSES, Session, SessionEnd
from ryll.session.snapshot import SessionSnapshot
from ryll.session.target import Target, load_vv_file, load_vv_url, parse_direct
from ryll.viewer.options import WebOptions

__all__ = ["VM", "SyncVM", "connect", "connect_sync", "resolve"]

T = TypeVar("T")
Box = tuple[int, int, int, int]
ShotFormat = Literal["image", "numpy", "png"]
Reference = Any  # a Pillow image, an (H, W, 3|4) uint8 array, PNG bytes, or a path
ExcType = type[BaseException] | None
EventKind = type[Event]  # named outside VM, whose ``type`` verb hides the builtin there

DEFAULT_TIMEOUT_S = 30.0
#: Pause between the steps of a drag, so the guest sees a motion, not a jump.
DRAG_STEP_S = 0.01
#: SPICE wheel buttons (spice-protocol SPICE_MOUSE_BUTTON_UP / _DOWN).
WHEEL_UP, WHEEL_DOWN = "up", "down"


def resolve(target: str | Path | Target, password: str | None = None) -> Target:
    """Where ``connect`` goes: a Target, ``host:port[:tls_port]``, a virt-viewer ``.vv`` file,
    or an ``http(s)://`` URL that serves one. ``password`` wins over the file's."""
    if isinstance(target, Target):
        resolved = target
    elif isinstance(target, Path) or str(target).endswith(".vv") or Path(str(target)).is_file():
        resolved = load_vv_file(target)
    elif str(target).startswith(("http://", "https://")):
        resolved = load_vv_url(str(target))
    elif str(target).startswith("spice://"):
        raise UsageError("spice:// URIs are not read yet: give host:port[:tls_port]")
    else:
        resolved = parse_direct(str(target))
    return resolved.with_password(password) if password is not None else resolved


@dataclass(frozen=True)
class Display:
    """What ``wait_for_display`` found: the monitor's index and size."""

    index: int
    channel_id: int
    surface_id: int
    width: int
    height: int


class VM:
    """One connected SPICE session and the verbs to drive it. Get one from :func:`connect`."""

    def __init__(self, session: Session, front_ends: Sequence[FrontEnd] = ()) -> None:
        self.session = session
        self._waiter: asyncio.Task[SessionEnd] | None = None
        # capture= and bug_report_dir= (diagnostics): started before connecting, finished
        # once the session has ended.
        self._front = FrontEnds(session, front_ends)
        self._finished = False

    # --- lifecycle ----------------------------------------------------------------------

    async def _open(self, timeout: float) -> None:
        """Link the main channel and every channel it lists that ryll speaks."""
        events = self.session.events(ChannelsListed, ChannelLinked)
        async with events:
            try:
                await self._front.start()
                async with asyncio.timeout(timeout):
                    await self.session.connect()
                    self._front.launch()
                    self._waiter = asyncio.ensure_future(self.session.wait())
                    await self._await_links(events)
            except TimeoutError:
                await self.close()
                raise DisplayTimeout(f"the session was not up within {timeout:g} s") from None
            except BaseException:
                await self.close()
                raise

    async def _await_links(self, events: EventStream) -> None:
        wanted: set[tuple[int, int]] | None = None
        linked: set[tuple[int, int]] = set()
        while wanted is None or not wanted <= linked:
            event = await self._next(events)
            if isinstance(event, ChannelsListed):
                wanted = {(c.type, c.id) for c in event.channels if c.type in CHANNEL_CLASSES}
            elif isinstance(event, ChannelLinked):
                linked.add((event.channel_type, event.channel_id))

    async def close(self) -> None:
        """End the session and wait until every connection is closed."""
        self.session.stop("closed by the API")
        end = None
        if self._waiter is not None:
            with contextlib.suppress(Exception):
                end = await self._waiter
        if not self._finished:
            self._finished = True
            await self._front.finish(end or self.session.end or SessionEnd("stopped", "closed"))

    async def bug_report(self, description: str = "", region: Box | None = None,
                         display: int = 0) -> Path:
        """Write a bug-report zip (docs/diagnostics.md) and return its path: the session's
        snapshot, every channel's state, the recent traffic as a pcap, a screenshot of
        ``display`` and, with ``region`` (left, top, right, bottom), of that part of it.
        Needs ``connect(bug_report_dir=...)``."""
        from ryll.diagnostics.reports import Region, ReportRequest

        reporter = self.session.reports
        if reporter is None:
            raise UsageError("bug reports are off: connect(..., bug_report_dir=DIR)")
        box = _rect(region)
        area = None if box is None else Region(display, box.left, box.top,
                                               box.right - box.left, box.bottom - box.top)
        return await reporter.write(ReportRequest(
            "manual", "all" if area is None else "display", description=description,
            region=area, display=display, triggered_uptime=self.session.uptime))

    def viewer_url(self) -> str:
        """A new one-time link to the viewer (``connect(web=True)``): each call gives one more
        browser its way in. The link is spent once opened; the tabs of that browser share it."""
        from ryll.viewer.server import Viewer

        for fe in self._front.front_ends:
            if isinstance(fe, Viewer):
                return fe.new_url()
        raise UsageError("the viewer is off: connect(..., web=True)")

    async def __aenter__(self) -> VM:
        return self

    async def __aexit__(self, exc_type: ExcType, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self.session.end is not None

    def events(self, *kinds: EventKind) -> EventStream:
        """Subscribe to the session's events (see ``Session.events``)."""
        return self.session.events(*kinds)

    def snapshot(self) -> SessionSnapshot:
        return self.session.snapshot()

    # --- keyboard -----------------------------------------------------------------------

    async def key(self, name: str) -> None:
        """Press and release a key or combo: ``"Return"``, ``"ctrl-alt-delete"``,
        ``"shift-a"`` (names as X keysyms or their common short forms)."""
        await self.session.input.press_key(name)

    async def key_down(self, name: str) -> None:
        """Press and hold a key or combo (modifiers first)."""
        self.session.input.key_down(name)

    async def key_up(self, name: str) -> None:
        """Release a key or combo (the key first, then its modifiers)."""
        self.session.input.key_up(name)

    async def type(self, text: str, delay_ms: float = 16) -> PasteCompleted:
        """Type ``text`` as keystrokes on a US layout, one character every ``delay_ms``."""
        return await self.session.input.type_text(text, delay_ms)

    # --- pointer ------------------------------------------------------------------------

    async def move(self, x: int, y: int, display: int = 0) -> None:
        """Put the pointer at (x, y) of a display (absolute in client mouse mode, a relative
        motion from where it is in server mode)."""
        self.session.input.mouse_move(x, y, display)

    async def click(self, button: int | str = "left", x: int | None = None,
                    y: int | None = None) -> None:
        """Press and release ``button`` (left, middle, right, or 1-7), at (x, y) if given."""
        await self.session.input.click(button, x, y)

    async def mouse_down(self, button: int | str = "left") -> None:
        self.session.input.mouse_down(button)

    async def mouse_up(self, button: int | str = "left") -> None:
        self.session.input.mouse_up(button)

    async def drag(self, x1: int, y1: int, x2: int, y2: int, button: int | str = "left",
                   steps: int = 10) -> None:
        """Press ``button`` at (x1, y1), move to (x2, y2) in ``steps`` motions, release."""
        if steps < 1:
            raise ValueError("steps must be at least 1")
        inp = self.session.input
        inp.mouse_move(x1, y1, inp.display_id)
        inp.mouse_down(button)
        try:
            for i in range(1, steps + 1):
                await asyncio.sleep(DRAG_STEP_S)
                inp.mouse_move(x1 + (x2 - x1) * i // steps, y1 + (y2 - y1) * i // steps,
                               inp.display_id)
        finally:
            inp.mouse_up(button)

    async def scroll(self, clicks: int, x: int | None = None, y: int | None = None) -> None:
        """Turn the wheel: ``clicks`` > 0 scrolls down, < 0 up (as a browser's deltaY), at
        (x, y) if given."""
        if (x is None) != (y is None):
            raise ValueError("scroll needs both x and y, or neither")
        if x is not None and y is not None:
            self.session.input.mouse_move(x, y, self.session.input.display_id)
        for _ in range(abs(clicks)):
            await self.session.input.click(WHEEL_DOWN if clicks > 0 else WHEEL_UP)

    # --- the screen ---------------------------------------------------------------------

    async def grab(self, display: int = 0, region: Box | None = None,
                   cursor: bool = False) -> Grab:
        """The pixels of a display (or of ``region`` of it), consistent between two draws."""
        return await self.session.grab(display, _rect(region), cursor)

    async def screenshot(self, format: ShotFormat = "image", display: int = 0,
                         region: Box | None = None, cursor: bool = False) -> Any:
        """A picture of a display: a Pillow image (``"image"``), an (H, W, 3) RGB uint8 numpy
        array (``"numpy"``; RGBA for a surface with alpha) or PNG bytes (``"png"``)."""
        shot = await self.grab(display, region, cursor)
        if format == "image":
            return shot.image()
        if format == "numpy":
            return shot.pixels
        if format == "png":
            return shot.png()
        raise ValueError(f"screenshot format must be image, numpy or png, not {format!r}")

    # --- the guest agent ----------------------------------------------------------------

    async def get_clipboard(self, timeout: float = 5.0) -> str | None:
        """The text on the guest's clipboard (None when it holds none). Needs the guest
        agent: raises AgentUnavailable without one."""
        return await self.session.agent.get_clipboard(timeout)

    async def set_clipboard(self, text: str) -> None:
        """Put ``text`` on the guest's clipboard (the guest fetches it when it pastes)."""
        self.session.agent.set_clipboard(text)

    async def resolution(self, width: int, height: int, wait: bool = True,
                         timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Ask the guest agent for a WxH display; with ``wait``, return once the server has
        created a primary surface of that size (DisplayTimeout otherwise)."""
        events = self.session.events(SurfaceCreated)
        async with events:
            self.session.agent.request_resolution(width, height)
            if not wait or any((m.width, m.height) == (width, height)
                               for m in self.session.snapshot().monitors):
                return
            try:
                async with asyncio.timeout(timeout):
                    while True:
                        ev = await self._next(events)
                        if isinstance(ev, SurfaceCreated) and ev.primary and \
                                (ev.width, ev.height) == (width, height):
                            return
            except TimeoutError:
                raise DisplayTimeout(
                    f"no {width}x{height} display within {timeout:g} s") from None

    # --- ports --------------------------------------------------------------------------

    async def port(self, name: str, timeout: float = DEFAULT_TIMEOUT_S
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open the SPICE port ``name`` (a QEMU ``-chardev spiceport,name=NAME``: its QMP
        monitor ``org.qemu.monitor.qmp.0``, a guest's virtio-serial port) as an asyncio
        stream pair: what the reader yields came from the port, what is written goes to it.
        Closing the writer closes the port. PortError when the server has not offered the
        port within ``timeout`` seconds or something already holds it."""
        return await self.session.ports.open_pair(name, timeout)

    # --- waits --------------------------------------------------------------------------

    async def wait_for_display(self, display: int = 0,
                               timeout: float = DEFAULT_TIMEOUT_S) -> Display:
        """Wait until display ``display`` exists and the server has drawn its first picture
        (MARK); DisplayTimeout when it has not within ``timeout`` seconds."""
        events = self.session.events(DisplayMarked, SurfaceCreated)
        async with events:
            try:
                async with asyncio.timeout(timeout):
                    while (found := self._marked_display(display)) is None:
                        await self._next(events)
                    return found
            except TimeoutError:
                raise DisplayTimeout(f"display {display} showed nothing within {timeout:g} s"
                                     ) from None

    def _marked_display(self, index: int) -> Display | None:
        screens = monitors(self.session)
        if index >= len(screens) or not screens[index].display.marked:
            return None
        m = screens[index]
        return Display(index, m.channel_id, m.surface.surface_id, m.surface.width,
                       m.surface.height)

    async def wait_until_idle(self, quiet_ms: float = 500,
                              timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Wait until no display has changed for ``quiet_ms``; IdleTimeout when the screen is
        still changing after ``timeout`` seconds."""
        events = self.session.events(DisplayUpdated)
        async with events:
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise IdleTimeout(f"the screen did not stay still for {quiet_ms:g} ms "
                                      f"within {timeout:g} s")
                try:
                    await asyncio.wait_for(self._next(events), min(quiet_ms / 1000.0, left))
                except TimeoutError:
                    if time.monotonic() <= deadline:
                        return

    async def expect(self, reference: Reference, region: Box | None = None, max_diff: int = 0,
                     timeout: float = DEFAULT_TIMEOUT_S, display: int = 0) -> Grab:
        """Wait until the screen (or ``region`` of it) matches ``reference``: every channel of
        every pixel within ``max_diff`` (0: identical). Checked now and after every update of
        that display. Returns the matching grab; ExpectTimeout (with the closest difference
        seen and the last grab) when it never matched."""
        want = load_reference(reference)
        events = self.session.events(DisplayUpdated, SurfaceCreated)
        async with events:
            best: int | None = None
            last: Grab | None = None
            try:
                async with asyncio.timeout(timeout):
                    while True:
                        with contextlib.suppress(LookupError, ValueError):
                            last = await self.grab(display, region)
                            diff = _difference(last.pixels, want)
                            if diff is not None:
                                best = diff if best is None else min(best, diff)
                                if diff <= max_diff:
                                    return last
                        await self._next(events)
                        while events.get_nowait() is not None:  # coalesce a burst of draws
                            pass
            except TimeoutError:
                where = "the screen" if region is None else f"region {region}"
                seen = "never the reference's size" if best is None else \
                    f"closest difference {best}"
                raise ExpectTimeout(
                    f"{where} did not match within {timeout:g} s ({seen}, allowed {max_diff})",
                    best, last) from None

    def wait_for(self, predicate: Callable[[Event], bool], *kinds: EventKind,
                 timeout: float = DEFAULT_TIMEOUT_S) -> Coroutine[Any, Any, Event]:
        """The first event (of ``kinds``, if given) for which ``predicate`` holds; EventTimeout
        when none came within ``timeout`` seconds. The wait starts at the call, not at the
        ``await``, so an action between the two is seen::

            waiting = vm.wait_for(lambda e: True, LatencyMeasured)
            await vm.key("a")
            sample = await waiting
        """
        events = self.session.events(*kinds)
        return self._wait_for(events, predicate, timeout)

    async def _wait_for(self, events: EventStream, predicate: Callable[[Event], bool],
                        timeout: float) -> Event:
        async with events:
            try:
                async with asyncio.timeout(timeout):
                    while True:
                        event = await self._next(events)
                        if predicate(event):
                            return event
            except TimeoutError:
                raise EventTimeout(f"no matching event within {timeout:g} s") from None

    async def _next(self, events: EventStream) -> Event:
        """The next event; the session's end raises its error (so no wait outlives it)."""
        try:
            event = await events.get()
        except StopAsyncIteration:
            raise self._ended() from None
        if isinstance(event, SessionEnded):
            raise self._ended()
        return event

    def _ended(self) -> RyllError:
        end = self.session.end
        if end is not None and end.error is not None:
            return end.error
        return SessionClosedError(f"the session ended ({end.message if end else 'closed'})")


def _rect(region: Box | None) -> Rect | None:
    if region is None:
        return None
    left, top, right, bottom = (int(v) for v in region)
    if right <= left or bottom <= top:
        raise ValueError(f"region {region} is empty: give (left, top, right, bottom)")
    return Rect(top, left, bottom, right)


def load_reference(reference: Reference) -> np.ndarray:
    """An expected picture as an (H, W, 3) RGB uint8 array."""
    from PIL import Image

    image: Image.Image
    if isinstance(reference, np.ndarray):
        arr = reference
    else:
        if isinstance(reference, bytes | bytearray):
            image = Image.open(io.BytesIO(reference))
        elif isinstance(reference, str | Path):
            try:
                image = Image.open(reference)
            except OSError as exc:
                raise UsageError(f"cannot read the reference image {reference}: {exc}"
                                 ) from None
        elif isinstance(reference, Image.Image):
            image = reference
        else:
            raise TypeError("a reference is a Pillow image, a numpy array, PNG bytes or a path")
        arr = np.asarray(image.convert("RGB"))
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError("a reference array must be (H, W, 3) or (H, W, 4) uint8")
    return np.ascontiguousarray(arr[..., :3])


def _difference(pixels: np.ndarray, want: np.ndarray) -> int | None:
    """The largest per-channel difference, or None when the sizes differ."""
    have = pixels[..., :3]
    if have.shape != want.shape:
        return None
    return int(np.abs(have.astype(np.int16) - want.astype(np.int16)).max(initial=0))


class Connecting(Awaitable[VM]):
    """What :func:`connect` returns: ``async with`` it (closes for you) or ``await`` it (then
    ``await vm.close()``)."""

    def __init__(self, target: str | Path | Target, password: str | None, timeout: float,
                 ctx: ChannelContext, front_ends: Sequence[FrontEnd] = (),
                 audio_in: AudioSource | None = None) -> None:
        self._target = target
        self._audio_in = audio_in
        self._password = password
        self._timeout = timeout
        self._ctx = ctx
        self._front_ends = front_ends
        self._vm: VM | None = None

    async def _connect(self) -> VM:
        # A .vv file is read and a URL fetched off the loop (both may block).
        target = await asyncio.to_thread(resolve, self._target, self._password)
        session = Session(target, self._ctx)
        if self._audio_in is not None:
            session.record.source = self._audio_in
        vm = VM(session, self._front_ends)
        await vm._open(self._timeout)
        return vm

    def __await__(self) -> Generator[Any, None, VM]:
        return self._connect().__await__()

    async def __aenter__(self) -> VM:
        self._vm = await self._connect()
        return self._vm

    async def __aexit__(self, exc_type: ExcType, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._vm is not None:
            await self._vm.close()


def connect(target: str | Path | Target, password: str | None = None,
            timeout: float = DEFAULT_TIMEOUT_S, video_codecs: tuple[int, ...] = (),
            max_memory_mib: int | None = None, capture: str | Path | None = None,
            bug_report_dir: str | Path | None = None,
            web: bool | WebOptions = False, audio_out: str | Path | None = None,
            audio_in: str | Path | None = None, opus: bool = True) -> Connecting:
    """Connect to a SPICE server: ``"host:port[:tls_port]"``, a ``.vv`` file, or an http(s)
    URL serving one. Returns once the main channel and every channel it lists are linked (or
    raises the link's error: AuthError, ConnectError, TLSError...; DisplayTimeout after
    ``timeout`` seconds). ``max_memory_mib`` bounds what the server can make ryll hold
    (ryll.budget; default 1024). ``capture`` records the session into that directory as
    ``--capture`` does; ``bug_report_dir`` turns on bug reports (``vm.bug_report()``, and one
    when the server drops a channel) with their traffic ring. ``web`` serves the browser
    viewer (True: on 127.0.0.1, any free port; or a ``ryll.viewer.options.WebOptions``):
    ``vm.viewer_url()`` gives a link to open. ``audio_out`` writes what the guest plays to
    a WAV file as ``--audio-out`` does; ``audio_in`` is what its microphone hears (an audio
    file, ``"tone:440"``; silence by default); ``opus=False`` keeps both to raw PCM."""
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    ctx = ChannelContext(display=DisplayOptions(video_codecs=video_codecs),
                         audio=AudioOptions(opus=opus))
    if max_memory_mib is not None:
        if max_memory_mib <= 0:
            raise ValueError("max_memory_mib must be positive")
        ctx.memory.limit = max_memory_mib * 1024 * 1024
    front_ends: list[FrontEnd] = []
    if capture is not None:
        from ryll.diagnostics.capture import Capture

        front_ends.append(Capture(Path(capture)))
    if bug_report_dir is not None:
        from ryll.diagnostics.reports import BugReports, ReportOptions

        front_ends.append(BugReports(ReportOptions(directory=Path(bug_report_dir))))
    if audio_out is not None:
        from ryll.cli.audio import AudioOut

        front_ends.append(AudioOut(Path(audio_out)))
    if web:
        from ryll.viewer.server import Viewer

        options = web if isinstance(web, WebOptions) else WebOptions()
        front_ends.append(Viewer(options, io.StringIO()))
    source = parse_audio_in(audio_in) if audio_in is not None else None
    return Connecting(target, password, timeout, ctx, front_ends, source)


# --- the synchronous twin ---------------------------------------------------------------


class _Loop:
    """An event loop in a daemon thread that runs one session's coroutines to completion."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ryll-sync",
                                       daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result()
        except KeyboardInterrupt:
            fut.cancel()
            raise

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def _blocking(name: str) -> Any:
    """A SyncVM method that runs VM.<name> on the session's loop and waits for it."""
    method = getattr(VM, name)

    def call(self: SyncVM, *args: Any, **kwargs: Any) -> Any:
        return self._loop.run(_on_loop(getattr(self.vm, name), args, kwargs))

    call.__name__ = name
    call.__doc__ = method.__doc__
    return call


class SyncVM:
    """:class:`VM` for code without asyncio: the same verbs and waits, blocking. The session
    runs on an event loop in a background thread; ``close()`` (or leaving the ``with``)
    ends it."""

    def __init__(self, loop: _Loop, vm: VM) -> None:
        self._loop = loop
        self.vm = vm

    key = _blocking("key")
    key_down = _blocking("key_down")
    key_up = _blocking("key_up")
    type = _blocking("type")
    move = _blocking("move")
    click = _blocking("click")
    mouse_down = _blocking("mouse_down")
    mouse_up = _blocking("mouse_up")
    drag = _blocking("drag")
    scroll = _blocking("scroll")
    grab = _blocking("grab")
    screenshot = _blocking("screenshot")
    get_clipboard = _blocking("get_clipboard")
    set_clipboard = _blocking("set_clipboard")
    resolution = _blocking("resolution")
    wait_for_display = _blocking("wait_for_display")
    wait_until_idle = _blocking("wait_until_idle")
    expect = _blocking("expect")
    wait_for = _blocking("wait_for")
    bug_report = _blocking("bug_report")

    def port(self, name: str, timeout: float = DEFAULT_TIMEOUT_S) -> socket.socket:
        """:meth:`VM.port` without asyncio: a connected, blocking socket whose bytes are the
        port's; closing it closes the port."""
        sock = self._loop.run(self.vm.session.ports.open_socket(name, timeout))
        sock.setblocking(True)
        return sock

    def viewer_url(self) -> str:
        return self._loop.run(_value(self.vm.viewer_url))

    def snapshot(self) -> SessionSnapshot:
        return self._loop.run(_value(self.vm.snapshot))

    def close(self) -> None:
        if self._loop.thread.is_alive():
            try:
                self._loop.run(self.vm.close())
            finally:
                self._loop.close()

    def __enter__(self) -> SyncVM:
        return self

    def __exit__(self, exc_type: ExcType, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


async def _value(fn: Callable[[], T]) -> T:
    return fn()


async def _on_loop(fn: Callable[..., Awaitable[T]], args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> T:
    """Call ``fn`` on the session's loop (a wait subscribes there) and await it."""
    return await fn(*args, **kwargs)


def connect_sync(target: str | Path | Target, password: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S, video_codecs: tuple[int, ...] = (),
                 max_memory_mib: int | None = None, capture: str | Path | None = None,
                 bug_report_dir: str | Path | None = None,
                 web: bool | WebOptions = False, audio_out: str | Path | None = None,
                 audio_in: str | Path | None = None, opus: bool = True) -> SyncVM:
    """:func:`connect` for plain scripts: ``with ryll.connect_sync(...) as vm:``."""
    loop = _Loop()
    try:
        vm: VM = loop.run(_awaited(connect(target, password, timeout, video_codecs,
                                           max_memory_mib, capture, bug_report_dir,
                                           web, audio_out, audio_in, opus)))
    except BaseException:
        loop.close()
        raise
    return SyncVM(loop, vm)


async def _awaited(pending: Awaitable[T]) -> T:
    return await pending
