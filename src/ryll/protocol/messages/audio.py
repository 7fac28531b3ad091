"""Playback and record channel messages (spice.proto ``channel PlaybackChannel``,
``channel RecordChannel``).

The server's audio is 10 ms frames: 480 samples of 48 kHz S16 stereo, 1920 bytes raw or one
Opus packet each (spice-common snd_codec.h SND_CODEC_MAX_FRAME_SIZE; spice-server
sound.cpp), stamped with the server's multimedia clock (ms, u32, wrapping). Record is the same
the other way, with MODE and START_MARK before the first DATA after each RECORD_START
(spice-gtk channel-record.c).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ryll.errors import ProtocolError
from ryll.protocol.reader import Reader

# spice-common snd_codec.h: 480 frames of 10 ms at 48 kHz, the size of every server frame.
FRAME_SAMPLES = 480
# An audio DATA body ryll accepts: the server sends 1920 bytes (raw) or at most 480 (Opus); a
# generous bound keeps a hostile size from becoming a big allocation downstream.
MAX_AUDIO_DATA = 64 * 1024
# Volume channels: QEMU sends 2; the field is a u8 count.
MAX_VOLUME_CHANNELS = 16

_TIME_MODE = struct.Struct("<IH")
_PLAYBACK_START = struct.Struct("<IHII")  # channels, format, frequency, time
_RECORD_START = struct.Struct("<IHI")  # channels, format, frequency


@dataclass(frozen=True, slots=True)
class AudioMode:
    time: int
    mode: int  # AudioDataMode


@dataclass(frozen=True, slots=True)
class AudioStart:
    channels: int
    format: int  # AudioFmt
    frequency: int
    time: int  # playback only (record START has none: 0)


@dataclass(frozen=True, slots=True)
class AudioData:
    time: int
    data: bytes


@dataclass(frozen=True, slots=True)
class AudioVolume:
    volume: tuple[int, ...]  # per channel, 0..65535


def parse_mode(body: bytes) -> AudioMode:
    """PLAYBACK MODE: ``u32 time; u16 mode; uint8 data[]`` (the server sends no data)."""
    time, mode = Reader(body, what="playback mode").fields(_TIME_MODE, "playback mode")
    return AudioMode(time, mode)


def parse_playback_start(body: bytes) -> AudioStart:
    """PLAYBACK START: ``u32 channels; u16 format; u32 frequency; u32 time``."""
    return AudioStart(*Reader(body, what="playback start").fields(_PLAYBACK_START,
                                                                  "playback start"))


def parse_record_start(body: bytes) -> AudioStart:
    """RECORD START: ``u32 channels; u16 format; u32 frequency`` (no time)."""
    channels, fmt, frequency = Reader(body, what="record start").fields(_RECORD_START,
                                                                       "record start")
    return AudioStart(channels, fmt, frequency, 0)


def parse_data(body: bytes) -> AudioData:
    """PLAYBACK DATA: ``u32 time; uint8 data[]`` (the rest of the body)."""
    r = Reader(body, what="playback data")
    time = r.u32()
    if r.remaining > MAX_AUDIO_DATA:
        raise ProtocolError(f"playback data: {r.remaining} bytes (at most {MAX_AUDIO_DATA})")
    return AudioData(time, r.rest())


def parse_volume(body: bytes) -> AudioVolume:
    """VOLUME: ``u8 nchannels; u16 volume[nchannels]``."""
    r = Reader(body, what="volume")
    n = r.u8()
    if n > MAX_VOLUME_CHANNELS:
        raise ProtocolError(f"volume: {n} channels (at most {MAX_VOLUME_CHANNELS})")
    return AudioVolume(tuple(v for (v,) in r.records(struct.Struct("<H"), n, "volume")))


def parse_mute(body: bytes) -> bool:
    """MUTE: ``u8 mute``."""
    return bool(Reader(body, what="mute").u8())


def parse_latency(body: bytes) -> int:
    """PLAYBACK LATENCY: ``u32 latency_ms``, the video latency to add to the audio buffer."""
    return Reader(body, what="latency").u32()


def build_record_mode(mode: int, time: int = 0) -> bytes:
    """RECORD MODE: ``u32 time; u16 mode`` (spice-gtk sends no data; the server ignores the
    time)."""
    return _TIME_MODE.pack(time, mode)


def build_start_mark(time: int = 0) -> bytes:
    return struct.pack("<I", time)


def build_record_data(data: bytes, time: int = 0) -> bytes:
    return struct.pack("<I", time) + data
