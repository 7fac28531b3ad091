"""The playback and record channels: every message with the bytes spice-server sends (layouts
from spice.proto, sizes from sound.cpp: a 14-byte playback START, a 10-byte record START,
1920-byte raw frames), Opus both ways through PyAV's libopus, the client's MODE/START_MARK
before the first record frame, and named gaps for bad input."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from tests.channels.test_channels import frame

from ryll.audio import OpusDecoder, OpusEncoder
from ryll.channels.context import AudioOptions, ChannelContext
from ryll.channels.events import (
    AudioPlayed,
    AudioStarted,
    AudioStopped,
    AudioVolumeChanged,
    RecordStarted,
    RecordStopped,
)
from ryll.channels.playback import PlaybackChannel
from ryll.channels.record import RecordChannel
from ryll.protocol.constants import (
    AudioDataMode,
    PlaybackCap,
    PlaybackServer,
    RecordCap,
    RecordClient,
    RecordServer,
)
from ryll.protocol.framing import MessageFramer
from ryll.session.record import Tone

START = struct.pack("<IHII", 2, 1, 48000, 1000)  # channels, S16, 48 kHz, mm_time
assert len(START) == 14


def mode(m: int) -> bytes:
    return frame(PlaybackServer.MODE, struct.pack("<IH", 0, m))


def data(t: int, payload: bytes) -> bytes:
    return frame(PlaybackServer.DATA, struct.pack("<I", t) + payload)


def tone_frames(n: int, hz: float = 1000.0) -> list[bytes]:
    tone = Tone(hz)
    return [tone.read(480, 2, 48000) for _ in range(n)]


def peak_hz(pcm: bytes, rate: int = 48000) -> float:
    left = np.frombuffer(pcm, "<i2")[::2].astype(float)
    spectrum = np.abs(np.fft.rfft(left * np.hanning(left.size)))
    return float(np.fft.rfftfreq(left.size, 1 / rate)[spectrum.argmax()])


def test_caps_follow_the_options() -> None:
    assert PlaybackCap.OPUS in PlaybackChannel.caps_for(ChannelContext())
    no_opus = ChannelContext(audio=AudioOptions(opus=False))
    assert PlaybackChannel.caps_for(no_opus) == (PlaybackCap.VOLUME, PlaybackCap.LATENCY)
    assert RecordChannel.caps_for(no_opus) == (RecordCap.VOLUME,)


def test_raw_playback() -> None:
    ch = PlaybackChannel(0, ChannelContext())
    frames = tone_frames(3)
    events = ch.receive_data(mode(AudioDataMode.RAW) + frame(PlaybackServer.START, START)
                             + b"".join(data(1000 + 10 * i, f) for i, f in enumerate(frames))
                             + frame(PlaybackServer.STOP))
    assert events[0] == AudioStarted(2, 48000, "raw")
    assert [e.pcm for e in events[1:4]] == frames  # type: ignore[attr-defined]
    assert [e.mm_time for e in events[1:4]] == [1000, 1010, 1020]  # type: ignore[attr-defined]
    assert events[4] == AudioStopped()
    state = ch.audio_state()
    assert (state["frames"], state["seconds"], state["underruns"]) == (3, 0.03, 0)


def test_opus_playback_decodes_what_libopus_encoded() -> None:
    enc = OpusEncoder()
    tone = b"".join(tone_frames(40))
    packets = [p for i in range(40) for p in enc.encode(tone[i * 1920:(i + 1) * 1920])]
    assert all(len(p) <= 480 for p in packets)
    ch = PlaybackChannel(0, ChannelContext())
    events = ch.receive_data(mode(AudioDataMode.OPUS) + frame(PlaybackServer.START, START)
                             + b"".join(data(10 * i, p) for i, p in enumerate(packets)))
    played = b"".join(e.pcm for e in events if isinstance(e, AudioPlayed))
    assert len(played) == len(tone)
    assert abs(peak_hz(played[4800:]) - 1000) < 30
    assert ch.audio_state()["codec"] == "opus"


def test_a_hole_in_the_stream_is_an_underrun_and_data_outside_start_is_dropped() -> None:
    ch = PlaybackChannel(0, ChannelContext())
    f = tone_frames(1)[0]
    events = ch.receive_data(data(0, f) + frame(PlaybackServer.START, START) + data(100, f)
                             + data(110, f) + data(200, f) + data(210, f))
    assert sum(isinstance(e, AudioPlayed) for e in events) == 4
    assert ch.underruns == 1 and ch.outside_start == 1


def test_mm_time_wraps() -> None:
    ch = PlaybackChannel(0, ChannelContext())
    f = tone_frames(1)[0]
    ch.receive_data(frame(PlaybackServer.START, START) + data(2**32 - 10, f) + data(0, f))
    assert ch.underruns == 0 and ch.frames == 2


def test_volume_mute_latency() -> None:
    ch = PlaybackChannel(0, ChannelContext())
    events = ch.receive_data(frame(PlaybackServer.VOLUME, struct.pack("<BHH", 2, 1000, 65535))
                             + frame(PlaybackServer.MUTE, b"\x01")
                             + frame(PlaybackServer.LATENCY, struct.pack("<I", 250)))
    assert events == [AudioVolumeChanged((1000, 65535), False),
                      AudioVolumeChanged((1000, 65535), True)]
    assert ch.latency_ms == 250


@pytest.mark.parametrize(("stream", "key"), [
    (mode(AudioDataMode.CELT_0_5_1), "playback:unimpl:mode_celt_0_5_1"),
    (frame(PlaybackServer.START, struct.pack("<IHII", 2, 2, 48000, 0)),
     "playback:unimpl:format_2"),
    (frame(PlaybackServer.START, struct.pack("<IHII", 6, 1, 48000, 0)),
     "playback:unimpl:channels"),
    (frame(PlaybackServer.START, struct.pack("<IHII", 2, 1, 7, 0)),
     "playback:malformed:frequency"),
    (frame(PlaybackServer.START, START[:13]), "playback:malformed:start"),
    (frame(PlaybackServer.START, START) + data(0, b"\x01\x02\x03"), "playback:malformed:data"),
    (frame(PlaybackServer.START, START) + data(0, bytes(70000)), "playback:malformed:data"),
    (mode(AudioDataMode.OPUS) + frame(PlaybackServer.START, START) + data(0, b"\xff" * 40),
     "playback:decode_failure:opus"),
    (frame(PlaybackServer.VOLUME, struct.pack("<B", 200) + bytes(400)),
     "playback:malformed:volume"),
    (frame(PlaybackServer.VOLUME, struct.pack("<BH", 3, 1)), "playback:malformed:volume"),
])
def test_bad_playback_input_is_a_named_gap(stream: bytes, key: str) -> None:
    ctx = ChannelContext()
    ch = PlaybackChannel(0, ctx)
    events = ch.receive_data(stream)
    assert not any(isinstance(e, AudioPlayed) for e in events)
    assert any(k.startswith(key) for k in ctx.gaps.counts()), ctx.gaps.counts()


def sent(ch: RecordChannel) -> list[tuple[int, bytes]]:
    return [(m.type, m.body) for m in MessageFramer(True).feed(ch.data_to_send())]


def record_start(freq: int = 48000) -> bytes:
    body = struct.pack("<IHI", 2, 1, freq)
    assert len(body) == 10
    return frame(RecordServer.START, body)


def test_raw_record_sends_mode_and_mark_before_the_first_frame() -> None:
    ch = RecordChannel(0, ChannelContext())  # the server offered no Opus: raw
    f1, f2 = tone_frames(2, 440)
    assert not ch.send_frame(f1)  # not recording yet: nothing sent
    assert ch.receive_data(record_start()) == [RecordStarted(2, 48000, "raw")]
    assert ch.send_frame(f1) and ch.send_frame(f2)
    assert sent(ch) == [
        (RecordClient.MODE, struct.pack("<IH", 0, AudioDataMode.RAW)),
        (RecordClient.START_MARK, struct.pack("<I", 0)),
        (RecordClient.DATA, struct.pack("<I", 0) + f1),
        (RecordClient.DATA, struct.pack("<I", 0) + f2),
    ]
    assert ch.receive_data(frame(RecordServer.STOP)) == [RecordStopped()]
    assert not ch.send_frame(f1)
    ch.receive_data(record_start())  # a new START: MODE and START_MARK again
    ch.send_frame(f1)
    assert [t for t, _ in sent(ch)] == [RecordClient.MODE, RecordClient.START_MARK,
                                       RecordClient.DATA]
    with pytest.raises(ValueError):
        ch.send_frame(f1[:100])


def test_opus_record_when_the_server_offers_it() -> None:
    ch = RecordChannel(0, ChannelContext())
    ch.server_caps = (1 << RecordCap.OPUS | 1 << RecordCap.VOLUME,)
    assert ch.receive_data(record_start()) == [RecordStarted(2, 48000, "opus")]
    frames = tone_frames(30, 440)
    for f in frames:
        ch.send_frame(f)
    msgs = sent(ch)
    assert msgs[0] == (RecordClient.MODE, struct.pack("<IH", 0, AudioDataMode.OPUS))
    packets = [body[4:] for t, body in msgs[2:]]
    assert all(t == RecordClient.DATA for t, _ in msgs[2:]) and len(packets) == 30
    assert all(len(p) <= 480 for p in packets)  # 10 ms each: spice-server's decode buffer
    dec = OpusDecoder()
    pcm = b"".join(dec.decode(p) for p in packets)
    assert len(pcm) == 30 * 1920
    assert abs(peak_hz(pcm[9600:]) - 440) < 30
    # Not at a frequency Opus takes, or with --no-opus: raw.
    ch.receive_data(frame(RecordServer.STOP) + record_start(44100))
    assert ch.codec == "raw"
    off = RecordChannel(0, ChannelContext(audio=AudioOptions(opus=False)))
    off.server_caps = ch.server_caps
    off.receive_data(record_start())
    assert off.codec == "raw"


def test_record_volume_and_mute_are_the_guest_s_gain() -> None:
    ch = RecordChannel(0, ChannelContext())
    ch.receive_data(record_start() + frame(RecordServer.VOLUME, struct.pack("<BHH", 2, 32768,
                                                                           32768)))
    f = tone_frames(1, 440)[0]
    ch.send_frame(f)
    got = np.frombuffer(sent(ch)[-1][1][4:], "<i2")
    want = np.frombuffer(f, "<i2")
    assert np.abs(got - want * 0.5).max() <= 1
    ch.receive_data(frame(RecordServer.MUTE, b"\x01"))
    ch.send_frame(f)
    assert sent(ch)[-1][1][4:] == bytes(1920)


@pytest.mark.parametrize(("body", "key"), [
    (struct.pack("<IHI", 2, 3, 48000), "record:unimpl:format_3"),
    (struct.pack("<IHI", 0, 1, 48000), "record:unimpl:channels"),
    (struct.pack("<IHI", 2, 1, 1 << 30), "record:malformed:frequency"),
    (struct.pack("<IH", 2, 1), "record:malformed:start"),
])
def test_bad_record_start_is_a_named_gap(body: bytes, key: str) -> None:
    ctx = ChannelContext()
    ch = RecordChannel(0, ctx)
    assert ch.receive_data(frame(RecordServer.START, body)) == []
    assert not ch.recording and key in ctx.gaps.counts()
