"""VP8, VP9, H.264 and H.265 stream decoding through PyAV, one stateful decoder per stream."""

from __future__ import annotations

import numpy as np
import pytest
from tests.video.encode import ENCODERS, bgr, encode

from ryll.errors import DecodeError
from ryll.protocol.constants import VideoCodecType
from ryll.video import CODEC_NAMES, available_codecs, make_decoder
from ryll.video.av_decoder import AV_CODECS, AvDecoder, can_decode
from ryll.video.mjpeg import MjpegDecoder

INTER = sorted(ENCODERS)
# Mean absolute error against the source picture, per channel value: these codecs at 2 Mbit/s
# on a 64x48 gradient stay within a few levels; a wrong colour order or a missing frame is off
# by tens.
MAX_MEAN_ERROR = 6.0


def codec_id(codec: int) -> str:
    return VideoCodecType(codec).name.lower()


def test_every_spice_codec_decodes_here() -> None:
    # The av wheel bundles FFmpeg with all four decoders; if it ever lacks one, the display
    # channel stops advertising that codec (test_streams covers the caps).
    assert available_codecs() == (1, 2, 3, 4, 5)
    assert all(can_decode(c) for c in AV_CODECS)
    assert CODEC_NAMES == {"mjpeg": 1, "vp8": 2, "h264": 3, "vp9": 4, "h265": 5}


def test_make_decoder_per_codec() -> None:
    assert isinstance(make_decoder(VideoCodecType.MJPEG), MjpegDecoder)
    for codec in INTER:
        dec = make_decoder(codec)
        assert isinstance(dec, AvDecoder) and dec.codec == codec
    assert make_decoder(0) is None and make_decoder(7) is None
    assert not can_decode(7)


@pytest.mark.parametrize("codec", INTER, ids=codec_id)
def test_stream_of_frames_decodes_close_to_the_source(codec: int) -> None:
    packets, pictures = encode(codec, 8)
    dec = make_decoder(codec)
    assert dec is not None
    for packet, rgb in zip(packets, pictures, strict=True):
        out = dec.decode(packet)
        assert out is not None, "one packet, one picture: nothing may be held back"
        assert out.shape == (48, 64, 4) and out.dtype == np.uint8
        assert (out[..., 3] == 255).all()
        err = np.abs(out[..., :3].astype(int) - bgr(rgb).astype(int)).mean()
        assert err < MAX_MEAN_ERROR, f"mean error {err:.1f}"
    dec.close()


@pytest.mark.parametrize("codec", INTER, ids=codec_id)
def test_decoders_keep_state_per_stream(codec: int) -> None:
    """Two streams of one codec interleaved decode as well as each alone; a fresh decoder fed
    only a later (inter) frame has no reference and does not produce the right picture."""
    a_packets, a_pictures = encode(codec, 6)
    b_packets, b_pictures = encode(codec, 6, width=32, height=32)
    a, b = make_decoder(codec), make_decoder(codec)
    assert a is not None and b is not None
    for i in range(6):
        out_a, out_b = a.decode(a_packets[i]), b.decode(b_packets[i])
        assert out_a is not None and out_a.shape == (48, 64, 4)
        assert out_b is not None and out_b.shape == (32, 32, 4)
    fresh = make_decoder(codec)
    assert fresh is not None
    try:
        out = fresh.decode(a_packets[5])
    except DecodeError:
        return
    if out is not None:
        err = np.abs(out[..., :3].astype(int) - bgr(a_pictures[5]).astype(int)).mean()
        assert err > 1.0 or out.shape != (48, 64, 4)


@pytest.mark.parametrize("codec", INTER, ids=codec_id)
def test_garbage_is_a_decode_error_and_the_decoder_recovers(codec: int) -> None:
    packets, _ = encode(codec, 3)
    dec = make_decoder(codec)
    assert dec is not None
    with pytest.raises(DecodeError) as info:
        dec.decode(b"")
    assert info.value.reason == "empty"
    failures = 0
    for junk in (bytes(range(256)) * 4, b"\xff" * 64):
        try:
            dec.decode(junk)
        except DecodeError as exc:
            failures += 1
            assert exc.reason and ":" not in exc.reason and " " not in exc.reason
    # The stream starts again at its keyframe and decodes.
    dec2 = make_decoder(codec)
    assert dec2 is not None
    assert dec2.decode(packets[0]) is not None


def test_closed_decoder_refuses_frames() -> None:
    packets, _ = encode(VideoCodecType.VP8, 1)
    dec = make_decoder(VideoCodecType.VP8)
    assert dec is not None
    dec.close()
    dec.close()  # idempotent
    with pytest.raises(DecodeError) as info:
        dec.decode(packets[0])
    assert info.value.reason == "closed"
