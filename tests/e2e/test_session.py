"""ryll against the bundled QEMU test VM: connect, link every channel, answer pings, report."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from ryll.testvm import TestVM, make_tls_dir
from tests.e2e.conftest import error_lines, run_ryll

pytestmark = pytest.mark.e2e

LINKED = {"main", "display", "inputs", "cursor"}


@pytest.fixture(scope="module")
def seabios_vm():
    with TestVM(vga="qxl", scene=None) as vm:
        yield vm


@pytest.fixture(scope="module")
def drawing_vm():
    with TestVM(vga="qxl", scene="static", mode="640x480") as vm:
        vm.wait_frame(1, timeout=90)
        yield vm


def test_headless_seabios_screen(seabios_vm: TestVM, tmp_path: Path) -> None:
    run = run_ryll(
        ["--direct", f"127.0.0.1:{seabios_vm.port}", "--headless", "--duration", "12"], tmp_path
    )
    assert run.returncode == 0, run.stderr
    assert "Gaps:" in run.stdout
    # One stats line at 10 s plus the final one.
    assert len([ln for ln in run.stdout.splitlines() if "Gaps:" in ln]) >= 2
    s = run.summary
    assert s is not None
    assert {c["name"] for c in s["channels"]} == LINKED
    main = next(c for c in s["channels"] if c["name"] == "main")
    # spice-server probes bandwidth with pings right after MAIN_INIT; every one was answered.
    assert main["pings_answered"] >= 1
    assert main["by_message"]["ping"] == main["pings_answered"]
    assert s["end"] == {"reason": "stopped", "message": "duration elapsed", "exit_code": 0}
    assert s["display_marks"] >= 1
    assert s["surfaces"] == [
        {"channel_id": 0, "surface_id": 0, "width": 720, "height": 400, "format": 32,
         "flags": 1, "format_name": "FMT_32_xRGB", "primary": True}
    ]
    assert s["target"]["host"] == "127.0.0.1" and s["target"]["port"] == seabios_vm.port
    assert s["session"]["name"] == "ryll-testvm"  # the VM's -name, via MAIN_NAME
    memory = s["memory"]
    assert memory["limit_bytes"] == 1024 << 20 and memory["refused"] == {}
    assert memory["by_kind"]["surfaces"] == 720 * 400 * 4
    assert memory["used_bytes"] >= 720 * 400 * 4 and memory["peak_bytes"] >= memory["used_bytes"]
    display = next(c for c in s["channels"] if c["name"] == "display")
    assert display["messages_in"] > 0 and display["bytes_in"] > 0
    assert all(":hexdump:" not in k for k in s["gaps"]), s["gaps"]
    assert "ryll: gaps seen:" in run.stdout
    for key in s["gaps"]:
        assert f"  {key} x" in run.stdout


def test_headless_drawing_guest(drawing_vm: TestVM, tmp_path: Path) -> None:
    run = run_ryll(
        ["--direct", f"127.0.0.1:{drawing_vm.port}", "--headless", "--duration", "4"], tmp_path
    )
    assert run.returncode == 0, run.stderr
    s = run.summary
    assert {c["name"] for c in s["channels"]} == LINKED
    primary = [x for x in s["surfaces"] if x["primary"]]
    assert [(x["width"], x["height"]) for x in primary] == [(640, 480)]


def test_pedantic_reports(tmp_path: Path) -> None:
    # A USB redirection channel and the webdav share, which ryll does not speak yet
    # (issue 16), so real gaps (main:unlinked_channel:*) open.
    unspoken = ["-device", "qemu-xhci", "-chardev", "spicevmc,id=usbr0,name=usbredir",
                "-device", "usb-redir,chardev=usbr0",
                "-chardev", "spiceport,id=dav0,name=org.spice-space.webdav.0"]
    reports = tmp_path / "reports"
    with TestVM(vga="qxl", scene=None, extra_args=unspoken) as vm:
        run = run_ryll(
            ["--direct", f"127.0.0.1:{vm.port}", "--headless", "--duration", "3",
             "--pedantic-dir", str(reports)],
            tmp_path,
        )
    assert run.returncode == 0, run.stderr
    assert {"main:unlinked_channel:usbredir", "main:unlinked_channel:webdav"} <= set(
        run.summary["gaps"]
    )
    zips = sorted(reports.glob("ryll-pedantic-*.zip"))
    # One zip per distinct gap key, no more.
    assert len(zips) == len(run.summary["gaps"]) >= 1
    with zipfile.ZipFile(zips[0]) as zf:
        names = set(zf.namelist())
        assert {"metadata.json", "channel-state.json", "traffic.pcap", "session.json",
                "notifications.json", "runtime-metrics.json"} <= names
        meta = json.loads(zf.read("metadata.json"))
        assert meta["target"]["port"] == vm.port and meta["report_type"] == "pedantic"
        assert meta["gap_key"] in run.summary["gaps"]
        assert json.loads(zf.read("channel-state.json")) != {}


def test_url_fetches_vv(seabios_vm: TestVM, tmp_path: Path) -> None:
    vv = f"[virt-viewer]\ntype=spice\nhost=127.0.0.1\nport={seabios_vm.port}\n"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/x-virt-viewer")
            self.end_headers()
            self.wfile.write(vv.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/console.vv"
        run = run_ryll(["--url", url, "--headless", "--duration", "2"], tmp_path)
    finally:
        server.shutdown()
    assert run.returncode == 0, run.stderr
    assert run.summary["target"]["source"] == "url"


# --- passwords --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def password_vm():
    with TestVM(vga="std", scene=None, password="s3cret-ticket") as vm:
        yield vm


def test_password_right(password_vm: TestVM, tmp_path: Path) -> None:
    run = run_ryll(
        ["--direct", f"127.0.0.1:{password_vm.port}", "--headless", "--duration", "2", "-v"],
        tmp_path, password="s3cret-ticket",
    )
    assert run.returncode == 0, run.stderr
    assert {c["name"] for c in run.summary["channels"]} == LINKED
    # Never in a log (even at debug level) or a report.
    assert "s3cret-ticket" not in run.stderr + run.stdout
    assert "s3cret-ticket" not in (tmp_path / "summary.json").read_text()


def test_password_file(password_vm: TestVM, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret-ticket\n")
    run = run_ryll(
        ["--direct", f"127.0.0.1:{password_vm.port}", "--headless", "--duration", "1",
         "--password-file", str(pw)],
        tmp_path,
    )
    assert run.returncode == 0, run.stderr


def test_password_wrong(password_vm: TestVM, tmp_path: Path) -> None:
    run = run_ryll(
        ["--direct", f"127.0.0.1:{password_vm.port}", "--headless", "--duration", "2"],
        tmp_path, password="wrong",
    )
    assert run.returncode == 4
    assert error_lines(run.stderr) == [
        "ryll: error: authentication failed: the server refused the password"
    ]
    assert "Traceback" not in run.stderr


# --- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_setup(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("tls")
    subject = make_tls_dir(base / "server")
    make_tls_dir(base / "other")  # a second, unrelated CA
    # tls-channel=default: every channel must be TLS, so a plain link gets NEED_SECURED.
    with TestVM(vga="qxl", scene=None, tls_dir=base / "server",
                extra_spice=",tls-channel=default") as vm:
        yield vm, base, subject


def _vv(path: Path, vm: TestVM, ca: Path, subject: str | None) -> Path:
    ca_text = ca.read_text().strip().replace("\n", "\\n")
    lines = ["[virt-viewer]", "type=spice", "host=127.0.0.1", f"port={vm.port}",
             f"tls-port={vm.tls_port}", f"ca={ca_text}"]
    if subject is not None:
        lines.append(f"host-subject={subject}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_tls_good_ca_switches_on_need_secured(tls_setup, tmp_path: Path) -> None:
    vm, base, subject = tls_setup
    vv = _vv(tmp_path / "c.vv", vm, base / "server" / "ca-cert.pem", subject)
    run = run_ryll(["--file", str(vv), "--headless", "--duration", "2"], tmp_path)
    assert run.returncode == 0, run.stderr
    chans = run.summary["channels"]
    assert {c["name"] for c in chans} == LINKED
    assert all(c["tls"] for c in chans)
    assert "requires TLS, switching" in run.stderr


def test_tls_hostname_checked_without_subject(tls_setup, tmp_path: Path) -> None:
    vm, base, _ = tls_setup
    vv = _vv(tmp_path / "c.vv", vm, base / "server" / "ca-cert.pem", None)
    run = run_ryll(["--file", str(vv), "--headless", "--duration", "1"], tmp_path)
    assert run.returncode == 0, run.stderr


def test_tls_wrong_ca(tls_setup, tmp_path: Path) -> None:
    vm, base, subject = tls_setup
    vv = _vv(tmp_path / "c.vv", vm, base / "other" / "ca-cert.pem", subject)
    run = run_ryll(["--file", str(vv), "--headless", "--duration", "1"], tmp_path)
    assert run.returncode == 5
    [line] = error_lines(run.stderr)
    assert line.startswith("ryll: error: TLS verification of 127.0.0.1:") and "failed" in line


def test_tls_subject_mismatch(tls_setup, tmp_path: Path) -> None:
    vm, base, _ = tls_setup
    wrong = "C=XX,L=Testville,O=Ryll Test,CN=somebody-else"
    vv = _vv(tmp_path / "c.vv", vm, base / "server" / "ca-cert.pem", wrong)
    run = run_ryll(["--file", str(vv), "--headless", "--duration", "1"], tmp_path)
    assert run.returncode == 5
    [line] = error_lines(run.stderr)
    assert "does not match host-subject" in line


def test_tls_required_but_no_tls_port(tls_setup, tmp_path: Path) -> None:
    vm, _, _ = tls_setup
    run = run_ryll(["--direct", f"127.0.0.1:{vm.port}", "--headless", "--duration", "1"],
                   tmp_path)
    assert run.returncode == 9
    assert error_lines(run.stderr) == [
        "ryll: error: the server requires TLS for the main channel but no TLS port was given"
    ]


# --- the server going away ----------------------------------------------------------------------


def test_server_killed_mid_session(tmp_path: Path) -> None:
    with TestVM(vga="qxl", scene=None) as vm:
        summary = tmp_path / "summary.json"
        proc = subprocess.Popen(
            [sys.executable, "-m", "ryll", "--direct", f"127.0.0.1:{vm.port}", "--headless",
             "--summary-json", str(summary)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().startswith("ryll: connected")
            time.sleep(2)
            vm.kill()
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 7, err
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("ryll: error: the server "), err
    assert "Traceback" not in err
    import json

    data = json.loads(summary.read_text())
    assert data["end"]["reason"] == "server_closed"
    assert data["end"]["exit_code"] == 7
    assert "session ended (server_closed)" in out


def test_unreachable_host(tmp_path: Path) -> None:
    from ryll.testvm import free_port

    run = run_ryll(["--direct", f"127.0.0.1:{free_port()}", "--headless"], tmp_path)
    assert run.returncode == 3
    [line] = error_lines(run.stderr)
    assert line.startswith("ryll: error: cannot connect to 127.0.0.1:")
