"""ryll: a SPICE remote-display client.

The public API (docs/api.md)::

    async with ryll.connect("127.0.0.1:5900") as vm:
        await vm.wait_for_display()
        await vm.type("hello\\n")
        (await vm.screenshot()).save("screen.png")

``ryll.connect_sync`` is the same without asyncio. The names below are imported on first use,
so ``import ryll`` stays cheap. The package is layered (docs/ARCHITECTURE.md): ``protocol`` and
``channels`` are sans-IO; ``render`` owns the pixels; ``session`` is the asyncio edge; ``cli``,
``control`` and ``api`` are front ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = {"connect", "connect_sync", "VM", "SyncVM", "Display"}
_ERRORS = {
    "RyllError", "UsageError", "ConnectError", "AuthError", "TLSError", "LinkError",
    "ProtocolError", "ServerClosedError", "SessionClosedError", "WaitTimeout",
    "DisplayTimeout", "IdleTimeout", "ExpectTimeout", "EventTimeout", "PortError",
}
__all__ = sorted(_API | _ERRORS | {"__version__", "events"})

if TYPE_CHECKING:
    from ryll import events  # noqa: F401
    from ryll.api import VM, Display, SyncVM, connect, connect_sync  # noqa: F401
    from ryll.errors import (  # noqa: F401
        AuthError,
        ConnectError,
        DisplayTimeout,
        EventTimeout,
        ExpectTimeout,
        IdleTimeout,
        LinkError,
        ProtocolError,
        RyllError,
        ServerClosedError,
        SessionClosedError,
        TLSError,
        UsageError,
        WaitTimeout,
    )


def __getattr__(name: str) -> Any:
    if name in _API:
        from ryll import api

        return getattr(api, name)
    if name in _ERRORS:
        from ryll import errors

        return getattr(errors, name)
    if name == "events":
        from ryll import events

        return events
    raise AttributeError(f"module 'ryll' has no attribute {name!r}")
