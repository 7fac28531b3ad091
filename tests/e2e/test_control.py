"""The control socket end to end, ryll's side of it: what protocol 1.3 adds to the Rust ryll's
1.2 (``test_control_spec.py`` checks 1.2 itself, with a client written from its
specification). The real ``ryll --headless --control-socket`` runs in a subprocess against the
test VM and is driven over the unix socket with the same NDJSON client.

The first VM runs the ``input`` scene with a USB tablet (client mouse mode) and a sound card
(the server lists channels ryll does not speak: real gaps), and no guest agent; the second one
has the guest agent. Each shares one ryll among its tests, which run in file order; the last
test of each ends ryll.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ryll.testvm import TestVM
from tests.e2e.ctlspec_client import Message, SpecClient

pytestmark = pytest.mark.e2e

# A channel ryll does not speak yet (usbredir, issue 16), so the status has a real gap.
UNSPOKEN = ["-device", "qemu-xhci", "-chardev", "spicevmc,id=usbr0,name=usbredir",
            "-device", "usb-redir,chardev=usbr0"]
#: What 1.3 adds to 1.2's seven verbs and six events.
EXTRA_METHODS = {"type", "mouse_move", "mouse_click", "mouse_down", "mouse_up", "mouse_scroll",
                 "clipboard_set", "clipboard_get", "resolution", "quit", "bug_report"}
EXTRA_EVENTS = {"surface_created", "surface_destroyed", "mark", "cursor", "mouse_mode", "gap",
                "input_latency", "clipboard", "session_ended"}


@dataclass
class Rig:
    vm: TestVM
    proc: subprocess.Popen[bytes]
    path: Path
    client: SpecClient
    #: The status answered the moment the socket appeared.
    first_status: Message
    workdir: Path

    def stderr(self) -> str:
        return (self.workdir / "stderr.txt").read_text(errors="replace")

    def summary(self) -> dict[str, Any]:
        return dict(json.loads((self.workdir / "summary.json").read_text()))


@contextmanager
def ryll_rig(vm: TestVM) -> Iterator[Rig]:
    """ryll (a subprocess) on ``vm``, and a client that said hello the moment the control
    socket appeared (it appears once the session is established)."""
    workdir = Path(tempfile.mkdtemp(prefix="ryllctl-"))
    path = workdir / "ctl.sock"
    proc: subprocess.Popen[bytes] | None = None
    client: SpecClient | None = None
    try:
        with (workdir / "stdout.txt").open("wb") as out, \
                (workdir / "stderr.txt").open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ryll", "--direct", f"127.0.0.1:{vm.port}",
                 "--headless", "--duration", "300", "--control-socket", str(path),
                 "--summary-json", str(workdir / "summary.json")],
                stdout=out, stderr=err, cwd=workdir,
            )
        deadline = time.monotonic() + 60
        while not path.exists():
            assert proc.poll() is None, (workdir / "stderr.txt").read_text()
            assert time.monotonic() < deadline, "the control socket never appeared"
            time.sleep(0.01)
        client = SpecClient.connect(str(path), client_name="test_control")
        first = client.status()
        yield Rig(vm, proc, path, client, first, workdir)
    finally:
        if client is not None:
            client.close()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    with TestVM(vga="qxl", scene="input", mode="640x480", usb_tablet=True,
                extra_args=UNSPOKEN) as vm:
        vm.wait_serial(r"ryll: input device \S+ abs=1", timeout=120)
        vm.wait_serial(r"ryll: input ready", timeout=60)
        with ryll_rig(vm) as r:
            yield r


def _wait_status(c: SpecClient, pred: Callable[[Message], bool],
                 timeout: float = 60.0) -> Message:
    deadline = time.monotonic() + timeout
    while True:
        status = c.status()
        if pred(status):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.2)


def _matches_screendump(vm: TestVM, shot: Callable[[], bytes]) -> np.ndarray:
    """``shot()`` (PNG bytes) once it equals QMP screendump; retried while the guest draws."""
    png = oracle = np.zeros((0,))
    for _attempt in range(20):
        oracle = vm.screendump()
        png = np.asarray(Image.open(io.BytesIO(shot())).convert("RGB"))
        if png.shape == oracle.shape and np.array_equal(png, oracle):
            return png
        time.sleep(0.5)
    diff = np.argwhere((png != oracle).any(axis=2)) if png.shape == oracle.shape else None
    pytest.fail(f"screenshot differs from screendump: shape {png.shape} vs {oracle.shape}, "
                f"{'?' if diff is None else len(diff)} pixels")


def test_hello_lists_the_1_3_extras(rig: Rig) -> None:
    h = rig.client.hello_result
    assert h is not None
    assert h["protocol_version"] == "1.3"
    assert EXTRA_METHODS <= set(h["supported_methods"]), h
    assert EXTRA_EVENTS <= set(h["supported_events"]), h
    assert h["ryll_version"]
    assert h["max_line_bytes"] == 1 << 20


def test_socket_appears_once_the_session_is_established(rig: Rig) -> None:
    """The first status, asked the moment the socket appeared: connected, every channel ryll
    speaks linked, and the gaps of the channels it does not already there."""
    first = rig.first_status
    assert first["spice_connected"] is True
    assert first["session"]["state"] == "connected"
    assert {"main", "display", "inputs", "cursor"} <= {c["name"] for c in first["channels"]}
    assert "main:unlinked_channel:usbredir" in first["gaps"]["keys"]


def test_status_extras(rig: Rig) -> None:
    status = _wait_status(rig.client, lambda s: bool(s["displays"]) and s["marks"] > 0
                          and s["session"]["mouse_mode"] == "client")
    assert status["session"]["target"]["port"] == rig.vm.port
    assert status["session"]["end"] is None
    assert [(d["display"], d["width"], d["height"]) for d in status["displays"]] == [
        (0, 640, 480)]
    assert status["surfaces"] == [{"channel_id": 0, "surface_id": 0, "width": 640,
                                   "height": 480}]
    assert status["agent"]["connected"] is False and status["agent_connected"] is False
    assert status["gaps"]["count"] == len(status["gaps"]["keys"])
    assert status["bytes_in"] > 0 and status["ryll_version"]
    for name in ("input_latency", "memory", "cursor", "bytes_out"):
        assert name in status, name
    main = next(c for c in status["channels"] if c["name"] == "main")
    assert main["messages_in"] > 0


def test_gap_event_for_a_channel_the_server_adds_later(rig: Rig) -> None:
    """A spiceport hot-added in QEMU is listed to the client at once; named as the webdav
    folder share, it is the webdav channel, which ryll does not speak yet, so the gap is
    registered, and pushed."""
    c = rig.client
    assert c.subscribe("gap") == ["gap"]
    rig.vm.qmp.execute("chardev-add", {"id": "ctlport", "backend": {
        "type": "spiceport", "data": {"fqdn": "org.spice-space.webdav.0"}}})
    gap = c.wait_event("gap", 30, lambda d: d["key"] == "main:unlinked_channel:webdav")
    assert "webdav" in gap["detail"]
    assert "main:unlinked_channel:webdav" in c.status()["gaps"]["keys"]
    c.unsubscribe("gap")


def test_screenshot_extras(rig: Rig) -> None:
    c = rig.client

    def by_display() -> bytes:
        result = c.call("screenshot", {"display": 0})
        assert (result["width"], result["height"], result["format"]) == (640, 480, "png")
        assert (result["channel_id"], result["surface_id"]) == (0, 0)
        return base64.b64decode(result["data_base64"])

    png = _matches_screendump(rig.vm, by_display)
    raw = c.call("screenshot", {"display": 0, "format": "rgba", "cursor": True})
    rgba = np.frombuffer(base64.b64decode(raw["data_base64"]), np.uint8).reshape(480, 640, 4)
    assert (rgba[..., 3] == 255).all()
    # Client mouse mode: the guest's own pointer mark, no server cursor to draw in.
    assert rgba[..., :3].shape == png.shape
    assert c.request("screenshot", {"display": 3}).code == "no_such_surface"
    assert c.request("screenshot", {"channel_id": 5}).code == "no_such_surface"
    assert c.request("screenshot", {"display": 0, "surface_id": 0}).code == "bad_params"
    ignored = c.call("screenshot", {"format": "rgba", "future_option": 1})
    assert ignored["ignored_params"] == ["future_option"]


def test_type_reaches_the_guest(rig: Rig) -> None:
    off = rig.vm.serial_offset()
    text = "Hello ryll 42!"
    result = rig.client.call("type", {"text": text, "char_delay_ms": 10})
    assert result["chars_sent"] == len(text) and result["elapsed_ms"] > 0
    rig.vm.wait_serial(r"ryll: text [^\r\n]*" + re.escape(text) + r"\r?\n", timeout=20,
                       after=off)
    assert rig.client.request("type", {"text": "x\u2022"}).code == "bad_params"


def test_paste_without_an_agent_types_anyway(rig: Rig) -> None:
    """paste types key presses, so it needs no guest agent (as the Rust ryll's server, which
    never returns the spec's agent_not_connected for it)."""
    c = rig.client
    assert c.status()["agent_connected"] is False
    c.subscribe("paste_completed")
    off = rig.vm.serial_offset()
    assert c.paste("no agent", 5, id="p").result == {}
    assert c.wait_event("paste_completed", 20) == {"request_id": "p", "chars_sent": 8}
    rig.vm.wait_serial(r"ryll: text [^\r\n]*no agent\r?\n", timeout=20, after=off)
    c.unsubscribe("paste_completed")


def test_send_key_by_name_with_draw_and_latency_events(rig: Rig) -> None:
    c = rig.client
    assert set(c.subscribe("surface_drawn", "input_latency")) == {"surface_drawn",
                                                                  "input_latency"}
    c.take_events()
    off = rig.vm.serial_offset()
    assert c.call("send_key", {"key": "b", "state": "press"}) == {}
    rig.vm.wait_serial(r"ryll: key 48 down\r?\n", timeout=20, after=off)
    rig.vm.wait_serial(r"ryll: key 48 up\r?\n", timeout=20, after=off)
    # Down and up as separate requests.
    off = rig.vm.serial_offset()
    c.call("send_key", {"key": "shift", "state": "down"})
    c.call("send_key", {"key": "c", "state": "press"})
    c.call("send_key", {"key": "shift", "state": "up"})
    rig.vm.wait_serial(r"ryll: key 42 up\r?\n", timeout=20, after=off)
    text = rig.vm.serial_text()[off:]
    assert re.search(r"key 42 down.*key 46 down.*key 46 up.*key 42 up", text, re.S), text
    # The keys painted squares: display updates, and with them input-to-display latency.
    lat = c.wait_event("input_latency", 20)
    assert 0 < lat["latency_ms"] < 5000
    drawn = c.wait_event("surface_drawn", 20)
    rect = drawn["rect"]
    assert 0 <= rect["left"] < rect["right"] <= 640 and 0 <= rect["top"] < rect["bottom"] <= 480
    c.unsubscribe("surface_drawn", "input_latency")
    assert c.request("send_key", {"key": "no-such-key"}).code == "bad_params"
    assert c.request("send_key", {"key": "a", "scancode": 30}).code == "bad_params"
    assert c.request("send_key", {}).code == "bad_params"


def test_mouse_in_client_mode(rig: Rig) -> None:
    c = rig.client
    off = rig.vm.serial_offset()
    assert c.call("mouse_move", {"x": 123, "y": 45}) == {"mouse_mode": "client"}

    def spots() -> list[tuple[int, int]]:
        return [(int(m.group(1)), int(m.group(2))) for m in
                re.finditer(r"ryll: pointer abs (\d+) (\d+)", rig.vm.serial_text()[off:])]

    deadline = time.monotonic() + 20
    while not any(abs(x - 123) <= 1 and abs(y - 45) <= 1 for x, y in spots()):
        assert time.monotonic() < deadline, spots()
        time.sleep(0.1)
    off = rig.vm.serial_offset()
    assert c.call("mouse_click", {"button": "right", "x": 300, "y": 200}) == {}
    rig.vm.wait_serial(r"ryll: button 3 up\r?\n", timeout=20, after=off)
    assert any(abs(x - 300) <= 1 and abs(y - 200) <= 1 for x, y in spots()), spots()
    off = rig.vm.serial_offset()
    c.call("mouse_down", {"button": "left"})
    c.call("mouse_up", {})  # button defaults to left
    rig.vm.wait_serial(r"ryll: button 1 up\r?\n", timeout=20, after=off)
    assert "ryll: button 1 down" in rig.vm.serial_text()[off:]
    off = rig.vm.serial_offset()
    assert c.call("mouse_scroll", {"direction": "down", "count": 2}) == {}
    rig.vm.wait_serial(r"ryll: wheel -1\r?\n", timeout=20, after=off)
    assert c.request("mouse_move", {"x": 1}).code == "bad_params"
    assert c.request("mouse_move", {"x": 1, "y": 2, "dx": 3, "dy": 4}).code == "bad_params"
    assert c.request("mouse_click", {"button": "fourth"}).code == "bad_params"


def test_agent_verbs_without_an_agent(rig: Rig) -> None:
    c = rig.client
    assert c.request("clipboard_get").code == "agent_not_connected"
    assert c.request("clipboard_set", {"text": "x"}).code == "agent_not_connected"
    assert c.call("resolution", {"width": 800, "height": 600}) == {
        "sent": False, "agent_connected": False,
    }


def test_malformed_lines_do_not_hurt_the_session(rig: Rig) -> None:
    c = rig.client
    for line, code in (
        (b"this is not json\n", "bad_request"),
        (b"\xc3\x28\n", "bad_request"),
        (b'{"id":1,"method":"status","params":{},"x":NaN}\n', "bad_request"),
        (b"[" * 500_000 + b"\n", "bad_request"),
        (b"[]\n", "bad_request"),
        (b'{"method":"status","params":{}}\n', "bad_request"),
        (b'{"id":{"x":1},"method":"status","params":{}}\n', "bad_request"),
        (b'{"id":1.5,"method":"status","params":{}}\n', "bad_request"),
        (b'{"id":1,"method":42,"params":{}}\n', "bad_request"),
        (b'{"id":1,"method":"reboot","params":{}}\n', "unknown_method"),
        (b'{"id":1,"method":"mouse_move","params":{"x":"1","y":2}}\n', "bad_params"),
        (b'{"id":1,"method":"status","params":"all"}\n', "bad_params"),
    ):
        c.send_raw(line)
        msg = c.read_message()
        while "event" in msg:
            msg = c.read_message()
        assert msg["ok"] is False and msg["error"]["code"] == code, (line[:40], msg)
    # A line over 1 MiB: too_large, and ryll closes this client...
    try:
        c.send_raw(b'{"id":1,"method":"type","params":{"text":"' + b"x" * (1100 << 10))
    except OSError:
        pass
    seen = c.wait_eof(15)
    assert [m["error"]["code"] for m in seen if "error" in m] == ["too_large"], seen
    c.close()
    # ...but the session goes on, and a new client is served.
    rig.client = SpecClient.connect(str(rig.path), client_name="test_control-2")
    status = rig.client.status()
    assert status["session"]["state"] == "connected"
    assert rig.proc.poll() is None
    assert rig.client.call("screenshot", {"format": "rgba"})["width"] == 640


def test_quit_ends_the_session_and_removes_the_socket(rig: Rig) -> None:
    c = rig.client
    assert c.subscribe("session_ended") == ["session_ended"]
    assert c.call("quit") == {}
    ev = c.wait_event("session_ended", 30)
    assert ev["reason"] == "stopped" and ev["exit_code"] == 0, ev
    c.wait_eof(30)
    assert rig.proc.wait(30) == 0, rig.stderr()
    assert not rig.path.exists()
    assert rig.summary()["end"]["reason"] == "stopped"


GUEST_TEXT = "hello-from-guest"


def test_agent_through_the_control_socket() -> None:
    """With the test VM's guest agent: its state in status, the clipboard both ways (and the
    clipboard event), and a resolution change that shows as surface events and a new picture;
    SIGTERM then ends the session with session_ended, EOF and no socket."""
    with TestVM(vga="qxl", scene="static", mode="640x480", agent_port=True,
                extra_cmdline=f"ryll.agent=1 ryll.clip={GUEST_TEXT}") as vm:
        vm.wait_serial(r"ryll: agent up", timeout=90)
        vm.wait_serial(r"ryll: mode set 640x480", timeout=90)
        with ryll_rig(vm) as r:
            c = r.client
            status = _wait_status(c, lambda s: s["agent_connected"] and s["marks"] > 0)
            assert status["agent"]["connected"] is True
            assert c.subscribe("clipboard") == ["clipboard"]
            assert c.call("clipboard_get", {"timeout": 10}) == {"text": GUEST_TEXT}
            # What the guest sent is pushed too.
            assert c.wait_event("clipboard", 10) == {"text": GUEST_TEXT, "selection": 0}
            off = vm.serial_offset()
            assert c.call("clipboard_set", {"text": "hello-from-control"}) == {}
            vm.wait_serial(r"ryll: agent clipboard hello-from-control", timeout=30, after=off)
            assert set(c.subscribe("surface_created", "surface_destroyed", "mark",
                                   "session_ended")) == {
                "surface_created", "surface_destroyed", "mark", "session_ended"}
            assert c.call("resolution", {"width": 800, "height": 600}) == {
                "sent": True, "agent_connected": True,
            }
            vm.wait_serial(r"ryll: agent monitors 800x600", timeout=30, after=off)
            gone = c.wait_event("surface_destroyed", 30)
            assert gone == {"channel_id": 0, "surface_id": 0}
            created = c.wait_event("surface_created", 30)
            assert (created["width"], created["height"], created["primary"]) == (800, 600, True)
            assert c.wait_event("mark", 30) == {"channel_id": 0}
            _wait_status(c, lambda s: [(d["width"], d["height"]) for d in s["displays"]]
                         == [(800, 600)])
            _matches_screendump(vm, lambda: base64.b64decode(
                c.call("screenshot")["data_base64"]))
            r.proc.send_signal(signal.SIGTERM)
            ev = c.wait_event("session_ended", 30)
            assert ev["reason"] == "stopped" and ev["exit_code"] == 0, ev
            c.wait_eof(30)
            assert r.proc.wait(30) == 0, r.stderr()
            assert not r.path.exists()
            assert not os.path.lexists(r.path)
