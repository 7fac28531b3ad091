"""GLZ images that refer to an image another display channel has not delivered yet: the
draw is *parked* (spice-gtk decode-glz.c glz_decoder_window_bits waits on a coroutine
condition; ryll keeps the parsed command as data instead): the channel emits DecodeParked,
and the session resumes it when the image lands or expires it when the wait runs out (the gap
``display:decode_failure:glz_rgb:wait_expired``). No thread ever blocks.

Images come from the project's own encoder (codecs/_lz_enc.encode_glz) and a hand-made GLZ
image that is one cross-image match (as tests/codecs/test_glz.py builds them)."""

from __future__ import annotations

import struct

import numpy as np
from tests.render import builders as B

from ryll.channels.context import ChannelContext
from ryll.channels.display import DisplayChannel
from ryll.channels.events import DecodeParked, DisplayUpdated, Event
from ryll.codecs import _lz_enc
from ryll.codecs import lz as L
from ryll.protocol.constants import DisplayServer, ImageType, Ropd, SurfaceFmt
from ryll.protocol.framing import MessageWriter
from ryll.protocol.messages.draw import Rect

SIDE = 4


def cross_ref_image(image_id: int, dist: int, npix: int, width: int, height: int) -> bytes:
    """A GLZ RGB32 image that is one match: ``npix`` pixels of image ``image_id - dist`` from
    its pixel 0 (decode-glz-tmpl.c: long pixel-offset form, image distance in one byte)."""
    head = struct.pack(">IIBIIIQI", L.LZ_MAGIC, L.LZ_VERSION, L.RGB32 | 16, width, height,
                       width * 4, image_id, dist)
    r = npix - 7
    ext = b"\xff" * (r // 255) + bytes([r % 255])
    ctrl = (7 << 5) | 0x10
    return head + bytes([ctrl]) + ext + bytes([0, 1 << 6, dist])


def picture(seed: int) -> np.ndarray:
    px = np.random.default_rng(seed).integers(0, 256, (SIDE, SIDE, 4), dtype=np.uint8)
    px[..., 3] = 255
    return px


def glz_copy(payload: bytes) -> bytes:
    image = B.Image(type=ImageType.GLZ_RGB, width=SIDE, height=SIDE, payload=payload)
    return B.draw_copy((0, 0, SIDE, SIDE), image, (0, 0, SIDE, SIDE), Ropd.OP_PUT)


def channels() -> tuple[DisplayChannel, DisplayChannel, ChannelContext]:
    """Two display channels of one session (one context: one GLZ dictionary)."""
    ctx = ChannelContext()
    one, two = DisplayChannel(0, ctx), DisplayChannel(1, ctx)
    for ch in (one, two):
        ch.receive_data(MessageWriter(True).build(
            DisplayServer.SURFACE_CREATE, B.surface_create(0, SIDE, SIDE, SurfaceFmt.FMT_32_xRGB)))
    return one, two, ctx


def receive(ch: DisplayChannel, body: bytes, now: float = 0.0) -> list[Event]:
    return ch.receive_data(MessageWriter(True).build(DisplayServer.DRAW_COPY, body), now)


def test_a_missing_reference_parks_the_draw_until_the_other_channel_delivers() -> None:
    one, two, ctx = channels()
    a = picture(1)
    events = receive(two, glz_copy(cross_ref_image(2, 1, SIDE * SIDE, SIDE, SIDE)), now=10.0)
    assert DecodeParked(1, 1) in events  # channel 1 waits for image 1
    assert not any(isinstance(e, DisplayUpdated) for e in events)  # nothing drawn yet
    assert two.parked is not None and two.parked_deadline() == 10.0 + two.glz_wait_seconds
    assert not two.parked_ready()
    assert ctx.gaps.counts() == {}
    assert (two.surfaces[0].pixels[..., :3] == 0).all()
    receive(one, glz_copy(_lz_enc.encode_glz(L.RGB32, a, 1)))
    assert (one.surfaces[0].pixels == a).all()
    assert two.parked_ready()
    two.resume(11.0)
    assert two.parked is None
    assert DisplayUpdated(1, 0, Rect(0, 0, SIDE, SIDE)) in two.take_events()
    assert ctx.gaps.counts() == {}
    assert (two.surfaces[0].pixels == a).all()


def test_an_expired_wait_is_a_named_gap_and_drops_only_that_draw() -> None:
    _, two, ctx = channels()
    receive(two, glz_copy(cross_ref_image(2, 1, SIDE * SIDE, SIDE, SIDE)))
    two.expire(5.0)
    assert two.parked is None and two.take_events() == []
    assert ctx.gaps.counts() == {"display:decode_failure:glz_rgb:wait_expired": 1}
    # The channel goes on: the next draw lands.
    b = picture(5)
    receive(two, glz_copy(_lz_enc.encode_glz(L.RGB32, b, 3, win_head_dist=0)))
    assert (two.surfaces[0].pixels == b).all()


def test_an_evicted_reference_fails_at_once_without_parking() -> None:
    one, two, ctx = channels()
    # Image 10 with win_head_dist 0: the server keeps nothing older, so id 5 can never come.
    receive(one, glz_copy(_lz_enc.encode_glz(L.RGB32, picture(3), 10, win_head_dist=0)))
    events = receive(two, glz_copy(cross_ref_image(11, 6, SIDE * SIDE, SIDE, SIDE)))
    events += receive(two, glz_copy(cross_ref_image(12, 7, SIDE * SIDE, SIDE, SIDE)))
    assert two.parked is None
    assert not any(isinstance(e, DecodeParked) for e in events)
    assert ctx.gaps.counts() == {"display:decode_failure:glz_rgb:missing_ref": 2}
