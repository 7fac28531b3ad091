"""The main channel: session id, channel list, mouse mode, multimedia clock, agent presence.

Flow (spice-gtk channel-main.c): MAIN_INIT gives the session id the other channels link with;
the client answers ATTACH_CHANNELS; the server answers CHANNELS_LIST, which the session turns
into one connection per supported channel.
"""

from __future__ import annotations

from ryll.channels.agent import AgentCore
from ryll.channels.base import Channel, Handler
from ryll.channels.context import ChannelContext
from ryll.channels.events import ChannelsListed, SessionInitialized
from ryll.protocol.constants import ChannelType, MainCap, MainClient, MainServer, MouseMode
from ryll.protocol.messages import main as msgs


class MainChannel(Channel):
    channel_type = ChannelType.MAIN
    channel_caps = (MainCap.NAME_AND_UUID, MainCap.AGENT_CONNECTED_TOKENS)

    def __init__(self, channel_id: int, ctx: ChannelContext, mini_header: bool = True) -> None:
        super().__init__(channel_id, ctx, mini_header)
        self.channels: tuple[msgs.ChannelId, ...] = ()
        # The vdagent conversation (channels/agent.py); session.agent is its asyncio face.
        self.agent = AgentCore(self.send, self.emit, ctx.gaps, self.state, self.log)
        # The mouse mode we want (spice-gtk requested_mouse_mode): client mode, asked for
        # whenever the server offers it and is in another mode (INIT, every MOUSE_MODE).
        self.requested_mouse_mode = MouseMode.CLIENT
        self.mouse_mode_requests = 0

    def _on_init(self, body: bytes) -> None:
        init = msgs.parse_init(body)
        st = self.ctx.state
        st.session_id = init.session_id
        st.display_channels_hint = init.display_channels_hint
        st.supported_mouse_modes = init.supported_mouse_modes
        st.current_mouse_mode = init.current_mouse_mode
        st.agent_connected = bool(init.agent_connected)
        st.agent_tokens = init.agent_tokens
        st.ram_hint = init.ram_hint
        self.agent.set_tokens(init.agent_tokens)
        if init.agent_connected:
            self.agent.start()  # spice-gtk main_handle_init: agent_start before ATTACH
        self._set_mm_time(init.multi_media_time)
        self._follow_mouse_mode(init.supported_mouse_modes, init.current_mouse_mode)
        self.log.info(
            "main: init session_id=%#x mouse_mode=%d agent=%s",
            init.session_id,
            init.current_mouse_mode,
            "yes" if init.agent_connected else "no",
        )
        self.send(MainClient.ATTACH_CHANNELS)
        self.emit(SessionInitialized(init.session_id))

    def _on_channels_list(self, body: bytes) -> None:
        lst = msgs.parse_channels_list(body)
        self.channels = lst.channels
        self.emit(ChannelsListed(lst.channels))

    def _on_mouse_mode(self, body: bytes) -> None:
        mode = msgs.parse_mouse_mode(body)
        self.ctx.state.supported_mouse_modes = mode.supported
        self.ctx.state.current_mouse_mode = mode.current
        self.log.info("main: mouse_mode current=%d supported=%d", mode.current, mode.supported)
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
        self.ctx.state.mm_time_at = self.ctx.clock()

    def _on_multi_media_time(self, body: bytes) -> None:
        self._set_mm_time(msgs.parse_u32(body, "multi_media_time"))

    def _on_agent_connected(self, body: bytes) -> None:
        self.ctx.state.agent_connected = True
        self.agent.start()

    def _on_agent_connected_tokens(self, body: bytes) -> None:
        self.ctx.state.agent_tokens = msgs.parse_u32(body, "agent_connected_tokens")
        self.ctx.state.agent_connected = True
        self.agent.start(self.ctx.state.agent_tokens)

    def _on_agent_disconnected(self, body: bytes) -> None:
        error = msgs.parse_u32(body, "agent_disconnected")
        self.ctx.state.agent_connected = False
        self.agent.stop(error)

    def _on_agent_token(self, body: bytes) -> None:
        n = msgs.parse_u32(body, "agent_token")
        self.ctx.state.agent_tokens += n
        self.agent.add_tokens(n)

    def _on_agent_data(self, body: bytes) -> None:
        self.agent.on_data(body)

    def _on_name(self, body: bytes) -> None:
        self.ctx.state.name = msgs.parse_name(body)
        self.log.info("main: name %r", self.ctx.state.name)

    def _on_uuid(self, body: bytes) -> None:
        self.ctx.state.uuid = msgs.parse_uuid(body)
        self.log.info("main: uuid %s", self.ctx.state.uuid)

    def state(self) -> dict[str, object]:
        data = super().state()
        data["session"] = self.ctx.state.as_dict()
        data["channels_listed"] = [[c.type, c.id] for c in self.channels]
        data["agent"] = self.agent.as_dict()
        return data


def _unimpl(opcode: MainServer) -> Handler:
    return lambda ch, body: ch.unimplemented(opcode, body)


MainChannel.handlers = {
    MainServer.INIT: MainChannel._on_init,
    MainServer.CHANNELS_LIST: MainChannel._on_channels_list,
    MainServer.MOUSE_MODE: MainChannel._on_mouse_mode,
    MainServer.MULTI_MEDIA_TIME: MainChannel._on_multi_media_time,
    MainServer.AGENT_CONNECTED: MainChannel._on_agent_connected,
    MainServer.AGENT_CONNECTED_TOKENS: MainChannel._on_agent_connected_tokens,
    MainServer.AGENT_DISCONNECTED: MainChannel._on_agent_disconnected,
    MainServer.AGENT_TOKEN: MainChannel._on_agent_token,
    MainServer.NAME: MainChannel._on_name,
    MainServer.UUID: MainChannel._on_uuid,
    MainServer.AGENT_DATA: MainChannel._on_agent_data,
    # Migration is read and named, not acted on yet.
    MainServer.MIGRATE_BEGIN: _unimpl(MainServer.MIGRATE_BEGIN),
    MainServer.MIGRATE_CANCEL: _unimpl(MainServer.MIGRATE_CANCEL),
    MainServer.MIGRATE_SWITCH_HOST: _unimpl(MainServer.MIGRATE_SWITCH_HOST),
    MainServer.MIGRATE_END: _unimpl(MainServer.MIGRATE_END),
    MainServer.MIGRATE_BEGIN_SEAMLESS: _unimpl(MainServer.MIGRATE_BEGIN_SEAMLESS),
    MainServer.MIGRATE_DST_SEAMLESS_ACK: _unimpl(MainServer.MIGRATE_DST_SEAMLESS_ACK),
    MainServer.MIGRATE_DST_SEAMLESS_NACK: _unimpl(MainServer.MIGRATE_DST_SEAMLESS_NACK),
}
