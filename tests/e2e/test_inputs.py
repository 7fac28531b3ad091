"""Keys, text and pointer through ryll into the test VM's ``input`` scene, which reads the
kernel's input devices (evdev) and reports every event on the serial port."""

from __future__ import annotations

import asyncio
import csv
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

import ryll
from ryll.session.session import Session
from ryll.testvm import TestVM
from tests.e2e.conftest import run_ryll

pytestmark = pytest.mark.e2e

T = TypeVar("T")


@pytest.fixture(scope="module")
def input_vm():
    """PS/2 keyboard and mouse only: server mouse mode."""
    with TestVM(vga="qxl", scene="input", mode="640x480") as vm:
        vm.wait_serial(r"ryll: input ready", timeout=120)
        yield vm


def with_session(vm: TestVM, body: Callable[[Session], Awaitable[T]]) -> T:
    """Run ``body`` against an in-process session once its inputs channel is up."""

    async def main() -> T:
        # ryll.connect returns once every listed channel is linked (the cursor channel's
        # position is then known before the first pointer move).
        async with ryll.connect(f"127.0.0.1:{vm.port}") as v:
            await v.wait_for_display()
            return await body(v.session)

    return asyncio.run(main())


def serial_lines(vm: TestVM, pattern: str, after: int) -> list[re.Match[str]]:
    return list(re.finditer(pattern, vm.serial_text()[after:]))


def pointer_spots(vm: TestVM, after: int) -> list[tuple[int, int]]:
    """The absolute pointer positions the guest reported since ``after``."""
    return [(int(m.group(1)), int(m.group(2)))
            for m in serial_lines(vm, r"ryll: pointer abs (\d+) (\d+)", after)]


def check_move_then_middle_click(vm: TestVM, after: int) -> None:
    """What the guest saw of "move to (100, 200), then a middle click at (300, 50)" in
    client mouse mode: both positions (within a pixel), and one press and release."""
    vm.wait_serial(r"ryll: button 2 up\r?\n", timeout=15, after=after)
    spots = pointer_spots(vm, after)
    assert any(abs(x - 100) <= 1 and abs(y - 200) <= 1 for x, y in spots), spots
    assert abs(spots[-1][0] - 300) <= 1 and abs(spots[-1][1] - 50) <= 1, spots
    buttons = [m.group(1) for m in serial_lines(vm, r"ryll: button (\d \w+)", after)]
    assert buttons == ["2 down", "2 up"]


def escaped(text: str) -> str:
    """How the guest prints typed text."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def test_paste_text_cli(input_vm: TestVM, tmp_path: Path) -> None:
    text = "Hello, World! 123 ~`|\\\"'<>?:{}_+ ok\n\tend"
    off = input_vm.serial_offset()
    run = run_ryll(
        ["--direct", f"127.0.0.1:{input_vm.port}", "--headless", "--duration", "10",
         "--paste-text", text, "--paste-char-delay-ms", "16"],
        tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert "ryll: paste completed (" in run.stdout
    input_vm.wait_serial(r"ryll: text [^\r\n]*" + re.escape(escaped(text)) + r"\r?\n",
                         timeout=15, after=off)


def test_typing_floor(input_vm: TestVM) -> None:
    """3000 characters asked for with no delay (at 0 ms a burst loses 99% of them in the
    guest's keyboard queue): the floor (MIN_CHAR_DELAY_MS) gets every key there."""
    text = ("aB!cD@eF#g" * 300)
    off = input_vm.serial_offset()

    async def body(session: Session) -> None:
        await session.input.type_text(text, 0)

    with_session(input_vm, body)
    # Shifted characters are two key downs: 16 per 10 characters.
    want = 1600 * len(text) // 1000

    def downs() -> int:
        return len(serial_lines(input_vm, r"ryll: key \d+ down", off))

    deadline = time.monotonic() + 20
    while downs() < want:
        assert time.monotonic() < deadline, f"{downs()} of {want} key downs arrived"
        time.sleep(0.2)
    time.sleep(0.5)
    assert downs() == want


def test_extended_keys_and_modifiers(input_vm: TestVM) -> None:
    off = input_vm.serial_offset()

    async def body(session: Session) -> None:
        inp = session.input
        for name in ("Up", "KP_Enter", "Control_R", "Right", "Delete", "shift-a"):
            await inp.press_key(name)
            await asyncio.sleep(0.05)
        inp.key_down("shift")  # held shift is released while typing, then held again
        await inp.type_text("b;")
        inp.key_up("shift")
        await asyncio.sleep(0.3)

    with_session(input_vm, body)
    # Linux keycodes: KEY_UP 103, KEY_KPENTER 96, KEY_RIGHTCTRL 97, KEY_RIGHT 106,
    # KEY_DELETE 111, KEY_LEFTSHIFT 42, KEY_A 30, KEY_B 48, KEY_SEMICOLON 39.
    expected = [
        "103 down", "103 up", "96 down", "96 up", "97 down", "97 up", "106 down", "106 up",
        "111 down", "111 up", "42 down", "30 down", "30 up", "42 up",
        "42 down", "42 up", "48 down", "48 up", "39 down", "39 up", "42 down", "42 up",
    ]
    end = input_vm.wait_serial(r"ryll: text [^\r\n]*Ab;\r?\n", timeout=15, after=off)
    input_vm.wait_serial(r"ryll: key 42 up\r?\n", timeout=10, after=end)
    keys = [m.group(1) for m in serial_lines(input_vm, r"ryll: key (\d+ (?:down|up))", off)]
    assert keys == expected


def test_pointer_server_mode(input_vm: TestVM) -> None:
    off = input_vm.serial_offset()

    async def body(session: Session) -> None:
        inp = session.input
        assert not inp.client_mouse  # no absolute pointer in this VM
        inp.mouse_move_relative(30, -20)
        await asyncio.sleep(0.2)
        inp.mouse_move(100, 100)  # from (30, -20): a motion of (70, 120)
        await asyncio.sleep(0.2)
        await inp.click("left")
        await inp.click("right")
        await asyncio.sleep(0.3)

    with_session(input_vm, body)
    input_vm.wait_serial(r"ryll: button 3 up\r?\n", timeout=15, after=off)
    moves = [(int(m.group(1)), int(m.group(2)))
             for m in serial_lines(input_vm, r"ryll: pointer rel (-?\d+) (-?\d+)", off)]
    assert (sum(dx for dx, _ in moves), sum(dy for _, dy in moves)) == (100, 100)
    buttons = [m.group(1) for m in serial_lines(input_vm, r"ryll: button (\d \w+)", off)]
    assert buttons == ["1 down", "1 up", "3 down", "3 up"]


def test_pointer_client_mode() -> None:
    with TestVM(vga="qxl", scene="input", mode="640x480", usb_tablet=True) as vm:
        vm.wait_serial(r"ryll: input device \S+ abs=1", timeout=120)
        off = vm.serial_offset()

        async def body(session: Session) -> int:
            inp = session.input
            deadline = time.monotonic() + 20
            while not inp.client_mouse:  # asked for at MAIN_INIT, granted by the server
                assert time.monotonic() < deadline, "the server never switched to client mode"
                await asyncio.sleep(0.1)
            inp.mouse_move(100, 200)
            await asyncio.sleep(0.3)
            await inp.click("middle", 300, 50)
            await asyncio.sleep(0.3)
            return session.ctx.state.current_mouse_mode

        assert with_session(vm, body) == 2
        check_move_then_middle_click(vm, off)


def test_cadence_latency(input_vm: TestVM, tmp_path: Path) -> None:
    latency_csv = tmp_path / "latency.csv"
    run = run_ryll(
        ["--direct", f"127.0.0.1:{input_vm.port}", "--headless", "--duration", "10",
         "--cadence", "--latency-file", str(latency_csv)],
        tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert run.summary is not None
    lat = run.summary["latency"]
    assert lat["count"] >= 2, lat
    assert 1 <= lat["min_ms"] <= lat["median_ms"] <= lat["p95_ms"] <= lat["max_ms"] <= 2000, lat
    with latency_csv.open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["time", "latency_ms"]
    assert len(rows) - 1 == lat["count"]
    for at, ms in rows[1:]:
        assert float(at) > 1.6e9 and 1 <= float(ms) <= 2000
    print(f"latency: {lat}")
