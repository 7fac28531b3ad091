"""Video streams against the test VM: MJPEG streams created, decoded and drawn; a QXL device
reset (QMP system_reset) sends STREAM_DESTROY_ALL, which ryll handles on purpose; streams work
again after the guest reboots; once the animation stops, the lossless refresh makes the
screenshot identical to screendump."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ryll.testvm import TestVM

pytestmark = pytest.mark.e2e


def test_streams_and_destroy_all_on_reset(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    reports = tmp_path / "reports"
    with TestVM(vga="qxl", scene="animate", mode="640x480", streaming_video="all",
                image_compression="off") as vm:
        vm.wait_frame(1, timeout=90)
        proc = subprocess.Popen(
            [sys.executable, "-m", "ryll", "--direct", f"127.0.0.1:{vm.port}", "--headless",
             "--duration", "40", "--summary-json", str(summary), "--pedantic-dir", str(reports)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        )
        try:
            time.sleep(10)  # streams form after 20+ frames of the same area
            offset = vm.serial_offset()
            vm.system_reset()
            vm.wait_frame(1, timeout=90, after=offset)
            out, err = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    data = json.loads(summary.read_text())
    streams = data["streams"]
    assert streams["frames_decoded"].get("mjpeg", 0) > 20, streams
    assert streams["destroy_all"] >= 1
    assert "display:hexdump:126" not in data["gaps"]
    assert not any("hexdump-126" in p.name for p in reports.glob("*.zip"))
    assert all(not k.startswith("display:unimpl:stream") for k in data["gaps"]), data["gaps"]
    lines = err.splitlines()
    destroy_all = [i for i, ln in enumerate(lines)
                   if "display: stream_destroy_all (clearing " in ln and " INFO " in ln]
    assert destroy_all, err[-3000:]
    # After the reboot the guest animates again and new streams are created and decoded.
    creates_after = [ln for ln in lines[destroy_all[-1]:] if "display: stream_create id=" in ln]
    assert creates_after, err[-3000:]
    assert data["end"]["reason"] == "stopped"


def test_lossless_refresh_after_animation_matches_screendump(tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    with TestVM(vga="qxl", scene="animate", mode="640x480", streaming_video="all",
                image_compression="off", extra_cmdline="ryll.seconds=8") as vm:
        vm.wait_frame(1, timeout=90)
        proc = subprocess.run(
            [sys.executable, "-m", "ryll", "--direct", f"127.0.0.1:{vm.port}", "--headless",
             "--duration", "16", "--screenshot", str(shot), "--summary-json",
             str(tmp_path / "s.json")],
            capture_output=True, text=True, timeout=90, cwd=tmp_path,
        )
        oracle = vm.screendump()
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["streams"]["created"] >= 1, "the animation should have become a stream"
    ours = np.asarray(Image.open(shot).convert("RGB"))
    diff = np.argwhere((ours != oracle).any(axis=2))
    assert diff.size == 0, f"{len(diff)} pixels differ, first at {tuple(diff[0])}"
