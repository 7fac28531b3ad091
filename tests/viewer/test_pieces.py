"""The viewer's sans-IO pieces: the key map, the damage accumulator, the wire format, access."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from ryll.input.keys import EXTENDED, KEYS
from ryll.protocol.messages.draw import Rect
from ryll.viewer import wire
from ryll.viewer.auth import Access
from ryll.viewer.damage import MAX_RECTS, Damage
from ryll.viewer.keymap import CODES, scancode

# --- keymap -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "name"), [
    ("KeyA", "a"), ("KeyZ", "z"), ("Digit1", "1"), ("Digit0", "0"), ("Enter", "Return"),
    ("Backspace", "BackSpace"), ("ShiftLeft", "Shift_L"), ("ShiftRight", "Shift_R"),
    ("ControlLeft", "Control_L"), ("AltLeft", "Alt_L"), ("Space", "space"), ("F1", "F1"),
    ("F10", "F10"), ("F11", "F11"), ("F12", "F12"), ("Numpad7", "KP_7"),
    ("NumpadMultiply", "KP_Multiply"), ("Backquote", "grave"), ("Quote", "apostrophe"),
])
def test_browser_codes_agree_with_the_key_names(code: str, name: str) -> None:
    # One table of scancodes (input/keys.py) and the browser's names for the same keys.
    assert scancode(code) == KEYS[name]


@pytest.mark.parametrize(("code", "value"), [
    # The 0xE0 keys (set 1): arrows, the editing block, right-hand modifiers, keypad Enter.
    ("ArrowUp", EXTENDED | 0x48), ("ArrowDown", EXTENDED | 0x50), ("ArrowLeft", EXTENDED | 0x4B),
    ("ArrowRight", EXTENDED | 0x4D), ("Insert", EXTENDED | 0x52), ("Delete", EXTENDED | 0x53),
    ("Home", EXTENDED | 0x47), ("End", EXTENDED | 0x4F), ("PageUp", EXTENDED | 0x49),
    ("PageDown", EXTENDED | 0x51), ("ControlRight", EXTENDED | 0x1D),
    ("AltRight", EXTENDED | 0x38), ("NumpadEnter", EXTENDED | 0x1C),
    ("NumpadDivide", EXTENDED | 0x35), ("MetaLeft", EXTENDED | 0x5B),
    ("ContextMenu", EXTENDED | 0x5D), ("IntlBackslash", 0x56),
])
def test_extended_keys(code: str, value: int) -> None:
    assert scancode(code) == value


def test_every_key_has_its_own_scancode() -> None:
    aliases = {"OSLeft", "OSRight", "VolumeMute", "VolumeDown", "VolumeUp"}
    values = [v for k, v in CODES.items() if k not in aliases]
    assert len(values) == len(set(values))
    assert all(0 < v < 0x80 or (v & EXTENDED and 0 < v & 0xFF < 0x80) for v in CODES.values())
    assert scancode("Pause") is None and scancode("") is None and scancode("KeyÄ") is None


# --- damage -----------------------------------------------------------------------------------


def test_touching_rectangles_merge_and_apart_ones_stay() -> None:
    d = Damage()
    d.add(0, Rect(0, 0, 10, 10))
    d.add(0, Rect(5, 5, 20, 20))  # overlaps: one box
    d.add(0, Rect(100, 100, 110, 110))  # apart
    d.add(1, Rect(0, 0, 1, 1))
    d.add(0, Rect(3, 3, 3, 9))  # empty: nothing
    whole, rects = d.take()
    assert whole == set()
    assert sorted(rects[0], key=lambda r: r.top) == [Rect(0, 0, 20, 20),
                                                     Rect(100, 100, 110, 110)]
    assert rects[1] == [Rect(0, 0, 1, 1)]
    assert not d and d.take() == (set(), {})


def test_a_union_that_touches_more_merges_again() -> None:
    d = Damage()
    d.add(0, Rect(0, 0, 10, 10))
    d.add(0, Rect(0, 30, 10, 40))
    d.add(0, Rect(0, 8, 10, 32))  # bridges both
    assert d.take()[1][0] == [Rect(0, 0, 10, 40)]


def test_a_backlog_is_bounded() -> None:
    d = Damage()
    for i in range(MAX_RECTS + 5):
        d.add(0, Rect(i * 10, 0, i * 10 + 2, 2))
        assert len(d._rects[0]) <= MAX_RECTS
    d.whole(0)
    d.add(0, Rect(0, 0, 5, 5))  # within the whole display already
    assert d.take() == ({0}, {})


# --- wire -------------------------------------------------------------------------------------


def test_rect_messages_round_trip() -> None:
    payload = bytes(range(24))
    message = b"".join(wire.rect_message(2, 300, 40, 3, 2, wire.Encoding.RAW, payload))
    assert wire.parse_rect(message) == (2, 300, 40, 3, 2, wire.Encoding.RAW, payload)
    with pytest.raises(ValueError):
        wire.parse_rect(message[:5])
    for bad in ((256, 0, 0, 1, 1), (0, 65536, 0, 1, 1), (0, 0, 0, 70000, 1), (0, -1, 0, 1, 1)):
        with pytest.raises(ValueError, match="does not fit"):
            wire.rect_message(*bad, wire.Encoding.RAW, b"")
    with pytest.raises(ValueError):
        wire.parse_rect(b"\x07" + message[1:])


def test_the_page_reads_the_header_ryll_writes() -> None:
    js = resources.files("ryll.viewer").joinpath("page", "viewer.js").read_text()
    line = next(line for line in js.splitlines() if line.startswith("const RECT"))
    consts = dict(re.findall(r"(\w+) = (\d+)", line))
    assert int(consts["HEADER"]) == wire.RECT_HEADER.size
    assert int(consts["RECT"]) == wire.RECT
    for enc in wire.Encoding:
        assert int(consts[enc.name]) == enc.value


# --- access -----------------------------------------------------------------------------------


def test_a_url_token_is_good_once_for_one_cookie() -> None:
    access = Access()
    cookie = access.exchange(access.token)
    assert cookie is not None and access.admits(cookie)
    assert access.exchange(access.token) is None  # spent
    assert not access.admits(None) and not access.admits("") and not access.admits("x" * 43)
    second = access.mint()
    other = access.exchange(second)
    assert other is not None and other != cookie and access.admits(other)
    assert access.exchange("") is None
