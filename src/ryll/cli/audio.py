"""``--audio-out FILE.wav``: what the guest played, as a WAV file a test can assert on.

Samples are placed by the server's multimedia clock, not by arrival: the first frame's
mm_time is the file's start, and a frame stamped later than where the file has got to (by
more than GAP_MS: the guest paused, or stopped and started again, or the server dropped
frames) is preceded by that much silence. So the file's length is the time from the first
sound to the last, and a 2 s tone played after a pause is 2 s of tone after the pause's
silence. The samples are as the guest played them, before the volume and mute it sets (the
summary has both): a test asserts on what was played. The format is the first START's
(QEMU: 48 kHz stereo S16); a later START with another frequency is not resampled: its frames
are left out and counted (a warning at the end), and a channel-count change is mixed to the
file's.

The stdlib ``wave`` module writes the file and keeps its header right after every write, so
what was written survives a crash.
"""

from __future__ import annotations

import logging
import wave
from pathlib import Path

import numpy as np

from ryll.channels.events import AudioPlayed, AudioStarted, SessionEnded
from ryll.channels.playback import mm_time_diff
from ryll.session.bus import EventStream
from ryll.session.runner import FrontEnd
from ryll.session.session import Session, SessionEnd

log = logging.getLogger("ryll.audio")

# A frame later than this past the end of what was written is preceded by silence.
GAP_MS = 20


def _mix(pcm: bytes, have: int, want: int) -> bytes:
    """S16 interleaved with ``have`` channels as ``want`` channels (1 <-> 2)."""
    samples = np.frombuffer(pcm, "<i2").reshape(-1, have)
    if want == 1:
        return samples.mean(axis=1).astype("<i2").tobytes()
    return np.repeat(samples[:, :1], want, axis=1).tobytes()


class AudioOut(FrontEnd):
    name = "--audio-out"
    kinds = (AudioStarted, AudioPlayed, SessionEnded)

    def __init__(self, path: Path) -> None:
        self.path = path
        self._wav: wave.Wave_write | None = None
        self.channels = self.frequency = 0
        self._t0: int | None = None
        self.written = 0  # sample frames in the file
        self.silence = 0  # of which inserted silence
        self.frames_skipped = 0

    async def run(self, session: Session, events: EventStream) -> None:
        async with events:
            async for event in events:
                if isinstance(event, AudioPlayed):
                    self._write(event)

    def _open(self, channels: int, frequency: int) -> wave.Wave_write:
        wav = wave.open(str(self.path), "wb")
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(frequency)
        self.channels, self.frequency = channels, frequency
        log.info("audio: writing %s (%d Hz, %d channels)", self.path, frequency, channels)
        return wav

    def _write(self, frame: AudioPlayed) -> None:
        if self._wav is None:
            self._wav = self._open(frame.channels, frame.frequency)
            self._t0 = frame.mm_time
        if frame.frequency != self.frequency:
            self.frames_skipped += 1
            return
        pcm = frame.pcm
        if frame.channels != self.channels:
            pcm = _mix(pcm, frame.channels, self.channels)
        assert self._t0 is not None
        at = mm_time_diff(frame.mm_time, self._t0) * self.frequency // 1000
        if at - self.written > GAP_MS * self.frequency // 1000:
            gap = at - self.written
            self._wav.writeframes(bytes(gap * 2 * self.channels))
            self.written += gap
            self.silence += gap
        self._wav.writeframes(pcm)
        self.written += len(pcm) // (2 * self.channels)

    async def stop(self, session: Session, end: SessionEnd) -> None:
        if self._wav is None:  # the guest played nothing: an empty file says so
            self._wav = self._open(2, 48000)
        self._wav.close()
        log.info("audio: %s: %.2f s (%.2f s of it silence between sounds)", self.path,
                 self.written / self.frequency, self.silence / self.frequency)
        if self.frames_skipped:
            log.warning("audio: %d frames at another frequency than %d Hz left out of %s",
                        self.frames_skipped, self.frequency, self.path)
