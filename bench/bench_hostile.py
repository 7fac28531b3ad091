"""What each hostile message of issue 10 costs now: wall time and peak traced memory of one
DisplayChannel.handle, against what it cost before the fixes (the figures the issue measured
on this machine, printed beside). Messages come from tests/test_hostile_inputs.py's builders.

Run: ``.venv/bin/python bench/bench_hostile.py``.
"""

from __future__ import annotations

import struct
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.render import builders as B  # noqa: E402
from tests.test_budget import _stream_create  # noqa: E402
from tests.test_hostile_inputs import _jpeg_claiming, _stroke_body, raw_bitmap  # noqa: E402

from ryll.channels.context import ChannelContext  # noqa: E402
from ryll.channels.display import DisplayChannel  # noqa: E402
from ryll.protocol.constants import BitmapFmt, DisplayServer, Ropd, SurfaceFmt  # noqa: E402
from ryll.protocol.framing import MessageWriter  # noqa: E402

W = MessageWriter(True)


def channel(side: int) -> DisplayChannel:
    ch = DisplayChannel(0, ChannelContext())
    ch.receive_data(W.build(DisplayServer.SURFACE_CREATE,
                            B.surface_create(0, side, side, SurfaceFmt.FMT_32_xRGB, 1)))
    return ch


def cases() -> list[tuple[str, int, int, bytes, str]]:
    src = B.Image(pixels=np.full((8, 8, 4), 90, np.uint8))
    big = B.Image(pixels=np.random.default_rng(1).integers(0, 256, (1024, 1024, 4), np.uint8))
    jpeg = _jpeg_claiming(16384, 16384)
    return [
        ("ROP3, empty source rect", 512, DisplayServer.DRAW_ROP3,
         B.draw_rop3((0, 0, 32, 32), src, (0, 0, 0, 8), 0xCA, color=1), "exception"),
        ("ROP3, 16000x16000 box", 512, DisplayServer.DRAW_ROP3,
         B.draw_rop3((0, 0, 16000, 16000), src, (0, 0, 8, 8), 0xCC), "1 GB"),
        ("BITMAP 24-bit stride 0, 60000^2", 512, DisplayServer.DRAW_COPY,
         B.draw_copy((0, 0, 64, 64), raw_bitmap(BitmapFmt.FMT_24BIT, 60000, 60000, 0,
                                                b"\0" * 16), (0, 0, 64, 64), Ropd.OP_PUT),
         "13.9 GiB asked"),
        ("STROKE dashed XOR, 2000 polylines", 4096, DisplayServer.DRAW_STROKE,
         _stroke_body(2000, 4096), "47.6 s"),
        ("FILL with 20,000 clip rects", 4096, DisplayServer.DRAW_FILL,
         B.draw_fill((0, 0, 4096, 4096), Ropd.OP_PUT, 0x10,
                     clip=[(i % 7, i % 5, 4096, 4096) for i in range(20_000)]), "7.5 s"),
        ("COPY bilinear 1024^2 -> 4096^2", 4096, DisplayServer.DRAW_COPY,
         B.draw_copy((0, 0, 4096, 4096), big, (0, 0, 1024, 1024), Ropd.OP_PUT, scale_mode=0),
         "2.2 GB, 5.9 s"),
        ("stream frame claiming 16384^2", 512, DisplayServer.STREAM_DATA,
         struct.pack("<III", 1, 0, len(jpeg)) + jpeg, "1 GB, 0.7 s"),
    ]


def run(name: str, side: int, opcode: int, body: bytes, traced: bool
        ) -> tuple[float, float, DisplayChannel]:
    """One handle of the message on a fresh channel: (ms, peak traced MiB, the channel). The
    time is taken untraced (tracemalloc slows every allocation), the peak in a second run."""
    ch = channel(side)
    if opcode == DisplayServer.STREAM_DATA:
        ch.receive_data(W.build(DisplayServer.STREAM_CREATE,
                                _stream_create(1, 64, 64, (0, 0, 64, 64))))
    message = W.build(opcode, body)
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    ch.receive_data(message)
    took = (time.perf_counter() - started) * 1000
    peak = 0.0
    if traced:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return took, peak, ch


def main() -> None:
    print(f"{'message':36} {'ms':>8} {'peak MiB':>9}  before")
    for name, side, opcode, body, before in cases():
        took, _, ch = run(name, side, opcode, body, traced=False)
        _, peak, _ = run(name, side, opcode, body, traced=True)
        gaps = ",".join(k.split(":", 1)[1] for k in ch.ctx.gaps.counts()) or "drawn"
        print(f"{name:36} {took:8.1f} {peak:9.1f}  {before} -> {gaps}")


if __name__ == "__main__":
    main()
