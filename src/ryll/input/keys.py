"""Key names -> PC set-1 scancodes, and text -> keystrokes on a US QWERTY layout.

Scancodes use spice-gtk's convention: a key whose make code has the 0xE0 prefix is
``0x100 | code`` (``EXTENDED``); ``protocol.messages.inputs.make_scancode`` turns that into
the KEY_DOWN / KEY_UP wire code. Set-1 codes below 0x59 are also the Linux input keycodes
(KEY_A = 30 = 0x1E); the 0xE0 keys are not (the Up arrow is 0x148 here, KEY_UP = 103 in Linux).

Names are X keysym-like (``Return``, ``BackSpace``, ``Page_Up``, ``KP_Enter``, ``Super_L``,
``F1``...), matched case-insensitively, with a few short aliases (``ctrl``, ``alt``, ``del``,
``pgup``...). A combo joins modifiers and one key with ``-`` or ``+``: ``ctrl-alt-delete``,
``shift+Tab``. A single printable character is the key that types it, with Shift when the US
layout needs it (``A`` = ``shift-a``, ``!`` = ``shift-1``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EXTENDED = 0x100


class KeyNameError(ValueError):
    """An unknown key name, or a character with no key on a US keyboard."""


# --- the key table -------------------------------------------------------------------------

_LETTERS = {
    "q": 0x10, "w": 0x11, "e": 0x12, "r": 0x13, "t": 0x14, "y": 0x15, "u": 0x16, "i": 0x17,
    "o": 0x18, "p": 0x19, "a": 0x1E, "s": 0x1F, "d": 0x20, "f": 0x21, "g": 0x22, "h": 0x23,
    "j": 0x24, "k": 0x25, "l": 0x26, "z": 0x2C, "x": 0x2D, "c": 0x2E, "v": 0x2F, "b": 0x30,
    "n": 0x31, "m": 0x32,
}

#: Canonical key name (as X spells it) -> scancode.
KEYS: dict[str, int] = {
    "Escape": 0x01,
    **{str(d): 0x01 + d for d in range(1, 10)},
    "0": 0x0B,
    "minus": 0x0C,
    "equal": 0x0D,
    "BackSpace": 0x0E,
    "Tab": 0x0F,
    **_LETTERS,
    "bracketleft": 0x1A,
    "bracketright": 0x1B,
    "Return": 0x1C,
    "Control_L": 0x1D,
    "semicolon": 0x27,
    "apostrophe": 0x28,
    "grave": 0x29,
    "Shift_L": 0x2A,
    "backslash": 0x2B,
    "comma": 0x33,
    "period": 0x34,
    "slash": 0x35,
    "Shift_R": 0x36,
    "KP_Multiply": 0x37,
    "Alt_L": 0x38,
    "space": 0x39,
    "Caps_Lock": 0x3A,
    **{f"F{n}": 0x3A + n for n in range(1, 11)},
    "Num_Lock": 0x45,
    "Scroll_Lock": 0x46,
    "KP_7": 0x47, "KP_8": 0x48, "KP_9": 0x49, "KP_Subtract": 0x4A,
    "KP_4": 0x4B, "KP_5": 0x4C, "KP_6": 0x4D, "KP_Add": 0x4E,
    "KP_1": 0x4F, "KP_2": 0x50, "KP_3": 0x51, "KP_0": 0x52, "KP_Decimal": 0x53,
    "Sys_Req": 0x54,
    "less": 0x56,  # the 102nd key of ISO keyboards
    "F11": 0x57,
    "F12": 0x58,
    # 0xE0-prefixed keys.
    "KP_Enter": EXTENDED | 0x1C,
    "Control_R": EXTENDED | 0x1D,
    "KP_Divide": EXTENDED | 0x35,
    "Print": EXTENDED | 0x37,
    "Alt_R": EXTENDED | 0x38,
    "Home": EXTENDED | 0x47,
    "Up": EXTENDED | 0x48,
    "Page_Up": EXTENDED | 0x49,
    "Left": EXTENDED | 0x4B,
    "Right": EXTENDED | 0x4D,
    "End": EXTENDED | 0x4F,
    "Down": EXTENDED | 0x50,
    "Page_Down": EXTENDED | 0x51,
    "Insert": EXTENDED | 0x52,
    "Delete": EXTENDED | 0x53,
    "Super_L": EXTENDED | 0x5B,
    "Super_R": EXTENDED | 0x5C,
    "Menu": EXTENDED | 0x5D,
}

#: Other spellings -> canonical name.
ALIASES = {
    "esc": "Escape", "enter": "Return", "ret": "Return", "backspace": "BackSpace",
    "bksp": "BackSpace", "ctrl": "Control_L", "control": "Control_L", "lctrl": "Control_L",
    "rctrl": "Control_R", "ctrl_l": "Control_L", "ctrl_r": "Control_R",
    "shift": "Shift_L", "lshift": "Shift_L", "rshift": "Shift_R",
    "alt": "Alt_L", "lalt": "Alt_L", "ralt": "Alt_R", "altgr": "Alt_R",
    "super": "Super_L", "win": "Super_L", "windows": "Super_L", "meta": "Super_L",
    "cmd": "Super_L", "meta_l": "Super_L", "meta_r": "Super_R",
    "del": "Delete", "ins": "Insert", "pgup": "Page_Up", "prior": "Page_Up", "pageup": "Page_Up",
    "pgdn": "Page_Down", "next": "Page_Down", "pagedown": "Page_Down",
    "capslock": "Caps_Lock", "numlock": "Num_Lock", "scrolllock": "Scroll_Lock",
    "printscreen": "Print", "prtsc": "Print", "sysrq": "Sys_Req", "apps": "Menu",
    "spc": "space", "equals": "equal", "dash": "minus", "quoteleft": "grave",
    "quoteright": "apostrophe", "kp_divide": "KP_Divide", "kp_period": "KP_Decimal",
    "kp_plus": "KP_Add", "kp_minus": "KP_Subtract",
}

#: Scancodes of the modifier keys (which may come before the key in a combo).
MODIFIERS = frozenset(
    KEYS[n] for n in ("Shift_L", "Shift_R", "Control_L", "Control_R", "Alt_L", "Alt_R",
                      "Super_L", "Super_R")
)
SHIFT = KEYS["Shift_L"]

_BY_LOWER = {name.lower(): code for name, code in KEYS.items()}
_BY_LOWER.update({alias: KEYS[name] for alias, name in ALIASES.items()})
NAME_OF: dict[int, str] = {code: name for name, code in KEYS.items()}

# --- US QWERTY text ------------------------------------------------------------------------

_UNSHIFTED = "1234567890-=[];'`\\,./"
_SHIFTED = "!@#$%^&*()_+{}:\"~|<>?"
#: Printable character -> (scancode, needs shift).
CHARS: dict[str, tuple[int, bool]] = {
    **{c: (code, False) for c, code in _LETTERS.items()},
    **{c.upper(): (code, True) for c, code in _LETTERS.items()},
    **{
        c: (code, False)
        for c, code in zip(_UNSHIFTED, [*range(0x02, 0x0E), 0x1A, 0x1B, 0x27, 0x28, 0x29, 0x2B,
                                       0x33, 0x34, 0x35], strict=True)
    },
    **{
        c: (code, True)
        for c, code in zip(_SHIFTED, [*range(0x02, 0x0E), 0x1A, 0x1B, 0x27, 0x28, 0x29, 0x2B,
                                     0x33, 0x34, 0x35], strict=True)
    },
    " ": (0x39, False),
    "\n": (0x1C, False),
    "\t": (0x0F, False),
}


@dataclass(frozen=True, slots=True)
class KeyCombo:
    """Modifier scancodes to hold (in press order) and the key to press."""

    modifiers: tuple[int, ...]
    key: int

    @property
    def scancodes(self) -> tuple[int, ...]:
        """Every scancode, in press order."""
        return (*self.modifiers, self.key)


def key_scancode(name: str) -> int:
    """The scancode of one key name (no combo); KeyNameError if unknown."""
    code = _BY_LOWER.get(name.lower())
    if code is None:
        raise KeyNameError(f"unknown key name {name!r}")
    return code


def from_logical(code: int) -> int:
    """A set-1 make code as scancode tables write it (the Rust ryll's control protocol):
    ``0x1C``, or ``0xE04B`` with the 0xE0 prefix in the high byte, to ryll's convention
    (``EXTENDED | code``). The break bit is dropped (a client may pass ``0x9E`` for the up
    of ``0x1E``: the same key). ValueError for anything else, such as a byte-swapped
    ``0x4BE0``."""
    high, low = code >> 8, code & 0xFF
    if high not in (0, 0xE0) or code < 0 or code > 0xFFFF or low & 0x7F == 0:
        raise ValueError(f"scancode {code:#06x} is not a set-1 make code (0x01-0x7F, or "
                         "0xE001-0xE07F for an 0xE0-prefixed key)")
    return (EXTENDED if high else 0) | (low & 0x7F)


def parse_key(name: str) -> KeyCombo:
    """A key name or a combo (``ctrl-alt-delete``, ``shift+Tab``, ``A``) -> KeyCombo."""
    if not name:
        raise KeyNameError("empty key name")
    if len(name) == 1:
        return char_combo(name)
    parts = re.split(r"(?<=.)[-+](?=.)", name)
    *mods, last = parts
    modifiers: list[int] = []
    for m in mods:
        code = key_scancode(m)
        if code not in MODIFIERS:
            raise KeyNameError(f"{m!r} in {name!r} is not a modifier (shift, ctrl, alt, super)")
        if code not in modifiers:
            modifiers.append(code)
    if len(last) == 1 and last.lower() not in _BY_LOWER:
        combo = char_combo(last)
        for code in combo.modifiers:
            if code not in modifiers:
                modifiers.append(code)
        return KeyCombo(tuple(modifiers), combo.key)
    return KeyCombo(tuple(modifiers), key_scancode(last))


def char_combo(ch: str) -> KeyCombo:
    """The keystroke that types one character on a US keyboard."""
    try:
        code, shift = CHARS[ch]
    except KeyError:
        raise KeyNameError(
            f"no key types {ch!r} (U+{ord(ch):04X}) on a US keyboard" if ch else "empty key"
        ) from None
    return KeyCombo((SHIFT,) if shift else (), code)


def text_to_keystrokes(text: str) -> list[KeyCombo]:
    """Text -> one KeyCombo per character (\\n is Return, \\r\\n and \\r too, \\t is Tab).
    Raises KeyNameError naming the first character no US key types."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [char_combo(ch) for ch in text]


#: Scancodes of the letter keys (Caps Lock inverts their shift).
LETTER_CODES = frozenset(_LETTERS.values())

#: Mouse button names -> SpiceMouseButton (1 left, 2 middle, 3 right, 4 wheel up, 5 wheel down,
#: 6 side, 7 extra).
BUTTONS = {
    "left": 1, "middle": 2, "right": 3, "up": 4, "down": 5, "side": 6, "extra": 7,
    "wheel_up": 4, "wheel-up": 4, "wheelup": 4, "scroll_up": 4,
    "wheel_down": 5, "wheel-down": 5, "wheeldown": 5, "scroll_down": 5,
}


def parse_button(button: int | str) -> int:
    """A button name (left, middle, right, up, down, side, extra) or SPICE number (1-7)."""
    if isinstance(button, str):
        text = button.strip().lower()
        if text.isdigit():
            button = int(text)
        elif text in BUTTONS:
            return BUTTONS[text]
        else:
            raise KeyNameError(
                f"unknown mouse button {button!r} (left, middle, right, up, down, side, extra "
                "or 1-7)"
            )
    if isinstance(button, bool) or not 1 <= button <= 7:
        raise KeyNameError(f"mouse button {button!r} is not 1-7")
    return int(button)
