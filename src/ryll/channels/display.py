"""The display channel: the protocol half of the display (capabilities, INIT and preferences,
surface lifetimes, marks, monitors, cache invalidation, stream bookkeeping and reports).

Every draw is parsed here and handed to the channel's :class:`~ryll.render.canvas.Canvas`,
which owns the pixels and says what changed; the channel turns that into events
(``DisplayUpdated`` with the damaged rectangle) and registers the gaps the canvas met
(``display:unimpl:<detail>``, ``display:decode_failure:<codec>:<reason>``). None of them stops
the channel.

A draw whose GLZ image refers to one another display channel has not delivered yet is
*parked*: the channel keeps the parsed command and emits ``DecodeParked``; the session calls
:meth:`DisplayChannel.resume` when the image is in the shared dictionary (or
:meth:`DisplayChannel.expire` when the wait ran out, the gap
``display:decode_failure:glz_rgb:wait_expired``) before it hands the channel another message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ryll.channels.base import Channel, gap, handled
from ryll.channels.context import ChannelContext
from ryll.channels.events import (
    DecodeParked,
    DisplayMarked,
    DisplayReset,
    DisplayUpdated,
    MonitorsChanged,
    StreamCreated,
    StreamDestroyed,
    SurfaceCreated,
    SurfaceDestroyed,
    WaitRequested,
)
from ryll.protocol.constants import (
    ChannelType,
    DisplayCap,
    DisplayClient,
    DisplayServer,
    ImageCompression,
    ResourceType,
    VideoCodecType,
)
from ryll.protocol.link import has_cap
from ryll.protocol.messages import display as msgs
from ryll.protocol.messages import draw
from ryll.protocol.messages import stream as smsg
from ryll.protocol.messages.base import WaitForChannels, parse_wait_for_channels
from ryll.protocol.messages.draw import Rect
from ryll.render.canvas import Canvas, Changes, ImageNotReady
from ryll.render.streams import StreamTable
from ryll.render.streams import codec_name as video_codec_name
from ryll.render.surface import Surface
from ryll.video import available_codecs

# SpiceVideoCodecType -> the display cap that says the client decodes it.
VIDEO_CODEC_CAPS: dict[int, DisplayCap] = {
    VideoCodecType.MJPEG: DisplayCap.CODEC_MJPEG,
    VideoCodecType.VP8: DisplayCap.CODEC_VP8,
    VideoCodecType.H264: DisplayCap.CODEC_H264,
    VideoCodecType.VP9: DisplayCap.CODEC_VP9,
    VideoCodecType.H265: DisplayCap.CODEC_H265,
}

# How long a parked draw waits for another display channel's GLZ image. spice-gtk waits
# without bound (decode-glz.c: a coroutine condition); a bounded wait turns a lost image into
# the named gap display:decode_failure:glz_rgb:wait_expired.
GLZ_WAIT_TIMEOUT_S = 5.0


@dataclass
class Parked:
    """A draw waiting for a GLZ image: what to apply again, and since when."""

    op: Callable[[Canvas, Any], None]
    command: Any
    name: str
    image_id: int
    since: float
    body: bytes = b""  # the message's, for the hexdump of a gap it meets later


class DisplayChannel(Channel):
    channel_type = ChannelType.DISPLAY
    # CODEC_* caps only for the codecs whose decoder opens here (ryll.video.available_codecs):
    # with MULTI_CODEC the server picks among exactly those (spice-server
    # dcc_get_preferred_video_codec_for_client ...); any other stream is reported unsupported.
    # COMPOSITE and A8_SURFACE as spice-gtk (display_channel_init sets both unconditionally):
    # DRAW_COMPOSITE is rendered by render.composite, 8_A surfaces hold alpha (render.surface).
    channel_caps = (
        DisplayCap.MONITORS_CONFIG,
        DisplayCap.COMPOSITE,
        DisplayCap.A8_SURFACE,
        DisplayCap.LZ4_COMPRESSION,
        DisplayCap.PREF_COMPRESSION,
        DisplayCap.SIZED_STREAM,
        DisplayCap.STREAM_REPORT,
        DisplayCap.MULTI_CODEC,
        DisplayCap.PREF_VIDEO_CODEC_TYPE,
        *(VIDEO_CODEC_CAPS[c] for c in available_codecs()),
    )

    @classmethod
    def caps_for(cls, ctx: ChannelContext) -> tuple[int, ...]:
        """Without the codecs the options exclude (--no-h264): the server never streams
        what ryll said it does not decode."""
        excluded = {VIDEO_CODEC_CAPS[c] for c in ctx.display.excluded_codecs
                    if c in VIDEO_CODEC_CAPS}
        return tuple(c for c in cls.channel_caps if c not in excluded)

    def __init__(self, channel_id: int, ctx: ChannelContext, mini_header: bool = True) -> None:
        super().__init__(channel_id, ctx, mini_header)
        self.canvas = Canvas(ctx.display_shared)
        self.monitors: msgs.MonitorsConfig | None = None
        self.marks = 0
        self.marked = False  # spice-gtk's "mark": a MARK since the last RESET
        self.resets = 0
        self.parked: Parked | None = None
        self.parked_total = 0
        self.glz_wait_seconds = GLZ_WAIT_TIMEOUT_S
        self._clear_images_after_wait = False

    @property
    def surfaces(self) -> dict[int, Surface]:
        return self.canvas.surfaces

    @property
    def streams(self) -> StreamTable:
        return self.canvas.streams

    def start(self) -> None:
        """Display INIT: the server sends nothing after SET_ACK until it has it. Cache id 1 and
        dictionary id 1 as spice-gtk (all display channels of a session share them)."""
        opts = self.ctx.display
        glz = self.ctx.state.glz_window_bytes(opts)
        self.ctx.display_shared.glz_window_pixels = glz // 4
        init = msgs.build_display_init(1, opts.cache_bytes // 4, 1, glz // 4)
        self.send(DisplayClient.INIT, init)
        self._send_compression_preference()
        self._send_video_codec_preference()

    def _send_compression_preference(self) -> None:
        """PREFERRED_COMPRESSION after INIT (spice-gtk
        spice_display_channel_change_preferred_compression), only to a server with
        PREF_COMPRESSION."""
        pref = self.ctx.display.preferred_compression
        if pref is None:
            return
        if not has_cap(self.server_caps, DisplayCap.PREF_COMPRESSION):
            self.log.info("display: the server takes no compression preference")
            return
        self.send(DisplayClient.PREFERRED_COMPRESSION, bytes([pref]))
        self.log.info("display: preferred compression %s", ImageCompression(pref).name.lower())

    def _send_video_codec_preference(self) -> None:
        """PREFERRED_VIDEO_CODEC_TYPE after INIT, as spice-gtk's
        spice_display_channel_change_preferred_video_codec_types, only to a server that has
        PREF_VIDEO_CODEC_TYPE (spice-server ignores the message otherwise)."""
        codecs = self.ctx.display.video_codecs
        if not codecs:
            return
        if not has_cap(self.server_caps, DisplayCap.PREF_VIDEO_CODEC_TYPE):
            self.log.info("display: the server takes no video codec preference")
            return
        self.send(DisplayClient.PREFERRED_VIDEO_CODEC_TYPE,
                  smsg.build_preferred_video_codecs(list(codecs)))
        self.log.info("display: preferred video codecs %s",
                      ",".join(video_codec_name(c) for c in codecs))

    # --- the canvas ------------------------------------------------------------------------

    def apply(self, op: Callable[[Canvas, Any], None], command: Any) -> None:
        """Hand one command to the canvas; its damage becomes DisplayUpdated events and its
        gaps are registered. Raises ImageNotReady (see draw)."""
        self._report(self.canvas.apply(op, command))

    def _report(self, changes: Changes) -> None:
        for note in changes.gaps:
            self.gap(note.key, note.detail)
        for dmg in changes.damage:
            self.emit(DisplayUpdated(self.channel_id, dmg.surface_id, dmg.rect))

    def draw(self, op: Callable[[Canvas, Any], None], command: Any) -> None:
        """A draw message: to the canvas, or parked when its GLZ image is not here yet."""
        try:
            self.apply(op, command)
        except ImageNotReady as exc:
            self.parked = Parked(op, command, op.__name__, exc.image_id, self.now,
                                 self.body)
            self.parked_total += 1
            self.log.debug("display: %s parked until GLZ image %d arrives", op.__name__,
                           exc.image_id)
            self.emit(DecodeParked(self.channel_id, exc.image_id))

    def parked_ready(self) -> bool:
        """True when the parked draw's image has arrived (so :meth:`resume` will draw)."""
        parked = self.parked
        return parked is not None and self.ctx.display_shared.glz_dictionary().has(
            parked.image_id)

    def parked_deadline(self) -> float | None:
        return None if self.parked is None else self.parked.since + self.glz_wait_seconds

    def resume(self, now: float) -> None:
        """Apply the parked draw again (it may park again on another image); then read the
        events with take_events()."""
        parked, self.parked = self.parked, None
        if parked is None:
            return
        self.now = now
        self.body = parked.body
        try:
            self.draw(parked.op, parked.command)
        except Exception as exc:  # as Channel._dispatch: contained to this message
            self.log.exception("display: internal error resuming %s", parked.name)
            self.gap(f"display:internal:{parked.name}", f"{type(exc).__name__}: {exc}")
        if self.parked is not None:  # parked again, on another image: the wait goes on
            self.parked.since = parked.since
            self.parked_total -= 1

    def expire(self, now: float) -> None:
        """The parked draw's wait ran out: it is dropped, and the gap says why."""
        parked, self.parked = self.parked, None
        if parked is None:
            return
        self.ctx.gaps.register(
            "display:decode_failure:glz_rgb:wait_expired",
            f"{parked.name}: GLZ image {parked.image_id} never arrived within "
            f"{self.glz_wait_seconds:.0f} s", parked.body, self.state())

    # --- surfaces, monitors, marks ---------------------------------------------------------

    def _on_surface_create(self, sc: msgs.SurfaceCreate) -> None:
        changes = self.canvas.apply(Canvas.create_surface, sc)
        surface = self.surfaces.get(sc.surface_id)
        if surface is None:  # refused (the memory budget): the gap says so
            self._report(changes)
            return
        self.log.info(
            "display: surface_create id=%d %dx%d format=%s%s", sc.surface_id, sc.width,
            sc.height, surface.as_dict()["format_name"], " primary" if surface.primary else "",
        )
        self.emit(SurfaceCreated(self.channel_id, sc.surface_id, sc.width, sc.height, sc.format,
                                 surface.primary))
        self._report(changes)

    def _on_surface_destroy(self, sid: int) -> None:
        if not self.canvas.destroy_surface(sid):
            self.gap("display:orphan:surface_destroy", "destroy of a surface never created")
            return
        self.log.info("display: surface_destroy id=%d", sid)
        self.emit(SurfaceDestroyed(self.channel_id, sid))

    def _on_monitors_config(self, config: msgs.MonitorsConfig) -> None:
        self.monitors = config
        self.log.info(
            "display: monitors_config %s",
            ", ".join(
                f"#{h.id} surface {h.surface_id} {h.width}x{h.height}+{h.x}+{h.y}"
                for h in config.heads
            ),
        )
        self.emit(MonitorsChanged(self.channel_id, tuple(
            (h.id, h.surface_id, h.x, h.y, h.width, h.height) for h in config.heads)))

    def _on_mark(self, body: bytes) -> None:
        self.marks += 1
        self.marked = True
        self.emit(DisplayMarked(self.channel_id))

    def _on_reset(self, body: bytes) -> None:
        """spice-gtk display_handle_reset: the primary surface's canvas is cleared
        (canvas->ops->clear: all pixels 0, which an xRGB surface shows as black), the palette
        cache is emptied and the channel is no longer marked."""
        self.resets += 1
        primary = self.canvas.primary()
        if primary is not None:
            primary.pixels[...] = 0
            if not primary.has_alpha:
                primary.pixels[..., 3] = 255
            self.emit(DisplayUpdated(self.channel_id, primary.surface_id,
                                     Rect(0, 0, primary.height, primary.width)))
        self.ctx.display_shared.palettes.clear()
        self.marked = False
        self.emit(DisplayReset(self.channel_id))

    def _on_mode(self, mode: msgs.DisplayMode) -> None:
        self.log.info("display: mode %dx%d@%d (legacy)", mode.x_res, mode.y_res, mode.bits)

    def _on_inval_all_palettes(self, body: bytes) -> None:
        self.ctx.display_shared.palettes.clear()

    def _on_inval_palette(self, palette_id: int) -> None:
        self.ctx.display_shared.palettes.remove(palette_id)

    def _on_inval_list(self, resources: list[tuple[int, int]]) -> None:
        for rtype, rid in resources:
            if rtype == ResourceType.PIXMAP:
                self.ctx.display_shared.images.remove(rid)
            else:
                self.gap("display:malformed:inval_list_type", f"unknown resource type {rtype}")

    def _on_inval_all_pixmaps(self, wait: WaitForChannels) -> None:
        # spice-gtk display_handle_inv_pixmap_all: first wait for the listed channels to reach
        # the given serials (their in-flight draws may still use cached images), then clear.
        if wait.channels:
            self._clear_images_after_wait = True
            self.emit(WaitRequested(self.channel_type, self.channel_id, wait.channels))
        else:
            self.ctx.display_shared.images.clear()

    def wait_over(self) -> None:
        if self._clear_images_after_wait:
            self._clear_images_after_wait = False
            self.ctx.display_shared.images.clear()

    # --- video streams ----------------------------------------------------------------------

    def _on_stream_create(self, msg: smsg.StreamCreate) -> None:
        changes = self.canvas.apply(Canvas.create_stream, msg)
        stream = self.streams.streams[msg.id]
        name = video_codec_name(msg.codec)
        self.log.info(
            "display: stream_create id=%d %s %dx%d -> %dx%d+%d+%d%s", msg.id, name,
            msg.stream_width, msg.stream_height, msg.dest.width, msg.dest.height,
            msg.dest.left, msg.dest.top, "" if msg.flags & 1 else " bottom-up",
        )
        self.emit(StreamCreated(self.channel_id, msg.id, name, msg.surface_id, msg.dest,
                                stream.supported))
        self._report(changes)

    def _on_stream_data(self, msg: smsg.StreamData) -> None:
        """Frame bookkeeping (lateness against the server's mm_time, STREAM_REPORT windows,
        spice-gtk display_stream_stats_save / display_update_stream_report), then the frame
        to the canvas."""
        stream = self.canvas.stream(msg.id)
        if stream is None:
            return
        now = self.now
        stream.frames_received += 1
        stream.last_frame_at = now
        margin = (msg.mm_time - self.ctx.state.current_mm_time(now) + 2**31) % 2**32 - 2**31
        if margin < 0:
            stream.frames_late += 1
        if stream.report is not None and stream.supported:
            report = stream.report.add(stream.id, msg.mm_time, margin, now)
            if report is not None:
                self.send(DisplayClient.STREAM_REPORT, smsg.build_stream_report(report))
        if not stream.supported:
            return
        frames = stream.frames_decoded
        self.apply(Canvas.stream_frame, (stream, msg))
        if stream.frames_decoded != frames:
            stream.last_good_decode_at = now

    def _on_stream_clip(self, msg: smsg.StreamClip) -> None:
        stream = self.canvas.stream(msg.id)
        if stream is not None:
            stream.clip = msg.clip

    def _on_stream_destroy(self, stream_id: int) -> None:
        if self.canvas.remove_stream(stream_id):
            self.emit(StreamDestroyed(self.channel_id, stream_id))

    def _on_stream_destroy_all(self, body: bytes) -> None:
        # spice-server sends this when it destroys all surfaces (a QXL device reset); surfaces
        # and caches are owned by their own messages and are left alone here.
        ids = list(self.streams.streams)
        n = self.canvas.clear_streams()
        self.log.info("display: stream_destroy_all (clearing %d streams)", n)
        for stream_id in ids:
            self.emit(StreamDestroyed(self.channel_id, stream_id))

    def _on_stream_activate_report(self, msg: smsg.StreamActivateReport) -> None:
        stream = self.canvas.stream(msg.stream_id)
        if stream is None:
            return
        stream.activate_report(msg)
        if not stream.supported:
            # spice.proto: num_frames 0 with num_drops 0xffffffff says "cannot decode this".
            self.send(DisplayClient.STREAM_REPORT, smsg.build_stream_report(smsg.StreamReport(
                stream.id, msg.unique_id, 0, 0, 0, 0xFFFFFFFF, 0, 0xFFFFFFFF)))

    def state(self) -> dict[str, object]:
        data = super().state()
        data["streams"] = {
            **self.streams.summary(),
            "table": [s.as_dict() for s in self.streams.streams.values()],
            "recently_destroyed": list(self.streams.recently_destroyed),
        }
        data["surfaces"] = [s.as_dict() for s in self.surfaces.values()]
        data["image_cache"] = {
            "entries": len(self.ctx.display_shared.images),
            "bytes": self.ctx.display_shared.images.bytes,
        }
        data["marks"] = self.marks
        data["parked"] = None if self.parked is None else {
            "message": self.parked.name, "glz_image": self.parked.image_id}
        data["monitors"] = (
            [asdict(h) for h in self.monitors.heads] if self.monitors is not None else None
        )
        return data


def _draw(op: Callable[[Canvas, Any], None]) -> Callable[[DisplayChannel, Any], None]:
    """A handler that hands the parsed command to the canvas operation ``op``."""

    def handler(ch: DisplayChannel, command: Any) -> None:
        ch.draw(op, command)

    handler.__name__ = handler.__qualname__ = f"Canvas.{op.__name__}"
    return handler


def _mask_only(what: str) -> Callable[[bytes], draw.DrawMaskOnly]:
    def parse(body: bytes) -> draw.DrawMaskOnly:
        return draw.parse_mask_only(body, what)

    parse.__name__ = f"parse_{what}"
    return parse


_D = DisplayChannel
DisplayChannel.routes = {
    DisplayServer.MODE: handled(msgs.parse_mode, _D._on_mode),
    DisplayServer.MARK: handled(None, _D._on_mark),
    DisplayServer.RESET: handled(None, _D._on_reset),
    DisplayServer.COPY_BITS: handled(draw.parse_copy_bits, _draw(Canvas.copy_bits)),
    DisplayServer.INVAL_LIST: handled(msgs.parse_inval_list, _D._on_inval_list),
    DisplayServer.INVAL_ALL_PIXMAPS: handled(parse_wait_for_channels, _D._on_inval_all_pixmaps),
    DisplayServer.INVAL_PALETTE: handled(msgs.parse_inval_palette, _D._on_inval_palette),
    DisplayServer.INVAL_ALL_PALETTES: handled(None, _D._on_inval_all_palettes),
    DisplayServer.STREAM_CREATE: handled(smsg.parse_stream_create, _D._on_stream_create),
    DisplayServer.STREAM_DATA: handled(smsg.parse_stream_data, _D._on_stream_data),
    DisplayServer.STREAM_CLIP: handled(smsg.parse_stream_clip, _D._on_stream_clip),
    DisplayServer.STREAM_DESTROY: handled(smsg.parse_stream_destroy, _D._on_stream_destroy),
    DisplayServer.STREAM_DESTROY_ALL: handled(None, _D._on_stream_destroy_all),
    DisplayServer.DRAW_FILL: handled(draw.parse_draw_fill, _draw(Canvas.draw_fill)),
    DisplayServer.DRAW_OPAQUE: handled(draw.parse_draw_opaque, _draw(Canvas.draw_opaque)),
    DisplayServer.DRAW_COPY: handled(draw.parse_draw_copy, _draw(Canvas.draw_copy)),
    # canvas_base.c: ops->draw_blend = canvas_draw_copy ("copy and blend are the same").
    DisplayServer.DRAW_BLEND: handled(draw.parse_draw_copy, _draw(Canvas.draw_copy)),
    DisplayServer.DRAW_BLACKNESS: handled(_mask_only("draw_blackness"),
                                          _draw(Canvas.draw_blackness)),
    DisplayServer.DRAW_WHITENESS: handled(_mask_only("draw_whiteness"),
                                          _draw(Canvas.draw_whiteness)),
    DisplayServer.DRAW_INVERS: handled(_mask_only("draw_invers"), _draw(Canvas.draw_invers)),
    DisplayServer.DRAW_ROP3: handled(draw.parse_draw_rop3, _draw(Canvas.draw_rop3)),
    DisplayServer.DRAW_STROKE: handled(draw.parse_draw_stroke, _draw(Canvas.draw_stroke)),
    DisplayServer.DRAW_TEXT: handled(draw.parse_draw_text, _draw(Canvas.draw_text)),
    DisplayServer.DRAW_TRANSPARENT: handled(draw.parse_draw_transparent,
                                            _draw(Canvas.draw_transparent)),
    DisplayServer.DRAW_ALPHA_BLEND: handled(draw.parse_draw_alpha_blend,
                                            _draw(Canvas.draw_alpha_blend)),
    DisplayServer.SURFACE_CREATE: handled(msgs.parse_surface_create, _D._on_surface_create),
    DisplayServer.SURFACE_DESTROY: handled(msgs.parse_surface_destroy, _D._on_surface_destroy),
    DisplayServer.STREAM_DATA_SIZED: handled(smsg.parse_stream_data_sized, _D._on_stream_data),
    DisplayServer.MONITORS_CONFIG: handled(msgs.parse_monitors_config, _D._on_monitors_config),
    DisplayServer.DRAW_COMPOSITE: handled(draw.parse_draw_composite,
                                          _draw(Canvas.draw_composite)),
    DisplayServer.STREAM_ACTIVATE_REPORT: handled(smsg.parse_stream_activate_report,
                                                  _D._on_stream_activate_report),
    DisplayServer.GL_SCANOUT_UNIX: gap("a dma-buf handed over a unix socket: only for a "
                                       "local client with GL (spice-gtk gl_scanout)"),
    DisplayServer.GL_DRAW: gap("draws of a GL scanout, which ryll never gets (GL_SCANOUT_UNIX)"),
    DisplayServer.QUALITY_INDICATOR: gap("the server's stream-quality hint (spice-gtk logs it)"),
}
