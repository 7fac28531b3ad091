"""Several monitors against a real spice-server: two QXL devices, each a SPICE display channel
of its own, driven by the guest's qxl DRM driver with a different picture on each
(guest/cursor.c, scene "heads": 640x480 on head 0, 800x600 on head 1). ryll links both display
channels (which share one image cache and one GLZ dictionary, as spice-gtk's do) and
``--screenshot shot.png`` writes shot-1.png and shot-2.png, each pixel-identical to QEMU's
screendump of that device.

What the server sends (spice-server 0.15.1, QEMU 7.2, Debian's Linux 6.1 qxl DRM): display and
cursor channels 0 and 1. Connected from boot, channel 0 first shows the VGA-mode primary
(720x400 text), then, once the driver takes over, primaries of 64x64, 1024x768 (the fbdev
console's) and 640x480; channel 1, whose device has no VGA mode, gets 64x64, 1024x768 and
800x600. Each change comes with MONITORS_CONFIG (one head). The pictures arrive as full-size
DRAW_COPYs of the dumb buffer (plus tiny ones for the console cursor): BITMAP with
image-compression=off; QUIC for the heads' pictures and LZ_RGB for the rest with auto_lz; with
glz, GLZ_RGB, where an image on one channel refers to images sent on the other (the dictionary
is shared; the pictures' bottom-right columns are the same on both heads), in both directions.
A client connecting later gets one DRAW_COPY of the current picture per channel."""

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

SIZES = [(640, 480), (800, 600)]  # head N's mode (mode=, and cursor.c's default mode2=)
FRAME = [0xE03020, 0x20C040, 0x3050E0, 0xD0C020]


def head_picture(head: int, w: int, h: int) -> np.ndarray:
    """guest/cursor.c head_pixel() as an (h, w, 3) RGB array."""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    hd = np.int64(head)
    tile = ((x // 40) * 7 + (y // 30) * 13 + hd * 101) * 2654435761 & 0xFFFFFFFF
    tile >>= 8
    r = x * 255 // (w // 2)
    g = (y - h // 2) * 255 // (h - h // 2)
    gradient = r << 16 | g << 8 | ((hd * 60 + 40) & 0xFF)
    pattern = ((x ^ y) & 0xFF) << 16 | (x * 3 & 0xFF) << 8 | 0x40
    columns = np.where((x // 16) & 1 == 1, pattern, 0x808080)
    below = np.where(x < w // 2, gradient, columns)
    pix = np.where(y < h // 2, tile, below)
    frame = (x < 6) | (y < 6) | (x >= w - 6) | (y >= h - 6)
    pix = np.where(frame, FRAME[head & 3], pix)
    return np.stack([pix >> 16 & 0xFF, pix >> 8 & 0xFF, pix & 0xFF], axis=-1).astype(np.uint8)


def _diff(ours: np.ndarray, want: np.ndarray, what: str) -> str | None:
    if ours.shape != want.shape:
        return f"{what}: shape {ours.shape}, want {want.shape}"
    bad = np.argwhere((ours != want).any(axis=2))
    if bad.size:
        y, x = bad[0]
        return (f"{what}: {len(bad)} pixels differ, first at (y, x) ({y}, {x}): "
                f"{tuple(ours[y, x])} != {tuple(want[y, x])}")
    return None


def _settled_screendumps(vm: TestVM, timeout: float = 60.0) -> list[np.ndarray]:
    """Each head's screendump, once every one shows the guest's picture (a QXL screendump has
    the server render what it has been sent so far) and two in a row agree."""
    deadline = time.monotonic() + timeout
    last: list[np.ndarray] | None = None
    while True:
        dumps = [vm.screendump(device=d) for d in vm.display_devices]
        wanted = all(
            np.array_equal(dump, head_picture(i, *SIZES[i])) for i, dump in enumerate(dumps)
        )
        if wanted and last is not None and all(map(np.array_equal, dumps, last)):
            return dumps
        if time.monotonic() >= deadline:
            problems = [_diff(d, head_picture(i, *SIZES[i]), f"screendump head {i}")
                        for i, d in enumerate(dumps)]
            raise AssertionError(f"the guest's pictures did not settle: {problems}")
        last = dumps
        time.sleep(0.5)


# -spice image-compression: off (plain bitmaps), glz (one dictionary shared by both display
# channels), auto_lz (QUIC for the gradient, LZ for the flat parts).
COMPRESSIONS = ["off", "glz", "auto_lz"]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_two_heads_match_screendump(compression: str, tmp_path: Path) -> None:
    with TestVM(scene="heads", heads=2, extra_cmdline="ryll.load=qxl",
                image_compression=compression) as vm:
        assert vm.display_devices == ["ryllqxl0", "ryllqxl1"]
        # Run 1, connected from boot: sees the VGA surface go and both heads' drawing.
        live_shot = tmp_path / "live.png"
        live = subprocess.Popen(
            [sys.executable, "-m", "ryll", "--direct", f"127.0.0.1:{vm.port}", "--headless",
             "--duration", "150", "--screenshot", str(live_shot),
             "--summary-json", str(tmp_path / "live.json")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        )
        try:
            vm.wait_serial(r"ryll: head 0 640x480 drawn", timeout=120)
            vm.wait_serial(r"ryll: head 1 800x600 drawn", timeout=60)
            vm.wait_serial(r"ryll: heads 2\r?\n", timeout=30)
            oracles = _settled_screendumps(vm)
            # screendump has the server render every command it has; they were sent to ryll as
            # they came in: give them time to arrive and be drawn.
            time.sleep(3.0)
        finally:
            live.send_signal(signal.SIGTERM)
            out, err = live.communicate(timeout=60)
        # Run 2, connected afterwards: each channel gets its current picture anew.
        late_shot = tmp_path / "late.png"
        late = run_ryll(["--direct", f"127.0.0.1:{vm.port}", "--headless", "--duration", "4",
                         "--screenshot", str(late_shot)], tmp_path)
        final = [vm.screendump(device=d) for d in vm.display_devices]
        primary = vm.screendump()  # without a device: the primary display, head 0

    for i, dump in enumerate(final):
        assert np.array_equal(dump, oracles[i]), f"head {i} changed during the late run"
    assert np.array_equal(primary, oracles[0])
    assert live.returncode == 0, err
    live_summary = json.loads((tmp_path / "live.json").read_text())
    assert late.returncode == 0, late.stderr
    assert late.summary is not None
    problems: list[str] = []
    for name, summary, shot, stdout in (
        ("live", live_summary, live_shot, out), ("late", late.summary, late_shot, late.stdout)
    ):
        assert summary["gaps"] == {}, (name, summary["gaps"])
        displays = sorted(c["id"] for c in summary["channels"] if c["name"] == "display")
        assert displays == [0, 1], (name, summary["channels"])
        cursors = sorted(c["id"] for c in summary["channels"] if c["name"] == "cursor")
        assert cursors == [0, 1], (name, summary["channels"])
        primary = sorted((s["channel_id"], s["width"], s["height"])
                         for s in summary["surfaces"] if s["primary"])
        assert primary == [(0, 640, 480), (1, 800, 600)], (name, summary["surfaces"])
        paths = [shot.with_name(f"{shot.stem}-{i}.png") for i in (1, 2)]
        assert not shot.exists()
        for i, path in enumerate(paths):
            assert f"ryll: screenshot {path}" in stdout, (name, stdout)
            ours = np.asarray(Image.open(path).convert("RGB"))
            problem = _diff(ours, oracles[i], f"{name} head {i}")
            if problem:
                problems.append(problem)
    assert not problems, problems
