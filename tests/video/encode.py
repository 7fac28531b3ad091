"""Test frames for the inter-frame video codecs, encoded here with PyAV's bundled encoders
(libvpx, libx264, libx265). QEMU 7.2's spice-server on Debian 12 only streams MJPEG unless
GStreamer's encoder plugins are installed, so these codecs' stream bytes are made, not captured;
the encoder settings follow spice-server's gstreamer-encoder.c (realtime, no lookahead, no
B-frames), which is what a SPICE client receives."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from ryll.protocol.constants import VideoCodecType

ENCODERS: dict[int, tuple[str, dict[str, str]]] = {
    VideoCodecType.VP8: ("libvpx", {"deadline": "realtime", "lag-in-frames": "0"}),
    VideoCodecType.VP9: ("libvpx-vp9", {"deadline": "realtime", "lag-in-frames": "0"}),
    VideoCodecType.H264: ("libx264", {"preset": "ultrafast", "tune": "zerolatency"}),
    VideoCodecType.H265: ("libx265", {"preset": "ultrafast", "tune": "zerolatency",
                                      "x265-params": "log-level=none"}),
}


def picture(i: int, width: int, height: int) -> np.ndarray:
    """(H, W, 3) RGB test picture n. i: a smooth gradient with a moving white block, so a
    lossy codec keeps it close and every frame differs from the one before."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[..., 0] = (x * 255 // max(width - 1, 1)).astype(np.uint8)
    rgb[..., 1] = (y * 255 // max(height - 1, 1)).astype(np.uint8)
    rgb[..., 2] = 128
    bx = (i * 4) % max(width - 16, 1)
    rgb[8:24, bx:bx + 16] = 255
    return rgb


def encode(
    codec: int, n: int, width: int = 64, height: int = 48
) -> tuple[list[bytes], list[np.ndarray]]:
    """n encoded frames (one packet each) and the RGB pictures they encode."""
    av = pytest.importorskip("av")
    name, options = ENCODERS[codec]
    try:
        ctx = av.CodecContext.create(name, "w")
    except Exception:  # an av build without this encoder
        pytest.skip(f"PyAV has no {name} encoder")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1, 25)
    ctx.framerate = Fraction(25, 1)
    ctx.bit_rate = 2_000_000
    ctx.options = options
    packets: list[bytes] = []
    pictures = [picture(i, width, height) for i in range(n)]
    for i, rgb in enumerate(pictures):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets += [bytes(p) for p in ctx.encode(frame)]
    packets += [bytes(p) for p in ctx.encode(None)]
    assert len(packets) == n, f"{name}: {len(packets)} packets for {n} frames"
    return packets, pictures


def bgr(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., ::-1]
