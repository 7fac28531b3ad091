"""The inputs channel: keyboard modifier state and mouse-motion flow control.

Sending keys and pointer events arrives with the input issue; the server side of the channel is
fully handled here so nothing it sends is left unread.
"""

from __future__ import annotations

from ryll.channels.base import Channel
from ryll.channels.context import ChannelContext
from ryll.protocol.constants import ChannelType, InputsServer
from ryll.protocol.messages import inputs as msgs


class InputsChannel(Channel):
    channel_type = ChannelType.INPUTS

    def __init__(self, channel_id: int, ctx: ChannelContext, mini_header: bool = True) -> None:
        super().__init__(channel_id, ctx, mini_header)
        self.modifiers = 0
        self.motion_acks = 0

    def _on_init(self, body: bytes) -> None:
        self.modifiers = msgs.parse_modifiers(body, "inputs init")

    def _on_key_modifiers(self, body: bytes) -> None:
        self.modifiers = msgs.parse_modifiers(body, "key_modifiers")

    def _on_mouse_motion_ack(self, body: bytes) -> None:
        self.motion_acks += 1

    def state(self) -> dict[str, object]:
        data = super().state()
        data["modifiers"] = self.modifiers
        data["motion_acks"] = self.motion_acks
        return data


InputsChannel.handlers = {
    InputsServer.INIT: InputsChannel._on_init,
    InputsServer.KEY_MODIFIERS: InputsChannel._on_key_modifiers,
    InputsServer.MOUSE_MOTION_ACK: InputsChannel._on_mouse_motion_ack,
}
