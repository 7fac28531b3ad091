"""The control socket's wire protocol, sans-IO: line framing, request parsing and validation,
and the encoding of every line ryll sends (responses, errors, events).

The protocol is the Rust ryll's (shakenfist/ryll ``docs/control-socket-protocol.md``, version
1.2), so a client written for it drives ryll unchanged; what ryll adds (key names, typing,
the pointer, the clipboard, resolution, quit, richer events) is version 1.3 of the same
protocol, in the same envelopes, listed in the hello's ``supported_methods`` and
``supported_events``. ``docs/control-socket.md`` describes it for clients; keep the two in step.

Framing: UTF-8 JSON, one object per line, ``\\n``-terminated (a trailing ``\\r`` is ignored,
empty lines are skipped). Envelopes::

    {"id": 1, "method": "send_key", "params": {"scancode": 28, "state": "press"}}
    {"id": 1, "ok": true, "result": {}}
    {"id": 1, "ok": false, "error": {"code": "bad_state", "message": "..."}}
    {"event": "latency", "data": {"sample_ms": 12.4, "wallclock_us": 1717000000123456}}

Nothing here touches a socket, the event loop or a session, so every malformed input can be
tested with plain bytes (``tests/control/test_protocol.py``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ryll.session.input import MAX_TEXT

SERVER_NAME = "ryll"
# The version ryll speaks: 1.2 (the Rust ryll's) plus ryll's additions. A hello with another
# major version is refused and closed; any minor version is accepted, both ways.
PROTOCOL_VERSION = "1.3"
MAJOR_VERSION = 1

# The longest request line accepted, newline excluded. 1 MiB holds any sensible request (the
# largest are paste and clipboard texts, themselves capped below) with room to spare, and
# bounds what one client can make ryll buffer. A longer line is answered ``too_large`` and the
# client closed, since the rest of that line cannot be re-synchronised cheaply.
MAX_LINE_BYTES = 1 << 20
MAX_TYPE_CHARS = MAX_TEXT
MAX_CLIPBOARD_CHARS = 256 * 1024
# Request ids: short strings or integers JSON numbers represent exactly (2**53).
MAX_ID_CHARS = 256
MAX_SAFE_INT = 2**53


class ErrorCode:
    """Stable error codes (``{"error": {"code": ...}}``); clients may switch on them. The
    first eleven are 1.2's; the rest are 1.3's (a 1.2 client treats an unknown code as a
    generic error, as the specification asks)."""

    NO_HELLO_YET = "no_hello_yet"  # a request before a successful hello; the connection stays
    PROTOCOL_VERSION_MISMATCH = "protocol_version_mismatch"  # then the connection is closed
    BUSY = "busy"  # another client holds the socket (no id; then closed)
    UNKNOWN_METHOD = "unknown_method"
    BAD_PARAMS = "bad_params"  # missing, mistyped or out-of-range parameter, bad key name...
    BAD_STATE = "bad_state"  # send_key's state is not down, up or press
    AGENT_NOT_CONNECTED = "agent_not_connected"  # no guest agent (clipboard verbs)
    NO_SUCH_SURFACE = "no_such_surface"
    UNSUPPORTED_FORMAT = "unsupported_format"  # screenshot format not png or rgba
    NOT_IMPLEMENTED = "not_implemented"  # never sent by ryll: every listed verb works
    INTERNAL_ERROR = "internal_error"  # a bug in ryll; the message says what failed
    # 1.3
    BAD_REQUEST = "bad_request"  # the line is not a JSON request object (no id when unread)
    TOO_LARGE = "too_large"  # request line over MAX_LINE_BYTES; then closed
    NOT_CONNECTED = "not_connected"  # the SPICE session has ended
    NO_CHANNEL = "no_channel"  # the channel the verb needs is not linked
    TIMEOUT = "timeout"  # the guest did not answer in time (clipboard_get)
    REPORT_FAILED = "report_failed"  # bug_report: no reporter, or the zip could not be written


ERROR_CODES = tuple(
    v for k, v in vars(ErrorCode).items() if not k.startswith("_") and isinstance(v, str)
)


class ControlError(Exception):
    """A request that gets an error reply. ``request_id`` is echoed when it could be read;
    ``close`` asks the server to close the connection after the reply."""

    def __init__(self, code: str, message: str, request_id: Any = None, *,
                 has_id: bool = False, close: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.has_id = has_id
        self.close = close


# --- parameter specs ----------------------------------------------------------------------


Checker = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Param:
    """One parameter of a method: a checker (value -> normalised value, or ValueError with a
    message), whether it is required, and its default (also what ``null`` means)."""

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


def names(max_items: int = 64) -> Checker:
    """A list of event names; unknown ones are the method's business (subscribe drops them)."""

    def check(name: str, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{name} must be a list of strings")
        if len(value) > max_items:
            raise ValueError(f"{name} has more than {max_items} items")
        return list(dict.fromkeys(v[:64] for v in value))

    return check


@dataclass(frozen=True)
class MethodSpec:
    name: str
    params: Mapping[str, Param] = field(default_factory=dict)
    # Extra checks across parameters (x without y, ...): params -> None or ValueError.
    check: Callable[[dict[str, Any]], None] | None = None
    summary: str = ""
    since: str = "1.0"


# Events, with the version that added them. 1.0-1.2 are the Rust ryll's (same names, same
# members); 1.3 are ryll's. docs/control-socket.md describes each one's data.
EVENTS: dict[str, str] = {
    "latency": "1.0",  # the interval between two server PINGs on the main channel
    "agent_connected": "1.0",  # the guest agent connected or disconnected
    "paste_completed": "1.0",
    "paste_failed": "1.0",
    "dropped": "1.0",  # events lost to a slow client (always delivered)
    "surface_drawn": "1.1",  # one per display message that changed a surface's pixels
    "surface_created": "1.3",
    "surface_destroyed": "1.3",
    "mark": "1.3",  # display MARK: the server finished the initial picture
    "cursor": "1.3",  # the cursor moved, was shown, hidden or changed shape
    "mouse_mode": "1.3",  # the server switched between client and server mouse mode
    "gap": "1.3",  # a new gap key was registered
    "input_latency": "1.3",  # an input-to-display latency sample
    "clipboard": "1.3",  # the guest put text on its clipboard
    "session_ended": "1.3",  # the SPICE session ended; ryll is about to close the socket
    "reconnecting": "1.3",  # --reconnect: the server dropped the session, an attempt follows
    "reconnected": "1.3",  # --reconnect: an attempt linked the main channel
}

KEY_STATES = ("down", "up", "press")
BUTTONS = ("left", "middle", "right", "up", "down", "side", "extra")
SCROLL_DIRECTIONS = ("up", "down")
SCREENSHOT_FORMATS = ("png", "rgba")
MAX_COORD = 65535
MAX_DISPLAY = 15
MAX_SIDE = 16384
MAX_SURFACE_ID = 0xFFFFFFFF
MAX_DESCRIPTION = 4096  # bug_report's description, in characters
# paste's default (the Rust ryll's control-socket default, independent of the CLI's 16 ms).
PASTE_CHAR_DELAY_MS = 10


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


def _click_check(args: dict[str, Any]) -> None:
    _both_or_neither(("x", "y"))(args)
    if args.get("display") is not None and args.get("x") is None:
        raise ValueError("display goes with x and y")


def _region_check(args: dict[str, Any]) -> None:
    given = [args.get(k) is not None for k in ("x", "y", "width", "height")]
    if any(given) and not all(given):
        raise ValueError("a region is x, y, width and height together")
    if args.get("display") is not None and not any(given):
        raise ValueError("display goes with a region (x, y, width, height)")


def _key_check(args: dict[str, Any]) -> None:
    if (args.get("scancode") is None) == (args.get("key") is None):
        raise ValueError("give either scancode (a set-1 make code) or key (a key name)")


_DISPLAY = Param(integer(0, MAX_DISPLAY))
_BUTTON = Param(string(8, BUTTONS), default="left")

METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec(
            "hello",
            # client_name is "not validated" (the specification): any string, logged cut short
            {"client_name": Param(string(MAX_LINE_BYTES), default=""),
             "protocol_version": Param(string(32), required=True)},
            summary="negotiate the protocol version (first request of every connection)",
        ),
        MethodSpec("status", summary="SPICE connection, agent and surfaces (and much more)"),
        MethodSpec(
            "send_key",
            # state is checked by the method: a bad one is bad_state, not bad_params
            {"scancode": Param(integer(0, 0xFFFF)), "key": Param(string(64, allow_empty=False)),
             "state": Param(string(16), required=True)},
            check=_key_check,
            summary="one key down, up or both, by set-1 scancode (1.3: or by name)",
        ),
        MethodSpec(
            "paste",
            # char_delay_ms is the specification's u32 (a paste is cancelled with its client)
            {"text": Param(string(MAX_TYPE_CHARS), required=True),
             "char_delay_ms": Param(number(0, 2**32 - 1), default=PASTE_CHAR_DELAY_MS)},
            summary="type text in the background; paste_completed / paste_failed follow",
        ),
        MethodSpec(
            "screenshot",
            # format is checked by the method: a bad one is unsupported_format
            {"surface_id": Param(integer(0, MAX_SURFACE_ID)), "format": Param(string(16),
                                                                            default="png"),
             "channel_id": Param(integer(0, 255)), "display": _DISPLAY,
             "cursor": Param(boolean, default=False)},
            summary="a surface (or, 1.3, a display) as base64 PNG or raw RGBA",
        ),
        MethodSpec("subscribe", {"events": Param(names(), required=True)},
                   summary="start receiving the named events"),
        MethodSpec("unsubscribe", {"events": Param(names(), required=True)},
                   summary="stop receiving the named events"),
        MethodSpec(
            "type",
            {"text": Param(string(MAX_TYPE_CHARS), required=True),
             "char_delay_ms": Param(number(0, 1000), default=16.0)},
            summary="type text and answer when it is typed", since="1.3",
        ),
        MethodSpec(
            "mouse_move",
            {"x": Param(integer(0, MAX_COORD)), "y": Param(integer(0, MAX_COORD)),
             "dx": Param(integer(-MAX_COORD, MAX_COORD)),
             "dy": Param(integer(-MAX_COORD, MAX_COORD)), "display": _DISPLAY},
            check=_move_check,
            summary="move the pointer to x,y on a display, or by dx,dy", since="1.3",
        ),
        MethodSpec(
            "mouse_click",
            {"button": _BUTTON, "x": Param(integer(0, MAX_COORD)),
             "y": Param(integer(0, MAX_COORD)), "display": _DISPLAY},
            check=_click_check,
            summary="click a button, optionally at x,y first", since="1.3",
        ),
        MethodSpec("mouse_down", {"button": _BUTTON}, summary="press a mouse button",
                   since="1.3"),
        MethodSpec("mouse_up", {"button": _BUTTON}, summary="release a mouse button",
                   since="1.3"),
        MethodSpec(
            "mouse_scroll",
            {"direction": Param(string(8, SCROLL_DIRECTIONS), required=True),
             "count": Param(integer(1, 100), default=1)},
            summary="turn the wheel up or down count notches", since="1.3",
        ),
        MethodSpec("clipboard_set", {"text": Param(string(MAX_CLIPBOARD_CHARS), required=True)},
                   summary="offer text on the guest's clipboard (agent)", since="1.3"),
        MethodSpec("clipboard_get", {"timeout": Param(number(0.1, 60), default=5.0)},
                   summary="the guest clipboard's text (agent)", since="1.3"),
        MethodSpec(
            "resolution",
            {"width": Param(integer(1, MAX_SIDE), required=True),
             "height": Param(integer(1, MAX_SIDE), required=True)},
            summary="ask the guest agent for a display resolution", since="1.3",
        ),
        MethodSpec("quit", summary="end the session (the summary is written, the socket "
                                   "removed)", since="1.3"),
        MethodSpec(
            "bug_report",
            {"description": Param(string(MAX_DESCRIPTION), default=""), "display": _DISPLAY,
             "x": Param(integer(0, MAX_COORD)), "y": Param(integer(0, MAX_COORD)),
             "width": Param(integer(1, MAX_COORD)), "height": Param(integer(1, MAX_COORD))},
            check=_region_check,
            summary="write a bug-report zip (optionally with a region's screenshot)",
            since="1.3",
        ),
    )
}


@dataclass(frozen=True)
class Request:
    method: str
    params: dict[str, Any]
    id: Any
    ignored: tuple[str, ...] = ()  # parameters the method does not know (a newer client's)


def _reject_constant(name: str) -> Any:
    # json.loads takes NaN, Infinity and -Infinity by default; they are not JSON.
    raise ValueError(f"{name} is not valid JSON")


def decode_json(line: bytes) -> Any:
    """The JSON value of one line, or ControlError(bad_request). Never raises anything else:
    invalid UTF-8, NaN, absurdly long integers and deep nesting all land here."""
    try:
        text = line.decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ControlError(ErrorCode.BAD_REQUEST, "JSON nested too deeply") from None
    except (ValueError, TypeError) as exc:
        # JSONDecodeError and UnicodeDecodeError are ValueErrors; so is int() refusing a
        # number of more than 4300 digits.
        raise ControlError(ErrorCode.BAD_REQUEST, f"not JSON: {_short(str(exc))}") from None


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _valid_id(value: Any) -> bool:
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
    if "id" not in obj or not _valid_id(obj["id"]):
        raise ControlError(
            ErrorCode.BAD_REQUEST,
            f'a request needs "id": an integer or a string of at most {MAX_ID_CHARS} '
            "characters",
        )
    request_id = obj["id"]
    method = obj.get("method")
    if not isinstance(method, str) or not method:
        raise ControlError(ErrorCode.BAD_REQUEST, 'a request needs "method", a verb name',
                           request_id, has_id=True)
    spec = METHODS.get(method)
    if spec is None:
        raise ControlError(ErrorCode.UNKNOWN_METHOD, f"unknown method {_short(method, 64)!r}",
                           request_id, has_id=True)
    raw = obj.get("params", {})
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ControlError(ErrorCode.BAD_PARAMS,
                           f"{method}: params must be an object, not {type(raw).__name__}",
                           request_id, has_id=True)
    try:
        params, ignored = validate_params(spec, raw)
    except ValueError as exc:
        raise ControlError(ErrorCode.BAD_PARAMS, f"{method}: {exc}", request_id,
                           has_id=True) from None
    return Request(method, params, request_id, ignored)


def before_hello(line: bytes) -> ControlError | None:
    """Before a successful hello, any request other than hello is ``no_hello_yet`` (the
    specification's rule, checked before the method and its params are looked at); None when
    the line is a hello or not a request at all (parse_request says what is wrong)."""
    try:
        obj = decode_json(line)
    except ControlError:
        return None
    if not isinstance(obj, dict) or "id" not in obj or not _valid_id(obj["id"]):
        return None
    if obj.get("method") == "hello":
        return None
    return ControlError(ErrorCode.NO_HELLO_YET, "first request must be hello", obj["id"],
                        has_id=True)


def validate_params(spec: MethodSpec, raw: dict[str, Any]) -> tuple[dict[str, Any],
                                                                     tuple[str, ...]]:
    """Check ``raw`` against ``spec``: required parameters present, each value of its type and
    range (``null`` is the default). Returns the parameters with defaults filled in and the
    names it does not know: a newer client's optional parameters, ignored (the response says
    which, so a misspelt one does not go unnoticed); ValueError otherwise."""
    ignored = tuple(_short(k, 64) for k in raw if k not in spec.params)
    params: dict[str, Any] = {}
    for name, param in spec.params.items():
        if name not in raw or raw[name] is None:
            if param.required:
                raise ValueError(f"{name} is required")
            params[name] = param.default
            continue
        params[name] = param.check(name, raw[name])
    if spec.check is not None:
        # Cross-parameter rules see only what the client gave, not the defaults.
        spec.check({k: params[k] for k in raw if k in spec.params and raw[k] is not None})
    return params, ignored


def parse_version(text: str) -> tuple[int, int]:
    """``"1.2"`` -> (1, 2); ValueError unless it is a dotted two-part version."""
    major, dot, minor = text.partition(".")
    # isascii: str.isdigit() also takes digits int() reads ("\u0661") and some it does not
    # ("\u00b2"); a version is ASCII.
    if (not dot or not text.isascii() or not major.isdigit() or not minor.isdigit()
            or len(text) > 16):
        raise ValueError(f"protocol_version must be a dotted major.minor string, not {text!r}")
    return int(major), int(minor)


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
        # A line of exactly ``limit`` bytes may be waiting for the LF after its CR.
        pending = len(self._buf)
        if pending > self.limit and not (pending == self.limit + 1
                                         and self._buf.endswith(b"\r")):
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


def hello_result(ryll_version: str) -> dict[str, Any]:
    return {
        "server_name": SERVER_NAME,
        "protocol_version": PROTOCOL_VERSION,
        "supported_methods": list(METHODS),
        "supported_events": list(EVENTS),
        "ryll_version": ryll_version,
        "max_line_bytes": MAX_LINE_BYTES,
    }


def result(request: Request, value: Mapping[str, Any]) -> dict[str, Any]:
    body = dict(value)
    if request.ignored:
        body["ignored_params"] = list(request.ignored)
    return {"id": request.id, "ok": True, "result": body}


def error(code: str, message: str, request_id: Any = None, has_id: bool = False
          ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if has_id:
        out["id"] = request_id
    out["ok"] = False
    out["error"] = {"code": code, "message": message}
    return out


def error_for(exc: ControlError) -> dict[str, Any]:
    return error(exc.code, exc.message, exc.request_id, exc.has_id)


def event(name: str, data: Mapping[str, Any]) -> dict[str, Any]:
    return {"event": name, "data": dict(data)}
