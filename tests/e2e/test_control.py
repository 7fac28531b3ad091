"""The control socket end to end: the real ``ryll --headless --control-socket`` in a subprocess
against the test VM's ``input`` scene (a USB tablet, so client mouse mode, and a sound card, so
the server lists channels ryll does not speak: real gaps), driven over the unix socket.

ryll reaches the VM through a gated TCP proxy: the test's client connects to the control socket
and subscribes before the gate opens, so the gaps the session opens while linking arrive as
events deterministically.

The tests share one VM and one ryll and run in file order; the last one ends ryll.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
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

pytestmark = pytest.mark.e2e

SOUND = ["-audiodev", "spice,id=snd0", "-device", "intel-hda",
         "-device", "hda-duplex,audiodev=snd0"]
SUBSCRIBED = ["gap", "surface_drawn", "latency", "surface_created", "mark", "mouse_mode",
              "session_ended", "paste_completed"]


class GatedProxy:
    """TCP forwarder to the VM whose connections wait for ``gate`` before going through."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.gate = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._socks.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        self.gate.wait(60)
        try:
            up = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            conn.close()
            return
        self._socks.append(up)
        threading.Thread(target=self._pump, args=(up, conn), daemon=True).start()
        self._pump(conn, up)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self) -> None:
        self._listener.close()
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass


class Client:
    """A blocking control-socket client that keeps the events it reads past."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self._buf = b""
        self.events: list[dict[str, Any]] = []
        self._next_id = 0

    def line(self, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no line from ryll")
            self.sock.settimeout(left)
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError("ryll closed the control connection")
            self._buf += data
        raw, self._buf = self._buf.split(b"\n", 1)
        return json.loads(raw)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def call(self, cmd: str, timeout: float = 30.0, **args: Any) -> dict[str, Any]:
        """The reply (``result`` or ``error`` object) to one request."""
        self._next_id += 1
        rid = f"t{self._next_id}"
        self.send_raw(json.dumps({"id": rid, "cmd": cmd, **args}).encode() + b"\n")
        return self.reply(rid, timeout)

    def reply(self, rid: Any, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.line(max(0.1, deadline - time.monotonic()))
            if "event" in msg:
                self.events.append(msg["event"])
                continue
            assert msg.get("id") == rid, msg
            return msg

    def result(self, cmd: str, **args: Any) -> dict[str, Any]:
        reply = self.call(cmd, **args)
        assert "result" in reply, reply
        return reply["result"]

    def wait_event(self, pred: Callable[[dict[str, Any]], bool],
                   timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for ev in self.events[seen:]:
                if pred(ev):
                    return ev
            seen = len(self.events)
            msg = self.line(max(0.1, deadline - time.monotonic()))
            assert "event" in msg, msg
            self.events.append(msg["event"])

    def close(self) -> None:
        self.sock.close()


@dataclass
class Rig:
    vm: TestVM
    proc: subprocess.Popen[bytes]
    path: Path
    client: Client
    hello: dict[str, Any]
    workdir: Path

    def stderr(self) -> str:
        return (self.workdir / "stderr.txt").read_text(errors="replace")


@contextmanager
def ryll_rig(vm: TestVM, events: list[str]) -> Iterator[Rig]:
    """ryll (a subprocess) on ``vm`` through a gated proxy, with a client that subscribed to
    ``events`` before the gate opened."""
    workdir = Path(tempfile.mkdtemp(prefix="ryllctl-"))
    path = workdir / "ctl.sock"
    proc: subprocess.Popen[bytes] | None = None
    proxy = GatedProxy(vm.port)
    try:
        with (workdir / "stdout.txt").open("wb") as out, \
                (workdir / "stderr.txt").open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ryll", "--direct", f"127.0.0.1:{proxy.port}",
                 "--headless", "--duration", "300", "--control-socket", str(path),
                 "--summary-json", str(workdir / "summary.json")],
                stdout=out, stderr=err, cwd=workdir,
            )
        deadline = time.monotonic() + 30
        while not path.exists():
            assert proc.poll() is None, (workdir / "stderr.txt").read_text()
            assert time.monotonic() < deadline, "the control socket never appeared"
            time.sleep(0.02)
        client = Client(path)
        hello = client.line()
        sub = client.result("subscribe", events=events)
        assert sub == {"events": sorted(set(events))}
        proxy.gate.set()  # now ryll may reach the server
        yield Rig(vm, proc, path, client, hello, workdir)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        proxy.close()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    with TestVM(vga="qxl", scene="input", mode="640x480", usb_tablet=True,
                extra_args=SOUND) as vm:
        vm.wait_serial(r"ryll: input device \S+ abs=1", timeout=120)
        vm.wait_serial(r"ryll: input ready", timeout=60)
        with ryll_rig(vm, SUBSCRIBED) as r:
            yield r


def _wait_status(rig: Rig, pred: Callable[[dict[str, Any]], bool],
                 timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = rig.client.result("status")
        if pred(status):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.2)


def test_hello(rig: Rig) -> None:
    h = rig.hello["hello"]
    assert h["protocol"] == "ryll-control" and h["version"] == 1
    assert h["ryll"]
    assert {"status", "send_key", "type", "mouse_move", "mouse_click", "screenshot",
            "clipboard_set", "clipboard_get", "resolution", "subscribe"} <= set(h["commands"])
    assert {"gap", "surface_drawn", "latency", "agent_connected"} <= set(h["events"])


def test_socket_is_private(rig: Rig) -> None:
    st = os.lstat(rig.path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600


def test_status_when_connected(rig: Rig) -> None:
    status = _wait_status(rig, lambda s: bool(s["displays"]) and s["marks"] > 0
                          and s["session"]["mouse_mode"] == "client"
                          and any(c["name"] == "inputs" for c in s["channels"]))
    assert status["session"]["state"] == "connected"
    assert status["session"]["target"]["port"] is not None
    assert [(d["width"], d["height"]) for d in status["displays"]] == [(640, 480)]
    assert {"main", "display", "inputs", "cursor"} <= {c["name"] for c in status["channels"]}
    assert status["agent"]["connected"] is False
    assert {"main:unlinked_channel:playback", "main:unlinked_channel:record"} <= set(
        status["gaps"]["keys"]
    )
    assert status["gaps"]["count"] == len(status["gaps"]["keys"])


def test_gap_and_display_events_were_pushed(rig: Rig) -> None:
    c = rig.client
    gap = c.wait_event(lambda e: e["name"] == "gap"
                       and e["key"] == "main:unlinked_channel:playback")
    assert gap["detail"]
    created = c.wait_event(lambda e: e["name"] == "surface_created" and e["primary"])
    assert (created["width"], created["height"]) == (640, 480)
    c.wait_event(lambda e: e["name"] == "mark")
    c.wait_event(lambda e: e["name"] == "mouse_mode" and e["mode"] == "client")


def test_screenshot_png_matches_screendump(rig: Rig) -> None:
    c = rig.client
    for _attempt in range(20):
        oracle = rig.vm.screendump()
        shot = c.result("screenshot", format="png")
        png = np.asarray(Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB"))
        if png.shape == oracle.shape and np.array_equal(png, oracle):
            break
        time.sleep(0.5)  # the guest was still drawing; look again
    else:
        diff = np.argwhere((png != oracle).any(axis=2)) if png.shape == oracle.shape else None
        pytest.fail(f"screenshot differs from screendump: shape {png.shape} vs {oracle.shape}, "
                    f"{0 if diff is None else len(diff)} pixels")
    assert (shot["width"], shot["height"], shot["display"]) == (640, 480, 0)
    raw = c.result("screenshot", format="rgba")
    rgba = np.frombuffer(base64.b64decode(raw["data"]), np.uint8).reshape(480, 640, 4)
    assert np.array_equal(rgba[..., :3], png)
    assert (rgba[..., 3] == 255).all()
    with_cursor = c.result("screenshot", format="rgba", cursor=True)
    assert (with_cursor["width"], with_cursor["height"]) == (640, 480)
    err = c.call("screenshot", display=3)
    assert err["error"]["code"] == "bad_argument"


def test_type_reaches_the_guest(rig: Rig) -> None:
    off = rig.vm.serial_offset()
    text = "Hello ryll 42!"
    result = rig.client.result("type", text=text, char_delay_ms=10)
    assert result["chars"] == len(text)
    rig.vm.wait_serial(r"ryll: text [^\r\n]*" + re.escape(text) + r"\r?\n", timeout=20,
                       after=off)
    ev = rig.client.wait_event(lambda e: e["name"] == "paste_completed")
    assert ev["chars"] == len(text)


def test_send_key_reaches_the_guest_with_latency_and_draw_events(rig: Rig) -> None:
    c = rig.client
    c.events.clear()
    off = rig.vm.serial_offset()
    assert c.result("send_key", key="b") == {}
    rig.vm.wait_serial(r"ryll: key 48 down\r?\n", timeout=20, after=off)
    rig.vm.wait_serial(r"ryll: key 48 up\r?\n", timeout=20, after=off)
    # Down and up as separate requests.
    off = rig.vm.serial_offset()
    c.result("send_key", key="shift", action="down")
    c.result("send_key", key="c")
    c.result("send_key", key="shift", action="up")
    rig.vm.wait_serial(r"ryll: key 42 up\r?\n", timeout=20, after=off)
    text = rig.vm.serial_text()[off:]
    assert re.search(r"key 42 down.*key 46 down.*key 46 up.*key 42 up", text, re.S), text
    # The key painted a square: a display update, and with it a latency sample.
    lat = c.wait_event(lambda e: e["name"] == "latency")
    assert 0 < lat["latency_ms"] < 5000
    drawn = c.wait_event(lambda e: e["name"] == "surface_drawn")
    assert drawn["updates"] >= 1
    err = c.call("send_key", key="no-such-key")
    assert err["error"]["code"] == "bad_argument"


def test_mouse_in_client_mode(rig: Rig) -> None:
    c = rig.client
    off = rig.vm.serial_offset()
    assert c.result("mouse_move", x=123, y=45) == {"mouse_mode": "client"}
    rig.vm.wait_serial(r"ryll: pointer abs \d+ \d+\r?\n", timeout=20, after=off)

    def spots() -> list[tuple[int, int]]:
        return [(int(m.group(1)), int(m.group(2))) for m in
                re.finditer(r"ryll: pointer abs (\d+) (\d+)", rig.vm.serial_text()[off:])]

    deadline = time.monotonic() + 10
    while not any(abs(x - 123) <= 1 and abs(y - 45) <= 1 for x, y in spots()):
        assert time.monotonic() < deadline, spots()
        time.sleep(0.1)
    off = rig.vm.serial_offset()
    assert c.result("mouse_click", button="right", x=300, y=200) == {}
    rig.vm.wait_serial(r"ryll: button 3 up\r?\n", timeout=20, after=off)
    assert any(abs(x - 300) <= 1 and abs(y - 200) <= 1 for x, y in spots()), spots()
    off = rig.vm.serial_offset()
    c.result("mouse_down", button="left")
    c.result("mouse_up", button="left")
    rig.vm.wait_serial(r"ryll: button 1 up\r?\n", timeout=20, after=off)
    assert "ryll: button 1 down" in rig.vm.serial_text()[off:]


def test_agent_commands_without_an_agent(rig: Rig) -> None:
    c = rig.client
    assert c.call("clipboard_get")["error"]["code"] == "no_agent"
    assert c.call("clipboard_set", text="x")["error"]["code"] == "no_agent"
    assert c.result("resolution", width=800, height=600) == {
        "sent": False, "agent_connected": False,
    }


def test_second_client_is_busy(rig: Rig) -> None:
    other = Client(rig.path)
    try:
        msg = other.line()
        assert msg["error"]["code"] == "busy"
        with pytest.raises(EOFError):
            other.line(5)
    finally:
        other.close()
    assert "result" in rig.client.call("status")


def test_malformed_lines_do_not_hurt_the_session(rig: Rig) -> None:
    c = rig.client
    for line, code in (
        (b"this is not json\n", "bad_json"),
        (b"\xc3\x28\n", "bad_json"),
        (b'{"cmd":"status","x":NaN}\n', "bad_json"),
        (b"[" * 500_000 + b"\n", "bad_json"),
        (b"[]\n", "bad_request"),
        (b'{"cmd":42}\n', "bad_request"),
        (b'{"id":{"x":1},"cmd":"status"}\n', "bad_request"),
        (b'{"cmd":"reboot"}\n', "unknown_command"),
        (b'{"cmd":"mouse_move","x":"1","y":2}\n', "bad_argument"),
        (b'{"cmd":"status","bogus":true}\n', "bad_argument"),
    ):
        c.send_raw(line)
        msg = c.line()
        while "event" in msg:
            msg = c.line()
        assert msg["error"]["code"] == code, (line[:30], msg)
    # A line over 1 MiB: too_large, and ryll closes this client...
    try:
        c.send_raw(b'{"cmd":"type","text":"' + b"x" * (1100 << 10))
    except OSError:
        pass
    while True:
        msg = c.line()
        if "error" in msg:
            break
    assert msg["error"]["code"] == "too_large"
    with pytest.raises((EOFError, ConnectionError)):
        while True:
            c.line(5)
    c.close()
    # ...but the session goes on, and a new client is served.
    deadline = time.monotonic() + 10
    while True:
        rig.client = Client(rig.path)
        first = rig.client.line()
        if "hello" in first:
            break
        rig.client.close()
        assert time.monotonic() < deadline, first
        time.sleep(0.05)
    status = rig.client.result("status")
    assert status["session"]["state"] == "connected"
    assert rig.proc.poll() is None
    assert rig.client.result("screenshot")["width"] == 640


def test_sigterm_ends_with_session_ended_and_removes_the_socket(rig: Rig) -> None:
    c = rig.client
    c.result("subscribe", events=["session_ended"])
    rig.proc.send_signal(signal.SIGTERM)
    ev = c.wait_event(lambda e: e["name"] == "session_ended", timeout=30)
    assert ev["reason"] == "stopped" and ev["exit_code"] == 0
    assert rig.proc.wait(30) == 0, rig.stderr()
    assert not rig.path.exists()
    summary = json.loads((rig.workdir / "summary.json").read_text())
    assert summary["end"]["reason"] == "stopped"


GUEST_TEXT = "hello-from-guest"


def test_agent_through_the_control_socket() -> None:
    """With the test VM's guest agent: agent and clipboard events, clipboard both ways, and a
    resolution change that shows as a new surface."""
    with TestVM(vga="qxl", scene="static", mode="640x480", agent_port=True,
                extra_cmdline=f"ryll.agent=1 ryll.clip={GUEST_TEXT}") as vm:
        vm.wait_serial(r"ryll: agent up", timeout=90)
        vm.wait_serial(r"ryll: mode set 640x480", timeout=90)
        with ryll_rig(vm, ["agent_connected", "clipboard", "surface_created"]) as r:
            c = r.client
            ev = c.wait_event(lambda e: e["name"] == "agent_connected")
            assert ev["connected"] is True
            ev = c.wait_event(lambda e: e["name"] == "clipboard")
            assert ev["text"] == GUEST_TEXT
            assert c.result("clipboard_get", timeout=10) == {"text": GUEST_TEXT}
            off = vm.serial_offset()
            assert c.result("clipboard_set", text="hello-from-control") == {}
            vm.wait_serial(r"ryll: agent clipboard hello-from-control", timeout=30, after=off)
            assert c.result("status")["agent"]["connected"] is True
            assert c.result("resolution", width=800, height=600) == {
                "sent": True, "agent_connected": True,
            }
            vm.wait_serial(r"ryll: agent monitors 800x600", timeout=30, after=off)
            ev = c.wait_event(lambda e: e["name"] == "surface_created"
                              and (e["width"], e["height"]) == (800, 600))
            assert ev["primary"] is True
