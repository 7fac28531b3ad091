"""The display channel: surfaces and their pixels, draws, caches, monitors, marks.

This module owns the display channel's protocol state and drives the render layer. A draw
whose sub-feature is not rendered yet (a DRAW_COMPOSITE op or filter outside
``render.composite``, vector glyphs, an image codec without a decoder) registers
``display:unimpl:<detail>``; a payload that fails to decode registers
``display:decode_failure:<codec>:<reason>``; messages with no renderer at all register
``display:unimpl:<message>``. None of them stops the channel.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace

import numpy as np

from ryll.channels.base import Channel, Handler
from ryll.channels.context import ChannelContext
from ryll.channels.events import (
    DecodeDeferred,
    DisplayMarked,
    Event,
    SurfaceCreated,
    SurfaceDestroyed,
    WaitRequested,
)
from ryll.codecs.glz import GlzWaitNeeded
from ryll.errors import DecodeError, ProtocolError
from ryll.protocol.constants import (
    BrushType,
    ChannelType,
    CompositeFlags,
    DisplayCap,
    DisplayClient,
    DisplayServer,
    ImageCompression,
    ImageType,
    ResourceType,
    SurfaceFmt,
    VideoCodecType,
)
from ryll.protocol.framing import Message
from ryll.protocol.link import has_cap
from ryll.protocol.messages import display as msgs
from ryll.protocol.messages import draw
from ryll.protocol.messages import stream as smsg
from ryll.protocol.messages.base import parse_wait_for_channels
from ryll.protocol.reader import Reader
from ryll.render import canvas, ops
from ryll.render.canvas import Region
from ryll.render.composite import CompositeUnsupported, Format, Picture, composite
from ryll.render.images import Decoded, ImageKind, ImageUnsupported, codec_name, decode_image
from ryll.render.mask import MaskUnsupported, decode_mask, surface_bits
from ryll.render.rop import RopInput, SpiceRop, ropd_to_rop
from ryll.render.streams import MAX_STREAM_ID, MAX_STREAMS, Stream, StreamTable
from ryll.render.streams import codec_name as video_codec_name
from ryll.render.stroke import put_stroke
from ryll.render.surface import Surface, as_format
from ryll.render.text import put_text
from ryll.video import available_codecs, make_decoder

# SpiceVideoCodecType -> the display cap that says the client decodes it.
VIDEO_CODEC_CAPS: dict[int, DisplayCap] = {
    VideoCodecType.MJPEG: DisplayCap.CODEC_MJPEG,
    VideoCodecType.VP8: DisplayCap.CODEC_VP8,
    VideoCodecType.H264: DisplayCap.CODEC_H264,
    VideoCodecType.VP9: DisplayCap.CODEC_VP9,
    VideoCodecType.H265: DisplayCap.CODEC_H265,
}

# Surfaces a server may keep alive at once. spice-server's QXL device allows 1024 (qxl
# n_surfaces default); beyond that we refuse, so a hostile stream of creates stays bounded.
MAX_SURFACES = 1024


# analyze_extent: a source box (origin .. origin + size, widened by 1) must fit int16, so
# pixman composites nothing over a box this wide or high.
_PIXMAN_MAX_BOX = 0xFFFE

_PIXMAN_FORMATS: dict[int, Format] = {
    SurfaceFmt.FMT_32_xRGB: Format.X8R8G8B8,
    SurfaceFmt.FMT_32_ARGB: Format.A8R8G8B8,
    SurfaceFmt.FMT_16_565: Format.R5G6B5,
    SurfaceFmt.FMT_16_555: Format.X1R5G5B5,
    SurfaceFmt.FMT_8_A: Format.A8,
    SurfaceFmt.FMT_1_A: Format.A1,
}


def pixman_format(surface_fmt: int) -> Format:
    """spice_surface_format_to_pixman (a format spice-common does not know, which ryll keeps
    as 32-bit without alpha, is x8r8g8b8)."""
    return _PIXMAN_FORMATS.get(surface_fmt, Format.X8R8G8B8)


def target_format(canvas_fmt: int, has_alpha: bool) -> Format:
    """canvas_get_target_format: the canvas's format, except that on a 32-bit canvas an image
    with alpha (a8r8g8b8) stays a8r8g8b8 and one without is x8r8g8b8."""
    fmt = pixman_format(canvas_fmt)
    if has_alpha and fmt == Format.X8R8G8B8:
        return Format.A8R8G8B8
    if not has_alpha and fmt == Format.A8R8G8B8:
        return Format.X8R8G8B8
    return fmt


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

    def __init__(self, channel_id: int, ctx: ChannelContext, mini_header: bool = True) -> None:
        super().__init__(channel_id, ctx, mini_header)
        self.surfaces: dict[int, Surface] = {}
        self.monitors: msgs.MonitorsConfig | None = None
        self.marks = 0
        self.resets = 0
        self.drawn = False  # any pixel changed since the front end last looked
        self.streams = StreamTable()

    def _dispatch(self, message: Message) -> None:
        try:
            super()._dispatch(message)
        except GlzWaitNeeded:
            # Handled on the event loop, a GLZ image refers to one another display channel
            # has not delivered yet: the session handles the message again in a worker thread
            # that may wait for it (render.decoders), before this channel's next message.
            self.emit(DecodeDeferred(lambda: self._redispatch(message)))

    def _redispatch(self, message: Message) -> list[Event]:
        """The handler of a deferred message, again (CACHE_ME puts and dictionary adds done
        the first time are repeated with the same ids, which changes nothing)."""
        name = self.message_name(message.type)
        try:
            with self.lock:
                self.handlers[message.type](self, message.body)
        except ProtocolError as exc:
            self.ctx.gaps.register(f"display:malformed:{name}", str(exc), message.body,
                                   self.state())
        except GlzWaitNeeded as exc:  # only when the caller did not allow waiting
            self.ctx.gaps.register("display:decode_failure:glz_rgb:missing_ref", str(exc))
        events, self._events = self._events, []
        return events

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

    def _on_surface_create(self, body: bytes) -> None:
        sc = msgs.parse_surface_create(body)
        if sc.surface_id not in self.surfaces and len(self.surfaces) >= MAX_SURFACES:
            raise ProtocolError(f"more than {MAX_SURFACES} live surfaces")
        surface = Surface(sc.surface_id, sc.width, sc.height, sc.format, sc.flags)
        self.surfaces[sc.surface_id] = surface
        self.drawn = True
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
        self.ctx.display_shared.palettes.clear()

    def _on_inval_palette(self, body: bytes) -> None:
        self.ctx.display_shared.palettes.remove(msgs.parse_inval_palette(body))

    def _on_inval_list(self, body: bytes) -> None:
        for rtype, rid in msgs.parse_inval_list(body):
            if rtype == ResourceType.PIXMAP:
                self.ctx.display_shared.images.remove(rid)
            else:
                self.ctx.gaps.register("display:malformed:inval_list_type",
                                       f"unknown resource type {rtype}")

    def _on_inval_all_pixmaps(self, body: bytes) -> None:
        # spice-gtk display_handle_inv_pixmap_all: first wait for the listed channels to reach
        # the given serials (their in-flight draws may still use cached images), then clear.
        wait = parse_wait_for_channels(body)
        images = self.ctx.display_shared.images
        if wait.channels:
            self.emit(WaitRequested(wait.channels, then=images.clear))
        else:
            images.clear()

    # --- drawing ----------------------------------------------------------------------------

    def _target(self, base: draw.DisplayBase) -> Surface | None:
        surface = self.surfaces.get(base.surface_id)
        if surface is None:
            self.ctx.gaps.register("display:orphan:draw", "draw on a surface never created")
        return surface

    def _image(self, image: draw.Image | None) -> Decoded | None:
        """Decode (and cache) an image; on failure register the gap and return None."""
        if image is None:
            self.ctx.gaps.register("display:malformed:null_image", "draw without an image")
            return None
        try:
            return decode_image(image, self.ctx.display_shared, self.surfaces)
        except ImageUnsupported as exc:
            self.ctx.gaps.register(f"display:unimpl:{exc.detail}", "no decoder for this image")
        except DecodeError as exc:
            self.ctx.gaps.register(
                f"display:decode_failure:{codec_name(image.type)}:{exc.reason}", str(exc)
            )
        return None

    @staticmethod
    def _for(surface: Surface, image: draw.Image | None, decoded: Decoded) -> np.ndarray:
        """canvas_get_image(..., want_original=FALSE): a decoded image converted to the target
        canvas's format (canvas_get_target_format), as pixman reads it back. A SURFACE image
        is used as it is. An alpha-only image (an A8 bitmap, LZ A8; also from the image cache,
        which keeps the kind) is not "alpha" to canvas_get_target_format, so on a colour
        canvas it becomes x8r8g8b8 or 16-bit colour: opaque black."""
        pixels = decoded.pixels
        if image is None or image.type == ImageType.SURFACE:
            return pixels
        fmt = surface.format
        if (decoded.kind == ImageKind.ALPHA_ONLY
                and fmt not in (SurfaceFmt.FMT_8_A, SurfaceFmt.FMT_1_A)):
            pixels = np.zeros_like(pixels)
            pixels[..., 3] = 255
        return as_format(pixels, fmt)

    def _pattern_for(self, surface: Surface, brush: draw.Brush, decoded: Decoded | None
                     ) -> np.ndarray | None:
        """A pattern brush's image converted for the canvas (None for other brushes)."""
        return None if decoded is None else self._for(surface, brush.pattern, decoded)

    @staticmethod
    def _brush_for(surface: Surface, brush: draw.Brush) -> draw.Brush:
        """A solid brush's colour is a raw pixel of the surface's format."""
        if brush.type != BrushType.SOLID or not surface.quantised:
            return brush
        return replace(brush, color=surface.color(brush.color))

    def _unsupported(self, detail: str, what: str) -> None:
        self.ctx.gaps.register(f"display:unimpl:{detail}", what)

    def _mask(self, qmask: draw.QMask) -> tuple[bool, np.ndarray | None]:
        """Decode (and cache) a QMask's bits: (True, None) without a mask, (False, None) when
        the mask cannot be read (the gap is registered; the draw is dropped)."""
        if qmask.bitmap is None:
            return True, None
        if qmask.bitmap.type == ImageType.SURFACE:
            # canvas_mask_pixman: the surface's memory read as a1 bits (render.mask).
            sid = qmask.bitmap.surface_id
            source = self.surfaces.get(sid if sid is not None else -1)
            if source is None:
                self.ctx.gaps.register("display:decode_failure:qmask:no_surface",
                                       f"QMask surface {sid} does not exist")
                return False, None
            return True, surface_bits(source)
        try:
            return True, decode_mask(qmask.bitmap, self.ctx.display_shared.images)
        except MaskUnsupported as exc:
            self._unsupported(exc.detail, "a QMask image spice-common cannot use as a mask")
        except DecodeError as exc:
            self.ctx.gaps.register(f"display:decode_failure:qmask:{exc.reason}", str(exc))
        return False, None

    def _pattern(self, brush: draw.Brush) -> tuple[bool, Decoded | None]:
        """Decode (and cache) a pattern brush's image; (True, None) for other brushes."""
        if brush.type != BrushType.PATTERN:
            return True, None
        decoded = self._image(brush.pattern)
        return decoded is not None, decoded

    def _region(self, surface: Surface, base: draw.DisplayBase, qmask: draw.QMask | None = None,
                bits: np.ndarray | None = None) -> Region | None:
        return ops.region_for(surface.width, surface.height, base, qmask, bits)

    def _drew(self, problem: str | None, what: str) -> None:
        """Account for an ops call: it drew, or it names why not (``unimpl:x``/``malformed:x``)."""
        if problem is None:
            self.drawn = True
        else:
            self.ctx.gaps.register(f"display:{problem}", what)

    def _on_draw_copy(self, body: bytes) -> None:
        self._copy(draw.parse_draw_copy(body), "draw_copy")

    def _on_draw_blend(self, body: bytes) -> None:
        # canvas_base.c: ops->draw_blend = canvas_draw_copy ("copy and blend are the same").
        self._copy(draw.parse_draw_copy(body), "draw_blend")

    def _copy(self, d: draw.DrawCopy, what: str) -> None:
        # Decode first: CACHE_ME images must be cached even if nothing is drawn (the mask
        # before the source, in canvas_draw_copy's order).
        mask_ok, bits = self._mask(d.mask)
        decoded = self._image(d.image)
        surface = self._target(d.base)
        if not mask_ok or decoded is None or surface is None:
            return
        region = self._region(surface, d.base, d.mask, bits)
        if region is None:
            return
        rop = ropd_to_rop(d.rop, RopInput.SRC, RopInput.DEST)
        pixels = self._for(surface, d.image, decoded)
        self._drew(ops.put_image(surface.pixels, not surface.has_alpha, region, pixels,
                                 d.src_area, d.base.box, d.scale_mode, rop), what)

    def _on_draw_fill(self, body: bytes) -> None:
        d = draw.parse_draw_fill(body)
        mask_ok, bits = self._mask(d.mask)
        brush_ok, pattern = self._pattern(d.brush)
        surface = self._target(d.base)
        if not (mask_ok and brush_ok) or surface is None:
            return
        region = self._region(surface, d.base, d.mask, bits)
        if region is None:
            return
        rop = ropd_to_rop(d.rop, RopInput.BRUSH, RopInput.DEST)
        ops.put_brush(surface.pixels, not surface.has_alpha, region,
                      self._brush_for(surface, d.brush),
                      self._pattern_for(surface, d.brush, pattern), rop)
        self.drawn = True

    def _on_draw_opaque(self, body: bytes) -> None:
        d = draw.parse_draw_opaque(body)
        mask_ok, bits = self._mask(d.mask)
        decoded = self._image(d.image)
        brush_ok, pat = self._pattern(d.brush)
        surface = self._target(d.base)
        if not (mask_ok and brush_ok) or decoded is None or surface is None:
            return
        region = self._region(surface, d.base, d.mask, bits)
        if region is None:
            return
        # canvas_draw_opaque: the image is put, then the brush drawn over it with the rop
        # whose "dest" is the source (INVERS_SRC inverts the image's pixels).
        pixels = self._for(surface, d.image, decoded)
        pattern = self._pattern_for(surface, d.brush, pat)
        problem = ops.put_image(surface.pixels, not surface.has_alpha, region, pixels,
                                d.src_area, d.base.box, d.scale_mode, SpiceRop.COPY)
        if problem is not None:
            return self._drew(problem, "draw_opaque")
        rop = ropd_to_rop(d.rop, RopInput.BRUSH, RopInput.SRC)
        ops.put_brush(surface.pixels, not surface.has_alpha, region,
                      self._brush_for(surface, d.brush), pattern, rop)
        self.drawn = True

    def _mask_only(self, body: bytes, what: str, color: int, rop: SpiceRop) -> None:
        d = draw.parse_mask_only(body, what)
        mask_ok, bits = self._mask(d.mask)
        surface = self._target(d.base)
        if not mask_ok or surface is None:
            return
        region = self._region(surface, d.base, d.mask, bits)
        if region is None:
            return
        brush = self._brush_for(surface, draw.Brush(BrushType.SOLID, color=color))
        ops.put_brush(surface.pixels, not surface.has_alpha, region, brush, None, rop)
        self.drawn = True

    def _on_draw_blackness(self, body: bytes) -> None:
        # canvas_draw_blackness: fill_solid_rects with 0x000000 (alpha 0 on ARGB surfaces).
        self._mask_only(body, "draw_blackness", 0x00000000, SpiceRop.COPY)

    def _on_draw_whiteness(self, body: bytes) -> None:
        self._mask_only(body, "draw_whiteness", 0xFFFFFFFF, SpiceRop.COPY)

    def _on_draw_invers(self, body: bytes) -> None:
        self._mask_only(body, "draw_invers", 0x00000000, SpiceRop.INVERT)

    def _on_draw_rop3(self, body: bytes) -> None:
        d = draw.parse_draw_rop3(body)
        mask_ok, bits = self._mask(d.mask)
        decoded = self._image(d.image)
        brush_ok, pat = self._pattern(d.brush)
        surface = self._target(d.base)
        if not (mask_ok and brush_ok) or decoded is None or surface is None:
            return
        region = self._region(surface, d.base, d.mask, bits)
        if region is None:
            return
        pixels = self._for(surface, d.image, decoded)
        pattern = self._pattern_for(surface, d.brush, pat)
        self._drew(ops.put_rop3(surface.pixels, not surface.has_alpha, region, pixels,
                                d.src_area, d.base.box, d.scale_mode,
                                self._brush_for(surface, d.brush), pattern, d.rop3),
                   "draw_rop3")

    def _on_draw_transparent(self, body: bytes) -> None:
        d = draw.parse_draw_transparent(body)
        decoded = self._image(d.image)
        surface = self._target(d.base)
        if decoded is None or surface is None:
            return
        region = self._region(surface, d.base)
        if region is None:
            return
        ops.put_transparent(surface.pixels, not surface.has_alpha, region,
                            self._for(surface, d.image, decoded), d.src_area, d.base.box,
                            surface.color(d.true_color))
        self.drawn = True

    def _on_draw_alpha_blend(self, body: bytes) -> None:
        d = draw.parse_draw_alpha_blend(body)
        decoded = self._image(d.image)
        surface = self._target(d.base)
        if decoded is None or surface is None:
            return
        region = self._region(surface, d.base)
        if region is None or d.alpha == 0:
            return
        # canvas_draw_alpha_blend asks for the original image (want_original TRUE).
        ops.put_alpha_blend(surface.pixels, not surface.has_alpha, region, decoded.pixels,
                            d.src_area, d.base.box, d.alpha)
        self.drawn = True

    def _on_draw_stroke(self, body: bytes) -> None:
        # canvas_draw_stroke (render.stroke): thin lines or width-1 dashes, fore_mode's rop.
        d = draw.parse_draw_stroke(body)
        brush_ok, pattern = self._pattern(d.brush)
        surface = self._target(d.base)
        if not brush_ok or surface is None:
            return
        region = self._region(surface, d.base)
        if region is None:
            return
        stroke = replace(d, brush=self._brush_for(surface, d.brush))
        problem = put_stroke(surface.pixels, not surface.has_alpha, region, stroke,
                             self._pattern_for(surface, d.brush, pattern))
        self.drawn = True
        if problem is not None:
            self.ctx.gaps.register(f"display:{problem}", "draw_stroke not fully drawn")

    def _on_draw_text(self, body: bytes) -> None:
        d = draw.parse_draw_text(body)
        fore_ok, fore = self._pattern(d.fore_brush)
        back_ok, back = self._pattern(d.back_brush)
        surface = self._target(d.base)
        if not (fore_ok and back_ok) or surface is None:
            return
        region = self._region(surface, d.base)
        if region is None:
            return
        self._drew(put_text(surface.pixels, not surface.has_alpha, region, d.glyphs,
                            draw.glyph_bpp(d.string_flags), d.back_area,
                            self._brush_for(surface, d.back_brush),
                            self._pattern_for(surface, d.back_brush, back),
                            self._brush_for(surface, d.fore_brush),
                            self._pattern_for(surface, d.fore_brush, fore), d.fore_mode),
                   "draw_text")

    def _on_draw_composite(self, body: bytes) -> None:
        d = draw.parse_draw_composite(body)
        src = self._image(d.src)
        mask = self._image(d.mask) if d.mask is not None else None
        surface = self._target(d.base)
        if src is None or (d.mask is not None and mask is None) or surface is None:
            return
        region = self._region(surface, d.base)
        if region is None:
            return
        self._drew(self._composite(surface, region, d, src, mask), "draw_composite")

    def _composite_input(self, surface: Surface, image: draw.Image | None, decoded: Decoded,
                         force_opaque: bool) -> tuple[np.ndarray, int] | str:
        """A composite source or mask as canvas_draw_composite takes it, with its pixman
        format: a SURFACE image is the source surface's get_image (its own format;
        force_opaque, SOURCE_OPAQUE, strips the alpha bits of the format: an ARGB surface is
        read as x8r8g8b8), any other image is canvas_get_image(..., FALSE): converted to
        canvas_get_target_format(canvas, it has alpha)."""
        if image is None or image.type != ImageType.SURFACE:
            return (self._for(surface, image, decoded),
                    target_format(surface.format, decoded.kind == ImageKind.ALPHA))
        source = self.surfaces.get(image.surface_id if image.surface_id is not None else -1)
        fmt = pixman_format(source.format) if source is not None else (
            Format.A8R8G8B8 if decoded.kind == ImageKind.ALPHA else Format.X8R8G8B8)
        if force_opaque:
            if fmt in (Format.A8, Format.A1):
                # get_image strips the alpha bits: an alpha-only format with none left, which
                # pixman refuses (no image; spice-common then composites from NULL).
                return "malformed:composite_opaque_alpha_surface"
            if fmt == Format.A8R8G8B8:
                fmt = Format.X8R8G8B8
        return decoded.pixels, fmt

    def _composite(self, surface: Surface, region: Region, d: draw.DrawComposite,
                   src: Decoded, mask: Decoded | None) -> str | None:
        """canvas_draw_composite: the dest is the whole box read from the surface in its own
        pixman format (canvas_get_image_from_self; DEST_OPAQUE computes an opaque format
        there and then creates the image in the canvas's format anyway, so it changes
        nothing; MASK_OPAQUE is not read), pixman_image_composite32 over the whole box
        (render.composite) with the source at src_origin and the mask at mask_origin for the
        box's top left, and the result blitted back through the region (box, clip, surface).

        A box reaching outside the surface (spice-server's validate_drawable_bbox never sends
        one; canvas_read_bits would read memory outside the image there) is composited whole
        with the dest pixels off the surface read as 0: pixman's results on the surface depend
        on the box's size and origins (analyze_extent, the opaque tests, the previous-row
        source pixel) but not on other dest pixels, so they are exact. Only a box like that
        with more pixels than the surface itself (so that it never costs more than a
        whole-surface composite) is composited where it is on the surface, the origins offset
        by as much: exact per pixel except for those whole-box tests; and one 65534 or more
        wide or high, which pixman's analyze_extent always refuses, draws nothing."""
        flags = d.flags

        def bits(lo: int, hi: int) -> int:
            return (flags >> lo) & ((1 << (hi - lo)) - 1)

        src_in = self._composite_input(surface, d.src, src,
                                       bool(flags & CompositeFlags.SOURCE_OPAQUE))
        if isinstance(src_in, str):
            return src_in
        mask_in: tuple[np.ndarray, int] | None = None
        if mask is not None:
            got = self._composite_input(surface, d.mask, mask, False)
            if isinstance(got, str):
                return got
            mask_in = got
        box = d.base.box
        on = Region(0, 0, surface.height, surface.width).restrict(
            box.top, box.left, box.bottom, box.right)
        if on is None:
            return None
        if (on.top, on.left, on.bottom, on.right) == (box.top, box.left, box.bottom, box.right):
            area, dest = on, on.view(surface.pixels)
        elif box.width >= _PIXMAN_MAX_BOX or box.height >= _PIXMAN_MAX_BOX:
            return None
        elif box.width * box.height <= surface.width * surface.height:
            area = Region(box.top, box.left, box.bottom, box.right)
            dest = np.zeros((box.height, box.width, 4), np.uint8)
            dest[on.top - box.top:on.bottom - box.top,
                 on.left - box.left:on.right - box.left] = on.view(surface.pixels)
        else:
            area, dest = on, on.view(surface.pixels)
        dx, dy = area.left - box.left, area.top - box.top

        def picture(px_fmt: tuple[np.ndarray, int], t: draw.Transform | None, filt: int,
                    repeat: int, origin: tuple[int, int]) -> Picture:
            return Picture(px_fmt[0],
                           None if t is None else (t.t00, t.t01, t.t02, t.t10, t.t11, t.t12),
                           filt, repeat, (origin[0] + dx, origin[1] + dy), px_fmt[1])

        spic = picture(src_in, d.src_transform, bits(8, 11), bits(14, 16), d.src_origin)
        mpic = None if mask_in is None else picture(
            mask_in, d.mask_transform, bits(11, 14), bits(16, 18), d.mask_origin)
        try:
            out = composite(bits(0, 8), spic, mpic, bool(flags & CompositeFlags.COMPONENT_ALPHA),
                            dest, pixman_format(surface.format))
        except CompositeUnsupported as exc:
            return f"unimpl:{exc.detail}"
        canvas.commit(surface.pixels, region,
                      out[region.top - area.top:region.bottom - area.top,
                          region.left - area.left:region.right - area.left],
                      not surface.has_alpha)
        return None

    def _quantise_draw(self, body: bytes) -> None:
        """After a draw on a 16-bit, 8_A or 1_A surface: its box as that format stores it
        (render.surface). Every draw message starts with its DisplayBase."""
        if len(body) < 4:
            return
        surface = self.surfaces.get(int.from_bytes(body[:4], "little"))
        if surface is None or not surface.quantised:
            return
        box = draw.read_base(Reader(body, what="draw")).box
        surface.quantise(box.top, box.left, box.bottom, box.right)

    def _on_copy_bits(self, body: bytes) -> None:
        d = draw.parse_copy_bits(body)
        surface = self._target(d.base)
        if surface is None:
            return
        # Overlapping moves: copy the source area out first (spice-common canvas_copy_bits
        # uses a temporary the same way).
        sx, sy = d.src_pos
        box = d.base.box
        y0, x0 = max(sy, 0), max(sx, 0)
        y1 = min(sy + box.height, surface.height)
        x1 = min(sx + box.width, surface.width)
        if y0 >= y1 or x0 >= x1:
            return
        src = surface.pixels[y0:y1, x0:x1].copy()
        if canvas.blit(surface.pixels, not surface.has_alpha, box, d.base.clip_rects, src,
                       x0 + box.left - sx, y0 + box.top - sy):
            self.drawn = True

    # --- video streams ----------------------------------------------------------------------

    def _on_stream_create(self, body: bytes) -> None:
        msg = smsg.parse_stream_create(body)
        if msg.id >= MAX_STREAM_ID:
            raise ProtocolError(f"stream id {msg.id} is over the limit of {MAX_STREAM_ID}")
        if msg.id not in self.streams.streams and len(self.streams.streams) >= MAX_STREAMS:
            raise ProtocolError(f"more than {MAX_STREAMS} live streams")
        decoder = make_decoder(msg.codec)
        self.streams.add(Stream.from_create(msg, decoder is not None, decoder))
        name = video_codec_name(msg.codec)
        self.log.info(
            "display: stream_create id=%d %s %dx%d -> %dx%d+%d+%d%s", msg.id, name,
            msg.stream_width, msg.stream_height, msg.dest.width, msg.dest.height,
            msg.dest.left, msg.dest.top, "" if msg.flags & 1 else " bottom-up",
        )
        if decoder is None:
            self._unsupported(f"stream_codec_{name}", "no decoder for this video codec")

    def _stream(self, stream_id: int) -> Stream | None:
        stream = self.streams.streams.get(stream_id)
        if stream is None:
            # spice-server sends CLIP/DESTROY/DATA for streams it never created for us
            # (no encoder for the client): counted, never an error.
            self.streams.orphans += 1
        return stream

    def _on_stream_data(self, body: bytes) -> None:
        self._stream_frame(smsg.parse_stream_data(body))

    def _on_stream_data_sized(self, body: bytes) -> None:
        self._stream_frame(smsg.parse_stream_data_sized(body))

    def _stream_frame(self, msg: smsg.StreamData) -> None:
        stream = self._stream(msg.id)
        if stream is None:
            return
        now = self.ctx.clock()
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
        name = video_codec_name(stream.codec)
        if stream.decoder is None:
            return
        started = time.perf_counter()
        try:
            frame = stream.decoder.decode(msg.data)
        except DecodeError as exc:
            stream.frames_failed += 1
            self.streams.failed[name] += 1
            self.ctx.gaps.register(f"display:decode_failure:{name}:{exc.reason}", str(exc))
            return
        stream.last_decode_seconds = time.perf_counter() - started
        if frame is None:
            # The decoder holds the picture back (reordering): nothing to draw yet.
            return
        stream.frames_decoded += 1
        stream.last_good_decode_at = now
        self.streams.decoded[name] += 1
        if msg.dest is not None:
            stream.dest = msg.dest
        surface = self.surfaces.get(stream.surface_id)
        if surface is None:
            self.ctx.gaps.register("display:orphan:stream_surface", "stream on a missing surface")
            return
        if not stream.top_down:
            frame = frame[::-1]
        dest = stream.dest
        if dest.width <= 0 or dest.height <= 0:
            return
        if frame.shape[0] != dest.height or frame.shape[1] != dest.width:
            frame = canvas.scale_nearest(frame, dest.width, dest.height)
        if canvas.blit(surface.pixels, not surface.has_alpha, dest, stream.clip, frame,
                       dest.left, dest.top):
            surface.quantise(dest.top, dest.left, dest.bottom, dest.right)
            self.drawn = True

    def _on_stream_clip(self, body: bytes) -> None:
        msg = smsg.parse_stream_clip(body)
        stream = self._stream(msg.id)
        if stream is not None:
            stream.clip = msg.clip

    def _on_stream_destroy(self, body: bytes) -> None:
        sid = smsg.parse_stream_destroy(body)
        if self.streams.remove(sid) is None:
            self.streams.orphans += 1

    def _on_stream_destroy_all(self, body: bytes) -> None:
        # spice-server sends this when it destroys all surfaces (a QXL device reset); surfaces
        # and caches are owned by their own messages and are left alone here.
        n = self.streams.clear()
        self.log.info("display: stream_destroy_all (clearing %d streams)", n)

    def _on_stream_activate_report(self, body: bytes) -> None:
        msg = smsg.parse_stream_activate_report(body)
        stream = self._stream(msg.stream_id)
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
        data["monitors"] = (
            [asdict(h) for h in self.monitors.heads] if self.monitors is not None else None
        )
        return data


def _unimpl(opcode: DisplayServer) -> Handler:
    return lambda ch, body: ch.unimplemented(opcode, body)


_HANDLED: dict[int, Handler] = {
    DisplayServer.DRAW_COPY: DisplayChannel._on_draw_copy,
    DisplayServer.DRAW_FILL: DisplayChannel._on_draw_fill,
    DisplayServer.DRAW_OPAQUE: DisplayChannel._on_draw_opaque,
    DisplayServer.DRAW_BLEND: DisplayChannel._on_draw_blend,
    DisplayServer.DRAW_BLACKNESS: DisplayChannel._on_draw_blackness,
    DisplayServer.DRAW_WHITENESS: DisplayChannel._on_draw_whiteness,
    DisplayServer.DRAW_INVERS: DisplayChannel._on_draw_invers,
    DisplayServer.DRAW_ROP3: DisplayChannel._on_draw_rop3,
    DisplayServer.DRAW_TRANSPARENT: DisplayChannel._on_draw_transparent,
    DisplayServer.DRAW_ALPHA_BLEND: DisplayChannel._on_draw_alpha_blend,
    DisplayServer.DRAW_STROKE: DisplayChannel._on_draw_stroke,
    DisplayServer.DRAW_TEXT: DisplayChannel._on_draw_text,
    DisplayServer.DRAW_COMPOSITE: DisplayChannel._on_draw_composite,
    DisplayServer.COPY_BITS: DisplayChannel._on_copy_bits,
    DisplayServer.STREAM_CREATE: DisplayChannel._on_stream_create,
    DisplayServer.STREAM_DATA: DisplayChannel._on_stream_data,
    DisplayServer.STREAM_DATA_SIZED: DisplayChannel._on_stream_data_sized,
    DisplayServer.STREAM_CLIP: DisplayChannel._on_stream_clip,
    DisplayServer.STREAM_DESTROY: DisplayChannel._on_stream_destroy,
    DisplayServer.STREAM_DESTROY_ALL: DisplayChannel._on_stream_destroy_all,
    DisplayServer.STREAM_ACTIVATE_REPORT: DisplayChannel._on_stream_activate_report,
    DisplayServer.SURFACE_CREATE: DisplayChannel._on_surface_create,
    DisplayServer.SURFACE_DESTROY: DisplayChannel._on_surface_destroy,
    DisplayServer.MONITORS_CONFIG: DisplayChannel._on_monitors_config,
    DisplayServer.MARK: DisplayChannel._on_mark,
    DisplayServer.RESET: DisplayChannel._on_reset,
    DisplayServer.MODE: DisplayChannel._on_mode,
    DisplayServer.INVAL_ALL_PALETTES: DisplayChannel._on_inval_all_palettes,
    DisplayServer.INVAL_PALETTE: DisplayChannel._on_inval_palette,
    DisplayServer.INVAL_LIST: DisplayChannel._on_inval_list,
    DisplayServer.INVAL_ALL_PIXMAPS: DisplayChannel._on_inval_all_pixmaps,
}


def _quantising(handler: Handler) -> Handler:
    def run(ch: Channel, body: bytes) -> None:
        handler(ch, body)
        assert isinstance(ch, DisplayChannel)
        ch._quantise_draw(body)

    return run


# Draws (each starts with a DisplayBase) are followed by quantising their box on surfaces whose
# format stores less than BGRA (render.surface.quantise).
for _op in (DisplayServer.DRAW_COPY, DisplayServer.DRAW_FILL, DisplayServer.DRAW_OPAQUE,
            DisplayServer.DRAW_BLEND, DisplayServer.DRAW_BLACKNESS, DisplayServer.DRAW_WHITENESS,
            DisplayServer.DRAW_INVERS, DisplayServer.DRAW_ROP3, DisplayServer.DRAW_TRANSPARENT,
            DisplayServer.DRAW_ALPHA_BLEND, DisplayServer.DRAW_STROKE, DisplayServer.DRAW_TEXT,
            DisplayServer.DRAW_COMPOSITE, DisplayServer.COPY_BITS):
    _HANDLED[_op] = _quantising(_HANDLED[_op])
# Every other display message the protocol defines is read and named until its issue lands.
DisplayChannel.handlers = {
    **{op: _unimpl(op) for op in DisplayServer if op not in _HANDLED},
    **_HANDLED,
}
