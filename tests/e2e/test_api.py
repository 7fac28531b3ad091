"""The public Python API (ryll.connect, ryll.connect_sync) against the test VM's ``input``
scene with a USB tablet (client mouse mode); the guest reports every key, pointer position,
button and wheel step on its serial port, and QMP screendump is the pixel oracle.

The examples of docs/api.md run here too, as the scripts they are (the agent example runs in
tests/e2e/test_agent.py, against a VM with the guest agent)."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ryll
from ryll.channels.agent import AgentUnavailable
from ryll.events import LatencyMeasured
from ryll.testvm import TestVM
from tests.e2e.conftest import DOCS_ADDRESS, doc_examples

pytestmark = pytest.mark.e2e

READY = r"ryll: input ready\r?\n"


@pytest.fixture(scope="module")
def vm() -> Iterator[TestVM]:
    with TestVM(vga="qxl", scene="input", mode="640x480", usb_tablet=True) as vm:
        vm.wait_serial(r"ryll: input device \S+ abs=1 ", timeout=120)
        vm.wait_serial(READY, timeout=60)
        yield vm


def address(vm: TestVM) -> str:
    return f"127.0.0.1:{vm.port}"


def serial_after(vm: TestVM, off: int) -> str:
    return vm.serial_text()[off:]


# --- docs/api.md ---------------------------------------------------------------------------


def test_every_doc_example_runs_as_written(vm: TestVM, tmp_path: Path) -> None:
    examples = doc_examples()
    assert len(examples) >= 6
    for i, code in enumerate(examples):
        if "resolution(" in code:  # needs the guest agent: tests/e2e/test_agent.py
            continue
        if "vm.port(" in code or "audio_out=" in code:  # tests/e2e/test_ports.py, test_audio.py
            continue
        assert DOCS_ADDRESS in code
        off = vm.serial_offset()
        script = tmp_path / f"example{i}.py"
        script.write_text(code.replace(DOCS_ADDRESS, address(vm)))
        run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 0, f"example {i} failed:\n{code}\n{run.stderr}"
        if 'type("hello\\n")' in code:
            vm.wait_serial(r"ryll: text [^\r\n]*hello\\n\r?\n", timeout=10, after=off)
            assert Image.open(tmp_path / "screen.png").size == (640, 480)
        if "no magenta square" in code:
            assert "the closest difference was" in run.stdout
        if "bug_report(" in code:
            [report] = (tmp_path / "reports").glob("ryll-bugreport-*.zip")
            with zipfile.ZipFile(report) as zf:
                region = Image.open(io.BytesIO(zf.read("screenshot-region.png")))
                assert region.size == (200, 100)
                assert "traffic.pcap" in zf.namelist()
            assert {"main.pcap", "display.pcap", "metadata.json"} <= {
                p.name for p in (tmp_path / "capture").iterdir()}
        if "viewer_url()" in code:
            assert re.search(r"watch at http://127\.0\.0\.1:\d+/\?token=\S+", run.stdout)
        if "latency" in code:
            assert re.search(r"the key changed \d+x\d+ pixels", run.stdout), run.stdout
            assert "input-to-display latency" in run.stdout


def test_the_five_line_script_from_the_docs(vm: TestVM, tmp_path: Path) -> None:
    """What a newcomer writes from docs/api.md alone, without asyncio."""
    off = vm.serial_offset()
    with ryll.connect_sync(address(vm)) as v:
        v.wait_for_display()
        v.type("five lines\n")
        png = v.screenshot(format="png")
    vm.wait_serial(r"ryll: text [^\r\n]*five lines\\n\r?\n", timeout=10, after=off)
    assert Image.open(io.BytesIO(png)).size == (640, 480)


# --- verbs -------------------------------------------------------------------------------


def test_keys_text_and_pointer_reach_the_guest(vm: TestVM) -> None:
    off = vm.serial_offset()

    async def body() -> None:
        async with ryll.connect(address(vm)) as v:
            d = await v.wait_for_display()
            assert (d.index, d.width, d.height) == (0, 640, 480)
            await v.key("shift-a")
            await v.key_down("shift")
            await v.key("b")
            await v.key_up("shift")
            await v.type("c;\n", delay_ms=5)
            await v.move(100, 200)
            await asyncio.sleep(0.2)  # the tablet reports what it holds when polled
            await v.click("right", 300, 50)
            await v.drag(10, 20, 110, 220, steps=4)
            await v.scroll(2)
            await v.scroll(-1, 400, 300)
            await asyncio.sleep(0.3)

    asyncio.run(asyncio.wait_for(body(), 60))
    vm.wait_serial(r"ryll: wheel 1\r?\n", timeout=10, after=off)
    text = serial_after(vm, off)
    assert re.search(r"ryll: text [^\r\n]*ABc;\\n\r?\n", text), text
    keys = re.findall(r"ryll: key (\d+ (?:down|up))", text)
    # KEY_LEFTSHIFT 42, KEY_A 30, KEY_B 48: shift-a is shift down, a, a up, shift up.
    assert keys[:8] == ["42 down", "30 down", "30 up", "42 up", "42 down", "48 down", "48 up",
                        "42 up"]
    spots = [(int(x), int(y)) for x, y in re.findall(r"ryll: pointer abs (\d+) (\d+)", text)]
    near = [any(abs(x - px) <= 1 and abs(y - py) <= 1 for x, y in spots)
            for px, py in ((100, 200), (300, 50), (10, 20), (35, 70), (110, 220), (400, 300))]
    assert all(near), (near, spots)
    buttons = re.findall(r"ryll: button (\d) (down|up)", text)
    assert buttons == [("3", "down"), ("3", "up"), ("1", "down"), ("1", "up")]
    wheel = re.findall(r"ryll: wheel (-?\d+)", text)
    assert wheel == ["-1", "-1", "1"]  # two clicks down (REL_WHEEL -1 each), one up


def test_screenshots_are_what_screendump_shows(vm: TestVM) -> None:
    with ryll.connect_sync(address(vm)) as v:
        v.wait_for_display()
        v.wait_until_idle(quiet_ms=500)
        image = v.screenshot()
        array = v.screenshot(format="numpy")
        png = v.screenshot(format="png")
        region = v.screenshot(format="numpy", region=(100, 50, 300, 150))
        oracle = vm.screendump()
        with pytest.raises(ValueError, match="format"):
            v.screenshot(format="gif")
        with pytest.raises(LookupError):
            v.screenshot(display=3)
    assert array.shape == (480, 640, 3) and array.dtype == np.uint8
    assert np.array_equal(array, oracle)
    assert np.array_equal(np.asarray(image), oracle)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), oracle)
    assert np.array_equal(region, oracle[50:150, 100:300])


def test_expect_matches_and_its_timeout_says_how_close(vm: TestVM) -> None:
    async def body() -> None:
        async with ryll.connect(address(vm)) as v:
            await v.wait_for_display()
            await v.wait_until_idle(quiet_ms=500)
            oracle = await asyncio.to_thread(vm.screendump)
            shot = await v.expect(oracle, timeout=5)  # the whole screen, exactly
            assert shot.width == 640
            await v.expect(Image.fromarray(oracle[0:40, 0:60]), region=(0, 0, 60, 40),
                           timeout=5)
            brighter = np.clip(oracle[0:40, 0:60].astype(int) + 3, 0, 255).astype(np.uint8)
            await v.expect(brighter, region=(0, 0, 60, 40), max_diff=3, timeout=5)
            started = time.monotonic()
            with pytest.raises(ryll.ExpectTimeout) as info:
                await v.expect(brighter, region=(0, 0, 60, 40), max_diff=2, timeout=0.5)
            assert 0.4 < time.monotonic() - started < 5
            assert info.value.closest == 3 and isinstance(info.value, TimeoutError)
            with pytest.raises(ryll.ExpectTimeout) as info:
                await v.expect(oracle, region=(0, 0, 60, 40), timeout=0.3)  # wrong size
            assert info.value.closest is None

            # A key paints a square: the new picture matches once ryll has drawn it too.
            reference = await asyncio.to_thread(_after_key, vm, v, asyncio.get_running_loop())
            assert not np.array_equal(reference, oracle)
            match = await v.expect(reference, timeout=10)
            assert np.array_equal(match.pixels, reference)

    asyncio.run(asyncio.wait_for(body(), 60))


def _after_key(vm: TestVM, v: ryll.VM, loop: asyncio.AbstractEventLoop) -> np.ndarray:
    """Press a key through the session's loop, wait until the guest drew it, screendump."""
    off = vm.serial_offset()
    asyncio.run_coroutine_threadsafe(v.key("k"), loop).result(10)
    vm.wait_serial(r"ryll: key 37 up\r?\n", timeout=10, after=off)
    time.sleep(0.5)  # the guest paints the square right after the key event
    return vm.screendump()


def test_waits_time_out_with_typed_errors(vm: TestVM) -> None:
    async def body() -> None:
        async with ryll.connect(address(vm)) as v:
            await v.wait_for_display()
            with pytest.raises(ryll.DisplayTimeout):
                await v.wait_for_display(display=1, timeout=0.3)
            with pytest.raises(ryll.EventTimeout):
                await v.wait_for(lambda e: False, timeout=0.3)
            with pytest.raises(ryll.DisplayTimeout):  # no guest agent here to change it
                await v.resolution(800, 600, timeout=0.5)
            with pytest.raises(AgentUnavailable):
                await v.get_clipboard()

            async def keep_moving() -> None:
                for i in range(100):
                    await v.move(200 + i % 50, 200)
                    await asyncio.sleep(0.05)

            mover = asyncio.ensure_future(keep_moving())
            try:
                with pytest.raises(ryll.IdleTimeout):
                    await v.wait_until_idle(quiet_ms=400, timeout=1.5)
            finally:
                mover.cancel()
            # wait_for sees what happens between its call and its await.
            latency = v.wait_for(lambda e: True, LatencyMeasured, timeout=10)
            await v.key("m")
            sample = await latency
            assert isinstance(sample, LatencyMeasured) and 0 < sample.latency_ms < 5000

    asyncio.run(asyncio.wait_for(body(), 60))


def test_a_wait_ends_with_the_session(vm: TestVM) -> None:
    async def body() -> None:
        v = await ryll.connect(address(vm))
        await v.wait_for_display()
        waiting = asyncio.ensure_future(v.wait_for(lambda e: False, timeout=30))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await v.close()
        with pytest.raises(ryll.SessionClosedError):
            await waiting
        assert time.monotonic() - started < 5
        assert v.closed
        with pytest.raises(ryll.SessionClosedError):
            await v.wait_until_idle(timeout=5)

    asyncio.run(asyncio.wait_for(body(), 60))


def test_connect_errors_are_typed(tmp_path: Path) -> None:
    from ryll.testvm import free_port

    with pytest.raises(ryll.ConnectError):
        ryll.connect_sync(f"127.0.0.1:{free_port()}", timeout=5)
    with pytest.raises(ryll.UsageError):
        ryll.connect_sync("not a target")
    with pytest.raises(ryll.UsageError):
        ryll.connect_sync(tmp_path / "missing.vv")
