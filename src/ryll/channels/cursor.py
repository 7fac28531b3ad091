"""The cursor channel: position, visibility, trail; cursor shapes are named gaps until the
cursor image decoder lands (input issue)."""

from __future__ import annotations

from ryll.channels.base import Channel
from ryll.channels.context import ChannelContext
from ryll.protocol.constants import ChannelType, CursorServer
from ryll.protocol.messages import cursor as msgs


class CursorChannel(Channel):
    channel_type = ChannelType.CURSOR

    def __init__(self, channel_id: int, ctx: ChannelContext, mini_header: bool = True) -> None:
        super().__init__(channel_id, ctx, mini_header)
        self.x = self.y = 0
        self.visible = False
        self.trail = (0, 0)
        self.shape: msgs.CursorShape | None = None

    def _shape(self, opcode: int, shape: msgs.CursorShape, body: bytes) -> None:
        self.shape = shape
        if shape.header is not None:
            self.unimplemented(opcode, body)

    def _on_init(self, body: bytes) -> None:
        init = msgs.parse_init(body)
        self.x, self.y, self.visible = init.x, init.y, bool(init.visible)
        self.trail = (init.trail_length, init.trail_frequency)
        self._shape(CursorServer.INIT, init.cursor, body)

    def _on_set(self, body: bytes) -> None:
        cur = msgs.parse_set(body)
        self.x, self.y, self.visible = cur.x, cur.y, bool(cur.visible)
        self._shape(CursorServer.SET, cur.cursor, body)

    def _on_move(self, body: bytes) -> None:
        self.x, self.y = msgs.parse_move(body)

    def _on_hide(self, body: bytes) -> None:
        self.visible = False

    def _on_reset(self, body: bytes) -> None:
        self.visible = False
        self.shape = None

    def _on_trail(self, body: bytes) -> None:
        t = msgs.parse_trail(body)
        self.trail = (t.length, t.frequency)

    def _on_inval_one(self, body: bytes) -> None:
        msgs.parse_inval_one(body)

    def _on_inval_all(self, body: bytes) -> None:
        return

    def state(self) -> dict[str, object]:
        data = super().state()
        data.update(x=self.x, y=self.y, visible=self.visible, trail=list(self.trail))
        return data


CursorChannel.handlers = {
    CursorServer.INIT: CursorChannel._on_init,
    CursorServer.SET: CursorChannel._on_set,
    CursorServer.MOVE: CursorChannel._on_move,
    CursorServer.HIDE: CursorChannel._on_hide,
    CursorServer.RESET: CursorChannel._on_reset,
    CursorServer.TRAIL: CursorChannel._on_trail,
    CursorServer.INVAL_ONE: CursorChannel._on_inval_one,
    CursorServer.INVAL_ALL: CursorChannel._on_inval_all,
}
