"""The control socket's wire protocol, sans-IO: line framing, request parsing and validation,
and the encoding of every line ryll sends (hello, results, errors, events).

Nothing here touches a socket, the event loop or a session, so every malformed input can be
tested with plain bytes (``tests/control/test_protocol.py``). The server (``server.py``) feeds
bytes into a ``LineBuffer``, hands each line to ``parse_request`` and writes what the
``encode_*`` functions return. The protocol is documented for clients in
``docs/control-socket.md``; keep the two in step.

Framing: UTF-8 JSON, one object per line, ``\\n``-terminated (a trailing ``\\r`` is ignored,
empty lines are skipped). A request is a flat object::

    {"id": 7, "cmd": "send_key", "key": "a", "action": "press"}

``cmd`` names the command, ``id`` (optional: string, integer or null) is echoed in the reply,
every other member is an argument, checked against the command's ``CommandSpec``: unknown
members, missing required ones and wrong types are ``bad_argument`` errors, never guesses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ryll.session.input import MAX_TEXT

PROTOCOL_NAME = "ryll-control"
# Bumped only for incompatible changes. New commands, new optional arguments, new result
# members and new events keep the version: clients read ``commands``/``events`` from the hello
# and ignore members they do not know.
PROTOCOL_VERSION = 1

# The longest request line accepted, newline excluded. 1 MiB holds any sensible request (the
# largest are ``type`` and ``clipboard_set`` texts, themselves capped below) with room to spare,
# and bounds what one client can make ryll buffer; it is the order of h11's header limit
# scaled for a text payload. A longer line is answered ``too_large`` and the client closed,
# since the rest of that line cannot be re-synchronised cheaply.
MAX_LINE_BYTES = 1 << 20
# ``type`` takes what the input controller types at most (a paste is for passwords and
# commands); the clipboard text bound leaves room for escapes within the line.
MAX_TYPE_CHARS = MAX_TEXT
MAX_CLIPBOARD_CHARS = 256 * 1024
# Request ids: short strings or integers JSON numbers represent exactly (2**53).
MAX_ID_CHARS = 256
MAX_SAFE_INT = 2**53


class ErrorCode:
    """Stable error codes (``{"error": {"code": ...}}``); clients may switch on them."""

    BAD_JSON = "bad_json"  # the line is not UTF-8 JSON
    BAD_REQUEST = "bad_request"  # JSON, but not a request object (no cmd, bad id, ...)
    UNKNOWN_COMMAND = "unknown_command"
    BAD_ARGUMENT = "bad_argument"  # unknown, missing or mistyped argument, bad key name, ...
    NOT_CONNECTED = "not_connected"  # the SPICE session is not (or no longer) running
    NO_CHANNEL = "no_channel"  # the channel the command needs is not linked
    NO_AGENT = "no_agent"  # no guest agent connected
    TIMEOUT = "timeout"  # the guest did not answer in time (clipboard_get)
    BUSY = "busy"  # another client holds the socket
    TOO_LARGE = "too_large"  # request line over MAX_LINE_BYTES
    INTERNAL = "internal"  # a bug in ryll; the message says what failed


ERROR_CODES = tuple(
    v for k, v in vars(ErrorCode).items() if not k.startswith("_") and isinstance(v, str)
)


class ControlError(Exception):
    """A request that gets an error reply. ``request_id`` is echoed when it could be read."""

    def __init__(
        self, code: str, message: str, request_id: Any = None, *, has_id: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.has_id = has_id


# --- argument specs -----------------------------------------------------------------------


Checker = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Arg:
    """One argument of a command: a checker (value -> normalised value, or ValueError with a
    message), whether it is required, and its default."""

    check: Checker
    required: bool = False
    default: Any = None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(lo: int, hi: int) -> Checker:
    def check(name: str, value: Any) -> int:
        if not _is_int(value):
            raise ValueError(f"{name} must be an integer")
        if not lo <= value <= hi:
            raise ValueError(f"{name} must be in {lo}..{hi}")
        return int(value)

    return check


def number(lo: float, hi: float) -> Checker:
    def check(name: str, value: Any) -> float:
        if not (_is_int(value) or isinstance(value, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a number")
        if not lo <= value <= hi:
            raise ValueError(f"{name} must be in {lo:g}..{hi:g}")
        return float(value)

    return check


def string(max_chars: int, choices: tuple[str, ...] | None = None,
           allow_empty: bool = True) -> Checker:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string")
        if len(value) > max_chars:
            raise ValueError(f"{name} is longer than {max_chars} characters")
        if not allow_empty and not value:
            raise ValueError(f"{name} must not be empty")
        if choices is not None and value not in choices:
            raise ValueError(f"{name} must be one of: {', '.join(choices)}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{name} has a lone surrogate (not valid Unicode text)") from None
        return value

    return check


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


def string_list(choices: tuple[str, ...], max_items: int = 64) -> Checker:
    def check(name: str, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{name} must be a list of strings")
        if len(value) > max_items:
            raise ValueError(f"{name} has more than {max_items} items")
        bad = [v for v in value if v not in choices]
        if bad:
            raise ValueError(
                f"{name}: unknown {', '.join(repr(b[:64]) for b in bad[:4])} "
                f"(known: {', '.join(choices)})"
            )
        return list(dict.fromkeys(value))

    return check


@dataclass(frozen=True)
class CommandSpec:
    name: str
    args: Mapping[str, Arg] = field(default_factory=dict)
    # Extra checks across arguments (x without y, ...): args -> None or ValueError.
    check: Callable[[dict[str, Any]], None] | None = None
    summary: str = ""


# Events a client can subscribe to (docs/control-socket.md describes each one's members).
EVENTS = (
    "surface_drawn",  # pixels of a surface changed (coalesced, at most every DRAWN_INTERVAL)
    "surface_created",
    "surface_destroyed",
    "mark",  # display MARK: the server finished the initial picture
    "cursor",  # cursor moved, shown, hidden or changed shape
    "mouse_mode",  # the server switched between client and server mouse mode
    "gap",  # a new gap key was registered
    "latency",  # an input latency sample
    "agent_connected",  # the guest agent connected or disconnected (members: connected)
    "clipboard",  # the guest put text on its clipboard
    "paste_completed",  # typing finished (a ``type`` command or --paste-text)
    "session_ended",  # the SPICE session ended; ryll is about to exit
)

KEY_ACTIONS = ("press", "down", "up")
BUTTONS = ("left", "middle", "right", "up", "down", "side", "extra")
SCREENSHOT_FORMATS = ("png", "rgba")
MAX_COORD = 65535
MAX_DISPLAY = 15
MAX_SIDE = 16384


def _both_or_neither(*pairs: tuple[str, str]) -> Callable[[dict[str, Any]], None]:
    def check(args: dict[str, Any]) -> None:
        for a, b in pairs:
            if (args.get(a) is None) != (args.get(b) is None):
                raise ValueError(f"{a} and {b} go together")

    return check


def _move_check(args: dict[str, Any]) -> None:
    absolute = args.get("x") is not None or args.get("y") is not None
    relative = args.get("dx") is not None or args.get("dy") is not None
    if absolute == relative:
        raise ValueError("give either x and y (absolute) or dx and dy (relative)")
    _both_or_neither(("x", "y"), ("dx", "dy"))(args)
    if relative and args.get("display") is not None:
        raise ValueError("display goes with x and y, not with dx and dy")


_DISPLAY = Arg(integer(0, MAX_DISPLAY))

COMMANDS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        CommandSpec("status", summary="session, channels, displays, cursor, agent and gaps"),
        CommandSpec(
            "send_key",
            {"key": Arg(string(64, allow_empty=False), required=True),
             "action": Arg(string(8, KEY_ACTIONS), default="press")},
            summary="press, hold or release one key by name",
        ),
        CommandSpec(
            "type",
            {"text": Arg(string(MAX_TYPE_CHARS), required=True),
             "char_delay_ms": Arg(number(0, 1000), default=16.0)},
            summary="type text as key presses",
        ),
        CommandSpec(
            "mouse_move",
            {"x": Arg(integer(0, MAX_COORD)), "y": Arg(integer(0, MAX_COORD)),
             "dx": Arg(integer(-MAX_COORD, MAX_COORD)), "dy": Arg(integer(-MAX_COORD, MAX_COORD)),
             "display": _DISPLAY},
            check=_move_check,
            summary="move the pointer to x,y on a display, or by dx,dy",
        ),
        CommandSpec(
            "mouse_click",
            {"button": Arg(string(8, BUTTONS), default="left"),
             "x": Arg(integer(0, MAX_COORD)), "y": Arg(integer(0, MAX_COORD)),
             "display": _DISPLAY},
            check=_both_or_neither(("x", "y")),
            summary="click a button, optionally at x,y first",
        ),
        CommandSpec(
            "mouse_down",
            {"button": Arg(string(8, BUTTONS), default="left")},
            summary="press a mouse button",
        ),
        CommandSpec(
            "mouse_up",
            {"button": Arg(string(8, BUTTONS), default="left")},
            summary="release a mouse button",
        ),
        CommandSpec(
            "screenshot",
            {"format": Arg(string(8, SCREENSHOT_FORMATS), default="png"),
             "display": Arg(integer(0, MAX_DISPLAY), default=0),
             "cursor": Arg(boolean, default=False)},
            summary="a display's picture as base64 PNG or raw RGBA",
        ),
        CommandSpec(
            "clipboard_set",
            {"text": Arg(string(MAX_CLIPBOARD_CHARS), required=True)},
            summary="offer text on the guest's clipboard (agent)",
        ),
        CommandSpec(
            "clipboard_get",
            {"timeout": Arg(number(0.1, 60), default=5.0)},
            summary="the guest clipboard's text (agent)",
        ),
        CommandSpec(
            "resolution",
            {"width": Arg(integer(1, MAX_SIDE), required=True),
             "height": Arg(integer(1, MAX_SIDE), required=True)},
            summary="ask the guest agent for a display resolution",
        ),
        CommandSpec(
            "subscribe",
            {"events": Arg(string_list(EVENTS), required=True)},
            summary="start receiving the named events",
        ),
        CommandSpec(
            "unsubscribe",
            {"events": Arg(string_list(EVENTS))},
            summary="stop receiving the named events (all, without events)",
        ),
    )
}


@dataclass(frozen=True)
class Request:
    command: str
    args: dict[str, Any]
    id: Any = None
    has_id: bool = False


def _reject_constant(name: str) -> Any:
    # json.loads takes NaN, Infinity and -Infinity by default; they are not JSON.
    raise ValueError(f"{name} is not valid JSON")


def decode_json(line: bytes) -> Any:
    """The JSON value of one line, or ControlError(bad_json). Never raises anything else:
    invalid UTF-8, NaN, absurdly long integers and deep nesting all land here."""
    try:
        text = line.decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ControlError(ErrorCode.BAD_JSON, "JSON nested too deeply") from None
    except (ValueError, TypeError) as exc:
        # JSONDecodeError and UnicodeDecodeError are ValueErrors; so is int() refusing a
        # number of more than 4300 digits.
        raise ControlError(ErrorCode.BAD_JSON, f"not JSON: {_short(str(exc))}") from None


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _valid_id(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return len(value) <= MAX_ID_CHARS
    return _is_int(value) and -MAX_SAFE_INT <= value <= MAX_SAFE_INT


def parse_request(line: bytes) -> Request:
    """One request line -> a validated ``Request``; any problem is a ``ControlError`` carrying
    the request's id when it could be read."""
    obj = decode_json(line)
    if not isinstance(obj, dict):
        raise ControlError(ErrorCode.BAD_REQUEST,
                           f"a request is a JSON object, not {type(obj).__name__}")
    has_id = "id" in obj
    request_id = obj.get("id")
    if not _valid_id(request_id):
        raise ControlError(
            ErrorCode.BAD_REQUEST,
            f"id must be a string of at most {MAX_ID_CHARS} characters, an integer or null",
        )
    cmd = obj.get("cmd")
    if not isinstance(cmd, str) or not cmd:
        raise ControlError(ErrorCode.BAD_REQUEST, 'a request needs "cmd", a command name',
                           request_id, has_id=has_id)
    spec = COMMANDS.get(cmd)
    if spec is None:
        raise ControlError(ErrorCode.UNKNOWN_COMMAND, f"unknown command {_short(cmd, 64)!r}",
                           request_id, has_id=has_id)
    raw = {k: v for k, v in obj.items() if k not in ("id", "cmd")}
    try:
        args = validate_args(spec, raw)
    except ValueError as exc:
        raise ControlError(ErrorCode.BAD_ARGUMENT, f"{cmd}: {exc}", request_id,
                           has_id=has_id) from None
    return Request(cmd, args, request_id, has_id)


def validate_args(spec: CommandSpec, raw: dict[str, Any]) -> dict[str, Any]:
    """Check ``raw`` against ``spec``: every member known, required ones present, each value of
    its type and range. Returns the arguments with defaults filled in; ValueError otherwise."""
    unknown = [k for k in raw if k not in spec.args]
    if unknown:
        names = ", ".join(repr(_short(k, 64)) for k in unknown[:4])
        known = ", ".join(spec.args) or "none"
        raise ValueError(f"unknown argument {names} (arguments: {known})")
    args: dict[str, Any] = {}
    for name, arg in spec.args.items():
        if name not in raw or raw[name] is None:
            if arg.required:
                raise ValueError(f"{name} is required")
            args[name] = arg.default
            continue
        args[name] = arg.check(name, raw[name])
    if spec.check is not None:
        # Cross-argument rules see only what the client gave, not the defaults.
        spec.check({k: args[k] for k in raw if raw[k] is not None})
    return args


# --- framing ------------------------------------------------------------------------------


class LineTooLong(Exception):
    """A line grew past the limit before its newline arrived."""


class LineBuffer:
    """Bytes in, complete lines out (newline and a trailing CR stripped, empty lines dropped).
    Raises ``LineTooLong`` as soon as a line exceeds ``limit``, without waiting for its end."""

    def __init__(self, limit: int = MAX_LINE_BYTES) -> None:
        self.limit = limit
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        lines: list[bytes] = []
        start = 0
        while True:
            nl = self._buf.find(b"\n", start)
            if nl < 0:
                break
            line = bytes(self._buf[start:nl])
            start = nl + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > self.limit:
                raise LineTooLong()
            if line.strip():
                lines.append(line)
        del self._buf[:start]
        if len(self._buf) > self.limit:
            raise LineTooLong()
        return lines

    @property
    def pending(self) -> int:
        return len(self._buf)


# --- encoding -----------------------------------------------------------------------------


def encode(obj: Mapping[str, Any]) -> bytes:
    """One line: compact JSON (ASCII, so any text, even unpaired surrogates, survives) and
    a newline."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True, default=_default).encode(
        "ascii"
    ) + b"\n"


def _default(value: Any) -> Any:
    # Results and events are built from plain data; anything else (an enum, a UUID, a tuple
    # subclass) is written as its string rather than failing the whole reply.
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def hello(version: str) -> dict[str, Any]:
    return {
        "hello": {
            "protocol": PROTOCOL_NAME,
            "version": PROTOCOL_VERSION,
            "ryll": version,
            "commands": list(COMMANDS),
            "events": list(EVENTS),
            "max_line_bytes": MAX_LINE_BYTES,
        }
    }


def result(request: Request, value: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if request.has_id:
        out["id"] = request.id
    out["result"] = dict(value)
    return out


def error(code: str, message: str, request_id: Any = None, has_id: bool = False,
          **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if has_id:
        out["id"] = request_id
    out["error"] = {"code": code, "message": message, **extra}
    return out


def error_for(exc: ControlError) -> dict[str, Any]:
    return error(exc.code, exc.message, exc.request_id, exc.has_id)


def event(name: str, data: Mapping[str, Any]) -> dict[str, Any]:
    return {"event": {"name": name, **data}}
