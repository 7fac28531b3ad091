"""Video streams against the test VM: MJPEG streams created, decoded and drawn; a QXL device
reset (QMP system_reset) sends STREAM_DESTROY_ALL, which ryll handles on purpose; streams work
again after the guest reboots; once the animation stops, the lossless refresh makes the
screenshot identical to screendump. Before that refresh, the last stream frames drawn are within
a lossy tolerance of screendump. ``--video-codecs`` gets VP8, H.264 and VP9 streams from the
server's GStreamer encoders (where the host has the plugins) and ryll decodes them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ryll.channels.context import ChannelContext
from ryll.channels.display import DisplayChannel
from ryll.protocol.messages.draw import Rect
from ryll.session.session import Session
from ryll.session.target import Target
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
                   # an info record (plain ryll: line), not a warning or an error
                   if ln.startswith("ryll: display: stream_destroy_all (clearing ")]
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


# --- lossy frames against the oracle ----------------------------------------------------------

# Lossy tolerance for MJPEG stream frames against screendump, per RGB value. spice-server's
# MJPEG encoder (mjpeg-encoder.c, quality 70-85 under its rate control) leaves a mean error
# of about 1.5-2 and a max under 20 on the test scene's colour band; a frame off by one
# animation step (the band scrolls 4 px a frame) is off by tens on average.
STREAM_MEAN_ERROR = 4.0
STREAM_P99_ERROR = 32
STREAM_MAX_ERROR = 80
ANIMATION_SECONDS = 8  # ryll.seconds: the guest draws 20 frames a second, then stops
QUIET_S = 0.25  # no new stream frame for this long: the final frame has been drawn


def _frames_decoded(display: DisplayChannel) -> int:
    return sum(s.frames_decoded for s in display.streams.streams.values())


async def _final_stream_frame(vm: TestVM) -> tuple[np.ndarray, np.ndarray, list[Rect], bool]:
    """Run a session until the animation's last frame has arrived as stream frames; then,
    before the server's lossless refresh (which comes ~1 s after a stream goes idle), take
    ryll's primary surface and screendump back to back. The guest no longer draws, so both
    show the same final frame. Returns (ours, oracle, the live streams' dests, and whether ryll's
    surface equals the oracle once the refresh has come)."""
    session = Session(Target("127.0.0.1", vm.port), ChannelContext())
    await session.connect()
    loop = asyncio.get_running_loop()
    last = ANIMATION_SECONDS * 20
    await loop.run_in_executor(None, lambda: vm.wait_frame(last, timeout=120))
    [display] = session.display_channels()
    count, since = _frames_decoded(display), time.monotonic()
    deadline = since + 10
    while time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        now_count = _frames_decoded(display)
        if now_count != count:
            count, since = now_count, time.monotonic()
        elif time.monotonic() - since >= QUIET_S:
            break
    # The grab and the dests are taken between two display messages; the guest no longer draws.
    ours = (await session.grab()).pixels
    dests = [s.dest for s in display.streams.streams.values() if s.frames_decoded]
    oracle = await loop.run_in_executor(None, vm.screendump)
    await asyncio.sleep(2.5)  # the streams time out and the area is resent losslessly
    refreshed = bool(((await session.grab()).pixels == oracle).all())
    session.stop()
    await session.wait()
    return ours, oracle, dests, refreshed


def test_stream_frames_close_to_screendump_before_the_lossless_refresh() -> None:
    with TestVM(vga="qxl", scene="animate", mode="640x480", streaming_video="all",
                image_compression="off", extra_cmdline=f"ryll.seconds={ANIMATION_SECONDS}") as vm:
        vm.wait_frame(1, timeout=90)
        ours, oracle, dests, refreshed = asyncio.run(_final_stream_frame(vm))
    assert ours.shape == oracle.shape == (480, 640, 3)
    assert dests, "the animation should have become streams"
    outside = np.ones(ours.shape[:2], bool)
    for r in dests:
        a = ours[r.top:r.bottom, r.left:r.right].astype(int)
        b = oracle[r.top:r.bottom, r.left:r.right].astype(int)
        err = np.abs(a - b)
        what = (f"stream area {r}: mean {err.mean():.2f} p99 {np.percentile(err, 99):.0f} "
                f"max {err.max()}")
        assert err.mean() < STREAM_MEAN_ERROR, what
        assert np.percentile(err, 99) <= STREAM_P99_ERROR, what
        assert err.max() <= STREAM_MAX_ERROR, what
        outside[r.top:r.bottom, r.left:r.right] = False
    # What we compared came from lossy stream frames, not from a lossless draw ...
    stream_err = np.mean([
        np.abs(ours[r.top:r.bottom, r.left:r.right].astype(int)
               - oracle[r.top:r.bottom, r.left:r.right].astype(int)).mean() for r in dests
    ])
    assert stream_err > 0.1, "stream areas are pixel-exact: the lossless refresh came first"
    # ... and everything else on screen, drawn losslessly, is exact.
    diff = np.argwhere((ours != oracle).any(axis=2) & outside)
    assert diff.size == 0, f"{len(diff)} pixels outside streams differ, first at {tuple(diff[0])}"
    assert refreshed, "after the lossless refresh ryll's surface should equal screendump"


# --- other codecs: --video-codecs ---------------------------------------------------------------

# spice-server's GStreamer encoders (gstreamer-encoder.c) need these plugins on the host:
# vp8enc/vp9enc (gstreamer1.0-plugins-good, "vpx"), x264enc (gstreamer1.0-plugins-ugly,
# "x264"), plus appsrc and videoconvert from plugins-base. Without them the server falls
# back to MJPEG, so the check is skipped.
GST_PLUGINS = {"vp8": "vpx", "vp9": "vpx", "h264": "x264"}


def _gst_plugin(name: str) -> bool:
    return any(
        any(Path(root).glob(f"*/gstreamer-1.0/libgst{name}.so")) or
        (Path(root) / "gstreamer-1.0" / f"libgst{name}.so").exists()
        for root in ("/usr/lib", "/usr/lib64")
    )


@pytest.mark.parametrize("codec", ["vp8", "h264", "vp9"])
def test_video_codecs_option_gets_streams_of_that_codec(codec: str, tmp_path: Path) -> None:
    if not (_gst_plugin(GST_PLUGINS[codec]) and _gst_plugin("app")
            and (_gst_plugin("videoconvertscale") or _gst_plugin("videoconvert"))):
        pytest.skip(f"spice-server cannot encode {codec} here: GStreamer plugins missing")
    summary = tmp_path / "summary.json"
    with TestVM(vga="qxl", scene="animate", mode="640x480", streaming_video="all",
                image_compression="off") as vm:
        vm.wait_frame(1, timeout=90)
        proc = subprocess.run(
            [sys.executable, "-m", "ryll", "--direct", f"127.0.0.1:{vm.port}", "--headless",
             "--duration", "12", "--video-codecs", f"{codec},mjpeg", "--summary-json",
             str(summary)],
            capture_output=True, text=True, timeout=90, cwd=tmp_path,
        )
    assert proc.returncode == 0, proc.stderr
    assert f"display: preferred video codecs {codec},mjpeg" in proc.stderr
    data = json.loads(summary.read_text())
    streams = data["streams"]
    assert streams["frames_decoded"].get(codec, 0) > 20, streams
    assert set(streams["frames_decoded"]) == {codec}, streams
    assert streams["frames_failed"] == {}, streams
    assert not any(k.startswith(("display:decode_failure", "display:unimpl:stream"))
                   for k in data["gaps"]), data["gaps"]
