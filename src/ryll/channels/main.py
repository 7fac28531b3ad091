"""The main channel: session id, channel list, mouse mode, multimedia clock, agent presence.

Flow (spice-gtk channel-main.c): MAIN_INIT gives the session id the other channels link with;
the client answers ATTACH_CHANNELS; the server answers CHANNELS_LIST, which the session turns
into one connection per supported channel.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from ryll.channels.agent import AgentCore
from ryll.channels.base import Channel, gap, handled
from ryll.channels.context import ChannelContext
from ryll.channels.events import ChannelsListed, MouseModeChanged, SessionInitialized
from ryll.protocol.constants import ChannelType, MainCap, MainClient, MainServer, MouseMode
from ryll.protocol.messages import main as msgs


class MainChannel(Channel):
    channel_type = ChannelType.MAIN
    reports_pings = True
    channel_caps = (MainCap.NAME_AND_UUID, MainCap.AGENT_CONNECTED_TOKENS)

    def __init__(self, channel_id: int, ctx: ChannelContext, mini_header: bool = True) -> None:
        super().__init__(channel_id, ctx, mini_header)
        self.channels: tuple[msgs.ChannelId, ...] = ()
        # The vdagent conversation (channels/agent.py); session.agent is its asyncio face.
        self.agent = AgentCore(self.send, self.emit, ctx.gaps, self.state, self.log, ctx.memory)
        # The mouse mode we want (spice-gtk requested_mouse_mode): client mode, asked for
        # whenever the server offers it and is in another mode (INIT, every MOUSE_MODE).
        self.requested_mouse_mode = MouseMode.CLIENT
        self.mouse_mode_requests = 0

    def _on_init(self, init: msgs.MainInit) -> None:
        st = self.ctx.state
        st.session_id = init.session_id
        st.display_channels_hint = init.display_channels_hint
        st.supported_mouse_modes = init.supported_mouse_modes
        st.current_mouse_mode = init.current_mouse_mode
        st.ram_hint = init.ram_hint
        self.emit(SessionInitialized(init.session_id))  # first: everything below follows it
        self.agent.set_tokens(init.agent_tokens)
        if init.agent_connected:
            self.agent.start()  # spice-gtk main_handle_init: agent_start before ATTACH
        self._set_mm_time(init.multi_media_time)
        self.emit(MouseModeChanged(init.current_mouse_mode, init.supported_mouse_modes))
        self._follow_mouse_mode(init.supported_mouse_modes, init.current_mouse_mode)
        self.log.info(
            "main: init session_id=%#x mouse_mode=%d agent=%s",
            init.session_id,
            init.current_mouse_mode,
            "yes" if init.agent_connected else "no",
        )
        self.send(MainClient.ATTACH_CHANNELS)

    def _on_channels_list(self, lst: msgs.ChannelsList) -> None:
        self.channels = lst.channels
        self.emit(ChannelsListed(lst.channels))

    def _on_mouse_mode(self, mode: msgs.MouseModeMsg) -> None:
        self.ctx.state.supported_mouse_modes = mode.supported
        self.ctx.state.current_mouse_mode = mode.current
        self.log.info("main: mouse_mode current=%d supported=%d", mode.current, mode.supported)
        self.emit(MouseModeChanged(mode.current, mode.supported))
        self._follow_mouse_mode(mode.supported, mode.current)

    def request_mouse_mode(self, mode: int) -> None:
        """Queue MOUSE_MODE_REQUEST and remember ``mode`` as the one to keep asking for."""
        self.requested_mouse_mode = MouseMode(mode & MouseMode.MASK)
        self.mouse_mode_requests += 1
        self.log.info("main: requesting mouse mode %d", mode)
        self.send(MainClient.MOUSE_MODE_REQUEST, msgs.build_mouse_mode_request(mode))

    def _follow_mouse_mode(self, supported: int, current: int) -> None:
        """spice-gtk set_mouse_mode: ask again for the mode we want when the server supports it
        but is in another (at INIT, and when it falls back, e.g. after a reset)."""
        wanted = self.requested_mouse_mode
        if current != wanted and supported & wanted:
            self.request_mouse_mode(wanted)

    def _set_mm_time(self, value: int) -> None:
        self.ctx.state.mm_time = value
        self.ctx.state.mm_time_at = self.now

    def _on_multi_media_time(self, value: int) -> None:
        self._set_mm_time(value)

    def _on_agent_connected(self, body: bytes) -> None:
        self.agent.start()

    def _on_agent_connected_tokens(self, tokens: int) -> None:
        self.agent.start(tokens)

    def _on_agent_disconnected(self, error: int) -> None:
        self.agent.stop(error)

    def _on_agent_token(self, n: int) -> None:
        self.agent.add_tokens(n)

    def _on_agent_data(self, body: bytes) -> None:
        self.agent.on_data(body)

    def _on_name(self, name: str) -> None:
        self.ctx.state.name = name
        self.log.info("main: name %r", name)

    def _on_uuid(self, value: uuid.UUID) -> None:
        self.ctx.state.uuid = value
        self.log.info("main: uuid %s", value)

    def state(self) -> dict[str, object]:
        data = super().state()
        data["session"] = self.ctx.state.as_dict()
        data["channels_listed"] = [[c.type, c.id] for c in self.channels]
        data["agent"] = self.agent.as_dict()
        return data


def _u32(what: str) -> Callable[[bytes], int]:
    def parse(body: bytes) -> int:
        return msgs.parse_u32(body, what)

    parse.__name__ = f"parse_{what}"
    return parse


_MIGRATION = "seamless migration is not implemented (spice-gtk channel-main.c migrate_*)"
_M = MainChannel
MainChannel.routes = {
    MainServer.INIT: handled(msgs.parse_init, _M._on_init),
    MainServer.CHANNELS_LIST: handled(msgs.parse_channels_list, _M._on_channels_list),
    MainServer.MOUSE_MODE: handled(msgs.parse_mouse_mode, _M._on_mouse_mode),
    MainServer.MULTI_MEDIA_TIME: handled(_u32("multi_media_time"), _M._on_multi_media_time),
    MainServer.AGENT_CONNECTED: handled(None, _M._on_agent_connected),
    MainServer.AGENT_CONNECTED_TOKENS: handled(_u32("agent_connected_tokens"),
                                               _M._on_agent_connected_tokens),
    MainServer.AGENT_DISCONNECTED: handled(_u32("agent_disconnected"),
                                           _M._on_agent_disconnected),
    MainServer.AGENT_TOKEN: handled(_u32("agent_token"), _M._on_agent_token),
    MainServer.NAME: handled(msgs.parse_name, _M._on_name),
    MainServer.UUID: handled(msgs.parse_uuid, _M._on_uuid),
    MainServer.AGENT_DATA: handled(None, _M._on_agent_data),
    MainServer.MIGRATE_BEGIN: gap(_MIGRATION),
    MainServer.MIGRATE_CANCEL: gap(_MIGRATION),
    MainServer.MIGRATE_SWITCH_HOST: gap(_MIGRATION),
    MainServer.MIGRATE_END: gap(_MIGRATION),
    MainServer.MIGRATE_BEGIN_SEAMLESS: gap(_MIGRATION),
    MainServer.MIGRATE_DST_SEAMLESS_ACK: gap(_MIGRATION),
    MainServer.MIGRATE_DST_SEAMLESS_NACK: gap(_MIGRATION),
}
