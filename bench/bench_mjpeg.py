"""MJPEG stream frames decoded and drawn per second at 640x480 and 1920x1080, one thread.

Run: ``.venv/bin/python bench/bench_mjpeg.py [seconds-per-cell]``. Frames are made here (a
gradient desktop with windows and a moving photo-like block, so each differs) and encoded with
``simplejpeg.encode_jpeg`` at quality 80, 4:2:0, as spice-server's mjpeg-encoder.c sends them
(its rate control moves quality between 10 and 85). Columns:

- decode: ``ryll.video.mjpeg.decode_mjpeg_frame`` alone (libjpeg-turbo, BGRA out);
- decode+draw: the display channel's whole frame path, fed framed STREAM_DATA messages: framing,
  parsing, decode, report window, blit into the primary surface at the stream's destination;
- +clip: the same with a STREAM_CLIP of 4 rects covering the frame;
- +scale: a STREAM_DATA_SIZED whose destination is twice the frame's size (nearest scaling).
"""

from __future__ import annotations

import struct
import sys
import time
from collections.abc import Callable

import numpy as np
import simplejpeg

from ryll.channels.context import ChannelContext
from ryll.channels.display import DisplayChannel
from ryll.protocol.constants import DisplayServer, StreamFlags, VideoCodecType
from ryll.protocol.framing import MessageWriter
from ryll.video.mjpeg import decode_mjpeg_frame

SIZES = [(640, 480), (1920, 1080)]
N_FRAMES = 16
QUALITY = 80


def frames(width: int, height: int) -> list[bytes]:
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:height, 0:width]
    base = np.empty((height, width, 3), np.uint8)
    base[..., 0] = x * 200 // width + 30
    base[..., 1] = y * 180 // height + 40
    base[..., 2] = 150
    for _ in range(6):  # flat windows with title bars
        wx, wy = int(rng.integers(0, width * 3 // 4)), int(rng.integers(0, height * 3 // 4))
        base[wy:wy + height // 4, wx:wx + width // 4] = 235
        base[wy:wy + 20, wx:wx + width // 4] = (60, 90, 160)
    bw, bh = width // 4, height // 4
    photo = rng.normal(128, 40, (bh, bw, 3)).clip(0, 255).astype(np.uint8)
    out = []
    for i in range(N_FRAMES):
        img = base.copy()
        px = (i * width // N_FRAMES) % (width - bw)
        img[height // 3:height // 3 + bh, px:px + bw] = np.roll(photo, i * 3, axis=1)
        out.append(simplejpeg.encode_jpeg(img, quality=QUALITY, colorspace="RGB",
                                          colorsubsampling="420"))
    return out


def rate(fn: Callable[[int], None], seconds: float) -> float:
    """Calls per second of fn(i), best of 3 runs of ``seconds`` each."""
    best = 0.0
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            fn(n)
            n += 1
        best = max(best, n / elapsed)
    return best


def channel(width: int, height: int, scale: int) -> DisplayChannel:
    ch = DisplayChannel(0, ChannelContext())
    w = MessageWriter(True)
    sw, sh = width * scale, height * scale
    ch.receive_data(w.build(DisplayServer.SURFACE_CREATE, struct.pack("<5I", 0, sw, sh, 32, 1)))
    create = struct.pack("<IIBBQIIII", 0, 1, StreamFlags.TOP_DOWN, VideoCodecType.MJPEG, 0,
                         width, height, width, height)
    create += struct.pack("<iiiiB", 0, 0, height, width, 0)  # dest, no clip
    ch.receive_data(w.build(DisplayServer.STREAM_CREATE, create))
    return ch


def stream_data(jpeg: bytes) -> bytes:
    return MessageWriter(True).build(
        DisplayServer.STREAM_DATA, struct.pack("<III", 1, 0, len(jpeg)) + jpeg)


def stream_data_sized(jpeg: bytes, width: int, height: int) -> bytes:
    body = struct.pack("<IIIIiiiiI", 1, 0, width, height, 0, 0, height * 2, width * 2,
                       len(jpeg)) + jpeg
    return MessageWriter(True).build(DisplayServer.STREAM_DATA_SIZED, body)


def clip(width: int, height: int) -> bytes:
    rects = [(0, 0, height // 2, width // 2), (0, width // 2, height // 2, width),
             (height // 2, 0, height, width // 2), (height // 2, width // 2, height, width)]
    body = struct.pack("<IBI", 1, 1, len(rects)) + b"".join(struct.pack("<4i", *r) for r in rects)
    return MessageWriter(True).build(DisplayServer.STREAM_CLIP, body)


def row(width: int, height: int, seconds: float) -> str:
    jpegs = frames(width, height)
    kib = sum(map(len, jpegs)) / len(jpegs) / 1024
    decode = rate(lambda i: decode_mjpeg_frame(jpegs[i % N_FRAMES]), seconds)
    msgs = [stream_data(j) for j in jpegs]
    ch = channel(width, height, 1)
    draw = rate(lambda i: ch.receive_data(msgs[i % N_FRAMES]), seconds)
    assert ch.streams.decoded["mjpeg"] > 0 and not len(ch.ctx.gaps), ch.ctx.gaps.counts()
    ch.receive_data(clip(width, height))
    clipped = rate(lambda i: ch.receive_data(msgs[i % N_FRAMES]), seconds)
    sized = [stream_data_sized(j, width, height) for j in jpegs]
    ch2 = channel(width, height, 2)
    scaled = rate(lambda i: ch2.receive_data(sized[i % N_FRAMES]), seconds)
    assert not len(ch2.ctx.gaps), ch2.ctx.gaps.counts()
    return (f"{width:>5}x{height:<4} {kib:>10.1f} {decode:>9.1f} {draw:>12.1f} "
            f"{clipped:>8.1f} {scaled:>8.1f} {1000 / draw:>9.2f}")


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    print(f"MJPEG stream frames per second (quality {QUALITY}, best of 3 x {seconds:g} s)")
    print(f"{'size':>10} {'KiB/frame':>10} {'decode':>9} {'decode+draw':>12} {'+clip':>8} "
          f"{'+scale':>8} {'ms/frame':>9}")
    for width, height in SIZES:
        print(row(width, height, seconds), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
