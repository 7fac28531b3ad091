"""JPEG and JPEG_ALPHA images through the display's image path, with payloads built by our own
encoders (libjpeg-turbo via simplejpeg for the colour, the LZ test encoder for the XXXA alpha
plane): spice-server only sends these with jpeg-wan-compression on a slow link."""

from __future__ import annotations

import numpy as np
import pytest
import simplejpeg

from ryll.channels.context import ChannelContext
from ryll.codecs import _lz_enc
from ryll.codecs import lz as L
from ryll.errors import DecodeError
from ryll.protocol.constants import ImageFlags, ImageType
from ryll.protocol.messages.draw import Image
from ryll.render.images import ImageKind, decode_image


def _picture(h: int = 48, w: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 4 % 256, y * 5 % 256, (x + y) * 2 % 256], axis=-1).astype(np.uint8)
    return rgb


def test_jpeg_image_decodes_lossy_and_is_cached_as_lossy() -> None:
    rgb = _picture()
    data = simplejpeg.encode_jpeg(rgb, quality=95, colorspace="RGB")
    ctx = ChannelContext()
    img = Image(7, ImageType.JPEG, ImageFlags.CACHE_ME, 64, 48, data=data)
    decoded = decode_image(img, ctx.display_shared, {})
    px = decoded.pixels
    assert decoded.kind == ImageKind.OPAQUE
    assert px.shape == (48, 64, 4)
    assert np.abs(px[..., 2::-1].astype(int) - rgb).mean() < 3  # lossy but close
    assert (px[..., 3] == 255).all()
    cached = ctx.display_shared.images.get(7)
    assert cached is not None and cached.lossy and cached.kind == ImageKind.OPAQUE
    # FROM_CACHE_LOSSLESS must not be satisfied by a lossy entry.
    with pytest.raises(DecodeError) as exc:
        decode_image(Image(7, ImageType.FROM_CACHE_LOSSLESS, 0, 64, 48),
                     ctx.display_shared, {})
    assert exc.value.reason == "lossy_only"


def test_jpeg_alpha_takes_alpha_from_the_lz_plane() -> None:
    rgb = _picture()
    alpha = (np.arange(48 * 64) % 256).astype(np.uint8).reshape(48, 64)
    jpeg = simplejpeg.encode_jpeg(rgb, quality=95, colorspace="RGB")
    rgba = np.zeros((48, 64, 4), np.uint8)
    rgba[..., 3] = alpha
    alpha_lz = _lz_enc.encode_lz(L.XXXA, rgba)
    img = Image(8, ImageType.JPEG_ALPHA, 0, 64, 48, data=jpeg + alpha_lz, jpeg_size=len(jpeg))
    decoded = decode_image(img, ChannelContext().display_shared, {})
    px = decoded.pixels
    assert decoded.kind == ImageKind.ALPHA  # canvas_get_jpeg_alpha: a8r8g8b8
    assert (px[..., 3] == alpha).all()
    assert np.abs(px[..., 2::-1].astype(int) - rgb).mean() < 3


def test_corrupt_jpeg_is_a_decode_error() -> None:
    data = simplejpeg.encode_jpeg(_picture(), quality=90, colorspace="RGB")
    img = Image(9, ImageType.JPEG, 0, 64, 48, data=data[:40])
    with pytest.raises(DecodeError):
        decode_image(img, ChannelContext().display_shared, {})
