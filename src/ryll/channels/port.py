"""The port channel (spice-gtk ``channel-port.c``): one named byte pipe to a QEMU chardev.

Sans-IO like every channel: the server's bytes are kept in a bounded inbound buffer that the
session drains to whoever holds the port (session.ports: a unix socket, ``vm.port(name)``);
what they send comes in through :meth:`PortChannel.write`. The channel never drops a byte:
QEMU's monitor greets as soon as the channel links, before anyone holds the port, so what
comes first waits for the first holder; when nobody drains the buffer it fills to
``INBOUND_LIMIT`` and the session stops reading the channel (TCP holds the server back). A
port nobody asked for stays linked that way, its bytes counted in the summary.

State a front end reads (through the snapshot): ``port_name``, ``device_open`` (the guest's
end, from INIT and EVENT, and any data, as spice-gtk ``port_set_opened``), the byte counts.
Our end is open while the channel is linked (spice-server opens QEMU's chardev at connect), so
the channel sends EVENT only for a BREAK.
"""

from __future__ import annotations

from collections import deque

from ryll.channels.base import Channel, gap, handled
from ryll.channels.context import ChannelContext
from ryll.channels.events import PortClosed, PortOpened, PortReady
from ryll.protocol.constants import ChannelType, PortClient, PortEvent, PortServer
from ryll.protocol.messages import port as msgs

# Server bytes held for a port before the session stops reading its channel (flow control).
INBOUND_LIMIT = 1024 * 1024
# The largest SPICEVMC_DATA body ryll sends. spice-server takes a client message of any size
# (one device write buffer each; spice-gtk sends each write whole); 64 KiB, its own read size
# towards the client, keeps each write (and a PONG behind it) short.
MAX_DATA_CHUNK = 64 * 1024

_EVENT_NAMES: dict[int, str] = {
    PortEvent.OPENED: "opened", PortEvent.CLOSED: "closed", PortEvent.BREAK: "break"}


class PortChannel(Channel):
    channel_type = ChannelType.PORT

    def __init__(self, channel_id: int, ctx: ChannelContext, mini_header: bool = True) -> None:
        super().__init__(channel_id, ctx, mini_header)
        self.port_name: str | None = None
        self.device_open = False
        self._inbound: deque[bytes] = deque()
        self.buffered = 0
        self.data_in = 0  # bytes the server sent
        self.data_out = 0  # bytes ryll sent
        self.events_in = 0

    # --- what the session does with it ---------------------------------------------------

    def take_data(self) -> bytes:
        """Everything the server sent that has not been taken yet."""
        data = b"".join(self._inbound)
        self._inbound.clear()
        self.buffered = 0
        return data

    @property
    def backed_up(self) -> bool:
        """True when the session should stop reading this channel until the buffer drains."""
        return self.buffered >= INBOUND_LIMIT

    def send_break(self) -> None:
        """A BREAK on the port (QEMU passes it to the chardev as CHR_EVENT_BREAK)."""
        self.send(PortClient.EVENT, msgs.build_port_event(PortEvent.BREAK))

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the port, as SPICEVMC_DATA messages of at most MAX_DATA_CHUNK."""
        for pos in range(0, len(data), MAX_DATA_CHUNK):
            self.send(PortClient.DATA, data[pos:pos + MAX_DATA_CHUNK])
        self.data_out += len(data)

    # --- messages ------------------------------------------------------------------------

    def _on_init(self, init: msgs.PortInit) -> None:
        if self.port_name is not None and init.name != self.port_name:
            self.gap("port:malformed:init_renamed",
                     f"INIT names {init.name!r} after {self.port_name!r}")
            return
        self.port_name = init.name
        self.device_open = init.opened
        self.log.info("port %d: %s (%s)", self.channel_id, init.name,
                      "open" if init.opened else "closed")
        self.emit(PortReady(self.channel_id, init.name, init.opened))

    def _on_event(self, event: int) -> None:
        self.events_in += 1
        name = _EVENT_NAMES.get(event)
        if name is None:
            self.gap("port:malformed:event", f"unknown port event {event}")
            return
        port = self.port_name or f"#{self.channel_id}"
        self.log.info("port %s: device %s", port, name)
        if event == PortEvent.OPENED:
            self.device_open = True
            self.emit(PortOpened(self.channel_id, port))
        elif event == PortEvent.CLOSED:
            self.device_open = False
            self.emit(PortClosed(self.channel_id, port))

    def _on_data(self, body: bytes) -> None:
        self.data_in += len(body)
        self.device_open = True  # it sent something: its end is open (port_handle_msg)
        if body:
            self._inbound.append(body)
            self.buffered += len(body)

    def state(self) -> dict[str, object]:
        data = super().state()
        data.update(self.port_state())
        return data

    def port_state(self) -> dict[str, object]:
        return {
            "name": self.port_name,
            "device_open": self.device_open,
            "bytes_in": self.data_in,
            "bytes_out": self.data_out,
            "buffered": self.buffered,
        }


_P = PortChannel
PortChannel.routes = {
    PortServer.DATA: handled(None, _P._on_data),
    PortServer.COMPRESSED_DATA: gap("LZ4-compressed port data: ryll does not advertise "
                                    "SPICEVMC_CAP_DATA_COMPRESS_LZ4, so a server must not send it"),
    PortServer.INIT: handled(msgs.parse_port_init, _P._on_init),
    PortServer.EVENT: handled(msgs.parse_port_event, _P._on_event),
}
