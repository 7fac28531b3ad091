"""ryll's framebuffer against QEMU's own screendump (the pixel oracle), for the lossless paths
ryll renders today."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ryll.testvm import TestVM
from tests.e2e.conftest import run_ryll

pytestmark = pytest.mark.e2e


def _compare(run_png: Path, vm: TestVM) -> None:
    ours = np.asarray(Image.open(run_png).convert("RGB"))
    oracle = vm.screendump()
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
        _compare(shot, vm)
