"""The cursor channel: every message, the cache rules, named gaps for bad cursors, and the
bytes a real spice-server sent for a guest's qxl DRM hardware cursor."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from tests.channels.test_channels import frame

from ryll.channels.context import ChannelContext
from ryll.channels.cursor import CursorChannel
from ryll.channels.display import DisplayChannel
from ryll.channels.events import CursorChanged
from ryll.cli.main import main
from ryll.protocol.constants import CursorFlags, CursorServer, CursorType, SurfaceFlags, SurfaceFmt
from ryll.render.cursor import CursorCache
from ryll.render.surface import Surface
from ryll.session.screens import Monitor, grab_monitor

FIXTURE = Path(__file__).parent.parent / "fixtures" / "cursor" / "qxl-drm-cursor.bin"
NONE, CACHE_ME, FROM_CACHE = CursorFlags.NONE, CursorFlags.CACHE_ME, CursorFlags.FROM_CACHE


def cursor(flags: int = 0, unique: int = 0, ctype: int = CursorType.ALPHA, w: int = 2,
           h: int = 2, hot: tuple[int, int] = (0, 0), data: bytes | None = None) -> bytes:
    """A SpiceCursor: flags, then (unless NONE) the header and the data."""
    if flags & NONE:
        return struct.pack("<H", flags)
    if data is None:
        data = b"" if flags & FROM_CACHE else bytes(range(4 * w * h))
    return struct.pack("<HQBHHHH", flags, unique, ctype, w, h, *hot) + data


def set_body(x: int, y: int, visible: int, cur: bytes) -> bytes:
    return struct.pack("<hhB", x, y, visible) + cur


def init_body(x: int, y: int, visible: int, cur: bytes, trail: tuple[int, int] = (0, 0)) -> bytes:
    return struct.pack("<hhHHB", x, y, *trail, visible) + cur


def chan() -> tuple[CursorChannel, ChannelContext]:
    ctx = ChannelContext()
    return CursorChannel(0, ctx), ctx


def send(ch: CursorChannel, opcode: int, body: bytes = b"") -> None:
    ch.receive_data(frame(opcode, body))


def test_init_set_move_hide() -> None:
    ch, ctx = chan()
    send(ch, CursorServer.INIT, init_body(10, 20, 1, cursor(hot=(1, 1)), trail=(3, 4)))
    assert (ch.x, ch.y, ch.visible, ch.trail) == (10, 20, True, (3, 4))
    assert ch.shape is not None and (ch.shape.hot_x, ch.shape.hot_y) == (1, 1)
    assert ch.shape.type == CursorType.ALPHA and ch.shape.rgba.shape == (2, 2, 4)
    # data bytes 0..15 are B, G, R, A per pixel
    assert tuple(ch.shape.rgba[0, 0]) == (2, 1, 0, 3)
    send(ch, CursorServer.MOVE, struct.pack("<hh", -3, 300))
    assert (ch.x, ch.y, ch.visible) == (-3, 300, True)
    send(ch, CursorServer.HIDE)
    assert ch.visible is False and ch.shape is not None
    send(ch, CursorServer.MOVE, struct.pack("<hh", 5, 6))  # as spice-server: MOVE shows it
    assert (ch.x, ch.y, ch.visible) == (5, 6, True)
    send(ch, CursorServer.SET, set_body(7, 8, 0, cursor(w=3, h=1)))
    assert (ch.x, ch.y, ch.visible) == (7, 8, False) and ch.shape.width == 3
    send(ch, CursorServer.TRAIL, struct.pack("<HH", 5, 9))
    assert ch.trail == (5, 9)
    state = ch.state()
    assert state["shape"] == {"type": "alpha", "width": 3, "height": 1, "hot_x": 0, "hot_y": 0,
                              "unique": 0}
    assert state["x"] == 7 and state["visible"] is False
    assert len(ctx.gaps) == 0


def test_every_change_is_one_cursor_changed_event() -> None:
    """Position, visibility and shape changes each emit CursorChanged (shape_changed when the
    picture itself is new); a message that changes nothing emits nothing."""
    ch, _ = chan()

    def got(opcode: int, body: bytes = b"") -> list[object]:
        return ch.receive_data(frame(opcode, body))

    [init] = got(CursorServer.INIT, init_body(10, 20, 1, cursor()))
    assert isinstance(init, CursorChanged) and init.shape is ch.shape
    assert (init.channel_id, init.x, init.y, init.visible, init.shape_changed) == \
        (0, 10, 20, True, True)
    assert got(CursorServer.MOVE, struct.pack("<hh", 11, 21)) == [
        CursorChanged(0, 11, 21, True, ch.shape, False)]
    assert got(CursorServer.MOVE, struct.pack("<hh", 11, 21)) == []  # nothing changed
    assert got(CursorServer.HIDE) == [CursorChanged(0, 11, 21, False, ch.shape, False)]
    [new] = got(CursorServer.SET, set_body(1, 2, 1, cursor(w=3, h=1)))
    assert isinstance(new, CursorChanged) and new.shape_changed and new.shape is not None
    assert new.shape.width == 3
    assert got(CursorServer.TRAIL, struct.pack("<HH", 5, 9)) == []
    assert got(CursorServer.RESET) == [CursorChanged(0, 1, 2, False, None, True)]


def test_none_flag_hides() -> None:
    ch, ctx = chan()
    send(ch, CursorServer.INIT, init_body(0, 0, 1, cursor()))
    send(ch, CursorServer.SET, set_body(1, 1, 1, cursor(flags=NONE)))
    assert ch.shape is None and ch.visible is False
    send(ch, CursorServer.MOVE, struct.pack("<hh", 2, 2))
    assert ch.visible is False  # nothing to show
    assert len(ctx.gaps) == 0


def test_cache_me_from_cache_inval_one_inval_all() -> None:
    ch, ctx = chan()
    send(ch, CursorServer.INIT, init_body(0, 0, 1, cursor(flags=NONE)))
    send(ch, CursorServer.SET, set_body(0, 0, 1, cursor(flags=CACHE_ME, unique=0x11, w=4)))
    first = ch.shape
    send(ch, CursorServer.SET, set_body(0, 0, 1, cursor(flags=CACHE_ME, unique=0x22, w=1)))
    send(ch, CursorServer.SET, set_body(0, 0, 1, cursor(flags=FROM_CACHE, unique=0x11)))
    assert ch.shape is first and ch.visible and ch.cache_hits == 1
    send(ch, CursorServer.INVAL_ONE, struct.pack("<Q", 0x11))
    assert 0x11 not in ch.cache and 0x22 in ch.cache
    send(ch, CursorServer.SET, set_body(0, 0, 1, cursor(flags=FROM_CACHE, unique=0x11)))
    assert ch.shape is None and ch.visible is False
    assert ctx.gaps.counts() == {"cursor:decode_failure:alpha:not_cached": 1}
    send(ch, CursorServer.INVAL_ALL)
    assert len(ch.cache) == 0
    send(ch, CursorServer.SET, set_body(0, 0, 1, cursor(flags=FROM_CACHE, unique=0x22)))
    assert ctx.gaps.counts() == {"cursor:decode_failure:alpha:not_cached": 2}


def test_init_and_reset_clear_the_cache() -> None:
    ch, _ = chan()
    send(ch, CursorServer.INIT, init_body(0, 0, 1, cursor(flags=CACHE_ME, unique=1)))
    assert 1 in ch.cache
    send(ch, CursorServer.RESET)
    assert len(ch.cache) == 0 and ch.shape is None and ch.visible is False
    send(ch, CursorServer.SET, set_body(0, 0, 1, cursor(flags=CACHE_ME, unique=2)))
    send(ch, CursorServer.INIT, init_body(0, 0, 1, cursor(flags=NONE)))
    assert len(ch.cache) == 0


def test_cache_eviction_through_the_channel() -> None:
    ch, ctx = chan()
    ch.cache = CursorCache(max_entries=2)
    for unique in (1, 2, 3):
        send(ch, CursorServer.SET, set_body(0, 0, 1, cursor(flags=CACHE_ME, unique=unique)))
    assert ch.cache.evictions == 1 and 1 not in ch.cache
    send(ch, CursorServer.SET, set_body(0, 0, 1, cursor(flags=FROM_CACHE, unique=1)))
    assert "cursor:decode_failure:alpha:not_cached" in ctx.gaps


@pytest.mark.parametrize(
    ("cur", "key"),
    [
        (cursor(data=bytes(15)), "cursor:decode_failure:alpha:truncated"),
        (cursor(data=bytes(17)), "cursor:decode_failure:alpha:size_mismatch"),
        (cursor(w=600, h=2, data=b""), "cursor:decode_failure:alpha:bad_size"),
        (cursor(w=0, h=0, data=b""), "cursor:decode_failure:alpha:bad_size"),
        (cursor(ctype=CursorType.MONO, w=8, h=2, data=bytes(3)),
         "cursor:decode_failure:mono:truncated"),
        (cursor(ctype=CursorType.COLOR4, w=4, h=4, data=bytes(8 + 64 + 3)),
         "cursor:decode_failure:color4:truncated"),
        (cursor(ctype=42, data=bytes(16)), "cursor:decode_failure:type42:unknown_type"),
    ],
)
def test_bad_cursors_are_named_gaps(cur: bytes, key: str) -> None:
    ch, ctx = chan()
    send(ch, CursorServer.INIT, init_body(0, 0, 1, cursor()))
    send(ch, CursorServer.SET, set_body(1, 2, 1, cur))
    assert ctx.gaps.counts() == {key: 1}
    assert ch.shape is None and ch.visible is False and (ch.x, ch.y) == (1, 2)
    # The channel carries on.
    send(ch, CursorServer.SET, set_body(3, 4, 1, cursor()))
    assert ch.shape is not None and ch.visible and len(ctx.gaps) == 1


def test_short_header_is_malformed_not_a_crash() -> None:
    ch, ctx = chan()
    send(ch, CursorServer.SET, set_body(0, 0, 1, cursor()[:9]))
    assert list(ctx.gaps.counts()) == ["cursor:malformed:set"]


def replay_fixture(ch: CursorChannel) -> int:
    data, off, n = FIXTURE.read_bytes(), 0, 0
    while off < len(data):
        opcode, size = struct.unpack_from("<HI", data, off)
        send(ch, opcode, data[off + 6:off + 6 + size])
        off += 6 + size
        n += 1
    return n


def guest_cursor_rgba() -> np.ndarray:
    """guest/cursor.c cursor_pixel() as RGBA."""
    y, x = np.mgrid[0:64, 0:64]
    checker = np.where(((x // 8 + y // 8) & 1) == 1, 0xFF, 0x80)
    a = np.where((x < 4) | (y < 4) | (x >= 60) | (y >= 60), 0xFF, checker)
    rgba = np.stack([(x * 4) & 0xFF, (y * 4) & 0xFF, ((x ^ y) * 4 + 3) & 0xFF, a], axis=-1)
    rgba[(x >= 48) & (y >= 48)] = 0
    return rgba.astype(np.uint8)


def test_real_server_qxl_drm_cursor() -> None:
    """spice-server 0.15 + the guest's qxl DRM driver (tests/e2e/test_cursor.py's VM): INIT with
    NONE, INVAL_ALL/RESET/INIT per device reset, one SET (ALPHA 64x64, hot (5, 7), unique 0, no
    cache flags) at the hotspot position, then three MOVEs."""
    ch, ctx = chan()
    assert replay_fixture(ch) == 31
    assert ch.stats.by_message["set"] == 1 and ch.stats.by_message["move"] == 3
    assert (ch.x, ch.y, ch.visible) == (325, 247, True)
    assert ch.shape is not None
    assert (ch.shape.type, ch.shape.hot_x, ch.shape.hot_y) == (CursorType.ALPHA, 5, 7)
    assert np.array_equal(ch.shape.rgba, guest_cursor_rgba())
    assert len(ctx.gaps) == 0


def test_screen_grab_draws_the_cursor_at_its_hotspot_when_visible() -> None:
    ch, ctx = chan()
    replay_fixture(ch)
    assert ch.shape is not None
    surface = Surface(0, 640, 480, SurfaceFmt.FMT_32_xRGB, SurfaceFlags.PRIMARY)
    surface.pixels[...] = (0, 0, 0, 255)
    monitor = Monitor(DisplayChannel(0, ctx), surface, ch)
    black = np.zeros((480, 640, 3), np.uint8)
    out = grab_monitor(monitor, with_cursor=True).pixels
    # The guest put the cursor's top-left at (320, 240); its first pixel is opaque.
    assert tuple(out[240, 320]) == tuple(ch.shape.rgba[0, 0, :3])
    assert out[:240].max() == 0 and out[:, :320].max() == 0
    assert np.array_equal(grab_monitor(monitor).pixels, black)  # without the cursor
    ch.visible = False
    assert np.array_equal(grab_monitor(monitor, with_cursor=True).pixels, black)
    no_cursor = Monitor(monitor.display, surface, None)
    assert np.array_equal(grab_monitor(no_cursor, None, True).pixels, black)


def test_screenshot_cursor_needs_screenshot(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--direct", "h:1", "--headless", "--screenshot-cursor"]) == 2
    assert "--screenshot-cursor needs --screenshot" in capsys.readouterr().err
