"""Surfaces: the pixels a display channel draws into.

Pixels are a numpy array (H, W, 4) uint8 in **BGRA** memory order: the byte order of SPICE's
32-bit little-endian xRGB/ARGB surfaces, so 32-bit bitmaps and decoders write straight in. For
xRGB surfaces the alpha byte is kept at 255. Screenshots convert to RGB(A) once, at the edge.
"""

from __future__ import annotations

import numpy as np

from ryll.errors import ProtocolError
from ryll.protocol.constants import SurfaceFlags, SurfaceFmt

# The largest surface ryll allocates: 8192x4096 (128 MiB at 4 bytes a pixel), above the
# 4096x2160 primary surfaces QXL and virtio-gpu drivers use, and the bound behind the framer's
# message limit.
MAX_SURFACE_PIXELS = 8192 * 4096
MAX_SURFACE_SIDE = 16384


class Surface:
    def __init__(self, surface_id: int, width: int, height: int, fmt: int, flags: int) -> None:
        if not (0 < width <= MAX_SURFACE_SIDE and 0 < height <= MAX_SURFACE_SIDE) or (
            width * height > MAX_SURFACE_PIXELS
        ):
            raise ProtocolError(f"surface {surface_id}: {width}x{height} is over the size limit")
        self.surface_id = surface_id
        self.width = width
        self.height = height
        self.format = fmt
        self.flags = flags
        self.pixels = np.zeros((height, width, 4), dtype=np.uint8)
        if fmt != SurfaceFmt.FMT_32_ARGB:
            self.pixels[..., 3] = 255

    @property
    def primary(self) -> bool:
        return bool(self.flags & SurfaceFlags.PRIMARY)

    @property
    def has_alpha(self) -> bool:
        return self.format == SurfaceFmt.FMT_32_ARGB

    def rgb(self) -> np.ndarray:
        """(H, W, 3) RGB copy, the layout of QMP screendump and of PNG."""
        return np.ascontiguousarray(self.pixels[..., 2::-1])

    def as_dict(self) -> dict[str, object]:
        try:
            name = SurfaceFmt(self.format).name
        except ValueError:
            name = f"unknown_{self.format}"
        return {
            "surface_id": self.surface_id,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "flags": self.flags,
            "format_name": name,
            "primary": self.primary,
        }
