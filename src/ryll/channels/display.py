"""The display channel: surfaces, monitors, marks; everything else read and named.

This module owns the display channel's protocol state. Surfaces here are records (id, size,
format); their pixels belong to the render layer, which arrives with the display issue. Until
then every draw, stream and cache message is parsed far enough to be named and registered as
``display:unimpl:<message>`` (one gap key per message kind), never left unread.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ryll.channels.base import Channel, Handler
from ryll.channels.context import ChannelContext
from ryll.channels.events import DisplayMarked, SurfaceCreated, SurfaceDestroyed
from ryll.errors import ProtocolError
from ryll.protocol.constants import (
    ChannelType,
    DisplayCap,
    DisplayClient,
    DisplayServer,
    SurfaceFlags,
    SurfaceFmt,
)
from ryll.protocol.messages import display as msgs

# Surfaces a server may keep alive at once. spice-server's QXL device allows 1024 (qxl
# n_surfaces default); beyond that we refuse, so a hostile stream of creates stays bounded.
MAX_SURFACES = 1024


@dataclass(frozen=True, slots=True)
class Surface:
    surface_id: int
    width: int
    height: int
    format: int
    flags: int

    @property
    def primary(self) -> bool:
        return bool(self.flags & SurfaceFlags.PRIMARY)

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = asdict(self)
        try:
            data["format_name"] = SurfaceFmt(self.format).name
        except ValueError:
            data["format_name"] = f"unknown_{self.format}"
        data["primary"] = self.primary
        return data


class DisplayChannel(Channel):
    channel_type = ChannelType.DISPLAY
    channel_caps = (DisplayCap.MONITORS_CONFIG,)

    def __init__(self, channel_id: int, ctx: ChannelContext, mini_header: bool = True) -> None:
        super().__init__(channel_id, ctx, mini_header)
        self.surfaces: dict[int, Surface] = {}
        self.monitors: msgs.MonitorsConfig | None = None
        self.marks = 0
        self.resets = 0

    def start(self) -> None:
        """Display INIT: the server sends nothing after SET_ACK until it has it. Cache id 1 and
        dictionary id 1 as spice-gtk (all display channels of a session share them)."""
        opts = self.ctx.display
        glz = self.ctx.state.glz_window_bytes(opts)
        init = msgs.build_display_init(1, opts.cache_bytes // 4, 1, glz // 4)
        self.send(DisplayClient.INIT, init)

    def _on_surface_create(self, body: bytes) -> None:
        sc = msgs.parse_surface_create(body)
        if sc.surface_id not in self.surfaces and len(self.surfaces) >= MAX_SURFACES:
            raise ProtocolError(f"more than {MAX_SURFACES} live surfaces")
        surface = Surface(sc.surface_id, sc.width, sc.height, sc.format, sc.flags)
        self.surfaces[sc.surface_id] = surface
        self.log.info(
            "display: surface_create id=%d %dx%d format=%s%s",
            sc.surface_id,
            sc.width,
            sc.height,
            surface.as_dict()["format_name"],
            " primary" if surface.primary else "",
        )
        self.emit(SurfaceCreated(sc.surface_id, sc.width, sc.height, sc.format, surface.primary))

    def _on_surface_destroy(self, body: bytes) -> None:
        sid = msgs.parse_surface_destroy(body)
        if self.surfaces.pop(sid, None) is None:
            self.ctx.gaps.register(
                "display:orphan:surface_destroy", "destroy of a surface never created", body
            )
            return
        self.log.info("display: surface_destroy id=%d", sid)
        self.emit(SurfaceDestroyed(sid))

    def _on_monitors_config(self, body: bytes) -> None:
        self.monitors = msgs.parse_monitors_config(body)
        self.log.info(
            "display: monitors_config %s",
            ", ".join(
                f"#{h.id} surface {h.surface_id} {h.width}x{h.height}+{h.x}+{h.y}"
                for h in self.monitors.heads
            ),
        )

    def _on_mark(self, body: bytes) -> None:
        self.marks += 1
        self.emit(DisplayMarked())

    def _on_reset(self, body: bytes) -> None:
        # RESET (spice-gtk display_handle_reset): the primary surface's contents are void and
        # the palette cache is cleared; the surface record itself stays.
        self.resets += 1

    def _on_mode(self, body: bytes) -> None:
        mode = msgs.parse_mode(body)
        self.log.info("display: mode %dx%d@%d (legacy)", mode.x_res, mode.y_res, mode.bits)

    def _on_inval_all_palettes(self, body: bytes) -> None:
        # No palette cache exists before the render layer; nothing to invalidate.
        return

    def state(self) -> dict[str, object]:
        data = super().state()
        data["surfaces"] = [s.as_dict() for s in self.surfaces.values()]
        data["marks"] = self.marks
        data["monitors"] = (
            [asdict(h) for h in self.monitors.heads] if self.monitors is not None else None
        )
        return data


def _unimpl(opcode: DisplayServer) -> Handler:
    return lambda ch, body: ch.unimplemented(opcode, body)


_HANDLED: dict[int, Handler] = {
    DisplayServer.SURFACE_CREATE: DisplayChannel._on_surface_create,
    DisplayServer.SURFACE_DESTROY: DisplayChannel._on_surface_destroy,
    DisplayServer.MONITORS_CONFIG: DisplayChannel._on_monitors_config,
    DisplayServer.MARK: DisplayChannel._on_mark,
    DisplayServer.RESET: DisplayChannel._on_reset,
    DisplayServer.MODE: DisplayChannel._on_mode,
    DisplayServer.INVAL_ALL_PALETTES: DisplayChannel._on_inval_all_palettes,
}
# Every other display message the protocol defines is read and named until its issue lands.
DisplayChannel.handlers = {
    **{op: _unimpl(op) for op in DisplayServer if op not in _HANDLED},
    **_HANDLED,
}
