"""Port channel messages (spice.proto ``channel PortChannel : SpicevmcChannel``).

A port is a named byte pipe between the client and a QEMU character device
(``-chardev spiceport,name=NAME``): QEMU's QMP monitor, a guest's virtio-serial port, the
webdav folder share. The server says which port a channel is with INIT (its name and whether
the device end is open), reports the device opening and closing with EVENT, and both sides
send the bytes as SPICEVMC_DATA, whose body is the data itself. The client's end is open
while its channel is linked: spice-server tells QEMU so at connect (``sif->state``), and the
client's own EVENT carries only BREAK (spice-gtk ``spice_port_channel_event`` refuses
OPENED and CLOSED; QEMU's ``vmc_event`` ignores them).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ryll.errors import ProtocolError
from ryll.protocol.reader import Reader

# A port's name: QEMU's are short dotted names (org.qemu.monitor.qmp.0); longer is refused.
MAX_PORT_NAME = 1024

_INIT = struct.Struct("<IIB")


@dataclass(frozen=True, slots=True)
class PortInit:
    name: str
    opened: bool


def parse_port_init(body: bytes) -> PortInit:
    """INIT: ``uint32 name_size; uint8 *name[name_size] @zero_terminated; uint8 opened``. The
    name_size counts the terminating NUL (spice-server ``strlen(name) + 1``); a name without
    one, or with bytes that are not UTF-8, is malformed."""
    r = Reader(body, what="port init")
    size, offset, opened = r.fields(_INIT, "port init")
    if not 0 < size <= MAX_PORT_NAME:
        raise ProtocolError(f"port init: name of {size} bytes (1..{MAX_PORT_NAME})")
    raw = r.at(offset, "port name").bytes(size, "port name")
    if raw[-1] != 0:
        raise ProtocolError("port init: the name is not NUL-terminated")
    try:
        name = raw[:-1].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("port init: the name is not UTF-8") from None
    if "\0" in name or not name:
        raise ProtocolError("port init: empty name or a NUL inside it")
    return PortInit(name, bool(opened))


def parse_port_event(body: bytes) -> int:
    """EVENT: ``uint8 event`` (PortEvent: OPENED, CLOSED, BREAK)."""
    return Reader(body, what="port event").u8()


def build_port_event(event: int) -> bytes:
    return bytes([event])
