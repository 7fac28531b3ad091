"""Sending keys, text and pointer events on a running session.

``InputController`` is the one entry point front ends use (the headless ``--paste-text`` and
``--cadence``, the control socket): it turns key names and text into scancodes
(``ryll.input.keys``), picks MOUSE_POSITION or MOUSE_MOTION by the current mouse mode, queues
the messages on the inputs channel and writes them at once (``Session.flush``). Call it from the
session's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from ryll.channels.events import PasteCompleted
from ryll.channels.inputs import InputsChannel
from ryll.errors import RyllError
from ryll.input.keys import (
    LETTER_CODES,
    MODIFIERS,
    SHIFT,
    KeyCombo,
    parse_button,
    parse_key,
    text_to_keystrokes,
)
from ryll.protocol.constants import ChannelType, KeyboardModifierFlags, MouseMode

if TYPE_CHECKING:
    from ryll.session.session import Session

#: type_text refuses more than this many characters (a paste is for passwords and commands).
log = logging.getLogger("ryll.input")
MAX_TEXT = 4096
#: How long press_key holds the key down.
KEY_HOLD_S = 0.02
# The least pause between typed characters. Without one, a burst outruns the guest's keyboard
# queue (QEMU's PS/2 queue holds a few scancodes): 3000 characters at 0 ms lost 99% of them on
# the test VM, while 1 ms lost none (3000 characters with shifts, bench: tests/e2e
# test_typing_floor); 5 ms leaves room for a busy host. A smaller delay asked for is raised.
MIN_CHAR_DELAY_MS = 5.0
#: How long click holds the button down.
CLICK_HOLD_S = 0.05


class InputUnavailable(RyllError):
    """No inputs channel is linked (yet), so nothing can be sent."""


class InputController:
    """Keyboard and pointer for one session. Position is in the guest display's pixels."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._held: list[int] = []  # scancodes we sent KEY_DOWN for and no KEY_UP yet
        # Where we last put the pointer (client mode) or believe it is (server mode).
        self.x = 0
        self.y = 0
        self.display_id = 0
        self._cursor_seen: tuple[int, int] | None = None

    # --- plumbing --------------------------------------------------------------------------

    @property
    def channel(self) -> InputsChannel:
        ch = self.session.channel(ChannelType.INPUTS, 0)
        if not isinstance(ch, InputsChannel):
            raise InputUnavailable("the inputs channel is not linked")
        return ch

    @property
    def ready(self) -> bool:
        return isinstance(self.session.channel(ChannelType.INPUTS, 0), InputsChannel)

    @property
    def client_mouse(self) -> bool:
        """True in client mouse mode (absolute positions), False in server mode (motion)."""
        return bool(self.session.ctx.state.current_mouse_mode & MouseMode.CLIENT)

    @property
    def held(self) -> tuple[int, ...]:
        return tuple(self._held)

    def _flush(self, ch: InputsChannel) -> None:
        self.session.flush(ch)

    def _down(self, ch: InputsChannel, code: int) -> None:
        ch.key_down(code)
        if code not in self._held:
            self._held.append(code)
        if code not in MODIFIERS:
            self.session.latency.key_sent()

    def _up(self, ch: InputsChannel, code: int) -> None:
        ch.key_up(code)
        if code in self._held:
            self._held.remove(code)

    # --- keyboard --------------------------------------------------------------------------

    def key_down(self, name: str) -> None:
        """Press (and hold) a key or combo: modifiers first, then the key."""
        combo = parse_key(name)
        ch = self.channel
        for code in combo.scancodes:
            self._down(ch, code)
        self._flush(ch)

    def key_up(self, name: str) -> None:
        """Release a key or combo: the key first, then its modifiers in reverse order."""
        combo = parse_key(name)
        ch = self.channel
        for code in reversed(combo.scancodes):
            self._up(ch, code)
        self._flush(ch)

    async def press_key(self, name: str) -> None:
        """Press and release a key or combo (``ctrl-alt-delete``, ``Return``, ``shift-a``)."""
        combo = parse_key(name)
        ch = self.channel
        for code in combo.scancodes:
            self._down(ch, code)
        self._flush(ch)
        await asyncio.sleep(KEY_HOLD_S)
        ch = self.channel
        for code in reversed(combo.scancodes):
            self._up(ch, code)
        self._flush(ch)

    def scancode_down(self, code: int) -> None:
        """Press one key by scancode (ryll's convention: ``EXTENDED | code`` for 0xE0 keys)."""
        ch = self.channel
        self._down(ch, code)
        self._flush(ch)

    def scancode_up(self, code: int) -> None:
        ch = self.channel
        self._up(ch, code)
        self._flush(ch)

    async def press_scancode(self, code: int) -> None:
        self.scancode_down(code)
        await asyncio.sleep(KEY_HOLD_S)
        self.scancode_up(code)

    async def type_text(self, text: str, char_delay_ms: float = 16) -> PasteCompleted:
        """Type text as keystrokes on a US layout, one character every ``char_delay_ms`` (at
        least MIN_CHAR_DELAY_MS, so the guest's keyboard queue keeps up).

        Modifiers held with ``key_down`` are released first and pressed again at the end; with
        Caps Lock on (the guest's lock state), letters are typed with the shift they need to
        come out as written. Raises ValueError (KeyNameError) for a character no US key types,
        before anything is sent. Returns (and publishes) the PasteCompleted event.
        """
        if len(text) > MAX_TEXT:
            raise ValueError(f"text of {len(text)} characters is over the limit of {MAX_TEXT}")
        if char_delay_ms < 0:
            raise ValueError("char_delay_ms must not be negative")
        char_delay_ms = max(char_delay_ms, MIN_CHAR_DELAY_MS)
        strokes = text_to_keystrokes(text)
        started = time.monotonic()
        ch = self.channel
        held_mods = [c for c in self._held if c in MODIFIERS]
        for code in reversed(held_mods):
            self._up(ch, code)
        try:
            for combo in strokes:
                ch = self.channel
                combo = self._caps_adjusted(ch, combo)
                for code in combo.scancodes:
                    self._down(ch, code)
                for code in reversed(combo.scancodes):
                    self._up(ch, code)
                self._flush(ch)
                await asyncio.sleep(char_delay_ms / 1000.0)
        finally:
            if held_mods and self.ready:
                ch = self.channel
                for code in held_mods:
                    self._down(ch, code)
                self._flush(ch)
        elapsed_ms = (time.monotonic() - started) * 1000
        log.info("paste completed: %d characters in %.0f ms", len(text), elapsed_ms)
        done = PasteCompleted(len(text), round(elapsed_ms, 1))
        self.session.publish(done)
        return done

    @staticmethod
    def _caps_adjusted(ch: InputsChannel, combo: KeyCombo) -> KeyCombo:
        if not ch.modifiers & KeyboardModifierFlags.CAPS_LOCK or combo.key not in LETTER_CODES:
            return combo
        if SHIFT in combo.modifiers:
            return KeyCombo(tuple(m for m in combo.modifiers if m != SHIFT), combo.key)
        return KeyCombo((*combo.modifiers, SHIFT), combo.key)

    # --- pointer ---------------------------------------------------------------------------

    def _position(self) -> tuple[int, int]:
        """Where the pointer is: the cursor channel's position when it has moved since we last
        looked (the guest reports its pointer there), else our own tracking."""
        cursor = self.session.channel(ChannelType.CURSOR, 0)
        if cursor is not None:
            pos = (int(getattr(cursor, "x", 0)), int(getattr(cursor, "y", 0)))
            if pos != self._cursor_seen:
                self._cursor_seen = pos
                self.x, self.y = pos
        return self.x, self.y

    def _moved_to(self, x: int, y: int) -> None:
        self.x, self.y = x, y
        cursor = self.session.channel(ChannelType.CURSOR, 0)
        if cursor is not None:
            self._cursor_seen = (int(getattr(cursor, "x", 0)), int(getattr(cursor, "y", 0)))

    def _clamped(self, x: int, y: int, display_id: int) -> tuple[int, int]:
        """(x, y) within the display (its primary surface), as a real pointer stays; without
        a known display only negatives are raised to 0."""
        x, y = max(0, x), max(0, y)
        size = self.session.display_size(display_id)
        if size is not None:
            x, y = min(x, size[0] - 1), min(y, size[1] - 1)
        return x, y

    def mouse_move(self, x: int, y: int, display_id: int = 0) -> None:
        """Put the pointer at (x, y) of a display, clamped to it: MOUSE_POSITION in client
        mouse mode, else MOUSE_MOTION by the distance from where the pointer is."""
        x, y = self._clamped(x, y, display_id if self.client_mouse else 0)
        ch = self.channel
        if self.client_mouse:
            ch.position(x, y, display_id)
            self.display_id = display_id
        else:
            cx, cy = self._position()
            ch.motion(x - cx, y - cy)
        self._moved_to(x, y)
        self._flush(ch)

    def mouse_move_relative(self, dx: int, dy: int) -> None:
        """Move the pointer by (dx, dy): MOUSE_MOTION in server mode, MOUSE_POSITION at the
        tracked position plus the delta in client mode."""
        ch = self.channel
        if self.client_mouse:
            x, y = self._clamped(self.x + dx, self.y + dy, self.display_id)
            ch.position(x, y, self.display_id)
        else:
            cx, cy = self._position()
            x, y = cx + dx, cy + dy
            ch.motion(dx, dy)
        self._moved_to(x, y)
        self._flush(ch)

    def mouse_down(self, button: int | str) -> None:
        ch = self.channel
        ch.button_press(parse_button(button))
        self._flush(ch)

    def mouse_up(self, button: int | str) -> None:
        ch = self.channel
        ch.button_release(parse_button(button))
        self._flush(ch)

    async def click(self, button: int | str = "left", x: int | None = None,
                    y: int | None = None) -> None:
        """Press and release a button, first moving to (x, y) when given."""
        number = parse_button(button)
        if (x is None) != (y is None):
            raise ValueError("click needs both x and y, or neither")
        if x is not None and y is not None:
            self.mouse_move(x, y, self.display_id)
        self.mouse_down(number)
        await asyncio.sleep(CLICK_HOLD_S)
        self.mouse_up(number)
