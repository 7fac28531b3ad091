"""How a rectangle's pixels travel to a page (see wire.py for the framing).

Chosen by measurement (bench/bench_viewer.py; the figures are in the README): on localhost,
RAW: a 640x480 screen takes 3.6 ms end to end (0.07 ms of ryll's CPU, 0.3 ms of the page's),
where PNG costs ryll 80 times the CPU and the page ten times the decode for bytes a loopback
socket does not miss. To any other address, PNG at level 1: lossless (the page matches
screendump), as fast as level 6 at 20 Mbit/s (22 ms a screen) at half ryll's CPU, and faster
than JPEG, which would need a lossless repaint after it anyway.
"""

from __future__ import annotations

import io

import numpy as np

from ryll.viewer.wire import Encoding

# Pillow's fastest deflate: an update is encoded on the session's thread.
PNG_LEVEL = 1


def choose_encoding(loopback: bool, pixels: int) -> Encoding:
    """The encoding of an update of ``pixels`` pixels for a page on loopback or not."""
    return Encoding.RAW if loopback else Encoding.PNG


def encode_rect(rgba: np.ndarray, encoding: Encoding) -> bytes | memoryview:
    """(h, w, 4) RGBA pixels as ``encoding``'s payload."""
    if encoding == Encoding.RAW:
        return memoryview(np.ascontiguousarray(rgba).reshape(-1))  # type: ignore[arg-type]
    if encoding == Encoding.PNG:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(rgba, "RGBA").save(buf, format="PNG", compress_level=PNG_LEVEL)
        return buf.getvalue()
    raise ValueError(f"no encoder for {encoding!r}")
