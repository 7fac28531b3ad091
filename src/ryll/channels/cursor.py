"""The cursor channel (spice-gtk ``channel-cursor.c``): the pointer's shape, position and
visibility as the server draws it, and the cursor cache.

State a front end reads: ``x``, ``y`` (the hotspot's position on the display, in pixels),
``visible``, and ``shape`` (a ``render.cursor.CursorImage``: ``.rgba`` (H, W, 4) uint8 straight
alpha, ``.hot_x``, ``.hot_y``, ``.type``; None when there is no cursor). The cursor's top-left
corner is at ``(x - shape.hot_x, y - shape.hot_y)``.

Rules, from spice-gtk and spice-server:
- INIT and RESET clear the cache; RESET also forgets the shape and hides the cursor.
- SET with the NONE flag, or whose shape cannot be decoded (a named gap
  ``cursor:decode_failure:<type>:<reason>``), leaves no shape and hides the cursor.
- SET's and INIT's ``visible`` are honoured (spice-gtk ignores SET's); MOVE shows the cursor
  again after HIDE, as spice-server's own cursor state does (QXL_CURSOR_MOVE sets visible).
- FROM_CACHE of an id the cache does not hold is ``cursor:decode_failure:<type>:not_cached``.
- TRAIL is recorded only (spice-gtk does not draw trails either).
"""

from __future__ import annotations

from ryll.channels.base import Channel, handled
from ryll.channels.context import ChannelContext
from ryll.channels.events import CursorChanged
from ryll.protocol.constants import ChannelType, CursorFlags, CursorServer
from ryll.protocol.messages import cursor as msgs
from ryll.render.cursor import CursorCache, CursorDecodeError, CursorImage, cursor_type_name
from ryll.render.cursor import decode_cursor as decode_cursor_image


class CursorChannel(Channel):
    channel_type = ChannelType.CURSOR

    def __init__(self, channel_id: int, ctx: ChannelContext, mini_header: bool = True) -> None:
        super().__init__(channel_id, ctx, mini_header)
        self.x = self.y = 0
        self.visible = False
        self.trail = (0, 0)
        self.shape: CursorImage | None = None
        self.cache = CursorCache()
        ctx.memory.meter("cursor_cache", lambda: self.cache.bytes)
        self.shapes_decoded = 0
        self.cache_hits = 0

    # --- shapes ---------------------------------------------------------------------------

    def _decode(self, shape: msgs.CursorShape, body: bytes) -> CursorImage | None:
        """The image ``shape`` describes (decoded, or from the cache); None for NONE or on a
        failure, which is registered as a gap."""
        if shape.flags & CursorFlags.NONE or shape.header is None:
            return None
        hdr = shape.header
        kind = cursor_type_name(hdr.type)
        if shape.flags & CursorFlags.FROM_CACHE:
            image = self.cache.get(hdr.unique)
            if image is None:
                self.ctx.gaps.register(
                    f"{self.name}:decode_failure:{kind}:not_cached",
                    f"FROM_CACHE of cursor {hdr.unique:#x}, which is not in the cache",
                    body, self.state(),
                )
                return None
            self.cache_hits += 1
            return image
        try:
            image = decode_cursor_image(
                hdr.type, hdr.width, hdr.height, hdr.hot_x, hdr.hot_y, shape.data, hdr.unique
            )
        except CursorDecodeError as exc:
            self.ctx.gaps.register(
                f"{self.name}:decode_failure:{kind}:{exc.reason}", str(exc), body, self.state()
            )
            return None
        self.shapes_decoded += 1
        if shape.flags & CursorFlags.CACHE_ME:
            self.cache.put(hdr.unique, image)
        return image

    # --- handlers -------------------------------------------------------------------------

    def _changed(self, before: tuple[int, int, bool, CursorImage | None]) -> None:
        """Emit CursorChanged when position, visibility or shape differ from ``before``."""
        if before != (self.x, self.y, self.visible, self.shape):
            self.emit(CursorChanged(self.channel_id, self.x, self.y, self.visible, self.shape,
                                    self.shape is not before[3]))

    def _before(self) -> tuple[int, int, bool, CursorImage | None]:
        return self.x, self.y, self.visible, self.shape

    def _on_init(self, init: msgs.CursorInit) -> None:
        before = self._before()
        self.cache.clear()
        self.x, self.y = init.x, init.y
        self.trail = (init.trail_length, init.trail_frequency)
        self.shape = self._decode(init.cursor, self.body)
        self.visible = bool(init.visible) and self.shape is not None
        self._changed(before)

    def _on_set(self, cur: msgs.CursorSet) -> None:
        before = self._before()
        self.x, self.y = cur.x, cur.y
        self.shape = self._decode(cur.cursor, self.body)
        self.visible = bool(cur.visible) and self.shape is not None
        self._changed(before)

    def _on_move(self, pos: tuple[int, int]) -> None:
        before = self._before()
        self.x, self.y = pos
        self.visible = self.shape is not None
        self._changed(before)

    def _on_hide(self, body: bytes) -> None:
        before = self._before()
        self.visible = False
        self._changed(before)

    def _on_reset(self, body: bytes) -> None:
        before = self._before()
        self.cache.clear()
        self.visible = False
        self.shape = None
        self._changed(before)

    def _on_trail(self, t: msgs.CursorTrail) -> None:
        self.trail = (t.length, t.frequency)

    def _on_inval_one(self, unique: int) -> None:
        self.cache.remove(unique)

    def _on_inval_all(self, body: bytes) -> None:
        self.cache.clear()

    # --- state ----------------------------------------------------------------------------

    def cursor_state(self) -> dict[str, object]:
        """Position, visibility, shape and cache: the summary JSON's ``cursor`` section."""
        return {
            "channel_id": self.channel_id,
            "x": self.x,
            "y": self.y,
            "visible": self.visible,
            "shape": self.shape.as_dict() if self.shape is not None else None,
            "trail": list(self.trail),
            "shapes_decoded": self.shapes_decoded,
            "cache_hits": self.cache_hits,
            "cache": self.cache.as_dict(),
        }

    def state(self) -> dict[str, object]:
        data = super().state()
        data.update(self.cursor_state())
        return data


_C = CursorChannel
CursorChannel.routes = {
    CursorServer.INIT: handled(msgs.parse_init, _C._on_init),
    CursorServer.SET: handled(msgs.parse_set, _C._on_set),
    CursorServer.MOVE: handled(msgs.parse_move, _C._on_move),
    CursorServer.HIDE: handled(None, _C._on_hide),
    CursorServer.RESET: handled(None, _C._on_reset),
    CursorServer.TRAIL: handled(msgs.parse_trail, _C._on_trail),
    CursorServer.INVAL_ONE: handled(msgs.parse_inval_one, _C._on_inval_one),
    CursorServer.INVAL_ALL: handled(None, _C._on_inval_all),
}
