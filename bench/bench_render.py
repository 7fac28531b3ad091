"""Whole-frame DRAW_COPY rendering throughput: a 1024x768 DRAW_COPY message handled by the
display channel end to end (parse, decode, blit into the surface), per image encoding.

Run: ``.venv/bin/python bench/bench_render.py [--repeat N]``. Messages are built here per
spice.proto (DisplayBase, Copy, SpiceImage) with ryll's own encoders; the best of N counts.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_quic import desktop_like, photo_like  # noqa: E402

from ryll.channels.context import ChannelContext  # noqa: E402
from ryll.channels.display import DisplayChannel  # noqa: E402
from ryll.codecs import _lz_enc  # noqa: E402
from ryll.codecs import lz as L  # noqa: E402
from ryll.codecs.quic import RGB32, encode_quic  # noqa: E402
from ryll.protocol.constants import DisplayServer, ImageType, Ropd  # noqa: E402
from ryll.protocol.framing import Message  # noqa: E402

W, H = 1024, 768
IMAGE_OFFSET = 57  # DisplayBase 21 + bitmap ptr 4 + src Rect 16 + rop 2 + scale 1 + QMask 13


def draw_copy(image_type: int, payload: bytes) -> bytes:
    rect = struct.pack("<4i", 0, 0, H, W)
    head = struct.pack("<I", 0) + rect + b"\0"  # surface 0, box, no clip
    head += struct.pack("<I", IMAGE_OFFSET) + rect + struct.pack("<HB", Ropd.OP_PUT, 0)
    head += struct.pack("<B2iI", 0, 0, 0, 0)  # QMask: no mask
    assert len(head) == IMAGE_OFFSET
    return head + struct.pack("<QBBII", 1, image_type, 0, W, H) + payload


def bitmap_payload(img: np.ndarray) -> bytes:
    # format 32BIT (8), TOP_DOWN (4), no palette, then the rows.
    return struct.pack("<BBIIII", 8, 4, W, H, W * 4, 0) + img.tobytes()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args()
    rng = np.random.default_rng(1)
    images = {"desktop-like": desktop_like(rng), "photo-like": photo_like(rng)}
    print(f"{'encoding':<10} {'content':<14} {'Mpixel/s':>9} {'frames/s':>9}")
    for content, img in images.items():
        lz = _lz_enc.encode_lz(L.RGB32, img)
        cases = {
            "bitmap": draw_copy(ImageType.BITMAP, bitmap_payload(img)),
            "quic": draw_copy(ImageType.QUIC, _sized(encode_quic(img, RGB32))),
            "lz": draw_copy(ImageType.LZ_RGB, _sized(lz)),
        }
        for name, body in cases.items():
            ctx = ChannelContext()
            ch = DisplayChannel(0, ctx)
            ch.receive_data(
                struct.pack("<HI", DisplayServer.SURFACE_CREATE, 20)
                + struct.pack("<5I", 0, W, H, 32, 1)
            )
            msg = Message(DisplayServer.DRAW_COPY, body)
            best = float("inf")
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                ch.handle(msg)
                best = min(best, time.perf_counter() - t0)
            assert not ctx.gaps.counts(), ctx.gaps.counts()
            print(f"{name:<10} {content:<14} {W * H / best / 1e6:9.1f} {1 / best:9.1f}")


def _sized(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


if __name__ == "__main__":
    main()
