"""Sound both ways against QEMU's HDA card on SPICE's audio backend: the guest plays a 1 kHz
tone for 2 s (guest/audio.c, raw ALSA ioctls) and ryll's ``--audio-out`` WAV has a 1 kHz peak
and about 2 s of signal, with raw PCM (``--no-opus``) and Opus; ryll's ``--audio-in tone:440``
reaches the guest's microphone, which reports a 440 Hz peak, raw and Opus."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ryll.testvm import TestVM
from tests.e2e.conftest import run_doc_example, run_ryll

pytestmark = pytest.mark.e2e

@pytest.fixture(scope="module")
def player() -> Iterator[TestVM]:
    """The guest plays 1 kHz for 2 s, then 1 s of nothing, over and over."""
    with TestVM(scene="static", sound=True,
                extra_cmdline="ryll.audio=play:1000:2 ryll.audio_pause=1") as vm:
        vm.wait_serial(r"ryll: sound ready", timeout=120)
        yield vm


@pytest.fixture(scope="module")
def recorder() -> Iterator[TestVM]:
    """The guest records 2 s at a time and reports the dominant frequency."""
    with TestVM(scene="static", sound=True,
                extra_cmdline="ryll.audio=record:2 ryll.audio_pause=0.2") as vm:
        vm.wait_serial(r"ryll: sound ready", timeout=120)
        yield vm


def tone_runs(path: Path) -> tuple[int, list[tuple[float, float]]]:
    """(rate, [(start s, length s)]) of the stretches with sound, by 10 ms RMS."""
    with wave.open(str(path)) as w:
        rate, channels = w.getframerate(), w.getnchannels()
        samples = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, channels)
    win = rate // 100
    n = samples.shape[0] // win
    rms = np.sqrt((samples[:n * win, 0].astype(float).reshape(n, win) ** 2).mean(axis=1))
    loud = rms > 500
    runs, start = [], None
    for i, on in enumerate([*loud, False]):
        if on and start is None:
            start = i
        elif not on and start is not None:
            runs.append((start / 100, (i - start) / 100))
            start = None
    return rate, runs


def peak_hz(path: Path, start: float, length: float) -> float:
    with wave.open(str(path)) as w:
        rate, channels = w.getframerate(), w.getnchannels()
        w.setpos(int(start * rate))
        left = np.frombuffer(w.readframes(int(length * rate)), "<i2")[::channels]
    spectrum = np.abs(np.fft.rfft(left.astype(float) * np.hanning(left.size)))
    return float(np.fft.rfftfreq(left.size, 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize("codec", ["raw", "opus"])
def test_audio_out_has_the_guest_s_tone(player: TestVM, tmp_path: Path, codec: str) -> None:
    out = tmp_path / "played.wav"
    args = ["--direct", f"127.0.0.1:{player.port}", "--headless", "--audio-out", str(out),
            "--duration", "9"] + (["--no-opus"] if codec == "raw" else [])
    run = run_ryll(args, tmp_path, timeout=60)
    assert run.returncode == 0, run.stderr
    rate, runs = tone_runs(out)
    assert rate == 48000
    # Whole tones: not cut by the start or the end of the recording.
    whole = [(s, n) for s, n in runs[1:-1]] or runs
    assert whole, runs
    for start, length in whole:
        assert abs(length - 2.0) < 0.1, runs
        assert abs(peak_hz(out, start + 0.2, length - 0.4) - 1000) < 15
    for before, after in zip(runs, runs[1:], strict=False):
        # The guest's 1 s pause (plus its program's restart) is silence in the file.
        gap = after[0] - (before[0] + before[1])
        assert 0.9 < gap < 2.5, runs
    assert run.summary is not None
    playback = run.summary["audio"]["playback"]
    assert playback["codec"] == codec
    assert playback["frames"] > 300 and playback["decode_failures"] == 0
    assert playback["starts"] >= 2
    assert playback["underruns"] <= playback["starts"]  # at most a hole as a voice starts
    assert not run.summary["gaps"], run.summary["gaps"]


@pytest.mark.parametrize("codec", ["raw", "opus"])
def test_audio_in_reaches_the_guest_s_microphone(recorder: TestVM, tmp_path: Path,
                                                 codec: str) -> None:
    args = ["--direct", f"127.0.0.1:{recorder.port}", "--headless", "--audio-in", "tone:440",
            "--duration", "9"] + (["--no-opus"] if codec == "raw" else [])
    off = recorder.serial_offset()
    proc = subprocess.Popen([sys.executable, "-m", "ryll", *args, "--summary-json",
                             str(tmp_path / "s.json")], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        peaks = []
        for _ in range(4):  # the first report may have begun before ryll was there
            values, off = recorder.wait_audio("recorded", timeout=30, after=off)
            peaks.append(values["peak"])
            if abs(values["peak"] - 440) < 15 and values["rms"] > 1000:
                break
        else:
            pytest.fail(f"the guest never heard 440 Hz: {peaks}")
        _, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads((tmp_path / "s.json").read_text())
    record = summary["audio"]["record"]
    assert record["codec"] == codec and record["frames"] > 200
    assert not summary["gaps"], summary["gaps"]


def test_silence_when_nothing_is_given(recorder: TestVM, tmp_path: Path) -> None:
    off = recorder.serial_offset()
    proc = subprocess.Popen([sys.executable, "-m", "ryll", "--direct",
                             f"127.0.0.1:{recorder.port}", "--headless", "--duration", "6"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _, off = recorder.wait_audio("recorded", timeout=30, after=off)  # maybe begun before
        values, _ = recorder.wait_audio("recorded", timeout=30, after=off)
        assert values["rms"] < 50
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0


def test_the_docs_audio_example_runs(player: TestVM, tmp_path: Path) -> None:
    run = run_doc_example("audio_out=", player.port, tmp_path, timeout=90)
    assert "'codec': 'opus'" in run.stdout
    _, runs = tone_runs(tmp_path / "played.wav")
    assert runs
