"""Video stream messages of the display channel (spice.proto stream_create ... stream_report).

SPICE.md's prose spec is stale for these layouts; spice.proto is the source.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ryll.protocol.messages.draw import Rect, read_clip, read_rect
from ryll.protocol.reader import Reader


@dataclass(frozen=True, slots=True)
class StreamCreate:
    surface_id: int
    id: int
    flags: int
    codec: int
    stamp: int
    stream_width: int
    stream_height: int
    src_width: int
    src_height: int
    dest: Rect
    clip: tuple[Rect, ...] | None


@dataclass(frozen=True, slots=True)
class StreamData:
    id: int
    mm_time: int
    data: bytes
    # STREAM_DATA_SIZED only: the frame's own size and destination.
    width: int | None = None
    height: int | None = None
    dest: Rect | None = None


@dataclass(frozen=True, slots=True)
class StreamClip:
    id: int
    clip: tuple[Rect, ...] | None


@dataclass(frozen=True, slots=True)
class StreamActivateReport:
    stream_id: int
    unique_id: int
    max_window_size: int
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class StreamReport:
    stream_id: int
    unique_id: int
    start_frame_mm_time: int
    end_frame_mm_time: int
    num_frames: int
    num_drops: int
    last_frame_delay: int
    audio_delay: int


def parse_stream_create(body: bytes) -> StreamCreate:
    r = Reader(body, what="stream_create")
    return StreamCreate(
        r.u32(), r.u32(), r.u8(), r.u8(), r.u64(), r.u32(), r.u32(), r.u32(), r.u32(),
        read_rect(r), read_clip(r),
    )


def parse_stream_data(body: bytes) -> StreamData:
    r = Reader(body, what="stream_data")
    sid, mm_time = r.u32(), r.u32()
    return StreamData(sid, mm_time, r.bytes(r.u32(), "frame data"))


def parse_stream_data_sized(body: bytes) -> StreamData:
    r = Reader(body, what="stream_data_sized")
    sid, mm_time, width, height = r.u32(), r.u32(), r.u32(), r.u32()
    dest = read_rect(r)
    return StreamData(sid, mm_time, r.bytes(r.u32(), "frame data"), width, height, dest)


def parse_stream_clip(body: bytes) -> StreamClip:
    r = Reader(body, what="stream_clip")
    return StreamClip(r.u32(), read_clip(r))


def parse_stream_destroy(body: bytes) -> int:
    return Reader(body, what="stream_destroy").u32()


def parse_stream_activate_report(body: bytes) -> StreamActivateReport:
    r = Reader(body, what="stream_activate_report")
    return StreamActivateReport(r.u32(), r.u32(), r.u32(), r.u32())


def build_stream_report(rep: StreamReport) -> bytes:
    return struct.pack(
        "<IIIIIIiI", rep.stream_id, rep.unique_id, rep.start_frame_mm_time,
        rep.end_frame_mm_time, rep.num_frames, rep.num_drops, rep.last_frame_delay,
        rep.audio_delay,
    )


def build_preferred_video_codecs(codecs: list[int]) -> bytes:
    return struct.pack(f"<B{len(codecs)}B", len(codecs), *codecs)
