"""What a decoded image is (render.image_cache.ImageKind): set by each decoder from the
image's own format as spice-common picks its pixman format (a8r8g8b8 = ALPHA, a8 =
ALPHA_ONLY, the rest OPAQUE), kept by the image cache and returned by FROM_CACHE."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import simplejpeg

from ryll.channels.context import ChannelContext
from ryll.codecs import _lz_enc
from ryll.codecs import lz as L
from ryll.codecs.quic import encode_quic
from ryll.protocol.constants import BitmapFlags, BitmapFmt, ImageFlags, ImageType
from ryll.protocol.messages.draw import BitmapData, Image
from ryll.render.images import ImageKind, decode_image

H, W = 3, 4
RNG = np.random.default_rng(3)
PX = RNG.integers(0, 256, (H, W, 4), dtype=np.uint8)


def _bitmap(fmt: int, data: bytes, stride: int, flags: int = 0) -> Image:
    return Image(1, ImageType.BITMAP, flags, W, H,
                 bitmap=BitmapData(fmt, BitmapFlags.TOP_DOWN, W, H, stride, None, None, data))


def _lz4(fmt: int, px: np.ndarray) -> bytes:
    data = np.ascontiguousarray(px).tobytes()
    block = bytes([len(data) << 4]) + data if len(data) < 15 else (
        bytes([0xF0]) + b"\xff" * ((len(data) - 15) // 255) + bytes([(len(data) - 15) % 255])
        + data)
    return bytes([1, fmt]) + struct.pack(">I", len(block)) + block


CASES = {
    "bitmap_rgba": (_bitmap(BitmapFmt.FMT_RGBA, PX.tobytes(), W * 4), ImageKind.ALPHA),
    "bitmap_32bit": (_bitmap(BitmapFmt.FMT_32BIT, PX.tobytes(), W * 4), ImageKind.OPAQUE),
    "bitmap_24bit": (_bitmap(BitmapFmt.FMT_24BIT, PX[..., :3].tobytes(), W * 3),
                     ImageKind.OPAQUE),
    "bitmap_a8": (_bitmap(BitmapFmt.FMT_8BIT_A, PX[..., 3].tobytes(), W), ImageKind.ALPHA_ONLY),
    "quic_rgba": (Image(1, ImageType.QUIC, 0, W, H, data=encode_quic(PX, 5)), ImageKind.ALPHA),
    "quic_rgb32": (Image(1, ImageType.QUIC, 0, W, H, data=encode_quic(PX, 4)),
                   ImageKind.OPAQUE),
    "lz_rgba": (Image(1, ImageType.LZ_RGB, 0, W, H, data=_lz_enc.encode_lz(L.RGBA, PX)),
                ImageKind.ALPHA),
    "lz_rgb32": (Image(1, ImageType.LZ_RGB, 0, W, H, data=_lz_enc.encode_lz(L.RGB32, PX)),
                 ImageKind.OPAQUE),
    "lz_a8": (Image(1, ImageType.LZ_RGB, 0, W, H,
                    data=_lz_enc.encode_lz(L.A8, np.ascontiguousarray(PX[..., 3]))),
              ImageKind.ALPHA_ONLY),
    "glz_rgba": (Image(1, ImageType.GLZ_RGB, 0, W, H,
                       data=_lz_enc.encode_glz(L.RGBA, PX, 1)), ImageKind.ALPHA),
    "glz_rgb32": (Image(1, ImageType.GLZ_RGB, 0, W, H,
                        data=_lz_enc.encode_glz(L.RGB32, PX, 2)), ImageKind.OPAQUE),
    "lz4_rgba": (Image(1, ImageType.LZ4, 0, W, H, data=_lz4(BitmapFmt.FMT_RGBA, PX)),
                 ImageKind.ALPHA),
    "lz4_32bit": (Image(1, ImageType.LZ4, 0, W, H, data=_lz4(BitmapFmt.FMT_32BIT, PX)),
                  ImageKind.OPAQUE),
    "jpeg": (Image(1, ImageType.JPEG, 0, W, H, data=simplejpeg.encode_jpeg(
        np.ascontiguousarray(PX[..., 2::-1]), colorspace="RGB")), ImageKind.OPAQUE),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_decoder_sets_the_kind_and_the_cache_keeps_it(name: str) -> None:
    image, kind = CASES[name]
    ctx = ChannelContext()
    shared = ctx.display_shared
    first = decode_image(image, shared, {})
    assert first.kind == kind
    if kind == ImageKind.ALPHA_ONLY:
        assert (first.pixels[..., :3] == 0).all() and (first.pixels[..., 3] == PX[..., 3]).all()
    elif kind == ImageKind.OPAQUE:
        assert (first.pixels[..., 3] == 255).all()
    elif name != "jpeg":
        assert (first.pixels == PX).all()
    cached = Image(image.id, image.type, ImageFlags.CACHE_ME, image.width, image.height,
                   image.bitmap, image.data)
    if image.type == ImageType.GLZ_RGB:
        shared = ChannelContext().display_shared  # a new GLZ dictionary for the same id
    decode_image(cached, shared, {})
    entry = shared.images.get(image.id)
    assert entry is not None and entry.kind == kind
    again = decode_image(Image(image.id, ImageType.FROM_CACHE, 0, W, H), shared, {})
    assert again.kind == kind and (again.pixels == first.pixels).all()


def test_high_bits_set_forces_alpha_only_without_alpha() -> None:
    """canvas_get_image_internal ORs 0xff000000 into an x8r8g8b8 image only."""
    shared = ChannelContext().display_shared
    rgba = _bitmap(BitmapFmt.FMT_RGBA, PX.tobytes(), W * 4, ImageFlags.HIGH_BITS_SET)
    assert (decode_image(rgba, shared, {}).pixels == PX).all()
    a8 = _bitmap(BitmapFmt.FMT_8BIT_A, PX[..., 3].tobytes(), W, ImageFlags.HIGH_BITS_SET)
    assert (decode_image(a8, shared, {}).pixels[..., 3] == PX[..., 3]).all()
    x = _bitmap(BitmapFmt.FMT_32BIT, PX.tobytes(), W * 4, ImageFlags.HIGH_BITS_SET)
    assert (decode_image(x, shared, {}).pixels[..., 3] == 255).all()


def test_a_cached_mask_is_alpha_only() -> None:
    """spice-common caches a CACHE_ME QMask as an a1 image; FROM_CACHE of it as an image is
    alpha-only (opaque black on a colour canvas), not opaque white."""
    from ryll.render.mask import decode_mask

    ctx = ChannelContext()
    row = bytes([0b10100000])  # 1BIT_BE, 3 pixels: on, off, on
    mask = Image(7, ImageType.BITMAP, ImageFlags.CACHE_ME, 3, 1,
                 bitmap=BitmapData(BitmapFmt.FMT_1BIT_BE, BitmapFlags.TOP_DOWN, 3, 1, 1,
                                   None, None, row))
    bits = decode_mask(mask, ctx.display_shared.images)
    assert bits.tolist() == [[True, False, True]]
    again = decode_image(Image(7, ImageType.FROM_CACHE, 0, 3, 1), ctx.display_shared, {})
    assert again.kind == ImageKind.ALPHA_ONLY
    assert again.pixels[0, :, 3].tolist() == [255, 0, 255]
