"""The control socket's sans-IO layer: framing, request validation (every malformed shape a
client can send) and encoding."""

from __future__ import annotations

import json

import pytest

from ryll.control import protocol as proto
from ryll.control.protocol import ControlError, ErrorCode


def _err(line: bytes | str) -> ControlError:
    if isinstance(line, str):
        line = line.encode()
    with pytest.raises(ControlError) as info:
        proto.parse_request(line)
    return info.value


# --- framing ------------------------------------------------------------------------------


def test_line_buffer_splits_and_keeps_partial_lines() -> None:
    buf = proto.LineBuffer()
    assert buf.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert buf.pending == 4
    assert buf.feed(b':2}\r\n\n  \n{"c":3}\n') == [b'{"b":2}', b'{"c":3}']
    assert buf.pending == 0


def test_line_buffer_one_byte_at_a_time() -> None:
    buf = proto.LineBuffer()
    out: list[bytes] = []
    for b in b'{"cmd":"status"}\n{"cmd":"status","id":2}\n':
        out += buf.feed(bytes([b]))
    assert out == [b'{"cmd":"status"}', b'{"cmd":"status","id":2}']


def test_line_buffer_refuses_a_long_line_before_its_end() -> None:
    buf = proto.LineBuffer(limit=16)
    buf.feed(b"x" * 16)
    with pytest.raises(proto.LineTooLong):
        buf.feed(b"x")


def test_line_buffer_refuses_a_long_complete_line() -> None:
    buf = proto.LineBuffer(limit=16)
    with pytest.raises(proto.LineTooLong):
        buf.feed(b"x" * 17 + b"\n")
    # exactly at the limit is fine, CR excluded
    assert proto.LineBuffer(limit=16).feed(b"y" * 16 + b"\r\n") == [b"y" * 16]


def test_default_limit_is_one_mebibyte() -> None:
    assert proto.MAX_LINE_BYTES == 1 << 20


# --- well-formed requests -----------------------------------------------------------------


def test_minimal_request() -> None:
    req = proto.parse_request(b'{"cmd":"status"}')
    assert (req.command, req.args, req.has_id) == ("status", {}, False)


@pytest.mark.parametrize("rid", [0, 7, -3, "abc", "", None, 2**53])
def test_ids_are_echoed(rid: object) -> None:
    req = proto.parse_request(json.dumps({"id": rid, "cmd": "status"}).encode())
    assert req.has_id and req.id == rid
    assert proto.result(req, {"x": 1}) == {"id": rid, "result": {"x": 1}}


def test_no_id_no_id_in_reply() -> None:
    req = proto.parse_request(b'{"cmd":"status"}')
    assert proto.result(req, {}) == {"result": {}}


def test_defaults_are_filled_in() -> None:
    req = proto.parse_request(b'{"cmd":"send_key","key":"a"}')
    assert req.args == {"key": "a", "action": "press"}
    req = proto.parse_request(b'{"cmd":"type","text":"hi"}')
    assert req.args == {"text": "hi", "char_delay_ms": 16.0}
    req = proto.parse_request(b'{"cmd":"screenshot"}')
    assert req.args == {"format": "png", "display": 0, "cursor": False}


def test_null_means_absent() -> None:
    req = proto.parse_request(b'{"cmd":"send_key","key":"a","action":null}')
    assert req.args["action"] == "press"


@pytest.mark.parametrize(
    "line",
    [
        '{"cmd":"mouse_move","x":10,"y":20}',
        '{"cmd":"mouse_move","x":10,"y":20,"display":1}',
        '{"cmd":"mouse_move","dx":-5,"dy":3}',
        '{"cmd":"mouse_click"}',
        '{"cmd":"mouse_click","button":"right","x":1,"y":2}',
        '{"cmd":"mouse_down","button":"middle"}',
        '{"cmd":"mouse_up"}',
        '{"cmd":"screenshot","format":"rgba","display":0,"cursor":true}',
        '{"cmd":"clipboard_set","text":"\\u00e9t\\u00e9"}',
        '{"cmd":"clipboard_get","timeout":1.5}',
        '{"cmd":"resolution","width":1024,"height":768}',
        '{"cmd":"subscribe","events":["gap","surface_drawn","gap"]}',
        '{"cmd":"unsubscribe"}',
        '{"cmd":"type","text":"x","char_delay_ms":0}',
        '  {"cmd":"status"}  ',
    ],
)
def test_valid_requests(line: str) -> None:
    proto.parse_request(line.encode())


def test_subscribe_deduplicates() -> None:
    req = proto.parse_request(b'{"cmd":"subscribe","events":["gap","latency","gap"]}')
    assert req.args["events"] == ["gap", "latency"]


# --- malformed requests -------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"{",
        b"not json",
        b'{"cmd":"status"',
        b'{"cmd":"status"} trailing',
        b"\xff\xfe{}",
        b'{"cmd":"status","x":NaN}',
        b'{"cmd":"status","x":Infinity}',
        b'{"cmd":"status","x":-Infinity}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b"1" * 5000,
    ],
)
def test_bad_json(line: bytes) -> None:
    assert _err(line).code == ErrorCode.BAD_JSON


@pytest.mark.parametrize("line", ["[]", "1", '"status"', "null", "true", '[{"cmd":"status"}]'])
def test_non_object_json(line: str) -> None:
    assert _err(line).code == ErrorCode.BAD_REQUEST


@pytest.mark.parametrize(
    "line",
    ["{}", '{"id":1}', '{"cmd":""}', '{"cmd":5}', '{"cmd":null}', '{"cmd":["status"]}',
     '{"command":"status"}'],
)
def test_missing_or_bad_cmd(line: str) -> None:
    err = _err(line)
    assert err.code == ErrorCode.BAD_REQUEST


def test_bad_cmd_keeps_the_id() -> None:
    err = _err('{"id":"r1","cmd":5}')
    assert (err.request_id, err.has_id) == ("r1", True)
    assert proto.error_for(err)["id"] == "r1"


@pytest.mark.parametrize(
    "rid", ['{"a":1}', "[1]", "true", "1.5", str(2**53 + 1), '"' + "x" * 257 + '"'],
)
def test_bad_ids(rid: str) -> None:
    err = _err('{"id":' + rid + ',"cmd":"status"}')
    assert err.code == ErrorCode.BAD_REQUEST
    assert not err.has_id  # an id we refuse is not echoed


def test_unknown_command() -> None:
    err = _err('{"id":3,"cmd":"reboot"}')
    assert err.code == ErrorCode.UNKNOWN_COMMAND and err.request_id == 3


def test_unknown_command_name_is_truncated() -> None:
    err = _err('{"cmd":"' + "z" * 10_000 + '"}')
    assert err.code == ErrorCode.UNKNOWN_COMMAND
    assert len(err.message) < 200


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ('{"cmd":"status","verbose":true}', "unknown argument 'verbose'"),
        ('{"cmd":"send_key"}', "key is required"),
        ('{"cmd":"send_key","key":""}', "must not be empty"),
        ('{"cmd":"send_key","key":5}', "key must be a string"),
        ('{"cmd":"send_key","key":"a","action":"tap"}', "action must be one of"),
        ('{"cmd":"send_key","key":"' + "k" * 65 + '"}', "longer than 64"),
        ('{"cmd":"type"}', "text is required"),
        ('{"cmd":"type","text":["a"]}', "text must be a string"),
        ('{"cmd":"type","text":"a","char_delay_ms":-1}', "char_delay_ms must be in"),
        ('{"cmd":"type","text":"a","char_delay_ms":"5"}', "char_delay_ms must be a number"),
        ('{"cmd":"type","text":"a","char_delay_ms":true}', "char_delay_ms must be a number"),
        ('{"cmd":"type","text":"a","char_delay_ms":1e400}', "char_delay_ms must be a number"),
        ('{"cmd":"type","text":"\\ud800"}', "surrogate"),
        ('{"cmd":"mouse_move"}', "either x and y"),
        ('{"cmd":"mouse_move","x":1}', "x and y go together"),
        ('{"cmd":"mouse_move","x":1,"y":2,"dx":1,"dy":1}', "either x and y"),
        ('{"cmd":"mouse_move","dx":1,"dy":1,"display":1}', "display goes with x"),
        ('{"cmd":"mouse_move","x":-1,"y":0}', "x must be in"),
        ('{"cmd":"mouse_move","x":1.5,"y":0}', "x must be an integer"),
        ('{"cmd":"mouse_move","x":true,"y":0}', "x must be an integer"),
        ('{"cmd":"mouse_move","x":1,"y":2,"display":16}', "display must be in"),
        ('{"cmd":"mouse_click","x":1}', "x and y go together"),
        ('{"cmd":"mouse_click","button":"fourth"}', "button must be one of"),
        ('{"cmd":"mouse_down","button":1}', "button must be a string"),
        ('{"cmd":"screenshot","format":"jpeg"}', "format must be one of"),
        ('{"cmd":"screenshot","cursor":1}', "cursor must be true or false"),
        ('{"cmd":"screenshot","display":"0"}', "display must be an integer"),
        ('{"cmd":"clipboard_set"}', "text is required"),
        ('{"cmd":"clipboard_get","timeout":0}', "timeout must be in"),
        ('{"cmd":"clipboard_get","timeout":1000}', "timeout must be in"),
        ('{"cmd":"resolution","width":1024}', "height is required"),
        ('{"cmd":"resolution","width":0,"height":768}', "width must be in"),
        ('{"cmd":"resolution","width":99999,"height":768}', "width must be in"),
        ('{"cmd":"subscribe"}', "events is required"),
        ('{"cmd":"subscribe","events":"gap"}', "list of strings"),
        ('{"cmd":"subscribe","events":[1]}', "list of strings"),
        ('{"cmd":"subscribe","events":["nope"]}', "unknown 'nope'"),
        ('{"cmd":"subscribe","events":[' + ",".join(['"gap"'] * 65) + "]}", "more than 64"),
    ],
)
def test_bad_arguments(line: str, needle: str) -> None:
    err = _err(line)
    assert err.code == ErrorCode.BAD_ARGUMENT, err.message
    assert needle in err.message


def test_type_text_bound() -> None:
    err = _err(json.dumps({"cmd": "type", "text": "a" * (proto.MAX_TYPE_CHARS + 1)}))
    assert err.code == ErrorCode.BAD_ARGUMENT
    proto.parse_request(json.dumps({"cmd": "type", "text": "a" * proto.MAX_TYPE_CHARS}).encode())


def test_huge_unknown_argument_names_are_truncated() -> None:
    err = _err(json.dumps({"cmd": "status", "k" * 100_000: 1}))
    assert err.code == ErrorCode.BAD_ARGUMENT
    assert len(err.message) < 500


def test_every_command_has_a_spec_and_every_spec_parses_with_required_args() -> None:
    samples = {
        "send_key": {"key": "a"}, "type": {"text": "a"}, "mouse_move": {"x": 1, "y": 1},
        "clipboard_set": {"text": ""}, "resolution": {"width": 8, "height": 8},
        "subscribe": {"events": []},
    }
    for name in proto.COMMANDS:
        proto.parse_request(json.dumps({"cmd": name, **samples.get(name, {})}).encode())


# --- encoding -----------------------------------------------------------------------------


def test_hello() -> None:
    line = proto.encode(proto.hello("9.9"))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    h = json.loads(line)["hello"]
    assert h["protocol"] == "ryll-control" and h["version"] == 1 and h["ryll"] == "9.9"
    assert set(h["commands"]) == set(proto.COMMANDS)
    assert "gap" in h["events"] and "surface_drawn" in h["events"]
    assert h["max_line_bytes"] == proto.MAX_LINE_BYTES


def test_encode_is_one_ascii_line_whatever_the_text() -> None:
    line = proto.encode({"result": {"text": "a\nb\u00e9\ud800\u2028"}})
    assert line.count(b"\n") == 1
    line.decode("ascii")
    assert json.loads(line)["result"]["text"] == "a\nb\u00e9\ud800\u2028"


def test_encode_survives_odd_values() -> None:
    line = proto.encode({"result": {"t": (1, 2), "s": frozenset([3]), "o": object()}})
    data = json.loads(line)["result"]
    assert data["t"] == [1, 2] and data["s"] == [3] and isinstance(data["o"], str)


def test_error_and_event_shapes() -> None:
    assert proto.error("busy", "go away") == {"error": {"code": "busy", "message": "go away"}}
    assert proto.error("bad_json", "x", 5, True) == {
        "id": 5, "error": {"code": "bad_json", "message": "x"},
    }
    assert proto.event("gap", {"key": "k"}) == {"event": {"name": "gap", "key": "k"}}


def test_error_codes_are_stable() -> None:
    assert set(proto.ERROR_CODES) == {
        "bad_json", "bad_request", "unknown_command", "bad_argument", "not_connected",
        "no_channel", "no_agent", "timeout", "busy", "too_large", "internal",
    }
