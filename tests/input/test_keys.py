"""Key names, scancodes and text -> keystrokes (US QWERTY)."""

from __future__ import annotations

import pytest

from ryll.input.keys import (
    CHARS,
    EXTENDED,
    KEYS,
    KeyCombo,
    KeyNameError,
    char_combo,
    parse_button,
    parse_key,
    text_to_keystrokes,
)

SHIFT, CTRL, ALT = 0x2A, 0x1D, 0x38

# Linux input keycodes (input-event-codes.h). Below 0x59 a set-1 make code is the keycode; the
# 0xE0 keys map through atkbd's table to the keycodes in the second list.
LINUX_PLAIN = {
    "Escape": 1, "1": 2, "0": 11, "minus": 12, "equal": 13, "BackSpace": 14, "Tab": 15,
    "q": 16, "p": 25, "Return": 28, "Control_L": 29, "a": 30, "l": 38, "semicolon": 39,
    "apostrophe": 40, "grave": 41, "Shift_L": 42, "backslash": 43, "z": 44, "m": 50,
    "slash": 53, "Shift_R": 54, "KP_Multiply": 55, "Alt_L": 56, "space": 57, "Caps_Lock": 58,
    "F1": 59, "F10": 68, "Num_Lock": 69, "Scroll_Lock": 70, "KP_7": 71, "KP_Subtract": 74,
    "KP_Add": 78, "KP_0": 82, "KP_Decimal": 83, "less": 86, "F11": 87, "F12": 88,
}
LINUX_EXTENDED = {
    "KP_Enter": (0x1C, 96), "Control_R": (0x1D, 97), "KP_Divide": (0x35, 98),
    "Alt_R": (0x38, 100), "Home": (0x47, 102), "Up": (0x48, 103), "Page_Up": (0x49, 104),
    "Left": (0x4B, 105), "Right": (0x4D, 106), "End": (0x4F, 107), "Down": (0x50, 108),
    "Page_Down": (0x51, 109), "Insert": (0x52, 110), "Delete": (0x53, 111),
    "Super_L": (0x5B, 125), "Super_R": (0x5C, 126), "Menu": (0x5D, 127),
}


@pytest.mark.parametrize(("name", "keycode"), sorted(LINUX_PLAIN.items()))
def test_plain_keys_are_their_linux_keycode(name: str, keycode: int) -> None:
    assert KEYS[name] == keycode
    assert parse_key(name) == KeyCombo((), keycode)


@pytest.mark.parametrize(("name", "codes"), sorted(LINUX_EXTENDED.items()))
def test_extended_keys(name: str, codes: tuple[int, int]) -> None:
    make, _linux = codes
    assert KEYS[name] == EXTENDED | make
    assert parse_key(name).key == EXTENDED | make


def test_every_scancode_is_unique_and_in_range() -> None:
    codes = list(KEYS.values())
    assert len(codes) == len(set(codes))
    assert all(0 < c < 0x80 or EXTENDED < c < EXTENDED + 0x80 for c in codes)


def test_names_are_case_insensitive_with_aliases() -> None:
    assert parse_key("return") == parse_key("RETURN") == parse_key("Enter") == KeyCombo((), 0x1C)
    assert parse_key("kp_enter").key == parse_key("KP_Enter").key == 0x11C
    assert parse_key("super_l").key == parse_key("win").key == 0x15B
    assert parse_key("pgdn").key == parse_key("Next").key == KEYS["Page_Down"]
    assert parse_key("f5").key == 0x3F


def test_combos() -> None:
    assert parse_key("ctrl-alt-delete") == KeyCombo((CTRL, ALT), 0x153)
    assert parse_key("Ctrl+Alt+Del") == KeyCombo((CTRL, ALT), 0x153)
    assert parse_key("shift-a") == KeyCombo((SHIFT,), 0x1E)
    assert parse_key("shift+Tab") == KeyCombo((SHIFT,), 0x0F)
    assert parse_key("ctrl-A") == KeyCombo((CTRL,), 0x1E)  # a combo's letter is the key
    assert parse_key("ctrl--") == KeyCombo((CTRL,), 0x0C)
    assert parse_key("ctrl-+") == KeyCombo((CTRL, SHIFT), 0x0D)  # + is shift-equal
    assert parse_key("shift-shift-x") == KeyCombo((SHIFT,), 0x2D)
    assert parse_key("ctrl-alt-delete").scancodes == (CTRL, ALT, 0x153)


def test_single_characters_type_themselves() -> None:
    assert parse_key("a") == KeyCombo((), 0x1E)
    assert parse_key("A") == KeyCombo((SHIFT,), 0x1E)
    assert parse_key("!") == KeyCombo((SHIFT,), 0x02)
    assert parse_key("-") == KeyCombo((), 0x0C)
    assert parse_key("+") == KeyCombo((SHIFT,), 0x0D)


@pytest.mark.parametrize("name", ["", "foo", "a-b", "F13", "ctrl-", "ctrl-nosuchkey", "é", "Pause"])
def test_unknown_names_are_errors(name: str) -> None:
    with pytest.raises(KeyNameError):
        parse_key(name)


def test_text_to_keystrokes() -> None:
    strokes = text_to_keystrokes("Hi!\n\t~ ")
    assert strokes == [
        KeyCombo((SHIFT,), 0x23), KeyCombo((), 0x17), KeyCombo((SHIFT,), 0x02),
        KeyCombo((), 0x1C), KeyCombo((), 0x0F), KeyCombo((SHIFT,), 0x29), KeyCombo((), 0x39),
    ]
    assert text_to_keystrokes("a\r\nb\rc") == text_to_keystrokes("a\nb\nc")
    assert text_to_keystrokes("") == []


def test_every_printable_ascii_character_has_a_key() -> None:
    for code in range(0x20, 0x7F):
        combo = char_combo(chr(code))
        assert combo.modifiers in ((), (SHIFT,))
    assert len([c for c in CHARS if c.isprintable()]) == 95


@pytest.mark.parametrize("text", ["café", "a\u00a0b", "\x00", "日本", "€", "\x1b"])
def test_untypable_characters_are_errors(text: str) -> None:
    with pytest.raises(KeyNameError, match="US keyboard"):
        text_to_keystrokes(text)


def test_buttons() -> None:
    assert [parse_button(b) for b in ("left", "MIDDLE", "right", "up", "down")] == [1, 2, 3, 4, 5]
    assert parse_button(3) == 3 and parse_button("7") == 7 and parse_button("wheel-up") == 4
    for bad in (0, 8, "thumb", True, "-1"):
        with pytest.raises(KeyNameError):
            parse_button(bad)  # type: ignore[arg-type]
