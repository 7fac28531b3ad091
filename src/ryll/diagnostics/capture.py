"""``--capture DIR``: the session's decrypted traffic as one pcap per channel, a
``metadata.json`` that says what was captured, and a video of the primary monitor.

The pcaps (``main.pcap``, ``display.pcap``, ``display-1.pcap``...) are written as the bytes
cross the wire (unbuffered: a crash loses nothing already received), from the session's
traffic sinks (session.traffic), so each conversation starts with its link phase and
Wireshark's SPICE dissector decodes it (diagnostics.pcap; its one limit in pcap_read). A
reconnect starts a new TCP conversation in the same file. ``metadata.json`` is rewritten
(atomically) as channels link and once more at the end. The video (``display.mp4``, or
``.webm``: diagnostics.video) takes a frame after display updates, at most ``VIDEO_FPS`` a
second, encoded in a worker thread; while the encoder is busy, updates fold into the next
frame, so capture never queues frames or holds the session back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from ryll import __version__
from ryll.channels.events import ChannelLinked, DisplayUpdated, SessionEnded
from ryll.diagnostics import pcap
from ryll.diagnostics.video import VideoWriter
from ryll.errors import RyllError, UsageError
from ryll.protocol.names import COMMON, cap_names
from ryll.session.bus import EventStream
from ryll.session.connection import COMMON_CAPS
from ryll.session.runner import FrontEnd
from ryll.session.session import Session, SessionEnd
from ryll.session.traffic import ChannelKey

log = logging.getLogger("ryll.capture")

VIDEO_FPS = 25
METADATA = "metadata.json"


def check_capture_dir(path: Path, flag: str = "--capture") -> None:
    """The directory is created if missing; one that already holds a capture is refused (its
    files would be overwritten: a lost result)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot create it: {exc.strerror or exc}") from None
    if not path.is_dir():
        raise UsageError(f"{flag} {path}: not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: not writable")
    if (path / METADATA).exists() or any(path.glob("*.pcap")):
        raise UsageError(f"{flag} {path}: already holds a capture; give a new or empty "
                         "directory")


class PcapRecorder:
    """A traffic sink writing one pcap per channel into ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files: dict[tuple[int, int], BinaryIO] = {}
        self._conversations: dict[tuple[int, int], pcap.TcpConversation] = {}
        self.paths: dict[tuple[int, int], Path] = {}
        self.bytes_written = 0

    def _write(self, where: tuple[int, int], data: bytes) -> None:
        self._files[where].write(data)
        self.bytes_written += len(data)

    def opened(self, channel: ChannelKey, at: float) -> None:
        where = (channel.type, channel.id)
        if where not in self._files:
            path = self.directory / pcap.file_name(channel.name, channel.id)
            self._files[where] = open(path, "wb", buffering=0)  # noqa: SIM115 (kept open)
            self.paths[where] = path
            self._write(where, pcap.global_header())
        conversation = pcap.TcpConversation(pcap.channel_port(channel.name, channel.id))
        self._conversations[where] = conversation
        self._write(where, conversation.open(at))

    def linked(self, channel: ChannelKey, mini_header: bool, at: float) -> None:
        pass

    def sent(self, channel: ChannelKey, data: bytes, at: float) -> None:
        where = (channel.type, channel.id)
        self._write(where, self._conversations[where].sent(data, at))

    def received(self, channel: ChannelKey, data: bytes, at: float) -> None:
        where = (channel.type, channel.id)
        self._write(where, self._conversations[where].received(data, at))

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


def write_json_atomically(path: Path, value: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def channel_caps(session: Session) -> list[dict[str, object]]:
    """Each linked channel with both sides' capabilities (numbers and names)."""
    out: list[dict[str, object]] = []
    for (ctype, cid), info in sorted(session.channels.items()):
        channel = info.channel
        client_caps = type(channel).caps_for(session.ctx)
        out.append({
            "type": ctype,
            "name": channel.name,
            "id": cid,
            "tls": info.tls,
            "pcap": pcap.file_name(channel.name, cid),
            "client_port": pcap.channel_port(channel.name, cid),
            "common_caps": {
                "client": cap_names(COMMON, COMMON_CAPS),
                "server": cap_names(COMMON, channel.server_common_caps, words=True),
            },
            "channel_caps": {
                "client": cap_names(ctype, client_caps),
                "server": cap_names(ctype, channel.server_caps, words=True),
            },
        })
    return out


class Capture(FrontEnd):
    """``--capture DIR`` (and ``ryll.connect(capture=DIR)``)."""

    name = "--capture"
    kinds = (ChannelLinked, DisplayUpdated, SessionEnded)

    def __init__(self, directory: Path, video: bool = True) -> None:
        self.directory = directory
        self.video = video
        self.recorder = PcapRecorder(directory)
        self.writer: VideoWriter | None = None
        self.started = datetime.now(UTC)
        self._video_error: str | None = None

    def metadata(self, session: Session, end: SessionEnd | None = None) -> dict[str, object]:
        video = None
        if self.writer is not None and self.writer.path is not None:
            video = {"file": self.writer.path.name, "codec": self.writer.codec,
                     "frames": self.writer.frames}
        return {
            "ryll_version": __version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "os": platform.system(),
            "arch": platform.machine(),
            "target": session.target.describe(),
            "start_time": self.started.isoformat(),
            "session_start_unix": session.started_at,
            "pcap": {
                "server": f"{'.'.join(map(str, pcap.SERVER_IP))}:{pcap.SERVER_PORT}",
                "client": ".".join(map(str, pcap.CLIENT_IP)),
                "wireshark": "decode tcp.port==5900 as spice (tshark -d tcp.port==5900,spice)",
            },
            "channels": channel_caps(session),
            "video": video,
            "video_error": self._video_error,
            "ended": None if end is None else {
                "reason": end.reason, "message": end.message,
                "uptime_s": round(session.uptime, 3),
            },
        }

    async def start(self, session: Session) -> None:
        check_capture_dir(self.directory)
        write_json_atomically(self.directory / METADATA, self.metadata(session))
        session.traffic.add(self.recorder)
        log.info("capture: recording into %s", self.directory)

    async def run(self, session: Session, events: EventStream) -> None:
        drawn = asyncio.Event()
        video = asyncio.ensure_future(self._video(session, drawn)) if self.video else None
        try:
            async with events:
                async for event in events:
                    if isinstance(event, ChannelLinked):
                        write_json_atomically(self.directory / METADATA,
                                              self.metadata(session))
                    elif isinstance(event, DisplayUpdated):
                        drawn.set()
        finally:
            if video is not None:
                video.cancel()
                await asyncio.gather(video, return_exceptions=True)

    async def _video(self, session: Session, drawn: asyncio.Event) -> None:
        """Frames of display 0: after an update, at most VIDEO_FPS a second; one encode at a
        time in a worker thread (updates meanwhile fold into the next frame)."""
        self.writer = VideoWriter(self.directory / "display")
        interval = 1.0 / VIDEO_FPS
        last = -interval
        while True:
            await drawn.wait()
            wait = last + interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            drawn.clear()
            try:
                grab = await session.grab(0)
            except LookupError:
                continue  # no monitor yet (or none any more, during a reset)
            last = time.monotonic()
            try:
                await asyncio.to_thread(self.writer.add, grab.pixels, session.uptime)
            except Exception as exc:
                self._video_error = f"{type(exc).__name__}: {exc}"
                log.error("capture: the video stopped: %s", self._video_error)
                return

    async def stop(self, session: Session, end: SessionEnd) -> None:
        session.traffic.remove(self.recorder)
        self.recorder.close()
        if self.writer is not None:
            try:
                await asyncio.to_thread(self.writer.close)
            except Exception as exc:
                self._video_error = f"{type(exc).__name__}: {exc}"
                log.error("capture: cannot finish the video: %s", self._video_error)
        try:
            write_json_atomically(self.directory / METADATA, self.metadata(session, end))
        except OSError as exc:
            self.failure = RyllError(f"--capture: cannot write {METADATA}: {exc}")
            return
        if self.recorder in session.traffic.failed:
            self.failure = RyllError("--capture: the pcap recording failed (see the log)")
