"""The gap registry: counting, first hexdump, new keys, the unknown-opcode cap, the key bound."""

from __future__ import annotations

import logging

import pytest

from ryll import gaps as gaps_mod
from ryll.gaps import (
    HEXDUMP_BYTES,
    MAX_KEYS,
    MAX_UNKNOWN_OPCODES_PER_CHANNEL,
    GapRegistry,
    hexdump,
)
from ryll.protocol.constants import ChannelType, DisplayServer, MainServer
from tests.fixtures.loader import bodies, body

DRAW_COPIES = bodies(ChannelType.DISPLAY, DisplayServer.DRAW_COPY)
NAME = body(ChannelType.MAIN, MainServer.NAME)  # b"\x0c\0\0\0ryll-testvm\0"


def test_hexdump_format_on_a_captured_body() -> None:
    text = hexdump(NAME)
    assert text == (
        "00000000  0c 00 00 00 72 79 6c 6c 2d 74 65 73 74 76 6d 00  |....ryll-testvm.|"
    )


def test_hexdump_is_cut_at_64_bytes() -> None:
    big = DRAW_COPIES[0]
    lines = hexdump(big).splitlines()
    assert len(lines) == HEXDUMP_BYTES // 16 + 1
    assert lines[-1] == f"... ({len(big)} bytes in all)"
    assert lines[3].startswith("00000030  ")
    assert hexdump(b"") == ""


def test_register_counts_and_keeps_first_hexdump() -> None:
    reg = GapRegistry()
    first = reg.register("display:unimpl:draw_copy", "not yet", DRAW_COPIES[0], {"a": 1})
    assert first is not None
    for data in DRAW_COPIES[1:5]:
        reg.register("display:unimpl:draw_copy", "later detail", data, {"a": 2})
    gap = reg.get("display:unimpl:draw_copy")
    assert gap is first
    assert gap.count == 5
    assert gap.hexdump == hexdump(DRAW_COPIES[0])
    assert gap.hexdump != hexdump(DRAW_COPIES[1])
    assert gap.detail == "not yet"
    assert gap.channel_state == {"a": 1}
    assert "display:unimpl:draw_copy" in reg
    assert len(reg) == 1


def test_register_without_data_has_no_hexdump() -> None:
    reg = GapRegistry()
    gap = reg.register("main:unimpl:agent_data")
    assert gap is not None and gap.hexdump is None and gap.count == 1


def test_counts_and_gaps_are_sorted() -> None:
    reg = GapRegistry()
    for key in ("display:b", "cursor:a", "display:a", "display:b"):
        reg.register(key)
    assert reg.counts() == {"cursor:a": 1, "display:a": 1, "display:b": 2}
    assert list(reg.counts()) == ["cursor:a", "display:a", "display:b"]
    assert [g.key for g in reg.gaps()] == ["cursor:a", "display:a", "display:b"]
    assert reg.get("nope") is None


def test_first_occurrence_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    reg = GapRegistry()
    with caplog.at_level(logging.WARNING, logger="ryll.gaps"):
        reg.register("display:hexdump:200", "unhandled", NAME)
        reg.register("display:hexdump:200", "unhandled", NAME)
    msgs = [r.getMessage() for r in caplog.records if r.name == "ryll.gaps"]
    assert len(msgs) == 1
    assert "display:hexdump:200" in msgs[0]
    assert "ryll-testvm" in msgs[0]


def test_take_new_returns_each_new_key_once_in_order() -> None:
    reg = GapRegistry()
    for _ in range(3):
        reg.register("display:unimpl:draw_copy", data=DRAW_COPIES[0])
    reg.register("cursor:unimpl:set")
    reg.register("cursor:unimpl:set")
    new = reg.take_new()
    assert [g.key for g in new] == ["display:unimpl:draw_copy", "cursor:unimpl:set"]
    # Taken already counted and with their hexdump; a second take has nothing new.
    assert new[0].count == 3 and new[0].hexdump is not None
    assert reg.take_new() == []
    reg.register("display:unimpl:draw_copy")
    assert reg.take_new() == []  # an old key counting up is not new
    reg.register("inputs:unimpl:x")
    assert [g.key for g in reg.take_new()] == ["inputs:unimpl:x"]


def test_unknown_message_key_and_hexdump() -> None:
    reg = GapRegistry()
    gap = reg.unknown_message("display", 126, DRAW_COPIES[0], {"channel": "display"})
    assert gap is not None
    assert gap.key == "display:hexdump:126"
    assert gap.hexdump == hexdump(DRAW_COPIES[0])
    assert "126" in gap.detail and str(len(DRAW_COPIES[0])) in gap.detail
    assert gap.channel_state == {"channel": "display"}
    reg.unknown_message("display", 126, b"")
    assert reg.counts() == {"display:hexdump:126": 2}


def test_unknown_opcode_cap_then_hexdump_cap() -> None:
    reg = GapRegistry()
    for op in range(1000, 1000 + MAX_UNKNOWN_OPCODES_PER_CHANNEL):
        reg.unknown_message("display", op, NAME)
    assert len(reg) == MAX_UNKNOWN_OPCODES_PER_CHANNEL
    # Every further distinct opcode collapses into one key.
    for op in range(5000, 5010):
        gap = reg.unknown_message("display", op, NAME)
        assert gap is not None and gap.key == "display:hexdump_cap"
    assert len(reg) == MAX_UNKNOWN_OPCODES_PER_CHANNEL + 1
    assert reg.counts()["display:hexdump_cap"] == 10
    assert "display:hexdump:5000" not in reg
    assert [g.key for g in reg.take_new()].count("display:hexdump_cap") == 1
    # An opcode seen before the cap keeps counting under its own key.
    reg.unknown_message("display", 1000, NAME)
    assert reg.counts()["display:hexdump:1000"] == 2
    # The cap is per channel.
    assert reg.unknown_message("cursor", 5000, NAME).key == "cursor:hexdump:5000"  # type: ignore[union-attr]


def test_max_keys_bound() -> None:
    reg = GapRegistry()
    logging.getLogger("ryll.gaps").disabled = True
    try:
        for i in range(MAX_KEYS):
            assert reg.register(f"display:unimpl:k{i}") is not None
        assert reg.register("display:unimpl:one_too_many") is None
        assert reg.register("display:unimpl:one_more") is None
    finally:
        logging.getLogger("ryll.gaps").disabled = False
    assert len(reg) == MAX_KEYS == gaps_mod.MAX_KEYS
    assert reg.dropped_keys == 2
    assert "display:unimpl:one_too_many" not in reg
    assert len(reg.take_new()) == MAX_KEYS
    # Existing keys still count after the bound is hit.
    assert reg.register("display:unimpl:k0").count == 2  # type: ignore[union-attr]


def test_registries_are_independent() -> None:
    a, b = GapRegistry(), GapRegistry()
    a.unknown_message("display", 7, NAME)
    assert len(a) == 1 and len(b) == 0
