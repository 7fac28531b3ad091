"""SPICE GLZ image payloads (GLZ_RGB, ZLIB_GLZ_RGB) and the dictionary they share.

GLZ is LZ whose matches may also point into earlier images: each image carries an id (u64) and
a reference names an earlier image by its id distance and a pixel offset into it. The client keeps
those images in a window, the GLZ dictionary, shared by every display channel of a session
(display INIT's glz_dictionary_id), so a reference can point at an image that another channel
delivers later. The format is spice-gtk src/decode-glz.c (decode_header, the window) and
src/decode-glz-tmpl.c (the token loop, compiled in ``_lz``); the server side is
spice-server's server/glz-encoder*.c.

Output as ``ryll.codecs.lz``: (H, W, 4) uint8 B, G, R, A, top row first, alpha 255 unless the
image is RGBA.
"""

from __future__ import annotations

import struct
import sys
import zlib
from dataclasses import dataclass

import numpy as np

from ryll.codecs import _lz  # type: ignore[attr-defined]
from ryll.codecs.lz import (
    LZ_MAGIC,
    LZ_VERSION,
    MAX_PIXELS,
    OPAQUE,
    RGB16,
    RGB24,
    RGB32,
    RGBA,
    TYPE_NAMES,
    LzImage,
    as_bytes,
    check_size,
    output_buffer,
    raise_for,
)
from ryll.errors import DecodeError

# magic, version, type byte (low 4 bits type, bit 4 top_down: LZ_IMAGE_TYPE_LOG), width, height,
# stride, id (u64), win_head_dist (u32), all big-endian (decode-glz.c decode_header).
HEADER = struct.Struct(">IIBIIIQI")
LZ_IMAGE_TYPE_MASK = 0x0F
LZ_IMAGE_TYPE_LOG = 4

# spice-gtk's DECODE_TO_RGB32 has PLT decoders too, but glz decode() passes no palette, so a PLT
# GLZ image fails there; spice-server only GLZ-compresses RGB bitmaps. We accept the RGB types.
KIND = {RGB16: _lz.K_RGB16, RGB24: _lz.K_RGB, RGB32: _lz.K_RGB, RGBA: _lz.K_RGB}

# The window the dictionary keeps by default, as bytes: 4 bytes a pixel. The server keeps its
# references within the window the client announced (glz_window, pixels); spice-gtk frees images
# only when the server's win_head_dist says it no longer refers to them. We do that too, and
# also cap memory: images from two channels can interleave so that the images still needed
# span up to two windows (see GlzDictionary), hence the factor.
WINDOW_OVERLAP_FACTOR = 2
# Evicted pixel buffers kept for reuse: enough for a few images of the current size.
SPARE_BUFFERS = 4


class GlzMissingReference(DecodeError):
    """A GLZ image refers to an image the dictionary does not hold.

    ``image_id``: the id needed. ``evicted``: True when that image was in the window and has
    been dropped (or is older than anything the server may still refer to): waiting will not
    help. When False the image may still arrive on another display channel: decode again
    once ``dictionary.has(image_id)`` (the display channel parks the draw until then).
    """

    def __init__(self, message: str, image_id: int, evicted: bool) -> None:
        super().__init__(message, "missing_ref")
        self.image_id = image_id
        self.evicted = evicted


@dataclass(slots=True)
class _Entry:
    pixels: np.ndarray  # uint32, stream order (the first row sent first)
    alpha: bool
    win_head_dist: int


class GlzDictionary:
    """The client side of a GLZ window: decoded images by id, oldest evicted first.

    Bounds: the server's own release points (each image's win_head_dist, applied as spice-gtk
    does from the newest image with no gap before it), ``window_pixels`` (the glz_window
    announced in display INIT) times WINDOW_OVERLAP_FACTOR, and ``max_bytes`` of pixel data.
    Not thread-safe: the session runs every display decode of a session one at a time (on the
    event loop or in its one render worker). The sorted id / pointer arrays the compiled
    decoder reads are never changed in place where a view handed out can see (new images go
    past its end, evictions move its start), and a decode holds them (and so its images)
    while it runs.
    """

    def __init__(self, window_pixels: int, max_bytes: int = 256 * 1024 * 1024) -> None:
        if window_pixels <= 0 or max_bytes <= 0:
            raise ValueError("window_pixels and max_bytes must be positive")
        self.window_pixels = window_pixels
        self.max_bytes = max_bytes
        self._cap_pixels = min(window_pixels * WINDOW_OVERLAP_FACTOR, max_bytes // 4)
        self._images: dict[int, _Entry] = {}
        self._total = 0  # pixels held
        self._tail_gap: int | None = None  # the lowest id not yet received, past the first
        self._released_below = 0  # ids below this are gone for good
        self._spare: list[np.ndarray] = []  # evicted buffers to reuse
        self._reset_arrays()

    def _reset_arrays(self) -> None:
        self._adopt(
            np.empty(16, dtype=np.uint64), np.empty(16, dtype=np.intp),
            np.empty(16, dtype=np.int64), np.empty(16, dtype=np.uint8), [],
        )

    # The sorted arrays live in buffers with room at the end: ``_ids`` and its siblings are
    # the views [lo:hi]. Images arrive in id order, so an add writes one slot past ``hi`` (the
    # views a decode holds never see it) and an eviction moves ``lo``: no copy per image,
    # where np.insert copied all four arrays every time. ``_b_keep`` holds the pixel arrays
    # at the same indices (None below ``lo``), so it too only grows at the end.

    def _adopt(
        self, ids: np.ndarray, ptrs: np.ndarray, npix: np.ndarray, alpha: np.ndarray,
        keep: list[np.ndarray | None],
    ) -> None:
        """Takes four fresh buffers whose first ``len(keep)`` entries are the sorted arrays,
        and the pixel arrays they point at."""
        self._b_ids, self._b_ptrs, self._b_npix, self._b_alpha = ids, ptrs, npix, alpha
        self._b_keep = keep
        self._lo, self._hi = 0, len(keep)
        self._views()

    def _views(self) -> None:
        lo, hi = self._lo, self._hi
        self._ids = self._b_ids[lo:hi]
        self._ptrs = self._b_ptrs[lo:hi]
        self._npix = self._b_npix[lo:hi]
        self._alpha = self._b_alpha[lo:hi]

    def _append(self, image_id: int, pixels: np.ndarray, alpha: bool) -> None:
        """Puts the newest image after the others (in place, past every view handed out)."""
        if self._hi == self._b_ids.size:  # full: compact into new buffers twice the size
            n = self._hi - self._lo
            cap = max(16, 2 * n)
            live = (self._ids, self._ptrs, self._npix, self._alpha)
            b_ids, b_ptrs, b_npix, b_alpha = (np.empty(cap, dtype=a.dtype) for a in live)
            for buf, a in zip((b_ids, b_ptrs, b_npix, b_alpha), live, strict=True):
                buf[:n] = a
            self._adopt(b_ids, b_ptrs, b_npix, b_alpha, self._b_keep[self._lo:self._hi])
        hi = self._hi
        self._b_ids[hi] = image_id
        self._b_ptrs[hi] = pixels.ctypes.data
        self._b_npix[hi] = pixels.size
        self._b_alpha[hi] = 1 if alpha else 0
        self._b_keep.append(pixels)
        self._hi = hi + 1
        self._views()

    # -- queries -------------------------------------------------------------------------------

    def has(self, image_id: int) -> bool:
        return image_id in self._images

    def __contains__(self, image_id: int) -> bool:
        return self.has(image_id)

    def __len__(self) -> int:
        return len(self._images)

    @property
    def total_pixels(self) -> int:
        return self._total

    @property
    def cap_pixels(self) -> int:
        return self._cap_pixels

    def ids(self) -> list[int]:
        return [int(i) for i in self._ids]

    def is_evicted(self, image_id: int) -> bool:
        """True if the image can no longer arrive or be referred to: older than the window."""
        return image_id < self._released_below and image_id not in self._images

    def clear(self) -> None:
        """Forgets every image (a new dictionary after a reset or migration)."""
        self._images.clear()
        self._total = 0
        self._tail_gap = None
        self._released_below = 0
        self._reset_arrays()

    # -- used by the decoder ---------------------------------------------------------------------

    def _refs(
        self,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[np.ndarray | None]]:
        """Sorted ids, pixel pointers, sizes, alpha flags, and the pixel arrays themselves (the
        caller holds them while the compiled loop reads them)."""
        return self._ids, self._ptrs, self._npix, self._alpha, self._b_keep

    def _buffer(self, npix: int) -> np.ndarray:
        """A pixel buffer for a new image: an evicted one of the same size if there is one
        (so a steady stream of same-sized images allocates nothing), else a new one."""
        for i, buf in enumerate(self._spare):
            if buf.size == npix:
                del self._spare[i]
                return buf
        return np.empty(npix, dtype=np.uint32)

    def _recycle(self, bufs: list[np.ndarray]) -> None:
        """Keeps evicted buffers for reuse, but only those nothing else refers to: not a
        decode still reading its snapshot, not a result view handed to a caller."""
        while bufs:
            buf = bufs.pop()
            # 2: ``buf`` and getrefcount's own argument
            if sys.getrefcount(buf) == 2 and buf.base is None:
                if len(self._spare) < SPARE_BUFFERS:
                    self._spare.append(buf)
            del buf

    def add(self, image_id: int, pixels: np.ndarray, alpha: bool, win_head_dist: int) -> None:
        """Stores a decoded image (uint32 pixels in stream order) and evicts what the bounds say
        (decode_glz calls this; tests and tools may too)."""
        if pixels.dtype != np.uint32 or pixels.ndim != 1 or not pixels.flags.c_contiguous:
            raise ValueError("pixels must be a contiguous 1-D uint32 array")
        evicted: list[np.ndarray] = []
        if image_id in self._images:
            evicted.append(self._remove_at(int(np.searchsorted(self._ids, image_id))))
        n = self._hi - self._lo
        if n == 0 or int(self._ids[n - 1]) < image_id:  # the usual case: the newest id
            self._append(image_id, pixels, alpha)
        else:  # out of order (another channel's image came late): new arrays
            pos = int(np.searchsorted(self._ids, np.uint64(image_id)))
            keep = self._b_keep[self._lo:self._hi]
            keep.insert(pos, pixels)
            self._adopt(
                np.insert(self._ids, pos, np.uint64(image_id)),
                np.insert(self._ptrs, pos, pixels.ctypes.data),
                np.insert(self._npix, pos, pixels.size),
                np.insert(self._alpha, pos, 1 if alpha else 0),
                keep,
            )
        self._images[image_id] = _Entry(pixels, alpha, win_head_dist)
        self._total += pixels.size
        # glz_decoder_window_add: advance the gap-free tail.
        if self._tail_gap is None:
            self._tail_gap = image_id
        while self._tail_gap in self._images:
            self._tail_gap += 1
        # decode(): release below the newest gap-free image's window head.
        tail = self._images.get(self._tail_gap - 1)
        if tail is not None and self._tail_gap - 1 >= tail.win_head_dist:
            oldest = self._tail_gap - 1 - tail.win_head_dist
            if oldest > self._released_below:
                self._released_below = oldest
                count = int(np.searchsorted(self._ids, np.uint64(oldest)))
                evicted += self._remove_oldest(count)
        # our caps, oldest first
        if self._total > self._cap_pixels:
            # The fewest oldest images that bring the total under the cap: at a steady rate
            # one or two, so counted one by one rather than summing the whole window.
            over = self._total - self._cap_pixels
            count, freed = 0, 0
            sizes = self._npix
            while freed < over:
                freed += int(sizes[count])
                count += 1
            released = int(self._ids[count - 1]) + 1
            evicted += self._remove_oldest(count)
            self._released_below = max(self._released_below, released)
        del pixels
        self._recycle(evicted)

    def _remove_oldest(self, count: int) -> list[np.ndarray]:
        if count <= 0:
            return []
        lo = self._lo
        keep = self._b_keep
        gone: list[np.ndarray] = []
        for i in range(lo, lo + count):
            buf = keep[i]
            assert buf is not None
            gone.append(buf)
            keep[i] = None
        for i in self._ids[:count].tolist():
            del self._images[i]
        self._lo = lo + count
        self._views()
        self._total -= sum(b.size for b in gone)
        return gone

    def _remove_at(self, pos: int) -> np.ndarray:
        keep = self._b_keep[self._lo:self._hi]
        buf = keep.pop(pos)
        assert buf is not None
        del self._images[int(self._ids[pos])]
        self._adopt(
            np.delete(self._ids, pos), np.delete(self._ptrs, pos),
            np.delete(self._npix, pos), np.delete(self._alpha, pos), keep,
        )
        self._total -= buf.size
        return buf


def _parse_header(buf: np.ndarray) -> tuple[int, bool, int, int, int, int]:
    if buf.size < HEADER.size:
        raise DecodeError(f"glz: {buf.size} bytes is shorter than the header", "truncated")
    magic, version, tbyte, width, height, _stride, image_id, win_head_dist = HEADER.unpack_from(
        buf.data, 0
    )
    if magic != LZ_MAGIC:
        raise DecodeError(f"glz: bad magic {magic:#010x}", "bad_header")
    if version != LZ_VERSION:
        raise DecodeError(f"glz: unsupported version {version:#x}", "bad_header")
    typ = tbyte & LZ_IMAGE_TYPE_MASK
    if typ not in KIND:
        name = TYPE_NAMES.get(typ, str(typ))
        raise DecodeError(f"glz: unsupported image type {name}", "bad_header")
    top_down = (tbyte >> LZ_IMAGE_TYPE_LOG) != 0
    return typ, top_down, width, height, image_id, win_head_dist


def decode_glz(
    data: bytes | bytearray | memoryview | np.ndarray,
    dictionary: GlzDictionary,
    out: np.ndarray | None = None,
    max_pixels: int = MAX_PIXELS,
) -> LzImage:
    """Decodes one GLZ image and adds it to ``dictionary``.

    Without ``out`` the result's pixels are a read-only view of the dictionary's copy (no
    allocation beyond it); with ``out`` they are copied there. Raises GlzMissingReference
    (reason missing_ref) when a referenced image is not held, else DecodeError; on any error
    the dictionary is unchanged.
    """
    buf = as_bytes(data)
    typ, top_down, width, height, image_id, win_head_dist = _parse_header(buf)
    check_size(width, height, max_pixels, "glz")
    npix = width * height
    alpha = typ == RGBA
    ids, ptrs, sizes, alphas, keep = dictionary._refs()
    pixels = dictionary._buffer(npix)
    amask = 0 if alpha else OPAQUE
    err, pos, missing = _lz.lz_decode(
        buf, HEADER.size, pixels, npix, KIND[typ], True, None, amask, ids, ptrs, sizes, alphas,
        image_id,
    )
    if not err and alpha:
        err, pos, missing = _lz.lz_decode(
            buf, pos, pixels, npix, _lz.K_ALPHA, True, None, 0, ids, ptrs, sizes, alphas,
            image_id,
        )
    del keep
    if err:
        bufs = [pixels]
        del pixels
        dictionary._recycle(bufs)
        if err == _lz.E_MISSING:
            evicted = dictionary.is_evicted(missing)
            state = "evicted" if evicted else "not (yet) received"
            raise GlzMissingReference(
                f"glz: image {image_id} refers to image {missing}, {state}", missing, evicted
            )
        raise_for(err, "glz")
    dictionary.add(image_id, pixels, alpha, win_head_dist)
    view = pixels.view(np.uint8).reshape(height, width, 4)
    if not top_down:
        view = view[::-1]
    if out is None:
        view.flags.writeable = False
        return LzImage(typ, width, height, top_down, view)
    result = output_buffer(out, height, width)
    result[:] = view
    return LzImage(typ, width, height, top_down, result)


def decode_zlib_glz(
    data: bytes | bytearray | memoryview | np.ndarray,
    glz_data_size: int,
    dictionary: GlzDictionary,
    out: np.ndarray | None = None,
    max_pixels: int = MAX_PIXELS,
) -> LzImage:
    """ZLIB_GLZ_RGB: zlib-inflate ``data`` into at most ``glz_data_size`` bytes (the stream must
    end there, as spice-gtk's zlib decoder requires Z_STREAM_END), then decode_glz."""
    # A GLZ image never needs more than its literal bytes (at most 4 a pixel) plus one control
    # byte per 32 literals and the header: refuse anything larger before inflating.
    limit = max_pixels * 4 + max_pixels // 8 + HEADER.size + 64
    if glz_data_size <= 0 or glz_data_size > limit:
        raise DecodeError(f"zlib_glz: glz_data_size {glz_data_size} out of range", "too_large")
    inflater = zlib.decompressobj()
    try:
        glz = inflater.decompress(bytes(data) if isinstance(data, np.ndarray) else data,
                                  glz_data_size)
    except zlib.error as exc:
        raise DecodeError(f"zlib_glz: {exc}", "corrupt") from exc
    if not inflater.eof:
        if len(glz) >= glz_data_size:
            raise DecodeError("zlib_glz: inflates past glz_data_size", "corrupt")
        raise DecodeError("zlib_glz: the zlib stream is truncated", "truncated")
    return decode_glz(glz, dictionary, out=out, max_pixels=max_pixels)
