"""The ``ryll`` command never loses a result and never shows a traceback: output paths are
checked before connecting, the summary is written however the run ends (a failed connect, a
signal while connecting, a closed stdout), ``--screenshot`` waits a bounded time for a first
picture, ``-q`` is quiet and ``--log-file`` gets everything. Against the test SPICE server
(tests/session/spice_server.py) and listeners that never answer."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.render import builders as B
from tests.session.spice_server import Peer, SpiceServer, main_script, mini

from ryll.cli.main import main
from ryll.protocol.constants import ChannelType, DisplayServer, Ropd, SurfaceFmt
from ryll.session import runner
from ryll.session.target import PASSWORD_ENV


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.chdir(tmp_path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never says a word (a half-open proxy, a hung server)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()
        for conn in held:
            conn.close()


async def _drawing_display(peer: Peer) -> None:
    await peer.send(
        mini(DisplayServer.SURFACE_CREATE, B.surface_create(0, 64, 48, SurfaceFmt.FMT_32_xRGB, 1))
        + mini(DisplayServer.DRAW_FILL, B.draw_fill((0, 0, 64, 48), Ropd.OP_PUT, color=0x336699))
        + mini(DisplayServer.MARK))
    await peer.drain_forever()


async def _blank_display(peer: Peer) -> None:
    await peer.drain_forever()  # links, then never draws


async def _main(peer: Peer) -> None:
    await main_script(peer, ((ChannelType.DISPLAY, 0),))


def ryll_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "ryll", "--headless", *args]


def spawn(*args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    return subprocess.Popen(ryll_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)


# --- output paths are checked first ------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [
        ("--screenshot", "no-such-dir/x.png", "does not exist"),
        ("--summary-json", "no-such-dir/s.json", "does not exist"),
        ("--latency-file", ".", "is a directory"),
        ("--log-file", "no-such-dir/ryll.log", "does not exist"),
    ],
)
def test_output_paths_are_checked_before_connecting(
    flag: str, value: str, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens on the port: a check after connecting would say "cannot connect" (3).
    code = main(["--direct", f"127.0.0.1:{free_port()}", "--headless", flag, value])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"ryll: error: {flag} {value}") and needle in err[0]


def test_unwritable_output_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    code = main(["--direct", "127.0.0.1:1", "--headless", "--screenshot", str(ro / "x.png")])
    assert code == 2 and "not writable" in capsys.readouterr().err


def test_pedantic_dir_is_created_up_front(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    target = tmp_path / "reports" / "deep"
    code = main(["--direct", f"127.0.0.1:{free_port()}", "--headless",
                 "--pedantic-dir", str(target)])
    assert code == 3 and target.is_dir()
    (tmp_path / "file").write_text("x")
    code = main(["--direct", "127.0.0.1:1", "--headless", "--pedantic-dir",
                 str(tmp_path / "file" / "sub")])
    assert code == 2 and "cannot create it" in capsys.readouterr().err


# --- the summary however the run ends ----------------------------------------------------------


def test_summary_for_a_failed_connect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    code = main(["--direct", f"127.0.0.1:{port}", "--headless", "--summary-json", "s.json"])
    assert code == 3
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["state"] == "ended" and s["channels"] == []
    assert s["end"]["reason"] == "error" and s["end"]["exit_code"] == 3
    assert f"127.0.0.1:{port}" in s["end"]["message"]
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if line.startswith("ryll: error:")] == [
        f"ryll: error: {s['end']['message']}"]


@pytest.mark.parametrize(("sig", "why"), [(signal.SIGTERM, "terminated"),
                                          (signal.SIGINT, "interrupted"),
                                          (signal.SIGHUP, "hung up")])
def test_a_signal_while_connecting_ends_cleanly(
    silent_server: int, tmp_path: Path, sig: int, why: str
) -> None:
    summary = tmp_path / "s.json"
    proc = spawn("--direct", f"127.0.0.1:{silent_server}", "--summary-json", str(summary))
    time.sleep(2.0)  # linking: the server took the connection and says nothing
    assert proc.poll() is None
    sent = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=10)
    assert time.monotonic() - sent < 5
    assert proc.returncode == 130, err.decode()
    assert b"Traceback" not in err
    s = json.loads(summary.read_text())
    assert s["end"]["reason"] == "stopped" and why in s["end"]["message"]
    assert err.decode().strip().splitlines()[-1] == f"ryll: error: {s['end']['message']}"


def test_sighup_while_connected_ends_with_the_summary(tmp_path: Path) -> None:
    summary = tmp_path / "s.json"
    with SpiceServer({ChannelType.MAIN: _main, ChannelType.DISPLAY: _drawing_display}) as server:
        proc = spawn("--direct", f"127.0.0.1:{server.port}", "--summary-json", str(summary))
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(b"ryll: connected to ")
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err.decode()
    s = json.loads(summary.read_text())
    assert s["end"] == {"reason": "stopped", "message": "hung up", "exit_code": 0}


def test_a_closed_stdout_loses_nothing(tmp_path: Path) -> None:
    """``ryll ... | head -1``: the reader goes after the first line."""
    summary, shot = tmp_path / "s.json", tmp_path / "shot.png"
    with SpiceServer({ChannelType.MAIN: _main, ChannelType.DISPLAY: _drawing_display}) as server:
        proc = spawn("--direct", f"127.0.0.1:{server.port}", "--duration", "2",
                     "--summary-json", str(summary), "--screenshot", str(shot))
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith(b"ryll: connected to ")
        proc.stdout.close()
        err = proc.stderr.read()
        proc.wait(timeout=20)
    assert proc.returncode == 0, err.decode()
    assert b"BrokenPipe" not in err and b"Traceback" not in err and b"Exception" not in err
    assert json.loads(summary.read_text())["end"]["message"] == "duration elapsed"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- --screenshot waits for a first picture, boundedly ------------------------------------------


def test_screenshot_without_a_picture_waits_then_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "READY_TIMEOUT_S", 1.0)
    with SpiceServer({ChannelType.MAIN: _main, ChannelType.DISPLAY: _blank_display}) as server:
        started = time.monotonic()
        code = main(["--direct", f"127.0.0.1:{server.port}", "--headless", "--duration", "0.5",
                     "--screenshot", "x.png", "--summary-json", "s.json"])
        took = time.monotonic() - started
    assert code == 10
    assert 1.4 <= took < 6
    assert not (tmp_path / "x.png").exists()
    err = [line for line in capsys.readouterr().err.splitlines()
           if line.startswith("ryll: error:")]
    assert len(err) == 1 and "--screenshot: no picture arrived" in err[0]
    assert (tmp_path / "s.json").exists()


def test_screenshot_waits_past_the_duration_for_a_late_picture(tmp_path: Path) -> None:
    async def late_display(peer: Peer) -> None:
        await asyncio_sleep(1.5)
        await _drawing_display(peer)

    with SpiceServer({ChannelType.MAIN: _main, ChannelType.DISPLAY: late_display}) as server:
        code = main(["--direct", f"127.0.0.1:{server.port}", "--headless", "--duration", "0.3",
                     "--screenshot", "x.png"])
    assert code == 0
    assert (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"


async def asyncio_sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


# --- what it prints -----------------------------------------------------------------------------


def test_quiet_prints_nothing_and_log_file_gets_everything(tmp_path: Path) -> None:
    log = tmp_path / "ryll.log"
    with SpiceServer({ChannelType.MAIN: _main, ChannelType.DISPLAY: _drawing_display}) as server:
        quiet = subprocess.run(ryll_cmd("--direct", f"127.0.0.1:{server.port}", "--duration",
                                        "1", "-q", "--log-file", str(log)),
                               capture_output=True, timeout=30)
        plain = subprocess.run(ryll_cmd("--direct", f"127.0.0.1:{server.port}", "--duration",
                                        "1"), capture_output=True, timeout=30, text=True)
    assert quiet.returncode == 0 and quiet.stdout == b"" and quiet.stderr == b""
    text = log.read_text()
    assert "DEBUG" in text and "linked main channel 0" in text
    assert text.splitlines()[0][:4].isdigit()  # timestamped
    assert plain.returncode == 0
    # Default: plain ryll: lines, no timestamps, and one final stats line.
    assert all(line.startswith("ryll: ") for line in plain.stderr.splitlines()), plain.stderr
    assert "ryll: linked main channel 0" in plain.stderr.splitlines()
    stats = [line for line in plain.stdout.splitlines() if line.startswith("ryll: t=")]
    assert len(stats) == 1


def test_the_insecure_keyboard_notice_is_info(caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import struct

    from ryll.channels.context import ChannelContext
    from ryll.channels.inputs import InputsChannel
    from ryll.protocol.constants import BaseServer

    text = b"keyboard channel is insecure\0"
    body = struct.pack("<QIIII", 0, 1, 0, 0, len(text)) + text  # severity 1: WARN
    ch = InputsChannel(0, ChannelContext())
    with caplog.at_level(logging.DEBUG):
        for message in ch.feed(mini(BaseServer.NOTIFY, body)):
            ch.handle(message, 0.0)
    [record] = [r for r in caplog.records if "insecure" in r.getMessage()]
    assert record.levelno == logging.INFO


# --- the Rust ryll's flags ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--web-port", "8080"], "--web-port needs the viewer: drop --headless or add --web"),
        (["--web", "--web-port", "70000"], "--web-port must be 0..65535"),
        (["--web", "--web-tls-cert", "c.pem"], "--web-tls-cert and --web-tls-key go together"),
        (["--web", "--web-tls-cert", "absent.pem", "--web-tls-key", "absent.pem"],
         "--web-tls-cert: absent.pem: no such file"),
        (["--capture", "/dev/null/d"], "--capture /dev/null/d: cannot create it"),
        (["--usb-disk", "x.img"], "--usb-disk (USB redirection) is not built yet"),
        (["--share-dir", "d"], "--share-dir (folder sharing) is not built yet"),
        (["--bug-report-dir", "/dev/null/d"], "--bug-report-dir /dev/null/d: cannot create"),
        (["--auto-snapshot-interval", "0"], "--auto-snapshot-interval must be positive"),
        (["--auto-snapshot-cap", "3"], "--auto-snapshot-cap needs --auto-snapshot-interval"),
        (["--auto-snapshot-interval", "5", "--auto-snapshot-cap", "0"],
         "--auto-snapshot-cap must be positive"),
        (["--traffic-ring-mib", "-1"], "--traffic-ring-mib must be 0 or more"),
        (["--auto-snapshot-budget-mib", "3"],
         "--auto-snapshot-budget-mib needs --auto-snapshot-interval"),
        (["--monitors", "2"], "--monitors"),
        (["--monitors", "0"], "--monitors must be 1..16"),
        (["--glz-dictionary-cap-mib", "0"], "--glz-dictionary-cap-mib must be positive"),
        (["--preferred-compression", "zip"], "unknown compression 'zip'"),
        (["--host-subject", "garbage"], "--host-subject"),
        (["--ca-file", "absent.pem"], "cannot read CA file"),
    ],
)
def test_flags_not_built_yet_or_wrong_are_one_line(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--direct", "127.0.0.1:1", "--headless", *args])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err


def test_rust_spellings_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    from ryll.cli.main import build_parser

    args = build_parser().parse_args([
        "--direct", "h:1", "--headless", "--preferred-compression", "auto-glz",
        "--enable-paste-as-keystrokes", "--no-obey-guest-size", "--experimental-h264",
        "--no-h264", "--glz-dictionary-cap-mib", "64", "--monitors", "1", "--reconnect",
        "-v"])
    assert args.preferred_compression == "auto_glz" and args.no_h264 and args.reconnect
    assert args.glz_dictionary_cap_mib == 64


def test_no_h264_drops_only_the_h264_cap() -> None:
    from ryll.channels.context import ChannelContext, DisplayOptions
    from ryll.channels.display import DisplayChannel
    from ryll.protocol.constants import DisplayCap, VideoCodecType

    every = DisplayChannel.caps_for(ChannelContext())
    without = DisplayChannel.caps_for(
        ChannelContext(display=DisplayOptions(excluded_codecs=(VideoCodecType.H264,))))
    if DisplayCap.CODEC_H264 not in every:
        pytest.skip("no H.264 decoder in this PyAV")
    assert set(every) - set(without) == {DisplayCap.CODEC_H264}
