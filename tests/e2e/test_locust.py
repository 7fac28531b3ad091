"""Load tests on Locust, for real: the shipped example locustfile run by a Locust master and two
worker processes (headless, a bounded run) against one test VM that keeps several clients.

The master runs no user itself, so every request in its statistics came from a worker over
Locust's own transport; the guest's serial log shows the keys the users pressed.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ryll.testvm import TestVM

pytestmark = pytest.mark.e2e

LOCUSTFILE = Path(__file__).resolve().parents[2] / "examples" / "locustfile.py"
USERS = 4
RUN_S = 25


@pytest.fixture(scope="module")
def shared_vm() -> Iterator[TestVM]:
    with TestVM(vga="qxl", scene="input", mode="640x480", multi_client=True) as vm:
        vm.wait_serial("ryll: input ready", timeout=90)
        yield vm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def locust(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *args],
                            cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_master_and_two_workers_aggregate_every_spice_step(shared_vm: TestVM,
                                                           tmp_path: Path) -> None:
    port = free_port()
    master = locust("--master", "--master-bind-host", "127.0.0.1", "--master-bind-port",
                    str(port), "--expect-workers", "2", "--headless", "-u", str(USERS), "-r",
                    str(USERS), "-t", f"{RUN_S}s", "--host", f"127.0.0.1:{shared_vm.port}",
                    "--csv", str(tmp_path / "run"), "--stop-timeout", "5", cwd=tmp_path)
    workers = [locust("--worker", "--master-host", "127.0.0.1", "--master-port", str(port),
                      cwd=tmp_path) for _ in range(2)]
    worker_logs = []
    try:
        out, _ = master.communicate(timeout=RUN_S + 90)
    finally:
        for w in workers:
            try:
                log, _ = w.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()
                log, _ = w.communicate()
            worker_logs.append(log[-3000:])
    assert "2 workers connected" in out or "workers connected" in out, out[-3000:]
    assert master.returncode == 0, out[-3000:]
    with (tmp_path / "run_stats.csv").open() as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    print({n: (r["Request Count"], r["Failure Count"], r["Median Response Time"])
           for n, r in rows.items()})
    for name in ("connect", "wait_for_display", "keystroke_latency", "screenshot", "type"):
        assert name in rows, (name, sorted(rows), worker_logs)
        assert rows[name]["Type"] == "SPICE"
        assert int(rows[name]["Failure Count"]) == 0, (rows[name], worker_logs)
    assert int(rows["connect"]["Request Count"]) == USERS
    assert int(rows["keystroke_latency"]["Request Count"]) >= 2 * USERS
    assert 0 < float(rows["keystroke_latency"]["Median Response Time"]) < 2000
    assert float(rows["screenshot"]["Average Content Size"]) > 1000  # PNG bytes
    # The keys really reached the guest, from the four sessions at once. Two users' presses
    # can overlap (a second "down" while the key is held is a repeat to the guest, not a new
    # press), so most of them, not all, are new presses in the guest's log.
    serial = shared_vm.serial_path.read_text(errors="replace")
    presses = serial.count("ryll: key 57 down")
    assert presses >= 0.75 * int(rows["keystroke_latency"]["Request Count"]), presses
