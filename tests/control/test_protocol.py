"""The control socket's sans-IO layer (protocol 1.2, the Rust ryll's, plus ryll's 1.3): line
framing, request parsing and validation (every malformed shape a client can send), version
parsing, and the envelopes ryll writes (results, errors, events, the hello result)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ryll.control import protocol as proto
from ryll.control.protocol import ControlError, ErrorCode


def _line(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _req(method: str, params: Any = None, rid: Any = 1) -> proto.Request:
    obj: dict[str, Any] = {"id": rid, "method": method}
    if params is not None:
        obj["params"] = params
    return proto.parse_request(_line(obj))


def _err(line: bytes | str) -> ControlError:
    if isinstance(line, str):
        line = line.encode()
    with pytest.raises(ControlError) as info:
        proto.parse_request(line)
    return info.value


def _params_err(method: str, params: Any, rid: Any = 7) -> ControlError:
    err = _err(_line({"id": rid, "method": method, "params": params}))
    assert (err.request_id, err.has_id) == (rid, True)
    return err


# --- framing ------------------------------------------------------------------------------


def test_line_buffer_splits_and_keeps_partial_lines() -> None:
    buf = proto.LineBuffer()
    assert buf.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert buf.pending == 4
    assert buf.feed(b':2}\r\n\n  \n\r\n{"c":3}\n') == [b'{"b":2}', b'{"c":3}']
    assert buf.pending == 0
    assert buf.feed(b"") == []


def test_line_buffer_one_byte_at_a_time() -> None:
    data = b'{"id":1,"method":"status"}\r\n\n{"id":2,"method":"status"}\n'
    buf = proto.LineBuffer()
    out: list[bytes] = []
    for b in data:
        out += buf.feed(bytes([b]))
    assert out == [b'{"id":1,"method":"status"}', b'{"id":2,"method":"status"}']
    assert out == proto.LineBuffer().feed(data)


def test_line_buffer_refuses_a_long_line_before_its_end() -> None:
    buf = proto.LineBuffer(limit=16)
    assert buf.feed(b"x" * 16) == []
    with pytest.raises(proto.LineTooLong):
        buf.feed(b"x")


def test_line_buffer_refuses_a_long_complete_line() -> None:
    with pytest.raises(proto.LineTooLong):
        proto.LineBuffer(limit=16).feed(b"x" * 17 + b"\n")
    with pytest.raises(proto.LineTooLong):
        proto.LineBuffer(limit=16).feed(b"ok\n" + b"x" * 17 + b"\r\n")


@pytest.mark.parametrize("chunks", [
    [b"y" * 16 + b"\r\n"],
    [b"y" * 16, b"\r\n"],
    [b"y" * 16 + b"\r", b"\n"],  # the CR may arrive before its LF
    [b"y" * 8, b"y" * 8 + b"\r", b"\n"],
])
def test_line_buffer_exactly_at_the_limit_cr_excluded(chunks: list[bytes]) -> None:
    buf = proto.LineBuffer(limit=16)
    out: list[bytes] = []
    for chunk in chunks:
        out += buf.feed(chunk)
    assert out == [b"y" * 16]


def test_line_buffer_partial_line_over_the_limit_even_with_a_cr() -> None:
    buf = proto.LineBuffer(limit=16)
    with pytest.raises(proto.LineTooLong):
        buf.feed(b"y" * 17 + b"\r")


def test_default_limit_is_one_mebibyte() -> None:
    assert proto.MAX_LINE_BYTES == 1 << 20
    assert proto.LineBuffer().limit == proto.MAX_LINE_BYTES


# --- well-formed requests -----------------------------------------------------------------


def test_minimal_request() -> None:
    req = proto.parse_request(b'{"id":1,"method":"status","params":{}}')
    assert req == proto.Request("status", {}, 1, ())


@pytest.mark.parametrize("params", ["absent", None])
def test_params_may_be_absent_or_null(params: Any) -> None:
    obj: dict[str, Any] = {"id": "x", "method": "status"}
    if params != "absent":
        obj["params"] = params
    req = proto.parse_request(_line(obj))
    assert (req.method, req.params, req.id) == ("status", {}, "x")


@pytest.mark.parametrize(
    "rid", [0, 7, -3, 2**53, -(2**53), "abc", "", "x" * proto.MAX_ID_CHARS, "\u00e9"],
)
def test_ids_are_echoed(rid: object) -> None:
    req = proto.parse_request(_line({"id": rid, "method": "status", "params": {}}))
    assert req.id == rid and type(req.id) is type(rid)
    assert proto.result(req, {"x": 1}) == {"id": rid, "ok": True, "result": {"x": 1}}


def test_whitespace_around_the_object_is_fine() -> None:
    assert proto.parse_request(b'  {"id":1,"method":"status"}  \t').method == "status"


def test_defaults_are_filled_in() -> None:
    # send_key's state has no default (the specification): see test_bad_params
    assert _req("send_key", {"scancode": 28, "state": "up"}).params == {
        "scancode": 28, "key": None, "state": "up"}
    # paste's default delay is the Rust ryll's control-socket default, not the CLI's 16 ms
    assert proto.PASTE_CHAR_DELAY_MS == 10
    assert _req("paste", {"text": "hi"}).params == {"text": "hi", "char_delay_ms": 10}
    assert _req("type", {"text": "hi"}).params == {"text": "hi", "char_delay_ms": 16.0}
    assert _req("screenshot", {}).params == {
        "surface_id": None, "format": "png", "channel_id": None, "display": None,
        "cursor": False}
    assert _req("hello", {"protocol_version": "1.2"}).params == {
        "client_name": "", "protocol_version": "1.2"}
    assert _req("mouse_click").params == {"button": "left", "x": None, "y": None,
                                          "display": None}
    assert _req("mouse_down").params == {"button": "left"}
    assert _req("mouse_scroll", {"direction": "up"}).params == {"direction": "up", "count": 1}
    assert _req("clipboard_get").params == {"timeout": 5.0}


def test_null_means_the_default() -> None:
    req = _req("paste", {"text": "hi", "char_delay_ms": None})
    assert req.params["char_delay_ms"] == 10
    req = _req("send_key", {"scancode": 28, "key": None, "state": "press"})
    assert req.params == {"scancode": 28, "key": None, "state": "press"}
    with pytest.raises(ControlError, match="state is required"):
        _req("send_key", {"scancode": 28, "state": None})  # null is the (absent) default


def test_numbers_are_normalised() -> None:
    assert _req("paste", {"text": "a", "char_delay_ms": 20}).params["char_delay_ms"] == 20.0
    assert isinstance(_req("paste", {"text": "a", "char_delay_ms": 20}).params["char_delay_ms"],
                      float)
    assert _req("paste", {"text": "a", "char_delay_ms": 2.5}).params["char_delay_ms"] == 2.5
    assert _req("clipboard_get", {"timeout": 60}).params["timeout"] == 60.0


def test_unknown_params_are_ignored_and_reported() -> None:
    req = _req("status", {"verbose": True, "extra": [1]})
    assert req.params == {} and req.ignored == ("verbose", "extra")
    assert proto.result(req, {"a": 1}) == {
        "id": 1, "ok": True, "result": {"a": 1, "ignored_params": ["verbose", "extra"]}}
    req = _req("send_key", {"scancode": 28, "state": "up", "sacncode": 1})  # nor a typo
    assert req.params["state"] == "up" and req.ignored == ("sacncode",)


def test_huge_unknown_param_names_are_truncated() -> None:
    req = _req("status", {"k" * 100_000: 1})
    [name] = req.ignored
    assert name.startswith("k" * 64) and len(name) < 100


def test_result_does_not_mutate_the_value() -> None:
    req = _req("status", {"verbose": True})
    value = {"a": 1}
    proto.result(req, value)
    assert value == {"a": 1}


def test_method_checked_values_pass_parsing() -> None:
    # bad_state and unsupported_format are the methods' codes, so parsing lets them through
    assert _req("send_key", {"scancode": 28, "state": "sideways"}).params["state"] == "sideways"
    assert _req("screenshot", {"format": "jpeg"}).params["format"] == "jpeg"


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("hello", {"protocol_version": "1.0", "client_name": "demo"}),
        ("hello", {"protocol_version": "9.9"}),  # the version is checked by the server
        ("send_key", {"scancode": 0xE04B, "state": "down"}),
        ("send_key", {"scancode": 0xFFFF, "state": "press"}),
        ("send_key", {"key": "ctrl-alt-delete", "state": "up"}),
        ("paste", {"text": "", "char_delay_ms": 0}),
        ("paste", {"text": "x", "char_delay_ms": 1000}),
        ("screenshot", {"surface_id": 0xFFFFFFFF, "channel_id": 255, "format": "rgba"}),
        ("screenshot", {"display": 15, "cursor": True}),
        ("mouse_move", {"x": 10, "y": 20}),
        ("mouse_move", {"x": 65535, "y": 0, "display": 1}),
        ("mouse_move", {"dx": -65535, "dy": 65535}),
        ("mouse_click", {"button": "right", "x": 1, "y": 2, "display": 0}),
        ("mouse_up", {"button": "extra"}),
        ("mouse_scroll", {"direction": "down", "count": 100}),
        ("clipboard_set", {"text": "\u00e9t\u00e9"}),
        ("clipboard_get", {"timeout": 0.1}),
        ("resolution", {"width": 16384, "height": 1}),
        ("subscribe", {"events": []}),
        ("unsubscribe", {"events": ["nope"]}),
        ("type", {"text": "x", "char_delay_ms": 0}),
        ("quit", {}),
        ("bug_report", {"description": "it flickers"}),
        ("bug_report", {"x": 0, "y": 0, "width": 1, "height": 1, "display": 1}),
    ],
)
def test_valid_requests(method: str, params: dict[str, Any]) -> None:
    req = _req(method, params)
    assert req.method == method and req.ignored == ()
    for name, value in params.items():
        assert req.params[name] == value


def test_subscribe_deduplicates_keeps_order_and_unknown_names() -> None:
    req = _req("subscribe", {"events": ["gap", "latency", "gap", "nope"]})
    assert req.params["events"] == ["gap", "latency", "nope"]  # subscribe drops "nope"
    req = _req("subscribe", {"events": ["z" * 100]})
    assert req.params["events"] == ["z" * 64]


def test_every_method_parses_with_its_required_params() -> None:
    samples: dict[str, dict[str, Any]] = {
        "hello": {"protocol_version": "1.2"}, "send_key": {"scancode": 28, "state": "press"},
        "paste": {"text": "a"}, "type": {"text": "a"}, "mouse_move": {"x": 1, "y": 1},
        "mouse_scroll": {"direction": "up"}, "clipboard_set": {"text": ""},
        "resolution": {"width": 8, "height": 8}, "subscribe": {"events": []},
        "unsubscribe": {"events": []},
    }
    for name, spec in proto.METHODS.items():
        assert spec.name == name
        params = samples.get(name, {})
        assert _req(name, params).method == name
        for pname, param in spec.params.items():
            if param.required:
                assert pname in params, (name, pname)


# --- malformed requests -------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"{",
        b"not json",
        b'{"id":1,"method":"status"',
        b'{"id":1,"method":"status"} trailing',
        b"\xff\xfe{}",
        b'{"id":1,"method":"status","params":{"x":NaN}}',
        b'{"id":1,"method":"status","params":{"x":Infinity}}',
        b'{"id":1,"method":"status","params":{"x":-Infinity}}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b"1" * 5000,
        b"{'id':1}",
    ],
)
def test_invalid_json_is_bad_request_without_id(line: bytes) -> None:
    err = _err(line)
    assert err.code == ErrorCode.BAD_REQUEST
    assert not err.has_id
    assert "id" not in proto.error_for(err)
    assert len(err.message) < 300


@pytest.mark.parametrize(
    "line", ["[]", "1", '"status"', "null", "true", '[{"id":1,"method":"status"}]'],
)
def test_non_object_json(line: str) -> None:
    err = _err(line)
    assert err.code == ErrorCode.BAD_REQUEST and not err.has_id
    assert "JSON object" in err.message


@pytest.mark.parametrize(
    "rid",
    [None, "absent", 1.5, 1.0, True, False, 2**53 + 1, -(2**53) - 1, "x" * 257, {"a": 1}, [1]],
)
def test_bad_ids_are_not_echoed(rid: Any) -> None:
    obj: dict[str, Any] = {"method": "status", "params": {}}
    if rid != "absent":
        obj["id"] = rid
    err = _err(_line(obj))
    assert err.code == ErrorCode.BAD_REQUEST
    assert not err.has_id
    assert proto.error_for(err) == {"ok": False, "error": {"code": "bad_request",
                                                          "message": err.message}}


@pytest.mark.parametrize(
    "body", ['"id":"r1"', '"id":"r1","method":""', '"id":"r1","method":5',
             '"id":"r1","method":null', '"id":"r1","method":["status"]',
             '"id":"r1","cmd":"status"'],
)
def test_missing_or_bad_method_keeps_the_id(body: str) -> None:
    err = _err("{" + body + "}")
    assert err.code == ErrorCode.BAD_REQUEST
    assert (err.request_id, err.has_id) == ("r1", True)
    assert proto.error_for(err)["id"] == "r1"


def test_unknown_method() -> None:
    err = _err('{"id":3,"method":"reboot","params":{}}')
    assert err.code == ErrorCode.UNKNOWN_METHOD == "unknown_method"
    assert (err.request_id, err.has_id) == (3, True)
    assert "reboot" in err.message


def test_unknown_method_is_checked_before_params() -> None:
    assert _err('{"id":3,"method":"reboot","params":[]}').code == ErrorCode.UNKNOWN_METHOD


def test_unknown_method_name_is_truncated() -> None:
    err = _err(_line({"id": 1, "method": "z" * 10_000}))
    assert err.code == ErrorCode.UNKNOWN_METHOD
    assert len(err.message) < 200


@pytest.mark.parametrize("params", [[], [1], "x", 1, True])
def test_params_must_be_an_object(params: Any) -> None:
    err = _params_err("status", params)
    assert err.code == ErrorCode.BAD_PARAMS
    assert "params must be an object" in err.message


@pytest.mark.parametrize(
    ("method", "params", "needle"),
    [
        ("hello", {}, "protocol_version is required"),
        ("hello", {"protocol_version": 1.2}, "protocol_version must be a string"),
        ("hello", {"protocol_version": "1.2", "client_name": 5}, "client_name must be a string"),
        ("send_key", {"state": "press"}, "either scancode"),
        ("send_key", {"scancode": 28, "key": "a", "state": "press"}, "either scancode"),
        ("send_key", {"scancode": 28}, "state is required"),
        ("send_key", {"scancode": "28"}, "scancode must be an integer"),
        ("send_key", {"scancode": 28.0}, "scancode must be an integer"),
        ("send_key", {"scancode": True}, "scancode must be an integer"),
        ("send_key", {"scancode": -1}, "scancode must be in 0..65535"),
        ("send_key", {"scancode": 0x10000}, "scancode must be in"),
        ("send_key", {"scancode": 28, "state": 1}, "state must be a string"),
        ("send_key", {"key": ""}, "must not be empty"),
        ("send_key", {"key": 5}, "key must be a string"),
        ("send_key", {"key": "k" * 65}, "longer than 64"),
        ("paste", {}, "text is required"),
        ("paste", {"text": None}, "text is required"),
        ("paste", {"text": 5}, "text must be a string"),
        ("paste", {"text": "a", "char_delay_ms": -1}, "char_delay_ms must be in 0.."),
        ("paste", {"text": "a", "char_delay_ms": 2.0**32}, "char_delay_ms must be in"),
        ("paste", {"text": "a", "char_delay_ms": "5"}, "char_delay_ms must be a number"),
        ("paste", {"text": "a", "char_delay_ms": True}, "char_delay_ms must be a number"),
        ("paste", {"text": "\ud800"}, "surrogate"),
        ("type", {"text": ["a"]}, "text must be a string"),
        ("type", {"text": "a", "char_delay_ms": -0.5}, "char_delay_ms must be in"),
        ("screenshot", {"surface_id": -1}, "surface_id must be in"),
        ("screenshot", {"surface_id": 2**32}, "surface_id must be in"),
        ("screenshot", {"surface_id": "0"}, "surface_id must be an integer"),
        ("screenshot", {"format": 5}, "format must be a string"),
        ("screenshot", {"channel_id": 256}, "channel_id must be in"),
        ("screenshot", {"cursor": 1}, "cursor must be true or false"),
        ("screenshot", {"display": "0"}, "display must be an integer"),
        ("screenshot", {"display": 16}, "display must be in"),
        ("subscribe", {}, "events is required"),
        ("subscribe", {"events": "gap"}, "list of strings"),
        ("subscribe", {"events": [1]}, "list of strings"),
        ("subscribe", {"events": ["gap"] * 65}, "more than 64"),
        ("unsubscribe", {"events": None}, "events is required"),
        ("mouse_move", {}, "either x and y"),
        ("mouse_move", {"x": 1}, "x and y go together"),
        ("bug_report", {"x": 1, "y": 1, "width": 5}, "x, y, width and height together"),
        ("bug_report", {"display": 1}, "display goes with a region"),
        ("bug_report", {"x": 0, "y": 0, "width": 0, "height": 4}, "width"),
        ("bug_report", {"description": "d" * 4097}, "description"),
        ("mouse_move", {"dy": 1}, "dx and dy go together"),
        ("mouse_move", {"x": 1, "y": 2, "dx": 1, "dy": 1}, "either x and y"),
        ("mouse_move", {"dx": 1, "dy": 1, "display": 1}, "display goes with x"),
        ("mouse_move", {"x": -1, "y": 0}, "x must be in"),
        ("mouse_move", {"x": 65536, "y": 0}, "x must be in"),
        ("mouse_move", {"x": 1.5, "y": 0}, "x must be an integer"),
        ("mouse_move", {"x": True, "y": 0}, "x must be an integer"),
        ("mouse_move", {"dx": -65536, "dy": 0}, "dx must be in"),
        ("mouse_move", {"x": 1, "y": 2, "display": 16}, "display must be in"),
        ("mouse_click", {"x": 1}, "x and y go together"),
        ("mouse_click", {"display": 1}, "display goes with x and y"),
        ("mouse_click", {"button": "fourth"}, "button must be one of"),
        ("mouse_down", {"button": 1}, "button must be a string"),
        ("mouse_scroll", {}, "direction is required"),
        ("mouse_scroll", {"direction": "left"}, "direction must be one of"),
        ("mouse_scroll", {"direction": "up", "count": 0}, "count must be in 1..100"),
        ("mouse_scroll", {"direction": "up", "count": 101}, "count must be in"),
        ("clipboard_set", {}, "text is required"),
        ("clipboard_get", {"timeout": 0}, "timeout must be in"),
        ("clipboard_get", {"timeout": 61}, "timeout must be in"),
        ("resolution", {"width": 1024}, "height is required"),
        ("resolution", {"width": 0, "height": 768}, "width must be in"),
        ("resolution", {"width": 16385, "height": 768}, "width must be in"),
    ],
)
def test_bad_params(method: str, params: dict[str, Any], needle: str) -> None:
    err = _params_err(method, params)
    assert err.code == ErrorCode.BAD_PARAMS, err.message
    assert err.message.startswith(f"{method}: ")
    assert needle in err.message, err.message


@pytest.mark.parametrize("value", ["1e400", "-1e400"])
def test_overflowing_numbers_are_not_numbers(value: str) -> None:
    # 1e400 parses as inf, which no range holds
    err = _err('{"id":1,"method":"paste","params":{"text":"a","char_delay_ms":' + value + "}}")
    assert err.code == ErrorCode.BAD_PARAMS
    assert "char_delay_ms must be a number" in err.message


def test_text_bounds() -> None:
    assert _req("paste", {"text": "a" * proto.MAX_TYPE_CHARS}).params["text"]
    err = _params_err("paste", {"text": "a" * (proto.MAX_TYPE_CHARS + 1)})
    assert err.code == ErrorCode.BAD_PARAMS and "longer than" in err.message
    assert _req("clipboard_set", {"text": "a" * proto.MAX_CLIPBOARD_CHARS}).params["text"]
    err = _params_err("clipboard_set", {"text": "a" * (proto.MAX_CLIPBOARD_CHARS + 1)})
    assert err.code == ErrorCode.BAD_PARAMS


def test_cross_checks_see_only_what_the_client_gave() -> None:
    # mouse_click's x/y pairing is not tripped by the defaults (None) of the other
    assert _req("mouse_click", {"button": "left"}).params["x"] is None
    # and an explicit null counts as not given
    assert _req("mouse_move", {"x": 1, "y": 2, "dx": None}).params["dx"] is None


# --- versions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "version"),
    [("1.0", (1, 0)), ("1.2", (1, 2)), ("1.3", (1, 3)), ("1.10", (1, 10)), ("2.0", (2, 0)),
     ("0.9", (0, 9)), ("01.02", (1, 2))],
)
def test_parse_version(text: str, version: tuple[int, int]) -> None:
    assert proto.parse_version(text) == version


@pytest.mark.parametrize(
    "text",
    ["", "1", "1.", ".1", "1.2.3", "a.b", "1.x", " 1.2", "1.2 ", "v1.2", "-1.2", "1.-2",
     "+1.2", "1_0.2", "1" * 16 + ".0", "\u0661.\u0662", "\uff11.\uff10", "\u00b2.1", "1.\u00b9"],
)
def test_parse_version_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="dotted major.minor"):
        proto.parse_version(text)


def test_version_constants() -> None:
    assert proto.PROTOCOL_VERSION == "1.3"
    assert proto.parse_version(proto.PROTOCOL_VERSION)[0] == proto.MAJOR_VERSION == 1


# --- encoding -----------------------------------------------------------------------------


def test_hello_result() -> None:
    h = proto.hello_result("9.9")
    assert h == {
        "server_name": "ryll",
        "protocol_version": "1.3",
        "supported_methods": list(proto.METHODS),
        "supported_events": list(proto.EVENTS),
        "ryll_version": "9.9",
        "max_line_bytes": proto.MAX_LINE_BYTES,
    }
    # 1.2's verbs and events, as the Rust ryll lists them, come first
    assert h["supported_methods"][:7] == ["hello", "status", "send_key", "paste", "screenshot",
                                          "subscribe", "unsubscribe"]
    assert h["supported_events"][:6] == ["latency", "agent_connected", "paste_completed",
                                         "paste_failed", "dropped", "surface_drawn"]
    assert {"type", "mouse_move", "mouse_click", "mouse_down", "mouse_up", "mouse_scroll",
            "clipboard_set", "clipboard_get", "resolution", "quit"} <= set(h["supported_methods"])
    line = proto.encode(proto.result(_req("hello", {"protocol_version": "1.2"}), h))
    assert json.loads(line) == {"id": 1, "ok": True, "result": h}


def test_methods_and_events_are_versioned() -> None:
    for name in ("hello", "status", "send_key", "paste", "screenshot", "subscribe",
                 "unsubscribe"):
        assert proto.METHODS[name].since == "1.0"
    assert all(spec.since in ("1.0", "1.3") for spec in proto.METHODS.values())
    assert proto.EVENTS["surface_drawn"] == "1.1"
    assert {name for name, v in proto.EVENTS.items() if v == "1.0"} == {
        "latency", "agent_connected", "paste_completed", "paste_failed", "dropped"}


def test_encode_is_one_ascii_line_whatever_the_text() -> None:
    line = proto.encode({"result": {"text": "a\nb\u00e9\ud800\u2028"}})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    line.decode("ascii")
    assert b" " not in line  # compact
    assert json.loads(line)["result"]["text"] == "a\nb\u00e9\ud800\u2028"


def test_encode_survives_odd_values() -> None:
    line = proto.encode({"result": {"t": (1, 2), "s": frozenset([3]), "o": object()}})
    data = json.loads(line)["result"]
    assert data["t"] == [1, 2] and data["s"] == [3] and isinstance(data["o"], str)


def test_error_envelope_has_an_id_only_when_known() -> None:
    assert proto.error("busy", "go away") == {
        "ok": False, "error": {"code": "busy", "message": "go away"}}
    assert proto.error("bad_params", "x", 5, True) == {
        "id": 5, "ok": False, "error": {"code": "bad_params", "message": "x"}}
    # a known id that happens to be falsy is still echoed; an unknown one is not
    assert proto.error("bad_params", "x", 0, True)["id"] == 0
    assert proto.error("bad_params", "x", "", True)["id"] == ""
    assert "id" not in proto.error("bad_request", "x", 5, False)


def test_error_for() -> None:
    exc = ControlError(ErrorCode.BAD_STATE, "nope", "r", has_id=True)
    assert proto.error_for(exc) == {"id": "r", "ok": False,
                                    "error": {"code": "bad_state", "message": "nope"}}
    assert exc.close is False
    assert "id" not in proto.error_for(ControlError(ErrorCode.TOO_LARGE, "big"))


def test_event_envelope() -> None:
    data = {"sample_ms": 12.4, "wallclock_us": 1717000000123456}
    ev = proto.event("latency", data)
    assert ev == {"event": "latency", "data": data}
    assert ev["data"] is not data


def test_error_codes_are_stable() -> None:
    assert proto.ERROR_CODES[:11] == (
        "no_hello_yet", "protocol_version_mismatch", "busy", "unknown_method", "bad_params",
        "bad_state", "agent_not_connected", "no_such_surface", "unsupported_format",
        "not_implemented", "internal_error",
    )
    assert set(proto.ERROR_CODES[11:]) == {
        "bad_request", "too_large", "not_connected", "no_channel", "timeout", "report_failed"}
