"""Display channel messages (spice.proto ``channel DisplayChannel``) that the session layer
parses. Draw operations and image payloads belong to the render layer."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ryll.protocol.reader import Reader

# MONITORS_CONFIG: spice-server caps heads at 16 (SPICE_MAX_MONITORS in its qxl code); 256
# leaves room for other servers while keeping the loop bounded.
MAX_HEADS = 256


@dataclass(frozen=True, slots=True)
class SurfaceCreate:
    surface_id: int
    width: int
    height: int
    format: int
    flags: int


@dataclass(frozen=True, slots=True)
class Head:
    id: int
    surface_id: int
    width: int
    height: int
    x: int
    y: int
    flags: int


@dataclass(frozen=True, slots=True)
class MonitorsConfig:
    max_allowed: int
    heads: tuple[Head, ...]


@dataclass(frozen=True, slots=True)
class DisplayMode:
    x_res: int
    y_res: int
    bits: int


def parse_surface_create(body: bytes) -> SurfaceCreate:
    r = Reader(body, what="surface_create")
    return SurfaceCreate(r.u32(), r.u32(), r.u32(), r.u32(), r.u32())


def parse_surface_destroy(body: bytes) -> int:
    return Reader(body, what="surface_destroy").u32()


def parse_monitors_config(body: bytes) -> MonitorsConfig:
    r = Reader(body, what="monitors_config")
    count, max_allowed = r.u16(), r.u16()
    if count > MAX_HEADS:
        from ryll.errors import ProtocolError

        raise ProtocolError(f"monitors_config: {count} heads is over the limit of {MAX_HEADS}")
    r.count(count, 28, "heads")
    heads = tuple(Head(*(r.u32() for _ in range(7))) for _ in range(count))
    return MonitorsConfig(max_allowed, heads)


def parse_mode(body: bytes) -> DisplayMode:
    r = Reader(body, what="mode")
    return DisplayMode(r.u32(), r.u32(), r.u32())


# INVAL_LIST entries: spice-server's pixmap-cache code sends a handful at a time.
MAX_INVAL_RESOURCES = 65535


def parse_inval_list(body: bytes) -> list[tuple[int, int]]:
    """(resource type, id) pairs of INVAL_LIST (spice.proto ResourceID: u8 type, u64 id)."""
    r = Reader(body, what="inval_list")
    n = r.count(r.u16(), 9, "resources")
    return [(r.u8(), r.u64()) for _ in range(n)]


def parse_inval_palette(body: bytes) -> int:
    return Reader(body, what="inval_palette").u64()


def build_display_init(
    pixmap_cache_id: int, pixmap_cache_pixels: int, glz_dictionary_id: int, glz_window_pixels: int
) -> bytes:
    """SpiceMsgcDisplayInit; sizes are in pixels (spice-gtk divides bytes by 4)."""
    return struct.pack(
        "<BqBi", pixmap_cache_id, pixmap_cache_pixels, glz_dictionary_id, glz_window_pixels
    )
