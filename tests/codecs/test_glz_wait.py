"""GLZ images that refer to an image another display channel has not delivered yet: the
decode waits for it (spice-gtk decode-glz.c glz_decoder_window_bits waits on a coroutine
condition), bounded, and never on the event loop thread: there the display channel defers the
message (DecodeDeferred) and the session handles it again in a worker.

Images come from the project's own encoder (codecs/_lz_enc.encode_glz) and a hand-made GLZ
image that is one cross-image match (as tests/codecs/test_glz.py builds them)."""

from __future__ import annotations

import asyncio
import struct
import threading
import time

import numpy as np
from tests.render import builders as B

from ryll.channels.context import ChannelContext
from ryll.channels.display import DisplayChannel
from ryll.channels.events import DecodeDeferred, Event
from ryll.codecs import _lz_enc
from ryll.codecs import lz as L
from ryll.protocol.constants import DisplayServer, ImageType, Ropd, SurfaceFmt
from ryll.protocol.framing import MessageWriter
from ryll.render.images import allow_waiting, may_wait
from ryll.session.session import Session
from ryll.session.target import Target

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
    ctx.display_shared.glz_wait_seconds = 2.0
    one, two = DisplayChannel(0, ctx), DisplayChannel(1, ctx)
    for ch in (one, two):
        ch.receive_data(MessageWriter(True).build(
            DisplayServer.SURFACE_CREATE, B.surface_create(0, SIDE, SIDE, SurfaceFmt.FMT_32_xRGB)))
    return one, two, ctx


def receive(ch: DisplayChannel, body: bytes) -> list[Event]:
    return ch.receive_data(MessageWriter(True).build(DisplayServer.DRAW_COPY, body))


def test_on_the_event_loop_a_missing_reference_defers_the_message() -> None:
    one, two, ctx = channels()
    assert not may_wait()
    a = picture(1)
    events = receive(two, glz_copy(cross_ref_image(2, 1, SIDE * SIDE, SIDE, SIDE)))
    deferred = [e for e in events if isinstance(e, DecodeDeferred)]
    assert len(deferred) == 1 and ctx.gaps.counts() == {}
    assert (two.surfaces[0].pixels[..., :3] == 0).all()
    receive(one, glz_copy(_lz_enc.encode_glz(L.RGB32, a, 1)))
    assert (one.surfaces[0].pixels == a).all()
    assert allow_waiting(deferred[0].run) == []
    assert ctx.gaps.counts() == {}
    assert (two.surfaces[0].pixels == a).all()


def test_a_worker_waits_until_the_other_channel_delivers() -> None:
    one, two, ctx = channels()
    a = picture(2)
    done = threading.Event()

    def worker() -> None:
        allow_waiting(receive, two, glz_copy(cross_ref_image(2, 1, SIDE * SIDE, SIDE, SIDE)))
        done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    time.sleep(0.1)
    assert not done.is_set()  # blocked on the dictionary, not failed
    receive(one, glz_copy(_lz_enc.encode_glz(L.RGB32, a, 1)))
    thread.join(5)
    assert done.is_set()
    assert ctx.gaps.counts() == {}
    assert (two.surfaces[0].pixels == a).all()


def test_the_wait_is_bounded_then_missing_ref() -> None:
    _, two, ctx = channels()
    ctx.display_shared.glz_wait_seconds = 0.2
    started = time.monotonic()
    events = allow_waiting(receive, two, glz_copy(cross_ref_image(2, 1, SIDE * SIDE, SIDE,
                                                                  SIDE)))
    elapsed = time.monotonic() - started
    assert not any(isinstance(e, DecodeDeferred) for e in events)
    assert ctx.gaps.counts() == {"display:decode_failure:glz_rgb:missing_ref": 1}
    assert 0.2 <= elapsed < 2.0


def test_a_deferred_message_that_times_out_is_missing_ref() -> None:
    _, two, ctx = channels()
    ctx.display_shared.glz_wait_seconds = 0.1
    events = receive(two, glz_copy(cross_ref_image(2, 1, SIDE * SIDE, SIDE, SIDE)))
    (deferred,) = [e for e in events if isinstance(e, DecodeDeferred)]
    assert allow_waiting(deferred.run) == []
    assert ctx.gaps.counts() == {"display:decode_failure:glz_rgb:missing_ref": 1}


def test_an_evicted_reference_fails_at_once_without_deferring() -> None:
    one, two, ctx = channels()
    # Image 10 with win_head_dist 0: the server keeps nothing older, so id 5 can never come.
    receive(one, glz_copy(_lz_enc.encode_glz(L.RGB32, picture(3), 10, win_head_dist=0)))
    started = time.monotonic()
    events = receive(two, glz_copy(cross_ref_image(11, 6, SIDE * SIDE, SIDE, SIDE)))
    events += allow_waiting(receive, two, glz_copy(cross_ref_image(12, 7, SIDE * SIDE, SIDE,
                                                                   SIDE)))
    assert time.monotonic() - started < 1.0
    assert not any(isinstance(e, DecodeDeferred) for e in events)
    assert ctx.gaps.counts() == {"display:decode_failure:glz_rgb:missing_ref": 2}


def test_the_session_runs_a_deferred_message_off_the_event_loop() -> None:
    one, two, ctx = channels()
    a = picture(4)
    events = receive(two, glz_copy(cross_ref_image(2, 1, SIDE * SIDE, SIDE, SIDE)))
    (deferred,) = [e for e in events if isinstance(e, DecodeDeferred)]
    session = Session(Target("localhost", 1), ctx)

    async def scenario() -> None:
        task = asyncio.ensure_future(session._on_event(two, deferred))
        await asyncio.sleep(0.1)
        assert not task.done()  # waiting in a worker, while this loop keeps running
        receive(one, glz_copy(_lz_enc.encode_glz(L.RGB32, a, 1)))  # on the loop
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert ctx.gaps.counts() == {}
    assert (two.surfaces[0].pixels == a).all()
