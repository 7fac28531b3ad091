"""Connecting as virt-viewer does, against the test VM: a .vv ``proxy=`` (HTTP CONNECT with
credentials, tests/connect_proxy.py) and ``secure-channels=``, ``--ca-file`` and
``--host-subject`` with a TLS-only ``--direct HOST::TLS_PORT``, ``--password-file`` over the
.vv password, and ``--reconnect`` across a QEMU restart."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ryll.testvm import TestVM, make_tls_dir
from tests.connect_proxy import ConnectProxy, Forwarder
from tests.e2e.conftest import error_lines, run_ryll
from tests.e2e.ctlspec_client import SpecClient

pytestmark = pytest.mark.e2e

PASSWORD = "vm-s3cret"
PROXY_PASSWORD = "pr0xy-s3cret"


@pytest.fixture(scope="module")
def tls_vm(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("tls")
    subject = make_tls_dir(base / "server")
    make_tls_dir(base / "other")
    with TestVM(vga="qxl", scene=None, tls_dir=base / "server", password=PASSWORD) as vm:
        yield vm, base, subject


def _vv(path: Path, vm: TestVM, base: Path, **keys: str) -> Path:
    ca = (base / "server" / "ca-cert.pem").read_text().strip().replace("\n", "\\n")
    lines = ["[virt-viewer]", "type=spice", "host=127.0.0.1", f"port={vm.port}",
             f"tls-port={vm.tls_port}", f"ca={ca}"]
    lines += [f"{k.replace('_', '-')}={v}" for k, v in keys.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _tls_by_channel(summary: dict) -> dict[str, bool]:
    return {c["name"]: c["tls"] for c in summary["channels"]}


def test_tls_only_direct_with_ca_file_and_host_subject(tls_vm, tmp_path: Path) -> None:
    vm, base, subject = tls_vm
    run = run_ryll(["--direct", f"127.0.0.1::{vm.tls_port}", "--ca-file",
                    str(base / "server" / "ca-cert.pem"), "--host-subject", subject,
                    "--headless", "--duration", "2"], tmp_path, password=PASSWORD)
    assert run.returncode == 0, run.stderr
    assert run.summary is not None
    assert _tls_by_channel(run.summary) == {"main": True, "display": True, "inputs": True,
                                            "cursor": True}
    assert run.summary["target"]["port"] is None


def test_ca_file_of_another_ca_is_refused(tls_vm, tmp_path: Path) -> None:
    vm, base, subject = tls_vm
    run = run_ryll(["--direct", f"127.0.0.1::{vm.tls_port}", "--ca-file",
                    str(base / "other" / "ca-cert.pem"), "--host-subject", subject,
                    "--headless", "--duration", "1"], tmp_path, password=PASSWORD)
    assert run.returncode == 5
    [line] = error_lines(run.stderr)
    assert "TLS verification" in line


def test_host_subject_flag_must_match(tls_vm, tmp_path: Path) -> None:
    vm, base, _ = tls_vm
    run = run_ryll(["--direct", f"127.0.0.1::{vm.tls_port}", "--ca-file",
                    str(base / "server" / "ca-cert.pem"), "--host-subject", "CN=someone else",
                    "--headless", "--duration", "1"], tmp_path, password=PASSWORD)
    assert run.returncode == 5 and "does not match host-subject" in run.stderr


def test_proxy_with_credentials_and_secure_channels(tls_vm, tmp_path: Path) -> None:
    vm, base, _ = tls_vm
    with ConnectProxy(user="alice", password=PROXY_PASSWORD) as proxy:
        vv = _vv(tmp_path / "c.vv", vm, base, password=PASSWORD,
                 proxy=f"http://alice:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}",
                 secure_channels="main;inputs")
        run = run_ryll(["--file", str(vv), "--headless", "--duration", "2"], tmp_path)
        requests = list(proxy.requests)
    assert run.returncode == 0, run.stderr
    assert run.summary is not None
    assert _tls_by_channel(run.summary) == {"main": True, "inputs": True, "display": False,
                                            "cursor": False}
    # Every channel went through the proxy, to the port its TLS choice says.
    targets = sorted(r.target for r in requests)
    assert targets == sorted([f"127.0.0.1:{vm.tls_port}"] * 2 + [f"127.0.0.1:{vm.port}"] * 2)
    assert all(r.authorization and r.authorization.startswith("Basic ") for r in requests)
    text = json.dumps(run.summary) + run.stderr + run.stdout
    assert PROXY_PASSWORD not in text and PASSWORD not in text and "alice" not in text
    assert run.summary["target"]["proxy"] == f"http://127.0.0.1:{proxy.port}"


def test_proxy_refusing_the_credentials(tls_vm, tmp_path: Path) -> None:
    vm, base, _ = tls_vm
    with ConnectProxy(user="alice", password="right") as proxy:
        vv = _vv(tmp_path / "c.vv", vm, base, password=PASSWORD,
                 proxy=f"http://alice:wrong@127.0.0.1:{proxy.port}")
        run = run_ryll(["--file", str(vv), "--headless", "--duration", "1"], tmp_path)
    assert run.returncode == 3
    [line] = error_lines(run.stderr)
    assert "refused CONNECT" in line and "407" in line and "wrong" not in line


def test_password_file_wins_over_the_vv_password(tls_vm, tmp_path: Path) -> None:
    vm, base, _ = tls_vm
    vv = _vv(tmp_path / "c.vv", vm, base, password="not-the-password")
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    good = run_ryll(["--file", str(vv), "--password-file", str(tmp_path / "pw"),
                     "--headless", "--duration", "1"], tmp_path)
    assert good.returncode == 0, good.stderr
    vv = _vv(tmp_path / "c.vv", vm, base, password="not-the-password")
    bad = run_ryll(["--file", str(vv), "--headless", "--duration", "1"], tmp_path)
    assert bad.returncode == 4


# --- --reconnect ---------------------------------------------------------------------------------


def _spawn(args: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "RYLL_PASSWORD"}
    return subprocess.Popen([sys.executable, "-m", "ryll", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)


def _wait_established(vm: TestVM, proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("ryll: connected to"), line
    time.sleep(1.0)


@pytest.fixture(scope="module")
def plain_vm():
    with TestVM(vga="qxl", scene=None) as vm:
        yield vm


def test_reconnect_across_a_qemu_restart(plain_vm: TestVM, tmp_path: Path) -> None:
    summary = tmp_path / "s.json"
    sock_dir = Path(tempfile.mkdtemp(prefix="ryll-rc-"))  # unix socket paths are short
    sock = sock_dir / "c.sock"
    proc = _spawn(["--direct", f"127.0.0.1:{plain_vm.port}", "--headless", "--reconnect",
                   "--duration", "25", "--summary-json", str(summary),
                   "--control-socket", str(sock)], tmp_path)
    try:
        _wait_established(plain_vm, proc)
        client = SpecClient.connect(str(sock), protocol_version="1.3")
        client.subscribe("reconnecting", "reconnected")
        plain_vm.stop()
        first = client.wait_event("reconnecting", timeout=10)
        assert first["attempt"] == 1 and first["delay_s"] == 1.0
        assert client.status()["session"]["state"] == "reconnecting"
        assert client.status()["spice_connected"] is False
        plain_vm.start()
        back = client.wait_event("reconnected", timeout=30)
        deadline = time.monotonic() + 10
        while not client.status()["spice_connected"]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert sock.exists()  # the socket stayed through the reconnect
        client.close()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(sock_dir, ignore_errors=True)
    assert proc.returncode == 0, err
    s = json.loads(summary.read_text())
    attempts = s["reconnects"]["attempts"]
    assert attempts and attempts[-1]["ok"], attempts
    assert [a["delay_s"] for a in attempts] == [1.0, 4.0, 16.0][:len(attempts)]
    assert all(not a["ok"] for a in attempts[:-1])
    assert {c["name"] for c in s["channels"]} == {"main", "display", "inputs", "cursor"}
    assert s["end"]["message"] == "duration elapsed"
    assert "reconnect 1/3 in 1 s" in err
    assert back["attempt"] == attempts[-1]["number"]


def test_single_use_ticket_is_not_retried(plain_vm: TestVM, tmp_path: Path) -> None:
    vv = tmp_path / "once.vv"
    vv.write_text(f"[virt-viewer]\ntype=spice\nhost=127.0.0.1\nport={plain_vm.port}\n"
                  "delete-this-file=1\n")
    summary = tmp_path / "s.json"
    proc = _spawn(["--file", str(vv), "--headless", "--reconnect", "--duration", "30",
                   "--summary-json", str(summary)], tmp_path)
    try:
        _wait_established(plain_vm, proc)
        assert not vv.exists()
        plain_vm.stop()
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        plain_vm.start()
    assert proc.returncode == 7, err
    s = json.loads(summary.read_text())
    assert s["reconnects"]["attempts"] == []
    assert "single-use" in s["reconnects"]["refused"]


def test_ipv6_direct_and_vv(plain_vm: TestVM, tmp_path: Path) -> None:
    with Forwarder("::1", plain_vm.port) as fwd:
        run = run_ryll(["--direct", f"[::1]:{fwd.port}", "--headless", "--duration", "1"],
                       tmp_path)
        assert run.returncode == 0, run.stderr
        assert run.summary is not None and run.summary["target"]["host"] == "::1"
        vv = tmp_path / "v6.vv"
        vv.write_text(f"[virt-viewer]\ntype=spice\nhost=::1\nport={fwd.port}\n")
        run = run_ryll(["--file", str(vv), "--headless", "--duration", "1"], tmp_path)
        assert run.returncode == 0, run.stderr
        assert fwd.connections == 8  # four channels, twice
