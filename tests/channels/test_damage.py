"""The canvas reports damage: after every display message, each pixel that changed lies inside
a DisplayUpdated rectangle of that message (on that surface), and a message that changed
nothing on screen reports no damage outside what it drew.

Driven by the real sessions captured from QEMU (a SeaBIOS screen, an animation with MJPEG
streams) and by hand-built draws of every kind, clipped and unclipped, on several formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.fixtures.loader import server_records
from tests.fixtures.records import read_capture
from tests.render import builders as B

from ryll.channels.context import ChannelContext
from ryll.channels.display import DisplayChannel
from ryll.channels.events import DisplayUpdated
from ryll.protocol.constants import ChannelType, DisplayServer, Ropd, SurfaceFmt
from ryll.protocol.framing import MessageWriter

STREAMS = Path(__file__).parents[1] / "fixtures" / "streams" / "qxl-animate-streams.spicecap"
WRITER = MessageWriter(True)


def check(ch: DisplayChannel, opcode: int, body: bytes) -> list[DisplayUpdated]:
    """Handle one message; assert its damage covers every pixel it changed."""
    before = {sid: s.pixels.copy() for sid, s in ch.surfaces.items()}
    events = ch.receive_data(WRITER.build(opcode, body))
    damage = [e for e in events if isinstance(e, DisplayUpdated)]
    for sid, surface in ch.surfaces.items():
        if sid not in before or before[sid].shape != surface.pixels.shape:
            continue  # created or re-created by this message: SurfaceCreated covers it
        changed = (before[sid] != surface.pixels).any(axis=2)
        covered = np.zeros_like(changed)
        for d in damage:
            if d.surface_id == sid:
                r = d.rect
                assert 0 <= r.top < r.bottom <= surface.height, r
                assert 0 <= r.left < r.right <= surface.width, r
                covered[r.top:r.bottom, r.left:r.right] = True
        outside = changed & ~covered
        assert not outside.any(), (
            f"opcode {opcode}: {int(outside.sum())} changed pixels outside the damage "
            f"{[d.rect for d in damage]}, first at {np.argwhere(outside)[0]}")
    return damage


def test_damage_of_a_real_seabios_session() -> None:
    ch = DisplayChannel(0, ChannelContext())
    total = 0
    for r in server_records(ChannelType.DISPLAY):
        total += len(check(ch, r.opcode, r.body))
    assert total > 10


def test_damage_of_a_real_stream_session() -> None:
    ch = DisplayChannel(0, ChannelContext())
    frames = 0
    for r in read_capture(STREAMS):
        if r.direction == "in" and r.channel_type == ChannelType.DISPLAY:
            damage = check(ch, r.opcode, r.body)
            if r.opcode == DisplayServer.STREAM_DATA:
                frames += 1
                assert len(damage) == 1  # the stream's destination
    assert frames >= 10


def _rng_image(h: int, w: int, seed: int) -> B.Image:
    px = np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)
    px[..., 3] = 255
    return B.Image(pixels=px)


DRAWS = [
    ("fill", DisplayServer.DRAW_FILL, B.draw_fill((10, 20, 40, 90), Ropd.OP_PUT, 0x123456)),
    ("fill clipped", DisplayServer.DRAW_FILL,
     B.draw_fill((0, 0, 64, 128), Ropd.OP_PUT, 0xFF00FF, clip=[(5, 5, 9, 60), (30, 70, 50, 80)])),
    ("fill xor", DisplayServer.DRAW_FILL, B.draw_fill((3, 3, 60, 120), Ropd.OP_XOR, 0x0F0F0F)),
    ("copy", DisplayServer.DRAW_COPY,
     B.draw_copy((8, 8, 40, 72), _rng_image(32, 64, 1), (0, 0, 32, 64), Ropd.OP_PUT)),
    ("copy scaled", DisplayServer.DRAW_COPY,
     B.draw_copy((0, 0, 64, 128), _rng_image(16, 16, 2), (0, 0, 16, 16), Ropd.OP_PUT)),
    ("blackness", DisplayServer.DRAW_BLACKNESS, B.draw_mask_only((1, 2, 30, 40))),
    ("invers", DisplayServer.DRAW_INVERS, B.draw_mask_only((20, 30, 60, 100))),
    ("rop3", DisplayServer.DRAW_ROP3,
     B.draw_rop3((4, 4, 36, 68), _rng_image(32, 64, 3), (0, 0, 32, 64), 0x96, color=0x00FF00)),
    ("transparent", DisplayServer.DRAW_TRANSPARENT,
     B.draw_transparent((0, 64, 32, 128), _rng_image(32, 64, 4), (0, 0, 32, 64), 0, 0)),
    ("alpha blend", DisplayServer.DRAW_ALPHA_BLEND,
     B.draw_alpha_blend((32, 0, 64, 64), _rng_image(32, 64, 5), (0, 0, 32, 64), 128)),
    ("off the surface", DisplayServer.DRAW_FILL,
     B.draw_fill((50, 100, 200, 300), Ropd.OP_PUT, 0xABCDEF)),
]


@pytest.mark.parametrize("fmt", [SurfaceFmt.FMT_32_xRGB, SurfaceFmt.FMT_32_ARGB,
                                 SurfaceFmt.FMT_16_565])
def test_damage_of_every_kind_of_draw(fmt: int) -> None:
    ch = DisplayChannel(0, ChannelContext())
    ch.receive_data(WRITER.build(DisplayServer.SURFACE_CREATE, B.surface_create(0, 128, 64, fmt)))
    noise = np.random.default_rng(9).integers(0, 256, ch.surfaces[0].pixels.shape, np.uint8)
    ch.surfaces[0].pixels[...] = noise
    for name, opcode, body in DRAWS:
        damage = check(ch, opcode, body)
        assert damage, name
    # COPY_BITS: source (0, 0) to a box at (10, 30): overlapping, damage is the box only.
    bits = B.Body()
    B.base(bits, (10, 30, 50, 100))
    bits.pack("ii", 0, 0)
    [d] = check(ch, DisplayServer.COPY_BITS, bits.build())
    assert (d.rect.top, d.rect.left, d.rect.bottom, d.rect.right) == (10, 30, 50, 100)
