"""How a rectangle's pixels travel to a page (see wire.py for the framing).

Measured with bench/bench_viewer.py (the figures and the reasoning are in the README): on
localhost, RAW: the bytes cost one copy, where PNG's deflate costs ryll's CPU many times that
and the browser has no gain from fewer bytes on a loopback socket. Over a network, PNG: lossless
(the page matches screendump), and text and flat desktop areas compress well.
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
