"""The image cache and palette cache a session's display channels share (spice-gtk keeps one
per session: ``SpiceSession.images``/``palettes``).

Both are bounded: the image cache by bytes (``--image-cache-cap-mib``; the Rust ryll's
default of 256 MiB, which held every workload it measured), the palette cache by count. When
full, the least recently used entry goes; a later FROM_CACHE for it becomes a named gap
rather than unbounded memory.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ryll.budget import MemoryBudget

DEFAULT_IMAGE_CACHE_BYTES = 256 * 1024 * 1024
# Palettes are at most 1 KiB each; spice-server's palette cache holds a few hundred.
MAX_PALETTES = 4096


class ImageKind(IntEnum):
    """What an image is before spice-common converts it for a canvas: the family of the pixman
    format canvas_get_image_internal gets from its decoder (``surface_format``), which decides
    the format it is converted to (canvas_get_target_format(canvas, surface_format ==
    a8r8g8b8)) and so how pixman reads it in a composite. Decided by the decoder (bitmap
    format, QUIC / LZ / GLZ / LZ4 type, JPEG vs JPEG_ALPHA) and kept with a cache entry, since
    a FROM_CACHE image is converted again on every use.

    * ``OPAQUE``: colour without alpha (x8r8g8b8, r8g8b8, x1r5g5b5; indexed bitmaps). ryll's
      decoders give such pixels alpha 255.
    * ``ALPHA``: a8r8g8b8 (RGBA bitmaps, QUIC / LZ / GLZ / LZ4 RGBA, JPEG_ALPHA).
    * ``ALPHA_ONLY``: a8 (8BIT_A bitmaps, LZ A8) and a1: colour 0, the alpha in the alpha
      byte. Not "alpha" to canvas_get_target_format, so a colour canvas gets it as x8r8g8b8 /
      16-bit colour: opaque black.
    """

    OPAQUE = 0
    ALPHA = 1
    ALPHA_ONLY = 2


@dataclass
class CachedImage:
    pixels: np.ndarray
    lossy: bool
    kind: ImageKind = ImageKind.OPAQUE


class ImageCache:
    """Least-recently-used, bounded in bytes. Used by one display decode at a time (the
    session serialises them), so it takes no lock."""

    def __init__(self, max_bytes: int = DEFAULT_IMAGE_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.evictions = 0
        self.refused = 0  # images not kept: the memory budget had no room even when empty
        # The session's budget (set by DisplayShared); this cache makes room in it too.
        self.memory: MemoryBudget | None = None
        self._items: OrderedDict[int, CachedImage] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, image_id: int) -> CachedImage | None:
        item = self._items.get(image_id)
        if item is not None:
            self._items.move_to_end(image_id)
        return item

    def put(self, image_id: int, pixels: np.ndarray, lossy: bool = False,
            kind: ImageKind = ImageKind.OPAQUE) -> None:
        self._put(image_id, pixels, lossy, kind)

    def _put(self, image_id: int, pixels: np.ndarray, lossy: bool, kind: ImageKind) -> None:
        self._remove(image_id)
        size = pixels.nbytes
        if size > self.max_bytes:
            return
        memory = self.memory
        while self._items and (self.bytes + size > self.max_bytes
                               or (memory is not None and not memory.fits(size))):
            _, old = self._items.popitem(last=False)
            self.bytes -= old.pixels.nbytes
            self.evictions += 1
        if memory is not None and not memory.fits(size):
            self.refused += 1  # a later FROM_CACHE of it is the gap decode_failure:missing
            memory.refused["image_cache"] += 1
            return
        self._items[image_id] = CachedImage(pixels, lossy, kind)
        self.bytes += size

    def shrink(self, nbytes: int) -> None:
        """Drop least recently used images until ``nbytes`` are freed (the memory budget's
        reclaimer: the cache yields to surfaces and decodes)."""
        target = self.bytes - nbytes
        while self._items and self.bytes > target:
            _, old = self._items.popitem(last=False)
            self.bytes -= old.pixels.nbytes
            self.evictions += 1

    def remove(self, image_id: int) -> None:
        self._remove(image_id)

    def _remove(self, image_id: int) -> None:
        old = self._items.pop(image_id, None)
        if old is not None:
            self.bytes -= old.pixels.nbytes

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0


class PaletteCache:
    """Small dict operations, atomic under the GIL; no lock needed."""

    def __init__(self, max_items: int = MAX_PALETTES) -> None:
        self.max_items = max_items
        self._items: OrderedDict[int, tuple[int, ...]] = OrderedDict()

    def get(self, palette_id: int) -> tuple[int, ...] | None:
        return self._items.get(palette_id)

    def put(self, palette_id: int, entries: tuple[int, ...]) -> None:
        self._items[palette_id] = entries
        self._items.move_to_end(palette_id)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def remove(self, palette_id: int) -> None:
        self._items.pop(palette_id, None)

    def clear(self) -> None:
        self._items.clear()
