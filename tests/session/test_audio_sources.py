"""What the microphone hears (session.record): the tone is continuous across frames, an audio
file is resampled to what the server asks and followed by silence, and the --audio-in specs
are checked up front."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from ryll.errors import UsageError
from ryll.session.record import AudioFile, Silence, Tone, parse_audio_in


def test_the_tone_is_one_sine_across_frames() -> None:
    tone = Tone(440)
    pcm = b"".join(tone.read(480, 2, 48000) for _ in range(10))
    left = np.frombuffer(pcm, "<i2")[::2]
    assert np.array_equal(left, np.frombuffer(pcm, "<i2")[1::2])
    want = np.rint(np.sin(2 * np.pi * 440 * np.arange(4800) / 48000) * 0.5 * 32767)
    assert np.abs(left - want).max() <= 1


def test_an_audio_file_is_resampled_then_silence(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    with wave.open(str(path), "wb") as w:  # 0.1 s of mono 16 kHz, a 1 kHz tone
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        t = np.arange(1600) / 16000
        w.writeframes((np.sin(2 * np.pi * 1000 * t) * 10000).astype("<i2").tobytes())
    src = parse_audio_in(path)
    assert isinstance(src, AudioFile)
    pcm = b"".join(src.read(480, 2, 48000) for _ in range(15))  # 150 ms
    samples = np.frombuffer(pcm, "<i2").reshape(-1, 2)
    assert samples.shape == (7200, 2)
    sound = samples[:4500, 0].astype(float)
    spectrum = np.abs(np.fft.rfft(sound))
    assert abs(np.fft.rfftfreq(sound.size, 1 / 48000)[spectrum.argmax()] - 1000) < 20
    assert src.finished and not samples[5000:].any()  # the file ended: silence


def test_specs() -> None:
    assert isinstance(parse_audio_in("silence"), Silence)
    assert parse_audio_in("tone:440").name == "tone:440"
    for bad, why in [("tone:5", "20..20000 Hz"), ("tone:x", "could not convert"),
                     ("/no/such.wav", "no such file")]:
        with pytest.raises(UsageError, match=why):
            parse_audio_in(bad)


def test_a_file_that_is_not_audio_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(b"not audio at all" * 10)
    with pytest.raises(UsageError, match="cannot read it|no audio stream"):
        parse_audio_in(path)
