"""Bug reports against the test VM, through the real ``ryll`` command and its control socket,
on a password-protected server: a manual ``bug_report`` whose region screenshot equals the
same region of QMP screendump; auto-snapshots kept within their count and size; a disconnect
report when QEMU is killed; ``ryll report`` reads them; and the password appears in no byte of
anything ryll wrote (captures, reports, logs, the summary)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ryll.testvm import TestVM
from tests.e2e.ctlspec_client import SpecClient

pytestmark = pytest.mark.e2e

PASSWORD = "Vm-pa55word-0x7e"


def test_reports_on_a_password_protected_vm(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    out = tmp_path / "out"
    out.mkdir()
    reports, capture, sock = out / "reports", out / "capture", out / "ctl.sock"
    with TestVM(vga="qxl", scene="static", password=PASSWORD) as vm:
        vm.wait_frame(1, timeout=90)
        with (out / "stdout.txt").open("wb") as stdout, (out / "stderr.txt").open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ryll", "--direct", f"127.0.0.1:{vm.port}", "--headless",
                 "--password-file", str(secret), "--control-socket", str(sock),
                 "--bug-report-dir", str(reports), "--capture", str(capture), "--pedantic-dir",
                 str(out / "pedantic"), "--auto-snapshot-interval", "1",
                 "--auto-snapshot-cap", "3", "--auto-snapshot-budget-mib", "1", "-v",
                 "--log-file", str(out / "ryll.log"), "--summary-json",
                 str(out / "summary.json")],
                stdout=stdout, stderr=err, cwd=out)
        try:
            deadline = time.monotonic() + 60
            while not sock.exists():
                assert proc.poll() is None, (out / "stderr.txt").read_text()
                assert time.monotonic() < deadline
                time.sleep(0.05)
            with SpecClient.connect(str(sock), client_name="test_reports",
                                    protocol_version="1.3") as client:
                region = {"x": 40, "y": 30, "width": 200, "height": 120}
                while not client.status()["surfaces"]:  # the socket comes before the picture
                    assert time.monotonic() < deadline, "no surface"
                    time.sleep(0.1)
                for _attempt in range(10):  # until the guest's picture is still
                    result = client.call("bug_report", {"description": "a test", **region},
                                         timeout=60)
                    with zipfile.ZipFile(result["path"]) as zf:
                        shot = np.asarray(Image.open(io.BytesIO(
                            zf.read("screenshot-region.png"))).convert("RGB"))
                        meta = json.loads(zf.read("metadata.json"))
                    oracle = vm.screendump()[30:150, 40:240]
                    if np.array_equal(shot, oracle):
                        break
                    time.sleep(0.5)
                assert np.array_equal(shot, oracle)
                assert meta["report_type"] == "manual" and meta["description"] == "a test"
                assert meta["region"] == {"display": 0, **region}
                bad = client.request("bug_report", {"x": 5000, "y": 0, "width": 10,
                                                    "height": 10})
                assert not bad.ok and bad.code == "bad_params"
            # Auto-snapshots every second (each samples the runtime metrics for 2 s): wait
            # for more than the cap keeps.
            deadline = time.monotonic() + 60
            while (out / "ryll.log").read_text().count(
                    "bug report (auto_snapshot) written") < 5:
                assert time.monotonic() < deadline, "too few auto-snapshots"
                time.sleep(0.2)
            vm.kill()
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 7, (out / "stderr.txt").read_text()[-3000:]
    autos = sorted((reports / "auto-snapshots").glob("ryll-auto-snapshot-*.zip"))
    written = (out / "ryll.log").read_text().count("bug report (auto_snapshot) written")
    # At most the cap, within the budget (or the newest alone, which is always kept), and
    # older ones really were deleted.
    assert 1 <= len(autos) <= 3 < written
    assert sum(p.stat().st_size for p in autos) <= 1 << 20 or len(autos) == 1
    drops = sorted(reports.glob("ryll-disconnect-*.zip"))
    assert len(drops) == 1, drops  # the first channel that dropped; a minute's cooldown
    with zipfile.ZipFile(drops[0]) as zf:
        cause = json.loads(zf.read("disconnect-cause.json"))
        assert cause["reason"] and cause["channels"]
        assert {"traffic.pcap", "metadata.json", "notifications.json"} <= set(zf.namelist())

    # ryll report summarises each one for a person.
    shown = subprocess.run([sys.executable, "-m", "ryll", "report", str(drops[0])],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "disconnect" in shown.stdout and cause["channel"] in shown.stdout

    # The password is in no byte ryll wrote, zipped or not, in any spelling.
    forms = [PASSWORD.encode(), PASSWORD.encode("utf-16-le"), PASSWORD.encode().hex().encode()]
    checked = 0
    for path in out.rglob("*"):
        if not path.is_file() or path.name == "ctl.sock":
            continue
        blobs = [path.read_bytes()]
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                blobs += [zf.read(n) for n in zf.namelist()]
        for blob in blobs:
            checked += 1
            for form in forms:
                assert form not in blob, path
    assert checked > 30
