"""Throughput of the LZ, GLZ and LZ4 image decoders: Mpixel/s at 1024x768, one thread.

Run: ``.venv/bin/python bench/bench_lz.py [repeats]``. Images are made here and encoded with
ryll's test encoder (``ryll.codecs._lz_enc``, LZ / GLZ token format) and the ``lz4`` package
(blocks of 64 rows, each compressed alone; skipped without the package). Content kinds:
desktop-like (flat windows, text-like strokes, a few gradients), photo-like (smooth shading with
sensor noise of a few levels) and noise (uniform random). Prints best-of-N per cell.
"""

from __future__ import annotations

import struct
import sys
import time

import numpy as np

from ryll.codecs import _lz_enc
from ryll.codecs import lz as L
from ryll.codecs.glz import GlzDictionary, decode_glz
from ryll.codecs.lz4 import FMT_32BIT, decode_lz4

W, H = 1024, 768


def desktop(rng: np.random.Generator) -> np.ndarray:
    img = np.empty((H, W, 4), np.uint8)
    img[:] = (58, 110, 165, 255)  # a desktop background
    for _ in range(12):  # windows
        x, y = int(rng.integers(0, W - 300)), int(rng.integers(0, H - 200))
        w, h = int(rng.integers(200, 600)), int(rng.integers(150, 450))
        img[y : y + h, x : x + w] = (240, 240, 240, 255)
        img[y : y + 24, x : x + w] = np.linspace(90, 200, min(w, W - x), dtype=np.uint8)[
            None, :, None
        ]
        img[y : y + 24, x : x + w, 3] = 255
        for line in range(y + 34, min(y + h, H) - 10, 16):  # text-like strokes
            glyphs = rng.integers(0, 2, (9, (min(w, W - x) - 20) // 2)).astype(bool)
            glyphs = np.repeat(glyphs, 2, axis=1)
            region = img[line : line + 9, x + 10 : x + 10 + glyphs.shape[1]]
            region[glyphs[: region.shape[0], : region.shape[1]]] = (20, 20, 20, 255)
    return img


def photo(rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    base = np.stack(
        [
            128 + 100 * np.sin(xx / 97.0) * np.cos(yy / 61.0),
            128 + 90 * np.sin((xx + yy) / 143.0),
            128 + 80 * np.cos(xx / 53.0 - yy / 89.0),
        ],
        axis=-1,
    )
    base += rng.normal(0, 3, base.shape)
    img = np.empty((H, W, 4), np.uint8)
    img[..., :3] = np.clip(base, 0, 255).astype(np.uint8)
    img[..., 3] = 255
    return img


def noise(rng: np.random.Generator) -> np.ndarray:
    img = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
    img[..., 3] = 255
    return img


def best(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return W * H / min(times) / 1e6


def lz4_payload(img: np.ndarray) -> bytes | None:
    try:
        import lz4.block
    except ImportError:
        return None
    raw = img.reshape(H, W * 4)
    out = [bytes([1, FMT_32BIT])]
    for y in range(0, H, 64):
        block = lz4.block.compress(raw[y : y + 64].tobytes(), store_size=False)
        out.append(struct.pack(">I", len(block)) + block)
    return b"".join(out)


def main() -> int:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    rng = np.random.default_rng(1)
    kinds = {"desktop-like": desktop(rng), "photo-like": photo(rng), "noise": noise(rng)}
    out = np.empty((H, W, 4), np.uint8)
    rows = []
    for kind, img in kinds.items():
        lz = _lz_enc.encode_lz(L.RGB32, img)
        assert np.array_equal(L.decode_lz(lz).pixels, img)
        glz = _lz_enc.encode_glz(L.RGB32, img, 1, 0)
        d = GlzDictionary(W * H * 4)
        assert np.array_equal(decode_glz(glz, d).pixels, img)
        cells = {
            "LZ": (len(lz), best(lambda lz=lz: L.decode_lz(lz, out=out), repeats)),
            "GLZ": (len(glz), best(lambda glz=glz, d=d: decode_glz(glz, d, out=out), repeats)),
            "GLZ (no out)": (len(glz), best(lambda glz=glz, d=d: decode_glz(glz, d), repeats)),
        }
        p4 = lz4_payload(img)
        if p4 is not None:
            assert np.array_equal(decode_lz4(p4, W, H).pixels, img)
            cells["LZ4"] = (len(p4), best(lambda p4=p4: decode_lz4(p4, W, H, out=out), repeats))
        rows.append((kind, cells))
    decoders = list(rows[0][1])
    print(f"{W}x{H}, best of {repeats}, Mpixel/s (compressed size in KiB)")
    print(f"{'content':14}" + "".join(f"{name:>20}" for name in decoders))
    for kind, cells in rows:
        line = f"{kind:14}"
        for name in decoders:
            size, mps = cells[name]
            line += f"{mps:>11.0f} ({size / 1024:5.0f})"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
