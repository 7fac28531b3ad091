"""MJPEG stream frames through libjpeg-turbo (simplejpeg)."""

from __future__ import annotations

import numpy as np
import pytest
import simplejpeg

from ryll.errors import DecodeError
from ryll.video.mjpeg import MjpegDecoder, decode_mjpeg_frame


def test_frame_round_trip_is_bgra_with_opaque_alpha() -> None:
    rgb = np.zeros((48, 32, 3), np.uint8)
    rgb[..., 0] = 200  # red
    jpeg = simplejpeg.encode_jpeg(rgb, quality=95, colorspace="RGB")
    out = MjpegDecoder().decode(jpeg)
    assert out.shape == (48, 32, 4)
    assert abs(int(out[..., 2].mean()) - 200) <= 2 and out[..., 0].max() <= 3
    assert (out[..., 3] == 255).all()


@pytest.mark.parametrize("data", [b"", b"\xff\xd8\xff", b"not a jpeg" * 10])
def test_bad_frames_raise_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        decode_mjpeg_frame(data)
    assert info.value.reason == "bad_header"
