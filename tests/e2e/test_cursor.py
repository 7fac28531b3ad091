"""The cursor channel against a real spice-server: the guest's qxl DRM driver sets a 64x64 ARGB
hardware cursor with a hotspot and moves it (guest/cursor.c); ryll must decode the shape
pixel-exactly, track position and hotspot, and draw it into --screenshot-cursor screenshots.

What the server sends (spice-server 0.15, Linux qxl DRM): one SET with an ALPHA cursor, unique 0
and no cache flags, its position the hotspot's (DRM's top-left + hot), then a MOVE per
DRM_MODE_CURSOR_MOVE, again at the hotspot. The ARGB bytes the guest wrote arrive unchanged:
nothing premultiplies or un-premultiplies on the way (the guest's translucent pixels carry
colour values above their alpha, which a premultiplying step would have changed)."""

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

from ryll.render.cursor import CursorImage, composite
from ryll.testvm import TestVM
from tests.channels.test_cursor import guest_cursor_rgba
from tests.e2e.conftest import run_ryll

pytestmark = pytest.mark.e2e

HOT = (5, 7)
LAST_MOVE = (320, 240)  # the guest's last DRM cursor position (the image's top-left)


def guest_screen(w: int = 640, h: int = 480) -> np.ndarray:
    """guest/cursor.c screen_pixel() as RGB."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x & 0xFF, y & 0xFF, (x ^ y) & 0xFF], axis=-1).astype(np.uint8)


def check_cursor_summary(summary: dict) -> None:
    cur = summary["cursor"]
    assert (cur["x"], cur["y"]) == (LAST_MOVE[0] + HOT[0], LAST_MOVE[1] + HOT[1]), cur
    assert cur["visible"] is True
    assert cur["shape"] == {"type": "alpha", "width": 64, "height": 64, "hot_x": HOT[0],
                            "hot_y": HOT[1], "unique": 0}


def test_qxl_drm_cursor(tmp_path: Path) -> None:
    with TestVM(scene="cursor", mode="640x480", extra_cmdline="ryll.load=qxl") as vm:
        # Run 1, connected from boot: the cursor arrives as SET and MOVEs.
        shot_cursor = tmp_path / "with-cursor.png"
        live = subprocess.Popen(
            [sys.executable, "-m", "ryll", "--direct", f"127.0.0.1:{vm.port}", "--headless",
             "--duration", "90", "--screenshot", str(shot_cursor), "--screenshot-cursor",
             "--summary-json", str(tmp_path / "live.json")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        )
        try:
            set_at = vm.wait_serial(r"ryll: cursor set 100 80 hot 5 7", timeout=90)
            vm.wait_serial(r"ryll: idle", timeout=30, after=set_at)
            time.sleep(1.0)  # let the last MOVE reach ryll
        finally:
            live.send_signal(signal.SIGTERM)
            out, err = live.communicate(timeout=30)
        assert live.returncode == 0, err
        # Run 2, connected afterwards: the server's INIT carries the current cursor.
        shot = tmp_path / "plain.png"
        late = run_ryll(["--direct", f"127.0.0.1:{vm.port}", "--headless", "--duration", "3",
                         "--screenshot", str(shot)], tmp_path)
        oracle = vm.screendump()

    summary = json.loads((tmp_path / "live.json").read_text())
    assert summary["gaps"] == {}, summary["gaps"]
    check_cursor_summary(summary)
    by_message = next(c for c in summary["channels"] if c["name"] == "cursor")["by_message"]
    assert by_message.get("set", 0) >= 1 and by_message.get("move", 0) >= 3, by_message

    assert late.returncode == 0, late.stderr
    assert late.summary is not None and late.summary["gaps"] == {}, late.summary
    check_cursor_summary(late.summary)

    # The display still decodes under the qxl driver: ryll == QEMU screendump == the guest's
    # picture (screendump has no cursor in it).
    expected = guest_screen()
    assert np.array_equal(oracle, expected)
    plain = np.asarray(Image.open(shot).convert("RGB"))
    assert np.array_equal(plain, expected)

    # --screenshot-cursor: the guest's ARGB cursor, alpha-over, top-left at LAST_MOVE.
    shape = CursorImage(guest_cursor_rgba(), *HOT, type=0)
    want = composite(expected, shape, LAST_MOVE[0] + HOT[0], LAST_MOVE[1] + HOT[1])
    ours = np.asarray(Image.open(shot_cursor).convert("RGB"))
    diff = np.argwhere((ours != want).any(axis=2))
    assert diff.size == 0, f"{len(diff)} pixels differ, first at (y, x) {tuple(diff[0])}"
    x0, y0 = LAST_MOVE
    assert tuple(ours[y0, x0]) == tuple(guest_cursor_rgba()[0, 0, :3])  # opaque frame pixel
    assert tuple(ours[y0 + 63, x0 + 63]) == tuple(expected[y0 + 63, x0 + 63])  # transparent
