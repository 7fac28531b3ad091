"""The vdagent protocol (spice-protocol ``vd_agent.h``), sans-IO: message building and parsing,
chunking, reassembly with a size bound, capability bits.

On the main channel a client talks to the guest agent through AGENT_DATA messages. Each carries
one piece of a stream of ``VDAgentMessage`` records (a 20-byte header: protocol, type, opaque,
size; then ``size`` bytes of data): a sender splits every record into pieces of at most
``MAX_DATA_SIZE`` bytes (spice-gtk ``agent_msg_queue_many``), and a receiver joins pieces until
a record is complete (spice-gtk ``main_handle_agent_data_msg``). Between the server and the
guest the same pieces travel on the virtio port behind a ``VDIChunkHeader`` (port, size).

The clipboard messages (GRAB, REQUEST, CLIPBOARD, RELEASE) start with a 4-byte selection
prefix (selection byte + 3 reserved) when both sides announced ``CLIPBOARD_SELECTION``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum

from ryll.errors import ProtocolError

PROTOCOL = 1
# The largest AGENT_DATA piece (VD_AGENT_MAX_DATA_SIZE); the first piece includes the header.
MAX_DATA_SIZE = 2048
# VDAgentMessage: u32 protocol, u32 type, u64 opaque, u32 size (packed).
HEADER = struct.Struct("<IIQI")
HEADER_SIZE = HEADER.size
# VDIChunkHeader: u32 port, u32 size (the framing on the guest's virtio port).
CHUNK_HEADER = struct.Struct("<II")
# The largest agent message ryll reassembles. spice-gtk allocates whatever the header says; a
# bound keeps a broken or hostile agent from making us allocate gigabytes. Clipboard text is
# the only big payload ryll takes, and 16 MiB of text is far beyond a useful paste.
MAX_MESSAGE_SIZE = 16 * 1024 * 1024


class AgentMsg(IntEnum):
    """VD_AGENT_* message types."""

    MOUSE_STATE = 1
    MONITORS_CONFIG = 2
    REPLY = 3
    CLIPBOARD = 4
    DISPLAY_CONFIG = 5
    ANNOUNCE_CAPABILITIES = 6
    CLIPBOARD_GRAB = 7
    CLIPBOARD_REQUEST = 8
    CLIPBOARD_RELEASE = 9
    FILE_XFER_START = 10
    FILE_XFER_STATUS = 11
    FILE_XFER_DATA = 12
    CLIENT_DISCONNECTED = 13
    MAX_CLIPBOARD = 14
    AUDIO_VOLUME_SYNC = 15
    GRAPHICS_DEVICE_INFO = 16


class AgentCap(IntEnum):
    """VD_AGENT_CAP_* capability bit numbers."""

    MOUSE_STATE = 0
    MONITORS_CONFIG = 1
    REPLY = 2
    CLIPBOARD = 3
    DISPLAY_CONFIG = 4
    CLIPBOARD_BY_DEMAND = 5
    CLIPBOARD_SELECTION = 6
    SPARSE_MONITORS_CONFIG = 7
    GUEST_LINEEND_LF = 8
    GUEST_LINEEND_CRLF = 9
    MAX_CLIPBOARD = 10
    AUDIO_VOLUME_SYNC = 11
    MONITORS_CONFIG_POSITION = 12
    FILE_XFER_DISABLED = 13
    FILE_XFER_DETAILED_ERRORS = 14
    GRAPHICS_DEVICE_INFO = 15
    CLIPBOARD_NO_RELEASE_ON_REGRAB = 16
    CLIPBOARD_GRAB_SERIAL = 17


# VD_AGENT_CAPS_SIZE: u32 words the capability bitmap needs (END_CAP = 18).
CAPS_WORDS = (max(AgentCap) + 1 + 31) // 32
# A capability message longer than this is not believed (spice-gtk clamps to CAPS_SIZE).
MAX_CAPS_WORDS = 64


class ClipboardType(IntEnum):
    NONE = 0
    UTF8_TEXT = 1
    IMAGE_PNG = 2
    IMAGE_BMP = 3
    IMAGE_TIFF = 4
    IMAGE_JPG = 5
    FILE_LIST = 6


class Selection(IntEnum):
    CLIPBOARD = 0
    PRIMARY = 1
    SECONDARY = 2


class ReplyError(IntEnum):
    SUCCESS = 1
    ERROR = 2


class Port(IntEnum):
    """VDIChunkHeader ports."""

    CLIENT = 1
    SERVER = 2


# VD_AGENT_CONFIG_MONITORS_FLAG_*
MONITORS_FLAG_USE_POS = 1
MONITORS_FLAG_PHYSICAL_SIZE = 2
# VDAgentMonConfig: u32 height, u32 width, u32 depth, i32 x, i32 y (height first).
MON_CONFIG = struct.Struct("<IIIii")
MAX_MONITORS = 256  # spice-server's bound on a client's MONITORS_CONFIG


class AgentError(ProtocolError):
    """A malformed agent message; ``reason`` names the gap (``main:agent:<reason>``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def message_name(msg_type: int) -> str:
    try:
        return AgentMsg(msg_type).name.lower()
    except ValueError:
        return f"type_{msg_type}"


# --- records and pieces -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentMessage:
    type: int
    data: bytes
    opaque: int = 0


def build_message(msg_type: int, data: bytes = b"", opaque: int = 0) -> bytes:
    """One VDAgentMessage record: header + data."""
    return HEADER.pack(PROTOCOL, msg_type, opaque, len(data)) + data


def split(record: bytes, max_piece: int = MAX_DATA_SIZE) -> list[bytes]:
    """Cut a record into AGENT_DATA bodies of at most ``max_piece`` bytes (one token each)."""
    if max_piece <= 0:
        raise ValueError("max_piece must be positive")
    return [record[i : i + max_piece] for i in range(0, len(record), max_piece)] or [b""]


class Reassembler:
    """Joins AGENT_DATA pieces into records. A record may span pieces and a piece may hold the
    end of one record and the start of the next (spice-gtk ``main_handle_agent_data``).

    A record with the wrong protocol resets the state (the stream cannot be trusted after it);
    one over ``max_size``, or one ``admit(size)`` refuses (it returns the reason, e.g. the
    session's memory budget has no room, else None), has its data skipped, so the stream
    stays in step."""

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE,
                 admit: Callable[[int], tuple[str, str] | None] | None = None) -> None:
        self.max_size = max_size
        self._admit = admit
        self._head = bytearray()
        self._body = bytearray()
        self._type = 0
        self._opaque = 0
        self._need = 0  # data bytes the current record still needs
        self._skip = 0  # data bytes of an oversized record still to drop
        self._in_body = False

    @property
    def partial(self) -> bool:
        """True while a record (or a skipped one) is unfinished."""
        return self._in_body or bool(self._head) or bool(self._skip)

    @property
    def buffered(self) -> int:
        """Bytes held for the record being joined: what it declared, taken when admitted."""
        return self._need + len(self._body) if self._in_body else len(self._head)

    def reset(self) -> None:
        self._head.clear()
        self._body = bytearray()
        self._need = self._skip = 0
        self._in_body = False

    def feed(self, piece: bytes) -> list[AgentMessage | AgentError]:
        """The records a piece completes, in order, with an ``AgentError`` in the place of a
        record that was refused (so records before and after it in the piece survive)."""
        out: list[AgentMessage | AgentError] = []
        view = memoryview(piece)
        pos = 0
        while pos < len(view):
            if self._skip:
                n = min(self._skip, len(view) - pos)
                self._skip -= n
                pos += n
                continue
            if not self._in_body:
                n = min(HEADER_SIZE - len(self._head), len(view) - pos)
                self._head += view[pos : pos + n]
                pos += n
                if len(self._head) < HEADER_SIZE:
                    break
                protocol, self._type, self._opaque, size = HEADER.unpack(self._head)
                self._head.clear()
                if protocol != PROTOCOL:
                    # Nothing after a record with a foreign header can be placed: drop the
                    # rest of this piece and start afresh with the next one.
                    self.reset()
                    out.append(AgentError(
                        "bad_protocol", f"agent message with protocol {protocol}, not {PROTOCOL}"
                    ))
                    break
                if size > self.max_size:
                    self._skip = size
                    out.append(AgentError(
                        "oversized",
                        f"agent {message_name(self._type)} of {size} bytes is over the limit "
                        f"of {self.max_size}; skipped",
                    ))
                    continue
                if size == 0:
                    out.append(AgentMessage(self._type, b"", self._opaque))
                    continue
                refused = self._admit(size) if self._admit is not None else None
                if refused is not None:
                    self._skip = size
                    out.append(AgentError(refused[0], refused[1]))
                    continue
                self._need = size
                self._in_body = True
                self._body = bytearray()
            n = min(self._need, len(view) - pos)
            self._body += view[pos : pos + n]
            pos += n
            self._need -= n
            if self._need == 0:
                out.append(AgentMessage(self._type, bytes(self._body), self._opaque))
                self._body = bytearray()
                self._in_body = False
        return out

    def feed_all(self, pieces: Iterable[bytes]) -> list[AgentMessage | AgentError]:
        out: list[AgentMessage | AgentError] = []
        for piece in pieces:
            out.extend(self.feed(piece))
        return out


# --- capabilities -------------------------------------------------------------------------


def caps_words(caps: Iterable[int], words: int = CAPS_WORDS) -> list[int]:
    out = [0] * words
    for cap in caps:
        if not 0 <= cap < words * 32:
            raise ValueError(f"capability {cap} does not fit {words} words")
        out[cap // 32] |= 1 << (cap % 32)
    return out


def caps_from_words(words: Iterable[int]) -> frozenset[int]:
    return frozenset(
        i * 32 + bit for i, word in enumerate(words) for bit in range(32) if word >> bit & 1
    )


def build_announce_capabilities(request: bool, caps: Iterable[int]) -> bytes:
    words = caps_words(caps)
    return struct.pack(f"<I{len(words)}I", int(request), *words)


@dataclass(frozen=True, slots=True)
class AnnounceCapabilities:
    request: bool
    caps: frozenset[int]


def parse_announce_capabilities(data: bytes) -> AnnounceCapabilities:
    if len(data) < 4:
        raise AgentError("short:announce_capabilities", "capability announcement under 4 bytes")
    nwords = min((len(data) - 4) // 4, MAX_CAPS_WORDS)
    request, *words = struct.unpack_from(f"<I{nwords}I", data)
    return AnnounceCapabilities(bool(request), caps_from_words(words))


def cap_names(caps: Iterable[int]) -> list[str]:
    names = []
    for cap in sorted(caps):
        try:
            names.append(AgentCap(cap).name.lower())
        except ValueError:
            names.append(f"cap_{cap}")
    return names


# --- monitors config and reply ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    width: int
    height: int
    x: int = 0
    y: int = 0
    depth: int = 32


def build_monitors_config(monitors: Iterable[MonitorConfig], flags: int = 0) -> bytes:
    mons = list(monitors)
    if not 0 < len(mons) <= MAX_MONITORS:
        raise ValueError(f"1..{MAX_MONITORS} monitors, not {len(mons)}")
    if flags & MONITORS_FLAG_PHYSICAL_SIZE:
        raise ValueError("physical sizes are not supported")
    out = struct.pack("<II", len(mons), flags)
    for m in mons:
        out += MON_CONFIG.pack(m.height, m.width, m.depth, m.x, m.y)
    return out


def parse_monitors_config(data: bytes) -> tuple[int, list[MonitorConfig]]:
    """(flags, monitors) of a VDAgentMonitorsConfig (tests, and a fake agent)."""
    if len(data) < 8:
        raise AgentError("short:monitors_config", "monitors config under 8 bytes")
    n, flags = struct.unpack_from("<II", data)
    if n > MAX_MONITORS or 8 + n * MON_CONFIG.size > len(data):
        raise AgentError("short:monitors_config", f"monitors config too short for {n} monitors")
    mons = []
    for i in range(n):
        h, w, depth, x, y = MON_CONFIG.unpack_from(data, 8 + i * MON_CONFIG.size)
        mons.append(MonitorConfig(w, h, x, y, depth))
    return flags, mons


@dataclass(frozen=True, slots=True)
class Reply:
    type: int
    error: int

    @property
    def ok(self) -> bool:
        return self.error == ReplyError.SUCCESS


def build_reply(msg_type: int, error: int = ReplyError.SUCCESS) -> bytes:
    return struct.pack("<II", msg_type, error)


def parse_reply(data: bytes) -> Reply:
    if len(data) < 8:
        raise AgentError("short:reply", "reply under 8 bytes")
    return Reply(*struct.unpack_from("<II", data))


# --- clipboard ----------------------------------------------------------------------------
# ``selection`` None: the peers did not both announce CLIPBOARD_SELECTION, so no prefix (and
# only the CLIPBOARD selection exists).


def _prefix(selection: int | None) -> bytes:
    return b"" if selection is None else struct.pack("<B3x", selection)


def _strip(data: bytes, with_selection: bool, what: str) -> tuple[int, bytes]:
    if not with_selection:
        return Selection.CLIPBOARD, data
    if len(data) < 4:
        raise AgentError(f"short:{what}", f"{what} without its selection prefix")
    return data[0], data[4:]


def build_clipboard_grab(types: Iterable[int], selection: int | None = None) -> bytes:
    t = list(types)
    return _prefix(selection) + struct.pack(f"<{len(t)}I", *t)


def parse_clipboard_grab(data: bytes, with_selection: bool) -> tuple[int, tuple[int, ...]]:
    selection, rest = _strip(data, with_selection, "clipboard_grab")
    n = len(rest) // 4
    return selection, struct.unpack_from(f"<{n}I", rest)


def build_clipboard_request(clip_type: int, selection: int | None = None) -> bytes:
    return _prefix(selection) + struct.pack("<I", clip_type)


def parse_clipboard_request(data: bytes, with_selection: bool) -> tuple[int, int]:
    selection, rest = _strip(data, with_selection, "clipboard_request")
    if len(rest) < 4:
        raise AgentError("short:clipboard_request", "clipboard request without its type")
    return selection, struct.unpack_from("<I", rest)[0]


def build_clipboard(clip_type: int, payload: bytes, selection: int | None = None) -> bytes:
    return _prefix(selection) + struct.pack("<I", clip_type) + payload


def parse_clipboard(data: bytes, with_selection: bool) -> tuple[int, int, bytes]:
    """(selection, type, payload) of a VD_AGENT_CLIPBOARD."""
    selection, rest = _strip(data, with_selection, "clipboard")
    if len(rest) < 4:
        raise AgentError("short:clipboard", "clipboard data without its type")
    return selection, struct.unpack_from("<I", rest)[0], rest[4:]


def build_clipboard_release(selection: int | None = None) -> bytes:
    return _prefix(selection)


def parse_clipboard_release(data: bytes, with_selection: bool) -> int:
    return _strip(data, with_selection, "clipboard_release")[0]


def decode_text(payload: bytes) -> str:
    """UTF8_TEXT payload to str: agents may or may not send a trailing NUL."""
    return payload.split(b"\0", 1)[0].decode("utf-8", "replace")
