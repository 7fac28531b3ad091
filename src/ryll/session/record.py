"""What the guest's microphone hears: a source of samples, paced in real time.

While the server has the record channel started, the pacer hands the channel one 10 ms frame
every 10 ms of the event loop's clock (channels.record encodes and queues it), from
``session.record.source``: silence unless something else is given (``--audio-in``,
``connect(audio_in=...)``): a tone (``tone:440``) or an audio file PyAV reads (WAV, FLAC,
Ogg...), resampled to what the server asks and followed by silence once it ends.

Pacing: each frame is due at start + k * 10 ms. A late loop sends the frames that are due
without sleeping, but never more than MAX_CATCH_UP_S behind: spice-server keeps 8192 samples
(170 ms at 48 kHz) and drops the oldest beyond, so a burst after a stall only loses audio;
the pacer then restarts its clock from now.
"""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ryll.channels.record import RecordChannel
from ryll.errors import UsageError

if TYPE_CHECKING:
    from ryll.session.session import Session

log = logging.getLogger("ryll.record")

MAX_CATCH_UP_S = 0.1
MIN_TONE_HZ, MAX_TONE_HZ = 20.0, 20000.0


class AudioSource(Protocol):
    """``read`` returns exactly ``samples`` samples a channel, S16 interleaved."""

    name: str

    def read(self, samples: int, channels: int, rate: int) -> bytes: ...


class Silence:
    name = "silence"

    def read(self, samples: int, channels: int, rate: int) -> bytes:
        return bytes(samples * channels * 2)


class Tone:
    """A sine at ``frequency`` Hz, half of full scale, continuous across frames."""

    def __init__(self, frequency: float, amplitude: float = 0.5) -> None:
        if not MIN_TONE_HZ <= frequency <= MAX_TONE_HZ:
            raise ValueError(f"a tone is {MIN_TONE_HZ:g}..{MAX_TONE_HZ:g} Hz")
        self.frequency = frequency
        self.amplitude = amplitude
        self.name = f"tone:{frequency:g}"
        self._phase = 0.0

    def read(self, samples: int, channels: int, rate: int) -> bytes:
        step = 2 * math.pi * self.frequency / rate
        phases = self._phase + step * np.arange(samples)
        self._phase = float((self._phase + step * samples) % (2 * math.pi))
        mono = np.rint(np.sin(phases) * self.amplitude * 32767).astype("<i2")
        return np.repeat(mono[:, None], channels, axis=1).tobytes()


class AudioFile:
    """An audio file decoded by PyAV (FFmpeg) and resampled to the server's format as it is
    read: a frame's worth at a time, so a long file costs no memory. Silence after its end."""

    def __init__(self, path: Path) -> None:
        import av

        self.path = path
        self.name = f"file:{path}"
        try:
            self._container: Any = av.open(str(path))
        except (av.error.FFmpegError, OSError) as exc:
            raise UsageError(f"--audio-in {path}: cannot read it: {exc}") from None
        if not self._container.streams.audio:
            self._container.close()
            raise UsageError(f"--audio-in {path}: has no audio stream")
        self._frames = self._container.decode(audio=0)
        self._resampler: Any = None
        self._format = (0, 0)
        self._buf = bytearray()
        self.finished = False

    def read(self, samples: int, channels: int, rate: int) -> bytes:
        import av

        want = samples * channels * 2
        if self._format != (channels, rate):
            layout = "stereo" if channels == 2 else "mono"
            self._resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
            self._format = (channels, rate)
            self._buf.clear()
        while len(self._buf) < want and not self.finished:
            try:
                frame = next(self._frames)
            except StopIteration:
                self.finished = True
                log.info("record: %s ended; silence from now on", self.path)
                break
            except av.error.FFmpegError as exc:
                self.finished = True
                log.warning("record: %s: %s; silence from now on", self.path, exc)
                break
            for out in self._resampler.resample(frame):
                self._buf += out.to_ndarray().tobytes()
        data = bytes(self._buf[:want])
        del self._buf[:want]
        return data + bytes(want - len(data))


def parse_audio_in(text: str | Path) -> AudioSource:
    """``tone:HZ``, ``silence``, or an audio file's path (UsageError if it cannot be read)."""
    spec = str(text)
    if spec == "silence":
        return Silence()
    if spec.startswith("tone:"):
        try:
            return Tone(float(spec[5:]))
        except ValueError as exc:
            raise UsageError(f"--audio-in {spec}: {exc}") from None
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"--audio-in {spec}: no such file (or tone:HZ, silence)")
    return AudioFile(path)


class RecordPacer:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.source: AudioSource = Silence()
        self._task: asyncio.Task[None] | None = None

    def started(self, channel: RecordChannel) -> None:
        if self._task is None or self._task.done():
            self._task = self.session._spawn(self._run(channel))  # cancelled with the channels

    def stopped(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self, channel: RecordChannel) -> None:
        loop = asyncio.get_running_loop()
        period = channel.frame_samples / channel.frequency
        due = loop.time()
        log.info("record: sending %s as %s", self.source.name, channel.codec)
        while channel.recording:
            pcm = self.source.read(channel.frame_samples, channel.channels, channel.frequency)
            channel.send_frame(pcm)
            self.session.flush(channel)
            due += period
            now = loop.time()
            if due - now < -MAX_CATCH_UP_S:
                due = now
            elif due > now:
                await asyncio.sleep(due - now)
