"""The inputs channel: keys, pointer, keyboard lock state and mouse-motion flow control.

What goes out follows spice-gtk ``channel-inputs.c``:

- KEY_DOWN / KEY_UP carry set-1 scancodes, 0xE0-prefixed keys as 0x100 | code
  (``messages.inputs.make_scancode``).
- The keyboard lock state (scroll/num/caps) is the server's: INPUTS INIT and KEY_MODIFIERS set
  it, and pressing a lock key toggles our copy until the server says otherwise.
  ``set_key_locks`` sends client KEY_MODIFIERS to force a state.
- Pointer: MOUSE_MOTION (relative, server mouse mode) and MOUSE_POSITION (absolute, client mouse
  mode) are flow-controlled: the server acknowledges every INPUT_MOTION_ACK_BUNCH (4) of them
  with MOUSE_MOTION_ACK, and at most ``MOTION_WINDOW`` (2 bunches, as spice-gtk) may be
  unacknowledged. Beyond that, motions are summed and the latest position kept, and both go out
  at the next ACK. A button press or release first sends what is pending (spice-gtk
  ``spice_inputs_channel_button_press``), so a click lands where the pointer was put.
"""

from __future__ import annotations

from collections.abc import Callable

from ryll.channels.base import Channel, handled
from ryll.channels.context import ChannelContext
from ryll.protocol.constants import (
    INPUT_MOTION_ACK_BUNCH,
    ChannelType,
    InputsClient,
    InputsServer,
    KeyboardModifierFlags,
    MouseButton,
    MouseButtonMask,
)
from ryll.protocol.messages import inputs as msgs

#: Unacknowledged motion/position messages allowed in flight (spice-gtk: ACK_BUNCH * 2).
MOTION_WINDOW = INPUT_MOTION_ACK_BUNCH * 2

#: Set-1 scancodes of the lock keys and the modifier flag each toggles.
LOCK_KEYS = {
    0x3A: KeyboardModifierFlags.CAPS_LOCK,
    0x45: KeyboardModifierFlags.NUM_LOCK,
    0x46: KeyboardModifierFlags.SCROLL_LOCK,
}

#: SpiceMouseButton -> the SpiceMouseButtonMask bit a press holds. As spice-gtk, only the three
#: real buttons are held; the wheel (UP/DOWN) and SIDE/EXTRA are events that leave the state.
BUTTON_MASKS = {
    MouseButton.LEFT: MouseButtonMask.LEFT,
    MouseButton.MIDDLE: MouseButtonMask.MIDDLE,
    MouseButton.RIGHT: MouseButtonMask.RIGHT,
}

# Coordinates of MOUSE_POSITION are u32; motion deltas i32.
_U32 = 0xFFFFFFFF
_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1


class InputsChannel(Channel):
    channel_type = ChannelType.INPUTS

    def __init__(self, channel_id: int, ctx: ChannelContext, mini_header: bool = True) -> None:
        super().__init__(channel_id, ctx, mini_header)
        self.modifiers = 0
        self.motion_acks = 0
        # Flow control: motion/position messages not yet acknowledged, and what waits.
        self.motion_count = 0
        self.buttons = 0
        self._dx = self._dy = 0
        self._position: tuple[int, int, int] | None = None  # x, y, display_id
        self.keys_sent = 0
        self.motions_sent = 0
        self.positions_sent = 0
        self.motions_coalesced = 0

    # --- server messages ------------------------------------------------------------------

    def _on_modifiers(self, modifiers: int) -> None:
        """INIT and KEY_MODIFIERS: the guest's keyboard lock state."""
        self.modifiers = modifiers

    def _on_mouse_motion_ack(self, body: bytes) -> None:
        self.motion_acks += 1
        self.motion_count = max(0, self.motion_count - INPUT_MOTION_ACK_BUNCH)
        self._send_motion()
        self._send_position()

    # --- keyboard -------------------------------------------------------------------------

    def key_down(self, scancode: int) -> None:
        """Queue KEY_DOWN for a set-1 scancode (0x100 | code for an 0xE0 key)."""
        _check_scancode(scancode)
        self.send(InputsClient.KEY_DOWN, msgs.build_key_down(scancode))
        self.keys_sent += 1
        lock = LOCK_KEYS.get(scancode)
        if lock is not None:
            self.modifiers ^= lock

    def key_up(self, scancode: int) -> None:
        _check_scancode(scancode)
        self.send(InputsClient.KEY_UP, msgs.build_key_up(scancode))

    def set_key_locks(self, locks: int) -> None:
        """Queue client KEY_MODIFIERS: set the guest's scroll/num/caps lock state."""
        self.modifiers = locks & KeyboardModifierFlags.MASK
        self.send(InputsClient.KEY_MODIFIERS, msgs.build_key_modifiers(self.modifiers))

    # --- pointer --------------------------------------------------------------------------

    def motion(self, dx: int, dy: int) -> None:
        """Relative motion (server mouse mode); summed while the window is full."""
        if dx == 0 and dy == 0:
            return
        self._dx = max(_I32_MIN, min(_I32_MAX, self._dx + dx))
        self._dy = max(_I32_MIN, min(_I32_MAX, self._dy + dy))
        if self.motion_count < MOTION_WINDOW:
            self._send_motion()
        else:
            self.motions_coalesced += 1

    def position(self, x: int, y: int, display_id: int = 0) -> None:
        """Absolute position (client mouse mode); only the latest is kept while the window is
        full."""
        if not (0 <= x <= _U32 and 0 <= y <= _U32 and 0 <= display_id <= 255):
            raise ValueError(f"pointer position out of range: {x},{y} on display {display_id}")
        if self._position is not None:
            self.motions_coalesced += 1
        self._position = (x, y, display_id)
        if self.motion_count < MOTION_WINDOW:
            self._send_position()

    def button_press(self, button: int) -> None:
        self.buttons |= _mask(button)
        self._send_motion()
        self._send_position()
        self.send(InputsClient.MOUSE_PRESS, msgs.build_mouse_button(button, self.buttons))

    def button_release(self, button: int) -> None:
        self.buttons &= ~_mask(button)
        self._send_motion()
        self._send_position()
        self.send(InputsClient.MOUSE_RELEASE, msgs.build_mouse_button(button, self.buttons))

    def _send_motion(self) -> None:
        if not self._dx and not self._dy:
            return
        self.send(InputsClient.MOUSE_MOTION,
                  msgs.build_mouse_motion(self._dx, self._dy, self.buttons))
        self._dx = self._dy = 0
        self.motion_count += 1
        self.motions_sent += 1

    def _send_position(self) -> None:
        if self._position is None:
            return
        x, y, display_id = self._position
        self.send(InputsClient.MOUSE_POSITION,
                  msgs.build_mouse_position(x, y, self.buttons, display_id))
        self._position = None
        self.motion_count += 1
        self.positions_sent += 1

    def state(self) -> dict[str, object]:
        data = super().state()
        data["modifiers"] = self.modifiers
        data["motion_acks"] = self.motion_acks
        data["motion_count"] = self.motion_count
        data["buttons"] = self.buttons
        data["keys_sent"] = self.keys_sent
        data["motions_sent"] = self.motions_sent
        data["positions_sent"] = self.positions_sent
        data["motions_coalesced"] = self.motions_coalesced
        return data


def _check_scancode(scancode: int) -> None:
    if not (0 < scancode < 0x80 or 0x100 < scancode < 0x180):
        raise ValueError(f"not a set-1 scancode: {scancode:#x}")


def _mask(button: int) -> int:
    if not MouseButton.LEFT <= button <= MouseButton.EXTRA:
        raise ValueError(f"not a SPICE mouse button: {button}")
    return int(BUTTON_MASKS.get(MouseButton(button), 0))


def _modifiers(what: str) -> Callable[[bytes], int]:
    def parse(body: bytes) -> int:
        return msgs.parse_modifiers(body, what)

    parse.__name__ = f"parse_{what.replace(' ', '_')}"
    return parse


InputsChannel.routes = {
    InputsServer.INIT: handled(_modifiers("inputs init"), InputsChannel._on_modifiers),
    InputsServer.KEY_MODIFIERS: handled(_modifiers("key_modifiers"),
                                        InputsChannel._on_modifiers),
    InputsServer.MOUSE_MOTION_ACK: handled(None, InputsChannel._on_mouse_motion_ack),
}
