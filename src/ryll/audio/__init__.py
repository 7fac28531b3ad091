"""Audio: SPICE's Opus frames through FFmpeg's libopus (PyAV), and 16-bit PCM helpers.

Every SPICE audio frame is 10 ms: 480 samples a channel at 48 kHz (spice-common snd_codec).
Playback decodes the server's Opus packets to S16 interleaved; record encodes 10 ms frames
(spice-server disconnects the record channel on a longer Opus packet). PyAV is imported at
the first Opus frame, as for video, so a session without audio never maps FFmpeg.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from typing import Any

import numpy as np

from ryll.errors import DecodeError
from ryll.video.av_decoder import gap_reason

OPUS_RATE = 48000
FRAME_MS = 10


@cache
def opus_available() -> bool:
    """Whether Opus is decoded and encoded here (PyAV, whose FFmpeg has libopus), known
    without importing PyAV; a codec that then fails to open is a gap, not a crash."""
    return importlib.util.find_spec("av") is not None


def to_s16(planar: np.ndarray) -> bytes:
    """Float samples, (channels, n) in -1..1, as S16 little-endian interleaved bytes."""
    clipped = np.clip(planar, -1.0, 1.0) * 32767.0
    return np.rint(clipped).astype("<i2").T.tobytes()


class OpusDecoder:
    """One playback stream's Opus decoder (a START makes a new one, as spice-gtk)."""

    def __init__(self, rate: int = OPUS_RATE, channels: int = 2) -> None:
        import av

        self._av = av
        self.channels = channels
        try:
            ctx = av.CodecContext.create("opus", "r")
            ctx.sample_rate = rate
            ctx.layout = "stereo" if channels == 2 else "mono"
            ctx.open()
        except av.error.FFmpegError as exc:
            raise DecodeError(f"opus: the decoder does not open: {exc}", "no_decoder") from None
        self._ctx: Any = ctx

    def decode(self, packet: bytes) -> bytes:
        """One packet's samples as S16 interleaved; DecodeError on a bad packet."""
        if not packet:
            raise DecodeError("opus: empty packet", "empty")
        av = self._av
        try:
            frames = self._ctx.decode(av.Packet(packet))
        except av.error.FFmpegError as exc:
            raise DecodeError(f"opus: {exc}", gap_reason(exc)) from None
        out = []
        for frame in frames:
            planar = frame.to_ndarray()
            if planar.shape[0] != self.channels:  # packed or a changed layout
                planar = planar.reshape(-1, self.channels).T
            out.append(to_s16(planar))
        return b"".join(out)


class OpusEncoder:
    """Record's encoder: 10 ms of S16 interleaved in, one Opus packet out."""

    def __init__(self, rate: int = OPUS_RATE, channels: int = 2) -> None:
        import fractions

        import av

        self._av = av
        self.rate, self.channels = rate, channels
        self.frame_samples = rate * FRAME_MS // 1000
        ctx = av.CodecContext.create("libopus", "w")
        ctx.sample_rate = rate
        ctx.layout = "stereo" if channels == 2 else "mono"
        ctx.format = "s16"
        ctx.time_base = fractions.Fraction(1, rate)
        ctx.options = {"frame_duration": str(FRAME_MS), "application": "audio"}
        ctx.open()
        self._ctx: Any = ctx
        self._pts = 0

    def encode(self, pcm: bytes) -> list[bytes]:
        """The packets for one frame of ``frame_samples`` samples (usually exactly one)."""
        samples = np.frombuffer(pcm, "<i2")
        if samples.size != self.frame_samples * self.channels:
            raise ValueError(f"a frame is {self.frame_samples} samples a channel")
        layout = "stereo" if self.channels == 2 else "mono"
        frame = self._av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16",
                                                 layout=layout)
        frame.sample_rate = self.rate
        frame.pts = self._pts
        self._pts += self.frame_samples
        return [bytes(p) for p in self._ctx.encode(frame)]
