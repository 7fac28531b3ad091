"""Video stream state of one display channel: a record per stream id, the report window, and
the counters a summary needs.

Report rules mirror spice-gtk ``display_update_stream_report``: once the server activates
reports for a stream, a STREAM_REPORT goes out when the window of frames is full, when
``timeout_ms`` has passed since the window's first frame, or after 3 consecutive late frames.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ryll.protocol.constants import StreamFlags, VideoCodecType
from ryll.protocol.messages.draw import Rect
from ryll.protocol.messages.stream import StreamActivateReport, StreamCreate, StreamReport

if TYPE_CHECKING:
    from ryll.video import VideoDecoder

# spice-gtk: STREAM_REPORT_DROP_SEQ_LEN_LIMIT.
DROP_SEQ_LEN_LIMIT = 3
# Stream ids: spice-server allocates them from a pool of NUM_STREAMS (50); spice-gtk grows an
# array to id + 1. Ryll keeps a dict but refuses ids past this, so a hostile id cannot grow it.
MAX_STREAM_ID = 4096
# Live streams at once (spice-server never has more than 50).
MAX_STREAMS = 256
# Destroyed streams kept for reports.
RECENTLY_DESTROYED = 16
# audio_delay when no playback runs (spice.proto).
NO_AUDIO = 0xFFFFFFFF


def codec_name(codec: int) -> str:
    try:
        return VideoCodecType(codec).name.lower()
    except ValueError:
        return f"codec{codec}"


@dataclass
class ReportWindow:
    unique_id: int
    max_window: int
    timeout_ms: int
    start_time: float = 0.0
    start_frame_time: int = 0
    num_frames: int = 0
    num_drops: int = 0
    drops_seq_len: int = 0

    def add(self, stream_id: int, frame_time: int, margin: int, now: float) -> StreamReport | None:
        if self.num_frames == 0:
            self.start_frame_time = frame_time
            self.start_time = now
        self.num_frames += 1
        if margin < 0:
            self.num_drops += 1
            self.drops_seq_len += 1
        else:
            self.drops_seq_len = 0
        if (
            self.num_frames >= self.max_window
            or (now - self.start_time) * 1000 >= self.timeout_ms
            or self.drops_seq_len >= DROP_SEQ_LEN_LIMIT
        ):
            report = StreamReport(
                stream_id, self.unique_id, self.start_frame_time, frame_time, self.num_frames,
                self.num_drops, max(-(2**31), min(margin, 2**31 - 1)), NO_AUDIO,
            )
            self.start_time = 0.0
            self.start_frame_time = self.num_frames = self.num_drops = self.drops_seq_len = 0
            return report
        return None


@dataclass
class Stream:
    id: int
    surface_id: int
    codec: int
    flags: int
    stream_width: int
    stream_height: int
    src_width: int
    src_height: int
    dest: Rect
    clip: tuple[Rect, ...] | None
    supported: bool = True
    frames_received: int = 0
    frames_decoded: int = 0
    frames_failed: int = 0
    frames_late: int = 0
    last_frame_at: float | None = None
    last_good_decode_at: float | None = None
    last_decode_seconds: float = 0.0
    report: ReportWindow | None = None
    # This stream's own decoder (inter-frame codecs keep state per stream); None when nothing
    # here decodes the codec. Closed when the stream is removed.
    decoder: VideoDecoder | None = field(default=None, repr=False)

    @classmethod
    def from_create(
        cls, msg: StreamCreate, supported: bool, decoder: VideoDecoder | None = None
    ) -> Stream:
        return cls(
            msg.id, msg.surface_id, msg.codec, msg.flags, msg.stream_width, msg.stream_height,
            msg.src_width, msg.src_height, msg.dest, msg.clip, supported, decoder=decoder,
        )

    def close(self) -> None:
        if self.decoder is not None:
            self.decoder.close()
            self.decoder = None

    @property
    def top_down(self) -> bool:
        return bool(self.flags & StreamFlags.TOP_DOWN)

    def activate_report(self, msg: StreamActivateReport) -> None:
        self.report = ReportWindow(msg.unique_id, msg.max_window_size, msg.timeout_ms)

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "surface_id": self.surface_id,
            "codec": codec_name(self.codec),
            "top_down": self.top_down,
            "stream_size": [self.stream_width, self.stream_height],
            "src_size": [self.src_width, self.src_height],
            "dest": [self.dest.left, self.dest.top, self.dest.right, self.dest.bottom],
            "clip_rects": None if self.clip is None else len(self.clip),
            "supported": self.supported,
            "frames_received": self.frames_received,
            "frames_decoded": self.frames_decoded,
            "frames_failed": self.frames_failed,
            "frames_late": self.frames_late,
            "last_decode_ms": round(self.last_decode_seconds * 1000, 3),
            "report_active": self.report is not None,
        }


@dataclass
class StreamTable:
    streams: dict[int, Stream] = field(default_factory=dict)
    recently_destroyed: deque[dict[str, object]] = field(
        default_factory=lambda: deque(maxlen=RECENTLY_DESTROYED)
    )
    created: int = 0
    destroyed: int = 0
    destroy_all: int = 0
    orphans: int = 0
    decoded: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)

    def add(self, stream: Stream) -> None:
        if stream.id in self.streams:
            self.remove(stream.id)
        self.streams[stream.id] = stream
        self.created += 1

    def remove(self, stream_id: int) -> Stream | None:
        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            stream.close()
            self.destroyed += 1
            self.recently_destroyed.append(stream.as_dict())
        return stream

    def clear(self) -> int:
        n = len(self.streams)
        for sid in list(self.streams):
            self.remove(sid)
        self.destroy_all += 1
        return n

    def summary(self) -> dict[str, object]:
        return {
            "live": len(self.streams),
            "created": self.created,
            "destroyed": self.destroyed,
            "destroy_all": self.destroy_all,
            "orphans": self.orphans,
            "frames_decoded": dict(self.decoded),
            "frames_failed": dict(self.failed),
        }
