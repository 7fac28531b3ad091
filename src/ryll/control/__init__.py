"""The control socket (``--control-socket PATH``): drive a running ryll from a script over a
unix socket speaking newline-delimited JSON. ``protocol`` is the sans-IO wire format,
``commands`` what each command does to the session, ``events`` where pushed events come from,
``server`` the asyncio socket server. The protocol is documented in docs/control-socket.md."""

from ryll.control.server import ControlServer

__all__ = ["ControlServer"]
