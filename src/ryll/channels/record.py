"""The record channel (spice-gtk ``channel-record.c``): what the guest's microphone hears.

The server sends START (channels, S16, frequency) when the guest opens its capture voice and
STOP when it closes it; VOLUME and MUTE (the guest's capture gain, applied to what ryll sends,
as spice-gtk applies them to its microphone) because we advertise VOLUME. The client picks the
codec (spice-gtk record_mode: Opus when the server advertises RECORD_CAP_OPUS and the
frequency is one Opus takes, raw PCM otherwise) and, before the first frame after each START,
sends MODE and START_MARK; then one DATA per 10 ms frame (raw: the samples; Opus: one packet
of exactly 10 ms, since spice-server disconnects the channel on a longer one).

Sans-IO: the session's pacer (session/record.py) calls :meth:`RecordChannel.send_frame` every
10 ms of real time with the samples to send; the channel encodes and queues the messages.
"""

from __future__ import annotations

import numpy as np

from ryll.audio import FRAME_MS, OpusEncoder, opus_available
from ryll.channels.base import Channel, handled
from ryll.channels.context import ChannelContext
from ryll.channels.events import RecordStarted, RecordStopped
from ryll.channels.playback import start_problem
from ryll.protocol.constants import (
    AudioDataMode,
    ChannelType,
    RecordCap,
    RecordClient,
    RecordServer,
)
from ryll.protocol.link import has_cap
from ryll.protocol.messages import audio as msgs

# spice-common snd_codec_is_capable: the frequencies Opus encodes.
OPUS_FREQUENCIES = (48000, 24000, 16000, 12000, 8000)


class RecordChannel(Channel):
    channel_type = ChannelType.RECORD

    @classmethod
    def caps_for(cls, ctx: ChannelContext) -> tuple[int, ...]:
        caps = [RecordCap.VOLUME]
        if ctx.audio.opus and opus_available():
            caps.append(RecordCap.OPUS)
        return tuple(caps)

    def __init__(self, channel_id: int, ctx: ChannelContext, mini_header: bool = True) -> None:
        super().__init__(channel_id, ctx, mini_header)
        self.recording = False
        self.mode = int(AudioDataMode.RAW)
        self.channels = 2
        self.frequency = 48000
        self._marked = False  # MODE and START_MARK sent since this START
        self._encoder: OpusEncoder | None = None
        self.volume: tuple[int, ...] = ()
        self.mute = False
        self.starts = self.stops = 0
        self.frames_sent = 0
        self.samples_sent = 0  # per channel
        self.bytes_sent = 0

    @property
    def codec(self) -> str:
        return "opus" if self.mode == AudioDataMode.OPUS else "raw"

    @property
    def frame_samples(self) -> int:
        """Samples a channel in one 10 ms frame at the current frequency."""
        return self.frequency * FRAME_MS // 1000

    # --- what the pacer does -----------------------------------------------------------------

    def send_frame(self, pcm: bytes) -> bool:
        """Send one frame of S16 interleaved samples (``frame_samples`` a channel, in this
        START's channels): False, and nothing sent, while the guest is not recording."""
        if not self.recording:
            return False
        if len(pcm) != self.frame_samples * self.channels * 2:
            raise ValueError(f"a record frame is {self.frame_samples} samples a channel")
        if self.mute or (self.volume and self.volume[0] < 65535):
            # The guest's capture gain (spice-gtk applies volume[0] to its microphone).
            gain = 0.0 if self.mute else self.volume[0] / 65535
            samples = np.frombuffer(pcm, "<i2").astype(np.float32) * gain
            pcm = np.rint(samples).astype("<i2").tobytes()
        if not self._marked:
            self.send(RecordClient.MODE, msgs.build_record_mode(self.mode))
            self.send(RecordClient.START_MARK, msgs.build_start_mark())
            self._marked = True
        if self.mode == AudioDataMode.OPUS:
            if self._encoder is None:
                self._encoder = OpusEncoder(self.frequency, self.channels)
            packets = self._encoder.encode(pcm)
        else:
            packets = [pcm]
        for packet in packets:
            self.send(RecordClient.DATA, msgs.build_record_data(packet))
            self.bytes_sent += len(packet)
        self.frames_sent += 1
        self.samples_sent += self.frame_samples
        return True

    # --- messages ----------------------------------------------------------------------------

    def _on_start(self, start: msgs.AudioStart) -> None:
        problem = start_problem(start, "record")
        if problem is not None:
            self.gap(*problem)
            return
        opus = (self.ctx.audio.opus and opus_available()
                and has_cap(self.server_caps, RecordCap.OPUS)
                and start.frequency in OPUS_FREQUENCIES)
        self.mode = int(AudioDataMode.OPUS if opus else AudioDataMode.RAW)
        self.channels, self.frequency = start.channels, start.frequency
        self.recording = True
        self._marked = False
        self._encoder = None
        self.starts += 1
        self.log.info("record: start %d ch %d Hz, sending %s", start.channels,
                      start.frequency, self.codec)
        self.emit(RecordStarted(start.channels, start.frequency, self.codec))

    def _on_stop(self, body: bytes) -> None:
        if not self.recording:
            return
        self.recording = False
        self.stops += 1
        self._encoder = None
        self.log.info("record: stop")
        self.emit(RecordStopped())

    def _on_volume(self, volume: msgs.AudioVolume) -> None:
        self.volume = volume.volume

    def _on_mute(self, mute: bool) -> None:
        self.mute = mute

    def audio_state(self) -> dict[str, object]:
        return {
            "codec": self.codec,
            "recording": self.recording,
            "channels": self.channels,
            "frequency": self.frequency,
            "starts": self.starts,
            "stops": self.stops,
            "frames": self.frames_sent,
            "seconds": round(self.samples_sent / self.frequency, 3) if self.frequency else 0,
            "bytes": self.bytes_sent,
            "volume": list(self.volume),
            "mute": self.mute,
        }

    def state(self) -> dict[str, object]:
        data = super().state()
        data["audio"] = self.audio_state()
        return data


_R = RecordChannel
RecordChannel.routes = {
    RecordServer.START: handled(msgs.parse_record_start, _R._on_start),
    RecordServer.STOP: handled(None, _R._on_stop),
    RecordServer.VOLUME: handled(msgs.parse_volume, _R._on_volume),
    RecordServer.MUTE: handled(msgs.parse_mute, _R._on_mute),
}
