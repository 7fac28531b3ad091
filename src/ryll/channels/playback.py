"""The playback channel (spice-gtk ``channel-playback.c``): what the guest plays.

The server announces the MODE (raw PCM, or Opus when we advertise it and it can), then START
(channels, S16, frequency) when the guest starts a voice, DATA every 10 ms, STOP when it
stops; VOLUME and MUTE because we advertise VOLUME, LATENCY (the video latency to add to the
audio buffer) because we advertise LATENCY. Every frame becomes an ``AudioPlayed`` event with
S16 interleaved samples and the server's mm_time, which front ends consume (--audio-out, the
viewer); the channel keeps only counters.

An underrun is a hole in the stream: a frame stamped more than UNDERRUN_MS after the end of
the previous one while playing (the server drops a frame when its client is slow, and
QEMU's voice delivers none when the guest is late). DATA outside START..STOP (the server may
send a queued frame after STOP) is counted and dropped, as spice-gtk does.
"""

from __future__ import annotations

from ryll.audio import OPUS_RATE, OpusDecoder, opus_available
from ryll.channels.base import Channel, handled
from ryll.channels.context import ChannelContext
from ryll.channels.events import AudioPlayed, AudioStarted, AudioStopped, AudioVolumeChanged
from ryll.errors import DecodeError
from ryll.protocol.constants import (
    AudioDataMode,
    AudioFmt,
    ChannelType,
    PlaybackCap,
    PlaybackServer,
)
from ryll.protocol.messages import audio as msgs

# A gap between frames beyond this (ms, past the previous frame's end) is an underrun.
UNDERRUN_MS = 15
MIN_FREQUENCY, MAX_FREQUENCY = 8000, 192000
MODE_NAMES: dict[int, str] = {
    AudioDataMode.RAW: "raw", AudioDataMode.OPUS: "opus",
    AudioDataMode.CELT_0_5_1: "celt_0_5_1", AudioDataMode.INVALID: "invalid"}


def mm_time_diff(a: int, b: int) -> int:
    """a - b on the server's wrapping u32 millisecond clock."""
    return (a - b + 2**31) % 2**32 - 2**31


def start_problem(start: msgs.AudioStart, side: str) -> tuple[str, str] | None:
    """The gap (key, detail) of a START ryll cannot play or answer, or None: S16 samples,
    one or two channels, 8..192 kHz (shared by playback and record)."""
    if start.format != AudioFmt.S16:
        return f"{side}:unimpl:format_{start.format}", "only S16 samples exist"
    if start.channels not in (1, 2):
        return f"{side}:unimpl:channels", f"{start.channels} channels (1 or 2 handled)"
    if not MIN_FREQUENCY <= start.frequency <= MAX_FREQUENCY:
        return f"{side}:malformed:frequency", f"{start.frequency} Hz"
    return None


class PlaybackChannel(Channel):
    channel_type = ChannelType.PLAYBACK

    @classmethod
    def caps_for(cls, ctx: ChannelContext) -> tuple[int, ...]:
        """VOLUME and LATENCY always (spice-gtk does); OPUS when it decodes here and the
        options allow it (--no-opus: the server sends raw PCM)."""
        caps = [PlaybackCap.VOLUME, PlaybackCap.LATENCY]
        if ctx.audio.opus and opus_available():
            caps.append(PlaybackCap.OPUS)
        return tuple(caps)

    def __init__(self, channel_id: int, ctx: ChannelContext, mini_header: bool = True) -> None:
        super().__init__(channel_id, ctx, mini_header)
        self.mode = int(AudioDataMode.RAW)  # spice-server's default until MODE says otherwise
        self.playing = False
        self.channels = 2
        self.frequency = OPUS_RATE
        self._decoder: OpusDecoder | None = None
        self._next_time: int | None = None  # where the previous frame ended (mm_time, ms)
        self.volume: tuple[int, ...] = ()
        self.mute = False
        self.latency_ms = 0
        self.starts = self.stops = 0
        self.frames = 0
        self.samples = 0  # per channel
        self.underruns = 0
        self.decode_failures = 0
        self.outside_start = 0

    @property
    def codec(self) -> str:
        return MODE_NAMES.get(self.mode, str(self.mode))

    # --- messages ------------------------------------------------------------------------

    def _on_mode(self, mode: msgs.AudioMode) -> None:
        if mode.mode not in (AudioDataMode.RAW, AudioDataMode.OPUS):
            self.gap(f"playback:unimpl:mode_{MODE_NAMES.get(mode.mode, mode.mode)}",
                     f"audio mode {mode.mode}: ryll plays raw PCM and Opus")
            return
        self.mode = mode.mode
        self.log.info("playback: mode %s", self.codec)

    def _on_start(self, start: msgs.AudioStart) -> None:
        problem = start_problem(start, "playback")
        if problem is not None:
            self.gap(*problem)
            return
        self._decoder = None
        if self.mode == AudioDataMode.OPUS:
            try:  # spice-gtk makes the decoder at START, with START's frequency
                self._decoder = OpusDecoder(start.frequency, start.channels)
            except DecodeError as exc:
                self.gap(f"playback:decode_failure:opus:{exc.reason}", str(exc))
                return
        self.playing = True
        self.channels, self.frequency = start.channels, start.frequency
        self._next_time = None
        self.starts += 1
        self.log.info("playback: start %d ch %d Hz %s", start.channels, start.frequency,
                      self.codec)
        self.emit(AudioStarted(start.channels, start.frequency, self.codec))

    def _on_data(self, data: msgs.AudioData) -> None:
        if not self.playing:
            self.outside_start += 1
            return
        if self._decoder is not None:
            try:
                pcm = self._decoder.decode(data.data)
            except DecodeError as exc:
                self.decode_failures += 1
                self.gap(f"playback:decode_failure:opus:{exc.reason}", str(exc))
                return
        else:
            pcm = data.data
            if len(pcm) % (2 * self.channels):
                self.gap("playback:malformed:data",
                         f"{len(pcm)} bytes is not a whole number of {self.channels}-channel "
                         "S16 samples")
                return
        n = len(pcm) // (2 * self.channels)
        if self._next_time is not None and mm_time_diff(data.time, self._next_time) > UNDERRUN_MS:
            self.underruns += 1
        self._next_time = (data.time + n * 1000 // self.frequency) % 2**32
        self.frames += 1
        self.samples += n
        self.emit(AudioPlayed(data.time, pcm, self.channels, self.frequency))

    def _on_stop(self, body: bytes) -> None:
        if not self.playing:
            return
        self.playing = False
        self.stops += 1
        self._decoder = None
        self.log.info("playback: stop")
        self.emit(AudioStopped())

    def _on_volume(self, volume: msgs.AudioVolume) -> None:
        self.volume = volume.volume
        self.emit(AudioVolumeChanged(self.volume, self.mute))

    def _on_mute(self, mute: bool) -> None:
        self.mute = mute
        self.emit(AudioVolumeChanged(self.volume, self.mute))

    def _on_latency(self, latency_ms: int) -> None:
        self.latency_ms = latency_ms

    def audio_state(self) -> dict[str, object]:
        return {
            "codec": self.codec,
            "playing": self.playing,
            "channels": self.channels,
            "frequency": self.frequency,
            "starts": self.starts,
            "stops": self.stops,
            "frames": self.frames,
            "seconds": round(self.samples / self.frequency, 3) if self.frequency else 0,
            "underruns": self.underruns,
            "decode_failures": self.decode_failures,
            "outside_start": self.outside_start,
            "volume": list(self.volume),
            "mute": self.mute,
            "latency_ms": self.latency_ms,
        }

    def state(self) -> dict[str, object]:
        data = super().state()
        data["audio"] = self.audio_state()
        return data


_P = PlaybackChannel
PlaybackChannel.routes = {
    PlaybackServer.DATA: handled(msgs.parse_data, _P._on_data),
    PlaybackServer.MODE: handled(msgs.parse_mode, _P._on_mode),
    PlaybackServer.START: handled(msgs.parse_playback_start, _P._on_start),
    PlaybackServer.STOP: handled(None, _P._on_stop),
    PlaybackServer.VOLUME: handled(msgs.parse_volume, _P._on_volume),
    PlaybackServer.MUTE: handled(msgs.parse_mute, _P._on_mute),
    PlaybackServer.LATENCY: handled(msgs.parse_latency, _P._on_latency),
}
