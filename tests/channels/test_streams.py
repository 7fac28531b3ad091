"""The display channel's video-stream handlers, driven by real stream messages.

The bytes come from ``tests/fixtures/streams/qxl-animate-streams.spicecap`` (see the README
there): 20 MJPEG streams of a QXL guest's scrolling band, a few of their frames, clips,
destroys, report activations and the STREAM_DESTROY_ALL a QXL device reset sends. Messages the
server never sent us (STREAM_DATA_SIZED, other codecs, broken bodies) are derived from those
bodies following spice.proto's layouts.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import pytest
import simplejpeg
from tests.fixtures.records import Record, read_capture
from tests.video.encode import ENCODERS, bgr, encode

from ryll.channels.context import ChannelContext
from ryll.channels.display import DisplayChannel
from ryll.channels.events import DisplayUpdated, Event
from ryll.protocol.constants import (
    ChannelType,
    DisplayCap,
    DisplayClient,
    DisplayServer,
    StreamFlags,
    VideoCodecType,
)
from ryll.protocol.framing import MessageFramer, MessageWriter
from ryll.protocol.messages import stream as smsg
from ryll.protocol.messages.draw import Rect
from ryll.protocol.names import Direction, message_name
from ryll.render.streams import MAX_STREAM_ID
from ryll.video import available_codecs

FIXTURE = Path(__file__).parents[1] / "fixtures" / "streams" / "qxl-animate-streams.spicecap"
RECORDS: tuple[Record, ...] = tuple(read_capture(FIXTURE))
D = ChannelType.DISPLAY


def _bodies(opcode: int, direction: str = "in") -> list[bytes]:
    return [r.body for r in RECORDS if r.opcode == opcode and r.direction == direction]


SURFACE_CREATE = _bodies(DisplayServer.SURFACE_CREATE)[0]
CREATES = {smsg.parse_stream_create(b).id: b for b in _bodies(DisplayServer.STREAM_CREATE)}
ACTIVATES = {
    smsg.parse_stream_activate_report(b).stream_id: b
    for b in _bodies(DisplayServer.STREAM_ACTIVATE_REPORT)
}
FRAMES = _bodies(DisplayServer.STREAM_DATA)
CLIPS = _bodies(DisplayServer.STREAM_CLIP)
DESTROY_ALL = _bodies(DisplayServer.STREAM_DESTROY_ALL)[0]
REPORTS_SENT = _bodies(DisplayClient.STREAM_REPORT, "out")
# The first stream the server created, and one of its frames.
SID = 49
FRAME = next(b for b in FRAMES if smsg.parse_stream_data(b).id == SID)
FRAME_MM = smsg.parse_stream_data(FRAME).mm_time
# Its destination: a 32x48 strip of the band at y 425..473 (which strip varies by capture).
DEST = smsg.parse_stream_create(CREATES[SID]).dest
AREA = (slice(DEST.top, DEST.bottom), slice(DEST.left, DEST.right))
# A stream whose clip the server changed, and that clip's rects in order.
CLIPPED = smsg.parse_stream_clip(CLIPS[0]).id


# --- helpers ----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def frame(mtype: int, data: bytes = b"") -> bytes:
    return MessageWriter(True).build(mtype, data)


# The clock each test's channel is fed with (channels take the time with every message).
_CLOCKS: dict[int, Clock] = {}


def clocked(ch: DisplayChannel, clock: Clock | None = None) -> DisplayChannel:
    _CLOCKS[id(ch)] = clock or Clock()
    return ch


def clock_of(ch: DisplayChannel) -> Clock:
    return _CLOCKS.setdefault(id(ch), Clock())


def feed(ch: DisplayChannel, opcode: int, body: bytes) -> list[Event]:
    return ch.receive_data(frame(opcode, body), clock_of(ch).now)


def sent(ch: DisplayChannel) -> list[tuple[int, bytes]]:
    return [(m.type, m.body) for m in MessageFramer(True).feed(ch.data_to_send())]


def reports(ch: DisplayChannel) -> list[smsg.StreamReport]:
    out = []
    for op, body in sent(ch):
        assert op == DisplayClient.STREAM_REPORT
        out.append(smsg.StreamReport(*struct.unpack("<IIIIIIiI", body)))
    return out


def retarget(body: bytes, stream_id: int) -> bytes:
    """A stream message body (id first) for another stream id."""
    return struct.pack("<I", stream_id) + body[4:]


def with_mm_time(body: bytes, mm_time: int) -> bytes:
    return body[:4] + struct.pack("<I", mm_time & 0xFFFFFFFF) + body[8:]


def clip_body(stream_id: int, rects: list[Rect] | None) -> bytes:
    if rects is None:
        return struct.pack("<IB", stream_id, 0)
    return struct.pack("<IBI", stream_id, 1, len(rects)) + b"".join(
        struct.pack("<iiii", r.top, r.left, r.bottom, r.right) for r in rects
    )


def sized_from(data_body: bytes, width: int, height: int, dest: Rect) -> bytes:
    """STREAM_DATA_SIZED per spice.proto: id, multi_media_time, width, height, dest Rect,
    data_size, data; built from a captured STREAM_DATA (id, multi_media_time, data_size, data)."""
    return (
        data_body[:8]
        + struct.pack("<IIiiii", width, height, dest.top, dest.left, dest.bottom, dest.right)
        + data_body[8:]
    )


def create_with_id(create_body: bytes, stream_id: int) -> bytes:
    # STREAM_CREATE starts with surface_id u32, then id u32.
    return create_body[:4] + struct.pack("<I", stream_id) + create_body[8:]


def with_codec(create_body: bytes, codec: int) -> bytes:
    # surface_id u32, id u32, flags u8, codec u8
    return create_body[:9] + bytes([codec]) + create_body[10:]


def decoded(data_body: bytes) -> np.ndarray:
    pixels = simplejpeg.decode_jpeg(
        smsg.parse_stream_data(data_body).data, colorspace="BGRA", fastdct=False,
        fastupsample=False,
    )
    pixels[..., 3] = 255
    return pixels


def channel(clock: Clock | None = None, streams: tuple[int, ...] = (SID,)) -> DisplayChannel:
    ch = clocked(DisplayChannel(0, ChannelContext()), clock)
    feed(ch, DisplayServer.SURFACE_CREATE, SURFACE_CREATE)
    for sid in streams:
        feed(ch, DisplayServer.STREAM_CREATE, CREATES[sid])
    return ch


def on_time(ch: DisplayChannel, mm_time: int, ahead_ms: int = 100) -> None:
    """Set the session's multimedia clock so a frame stamped mm_time is ahead_ms early."""
    ch.ctx.state.mm_time = (mm_time - ahead_ms) & 0xFFFFFFFF
    ch.ctx.state.mm_time_at = clock_of(ch)()


# --- constants and names ----------------------------------------------------------------------


def test_destroy_all_constant_and_name() -> None:
    assert DisplayServer.STREAM_DESTROY_ALL == 126
    assert message_name(D, Direction.SERVER, 126) == "stream_destroy_all"
    assert DESTROY_ALL == b""


def test_fixture_holds_what_the_tests_need() -> None:
    assert len(CREATES) == 20 and len(FRAMES) >= 8 and CLIPS and REPORTS_SENT
    assert len(_bodies(DisplayServer.STREAM_DESTROY_ALL)) >= 1


# --- STREAM_CREATE ----------------------------------------------------------------------------


def test_stream_create_fields(caplog: pytest.LogCaptureFixture) -> None:
    msg = smsg.parse_stream_create(CREATES[SID])
    assert msg == smsg.StreamCreate(
        surface_id=0, id=SID, flags=StreamFlags.TOP_DOWN, codec=VideoCodecType.MJPEG, stamp=0,
        stream_width=32, stream_height=48, src_width=32, src_height=48, dest=DEST, clip=None,
    )
    with caplog.at_level(logging.INFO, logger="ryll.display"):
        ch = channel()
    stream = ch.streams.streams[SID]
    assert (stream.surface_id, stream.codec, stream.top_down) == (0, VideoCodecType.MJPEG, True)
    assert (stream.stream_width, stream.stream_height) == (32, 48)
    assert (stream.src_width, stream.src_height) == (32, 48)
    assert stream.dest == DEST and stream.clip is None and stream.supported
    assert ch.streams.created == 1
    assert (DEST.top, DEST.bottom, DEST.width) == (425, 473, 32)
    assert f"display: stream_create id=49 mjpeg 32x48 -> 32x48+{DEST.left}+425" in caplog.text
    assert len(ch.ctx.gaps) == 0


def test_stream_create_again_replaces_the_stream() -> None:
    ch = channel()
    feed(ch, DisplayServer.STREAM_CREATE, CREATES[SID])
    assert list(ch.streams.streams) == [SID]
    assert (ch.streams.created, ch.streams.destroyed) == (2, 1)


# --- STREAM_DATA ------------------------------------------------------------------------------


def test_stream_data_is_decoded_and_drawn() -> None:
    ch = channel()
    surface = ch.surfaces[0]
    before = surface.pixels.copy()
    events = feed(ch, DisplayServer.STREAM_DATA, FRAME)
    expected = decoded(FRAME)
    assert expected.shape == (48, 32, 4)
    np.testing.assert_array_equal(surface.pixels[AREA], expected)
    # Nothing outside the destination changed.
    outside = surface.pixels.copy()
    outside[AREA] = before[AREA]
    np.testing.assert_array_equal(outside, before)
    stream = ch.streams.streams[SID]
    assert (stream.frames_received, stream.frames_decoded, stream.frames_failed) == (1, 1, 0)
    assert stream.last_frame_at == stream.last_good_decode_at == clock_of(ch)()
    assert ch.streams.decoded["mjpeg"] == 1
    assert events == [DisplayUpdated(0, 0, DEST)]  # the damage: the stream's destination
    assert len(ch.ctx.gaps) == 0


def test_every_captured_frame_draws_into_its_stream_dest() -> None:
    ids = sorted({smsg.parse_stream_data(b).id for b in FRAMES})
    ch = channel(streams=tuple(ids))
    for body in FRAMES:
        feed(ch, DisplayServer.STREAM_DATA, body)
        sid = smsg.parse_stream_data(body).id
        d = ch.streams.streams[sid].dest
        np.testing.assert_array_equal(
            ch.surfaces[0].pixels[d.top:d.bottom, d.left:d.right], decoded(body)
        )
    assert ch.streams.decoded["mjpeg"] == len(FRAMES)
    assert len(ch.ctx.gaps) == 0


def test_stream_data_respects_the_clip() -> None:
    ch = channel()
    # Only the left half of the stream's destination is visible.
    mid = DEST.left + 16
    half = Rect(DEST.top, DEST.left, DEST.bottom, mid)
    feed(ch, DisplayServer.STREAM_CLIP, clip_body(SID, [half]))
    before = ch.surfaces[0].pixels.copy()
    feed(ch, DisplayServer.STREAM_DATA, FRAME)
    after = ch.surfaces[0].pixels
    np.testing.assert_array_equal(after[AREA[0], DEST.left:mid], decoded(FRAME)[:, :16])
    np.testing.assert_array_equal(after[AREA[0], mid:DEST.right], before[AREA[0], mid:DEST.right])
    assert ch.streams.streams[SID].frames_decoded == 1


def test_stream_data_with_the_captured_empty_clip_draws_nothing() -> None:
    empty = next(b for b in CLIPS if smsg.parse_stream_clip(b).clip == ())
    ch = channel()
    feed(ch, DisplayServer.STREAM_CLIP, retarget(empty, SID))
    before = ch.surfaces[0].pixels.copy()
    feed(ch, DisplayServer.STREAM_DATA, FRAME)
    np.testing.assert_array_equal(ch.surfaces[0].pixels, before)
    assert ch.streams.streams[SID].frames_decoded == 1


def test_bottom_up_stream_frames_are_flipped() -> None:
    body = CREATES[SID]
    bottom_up = body[:8] + bytes([0]) + body[9:]
    ch = channel(streams=())
    feed(ch, DisplayServer.STREAM_CREATE, bottom_up)
    assert not ch.streams.streams[SID].top_down
    feed(ch, DisplayServer.STREAM_DATA, FRAME)
    np.testing.assert_array_equal(ch.surfaces[0].pixels[AREA], decoded(FRAME)[::-1])


def test_stream_data_on_a_missing_surface_is_an_orphan_gap() -> None:
    ch = clocked(DisplayChannel(0, ChannelContext()))
    feed(ch, DisplayServer.STREAM_CREATE, CREATES[SID])
    feed(ch, DisplayServer.STREAM_DATA, FRAME)
    assert "display:orphan:stream_surface" in ch.ctx.gaps


# --- STREAM_DATA_SIZED ------------------------------------------------------------------------


def test_stream_data_sized_scales_to_its_new_dest() -> None:
    ch = channel()
    dest = Rect(100, 200, 196, 264)  # 64x96: twice the frame's 32x48
    body = sized_from(FRAME, 32, 48, dest)
    msg = smsg.parse_stream_data_sized(body)
    assert (msg.id, msg.width, msg.height, msg.dest) == (SID, 32, 48, dest)
    assert msg.data == smsg.parse_stream_data(FRAME).data
    feed(ch, DisplayServer.STREAM_DATA_SIZED, body)
    expected = decoded(FRAME).repeat(2, axis=0).repeat(2, axis=1)
    np.testing.assert_array_equal(ch.surfaces[0].pixels[100:196, 200:264], expected)
    assert ch.streams.streams[SID].dest == dest  # later frames go there too
    assert len(ch.ctx.gaps) == 0


def test_stream_data_sized_same_size_draws_unscaled_at_the_new_dest() -> None:
    ch = channel()
    dest = Rect(10, 20, 58, 52)
    feed(ch, DisplayServer.STREAM_DATA_SIZED, sized_from(FRAME, 32, 48, dest))
    np.testing.assert_array_equal(ch.surfaces[0].pixels[10:58, 20:52], decoded(FRAME))


# --- STREAM_CLIP ------------------------------------------------------------------------------


def test_stream_clip_updates_the_clip() -> None:
    ch = channel(streams=(CLIPPED,))
    dest = ch.streams.streams[CLIPPED].dest
    seen = []
    for body in CLIPS:
        msg = smsg.parse_stream_clip(body)
        if msg.id != CLIPPED:
            continue
        feed(ch, DisplayServer.STREAM_CLIP, body)
        seen.append(ch.streams.streams[CLIPPED].clip)
    # The server hid the strip, then showed it whole again.
    assert seen == [(), (dest,)]
    feed(ch, DisplayServer.STREAM_CLIP, clip_body(CLIPPED, None))
    assert ch.streams.streams[CLIPPED].clip is None
    assert ch.streams.orphans == 0


# --- STREAM_DESTROY and STREAM_DESTROY_ALL ----------------------------------------------------


def test_stream_destroy_removes_only_that_stream() -> None:
    ch = channel(streams=(49, 48, 47, 46))
    feed(ch, DisplayServer.STREAM_DESTROY, struct.pack("<I", 47))
    assert sorted(ch.streams.streams) == [46, 48, 49]
    assert ch.streams.destroyed == 1
    assert [d["id"] for d in ch.streams.recently_destroyed] == [47]
    # The survivors still draw.
    feed(ch, DisplayServer.STREAM_DATA, FRAME)
    assert ch.streams.streams[SID].frames_decoded == 1
    assert len(ch.ctx.gaps) == 0


def test_stream_destroy_all_clears_every_stream(caplog: pytest.LogCaptureFixture) -> None:
    ch = channel(streams=tuple(CREATES))
    for sid in (49, 48):
        feed(ch, DisplayServer.STREAM_ACTIVATE_REPORT, ACTIVATES[sid])
    surfaces = dict(ch.surfaces)
    with caplog.at_level(logging.INFO, logger="ryll.display"):
        feed(ch, DisplayServer.STREAM_DESTROY_ALL, DESTROY_ALL)
    assert ch.streams.streams == {}
    lines = [r for r in caplog.records if "stream_destroy_all" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in lines] == [
        (logging.INFO, "display: stream_destroy_all (clearing 20 streams)")
    ]
    assert len(ch.ctx.gaps) == 0
    assert "display:hexdump:126" not in ch.ctx.gaps
    assert (ch.streams.destroy_all, ch.streams.destroyed, ch.streams.orphans) == (1, 20, 0)
    assert ch.surfaces == surfaces  # surfaces belong to their own messages
    assert sent(ch) == []
    # A clean slate: the next STREAM_CREATE starts a working stream.
    feed(ch, DisplayServer.STREAM_CREATE, CREATES[SID])
    feed(ch, DisplayServer.STREAM_DATA, FRAME)
    assert list(ch.streams.streams) == [SID]
    assert ch.streams.streams[SID].frames_decoded == 1
    assert ch.streams.streams[SID].report is None
    np.testing.assert_array_equal(ch.surfaces[0].pixels[AREA], decoded(FRAME))
    assert len(ch.ctx.gaps) == 0


def test_stream_destroy_all_with_no_streams(caplog: pytest.LogCaptureFixture) -> None:
    ch = channel(streams=())
    with caplog.at_level(logging.INFO, logger="ryll.display"):
        feed(ch, DisplayServer.STREAM_DESTROY_ALL, DESTROY_ALL)
    assert "display: stream_destroy_all (clearing 0 streams)" in caplog.text
    assert ch.streams.destroy_all == 1 and len(ch.ctx.gaps) == 0


def test_replay_of_the_whole_capture_has_no_gaps(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    ch = clocked(DisplayChannel(0, ChannelContext()), clock)
    with caplog.at_level(logging.INFO, logger="ryll.display"):
        for r in RECORDS:
            if r.direction == "in":
                feed(ch, r.opcode, r.body)
    assert ch.ctx.gaps.counts() == {}
    assert ch.streams.streams == {}
    n = len(_bodies(DisplayServer.STREAM_DESTROY_ALL))
    assert ch.streams.destroy_all == n
    assert caplog.text.count("display: stream_destroy_all (clearing 0 streams)") == n
    assert ch.streams.created == ch.streams.destroyed == 20
    assert ch.streams.decoded["mjpeg"] == len(FRAMES)


# --- orphans ----------------------------------------------------------------------------------


def test_messages_for_unknown_stream_ids_are_orphans_not_errors() -> None:
    ch = channel()
    before = ch.surfaces[0].pixels.copy()
    feed(ch, DisplayServer.STREAM_DATA, retarget(FRAME, 7))
    feed(ch, DisplayServer.STREAM_DATA_SIZED, sized_from(retarget(FRAME, 7), 32, 48, DEST))
    feed(ch, DisplayServer.STREAM_CLIP, retarget(CLIPS[0], 7))
    feed(ch, DisplayServer.STREAM_DESTROY, struct.pack("<I", 7))
    feed(ch, DisplayServer.STREAM_ACTIVATE_REPORT, retarget(ACTIVATES[SID], 7))
    assert ch.streams.orphans == 5
    assert len(ch.ctx.gaps) == 0
    assert sent(ch) == []
    np.testing.assert_array_equal(ch.surfaces[0].pixels, before)
    assert list(ch.streams.streams) == [SID]


def test_destroy_of_a_destroyed_stream_is_an_orphan() -> None:
    ch = channel()
    feed(ch, DisplayServer.STREAM_DESTROY, struct.pack("<I", SID))
    feed(ch, DisplayServer.STREAM_DESTROY, struct.pack("<I", SID))
    assert (ch.streams.destroyed, ch.streams.orphans) == (1, 1)
    assert len(ch.ctx.gaps) == 0


# --- STREAM_ACTIVATE_REPORT and STREAM_REPORT -------------------------------------------------


def test_activate_report_fields() -> None:
    msg = smsg.parse_stream_activate_report(ACTIVATES[SID])
    assert (msg.stream_id, msg.max_window_size, msg.timeout_ms) == (SID, 5, 1000)
    ch = channel()
    feed(ch, DisplayServer.STREAM_ACTIVATE_REPORT, ACTIVATES[SID])
    window = ch.streams.streams[SID].report
    assert window is not None
    assert (window.unique_id, window.max_window, window.timeout_ms) == (msg.unique_id, 5, 1000)
    assert sent(ch) == []


def test_report_sent_when_the_window_is_full() -> None:
    ch = channel()
    feed(ch, DisplayServer.STREAM_ACTIVATE_REPORT, ACTIVATES[SID])
    unique_id = smsg.parse_stream_activate_report(ACTIVATES[SID]).unique_id
    on_time(ch, FRAME_MM)
    for i in range(4):
        feed(ch, DisplayServer.STREAM_DATA, with_mm_time(FRAME, FRAME_MM + 30 * i))
        clock_of(ch).now += 0.03
    assert sent(ch) == []
    feed(ch, DisplayServer.STREAM_DATA, with_mm_time(FRAME, FRAME_MM + 120))
    [rep] = reports(ch)
    assert (rep.stream_id, rep.unique_id) == (SID, unique_id)
    assert (rep.start_frame_mm_time, rep.end_frame_mm_time) == (FRAME_MM, FRAME_MM + 120)
    assert (rep.num_frames, rep.num_drops, rep.audio_delay) == (5, 0, 0xFFFFFFFF)
    assert rep.last_frame_delay > 0  # the last frame was early
    # The window starts again.
    feed(ch, DisplayServer.STREAM_DATA, with_mm_time(FRAME, FRAME_MM + 150))
    assert sent(ch) == []


def test_report_sent_on_timeout() -> None:
    clock = Clock()
    ch = channel(clock)
    feed(ch, DisplayServer.STREAM_ACTIVATE_REPORT, ACTIVATES[SID])
    on_time(ch, FRAME_MM, ahead_ms=5000)
    feed(ch, DisplayServer.STREAM_DATA, FRAME)
    clock.now += 0.999
    feed(ch, DisplayServer.STREAM_DATA, with_mm_time(FRAME, FRAME_MM + 40))
    assert sent(ch) == []
    clock.now += 0.002  # 1001 ms after the window's first frame, timeout_ms is 1000
    feed(ch, DisplayServer.STREAM_DATA, with_mm_time(FRAME, FRAME_MM + 80))
    [rep] = reports(ch)
    assert (rep.num_frames, rep.num_drops) == (3, 0)
    assert (rep.start_frame_mm_time, rep.end_frame_mm_time) == (FRAME_MM, FRAME_MM + 80)


def test_report_sent_after_three_consecutive_late_frames() -> None:
    ch = channel()
    feed(ch, DisplayServer.STREAM_ACTIVATE_REPORT, ACTIVATES[SID])
    # The session clock is 200 ms past the frames' stamps: every frame is late.
    on_time(ch, FRAME_MM, ahead_ms=-200)
    feed(ch, DisplayServer.STREAM_DATA, FRAME)
    feed(ch, DisplayServer.STREAM_DATA, with_mm_time(FRAME, FRAME_MM + 30))
    assert sent(ch) == []
    feed(ch, DisplayServer.STREAM_DATA, with_mm_time(FRAME, FRAME_MM + 60))
    [rep] = reports(ch)
    assert (rep.num_frames, rep.num_drops) == (3, 3)
    assert rep.last_frame_delay == -140
    assert ch.streams.streams[SID].frames_late == 3
    # Late frames are still drawn (spice-gtk drops them only from its playback queue).
    assert ch.streams.streams[SID].frames_decoded == 3


def test_late_frames_that_are_not_consecutive_do_not_trigger_a_report() -> None:
    ch = channel()
    feed(ch, DisplayServer.STREAM_ACTIVATE_REPORT, ACTIVATES[SID])
    on_time(ch, FRAME_MM, ahead_ms=-10)
    for mm in (0, 0, 50, 0):  # late, late, early, late
        feed(ch, DisplayServer.STREAM_DATA, with_mm_time(FRAME, FRAME_MM + mm))
    assert sent(ch) == []
    feed(ch, DisplayServer.STREAM_DATA, FRAME)  # the 5th frame fills the window
    [rep] = reports(ch)
    assert (rep.num_frames, rep.num_drops) == (5, 4)


def test_mm_time_wraps_around() -> None:
    ch = channel()
    feed(ch, DisplayServer.STREAM_ACTIVATE_REPORT, ACTIVATES[SID])
    ch.ctx.state.mm_time = 0xFFFFFFF0
    ch.ctx.state.mm_time_at = clock_of(ch)()
    # Stamped 16 ms after the clock, across the 32-bit wrap: early, not 4 billion ms late.
    feed(ch, DisplayServer.STREAM_DATA, with_mm_time(FRAME, 0))
    assert ch.streams.streams[SID].frames_late == 0


def test_no_report_without_activation() -> None:
    ch = channel()
    for _ in range(10):
        feed(ch, DisplayServer.STREAM_DATA, FRAME)
    assert sent(ch) == []


def test_captured_reports_have_the_window_shape() -> None:
    # What ryll sent the real server: one report per 5-frame window, no audio.
    for body in REPORTS_SENT:
        rep = smsg.StreamReport(*struct.unpack("<IIIIIIiI", body))
        assert rep.stream_id in CREATES and rep.audio_delay == 0xFFFFFFFF
        assert 1 <= rep.num_frames <= 5 and rep.num_drops <= rep.num_frames
        assert smsg.build_stream_report(rep) == body


# --- unsupported codecs -----------------------------------------------------------------------

UNKNOWN_CODEC = 7  # not a SpiceVideoCodecType


def test_unsupported_codec_gets_the_unsupported_report_and_a_gap() -> None:
    ch = channel(streams=())
    feed(ch, DisplayServer.STREAM_CREATE, with_codec(CREATES[SID], UNKNOWN_CODEC))
    stream = ch.streams.streams[SID]
    assert not stream.supported
    assert "display:unimpl:stream_codec_codec7" in ch.ctx.gaps
    feed(ch, DisplayServer.STREAM_ACTIVATE_REPORT, ACTIVATES[SID])
    unique_id = smsg.parse_stream_activate_report(ACTIVATES[SID]).unique_id
    [rep] = reports(ch)
    assert rep == smsg.StreamReport(SID, unique_id, 0, 0, 0, 0xFFFFFFFF, 0, 0xFFFFFFFF)
    # Its frames are counted, not decoded, drawn nor reported.
    before = ch.surfaces[0].pixels.copy()
    for _ in range(6):
        feed(ch, DisplayServer.STREAM_DATA, FRAME)
    assert sent(ch) == []
    assert (stream.frames_received, stream.frames_decoded, stream.frames_failed) == (6, 0, 0)
    np.testing.assert_array_equal(ch.surfaces[0].pixels, before)
    assert ch.ctx.gaps.counts() == {"display:unimpl:stream_codec_codec7": 1}


# --- malformed messages -----------------------------------------------------------------------

MALFORMED = {
    "stream_create": (DisplayServer.STREAM_CREATE, CREATES[SID][:-5]),
    "stream_data": (DisplayServer.STREAM_DATA, FRAME[:-1]),  # data_size overruns the body
    "stream_data_sized": (DisplayServer.STREAM_DATA_SIZED,
                          sized_from(FRAME, 32, 48, DEST)[:20]),
    "stream_clip": (DisplayServer.STREAM_CLIP, clip_body(SID, [DEST])[:-4]),
    "stream_destroy": (DisplayServer.STREAM_DESTROY, b"\x31\x00"),
    "stream_activate_report": (DisplayServer.STREAM_ACTIVATE_REPORT, ACTIVATES[SID][:12]),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_truncated_stream_message_is_a_malformed_gap(name: str) -> None:
    opcode, body = MALFORMED[name]
    ch = channel()
    feed(ch, opcode, body)
    assert ch.ctx.gaps.counts() == {f"display:malformed:{name}": 1}
    assert list(ch.streams.streams) == [SID]
    assert sent(ch) == []
    # The channel carries on.
    feed(ch, DisplayServer.STREAM_DATA, FRAME)
    assert ch.streams.streams[SID].frames_decoded == 1


def test_clip_with_an_absurd_rect_count_is_malformed() -> None:
    ch = channel()
    feed(ch, DisplayServer.STREAM_CLIP, struct.pack("<IBI", SID, 1, 0xFFFFFFFF))
    assert "display:malformed:stream_clip" in ch.ctx.gaps
    assert ch.streams.streams[SID].clip is None


def test_stream_id_over_the_limit_is_malformed() -> None:
    ch = channel(streams=())
    feed(ch, DisplayServer.STREAM_CREATE, create_with_id(CREATES[SID], MAX_STREAM_ID))
    assert ch.ctx.gaps.counts() == {"display:malformed:stream_create": 1}
    assert ch.streams.streams == {}
    feed(ch, DisplayServer.STREAM_CREATE, create_with_id(CREATES[SID], MAX_STREAM_ID - 1))
    assert list(ch.streams.streams) == [MAX_STREAM_ID - 1]


# --- decode failures --------------------------------------------------------------------------


def _with_data(data_body: bytes, data: bytes) -> bytes:
    return data_body[:8] + struct.pack("<I", len(data)) + data


@pytest.mark.parametrize(
    ("jpeg", "reason"),
    [
        (lambda d: b"\xff\xd8" + bytes(100), "bad_header"),
        (lambda d: d[:-2], "corrupt"),  # the end-of-image marker is missing
        (lambda d: b"", "bad_header"),
    ],
    ids=["garbage", "no_eoi", "empty"],
)
def test_corrupt_jpeg_frame_is_a_decode_failure(jpeg, reason: str) -> None:  # type: ignore[no-untyped-def]
    ch = channel()
    before = ch.surfaces[0].pixels.copy()
    data = smsg.parse_stream_data(FRAME).data
    feed(ch, DisplayServer.STREAM_DATA, _with_data(FRAME, jpeg(data)))
    assert ch.ctx.gaps.counts() == {f"display:decode_failure:mjpeg:{reason}": 1}
    stream = ch.streams.streams[SID]
    assert (stream.frames_received, stream.frames_decoded, stream.frames_failed) == (1, 0, 1)
    assert ch.streams.failed["mjpeg"] == 1
    np.testing.assert_array_equal(ch.surfaces[0].pixels, before)
    # The stream survives and the next good frame draws.
    feed(ch, DisplayServer.STREAM_DATA, FRAME)
    assert stream.frames_decoded == 1


# --- summary ----------------------------------------------------------------------------------


def test_channel_state_reports_stream_counters() -> None:
    ch = channel(streams=(49, 48))
    feed(ch, DisplayServer.STREAM_DATA, FRAME)
    feed(ch, DisplayServer.STREAM_DATA, retarget(FRAME, 3))
    feed(ch, DisplayServer.STREAM_DESTROY, struct.pack("<I", 48))
    feed(ch, DisplayServer.STREAM_DESTROY_ALL, DESTROY_ALL)
    state = ch.state()["streams"]
    assert isinstance(state, dict)
    assert state["created"] == 2 and state["destroyed"] == 2 and state["destroy_all"] == 1
    assert state["orphans"] == 1 and state["live"] == 0
    assert state["frames_decoded"] == {"mjpeg": 1} and state["frames_failed"] == {}
    assert [d["id"] for d in state["recently_destroyed"]] == [48, 49]


# --- VP8, VP9, H.264, H.265 through the stream handlers ---------------------------------------


def codec_id(codec: int) -> str:
    return VideoCodecType(codec).name.lower()


def data_body(stream_id: int, mm_time: int, data: bytes) -> bytes:
    return struct.pack("<III", stream_id, mm_time, len(data)) + data


def test_caps_advertise_the_codecs_that_decode_here() -> None:
    caps = set(DisplayChannel.channel_caps)
    assert {DisplayCap.MULTI_CODEC, DisplayCap.PREF_VIDEO_CODEC_TYPE, DisplayCap.SIZED_STREAM,
            DisplayCap.STREAM_REPORT} <= caps
    codec_caps = {
        VideoCodecType.MJPEG: DisplayCap.CODEC_MJPEG, VideoCodecType.VP8: DisplayCap.CODEC_VP8,
        VideoCodecType.H264: DisplayCap.CODEC_H264, VideoCodecType.VP9: DisplayCap.CODEC_VP9,
        VideoCodecType.H265: DisplayCap.CODEC_H265,
    }
    assert {c for c in codec_caps.values() if c in caps} == {
        codec_caps[VideoCodecType(c)] for c in available_codecs()
    }


@pytest.mark.parametrize("codec", sorted(ENCODERS), ids=codec_id)
def test_inter_frame_stream_is_decoded_and_drawn(codec: int) -> None:
    packets, pictures = encode(codec, 6, width=32, height=48)
    ch = channel(streams=())
    feed(ch, DisplayServer.STREAM_CREATE, with_codec(CREATES[SID], codec))
    stream = ch.streams.streams[SID]
    assert stream.supported and stream.decoder is not None
    feed(ch, DisplayServer.STREAM_ACTIVATE_REPORT, ACTIVATES[SID])
    assert sent(ch) == []  # a supported stream gets no "unsupported" report
    for i, (packet, rgb) in enumerate(zip(packets, pictures, strict=True)):
        feed(ch, DisplayServer.STREAM_DATA, data_body(SID, FRAME_MM + 40 * i, packet))
        drawn = ch.surfaces[0].pixels[AREA][..., :3].astype(int)
        err = np.abs(drawn - bgr(rgb).astype(int)).mean()
        assert err < 6.0, f"frame {i}: mean error {err:.1f}"
    name = codec_id(codec)
    assert (stream.frames_decoded, stream.frames_failed) == (6, 0)
    assert ch.streams.decoded == {name: 6}
    assert len(ch.ctx.gaps) == 0
    # A decoder lives as long as its stream.
    decoder = stream.decoder
    feed(ch, DisplayServer.STREAM_DESTROY, struct.pack("<I", SID))
    assert stream.decoder is None
    assert getattr(decoder, "_ctx", None) is None


def test_two_interleaved_h264_streams_each_keep_their_decoder() -> None:
    a_packets, a_pictures = encode(VideoCodecType.H264, 5, width=32, height=48)
    b_packets, b_pictures = encode(VideoCodecType.H264, 5, width=32, height=48)
    ch = channel(streams=())
    feed(ch, DisplayServer.STREAM_CREATE, with_codec(CREATES[49], VideoCodecType.H264))
    feed(ch, DisplayServer.STREAM_CREATE, with_codec(CREATES[48], VideoCodecType.H264))
    for i in range(5):
        feed(ch, DisplayServer.STREAM_DATA, data_body(49, FRAME_MM, a_packets[i]))
        feed(ch, DisplayServer.STREAM_DATA, data_body(48, FRAME_MM, b_packets[i]))
    px = ch.surfaces[0].pixels[..., :3].astype(int)
    for sid, pictures in ((49, a_pictures), (48, b_pictures)):
        d = ch.streams.streams[sid].dest
        err = np.abs(px[d.top:d.bottom, d.left:d.right] - bgr(pictures[4]).astype(int))
        assert err.mean() < 6.0
    assert len(ch.ctx.gaps) == 0


def test_destroy_all_closes_every_decoder() -> None:
    ch = channel(streams=())
    for sid in (49, 48, 47):
        feed(ch, DisplayServer.STREAM_CREATE, with_codec(CREATES[sid], VideoCodecType.VP8))
    decoders = [s.decoder for s in ch.streams.streams.values()]
    feed(ch, DisplayServer.STREAM_DESTROY_ALL, DESTROY_ALL)
    assert ch.streams.streams == {}
    assert all(getattr(d, "_ctx", 1) is None for d in decoders)


def test_bad_vp8_frame_is_a_decode_failure() -> None:
    ch = channel(streams=())
    feed(ch, DisplayServer.STREAM_CREATE, with_codec(CREATES[SID], VideoCodecType.VP8))
    feed(ch, DisplayServer.STREAM_DATA, data_body(SID, FRAME_MM, b"\xff" * 64))
    assert ch.ctx.gaps.counts() == {"display:decode_failure:vp8:invalid_data": 1}
    assert ch.streams.streams[SID].frames_failed == 1
    assert ch.streams.failed == {"vp8": 1}


def test_codec_without_a_decoder_here_is_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    # As on a machine whose PyAV lacks the VP8 decoder.
    import ryll.render.canvas as display

    real = display.make_decoder
    monkeypatch.setattr(
        display, "make_decoder", lambda c: None if c == VideoCodecType.VP8 else real(c)
    )
    ch = channel(streams=())
    feed(ch, DisplayServer.STREAM_CREATE, with_codec(CREATES[SID], VideoCodecType.VP8))
    feed(ch, DisplayServer.STREAM_ACTIVATE_REPORT, ACTIVATES[SID])
    [rep] = reports(ch)
    assert (rep.num_frames, rep.num_drops) == (0, 0xFFFFFFFF)
    assert ch.ctx.gaps.counts() == {"display:unimpl:stream_codec_vp8": 1}
    feed(ch, DisplayServer.STREAM_CREATE, CREATES[48])  # MJPEG still works
    assert ch.streams.streams[48].supported


def test_a_held_back_picture_is_not_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    class Holding:
        codec = VideoCodecType.H264

        def decode(self, data: bytes) -> None:
            return None

        def close(self) -> None:
            pass

    import ryll.render.canvas as display

    monkeypatch.setattr(display, "make_decoder", lambda c: Holding())
    ch = channel(streams=())
    feed(ch, DisplayServer.STREAM_CREATE, with_codec(CREATES[SID], VideoCodecType.H264))
    before = ch.surfaces[0].pixels.copy()
    feed(ch, DisplayServer.STREAM_DATA, data_body(SID, FRAME_MM, b"\x00\x00\x01"))
    np.testing.assert_array_equal(ch.surfaces[0].pixels, before)
    stream = ch.streams.streams[SID]
    assert (stream.frames_received, stream.frames_decoded, stream.frames_failed) == (1, 0, 0)
    assert len(ch.ctx.gaps) == 0


# --- VP8, H.264, VP9 streams captured from spice-server's GStreamer encoders ------------------

REAL_CODECS = ["vp8", "h264", "vp9"]


@pytest.mark.parametrize("name", REAL_CODECS)
def test_captured_stream_of_a_gstreamer_codec_decodes(name: str) -> None:
    path = FIXTURE.with_name(f"qxl-animate-{name}.spicecap")
    recs = [r for r in read_capture(path) if r.direction == "in"]
    creates = [smsg.parse_stream_create(r.body) for r in recs
               if r.opcode == DisplayServer.STREAM_CREATE]
    codec = VideoCodecType[name.upper()]
    assert creates and {c.codec for c in creates} == {codec}
    frames = [smsg.parse_stream_data(r.body) for r in recs
              if r.opcode == DisplayServer.STREAM_DATA]
    assert len(frames) >= 5 and len({f.id for f in frames}) == 1
    ch = clocked(DisplayChannel(0, ChannelContext()))
    for r in recs:
        feed(ch, r.opcode, r.body)
    assert ch.ctx.gaps.counts() == {}
    assert ch.streams.decoded == {name: len(frames)}
    stream = ch.streams.streams[frames[0].id]
    assert stream.frames_decoded == len(frames) and stream.decoder is not None
    # The band's strip is drawn: a colourful gradient, not the black of a fresh surface.
    d = stream.dest
    strip = ch.surfaces[0].pixels[d.top:d.bottom, d.left:d.right, :3]
    assert strip.mean() > 40 and strip.std() > 10


@pytest.mark.parametrize("name", REAL_CODECS)
def test_captured_inter_frames_need_their_stream_state(name: str) -> None:
    """Frames after the first depend on it: the same frames decoded in one decoder match the
    channel's result; a decoder that never saw the keyframe cannot produce them."""
    from ryll.errors import DecodeError
    from ryll.video import make_decoder

    path = FIXTURE.with_name(f"qxl-animate-{name}.spicecap")
    datas = [smsg.parse_stream_data(r.body).data for r in read_capture(path)
             if r.direction == "in" and r.opcode == DisplayServer.STREAM_DATA]
    codec = VideoCodecType[name.upper()]
    dec = make_decoder(codec)
    assert dec is not None
    outs = [dec.decode(d) for d in datas]
    assert all(o is not None for o in outs)
    fresh = make_decoder(codec)
    assert fresh is not None
    try:
        late = fresh.decode(datas[-1])
    except DecodeError:
        late = None
    last = outs[-1]
    assert last is not None
    assert late is None or np.abs(late.astype(int) - last.astype(int)).mean() > 1.0


# --- PREFERRED_VIDEO_CODEC_TYPE (--video-codecs) ----------------------------------------------


def _server_caps(*caps: int) -> tuple[int, ...]:
    words = [0]
    for cap in caps:
        words[0] |= 1 << cap
    return tuple(words)


def test_preferred_video_codecs_sent_after_init(caplog: pytest.LogCaptureFixture) -> None:
    from ryll.channels.context import DisplayOptions

    prefs = (VideoCodecType.H264, VideoCodecType.VP8, VideoCodecType.MJPEG)
    ch = DisplayChannel(0, ChannelContext(display=DisplayOptions(video_codecs=prefs)))
    ch.server_caps = _server_caps(DisplayCap.PREF_VIDEO_CODEC_TYPE, DisplayCap.MULTI_CODEC)
    with caplog.at_level(logging.INFO, logger="ryll.display"):
        ch.start()
    out = sent(ch)
    assert [op for op, _ in out] == [DisplayClient.INIT, DisplayClient.PREFERRED_VIDEO_CODEC_TYPE]
    assert out[1][1] == bytes([3, 3, 2, 1])  # count, then the codec ids best first
    assert "display: preferred video codecs h264,vp8,mjpeg" in caplog.text


def test_no_preference_to_a_server_without_the_cap_or_without_the_option() -> None:
    from ryll.channels.context import DisplayOptions

    ch = DisplayChannel(0, ChannelContext(
        display=DisplayOptions(video_codecs=(VideoCodecType.VP8,))))
    ch.server_caps = _server_caps(DisplayCap.MULTI_CODEC)
    ch.start()
    assert [op for op, _ in sent(ch)] == [DisplayClient.INIT]
    ch = DisplayChannel(0, ChannelContext())
    ch.server_caps = _server_caps(DisplayCap.PREF_VIDEO_CODEC_TYPE)
    ch.start()
    assert [op for op, _ in sent(ch)] == [DisplayClient.INIT]
