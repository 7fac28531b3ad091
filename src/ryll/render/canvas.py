"""The canvas of one display channel: it owns the surfaces, the video streams and (shared with
the session's other display channels) the image, palette and GLZ caches, takes typed draw
commands, and says what each one changed.

This is spice-common's canvas (canvas_base.c ``canvas_draw_*``, sw_canvas.c) seen from the
display channel: the channel parses a message and hands the command to one ``Canvas`` method
through :meth:`Canvas.apply`, which returns a :class:`Changes`: the damage (surface and the
rectangle of every pixel the command changed) and the gaps it met (a codec without a decoder,
a payload that does not decode, a draw spice-common would not draw). The canvas never sees a
socket, a clock or a thread; it knows nothing of the gap registry or of events.

A GLZ image whose reference another display channel has not delivered yet raises
:class:`ImageNotReady` out of :meth:`apply`: the channel parks the message and applies it
again when the image is there (``channels.display``); everything the first attempt did is
idempotent (CACHE_ME puts and dictionary adds repeat with the same ids).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np

from ryll.budget import OverBudget
from ryll.codecs.glz import GlzMissingReference
from ryll.errors import DecodeError, ProtocolError
from ryll.protocol.constants import (
    BrushType,
    CompositeFlags,
    ImageFlags,
    ImageType,
    Ropd,
    SurfaceFmt,
)
from ryll.protocol.messages import draw
from ryll.protocol.messages import stream as smsg
from ryll.protocol.messages.draw import Rect
from ryll.render import ops, raster, work
from ryll.render.composite import (
    CompositeUnsupported,
    Format,
    Picture,
    composite,
    float_path,
)
from ryll.render.images import (
    Decoded,
    DisplayShared,
    ImageKind,
    ImageUnsupported,
    codec_name,
    decode_image,
)
from ryll.render.mask import MaskUnsupported, decode_mask, surface_bits
from ryll.render.raster import Region
from ryll.render.rop import RopInput, SpiceRop, ropd_to_rop
from ryll.render.streams import MAX_STREAM_ID, MAX_STREAMS, Stream, StreamTable
from ryll.render.streams import codec_name as video_codec_name
from ryll.render.stroke import put_stroke, stroke_work
from ryll.render.surface import Surface, as_format, check_surface_size
from ryll.render.text import put_text
from ryll.video import make_decoder

# Surfaces a server may keep alive at once. spice-server's QXL device allows 1024 (qxl
# n_surfaces default); beyond that we refuse, so a hostile stream of creates stays bounded.
MAX_SURFACES = 1024
# DRAW_COPY's rop descriptor for a plain copy (ropd_to_rop: COPY), and the image flags that
# send a draw through the general path (the cache keeps its own copy of the pixels).
_ROPD_PUT = int(Ropd.OP_PUT)
_CACHED = int(ImageFlags.CACHE_ME | ImageFlags.CACHE_REPLACE_ME)
_OPAQUE_WORD = np.uint32(raster.ALPHA_WORD)

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


class ImageNotReady(Exception):
    """A GLZ image refers to image ``image_id``, which is not in the shared dictionary yet but
    may still arrive on another display channel: apply the command again once it is."""

    def __init__(self, image_id: int) -> None:
        super().__init__(f"waiting for GLZ image {image_id}")
        self.image_id = image_id


@dataclass(frozen=True, slots=True)
class Damage:
    surface_id: int
    rect: Rect


@dataclass(frozen=True, slots=True)
class GapNote:
    """A gap the canvas met: the full key (``display:...``) and what happened."""

    key: str
    detail: str


@dataclass(frozen=True, slots=True)
class Changes:
    """What one command changed: damage per surface (at most one rectangle each), and gaps."""

    damage: tuple[Damage, ...] = ()
    gaps: tuple[GapNote, ...] = ()


NO_CHANGES = Changes()
_NO_PIXELS = np.zeros((0, 0, 4), np.uint8)
_NO_BRUSH = draw.Brush(BrushType.NONE)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A draw's inputs, ready: the target and region, the decoded image (as decoded, and
    converted for the target), the brush with its colour for the target and its pattern."""

    surface: Surface
    region: Region
    decoded: Decoded | None
    pixels: np.ndarray  # empty when the draw has no image
    brush: draw.Brush  # BrushType.NONE when the draw has no brush
    pattern: np.ndarray | None

    @property
    def opaque(self) -> bool:
        return not self.surface.has_alpha
C = TypeVar("C")


class Canvas:
    """One display channel's surfaces and streams; the caches come from ``shared``."""

    def __init__(self, shared: DisplayShared) -> None:
        self.shared = shared
        self.surfaces: dict[int, Surface] = {}
        self.streams = StreamTable()
        self._damage: dict[int, Rect] = {}
        self._gaps: list[GapNote] = []
        shared.memory.meter("surfaces", lambda: sum(s.pixels.nbytes
                                                    for s in self.surfaces.values()))

    # --- the one entry point -------------------------------------------------------------

    def apply(self, op: Callable[[Canvas, C], object], command: C) -> Changes:
        """Run one canvas operation and return what it changed. Damaged boxes on surfaces
        whose format stores less than BGRA are quantised to it here (render.surface), so
        every operation stays format-blind. Raises ImageNotReady (nothing is reported then)."""
        self._damage.clear()
        self._gaps.clear()
        try:
            op(self, command)
        except work.OverWork as exc:
            self.gap(f"over_work:{getattr(op, '__name__', 'draw')}", str(exc))
        if not self._damage and not self._gaps:
            return NO_CHANGES
        damage = []
        for sid, rect in self._damage.items():
            surface = self.surfaces.get(sid)
            if surface is not None and surface.quantised:
                surface.quantise(rect.top, rect.left, rect.bottom, rect.right)
            damage.append(Damage(sid, rect))
        return Changes(tuple(damage), tuple(self._gaps))

    def gap(self, key: str, detail: str) -> None:
        self._gaps.append(GapNote(f"display:{key}", detail))

    def damaged(self, surface: Surface, top: int, left: int, bottom: int, right: int) -> None:
        """Pixels of [top, bottom) x [left, right) of ``surface`` may have changed."""
        t, lf = max(top, 0), max(left, 0)
        b, r = min(bottom, surface.height), min(right, surface.width)
        if t >= b or lf >= r:
            return
        rect = Rect(t, lf, b, r)
        old = self._damage.get(surface.surface_id)
        self._damage[surface.surface_id] = rect if old is None else Rect(
            min(old.top, t), min(old.left, lf), max(old.bottom, b), max(old.right, r))

    @staticmethod
    def _charge(region: Region, *kinds: str) -> None:
        """Charge the region's work to the message budget (render.work) before doing it."""
        work.charge(region.height * region.width, *kinds)

    @staticmethod
    def _scaled(src_area: draw.Rect, box: draw.Rect) -> tuple[str, ...]:
        """SCALED when the source rect is sampled to the box (not the same size)."""
        same = (src_area.width, src_area.height) == (box.width, box.height)
        return () if same else (work.SCALED,)

    def _drew(self, surface: Surface, region: Region) -> None:
        self.damaged(surface, region.top, region.left, region.bottom, region.right)

    def _result(self, surface: Surface, region: Region, problem: str | None, what: str) -> None:
        """Account for an ops call: it drew, or it names why not (``unimpl:x``/``malformed:x``)."""
        if problem is None:
            self._drew(surface, region)
        else:
            self.gap(problem, what)

    # --- surfaces --------------------------------------------------------------------------

    def create_surface(self, sc: Any) -> Surface | None:
        """SURFACE_CREATE (a ``messages.display.SurfaceCreate``); the whole surface is damage.
        None (and the gap ``over_budget:surface_create``) when the memory budget has no room;
        a surface of that id the server re-creates is given back first."""
        if sc.surface_id not in self.surfaces and len(self.surfaces) >= MAX_SURFACES:
            raise ProtocolError(f"more than {MAX_SURFACES} live surfaces")
        check_surface_size(sc.surface_id, sc.width, sc.height)
        old = self.surfaces.get(sc.surface_id)
        try:
            self.shared.memory.require("surface_create", sc.width * sc.height * 4,
                                       freed=old.pixels.nbytes if old is not None else 0)
        except OverBudget as exc:
            self.gap("over_budget:surface_create", str(exc))
            return None
        self.surfaces.pop(sc.surface_id, None)
        surface = Surface(sc.surface_id, sc.width, sc.height, sc.format, sc.flags)
        self.surfaces[sc.surface_id] = surface
        self.damaged(surface, 0, 0, surface.height, surface.width)
        return surface

    def destroy_surface(self, surface_id: int) -> bool:
        return self.surfaces.pop(surface_id, None) is not None

    def primary(self) -> Surface | None:
        return next((s for s in self.surfaces.values() if s.primary), None)

    # --- inputs of a draw ------------------------------------------------------------------

    def _target(self, base: draw.DisplayBase) -> Surface | None:
        surface = self.surfaces.get(base.surface_id)
        if surface is None:
            self.gap("orphan:draw", "draw on a surface never created")
        return surface

    def _image(self, image: draw.Image | None) -> Decoded | None:
        """Decode (and cache) an image; on failure note the gap and return None."""
        if image is None:
            self.gap("malformed:null_image", "draw without an image")
            return None
        try:
            return decode_image(image, self.shared, self.surfaces)
        except GlzMissingReference as exc:
            if not exc.evicted:
                raise ImageNotReady(exc.image_id) from exc
            self.gap(f"decode_failure:{codec_name(image.type)}:{exc.reason}", str(exc))
        except ImageUnsupported as exc:
            self.gap(f"unimpl:{exc.detail}", "no decoder for this image")
        except OverBudget as exc:
            self.gap(f"over_budget:{exc.what}", str(exc))
        except DecodeError as exc:
            self.gap(f"decode_failure:{codec_name(image.type)}:{exc.reason}", str(exc))
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

    def _mask(self, qmask: draw.QMask) -> tuple[bool, np.ndarray | None]:
        """Decode (and cache) a QMask's bits: (True, None) without a mask, (False, None) when
        the mask cannot be read (the gap is noted; the draw is dropped)."""
        if qmask.bitmap is None:
            return True, None
        if qmask.bitmap.type == ImageType.SURFACE:
            # canvas_mask_pixman: the surface's memory read as a1 bits (render.mask).
            sid = qmask.bitmap.surface_id
            source = self.surfaces.get(sid if sid is not None else -1)
            if source is None:
                self.gap("decode_failure:qmask:no_surface", f"QMask surface {sid} does not exist")
                return False, None
            return True, surface_bits(source)
        try:
            return True, decode_mask(qmask.bitmap, self.shared.images)
        except MaskUnsupported as exc:
            self.gap(f"unimpl:{exc.detail}", "a QMask image spice-common cannot use as a mask")
        except DecodeError as exc:
            self.gap(f"decode_failure:qmask:{exc.reason}", str(exc))
        return False, None

    def _pattern(self, brush: draw.Brush) -> tuple[bool, Decoded | None]:
        """Decode (and cache) a pattern brush's image; (True, None) for other brushes."""
        if brush.type != BrushType.PATTERN:
            return True, None
        decoded = self._image(brush.pattern)
        return decoded is not None, decoded

    @staticmethod
    def _region(surface: Surface, base: draw.DisplayBase, qmask: draw.QMask | None = None,
                bits: np.ndarray | None = None) -> Region | None:
        return ops.region_for(surface.width, surface.height, base, qmask, bits)

    # --- draws -----------------------------------------------------------------------------

    def _prepare(self, base: draw.DisplayBase, qmask: draw.QMask | None = None,
                 image: draw.Image | None = None, needs_image: bool = False,
                 brush: draw.Brush | None = None, decoded: Decoded | None = None
                 ) -> Prepared | None:
        """What every draw does first, in spice-common's order: decode (and cache) the mask,
        the image (unless ``decoded`` is it already) and the brush's pattern, even when
        nothing ends up drawn (CACHE_ME images are cached regardless), then find the target
        surface and the region (box, clip, mask). None when there is nothing to draw (any
        gap is noted)."""
        mask_ok, bits = self._mask(qmask) if qmask is not None else (True, None)
        if needs_image and decoded is None:
            decoded = self._image(image)
        brush_ok, pattern = self._pattern(brush) if brush is not None else (True, None)
        surface = self._target(base)
        if not (mask_ok and brush_ok) or (needs_image and decoded is None) or surface is None:
            return None
        region = self._region(surface, base, qmask, bits)
        if region is None:
            return None
        return Prepared(
            surface, region, decoded,
            _NO_PIXELS if decoded is None else self._for(surface, image, decoded),
            _NO_BRUSH if brush is None else self._brush_for(surface, brush),
            None if brush is None else self._pattern_for(surface, brush, pattern))

    def draw_copy(self, d: draw.DrawCopy) -> None:
        """DRAW_COPY, and DRAW_BLEND (canvas_base.c: ops->draw_blend = canvas_draw_copy,
        "copy and blend are the same")."""
        if not self._copy_whole(d):
            self._copy(d)

    def _copy_whole(self, d: draw.DrawCopy) -> bool:
        """The draw a display sends most, done without the general machinery: a whole opaque
        image put 1:1 at its box, inside a 32-bit xRGB surface, no clip, no mask, rop COPY,
        not to be cached. The decoded pixels go into the surface in one pass (alpha set, as
        the general path's commit does): no region, no second copy, a few Python calls.
        False (nothing done) when the draw is not that one; an image that turns out not
        opaque is drawn by the general path from its decoded pixels."""
        image, base = d.image, d.base
        if (image is None or d.rop != _ROPD_PUT or base.clip_rects is not None
                or d.mask.bitmap is not None or image.flags & _CACHED):
            return False
        surface = self.surfaces.get(base.surface_id)
        if surface is None or surface.format != SurfaceFmt.FMT_32_xRGB:
            return False
        box, src = base.box, d.src_area
        top, left, bottom, right = box.top, box.left, box.bottom, box.right
        w, h = right - left, bottom - top
        if (w <= 0 or h <= 0 or top < 0 or left < 0 or bottom > surface.height
                or right > surface.width or src.top or src.left or src.right != w
                or src.bottom != h or image.width != w or image.height != h):
            return False
        decoded = self._image(image)
        if decoded is None:  # its gap is noted; the general path would draw nothing either
            return True
        if decoded.kind != ImageKind.OPAQUE:
            self._copy(d, decoded)
            return True
        work.charge(w * h)
        dst = surface.words[top:bottom, left:right]
        np.bitwise_or(raster.words(decoded.pixels), _OPAQUE_WORD, out=dst)
        self.damaged(surface, top, left, bottom, right)
        return True

    def _copy(self, d: draw.DrawCopy, decoded: Decoded | None = None) -> None:
        p = self._prepare(d.base, d.mask, d.image, needs_image=True, decoded=decoded)
        if p is None:
            return
        self._charge(p.region, *self._scaled(d.src_area, d.base.box))
        rop = ropd_to_rop(d.rop, RopInput.SRC, RopInput.DEST)
        self._result(p.surface, p.region, ops.put_image(
            p.surface.pixels, p.opaque, p.region, p.pixels, d.src_area, d.base.box,
            d.scale_mode, rop), "draw_copy")

    def draw_fill(self, d: draw.DrawFill) -> None:
        p = self._prepare(d.base, d.mask, brush=d.brush)
        if p is None:
            return
        rop = ropd_to_rop(d.rop, RopInput.BRUSH, RopInput.DEST)
        ops.put_brush(p.surface.pixels, p.opaque, p.region, p.brush, p.pattern, rop)
        self._drew(p.surface, p.region)

    def draw_opaque(self, d: draw.DrawOpaque) -> None:
        p = self._prepare(d.base, d.mask, d.image, needs_image=True, brush=d.brush)
        if p is None:
            return
        # canvas_draw_opaque: the image is put, then the brush drawn over it with the rop
        # whose "dest" is the source (INVERS_SRC inverts the image's pixels).
        self._charge(p.region, *self._scaled(d.src_area, d.base.box))
        problem = ops.put_image(p.surface.pixels, p.opaque, p.region, p.pixels, d.src_area,
                                d.base.box, d.scale_mode, SpiceRop.COPY)
        if problem is not None:
            self.gap(problem, "draw_opaque")
            return
        rop = ropd_to_rop(d.rop, RopInput.BRUSH, RopInput.SRC)
        ops.put_brush(p.surface.pixels, p.opaque, p.region, p.brush, p.pattern, rop)
        self._drew(p.surface, p.region)

    def _mask_only(self, d: draw.DrawMaskOnly, color: int, rop: SpiceRop) -> None:
        p = self._prepare(d.base, d.mask, brush=draw.Brush(BrushType.SOLID, color=color))
        if p is None:
            return
        ops.put_brush(p.surface.pixels, p.opaque, p.region, p.brush, None, rop)
        self._drew(p.surface, p.region)

    def draw_blackness(self, d: draw.DrawMaskOnly) -> None:
        # canvas_draw_blackness: fill_solid_rects with 0x000000 (alpha 0 on ARGB surfaces).
        self._mask_only(d, 0x00000000, SpiceRop.COPY)

    def draw_whiteness(self, d: draw.DrawMaskOnly) -> None:
        self._mask_only(d, 0xFFFFFFFF, SpiceRop.COPY)

    def draw_invers(self, d: draw.DrawMaskOnly) -> None:
        self._mask_only(d, 0x00000000, SpiceRop.INVERT)

    def draw_rop3(self, d: draw.DrawRop3) -> None:
        p = self._prepare(d.base, d.mask, d.image, needs_image=True, brush=d.brush)
        if p is None:
            return
        self._charge(p.region, work.ROP3, *self._scaled(d.src_area, d.base.box))
        self._result(p.surface, p.region, ops.put_rop3(
            p.surface.pixels, p.opaque, p.region, p.pixels, d.src_area, d.base.box,
            d.scale_mode, p.brush, p.pattern, d.rop3), "draw_rop3")

    def draw_transparent(self, d: draw.DrawTransparent) -> None:
        p = self._prepare(d.base, image=d.image, needs_image=True)
        if p is None:
            return
        self._charge(p.region, work.COLORKEY, *self._scaled(d.src_area, d.base.box))
        ops.put_transparent(p.surface.pixels, p.opaque, p.region, p.pixels, d.src_area,
                            d.base.box, p.surface.color(d.true_color))
        self._drew(p.surface, p.region)

    def draw_alpha_blend(self, d: draw.DrawAlphaBlend) -> None:
        p = self._prepare(d.base, image=d.image, needs_image=True)
        if p is None or d.alpha == 0:
            return
        assert p.decoded is not None
        # canvas_draw_alpha_blend asks for the original image (want_original TRUE).
        self._charge(p.region, work.BLEND, *self._scaled(d.src_area, d.base.box))
        ops.put_alpha_blend(p.surface.pixels, p.opaque, p.region, p.decoded.pixels,
                            d.src_area, d.base.box, d.alpha)
        self._drew(p.surface, p.region)

    def draw_stroke(self, d: draw.DrawStroke) -> None:
        # canvas_draw_stroke (render.stroke): thin lines or width-1 dashes, fore_mode's rop.
        p = self._prepare(d.base, brush=d.brush)
        if p is None:
            return
        self._charge(p.region, *stroke_work(d))
        problem = put_stroke(p.surface.pixels, p.opaque, p.region, replace(d, brush=p.brush),
                             p.pattern)
        self._drew(p.surface, p.region)
        if problem is not None:
            self.gap(problem, "draw_stroke not fully drawn")

    def draw_text(self, d: draw.DrawText) -> None:
        fore_ok, fore = self._pattern(d.fore_brush)
        back_ok, back = self._pattern(d.back_brush)
        surface = self._target(d.base)
        if not (fore_ok and back_ok) or surface is None:
            return
        region = self._region(surface, d.base)
        if region is None:
            return
        self._result(surface, region, put_text(
            surface.pixels, not surface.has_alpha, region, d.glyphs,
            draw.glyph_bpp(d.string_flags), d.back_area,
            self._brush_for(surface, d.back_brush),
            self._pattern_for(surface, d.back_brush, back),
            self._brush_for(surface, d.fore_brush),
            self._pattern_for(surface, d.fore_brush, fore), d.fore_mode), "draw_text")

    def draw_composite(self, d: draw.DrawComposite) -> None:
        src = self._image(d.src)
        mask = self._image(d.mask) if d.mask is not None else None
        surface = self._target(d.base)
        if src is None or (d.mask is not None and mask is None) or surface is None:
            return
        region = self._region(surface, d.base)
        if region is None:
            return
        self._result(surface, region, self._composite(surface, region, d, src, mask),
                     "draw_composite")

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
        kinds = [work.COMPOSITE_FLOAT if float_path(bits(0, 8)) else work.COMPOSITE]
        if d.src_transform is not None or d.mask_transform is not None:
            kinds.append(work.SCALED)
        self._charge(area, *kinds)
        try:
            out = composite(bits(0, 8), spic, mpic, bool(flags & CompositeFlags.COMPONENT_ALPHA),
                            dest, pixman_format(surface.format))
        except CompositeUnsupported as exc:
            return f"unimpl:{exc.detail}"
        raster.commit(surface.pixels, region,
                      out[region.top - area.top:region.bottom - area.top,
                          region.left - area.left:region.right - area.left],
                      not surface.has_alpha)
        return None

    def copy_bits(self, d: draw.CopyBits) -> None:
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
        dest_left, dest_top = x0 + box.left - sx, y0 + box.top - sy
        if raster.blit(surface.pixels, not surface.has_alpha, box, d.base.clip_rects, src,
                       dest_left, dest_top):
            self.damaged(surface, max(dest_top, box.top), max(dest_left, box.left),
                         min(dest_top + src.shape[0], box.bottom),
                         min(dest_left + src.shape[1], box.right))

    # --- video streams ---------------------------------------------------------------------

    def create_stream(self, msg: smsg.StreamCreate) -> Stream:
        if msg.id >= MAX_STREAM_ID:
            raise ProtocolError(f"stream id {msg.id} is over the limit of {MAX_STREAM_ID}")
        if msg.id not in self.streams.streams and len(self.streams.streams) >= MAX_STREAMS:
            raise ProtocolError(f"more than {MAX_STREAMS} live streams")
        decoder = make_decoder(msg.codec)
        stream = Stream.from_create(msg, decoder is not None, decoder)
        self.streams.add(stream)
        if decoder is None:
            self.gap(f"unimpl:stream_codec_{video_codec_name(msg.codec)}",
                     "no decoder for this video codec")
        return stream

    def stream(self, stream_id: int) -> Stream | None:
        stream = self.streams.streams.get(stream_id)
        if stream is None:
            # spice-server sends CLIP/DESTROY/DATA for streams it never created for us
            # (no encoder for the client): counted, never an error.
            self.streams.orphans += 1
        return stream

    def stream_frame(self, frame_msg: tuple[Stream, smsg.StreamData]) -> None:
        """Decode one frame of a supported stream and put it at its destination through its
        clip (scaled to the destination with nearest, as spice-gtk's software path)."""
        stream, msg = frame_msg
        if stream.decoder is None:
            return
        name = video_codec_name(stream.codec)
        try:
            # A frame the size the stream was created with, asked of the budget first.
            self.shared.memory.require("stream_frame",
                                       stream.stream_width * stream.stream_height * 4)
            frame = stream.decoder.decode(msg.data)
        except OverBudget as exc:
            stream.frames_failed += 1
            self.gap(f"over_budget:{exc.what}", str(exc))
            return
        except DecodeError as exc:
            stream.frames_failed += 1
            self.streams.failed[name] += 1
            self.gap(f"decode_failure:{name}:{exc.reason}", str(exc))
            return
        if frame is None:
            # The decoder holds the picture back (reordering): nothing to draw yet.
            return
        stream.frames_decoded += 1
        self.streams.decoded[name] += 1
        if msg.dest is not None:
            stream.dest = msg.dest
        surface = self.surfaces.get(stream.surface_id)
        if surface is None:
            self.gap("orphan:stream_surface", "stream on a missing surface")
            return
        if not stream.top_down:
            frame = frame[::-1]
        dest = stream.dest
        if dest.width <= 0 or dest.height <= 0:
            return
        # What of the destination is on the surface: only that is scaled and drawn.
        seen = Rect(max(dest.top, 0), max(dest.left, 0), min(dest.bottom, surface.height),
                    min(dest.right, surface.width))
        if seen.top >= seen.bottom or seen.left >= seen.right:
            return
        if frame.shape[0] != dest.height or frame.shape[1] != dest.width:
            work.charge(seen.height * seen.width, work.SCALED)
            frame = raster.scale_nearest(frame, dest.width, dest.height, Rect(
                seen.top - dest.top, seen.left - dest.left, seen.bottom - dest.top,
                seen.right - dest.left))
        else:
            frame = frame[seen.top - dest.top:seen.bottom - dest.top,
                          seen.left - dest.left:seen.right - dest.left]
        if raster.blit(surface.pixels, not surface.has_alpha, seen, stream.clip, frame,
                       seen.left, seen.top):
            self.damaged(surface, seen.top, seen.left, seen.bottom, seen.right)

    def remove_stream(self, stream_id: int) -> bool:
        if self.streams.remove(stream_id) is None:
            self.streams.orphans += 1
            return False
        return True

    def clear_streams(self) -> int:
        return self.streams.clear()
