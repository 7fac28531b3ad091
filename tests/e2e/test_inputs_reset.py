"""Input across a guest reset, and key combos the guest's kernel must see as the right keys.

Both run an in-process ``Session`` against the test VM's ``input`` scene with a USB tablet (so
the server offers client mouse mode); the guest reports every evdev event on its serial port.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator

import pytest

from ryll.channels.base import handled
from ryll.channels.context import ChannelContext
from ryll.channels.events import (
    ChannelLinked,
    DisplayMarked,
    Event,
    SessionEnded,
    SurfaceCreated,
    SurfaceDestroyed,
)
from ryll.channels.main import MainChannel
from ryll.cli.inputs import wait_input_ready
from ryll.protocol.constants import ChannelType, MainServer, MouseMode
from ryll.protocol.messages import main as main_msgs
from ryll.session.session import Session
from ryll.session.target import Target
from ryll.testvm import TestVM

pytestmark = pytest.mark.e2e

TABLET = r"ryll: input device \S+ abs=1 "
READY = r"ryll: input ready\r?\n"
#: What the guest prints first when it boots (again).
BOOTED = r"ryll: init args"


@pytest.fixture(scope="module")
def tablet_vm() -> Iterator[TestVM]:
    with TestVM(vga="qxl", scene="input", mode="640x480", usb_tablet=True) as vm:
        vm.wait_serial(TABLET, timeout=120)
        vm.wait_serial(READY, timeout=60)
        yield vm


def abs_spots(vm: TestVM, after: int) -> list[tuple[int, int]]:
    return [(int(m.group(1)), int(m.group(2)))
            for m in re.finditer(r"ryll: pointer abs (\d+) (\d+)", vm.serial_text()[after:])]


def keys_after(vm: TestVM, after: int) -> list[str]:
    return re.findall(r"ryll: key (\d+ (?:down|up))", vm.serial_text()[after:])


async def until(cond: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.05)


async def wait_serial(vm: TestVM, pattern: str, timeout: float, after: int) -> int:
    """``vm.wait_serial`` off the event loop, so the session keeps reading meanwhile."""
    return await asyncio.to_thread(vm.wait_serial, pattern, timeout, after)


async def start_session(vm: TestVM) -> tuple[Session, asyncio.Future]:
    session = Session(Target("127.0.0.1", vm.port), ChannelContext())
    ready = session.events(ChannelLinked, DisplayMarked)
    await session.connect()
    waiter = asyncio.ensure_future(session.wait())
    async with ready:
        await asyncio.wait_for(wait_input_ready(session, ready), 30)
    # The cursor channel too, so the pointer's server-side position is known before a move.
    await until(lambda: session.channel(ChannelType.CURSOR) is not None, "the cursor channel", 10)
    return session, waiter


def watch(session: Session, into: list[Event], *kinds: type[Event]) -> asyncio.Task[None]:
    """Collect the session's events of ``kinds`` into ``into`` as they are published."""
    events = session.events(*kinds)

    async def collect() -> None:
        async with events:
            async for event in events:
                if not isinstance(event, SessionEnded):
                    into.append(event)

    return asyncio.ensure_future(collect())


def test_client_mouse_mode_across_a_guest_reset(
    tablet_vm: TestVM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Client mouse mode, and where a MOUSE_POSITION lands, before and after QMP system_reset.

    What this server does (QEMU 7.2 with spice-server 0.15.1, QXL in VGA mode, a USB tablet):
    MAIN_INIT says current=server, supported=server|client; ryll asks for client mode at once
    and MOUSE_MODE(current=client) grants it. Across the reset the display channel sees the
    primary surface destroyed and created again (several times: BIOS, kernel, guest mode set),
    but the main channel gets no MOUSE_MODE at all: the server stays in client mode while the
    guest reboots, so ryll has nothing to ask for again, and MOUSE_POSITION keeps landing on
    the tablet once the new guest has opened it.

    The test records every MOUSE_MODE the server sends (a recorder wraps MainChannel's own
    handler, so ryll handles the real message as usual). Should a server fall back to server
    mode while client mode stays supported, ryll must ask for client mode again right there
    (spice-gtk set_mouse_mode); that is checked here for whatever is recorded, and
    unit-checked with MOUSE_MODE(supported=3, current=1) in
    tests/channels/test_inputs_send.py (test_client_mode_is_requested_when_offered).
    """
    vm = tablet_vm
    # Every MOUSE_MODE: (current, supported, requests ryll had sent before, requests after).
    modes: list[tuple[int, int, int, int]] = []

    def on_mouse_mode(ch: MainChannel, msg: main_msgs.MouseModeMsg) -> None:
        before = ch.mouse_mode_requests
        MainChannel._on_mouse_mode(ch, msg)
        modes.append((msg.current, msg.supported, before, ch.mouse_mode_requests))

    monkeypatch.setitem(MainChannel.routes, MainServer.MOUSE_MODE,
                        handled(main_msgs.parse_mouse_mode, on_mouse_mode))

    async def body() -> None:
        session, waiter = await start_session(vm)
        try:
            main = session.channel(ChannelType.MAIN, 0)
            assert isinstance(main, MainChannel)
            surfaces: list[Event] = []
            watcher = watch(session, surfaces, SurfaceCreated, SurfaceDestroyed)
            inp = session.input
            st = session.ctx.state

            # Before: client mode (asked for at MAIN_INIT, granted by MOUSE_MODE).
            await until(lambda: inp.client_mouse, "client mouse mode", 20)
            assert st.supported_mouse_modes & MouseMode.CLIENT
            assert main.requested_mouse_mode == MouseMode.CLIENT
            assert main.mouse_mode_requests >= 1
            assert modes and modes[-1][0] == MouseMode.CLIENT, modes  # the grant
            off = vm.serial_offset()
            inp.mouse_move(100, 200)
            await wait_serial(vm, r"ryll: pointer abs 1(?:99|00|01) (?:199|200|201)\r?\n",
                              15, off)

            # The reset.
            modes.clear()
            requests_before = main.mouse_mode_requests
            off = vm.serial_offset()
            await asyncio.to_thread(vm.system_reset)
            booted = await wait_serial(vm, BOOTED, 60, off)
            await wait_serial(vm, r"ryll: frame 1\r?\n", 60, booted)
            await wait_serial(vm, READY, 60, booted)
            await wait_serial(vm, TABLET, 60, booted)  # the tablet is opened (maybe later)
            # ryll saw the guest's display go and come back: a new primary surface.
            await until(lambda: any(isinstance(e, SurfaceCreated) and e.primary
                                    for e in surfaces), "a new primary surface", 20)
            assert any(isinstance(e, SurfaceDestroyed) for e in surfaces), surfaces

            # Every fall-back to server mode (with client mode still offered) made ryll ask for
            # client mode again at once; after a fall-back, the server granted it again.
            for current, supported, before, after in modes:
                if current != MouseMode.CLIENT and supported & MouseMode.CLIENT:
                    assert after == before + 1, modes
                else:
                    assert after == before, modes
            if any(current != MouseMode.CLIENT for current, *_ in modes):
                assert modes[-1][0] == MouseMode.CLIENT, modes
            # QEMU 7.2 sends no MOUSE_MODE across the reset (client mode throughout); either
            # way, ryll asked exactly once per fall-back and never otherwise.
            fallbacks = sum(1 for current, supported, *_ in modes
                            if current != MouseMode.CLIENT and supported & MouseMode.CLIENT)
            assert main.mouse_mode_requests == requests_before + fallbacks, modes

            # After: still (or again) client mode, and a position lands where ryll put it.
            await until(lambda: inp.client_mouse, "client mouse mode after the reset", 20)
            assert st.current_mouse_mode == MouseMode.CLIENT
            off = vm.serial_offset()
            inp.mouse_move(300, 50)
            await wait_serial(vm, r"ryll: pointer abs \d+ \d+\r?\n", 15, off)
            await inp.click("middle", 420, 333)
            await wait_serial(vm, r"ryll: button 2 up\r?\n", 15, off)
            spots = abs_spots(vm, off)
            assert any(abs(x - 300) <= 1 and abs(y - 50) <= 1 for x, y in spots), spots
            assert abs(spots[-1][0] - 420) <= 1 and abs(spots[-1][1] - 333) <= 1, spots
        finally:
            session.stop()
            await waiter
            watcher.cancel()

    asyncio.run(asyncio.wait_for(body(), 60))


# Linux keycodes: KEY_ESC 1, KEY_TAB 15, KEY_LEFTCTRL 29, KEY_LEFTSHIFT 42, KEY_LEFTALT 56,
# KEY_F2 60, KEY_SYSRQ 99 (Print, E0 37), KEY_DELETE 111 (E0 53), KEY_LEFTMETA 125 (E0 5B),
# KEY_COMPOSE 127 (Menu, E0 5D).
COMBOS = [
    ("ctrl-alt-delete", [29, 56, 111]),
    ("Super_L", [125]),
    ("ctrl-shift-Escape", [29, 42, 1]),
    ("Print", [99]),
    ("ctrl-alt-F2", [29, 56, 60]),
    ("alt-Tab", [56, 15]),
    ("super-Menu", [125, 127]),
]


def test_combos_reach_the_guest_as_their_keys(tablet_vm: TestVM) -> None:
    """Each combo: its modifiers go down first, then the key; the key comes up first, then the
    modifiers in reverse. The guest grabs its input devices (EVIOCGRAB), so Ctrl+Alt+Del
    reaches it as three keys and does not reboot it: QEMU keeps running, emits no RESET, and
    the guest does not boot again."""
    vm = tablet_vm
    vm.wait_serial(READY, timeout=60)  # also after the reset test
    vm.qmp.query_status()
    vm.qmp.events.clear()
    off = vm.serial_offset()

    async def body() -> None:
        session, waiter = await start_session(vm)
        try:
            surfaces: list[Event] = []
            watcher = watch(session, surfaces, SurfaceDestroyed)
            mark = off
            for name, codes in COMBOS:
                await session.input.press_key(name)
                mark = await wait_serial(vm, rf"ryll: key {codes[0]} up\r?\n", 15, mark)
            # A last key after them all: the guest is still the one reading keys.
            await session.input.press_key("z")
            await wait_serial(vm, r"ryll: key 44 up\r?\n", 15, mark)
            assert session.input.held == ()
            assert surfaces == []  # the display never went away
        finally:
            session.stop()
            await waiter
            watcher.cancel()

    asyncio.run(asyncio.wait_for(body(), 60))
    expected: list[str] = []
    for _, codes in COMBOS:
        expected += [f"{c} down" for c in codes] + [f"{c} up" for c in reversed(codes)]
    expected += ["44 down", "44 up"]
    assert keys_after(vm, off) == expected
    assert vm.running
    assert vm.qmp.query_status()["status"] == "running"
    assert not [e for e in vm.qmp.events if e.get("event") in ("RESET", "SHUTDOWN")], vm.qmp.events
    assert not re.search(BOOTED, vm.serial_text()[off:])
