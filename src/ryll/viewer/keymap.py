"""Browser key codes (``KeyboardEvent.code``) -> PC set-1 scancodes.

``code`` names the physical key, whatever the layout (the W3C UI Events "code" values), so the
guest's own keymap decides what a key types, as on a real keyboard: an AZERTY person's "A" key
is ``KeyQ`` and arrives as the scancode of the key in that place. Scancodes use ryll's
convention (``ryll.input.keys``): ``EXTENDED | code`` for the 0xE0-prefixed keys. Pause has no
set-1 make/break pair (its E1 sequence has no release) and is not mapped.
"""

from __future__ import annotations

from ryll.input.keys import EXTENDED

_E = EXTENDED

#: ``KeyboardEvent.code`` -> scancode.
CODES: dict[str, int] = {
    "Escape": 0x01,
    **{f"Digit{d}": 0x01 + d for d in range(1, 10)},
    "Digit0": 0x0B, "Minus": 0x0C, "Equal": 0x0D, "Backspace": 0x0E, "Tab": 0x0F,
    "KeyQ": 0x10, "KeyW": 0x11, "KeyE": 0x12, "KeyR": 0x13, "KeyT": 0x14, "KeyY": 0x15,
    "KeyU": 0x16, "KeyI": 0x17, "KeyO": 0x18, "KeyP": 0x19, "BracketLeft": 0x1A,
    "BracketRight": 0x1B, "Enter": 0x1C, "ControlLeft": 0x1D,
    "KeyA": 0x1E, "KeyS": 0x1F, "KeyD": 0x20, "KeyF": 0x21, "KeyG": 0x22, "KeyH": 0x23,
    "KeyJ": 0x24, "KeyK": 0x25, "KeyL": 0x26, "Semicolon": 0x27, "Quote": 0x28,
    "Backquote": 0x29, "ShiftLeft": 0x2A, "Backslash": 0x2B,
    "KeyZ": 0x2C, "KeyX": 0x2D, "KeyC": 0x2E, "KeyV": 0x2F, "KeyB": 0x30, "KeyN": 0x31,
    "KeyM": 0x32, "Comma": 0x33, "Period": 0x34, "Slash": 0x35, "ShiftRight": 0x36,
    "NumpadMultiply": 0x37, "AltLeft": 0x38, "Space": 0x39, "CapsLock": 0x3A,
    **{f"F{n}": 0x3A + n for n in range(1, 11)},
    "NumLock": 0x45, "ScrollLock": 0x46,
    "Numpad7": 0x47, "Numpad8": 0x48, "Numpad9": 0x49, "NumpadSubtract": 0x4A,
    "Numpad4": 0x4B, "Numpad5": 0x4C, "Numpad6": 0x4D, "NumpadAdd": 0x4E,
    "Numpad1": 0x4F, "Numpad2": 0x50, "Numpad3": 0x51, "Numpad0": 0x52, "NumpadDecimal": 0x53,
    "IntlBackslash": 0x56, "F11": 0x57, "F12": 0x58, "NumpadEqual": 0x59,
    "F13": 0x64, "F14": 0x65, "F15": 0x66, "F16": 0x67, "F17": 0x68, "F18": 0x69,
    "F19": 0x6A, "F20": 0x6B, "F21": 0x6C, "F22": 0x6D, "F23": 0x6E, "F24": 0x76,
    "KanaMode": 0x70, "IntlRo": 0x73, "Convert": 0x79, "NonConvert": 0x7B, "IntlYen": 0x7D,
    "NumpadComma": 0x7E,
    # The 0xE0 keys.
    "MediaTrackPrevious": _E | 0x10, "MediaTrackNext": _E | 0x19, "NumpadEnter": _E | 0x1C,
    "ControlRight": _E | 0x1D, "AudioVolumeMute": _E | 0x20, "LaunchApp2": _E | 0x21,
    "MediaPlayPause": _E | 0x22, "MediaStop": _E | 0x24, "AudioVolumeDown": _E | 0x2E,
    "AudioVolumeUp": _E | 0x30, "BrowserHome": _E | 0x32, "NumpadDivide": _E | 0x35,
    "PrintScreen": _E | 0x37, "AltRight": _E | 0x38, "Home": _E | 0x47, "ArrowUp": _E | 0x48,
    "PageUp": _E | 0x49, "ArrowLeft": _E | 0x4B, "ArrowRight": _E | 0x4D, "End": _E | 0x4F,
    "ArrowDown": _E | 0x50, "PageDown": _E | 0x51, "Insert": _E | 0x52, "Delete": _E | 0x53,
    "MetaLeft": _E | 0x5B, "MetaRight": _E | 0x5C, "ContextMenu": _E | 0x5D,
    "Power": _E | 0x5E, "Sleep": _E | 0x5F, "WakeUp": _E | 0x63, "BrowserSearch": _E | 0x65,
    "BrowserFavorites": _E | 0x66, "BrowserRefresh": _E | 0x67, "BrowserStop": _E | 0x68,
    "BrowserForward": _E | 0x69, "BrowserBack": _E | 0x6A, "LaunchApp1": _E | 0x6B,
    "LaunchMail": _E | 0x6C, "MediaSelect": _E | 0x6D,
    # Older browsers' names for the same keys.
    "OSLeft": _E | 0x5B, "OSRight": _E | 0x5C, "VolumeMute": _E | 0x20,
    "VolumeDown": _E | 0x2E, "VolumeUp": _E | 0x30,
}


def scancode(code: str) -> int | None:
    """The scancode of a ``KeyboardEvent.code``, or None for a key SPICE cannot send."""
    return CODES.get(code)
