"""The browser viewer in a real Chromium (Debian's, driven by Playwright) against the test VM:
the page's canvas equals QMP screendump, keys typed into the page reach the guest's evdev as
the right scancodes, clicks land where they were made, the guest's cursor is the page's, a
request without the token is refused, several pages see the same picture, and ``ryll``
without ``--headless`` opens the page in the default browser ($BROWSER)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ryll.testvm import TestVM
from tests.channels.test_cursor import guest_cursor_rgba
from tests.e2e.test_cursor import HOT, LAST_MOVE, guest_screen
from tests.e2e.test_inputs import check_move_then_middle_click, pointer_spots, serial_lines

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("chromium") is None,
                       reason="chromium not installed (scripts/setup.sh installs it)"),
]

playwright_api = pytest.importorskip("playwright.sync_api")
VIEWPORT = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=shutil.which("chromium"),
                               args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


class Ryll:
    """``ryll --web`` (or ``ryll`` opening a browser) as a subprocess, and its viewer URL."""

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url
        self.base = url.split("/?")[0]

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err


@contextmanager
def ryll_web(vm: TestVM, tmp_path: Path, *extra: str, env: dict[str, str] | None = None,
             url_from: Callable[[], str | None] | None = None) -> Iterator[Ryll]:
    args = [sys.executable, "-m", "ryll", "--direct", f"127.0.0.1:{vm.port}", *extra]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, env=env)
    assert proc.stdout is not None
    url = None
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        match = re.search(r"ryll: viewer at (\S+)", line)
        if match:
            url = match.group(1)
            break
        assert time.monotonic() < deadline
    assert url is not None, proc.communicate(timeout=10)
    if url_from is not None:  # the URL the browser was handed
        while (opened := url_from()) is None:
            assert time.monotonic() < deadline, "no browser was opened"
            time.sleep(0.1)
        assert opened == url
    ryll = Ryll(proc, url)
    try:
        yield ryll
    finally:
        err = ryll.stop()
        assert "Traceback" not in err, err


def canvas_pixels(page: Any, display: int = 0) -> np.ndarray:
    """The display's canvas as RGB, read back losslessly (PNG)."""
    data = page.evaluate(
        "(d) => document.querySelector(`canvas.screen[data-display='${d}']`)"
        ".toDataURL('image/png')", display)
    raw = base64.b64decode(data.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


def wait_canvas_equals(page: Any, oracle: Callable[[], np.ndarray], timeout: float = 30,
                       display: int = 0) -> np.ndarray:
    deadline = time.monotonic() + timeout
    while True:
        want = oracle()
        try:
            got = canvas_pixels(page, display)
        except Exception:  # no canvas yet
            got = None
        if got is not None and got.shape == want.shape and np.array_equal(got, want):
            return got
        if time.monotonic() > deadline:
            if got is None:
                raise AssertionError("no canvas")
            if got.shape != want.shape:
                raise AssertionError(f"canvas {got.shape} != screendump {want.shape}")
            diff = np.argwhere((got != want).any(axis=2))
            raise AssertionError(f"{len(diff)} pixels differ, first at (y, x) {tuple(diff[0])}")
        time.sleep(0.3)


def wait_js(page: Any, expression: str, timeout: float = 30) -> Any:
    """Poll a JavaScript expression (awaited if a promise) until it is truthy. Playwright's
    own wait_for_function evaluates strings with eval inside the page, which the viewer's
    Content-Security-Policy rightly forbids; page.evaluate goes through the debugger."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {expression}")
        time.sleep(0.1)


def open_page(browser: Any, url: str, context: Any = None) -> Any:
    page = (context or browser.new_context(viewport=VIEWPORT)).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    page.goto(url)
    page.wait_for_selector("canvas.screen", timeout=30_000)
    return page


# --- display ----------------------------------------------------------------------------------


def test_canvas_equals_screendump_then_after_a_mode_change(browser: Any, tmp_path: Path) -> None:
    with TestVM(vga="qxl", scene="modes", mode="640x480",
                extra_cmdline="ryll.mode2=1024x768 ryll.hold=12") as vm:
        first = vm.wait_frame(1, timeout=90)
        with ryll_web(vm, tmp_path, "--web") as ryll:
            page = open_page(browser, ryll.url)
            wait_canvas_equals(page, vm.screendump)
            vm.wait_serial(r"ryll: mode set 1024x768", timeout=60, after=first)
            got = wait_canvas_equals(page, vm.screendump)
            assert got.shape == (768, 1024, 3)
            # The status bar follows the session.
            assert page.inner_text("#state").startswith("connected")
            assert page.inner_text("#gap-count") == "0 gaps"
            assert page.errors == []


def test_two_viewers_and_the_token(browser: Any, tmp_path: Path) -> None:
    with TestVM(vga="qxl", scene="static", mode="640x480") as vm:
        vm.wait_frame(1, timeout=90)
        with ryll_web(vm, tmp_path, "--web") as ryll:
            # Without the cookie (another browser profile), everything is refused.
            for path in ("/", "/static/viewer.js", "/ws", "/screenshot.png"):
                with pytest.raises(urllib.error.HTTPError) as refused:
                    urllib.request.urlopen(ryll.base + path, timeout=10)
                assert refused.value.code == 403, path
            context = browser.new_context(viewport=VIEWPORT)
            first = open_page(browser, ryll.url, context)
            assert "token" not in first.url  # the token is traded for a cookie at once
            # The link is spent: another browser that has it gets nothing.
            stranger = browser.new_context(viewport=VIEWPORT).new_page()
            response = stranger.goto(ryll.url)
            assert response is not None and response.status == 403
            # A second page of the same browser sees the same picture.
            second = open_page(browser, ryll.base + "/", context)
            want = vm.screendump()
            wait_canvas_equals(first, lambda: want)
            wait_canvas_equals(second, lambda: want)
            # The screenshot button's PNG is the same picture.
            shot = context.request.get(ryll.base + "/screenshot.png")
            assert shot.status == 200
            png = np.asarray(Image.open(io.BytesIO(shot.body())).convert("RGB"))
            assert np.array_equal(png, want)


# --- input ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def input_vm() -> Iterator[TestVM]:
    with TestVM(vga="qxl", scene="input", mode="640x480") as vm:
        vm.wait_serial(r"ryll: input ready", timeout=120)
        yield vm


def test_keys_typed_into_the_page_reach_the_guest(browser: Any, input_vm: TestVM,
                                                   tmp_path: Path) -> None:
    with ryll_web(input_vm, tmp_path, "--web") as ryll:
        page = open_page(browser, ryll.url)
        wait_js(page, "document.querySelector('#state').textContent"
                               ".startsWith('connected')")
        page.focus("#screens")
        time.sleep(0.5)
        off = input_vm.serial_offset()
        kb = page.keyboard
        for key in ("KeyA", "Shift+KeyB", "ArrowUp", "NumpadEnter", "ControlRight", "Delete",
                    "Control+KeyL", "Digit1", "Shift+Digit1", "Semicolon"):
            kb.press(key)
            time.sleep(0.05)
        # Linux keycodes: KEY_A 30, KEY_LEFTSHIFT 42, KEY_B 48, KEY_UP 103, KEY_KPENTER 96,
        # KEY_RIGHTCTRL 97, KEY_DELETE 111, KEY_LEFTCTRL 29, KEY_L 38, KEY_1 2,
        # KEY_SEMICOLON 39.
        expected = [
            "30 down", "30 up", "42 down", "48 down", "48 up", "42 up", "103 down", "103 up",
            "96 down", "96 up", "97 down", "97 up", "111 down", "111 up",
            "29 down", "38 down", "38 up", "29 up", "2 down", "2 up",
            "42 down", "2 down", "2 up", "42 up", "39 down", "39 up",
        ]
        input_vm.wait_serial(r"ryll: key 39 up\r?\n", timeout=15, after=off)
        keys = [m.group(1) for m in serial_lines(input_vm, r"ryll: key (\d+ (?:down|up))", off)]
        assert keys == expected
        # Losing focus releases what is held (no key stays down in the guest).
        off = input_vm.serial_offset()
        kb.down("ShiftLeft")
        input_vm.wait_serial(r"ryll: key 42 down", timeout=10, after=off)
        page.evaluate("window.dispatchEvent(new Event('blur'))")
        input_vm.wait_serial(r"ryll: key 42 up", timeout=10, after=off)
        kb.up("ShiftLeft")
        assert page.errors == []


def test_clicks_land_where_they_were_made_in_client_mode(browser: Any, tmp_path: Path) -> None:
    with TestVM(vga="qxl", scene="input", mode="640x480", usb_tablet=True) as vm:
        vm.wait_serial(r"ryll: input device \S+ abs=1", timeout=120)
        with ryll_web(vm, tmp_path, "--web") as ryll:
            page = open_page(browser, ryll.url)
            wait_js(page, "document.querySelector('#state').textContent"
                                   ".includes('client mouse')", 30)
            box = page.locator("canvas.screen").bounding_box()
            assert box is not None and (box["width"], box["height"]) == (640, 480)
            off = vm.serial_offset()
            page.mouse.move(box["x"] + 100, box["y"] + 200)
            time.sleep(0.3)
            page.mouse.click(box["x"] + 300, box["y"] + 50, button="middle")
            check_move_then_middle_click(vm, off)


# --- the cursor -------------------------------------------------------------------------------


def test_the_guest_cursor_is_drawn_over_the_canvas(browser: Any, tmp_path: Path) -> None:
    """Server mouse mode (PS/2 only): the page draws the guest's cursor on its overlay, the
    hotspot where the guest put it; the canvas under it stays the guest's picture."""
    with TestVM(scene="cursor", mode="640x480", extra_cmdline="ryll.load=qxl") as vm:
        set_at = vm.wait_serial(r"ryll: cursor set 100 80 hot 5 7", timeout=90)
        vm.wait_serial(r"ryll: idle", timeout=30, after=set_at)
        with ryll_web(vm, tmp_path, "--web") as ryll:
            page = open_page(browser, ryll.url)
            wait_canvas_equals(page, guest_screen)
            wait_js(page, "view.cursor.img !== null")
            assert page.evaluate("[view.cursor.hotX, view.cursor.hotY]") == list(HOT)
            data = page.evaluate("document.querySelector('canvas.overlay').toDataURL()")
            overlay = np.asarray(Image.open(io.BytesIO(
                base64.b64decode(data.split(",", 1)[1]))).convert("RGBA"))
            cursor = guest_cursor_rgba()
            x0, y0 = LAST_MOVE
            drawn = overlay[y0:y0 + 64, x0:x0 + 64]
            # Where the guest's cursor is opaque, the overlay is exactly it; nowhere else is
            # anything drawn.
            opaque = cursor[:, :, 3] == 255
            assert np.array_equal(drawn[opaque], cursor[opaque])
            outside = overlay.copy()
            outside[y0:y0 + 64, x0:x0 + 64] = 0
            assert not outside[:, :, 3].any()


# --- ryll without --headless: the default browser ---------------------------------------------


def test_ryll_without_headless_opens_the_default_browser(browser: Any, tmp_path: Path) -> None:
    """What ``ryll --url`` / ``ryll --file`` do for a person: serve the viewer and hand its URL
    to the default browser ($BROWSER here: a script that writes it down)."""
    opened = tmp_path / "opened.txt"
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\nprintf %s "$1" > {opened}.tmp && mv {opened}.tmp {opened}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "BROWSER": f"{script} %s"}
    with TestVM(vga="qxl", scene="static", mode="640x480") as vm:
        vm.wait_frame(1, timeout=90)
        with ryll_web(vm, tmp_path, env=env,
                      url_from=lambda: opened.read_text() if opened.exists() else None
                      ) as ryll:
            page = open_page(browser, ryll.url)
            wait_canvas_equals(page, vm.screendump)


# --- around the picture -----------------------------------------------------------------------


def test_buttons_wheel_pointer_lock_and_the_focused_page(browser: Any, input_vm: TestVM,
                                                        tmp_path: Path) -> None:
    """Ctrl-Alt-Del and paste-as-keys buttons, the wheel, Pointer Lock in server mouse mode,
    and with two pages open only the focused one's keys reach the guest."""
    with ryll_web(input_vm, tmp_path, "--web") as ryll:
        context = browser.new_context(viewport=VIEWPORT)
        page = open_page(browser, ryll.url, context)
        wait_js(page, "document.querySelector('#state').textContent"
                               ".startsWith('connected')")
        off = input_vm.serial_offset()
        page.click("#cad")
        # KEY_LEFTCTRL 29, KEY_LEFTALT 56, KEY_DELETE 111: pressed in order, released backwards.
        input_vm.wait_serial(r"ryll: key 29 up", timeout=15, after=off)
        keys = [m.group(1) for m in serial_lines(input_vm, r"ryll: key (\d+ (?:down|up))", off)]
        assert keys == ["29 down", "56 down", "111 down", "111 up", "56 up", "29 up"]

        off = input_vm.serial_offset()
        page.once("dialog", lambda dialog: dialog.accept("Hi there!"))
        page.click("#paste")
        input_vm.wait_serial(r"ryll: text [^\r\n]*Hi there!\r?\n", timeout=20, after=off)
        page.wait_for_selector("#message:not([hidden])")
        assert "typed 9 characters" in page.inner_text("#message")

        # Server mouse mode: a click locks the pointer, then moves are relative.
        box = page.locator("canvas.screen").bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + 50, box["y"] + 50)
        page.mouse.click(box["x"] + 50, box["y"] + 50)
        wait_js(page, "document.pointerLockElement !== null", 10)
        off = input_vm.serial_offset()
        page.mouse.move(box["x"] + 80, box["y"] + 30)
        page.mouse.move(box["x"] + 110, box["y"] + 10)
        page.mouse.wheel(0, 100)
        page.mouse.wheel(0, -200)
        input_vm.wait_serial(r"ryll: wheel 1\r?\n", timeout=15, after=off)
        time.sleep(0.5)
        moves = [(int(m.group(1)), int(m.group(2)))
                 for m in serial_lines(input_vm, r"ryll: pointer rel (-?\d+) (-?\d+)", off)]
        assert (sum(dx for dx, _ in moves), sum(dy for _, dy in moves)) == (60, -40), moves
        wheel = [int(m.group(1)) for m in serial_lines(input_vm, r"ryll: wheel (-?\d+)", off)]
        assert wheel == [-1, 1, 1], wheel  # one notch down, two up

        # A second page takes the focus: what the first one held is let go, and its input
        # no longer reaches the guest.
        page.keyboard.down("ShiftLeft")
        input_vm.wait_serial(r"ryll: key 42 down", timeout=15, after=off)
        other = open_page(browser, ryll.base + "/", context)
        other.focus("#screens")
        other.keyboard.press("KeyQ")  # KEY_Q 16
        input_vm.wait_serial(r"ryll: key 16 up", timeout=15, after=off)
        keys = [m.group(1) for m in serial_lines(input_vm, r"ryll: key (\d+ (?:down|up))", off)]
        assert keys == ["42 down", "42 up", "16 down", "16 up"]
        off = input_vm.serial_offset()
        page.evaluate("send({t: 'rel', dx: 7, dy: 7})")  # as a locked pointer would
        page.evaluate("send({t: 'button', button: 0, down: true})")
        page.evaluate("send({t: 'button', button: 0, down: false})")
        other.keyboard.press("KeyE")  # KEY_E 18
        input_vm.wait_serial(r"ryll: key 18 up", timeout=15, after=off)
        time.sleep(0.3)
        text = input_vm.serial_text()[off:]
        assert "pointer rel" not in text and "button" not in text, text
        page.keyboard.up("ShiftLeft")


def test_a_bug_report_of_a_region_from_the_page(browser: Any, tmp_path: Path) -> None:
    import zipfile

    with TestVM(vga="qxl", scene="static", mode="640x480") as vm:
        vm.wait_frame(1, timeout=90)
        with ryll_web(vm, tmp_path, "--web", "--bug-report-dir", str(tmp_path / "reports")
                      ) as ryll:
            page = open_page(browser, ryll.url)
            want = vm.screendump()
            wait_canvas_equals(page, lambda: want)
            box = page.locator("canvas.screen").bounding_box()
            assert box is not None
            page.click("#report")
            page.once("dialog", lambda dialog: dialog.accept("the colour bars look off"))
            page.mouse.move(box["x"] + 10, box["y"] + 20)
            page.mouse.down()
            page.mouse.move(box["x"] + 60, box["y"] + 50)
            page.mouse.move(box["x"] + 110, box["y"] + 80)
            page.mouse.up()
            wait_js(page, "document.querySelector('#message').textContent"
                          ".includes('bug report')", 30)
            assert "bug report written" in page.inner_text("#message"), (
                page.inner_text("#message"))
            path = Path(page.inner_text("#message").split("written: ", 1)[1].strip())
    with zipfile.ZipFile(path) as z:
        meta = json.loads(z.read("metadata.json"))
        region = np.asarray(Image.open(io.BytesIO(z.read("screenshot-region.png")))
                            .convert("RGB"))
    assert meta["description"] == "the colour bars look off"
    assert meta["report_type"] == "manual"
    assert region.shape == (60, 100, 3)
    assert np.array_equal(region, want[20:80, 10:110])


def test_the_page_reconnects_and_survives_a_guest_reset(browser: Any, tmp_path: Path) -> None:
    with TestVM(vga="qxl", scene="static", mode="640x480") as vm:
        first = vm.wait_frame(1, timeout=90)
        with ryll_web(vm, tmp_path, "--web") as ryll:
            page = open_page(browser, ryll.url)
            wait_canvas_equals(page, vm.screendump)
            # A network blip: the socket drops; the page links again and gets the picture.
            page.evaluate("""() => { window.blips = 0;
                const c = document.querySelector('canvas.screen');
                c.getContext('2d').clearRect(0, 0, c.width, c.height); view.ws.close(); }""")
            wait_js(page, "view.ws !== null && view.ws.readyState === 1")
            wait_canvas_equals(page, vm.screendump)
            # The guest resets: the session and the page carry on, the new picture arrives.
            vm.system_reset()
            vm.wait_frame(1, timeout=90, after=first + 1)
            wait_canvas_equals(page, vm.screendump, timeout=60)
            assert page.inner_text("#state").startswith("connected")


def test_the_agent_gets_the_page_size_and_the_clipboard_goes_both_ways(
        browser: Any, tmp_path: Path) -> None:
    with TestVM(vga="qxl", scene="static", mode="640x480", agent_port=True,
                extra_cmdline="ryll.agent=1 ryll.clip=guest-says-hi") as vm:
        vm.wait_serial(r"ryll: agent up", timeout=90)
        after = vm.serial_offset()
        with ryll_web(vm, tmp_path, "--web") as ryll:
            context = browser.new_context(viewport={"width": 1000, "height": 700})
            context.grant_permissions(["clipboard-read", "clipboard-write"])
            page = open_page(browser, ryll.url, context)
            page.bring_to_front()
            page.focus("#screens")
            size = page.evaluate("[document.querySelector('#screens').clientWidth, "
                                 "document.querySelector('#screens').clientHeight]")
            width, height = size[0] & ~7, size[1]
            vm.wait_serial(rf"ryll: agent monitors {width}x{height}", timeout=30, after=after)
            vm.wait_serial(rf"ryll: mode set {width}x{height}", timeout=30, after=after)
            got = wait_canvas_equals(page, vm.screendump, timeout=30)
            assert got.shape == (height, width, 3)
            # The guest's clipboard is the page's...
            wait_js(page, "navigator.clipboard.readText()"
                                   ".then(t => t === 'guest-says-hi')", 30)
            # ...and the page's goes to the guest when the page gets the focus.
            page.evaluate("navigator.clipboard.writeText('page-says-hello')")
            page.evaluate("window.dispatchEvent(new Event('focus'))")
            vm.wait_serial(r"ryll: agent clipboard page-says-hello", timeout=30, after=after)
        # --no-obey-guest-size: the page's size is not asked of the guest.
        after = vm.serial_offset()
        with ryll_web(vm, tmp_path, "--web", "--no-obey-guest-size") as ryll:
            context = browser.new_context(viewport={"width": 900, "height": 650})
            page = open_page(browser, ryll.url, context)
            page.focus("#screens")
            page.evaluate("send({t: 'focus'}); sendSize()")
            wait_canvas_equals(page, vm.screendump)
            time.sleep(2.0)  # past the half second a size waits to settle
            assert "agent monitors" not in vm.serial_text()[after:]


def test_https_and_the_control_socket_alongside(browser: Any, tmp_path: Path) -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from tests.e2e.ctlspec_client import SpecClient

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    sock = tmp_path / "ctl.sock"
    with TestVM(vga="qxl", scene="static", mode="640x480") as vm:
        vm.wait_frame(1, timeout=90)
        with ryll_web(vm, tmp_path, "--web", "--web-tls-cert", str(tmp_path / "cert.pem"),
                      "--web-tls-key", str(tmp_path / "key.pem"), "--control-socket",
                      str(sock)) as ryll:
            assert ryll.url.startswith("https://127.0.0.1:")
            context = browser.new_context(viewport=VIEWPORT, ignore_https_errors=True)
            page = open_page(browser, ryll.url, context)
            wait_canvas_equals(page, vm.screendump)
            deadline = time.monotonic() + 30
            while not sock.exists():
                assert time.monotonic() < deadline
                time.sleep(0.1)
            client = SpecClient.connect(str(sock), client_name="test_viewer")
            try:
                assert client.status()["spice_connected"] is True
            finally:
                client.close()


def test_every_monitor_has_its_canvas(browser: Any, tmp_path: Path) -> None:
    from tests.e2e.test_multihead import SIZES, head_picture

    with TestVM(scene="heads", heads=2, extra_cmdline="ryll.load=qxl") as vm:
        vm.wait_serial(r"ryll: idle", timeout=120)
        with ryll_web(vm, tmp_path, "--web") as ryll:
            page = open_page(browser, ryll.url)
            wait_js(page, "document.querySelectorAll('canvas.screen').length === 2")
            for head in (0, 1):
                wait_canvas_equals(page, lambda h=head: head_picture(h, *SIZES[h]),
                                   display=head)
                assert np.array_equal(vm.screendump(device=vm.display_devices[head]),
                                      head_picture(head, *SIZES[head]))


def test_fit_scaled_clicks_the_client_cursor_and_the_bar(browser: Any, tmp_path: Path) -> None:
    """Scaled displays still click where they are clicked; the guest cursor is the page's CSS
    cursor in client mode; the bar shows streams and traffic; full screen works."""
    with TestVM(vga="qxl", scene="input", mode="640x480", usb_tablet=True) as vm:
        vm.wait_serial(r"ryll: input device \S+ abs=1", timeout=120)
        with ryll_web(vm, tmp_path, "--web") as ryll:
            page = open_page(browser, ryll.url, browser.new_context(
                viewport={"width": 500, "height": 600}))
            wait_js(page, "document.querySelector('#state').textContent"
                          ".includes('client mouse')")
            # Narrower than the display: scaled to the window's width, 1:1 no more.
            box = page.locator("canvas.screen").bounding_box()
            assert box is not None and box["width"] < 500 and abs(
                box["height"] - box["width"] * 480 / 640) < 2
            page.click("#fit")
            wait_js(page, "document.querySelector('#screens').classList.contains('fit')")
            box = page.locator("canvas.screen").bounding_box()
            assert box is not None
            scale = box["width"] / 640
            off = vm.serial_offset()
            page.mouse.click(box["x"] + 320 * scale, box["y"] + 120 * scale)
            vm.wait_serial(r"ryll: button 1 up\r?\n", timeout=15, after=off)
            spots = pointer_spots(vm, off)
            assert abs(spots[-1][0] - 320) <= 2 and abs(spots[-1][1] - 120) <= 2, spots
            # The bar: traffic counted, the session's state and mouse mode.
            wait_js(page, "!document.querySelector('#bandwidth').textContent"
                          ".startsWith('in 0 B/s')")
            page.click("#fullscreen")
            wait_js(page, "document.fullscreenElement !== null", 10)
            assert page.errors == []


def test_the_client_mode_cursor_is_the_pages(browser: Any, tmp_path: Path) -> None:
    with TestVM(scene="cursor", mode="640x480", extra_cmdline="ryll.load=qxl",
                usb_tablet=True) as vm:
        set_at = vm.wait_serial(r"ryll: cursor set 100 80 hot 5 7", timeout=90)
        vm.wait_serial(r"ryll: idle", timeout=30, after=set_at)
        with ryll_web(vm, tmp_path, "--web") as ryll:
            page = open_page(browser, ryll.url)
            wait_js(page, "view.mouse === 'client' && view.cursor.url !== null")
            css = page.evaluate("document.querySelector('canvas.screen').style.cursor")
            assert css.startswith('url("data:image/png;base64,') and css.endswith(
                '") 5 7, auto'), css
            png = base64.b64decode(css.split("base64,", 1)[1].split('"', 1)[0])
            shape = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
            assert np.array_equal(shape, guest_cursor_rgba())
            overlay = page.evaluate("document.querySelector('canvas.overlay').toDataURL()")
            drawn = np.asarray(Image.open(io.BytesIO(
                base64.b64decode(overlay.split(",", 1)[1]))).convert("RGBA"))
            assert not drawn[:, :, 3].any()  # nothing drawn over the canvas in client mode


def test_the_streaming_indicator(browser: Any, tmp_path: Path) -> None:
    with TestVM(vga="qxl", scene="animate", mode="640x480", streaming_video="all",
                extra_cmdline="ryll.seconds=120") as vm:
        vm.wait_frame(20, timeout=90)
        with ryll_web(vm, tmp_path, "--web") as ryll:
            page = open_page(browser, ryll.url)
            wait_js(page, "document.querySelector('#streaming').className === 'on'")
            wait_js(page, "parseInt(document.querySelector('#fps').textContent) >= 10")


def test_the_python_api_serves_the_viewer_too(browser: Any) -> None:
    import ryll

    with TestVM(vga="qxl", scene="static", mode="640x480") as vm:
        vm.wait_frame(1, timeout=90)
        with ryll.connect_sync(f"127.0.0.1:{vm.port}", web=True) as v:
            v.wait_for_display()
            first, second = v.viewer_url(), v.viewer_url()
            assert first != second  # each a one-time link of its own
            for url in (first, second):  # two browsers
                page = open_page(browser, url)
                wait_canvas_equals(page, vm.screendump)
                page.context.close()
        with pytest.raises(ryll.UsageError, match="the viewer is off"), \
                ryll.connect_sync(f"127.0.0.1:{vm.port}") as plain:
            plain.viewer_url()
