"""ryll's framebuffer against QEMU's own screendump (the pixel oracle): for every lossless
image compression the server can use, across a mode change and a device reset, the
screenshot must be identical to screendump."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ryll.testvm import TestVM
from tests.e2e.conftest import run_ryll

pytestmark = pytest.mark.e2e


def _compare(png: Path, oracle: np.ndarray) -> None:
    ours = np.asarray(Image.open(png).convert("RGB"))
    assert ours.shape == oracle.shape
    diff = np.argwhere((ours != oracle).any(axis=2))
    assert diff.size == 0, f"{len(diff)} pixels differ, first at (y, x) {tuple(diff[0])}"


@pytest.mark.parametrize("vga", ["qxl", "std"])
def test_uncompressed_bitmaps_match_screendump(vga: str, tmp_path: Path) -> None:
    with TestVM(vga=vga, scene="static", mode="640x480", image_compression="off") as vm:
        vm.wait_frame(1, timeout=90)
        shot = tmp_path / "shot.png"
        run = run_ryll(
            ["--direct", f"127.0.0.1:{vm.port}", "--headless", "--duration", "4",
             "--screenshot", str(shot)],
            tmp_path,
        )
        assert run.returncode == 0, run.stderr
        # Nothing was dropped on this path: no gap at all.
        assert run.summary["gaps"] == {}
        _compare(shot, vm.screendump())


# (server -spice options, extra ryll options): every lossless path spice-server 0.15 has.
COMPRESSIONS = {
    "off": ({"image_compression": "off"}, []),
    "quic": ({"image_compression": "quic"}, []),
    "lz": ({"image_compression": "lz"}, []),
    "glz": ({"image_compression": "glz"}, []),
    "auto_lz": ({"image_compression": "auto_lz"}, []),
    "auto_glz": ({"image_compression": "auto_glz"}, []),
    "zlib_glz": ({"image_compression": "glz", "zlib_glz_wan_compression": "always"}, []),
    "lz4": ({}, ["--preferred-compression", "lz4"]),
}


@pytest.mark.parametrize("name", list(COMPRESSIONS))
def test_mode_change_matches_screendump(name: str, tmp_path: Path) -> None:
    """640x480, then the guest switches to 1024x768: the final picture is pixel-identical."""
    vm_opts, ryll_opts = COMPRESSIONS[name]
    with TestVM(vga="qxl", scene="modes", mode="640x480",
                extra_cmdline="ryll.mode2=1024x768 ryll.hold=3", **vm_opts) as vm:
        first = vm.wait_frame(1, timeout=90)
        shot = tmp_path / "shot.png"
        proc = subprocess.Popen(
            [sys.executable, "-m", "ryll", "--direct", f"127.0.0.1:{vm.port}", "--headless",
             "--duration", "9", "--screenshot", str(shot), "--summary-json",
             str(tmp_path / "s.json"), *ryll_opts],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        )
        vm.wait_serial(r"ryll: mode set 1024x768", timeout=60, after=first)
        out, err = proc.communicate(timeout=60)
        oracle = vm.screendump()
    assert proc.returncode == 0, err
    summary = json.loads((tmp_path / "s.json").read_text())
    assert not [k for k in summary["gaps"] if "decode_failure" in k or "unimpl" in k], (
        summary["gaps"]
    )
    primary = [s for s in summary["surfaces"] if s["primary"]]
    assert [(s["width"], s["height"]) for s in primary] == [(1024, 768)]
    if name == "lz4":
        assert "display: preferred compression lz4" in err
    _compare(shot, oracle)


def test_after_system_reset_matches_screendump(tmp_path: Path) -> None:
    """A QXL device reset tears down surfaces, streams and palettes; after the guest has
    booted and drawn again, ryll's picture is identical to screendump."""
    with TestVM(vga="qxl", scene="static", mode="800x600") as vm:
        vm.wait_frame(1, timeout=90)
        shot = tmp_path / "shot.png"
        proc = subprocess.Popen(
            [sys.executable, "-m", "ryll", "--direct", f"127.0.0.1:{vm.port}", "--headless",
             "--duration", "180", "--screenshot", str(shot), "--summary-json",
             str(tmp_path / "s.json")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        )
        try:
            time.sleep(4)
            offset = vm.serial_offset()
            vm.system_reset()
            # The reboot takes longer on a loaded machine: ryll runs until the guest has
            # drawn again (and a moment for the draws to arrive), not for a fixed time.
            vm.wait_frame(1, timeout=120, after=offset)
            time.sleep(2.0)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=90)
        oracle = vm.screendump()
    assert proc.returncode == 0, err
    summary = json.loads((tmp_path / "s.json").read_text())
    assert not [k for k in summary["gaps"] if "decode_failure" in k], summary["gaps"]
    _compare(shot, oracle)
