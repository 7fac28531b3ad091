"""The control socket against the Rust ryll's specification (shakenfist/ryll
``docs/control-socket-protocol.md``, protocol 1.2), through ``ctlspec_client``, a client written
from that document alone.

ryll is started the way kerbside's tests start the Rust ryll, ``ryll --headless --file x.vv
--control-socket PATH``, against the test VM's ``input`` scene with its guest agent (so ``paste``
has the agent the spec requires and the guest reports every key on its serial port). One VM
and one ryll serve the module; the tests run in file order and the last one ends ryll with
SIGTERM. Each assertion names the spec section it checks.
"""

from __future__ import annotations

import io
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ryll.testvm import TestVM
from tests.e2e.ctlspec_client import Busy, Message, SpecClient

pytestmark = pytest.mark.e2e

#: Spec, "Hello handshake": the v1.0 verbs and the v1.0 + v1.1 events (``digest_updated`` is
#: feature-gated, so not required).
V1_METHODS = {"hello", "status", "send_key", "paste", "screenshot", "subscribe", "unsubscribe"}
V1_EVENTS = {"latency", "agent_connected", "paste_completed", "paste_failed", "dropped",
             "surface_drawn"}
W, H = 640, 480
#: Linux keycodes the guest reports for the AT set 1 codes the tests send.
KEY_ENTER, KEY_A, KEY_LEFT = 28, 30, 105


def _vv_file(path: Path, port: int) -> Path:
    path.write_text(f"[virt-viewer]\ntype=spice\nhost=127.0.0.1\nport={port}\n")
    return path


def _start_ryll(vv: Path, sock: Path, workdir: Path) -> subprocess.Popen[bytes]:
    with (workdir / "stdout.txt").open("wb") as out, (workdir / "stderr.txt").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "ryll", "--headless", "--file", str(vv),
             "--control-socket", str(sock)],
            stdout=out, stderr=err, cwd=workdir,
        )


@dataclass
class Rig:
    vm: TestVM
    proc: subprocess.Popen[bytes]
    path: Path
    workdir: Path
    clients: list[SpecClient] = field(default_factory=list)
    #: When ``main`` subscribed to ``latency``.
    latency_since: float = 0.0

    def stderr(self) -> str:
        return (self.workdir / "stderr.txt").read_text(errors="replace")

    def connect(self, version: str = "1.2") -> SpecClient:
        """A new connection that completed hello (retrying while the server says busy)."""
        c = SpecClient.connect(str(self.path), protocol_version=version)
        self.clients.append(c)
        return c

    def fresh(self) -> SpecClient:
        """A new connection that has sent nothing; one that the server refused as busy (its
        previous client's close not yet seen) is retried."""
        deadline = time.monotonic() + 10
        while True:
            c = SpecClient(str(self.path))
            try:
                c.pump(0.3)  # "busy" is written at accept, before any request
            except Busy:
                c.close()
                assert time.monotonic() < deadline, "the server stayed busy"
                time.sleep(0.25)
                continue
            except EOFError:
                c.close()
                assert time.monotonic() < deadline, "the server kept closing new connections"
                time.sleep(0.25)
                continue
            self.clients.append(c)
            return c


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    workdir = Path(tempfile.mkdtemp(prefix="ryllspec-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        with TestVM(vga="qxl", scene="input", mode=f"{W}x{H}", agent_port=True,
                    extra_cmdline="ryll.agent=1") as vm:
            vm.wait_serial(r"ryll: agent up", timeout=120)
            vm.wait_serial(r"ryll: input ready", timeout=60)
            path = workdir / "ctl.sock"
            proc = _start_ryll(_vv_file(workdir / "x.vv", vm.port), path, workdir)
            deadline = time.monotonic() + 60
            while not path.exists():
                assert proc.poll() is None, (workdir / "stderr.txt").read_text()
                assert time.monotonic() < deadline, "the control socket never appeared"
                time.sleep(0.02)
            r = Rig(vm, proc, path, workdir)
            yield r
            for c in r.clients:
                c.close()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def main(rig: Rig) -> SpecClient:
    """The module's long-lived client, subscribed to ``latency`` from its first moment (a
    server pings rarely)."""
    c = rig.connect()
    assert c.subscribe("latency") == ["latency"]
    rig.latency_since = time.monotonic()
    return c


def _key_seen(vm: TestVM, code: int, state: str, after: int) -> int:
    return vm.wait_serial(rf"ryll: key {code} {state}\r?\n", timeout=20, after=after)


def _wait_surfaces(c: SpecClient, timeout: float = 60.0) -> Message:
    """Spec, status: "surfaces ... May be empty while the session is still initialising"."""
    deadline = time.monotonic() + timeout
    while True:
        status = c.status()
        if status["surfaces"]:
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.2)


# -- Transport ---------------------------------------------------------------------------------


class SilentServer:
    """A TCP listener that accepts connections and never says a word."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.accepted = threading.Event()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self._conns.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self.listener.close()
        for c in self._conns:
            c.close()


def test_no_socket_while_the_spice_server_never_answers(tmp_path: Path) -> None:
    """Spec, Transport: the socket belongs to a SPICE session ("When the SPICE session ends
    ... Ryll closes the listening socket and unlinks the socket file"): while the server has
    accepted TCP but never answered, there is no session, and no socket file."""
    server = SilentServer()
    path = tmp_path / "ctl.sock"
    proc = _start_ryll(_vv_file(tmp_path / "x.vv", server.port), path, tmp_path)
    try:
        assert server.accepted.wait(30), "ryll never connected"
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            assert not path.exists(), "the control socket appeared with no SPICE session"
            assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        server.close()
    assert not path.exists()


def test_socket_file_is_mode_0600(rig: Rig) -> None:
    """Spec, Transport: "Sets the file mode to 0600 (owner read/write only)"."""
    st = os.lstat(rig.path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600


# -- Hello handshake ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_hello_accepts_every_1_x(rig: Rig, version: str) -> None:
    """Spec, Hello handshake: "Minor version mismatches are accepted in both directions"; the
    result names the server, its version and its catalogue."""
    c = rig.fresh()
    try:
        resp = c.request("hello", {"client_name": f"spec-{version}",
                                   "protocol_version": version}, id=f"hello-{version}")
        assert resp.id == f"hello-{version}"
        result = resp.result
        assert result["server_name"] == "ryll"
        major, minor = result["protocol_version"].split(".")
        # "In v1.x this is 1.2"; a client "should not compare for exact equality", and one
        # needing the extended-key fix "should require protocol_version >= 1.2".
        assert major == "1" and int(minor) >= 2, result
        assert V1_METHODS <= set(result["supported_methods"]), result
        assert V1_EVENTS <= set(result["supported_events"]), result
        assert all(isinstance(x, str) for x in
                   result["supported_methods"] + result["supported_events"])
        assert c.status()["spice_connected"] is True
    finally:
        c.close()


@pytest.mark.parametrize("version", ["2.0", "0.9"])
def test_hello_other_major_is_refused_and_closed(rig: Rig, version: str) -> None:
    """Spec, "Hello response — version mismatch": protocol_version_mismatch, then "The client
    will see EOF immediately after reading that line"."""
    c = rig.fresh()
    try:
        resp = c.hello(version)
        assert resp.id == 1
        assert resp.code == "protocol_version_mismatch"
        assert c.wait_eof(10) == []
    finally:
        c.close()


def test_hello_client_name_is_not_validated(rig: Rig) -> None:
    """Spec, Hello request: ``client_name`` is "Used in server logs; not validated"."""
    c = rig.fresh()
    try:
        assert c.hello("1.2", "x" * 1000).ok
    finally:
        c.close()


def test_request_before_hello_is_no_hello_yet_and_recoverable(rig: Rig) -> None:
    """Spec, Ordering rule: any request before hello gets no_hello_yet, and "the connection
    stays open"; a hello then works."""
    c = rig.fresh()
    try:
        r1 = c.request("status", id=7)
        assert (r1.id, r1.code) == (7, "no_hello_yet")
        r2 = c.request("screenshot", {"format": "png"}, id="early")
        assert (r2.id, r2.code) == ("early", "no_hello_yet")
        assert c.hello("1.2").ok
        assert c.status()["spice_connected"] is True
    finally:
        c.close()


def test_any_request_before_hello_is_no_hello_yet(rig: Rig) -> None:
    """Spec, Ordering rule: "If the server receives any request other than hello before a
    successful hello response has been sent, it responds immediately with no_hello_yet"."""
    c = rig.fresh()
    try:
        assert c.request("no_such_method", id=8).code == "no_hello_yet"
        assert c.request("send_key", {"scancode": "x", "state": "press"}).code == "no_hello_yet"
        assert c.request("status", []).code == "no_hello_yet"
    finally:
        c.close()


def test_subscriptions_end_with_the_connection(rig: Rig) -> None:
    """Spec, Subscription semantics: "When the client disconnects, its subscription state is
    discarded. There is no persistent subscription across reconnections"; and after a
    client's EOF ryll "resumes listening for the next client" (worked example)."""
    first = rig.connect()
    try:
        assert first.subscribe("surface_drawn") == ["surface_drawn"]
        assert first.send_key(0x1E, "press").ok
        first.wait_event("surface_drawn", 20)
    finally:
        first.close()
    second = rig.connect()
    try:
        off = rig.vm.serial_offset()
        assert second.send_key(0x1E, "press").ok
        _key_seen(rig.vm, KEY_A, "up", off)
        second.pump(1.5)
        assert second.all_events == []
    finally:
        second.close()


def test_disconnect_cancels_a_paste(rig: Rig) -> None:
    """Spec, paste: "If the client disconnects while a paste is in progress, Ryll cancels the
    outstanding paste task and stops generating synthetic key events"."""
    n, delay_ms, key_q = 40, 50, 16
    c = rig.connect()
    off = rig.vm.serial_offset()
    try:
        assert c.paste("q" * n, delay_ms).result == {}
        rig.vm.wait_serial(rf"ryll: key {key_q} down\r?\n", timeout=20, after=off)
    finally:
        c.close()
    time.sleep(n * delay_ms / 1000 + 1)  # the whole paste's time, and a margin
    downs = rig.vm.serial_text()[off:].count(f"ryll: key {key_q} down")
    assert 1 <= downs < n // 2, downs
    with rig.connect() as tidy:  # a key cancelled between its down and up stays held
        assert tidy.send_key(0x10, "up").ok


# -- Concurrency -------------------------------------------------------------------------------


def test_second_connection_is_busy(rig: Rig, main: SpecClient) -> None:
    """Spec, Concurrency: a second connection gets one ``busy`` line with no ``id`` and is
    closed; "The existing client is unaffected"."""
    for _ in range(2):
        other = SpecClient(str(rig.path))
        try:
            line = other.read_message(10)
            assert "id" not in line, line
            assert line["ok"] is False and line["error"]["code"] == "busy", line
            assert other.wait_eof(10) == []
        finally:
            other.close()
    assert main.status()["spice_connected"] is True


# -- Verbs -------------------------------------------------------------------------------------


def test_status_fields(main: SpecClient) -> None:
    """Spec, status: spice_connected, agent_connected, surfaces of {channel_id, surface_id,
    width, height}."""
    status = _wait_surfaces(main)
    assert status["spice_connected"] is True
    assert isinstance(status["agent_connected"], bool)
    for s in status["surfaces"]:
        assert {"channel_id", "surface_id", "width", "height"} <= set(s), s
        assert all(type(s[k]) is int and s[k] >= 0 for k in
                   ("channel_id", "surface_id", "width", "height")), s
    primary = [s for s in status["surfaces"] if s["surface_id"] == 0]
    assert [(s["width"], s["height"]) for s in primary] == [(W, H)], status


def test_send_key_plain_scancode(rig: Rig, main: SpecClient) -> None:
    """Spec, send_key: ``press`` "sends a down event immediately followed by an up event";
    ``down`` and ``up`` one each; "Result on success: {}"."""
    off = rig.vm.serial_offset()
    resp = main.send_key(28, "press")
    assert resp.result == {}
    after = _key_seen(rig.vm, KEY_ENTER, "down", off)
    _key_seen(rig.vm, KEY_ENTER, "up", after)
    off = rig.vm.serial_offset()
    assert main.send_key(0x1E, "down").result == {}
    after = _key_seen(rig.vm, KEY_A, "down", off)
    # "A client that passes a logical code with the release bit already set for up — 0x9E
    # rather than 0x1E — still produces the identical wire value".
    assert main.send_key(0x9E, "up").result == {}
    _key_seen(rig.vm, KEY_A, "up", after)


def test_send_key_extended_scancode(rig: Rig, main: SpecClient) -> None:
    """Spec, send_key (1.2): 0xE04B is left arrow, "transmitted as E0 4B", the break bit on
    the scancode byte for up; 0xE0CB for up is the same."""
    off = rig.vm.serial_offset()
    assert main.send_key(0xE04B, "down").result == {}
    after = _key_seen(rig.vm, KEY_LEFT, "down", off)
    assert main.send_key(0xE04B, "up").result == {}
    after = _key_seen(rig.vm, KEY_LEFT, "up", after)
    assert main.send_key(0xE04B, "press").result == {}
    after = _key_seen(rig.vm, KEY_LEFT, "down", after)
    after = _key_seen(rig.vm, KEY_LEFT, "up", after)
    assert main.send_key(0xE04B, "down").result == {}
    after = _key_seen(rig.vm, KEY_LEFT, "down", after)
    assert main.send_key(0xE0CB, "up").result == {}
    _key_seen(rig.vm, KEY_LEFT, "up", after)
    # Nothing but left-arrow reached the guest (a swapped 4B E0 would be keypad 4, code 75).
    text = rig.vm.serial_text()[off:]
    assert set(re.findall(r"ryll: key (\d+) ", text)) == {str(KEY_LEFT)}, text


def test_send_key_errors(main: SpecClient) -> None:
    """Spec, send_key: a state other than down/up/press is ``bad_state``; a missing or
    mistyped field is ``bad_params`` (Error model); "Do not send a pre-swapped wire value",
    "which 1.2 rejects"."""
    resp = main.send_key(28, "sideways")
    assert resp.code == "bad_state", resp
    assert isinstance(resp.message, str)
    assert main.request("send_key", {"state": "press"}).code == "bad_params"
    assert main.request("send_key", {"scancode": "28", "state": "press"}).code == "bad_params"
    assert main.request("send_key", {"scancode": 0x10000, "state": "press"}).code == "bad_params"
    assert main.request("send_key", {"scancode": -1, "state": "press"}).code == "bad_params"
    pre_swapped = main.send_key(0x4BE0, "press")
    assert not pre_swapped.ok, pre_swapped


def test_send_key_without_state_is_bad_params(main: SpecClient) -> None:
    """Spec, send_key params: ``state`` is one of down, up, press (no default, unlike paste's
    char_delay_ms or screenshot's fields); Error model: bad_params "The params object is
    missing a required field"."""
    assert main.request("send_key", {"scancode": 28}).code == "bad_params"


def test_paste_empty_text_completes(main: SpecClient) -> None:
    """Spec, paste: ``text`` is "The text to type" (no lower bound); its outcome is an event."""
    main.subscribe("paste_completed", "paste_failed")
    assert main.paste("", id="empty").result == {}
    assert main.wait_event("paste_completed", 10) == {"request_id": "empty", "chars_sent": 0}


def test_paste_char_delay_is_any_u32(main: SpecClient) -> None:
    """Spec, paste params: ``char_delay_ms`` is "u32 or null"."""
    resp = main.paste("", 5000, id="slow")
    assert resp.ok, resp
    assert main.wait_event("paste_completed", 10)["request_id"] == "slow"


def test_common_errors(main: SpecClient) -> None:
    """Spec, Error model: ``unknown_method`` for a verb the server does not know, ``bad_params``
    for params that are not an object; each error has a code and a message; the connection
    goes on."""
    resp = main.request("reboot_the_world", id="u1")
    assert (resp.id, resp.code) == ("u1", "unknown_method")
    assert main.request("status", []).code == "bad_params"
    assert main.request("subscribe", {"events": "latency"}).code == "bad_params"
    assert main.status()["spice_connected"] is True


def test_pipelined_requests_are_matched_by_id(main: SpecClient) -> None:
    """Spec, Request: ids are "Caller-chosen correlation token[s]" unique "among in-flight
    requests", integer or string, echoed in "the matching response"."""
    ids: list[int | str] = [
        main.submit("status", id="s-1"),
        main.submit("screenshot", {"format": "rgba"}, id=2),
        main.submit("no_such_verb", id=3),
        main.submit("unsubscribe", {"events": []}, id="u-4"),
    ]
    got = {rid: main.response(rid) for rid in reversed(ids)}
    assert [type(got[rid].id) for rid in ids] == [str, int, int, str]
    assert got["s-1"].result["spice_connected"] is True
    assert got[2].result["format"] == "rgba"
    assert got[3].code == "unknown_method"
    assert got["u-4"].result == {"unsubscribed": []}


def test_paste_string_id_and_paste_completed(rig: Rig, main: SpecClient) -> None:
    """Spec, paste: queued at once (``{}``), then ``paste_completed`` whose ``request_id``
    "matches the id of the paste request" — "Type matches what the client sent" — after the
    response ("This is guaranteed")."""
    deadline = time.monotonic() + 30
    while not (status := main.status())["agent_connected"]:
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert set(main.subscribe("paste_completed", "paste_failed")) == {
        "paste_completed", "paste_failed"}
    off = rig.vm.serial_offset()
    before = len(main.all_events)
    resp = main.paste("hunter2", 20, id="paste-1")
    assert resp.id == "paste-1" and resp.result == {}
    assert not [e for e in main.all_events[before:] if e["event"].startswith("paste_")]
    done = main.wait_event("paste_completed", 30)
    assert done == {"request_id": "paste-1", "chars_sent": 7}
    rig.vm.wait_serial(r"ryll: text [^\r\n]*hunter2\r?\n", timeout=20, after=off)
    # char_delay_ms null: "Defaults to 10 ms if omitted or null"; an integer id comes back
    # an integer.
    off = rig.vm.serial_offset()
    rid = main.submit("paste", {"text": "ok", "char_delay_ms": None}, id=4242)
    assert main.response(rid).result == {}
    done = main.wait_event("paste_completed", 30)
    assert done["request_id"] == 4242 and type(done["request_id"]) is int
    assert done["chars_sent"] == 2
    rig.vm.wait_serial(r"ryll: text [^\r\n]*hunter2ok\r?\n", timeout=20, after=off)


def test_paste_unrepresentable_text_is_paste_failed(main: SpecClient) -> None:
    """Spec, paste: "Characters that cannot be represented will cause a paste_failed event"
    (the request itself is queued: its only verb error is agent_not_connected)."""
    resp = main.paste("a\u2022b", id="bad-paste")
    assert resp.result == {}
    failed = main.wait_event("paste_failed", 30)
    assert failed["request_id"] == "bad-paste"
    assert isinstance(failed["reason"], str)
    main.unsubscribe("paste_completed", "paste_failed")


def _still_screenshot(rig: Rig, c: SpecClient) -> tuple[Message, np.ndarray]:
    """A png screenshot equal to QMP screendump, retried while the guest still draws."""
    png = oracle = np.zeros((0,))
    for _attempt in range(20):
        oracle = rig.vm.screendump()
        result, data = c.screenshot_bytes(fmt="png")
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        png = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        if png.shape == oracle.shape and np.array_equal(png, oracle):
            return result, png
        time.sleep(0.5)
    diff = np.argwhere((png != oracle).any(axis=2)) if png.shape == oracle.shape else None
    pytest.fail(f"screenshot differs from screendump: shape {png.shape} vs {oracle.shape}, "
                f"{'?' if diff is None else len(diff)} pixels")


def test_screenshot_png_and_rgba_match_screendump(rig: Rig, main: SpecClient) -> None:
    """Spec, screenshot: a complete PNG file, or "a raw byte array in row-major order, 4
    bytes per pixel (R, G, B, A), top-left origin"; format echoed; surface 0 the default."""
    result, png = _still_screenshot(rig, main)
    assert (result["width"], result["height"], result["format"]) == (W, H, "png")
    raw_result, raw = main.screenshot_bytes(0, "rgba")
    assert (raw_result["width"], raw_result["height"], raw_result["format"]) == (W, H, "rgba")
    assert len(raw) == W * H * 4
    rgba = np.frombuffer(raw, np.uint8).reshape(H, W, 4)
    assert np.array_equal(rgba[..., :3], png)
    # Both defaults, spelt null: "Defaults to surface 0" and "png (default)".
    nulls = main.request("screenshot", {"surface_id": None, "format": None}).result
    assert (nulls["width"], nulls["height"], nulls["format"]) == (W, H, "png")


def test_screenshot_errors(main: SpecClient) -> None:
    """Spec, screenshot: ``no_such_surface`` and ``unsupported_format``."""
    assert main.screenshot(12345, "png").code == "no_such_surface"
    assert main.screenshot(0, "bmp").code == "unsupported_format"
    assert main.screenshot(None, "jpeg").code == "unsupported_format"


# -- Subscriptions and events ------------------------------------------------------------------


def test_subscribe_unknown_names_are_silently_ignored(main: SpecClient) -> None:
    """Spec, subscribe/unsubscribe: unknown names "are silently ignored and will not appear in
    the subscribed result"; unsubscribing a name not subscribed "is a no-op and is not an
    error"; ``digest_updated`` only when advertised."""
    assert main.hello_result is not None
    advertised = set(main.hello_result["supported_events"])
    got = main.subscribe("surface_drawn", "no_such_event", "digest_updated")
    want = {"surface_drawn"} | ({"digest_updated"} & advertised)
    assert set(got) == want, got
    assert set(main.subscribe("surface_drawn")) <= {"surface_drawn"}  # already: a no-op
    assert main.unsubscribe("no_such_event", "agent_connected") == []
    assert set(main.unsubscribe("surface_drawn", "digest_updated")) == want
    assert main.unsubscribe("surface_drawn") == []


def test_surface_drawn_only_while_subscribed(rig: Rig, main: SpecClient) -> None:
    """Spec, surface_drawn (1.1): one event per draw, with display_channel_id, surface_id,
    produced_at_secs and wallclock_us; "A client that has not called subscribe receives no
    events"; after unsubscribe "matching events will no longer be delivered"."""
    main.pump(0.3)
    main.take_events()
    off = rig.vm.serial_offset()
    main.send_key(0x1E, "press")
    _key_seen(rig.vm, KEY_A, "up", off)
    main.pump(1.5)
    assert main.take_events("surface_drawn") == []

    assert main.subscribe("surface_drawn") == ["surface_drawn"]
    t0 = time.time()
    main.send_key(0x1E, "press")
    drawn = main.wait_event("surface_drawn", 20)
    assert type(drawn["display_channel_id"]) is int and drawn["display_channel_id"] >= 0
    assert drawn["surface_id"] == 0
    assert isinstance(drawn["produced_at_secs"], int | float) and drawn["produced_at_secs"] >= 0
    assert type(drawn["wallclock_us"]) is int
    assert abs(drawn["wallclock_us"] / 1e6 - t0) < 60, (drawn, t0)

    assert main.unsubscribe("surface_drawn") == ["surface_drawn"]
    main.pump(0.5)
    main.take_events()
    off = rig.vm.serial_offset()
    main.send_key(0x1E, "press")
    _key_seen(rig.vm, KEY_A, "up", off)
    main.pump(1.5)
    assert main.take_events("surface_drawn") == []


def test_latency_events(rig: Rig, main: SpecClient) -> None:
    """Spec, latency: "Emitted once per server PING on the SPICE main channel", with
    sample_ms (non-negative) and wallclock_us. Skipped when the server sent no PING in the
    ~20 s this client has been subscribed."""
    try:
        lat = main.wait_event("latency", max(0.5, 20 - (time.monotonic() - rig.latency_since)))
    except TimeoutError:
        pytest.skip("the server sent no PING while subscribed")
    assert isinstance(lat["sample_ms"], int | float) and lat["sample_ms"] >= 0
    assert type(lat["wallclock_us"]) is int
    assert abs(lat["wallclock_us"] / 1e6 - time.time()) < 120


# -- Session end -------------------------------------------------------------------------------


def test_sigterm_closes_the_client_and_removes_the_socket(rig: Rig, main: SpecClient) -> None:
    """Spec, Transport: "When the SPICE session ends ... Ryll closes the listening socket and
    unlinks the socket file": the client sees EOF."""
    main.subscribe("surface_drawn", "latency", "agent_connected")
    rig.proc.send_signal(signal.SIGTERM)
    seen: list[Any] = main.wait_eof(30)
    assert all("event" in m for m in seen), seen
    assert rig.proc.wait(30) == 0, rig.stderr()
    assert not rig.path.exists()
    assert "Traceback" not in rig.stderr()


def test_server_going_away_closes_the_client_and_removes_the_socket(rig: Rig) -> None:
    """Spec, Transport: "When the SPICE session ends (normally or on error), Ryll closes the
    listening socket and unlinks the socket file": here the SPICE server dies under a second
    ryll."""
    workdir = rig.workdir / "second"
    workdir.mkdir()
    path = workdir / "ctl.sock"
    proc = _start_ryll(_vv_file(workdir / "x.vv", rig.vm.port), path, workdir)
    try:
        deadline = time.monotonic() + 60
        while not path.exists():
            assert proc.poll() is None, (workdir / "stderr.txt").read_text()
            assert time.monotonic() < deadline, "the control socket never appeared"
            time.sleep(0.02)
        with SpecClient.connect(str(path)) as c:
            assert c.status()["spice_connected"] is True
            rig.vm.kill()
            c.wait_eof(30)
        proc.wait(30)
        assert not path.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
