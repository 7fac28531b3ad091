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
import contextlib
import json
import logging
import os
import platform
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from ryll import __version__
from ryll.channels.events import (
    ChannelLinked,
    DisplayUpdated,
    SessionEnded,
    SessionEstablished,
)
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
    """A traffic sink writing one pcap per channel into ``directory``.

    Each chunk becomes its records at once (headers, and views of the chunk: no copy); what
    the session's loop produces in one turn is written together right after that turn
    (``call_soon``: one ``writev`` per file, unbuffered), so a record is in the file within
    the millisecond its chunk crossed the wire, and a busy display's hundreds of small
    writes a turn cost one system call. Call the sink's methods on the event loop's thread
    (the session does)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files: dict[tuple[int, int], int] = {}  # file descriptors
        self._conversations: dict[tuple[int, int], pcap.TcpConversation] = {}
        self._pending: dict[int, list[bytes | memoryview]] = {}  # fd -> parts to write
        self._generation: dict[tuple[int, int], int] = {}  # connections so far, per channel
        self.paths: dict[tuple[int, int], Path] = {}
        self.bytes_written = 0
        self.error: OSError | None = None

    def _queue(self, where: tuple[int, int], parts: list[bytes | memoryview]) -> None:
        if self.error is not None:
            raise self.error  # the session drops this sink and says why
        fd = self._files[where]
        if not self._pending:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop (a direct caller): write now
                self._pending.setdefault(fd, []).extend(parts)
                self.flush()
                return
        self._pending.setdefault(fd, []).extend(parts)

    def flush(self) -> None:
        """Write everything queued (the loop calls this after each turn that queued)."""
        pending, self._pending = self._pending, {}
        try:
            for fd, parts in pending.items():
                self._write(fd, parts)
        except OSError as exc:
            self.error = exc
            log.error("capture: cannot write the pcaps: %s", exc)

    def _write(self, fd: int, parts: list[bytes | memoryview]) -> None:
        # writev takes at most IOV_MAX (1024 on Linux) buffers a call.
        for start in range(0, len(parts), 1024):
            batch = parts[start:start + 1024]
            total = sum(len(p) for p in batch)
            done = os.writev(fd, batch)
            if done < total:  # a short write (a signal, a full disk): the rest, or the error
                rest = b"".join(bytes(p) for p in batch)[done:]
                while rest:
                    rest = rest[os.write(fd, rest):]
            self.bytes_written += total

    def opened(self, channel: ChannelKey, at: float) -> None:
        where = (channel.type, channel.id)
        parts: list[bytes | memoryview] = []
        if where not in self._files:
            path = self.directory / pcap.file_name(channel.name, channel.id)
            self._files[where] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            self.paths[where] = path
            parts.append(pcap.global_header())
        self._generation[where] = self._generation.get(where, -1) + 1
        conversation = pcap.TcpConversation(pcap.channel_port(channel.name, channel.id),
                                            self._generation[where])
        self._conversations[where] = conversation
        parts.append(conversation.open(at))
        self._queue(where, parts)

    def linked(self, channel: ChannelKey, mini_header: bool, at: float) -> None:
        pass

    def sent(self, channel: ChannelKey, data: bytes, at: float) -> None:
        where = (channel.type, channel.id)
        self._queue(where, self._conversations[where].sent_parts(data, at))

    def received(self, channel: ChannelKey, data: bytes, at: float) -> None:
        where = (channel.type, channel.id)
        self._queue(where, self._conversations[where].received_parts(data, at))

    def close(self) -> None:
        """Write what is queued and close the files (raises the first write error)."""
        self.flush()
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()
        if self.error is not None:
            raise self.error


def _background_priority() -> None:
    """The video thread runs at a lower priority (nice +10, Linux's per-thread niceness):
    when the cores are busy, the session's own work comes first and the video gets what is
    left (frames fold together; nothing queues)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


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
    kinds = (ChannelLinked, SessionEstablished, SessionEnded)

    def __init__(self, directory: Path, video: bool = True) -> None:
        self.directory = directory
        self.video = video
        self.recorder: PcapRecorder | None = None  # from start() on
        self.writer: VideoWriter | None = None
        self.started = datetime.now(UTC)
        self._video_error: str | None = None
        self._encoder: ThreadPoolExecutor | None = None

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
        self.recorder = PcapRecorder(self.directory)
        session.traffic.add(self.recorder)
        log.info("capture: recording into %s", self.directory)

    async def run(self, session: Session, events: EventStream) -> None:
        video = asyncio.ensure_future(self._video(session)) if self.video else None
        try:
            async with events:
                async for event in events:
                    # The channels as they link: once the session is up, and for a channel
                    # linked later (a reconnect, a late display).
                    if isinstance(event, SessionEstablished) or (
                            isinstance(event, ChannelLinked) and session.established):
                        write_json_atomically(self.directory / METADATA,
                                              self.metadata(session))
        finally:
            if video is not None:
                video.cancel()
                await asyncio.gather(video, return_exceptions=True)

    async def _video(self, session: Session) -> None:
        """Frames of display 0: after an update, at most VIDEO_FPS a second; one encode at a
        time in the video's own thread (updates meanwhile fold into the next frame).

        The subscription holds one event: the video only needs "something was drawn since
        the last frame", and the updates that do not fit are dropped for it at the cost of
        a length check, so a busy display pays nothing per update for its video."""
        self.writer = VideoWriter(self.directory / "display")
        interval = 1.0 / VIDEO_FPS
        last = -interval
        loop = asyncio.get_running_loop()
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix="ryll-video",
                                           initializer=_background_priority)
        async with session.events(DisplayUpdated, maxsize=1) as drawn:
            while True:
                await drawn.get()
                wait = last + interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                while drawn.get_nowait() is not None:
                    pass  # everything drawn until now is in the frame taken next
                if not await self._frame(session, loop):
                    return
                last = time.monotonic()

    async def _frame(self, session: Session, loop: asyncio.AbstractEventLoop) -> bool:
        """One frame of display 0 into the video; False when the video has stopped."""
        assert self.writer is not None and self._encoder is not None
        try:
            grab = await session.grab(0)
        except LookupError:
            return True  # no monitor yet (or none any more, during a reset)
        try:
            await loop.run_in_executor(self._encoder, self.writer.add, grab.pixels,
                                       session.uptime)
        except Exception as exc:
            self._video_error = f"{type(exc).__name__}: {exc}"
            log.error("capture: the video stopped: %s", self._video_error)
            return False
        return True

    async def stop(self, session: Session, end: SessionEnd) -> None:
        assert self.recorder is not None  # stop follows a start that succeeded
        session.traffic.remove(self.recorder)
        try:
            self.recorder.close()
        except OSError as exc:
            self.failure = RyllError(f"--capture: cannot write the pcaps: {exc}")
        if self.writer is not None and self._encoder is not None:
            try:
                # On the video's thread: after the frame it may still be encoding.
                await asyncio.get_running_loop().run_in_executor(self._encoder,
                                                                 self.writer.close)
            except Exception as exc:
                self._video_error = f"{type(exc).__name__}: {exc}"
                log.error("capture: cannot finish the video: %s", self._video_error)
        if self._encoder is not None:
            self._encoder.shutdown(wait=False)
        try:
            write_json_atomically(self.directory / METADATA, self.metadata(session, end))
        except OSError as exc:
            self.failure = RyllError(f"--capture: cannot write {METADATA}: {exc}")
            return
        if self.recorder in session.traffic.failed and self.failure is None:
            self.failure = RyllError("--capture: the pcap recording failed (see the log)")
