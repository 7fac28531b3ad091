"""What every channel handler of one session shares: the gap registry, the session state the
main channel learns, and the options. Injected, so handlers stay sans-IO and testable."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from ryll.budget import MemoryBudget
from ryll.gaps import GapRegistry
from ryll.render.decoders import DECODERS
from ryll.render.images import DisplayShared


@dataclass
class DisplayOptions:
    """What display INIT advertises. Defaults follow spice-gtk: an 80 MiB image cache
    (IMAGES_CACHE_SIZE_DEFAULT) and a GLZ window of half the guest's video RAM clamped to
    12..64 MiB (spice_session_set_caches_hints); ``glz_window_bytes=None`` means "derive"."""

    cache_bytes: int = 80 * 1024 * 1024
    glz_window_bytes: int | None = None
    # SpiceVideoCodecTypes in order of preference, sent as PREFERRED_VIDEO_CODEC_TYPE after
    # INIT (--video-codecs); empty: send none and let the server choose.
    video_codecs: tuple[int, ...] = ()
    # A SpiceImageCompression sent as PREFERRED_COMPRESSION after INIT
    # (--preferred-compression); None: send none and keep the server's setting.
    preferred_compression: int | None = None
    # SpiceVideoCodecTypes whose CODEC_* caps are not advertised (--no-h264).
    excluded_codecs: tuple[int, ...] = ()


@dataclass
class AudioOptions:
    """What the playback and record channels advertise and send."""

    # Advertise Opus (when it decodes here); False (--no-opus): the server sends raw PCM, and
    # record sends raw PCM whatever the server offers.
    opus: bool = True


GLZ_WINDOW_MIN = 12 * 1024 * 1024
GLZ_WINDOW_MAX = 64 * 1024 * 1024


@dataclass
class SessionState:
    """Session-wide facts from the main channel (MAIN_INIT and later messages)."""

    session_id: int | None = None
    display_channels_hint: int = 0
    ram_hint: int = 0
    supported_mouse_modes: int = 0
    current_mouse_mode: int = 0
    name: str | None = None
    uuid: uuid.UUID | None = None
    # The server's multimedia clock: value from INIT / MULTI_MEDIA_TIME and our monotonic time
    # when it arrived, so mm_time can be extrapolated (spice-gtk spice_session_get_mm_time).
    mm_time: int = 0
    mm_time_at: float = 0.0

    def current_mm_time(self, now: float) -> int:
        return (self.mm_time + int((now - self.mm_time_at) * 1000)) & 0xFFFFFFFF

    def glz_window_bytes(self, options: DisplayOptions) -> int:
        if options.glz_window_bytes is not None:
            return options.glz_window_bytes
        return max(GLZ_WINDOW_MIN, min(GLZ_WINDOW_MAX, self.ram_hint // 2))

    def as_dict(self) -> dict[str, object]:
        return {
            "session_id": self.session_id,
            "name": self.name,
            "uuid": str(self.uuid) if self.uuid else None,
            "display_channels_hint": self.display_channels_hint,
            "ram_hint": self.ram_hint,
            "supported_mouse_modes": self.supported_mouse_modes,
            "current_mouse_mode": self.current_mouse_mode,
            "mm_time": self.mm_time,
        }


# A traffic tap sees every message in both directions: (channel type, channel id, direction
# "in"/"out", opcode, body). Captures for fixtures and bug reports hang here.
Tap = Callable[[int, int, str, int, bytes], None]


@dataclass
class ChannelContext:
    gaps: GapRegistry = field(default_factory=GapRegistry)
    tap: Tap | None = None
    state: SessionState = field(default_factory=SessionState)
    display: DisplayOptions = field(default_factory=DisplayOptions)
    audio: AudioOptions = field(default_factory=AudioOptions)
    display_shared: DisplayShared = field(
        default_factory=lambda: DisplayShared(decoders=dict(DECODERS))
    )

    def fresh(self) -> ChannelContext:
        """A context for a new connection of the same session (a reconnect): the options, gaps
        and tap carry over; the server's state, the caches and the meters start afresh (the
        server resends everything a new connection needs), with the same limits."""
        old = self.display_shared
        shared = DisplayShared(decoders=dict(old.decoders), glz_max_bytes=old.glz_max_bytes,
                               memory=MemoryBudget(old.memory.limit))
        shared.images.max_bytes = old.images.max_bytes
        return ChannelContext(gaps=self.gaps, tap=self.tap, display=self.display,
                              audio=self.audio, display_shared=shared)

    @property
    def memory(self) -> MemoryBudget:
        """The session's memory budget (ryll.budget), kept with the display caches it meters."""
        return self.display_shared.memory
