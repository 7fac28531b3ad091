"""SPICE port channels against QEMU: its own QMP monitor exported as a port
(``-chardev spiceport,name=org.qemu.monitor.qmp.0 -mon chardev=...,mode=control``), driven
through ``vm.port()`` and through ``--port NAME=unix:PATH``; a guest-facing virtio-serial port
whose guest side echoes in upper case (bytes both ways, flow control with more than the
buffers hold); and the usage errors. A QMP test gets a QEMU of its own (``qmp_vm``)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import ryll
from ryll.channels.port import INBOUND_LIMIT
from ryll.testvm import TestVM
from tests.e2e.conftest import error_lines, run_doc_example, run_ryll

pytestmark = pytest.mark.e2e

QMP = "org.qemu.monitor.qmp.0"
ECHO = "org.ryll.echo.0"


@pytest.fixture(scope="module")
def vm() -> Iterator[TestVM]:
    """A guest echoing its port ECHO in upper case."""
    with TestVM(scene="static", ports=[ECHO], extra_cmdline=f"ryll.echo={ECHO}") as vm:
        vm.wait_serial(rf"ryll-echo: up {re.escape(ECHO)} ", timeout=120)
        yield vm


@pytest.fixture
def qmp_vm() -> Iterator[TestVM]:
    """QEMU's QMP monitor as a SPICE port, no guest needed; one VM a test. QEMU 7.2 can
    deadlock for good when spice-server logs a warning while the monitor holds its lock (a
    client leaving while a channel is still connecting: QEMU's main thread waits on
    monitor_lock in warn_report, under monitor code), so no test inherits another's QEMU."""
    with TestVM(scene=None, qmp_port=True) as vm:
        yield vm


async def qmp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
              command: str) -> dict:
    writer.write(json.dumps({"execute": command}).encode() + b"\n")
    await writer.drain()
    while True:  # events ({"event": ...}) may come between
        reply = json.loads(await asyncio.wait_for(reader.readline(), 10))
        if "return" in reply or "error" in reply:
            return reply


def test_qmp_over_spice_with_the_api(qmp_vm: TestVM) -> None:
    async def main() -> None:
        async with ryll.connect(f"127.0.0.1:{qmp_vm.port}") as session:
            reader, writer = await session.port(QMP)
            greeting = json.loads(await asyncio.wait_for(reader.readline(), 10))
            assert greeting["QMP"]["version"]["qemu"]["major"] == 7
            assert await qmp(reader, writer, "qmp_capabilities") == {"return": {}}
            status = await qmp(reader, writer, "query-status")
            assert status["return"]["status"] == "running"
            with pytest.raises(ryll.PortError, match="already open"):
                await session.port(QMP)
            writer.close()
            await asyncio.sleep(0.3)
            # QEMU keeps the monitor session for the life of the channel: a second holder
            # carries on in it (no second greeting, capabilities negotiated).
            reader, writer = await session.port(QMP)
            assert (await qmp(reader, writer, "query-status"))["return"]["running"] is True
            with pytest.raises(ryll.PortError, match="offers no port 'no.such.port'.*"
                                                     + QMP.replace(".", r"\.")):
                await session.port("no.such.port", timeout=1)
            ports = session.snapshot().ports["offered"]
            assert set(ports) == {QMP}
            assert ports[QMP]["held_by"] == "the Python API"
            assert ports[QMP]["bytes_in"] > len(json.dumps(greeting))
            writer.close()

    asyncio.run(main())


def test_guest_port_both_ways_and_flow_control(vm: TestVM) -> None:
    """More than the channel's inbound buffer goes through the guest and back, unchanged
    but for the guest's upper-casing, with the reader slower than the writer."""
    payload = bytes(b"abcdefghij"[i % 10] for i in range(3 * INBOUND_LIMIT))

    async def main() -> None:
        async with ryll.connect(f"127.0.0.1:{vm.port}") as session:
            reader, writer = await session.port(ECHO)

            async def send() -> None:
                for pos in range(0, len(payload), 32768):
                    writer.write(payload[pos:pos + 32768])
                    await writer.drain()

            sender = asyncio.ensure_future(send())
            got = bytearray()
            while len(got) < len(payload):
                chunk = await asyncio.wait_for(reader.read(65536), 30)
                assert chunk
                got += chunk
                await asyncio.sleep(0.001)  # a slow reader
                assert session.snapshot().ports["offered"][ECHO]["buffered"] <= 2 * INBOUND_LIMIT
            await sender
            assert bytes(got) == payload.upper()
            writer.close()

    asyncio.run(main())


def test_sync_api_port_is_a_socket(vm: TestVM) -> None:
    with ryll.connect_sync(f"127.0.0.1:{vm.port}") as session:
        sock = session.port(ECHO)
        sock.settimeout(10)
        sock.sendall(b"hello port\n")
        got = b""
        while not got.endswith(b"\n"):
            got += sock.recv(100)
        assert got == b"HELLO PORT\n"
        sock.close()


def qmp_over_unix(path: Path) -> dict:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        f = sock.makefile("rwb")
        greeting = json.loads(f.readline())
        for command in ("qmp_capabilities", "query-status"):
            f.write(json.dumps({"execute": command}).encode() + b"\n")
            f.flush()
            reply = json.loads(f.readline())
            while "return" not in reply:
                reply = json.loads(f.readline())
        return {"greeting": greeting, "status": reply}


def test_port_flag_serves_qmp_on_a_unix_socket(qmp_vm: TestVM, tmp_path: Path) -> None:
    path = tmp_path / "qmp.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ryll", "--direct", f"127.0.0.1:{qmp_vm.port}", "--headless",
         "--port", f"{QMP}=unix:{path}", "--duration", "8",
         "--summary-json", str(tmp_path / "summary.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while not path.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
        got = qmp_over_unix(path)
        assert got["greeting"]["QMP"]["version"]["qemu"]["major"] == 7
        assert got["status"]["return"]["status"] == "running"
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert not path.exists()  # removed at the end
    summary = json.loads((tmp_path / "summary.json").read_text())
    ports = summary["ports"]
    assert ports["requested_not_offered"] == []
    assert set(ports["offered"]) == {QMP}
    assert ports["offered"][QMP]["bytes_out"] > 40
    assert "port" in {c["name"] for c in summary["channels"]}


def test_the_docs_port_example_runs(qmp_vm: TestVM, tmp_path: Path) -> None:
    run = run_doc_example("vm.port(", qmp_vm.port, tmp_path, timeout=60)
    assert "'major': 7" in run.stdout and "'status': 'running'" in run.stdout


def test_port_flag_usage_errors(vm: TestVM, tmp_path: Path) -> None:
    direct = ["--direct", f"127.0.0.1:{vm.port}", "--headless", "--duration", "20"]
    for spec, why in [("qmp", "expected NAME=unix:PATH"), (f"{QMP}=tcp:1", "only unix:PATH"),
                      (f"{QMP}=unix:", "path is empty"),
                      (f"{QMP}=unix:/no/such/dir/s", "no such directory")]:
        run = run_ryll([*direct, "--port", spec], tmp_path)
        assert run.returncode == 2, run.stderr
        assert len(error_lines(run.stderr)) == 1 and why in run.stderr
    not_a_socket = tmp_path / "file"
    not_a_socket.write_text("keep me")
    run = run_ryll([*direct, "--port", f"{QMP}=unix:{not_a_socket}"], tmp_path)
    assert run.returncode == 2 and "not a socket" in run.stderr
    assert not_a_socket.read_text() == "keep me"
    run = run_ryll([*direct, "--port", f"{QMP}=unix:{tmp_path}/a", "--port",
                    f"{QMP}=unix:{tmp_path}/b"], tmp_path)
    assert run.returncode == 2 and "given twice" in run.stderr
    # A port the server does not offer: exit 11 once the session is up, the summary says so.
    run = run_ryll([*direct, "--port", f"no.such.port=unix:{tmp_path}/n"], tmp_path,
                   timeout=60)
    assert run.returncode == 11, run.stderr
    assert error_lines(run.stderr) == [
        f"ryll: error: the server offers no port 'no.such.port' (ports offered: {ECHO})"]
    assert run.summary is not None
    assert run.summary["ports"]["requested_not_offered"] == ["no.such.port"]
