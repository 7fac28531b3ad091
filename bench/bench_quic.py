"""QUIC decode throughput on 1024x768 RGB32 images of three kinds of content.

Run: ``.venv/bin/python bench/bench_quic.py [--repeat N]``. The images are made here and encoded
with ryll's own encoder (``encode_quic``, which reproduces spice-server's payload byte for byte
on the captured fixture), then decoded N times into a reused buffer; the best time counts.
Targets (one thread, 2-core CI machine): desktop-like >= 200 Mpixel/s, photo-like >= 40,
noise >= 18 (spice-common's C decoder: about 400 / 80 / 35).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ryll.codecs.quic import RGB32, decode_quic, encode_quic

W, H = 1024, 768


def desktop_like(rng: np.random.Generator) -> np.ndarray:
    """Flat window areas, a title bar gradient, text-like glyph rows, a few icons."""
    img = np.empty((H, W, 4), np.uint8)
    img[...] = (200, 120, 40, 255)  # desktop background (BGRA)
    # windows: flat fills with a gradient title bar
    for x0, y0, x1, y1 in ((60, 50, 700, 560), (400, 300, 980, 740)):
        img[y0:y1, x0:x1] = (240, 240, 240, 255)
        grad = np.linspace(90, 200, x1 - x0).astype(np.uint8)
        img[y0 : y0 + 24, x0:x1, 0] = grad
        img[y0 : y0 + 24, x0:x1, 1] = grad // 2
        img[y0 : y0 + 24, x0:x1, 2] = 40
        # text: rows of 8x12 glyph cells with random dark strokes, as anti-aliased text
        for ty in range(y0 + 40, y1 - 20, 18):
            line_len = int(rng.integers((x1 - x0) // 3, x1 - x0 - 30))
            cells = rng.random((12, line_len)) < 0.22
            shade = rng.integers(0, 90, (12, line_len)).astype(np.uint8)
            region = img[ty : ty + 12, x0 + 10 : x0 + 10 + line_len, :3]
            region[cells] = shade[cells][:, None]
    # a few icons: small smooth blobs
    yy, xx = np.mgrid[0:48, 0:48]
    for k in range(6):
        blob = (np.hypot(yy - 24, xx - 24) * 5).clip(0, 255).astype(np.uint8)
        img[600 + (k % 2) * 60 : 648 + (k % 2) * 60, 20 + k * 60 : 68 + k * 60, 1] = blob
    return img


def photo_like(rng: np.random.Generator) -> np.ndarray:
    """A smooth natural-ish image: sums of sinusoids per channel plus mild noise."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.empty((H, W, 4), np.uint8)
    for c in range(3):
        acc = np.zeros((H, W), np.float32)
        for _ in range(6):
            fx, fy = rng.uniform(0.002, 0.03, 2)
            ph = rng.uniform(0, 6.28)
            acc += np.sin(xx * fx + yy * fy + ph) * rng.uniform(10, 30)
        acc += rng.normal(0, 3, (H, W))
        img[..., c] = np.clip(128 + acc, 0, 255).astype(np.uint8)
    img[..., 3] = 255
    return img


def noise(rng: np.random.Generator) -> np.ndarray:
    img = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
    img[..., 3] = 255
    return img


def bench(data: bytes, repeat: int) -> float:
    out = np.empty(W * H * 4, np.uint8)
    decode_quic(data, out=out)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        decode_quic(data, out=out)
        best = min(best, time.perf_counter() - t0)
    return W * H / best / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    rng = np.random.default_rng(2024)
    targets = {"desktop-like": 200, "photo-like": 40, "noise": 18}
    print(f"QUIC decode, {W}x{H} RGB32, best of {args.repeat}")
    print(f"{'content':<14}{'bytes':>10}{'bits/px':>9}{'Mpixel/s':>10}{'target':>8}")
    for name, make in (("desktop-like", desktop_like), ("photo-like", photo_like),
                       ("noise", noise)):
        img = make(rng)
        data = encode_quic(img, RGB32)
        check = decode_quic(data).pixels
        assert np.array_equal(check[..., :3], img[..., :3]), name
        mps = bench(data, args.repeat)
        print(f"{name:<14}{len(data):>10}{len(data) * 8 / (W * H):>9.2f}{mps:>10.1f}"
              f"{targets[name]:>8}")


if __name__ == "__main__":
    main()
